"""Payments and what happened to them: allocations to bills, gateway attempts, refunds, disputes, and the raw
webhook deliveries (billing/payments/ holds the services)."""

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.utils.translation import gettext_lazy as _

from ..money import format_money
from .base import TransitionsMixin


class Payment(TransitionsMixin, models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", _("Pending")
        REQUIRES_ACTION = "requires_action", _("Waiting for the payer's bank")
        PROCESSING = "processing", _("Processing")
        SUCCEEDED = "succeeded", _("Succeeded")
        FAILED = "failed", _("Failed")
        CANCELED = "canceled", _("Canceled")

    TRANSITIONS = {
        Status.PENDING: {Status.REQUIRES_ACTION, Status.PROCESSING, Status.SUCCEEDED, Status.FAILED, Status.CANCELED},
        Status.REQUIRES_ACTION: {Status.PROCESSING, Status.SUCCEEDED, Status.FAILED, Status.CANCELED},
        Status.PROCESSING: {Status.SUCCEEDED, Status.FAILED, Status.CANCELED},
        Status.FAILED: {Status.PENDING},  # the payer tries another card on the same payment
        Status.SUCCEEDED: set(),
        Status.CANCELED: set(),
    }

    class Channel(models.TextChoices):
        GUEST_WEB = "guest_web", _("Guest, online")
        PORTAL = "portal", _("Signed-in payer")
        AUTOPAY = "autopay", _("Autopay")
        STAFF_OFFLINE = "staff_offline", _("Recorded by staff")
        BANK_TRANSFER = "bank_transfer", _("Bank transfer, from a statement")
        ACCOUNT_CREDIT = "account_credit", _("Account credit")

    class Method(models.TextChoices):
        CARD = "card", _("Card")
        CASH = "cash", _("Cash")
        CHEQUE = "cheque", _("Cheque")
        BANK_TRANSFER = "bank_transfer", _("Bank transfer")
        ACCOUNT_CREDIT = "account_credit", _("Credit held on the account")
        SEPA_DEBIT = "sepa_debit", _("Bank debit (SEPA)")

    # Debits from a bank account under a mandate: `processing` for days, applied to the bills while they process
    # (docs/payments.md), and reversed if the bank returns them.
    BANK_DEBIT_METHODS = (Method.SEPA_DEBIT,)

    # A payer's online payment that the gateway may still complete. At most one per account at a time (a constraint
    # below), so a double click, a second tab or a retried request reuses it instead of charging twice.
    IN_FLIGHT_STATUSES = (Status.PENDING, Status.REQUIRES_ACTION, Status.PROCESSING)
    ONLINE_CHANNELS = (Channel.GUEST_WEB, Channel.PORTAL)

    biller = models.ForeignKey("billing.Biller", on_delete=models.PROTECT, related_name="payments")
    account = models.ForeignKey("billing.CustomerAccount", on_delete=models.PROTECT, related_name="payments")
    confirmation_number = models.CharField(_("confirmation number"), max_length=20, unique=True)
    channel = models.CharField(_("channel"), max_length=16, choices=Channel.choices)
    method = models.CharField(_("method"), max_length=16, choices=Method.choices)
    status = models.CharField(_("status"), max_length=16, choices=Status.choices, default=Status.PENDING)
    currency = models.CharField(_("currency"), max_length=3)
    amount = models.BigIntegerField(_("amount applied to bills"))
    fee_amount = models.BigIntegerField(_("convenience fee"), default=0)
    tip_amount = models.BigIntegerField(_("tip"), default=0)
    amount_refunded = models.BigIntegerField(_("amount refunded"), default=0)
    # Taken back by chargebacks and not (yet) reinstated. Refunds plus this never exceed what was charged.
    amount_disputed = models.BigIntegerField(_("withdrawn by disputes"), default=0)
    disputed = models.BooleanField(_("disputed"), default=False, help_text=_("The payer's bank opened a dispute."))
    reference = models.CharField(_("reference"), max_length=100, blank=True, help_text=_("Cheque number or receipt."))
    payer_email = models.EmailField(_("receipt e-mail"), blank=True)
    payment_method_summary = models.CharField(
        _("paid with"), max_length=64, blank=True, help_text=_("For example “Visa •••• 4242”.")
    )
    # The payer's choices on the payment page, acted on after the payment succeeds (receipt page, enrolments).
    save_card_requested = models.BooleanField(_("payer asked to save the card"), default=False)
    paperless_requested = models.BooleanField(_("payer asked for paperless bills"), default=False)
    gateway_payment_id = models.CharField(max_length=255, null=True, blank=True, unique=True, editable=False)
    idempotency_key = models.CharField(max_length=100, null=True, blank=True, unique=True, editable=False)
    received_at = models.DateTimeField(_("received"), null=True, blank=True)
    # A bank debit: its mandate, and when its money went on the bills (at `processing`, before the bank settles it).
    mandate = models.ForeignKey(
        "billing.BankMandate", on_delete=models.PROTECT, null=True, blank=True, related_name="payments",
        verbose_name=_("mandate"),
    )  # fmt: skip
    applied_at = models.DateTimeField(_("applied to bills"), null=True, blank=True, editable=False)
    # Set under the payment's row lock when the receipt e-mail went out, so the webhook and the payer's return,
    # which both record a success, send it once.
    receipt_sent_at = models.DateTimeField(_("receipt e-mailed"), null=True, blank=True, editable=False)
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("payment")
        verbose_name_plural = _("payments")
        ordering = ["-created_at", "-pk"]
        permissions = [
            ("record_offline_payment", _("Can record an offline payment")),
            ("refund_payment", _("Can refund a payment")),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="payment_amount_positive"),
            models.CheckConstraint(condition=Q(fee_amount__gte=0), name="payment_fee_nonnegative"),
            models.CheckConstraint(condition=Q(tip_amount__gte=0), name="payment_tip_nonnegative"),
            models.CheckConstraint(condition=Q(amount_refunded__gte=0), name="payment_refunded_nonnegative"),
            models.CheckConstraint(condition=Q(amount_disputed__gte=0), name="payment_disputed_nonnegative"),
            models.CheckConstraint(
                condition=Q(
                    amount_refunded__lte=F("amount") + F("fee_amount") + F("tip_amount") - F("amount_disputed")
                ),
                name="payment_refund_capped",
            ),
            models.UniqueConstraint(
                fields=["account"],
                # IN_FLIGHT_STATUSES and ONLINE_CHANNELS, spelled out: Meta cannot see the class attributes.
                condition=Q(status__in=["pending", "requires_action", "processing"], channel__in=["guest_web", "portal"]),
                name="one_in_flight_online_payment_per_account",
            ),
        ]
        indexes = [
            # The insight page and the posting file: a biller's succeeded payments by the moment they were received.
            models.Index(fields=["biller", "status", "received_at"], name="payment_biller_received"),
            # An account's newest payments (the dashboard's three) read from the index, not from its whole history.
            models.Index(fields=["account", "-created_at", "-id"], name="payment_account_newest"),
            # Autopay's payments whose receipt is still to be raised (notifications.receipts.receipts_raise_batched,
            # every minute): a handful of rows, never a scan of the payments.
            models.Index(
                fields=["id"], name="payment_receipt_due",
                condition=Q(channel="autopay", status="succeeded", receipt_sent_at__isnull=True),
            ),  # fmt: skip
        ]

    def __str__(self):
        return self.confirmation_number

    @property
    def is_bank_debit(self) -> bool:
        return self.method in self.BANK_DEBIT_METHODS

    @property
    def total_charged(self) -> int:
        return self.amount + self.fee_amount + self.tip_amount

    @property
    def refundable(self) -> int:
        if self.status != self.Status.SUCCEEDED:
            return 0
        return self.total_charged - self.amount_refunded - self.amount_disputed


class PaymentAllocation(models.Model):
    """How much of a payment went to which bill (oldest due first)."""

    payment = models.ForeignKey(Payment, on_delete=models.PROTECT, related_name="allocations")
    bill = models.ForeignKey("billing.Bill", on_delete=models.PROTECT, related_name="allocations")
    amount = models.BigIntegerField(_("amount"))
    # Given back to the payer by refunds; the bill's amount_paid went down by the same amount.
    amount_reversed = models.BigIntegerField(_("amount refunded"), default=0)

    def __str__(self):
        # The admin shows this as the row's title in a bill's "payments applied".
        return _("%(amount)s from payment %(payment)s to bill %(bill)s") % {
            "amount": format_money(self.amount - self.amount_reversed, self.payment.currency),
            "payment": self.payment.confirmation_number,
            "bill": self.bill.number,
        }

    class Meta:
        verbose_name = _("payment allocation")
        constraints = [
            models.UniqueConstraint(fields=["payment", "bill"], name="allocation_once_per_bill"),
            models.CheckConstraint(condition=Q(amount__gt=0), name="allocation_amount_positive"),
            models.CheckConstraint(
                condition=Q(amount_reversed__gte=0) & Q(amount_reversed__lte=F("amount")),
                name="allocation_reversal_within_amount",
            ),
        ]


class PaymentAttempt(models.Model):
    """Append-only: one row per call to the payment gateway, whatever its outcome."""

    class Kind(models.TextChoices):
        CREATE = "create", _("Create intent")
        CONFIRM = "confirm", _("Confirm")
        UPDATE = "update", _("Change amount")
        RETRIEVE = "retrieve", _("Check status")
        CANCEL = "cancel", _("Cancel")
        REFUND = "refund", _("Refund")

    class Outcome(models.TextChoices):
        SUCCEEDED = "succeeded", _("Succeeded")
        REQUIRES_ACTION = "requires_action", _("Needs authentication")
        PENDING = "pending", _("Pending")
        DECLINED = "declined", _("Declined")
        CANCELED = "canceled", _("Canceled")
        ERROR = "error", _("Gateway error")

    payment = models.ForeignKey(Payment, on_delete=models.PROTECT, related_name="attempts")
    kind = models.CharField(_("kind"), max_length=16, choices=Kind.choices)
    amount = models.BigIntegerField(_("amount"))
    currency = models.CharField(_("currency"), max_length=3)
    gateway_reference = models.CharField(_("gateway reference"), max_length=255, blank=True)
    idempotency_key = models.CharField(max_length=100, null=True, blank=True, unique=True)
    outcome = models.CharField(_("outcome"), max_length=16, choices=Outcome.choices)
    decline_code = models.CharField(_("decline code"), max_length=64, blank=True)
    message = models.CharField(_("message"), max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("payment attempt")
        verbose_name_plural = _("payment attempts")
        ordering = ["created_at", "pk"]
        constraints = [models.CheckConstraint(condition=Q(amount__gte=0), name="attempt_amount_nonnegative")]


class Refund(TransitionsMixin, models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", _("Pending")
        # The gateway was asked but its answer was lost (a timeout, a dropped connection): the money may have moved.
        # It still counts against the cap; billing/payments/refunds.py `refund_settle` asks the gateway before any retry.
        UNKNOWN = "unknown", _("Pending confirmation")
        SUCCEEDED = "succeeded", _("Succeeded")
        FAILED = "failed", _("Failed")

    # The one place that says which status changes are allowed (billing/payments/refunds.py checks it).
    TRANSITIONS = {
        Status.PENDING: {Status.SUCCEEDED, Status.FAILED, Status.UNKNOWN},
        Status.UNKNOWN: {Status.SUCCEEDED, Status.FAILED},
        Status.SUCCEEDED: set(),
        Status.FAILED: set(),
    }
    # Money that is out, or may be out: these count against what can still be refunded.
    HELD_STATUSES = (Status.PENDING, Status.UNKNOWN)

    class Kind(models.TextChoices):
        STAFF = "staff", _("Made by staff")
        EXCESS = "excess", _("Excess returned automatically")
        EXTERNAL = "external", _("Made at the gateway (outside Billpay)")
        # Bank transfers: no gateway. The payer's bank sent the money back, or staff paid held credit back by bank.
        BANK_RETURN = "bank_return", _("Returned by the bank")
        CREDIT_REFUND = "credit_refund", _("Credit paid back by staff")

    payment = models.ForeignKey(Payment, on_delete=models.PROTECT, related_name="refunds")
    kind = models.CharField(_("kind"), max_length=16, choices=Kind.choices, default=Kind.STAFF)
    amount = models.BigIntegerField(_("amount"))
    currency = models.CharField(_("currency"), max_length=3)
    reason = models.CharField(_("reason"), max_length=500)
    status = models.CharField(_("status"), max_length=16, choices=Status.choices, default=Status.PENDING)
    gateway_refund_id = models.CharField(max_length=255, null=True, blank=True, unique=True)
    idempotency_key = models.CharField(max_length=100, unique=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("refund")
        verbose_name_plural = _("refunds")
        ordering = ["-created_at"]
        constraints = [models.CheckConstraint(condition=Q(amount__gt=0), name="refund_amount_positive")]

    def __str__(self):
        return f"{format_money(self.amount, self.currency)} ({self.get_status_display()})"


class Dispute(TransitionsMixin, models.Model):
    """A chargeback: the payer's bank took (or may take) the money back. Recorded from the gateway's signed dispute
    events only (billing/disputes.py); keyed on the gateway's dispute id, so repeats and reordering change nothing."""

    class Status(models.TextChoices):
        # Stripe's dispute statuses.
        WARNING_NEEDS_RESPONSE = "warning_needs_response", _("Inquiry: needs a response")
        WARNING_UNDER_REVIEW = "warning_under_review", _("Inquiry: under review")
        WARNING_CLOSED = "warning_closed", _("Inquiry closed")
        NEEDS_RESPONSE = "needs_response", _("Needs a response")
        UNDER_REVIEW = "under_review", _("Under review")
        WON = "won", _("Won")
        LOST = "lost", _("Lost")

    TRANSITIONS = {
        Status.WARNING_NEEDS_RESPONSE: {
            Status.WARNING_UNDER_REVIEW, Status.WARNING_CLOSED, Status.NEEDS_RESPONSE, Status.UNDER_REVIEW,
            Status.WON, Status.LOST,
        },
        Status.WARNING_UNDER_REVIEW: {Status.WARNING_CLOSED, Status.NEEDS_RESPONSE, Status.UNDER_REVIEW, Status.WON,
                                      Status.LOST},
        Status.WARNING_CLOSED: set(),
        Status.NEEDS_RESPONSE: {Status.UNDER_REVIEW, Status.WON, Status.LOST},
        Status.UNDER_REVIEW: {Status.WON, Status.LOST},
        Status.WON: set(),
        Status.LOST: set(),
    }  # fmt: skip
    OPEN_STATUSES = (
        Status.WARNING_NEEDS_RESPONSE, Status.WARNING_UNDER_REVIEW, Status.NEEDS_RESPONSE, Status.UNDER_REVIEW,
    )  # fmt: skip

    class Funds(models.TextChoices):
        # Only ever moves forward, so a late "withdrawn" after "reinstated" changes nothing.
        NONE = "none", _("Not withdrawn")
        WITHDRAWN = "withdrawn", _("Withdrawn from our balance")
        REINSTATED = "reinstated", _("Reinstated")

    FUNDS_ORDER = (Funds.NONE, Funds.WITHDRAWN, Funds.REINSTATED)

    payment = models.ForeignKey(Payment, on_delete=models.PROTECT, related_name="disputes", verbose_name=_("payment"))
    gateway_dispute_id = models.CharField(_("gateway dispute id"), max_length=255, unique=True)
    gateway_charge_id = models.CharField(_("gateway charge id"), max_length=255, blank=True)
    amount = models.BigIntegerField(_("amount disputed"))
    currency = models.CharField(_("currency"), max_length=3)
    reason = models.CharField(_("reason"), max_length=64, blank=True)
    status = models.CharField(_("status"), max_length=32, choices=Status.choices)
    funds = models.CharField(_("funds"), max_length=16, choices=Funds.choices, default=Funds.NONE)
    # What the withdrawal took off the payment (and of that, off the bills); a reinstatement gives back exactly this.
    amount_withdrawn = models.BigIntegerField(_("withdrawn from the payment"), default=0)
    amount_reversed_on_bills = models.BigIntegerField(_("taken off the bills"), default=0)
    evidence_due_by = models.DateTimeField(_("evidence due by"), null=True, blank=True)
    # `created` of the newest gateway event applied: an older event arriving later never moves the status back.
    last_event_created = models.BigIntegerField(_("newest event applied (unix time)"), default=0)
    created_at = models.DateTimeField(_("opened"), auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("dispute")
        verbose_name_plural = _("disputes")
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gte=0), name="dispute_amount_nonnegative"),
            models.CheckConstraint(
                condition=Q(amount_withdrawn__gte=0) & Q(amount_reversed_on_bills__gte=0)
                & Q(amount_reversed_on_bills__lte=F("amount_withdrawn")),
                name="dispute_withdrawn_amounts_ordered",
            ),
        ]

    def __str__(self):
        return f"{self.gateway_dispute_id} ({self.get_status_display()})"


class WebhookEvent(models.Model):
    """A gateway webhook delivery, stored raw before it is processed. The unique event id makes a redelivery a no-op."""

    event_id = models.CharField(_("event id"), max_length=255, unique=True)
    type = models.CharField(_("type"), max_length=100)
    payload = models.JSONField(_("payload"))  # data.object, for reading; `body` is what was signed
    body = models.TextField(_("raw body"), blank=True)
    signature = models.CharField(_("Stripe-Signature header"), max_length=1000, blank=True)
    livemode = models.BooleanField(_("live mode"), default=False)
    created = models.BigIntegerField(_("created at the gateway (unix time)"), null=True, blank=True)
    api_version = models.CharField(_("API version"), max_length=32, blank=True)
    received_at = models.DateTimeField(_("received"), auto_now_add=True)
    processed_at = models.DateTimeField(_("processed"), null=True, blank=True)
    error = models.TextField(_("error"), blank=True)

    class Meta:
        verbose_name = _("webhook event")
        verbose_name_plural = _("webhook events")
        ordering = ["-received_at", "-pk"]

    def __str__(self):
        return f"{self.type} {self.event_id}"


class Installation(models.Model):
    """This database's one random key, made on first use (billing.payments.attempts.install_key). It salts the
    idempotency keys derived from our primary keys (`autopay-<install>-<row>-…`), so that a database recreated (or a
    second one) against the same gateway account never sends a key an earlier database sent: Stripe answers a
    repeated key with the first request's stored result for 24 hours, which would hand the new row another database's
    intent, already confirmed. Copying a database copies its key: give a copy that will charge on the same gateway
    account a new one (delete the row; the next charge makes another)."""

    key = models.CharField(_("key"), max_length=16, unique=True, editable=False)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    class Meta:
        verbose_name = _("installation")
        verbose_name_plural = _("installations")

    def __str__(self):
        return self.key
