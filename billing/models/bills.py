"""Billing data: billers, customer accounts, bills, payments and their append-only history.

Money is integer minor units beside an ISO 4217 currency on the same row. Status changes go only through the services
in billing/services.py, which check the allowed-transition maps defined here.
"""

from datetime import timedelta

from django.conf import settings
from django.core.validators import MinValueValidator, RegexValidator
from django.db import models
from django.db.models import F, Q
from django.utils.translation import gettext_lazy as _

from ..money import format_money
from ..storage import private_storage


def default_reminder_schedule() -> list[int]:
    return [-5, 0, 3, 10]  # days from the due date: five before, on the day, three and ten after


def default_retry_schedule() -> list[int]:
    return [1, 3, 5, 7]  # days after a failed autopay charge


def default_tip_presets() -> list[int]:
    return [15, 20, 25]  # percent; shown only when the biller turns tips on


class Biller(models.Model):
    class LookupFactor(models.TextChoices):
        POSTAL_CODE = "postal_code", _("Postal code of the service address")
        LAST_BILL_AMOUNT = "last_bill_amount", _("Amount of the last bill")

    name = models.CharField(_("name"), max_length=200)
    slug = models.SlugField(_("slug"), unique=True)
    # Branding
    brand_color = models.CharField(
        _("brand colour"),
        max_length=7,
        default="#0b5cab",
        validators=[RegexValidator(r"^#[0-9a-fA-F]{6}$", _("Use a colour like #0b5cab."))],
    )
    tagline = models.CharField(_("tagline"), max_length=200, blank=True)
    remit_address = models.TextField(_("address for payments by mail"), blank=True)
    # Money and time
    currency = models.CharField(_("currency"), max_length=3, default="USD")
    time_zone = models.CharField(_("time zone"), max_length=64, default="UTC")
    # Support contact
    support_email = models.EmailField(_("support e-mail"), blank=True)
    support_phone = models.CharField(_("support phone"), max_length=40, blank=True)
    # Policies used by payments, reminders and retries (later issues read them)
    lookup_factor = models.CharField(
        _("second lookup factor"), max_length=32, choices=LookupFactor.choices, default=LookupFactor.POSTAL_CODE
    )
    minimum_payment = models.BigIntegerField(
        _("minimum online payment (minor units)"), default=100, validators=[MinValueValidator(1)]
    )
    maximum_payment = models.BigIntegerField(
        _("maximum online payment (minor units)"),
        null=True,
        blank=True,
        help_text=_("Leave empty for no limit beyond the balance due."),
    )
    convenience_fee_fixed = models.BigIntegerField(_("convenience fee, fixed (minor units)"), default=0)
    convenience_fee_basis_points = models.PositiveIntegerField(
        _("convenience fee, percent in basis points"), default=0, help_text=_("250 means 2.5%.")
    )
    tips_enabled = models.BooleanField(_("offer tip presets"), default=False)
    tip_presets = models.JSONField(_("tip presets (percent)"), default=default_tip_presets, blank=True)
    pay_link_valid_days = models.PositiveIntegerField(
        _("pay links stay valid this many days after the due date"), default=60
    )
    reminder_schedule = models.JSONField(
        _("reminder schedule (days from due date)"),
        default=default_reminder_schedule,
        blank=True,
        help_text=_("For example [-5, 0, 3, 10]: five days before, on the day, three and ten days after."),
    )
    retry_schedule = models.JSONField(
        _("failed-charge retry schedule (days after the failure)"), default=default_retry_schedule, blank=True
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("biller")
        verbose_name_plural = _("billers")
        constraints = [
            models.CheckConstraint(condition=Q(minimum_payment__gte=1), name="biller_minimum_payment_positive"),
            models.CheckConstraint(condition=Q(convenience_fee_fixed__gte=0), name="biller_fee_nonnegative"),
            models.CheckConstraint(
                condition=Q(maximum_payment__isnull=True) | Q(maximum_payment__gte=F("minimum_payment")),
                name="biller_maximum_at_least_minimum",
            ),
        ]

    def __str__(self):
        return self.name


class ImportBatch(models.Model):
    """One uploaded bill file and its progress. The rows it created point back to it."""

    class Status(models.TextChoices):
        PENDING = "pending", _("Waiting")
        RUNNING = "running", _("Importing")
        SUCCEEDED = "succeeded", _("Imported")
        FAILED = "failed", _("Rejected")

    biller = models.ForeignKey(Biller, on_delete=models.PROTECT, related_name="import_batches")
    filename = models.CharField(_("file name"), max_length=255)
    file = models.FileField(_("file"), upload_to="imports/", storage=private_storage, blank=True)
    sha256 = models.CharField(_("SHA-256 of the file"), max_length=64)
    status = models.CharField(_("status"), max_length=16, choices=Status.choices, default=Status.PENDING)
    total_rows = models.PositiveIntegerField(_("rows"), default=0)
    processed_rows = models.PositiveIntegerField(_("rows checked"), default=0)
    accounts_created = models.PositiveIntegerField(_("accounts created"), default=0)
    bills_created = models.PositiveIntegerField(_("bills created"), default=0)
    bills_skipped = models.PositiveIntegerField(_("bills already imported"), default=0)
    errors = models.JSONField(_("errors"), default=list, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(_("uploaded"), auto_now_add=True)
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True)

    class Meta:
        verbose_name = _("bill import")
        verbose_name_plural = _("bill imports")
        ordering = ["-created_at"]

    def __str__(self):
        return f"{self.filename} ({self.get_status_display()})"

    @property
    def percent_done(self) -> int:
        if not self.total_rows:
            return 100 if self.status in {self.Status.SUCCEEDED, self.Status.FAILED} else 0
        return min(100, round(100 * self.processed_rows / self.total_rows))


class CustomerAccount(models.Model):
    """The biller's customer: one service account, which may be linked to several portal logins."""

    biller = models.ForeignKey(Biller, on_delete=models.PROTECT, related_name="accounts")
    account_number = models.CharField(_("account number"), max_length=40)
    holder_name = models.CharField(_("account holder"), max_length=200)
    address_line1 = models.CharField(_("service address"), max_length=200, blank=True)
    address_line2 = models.CharField(_("address line 2"), max_length=200, blank=True)
    city = models.CharField(_("city"), max_length=100, blank=True)
    region = models.CharField(_("region"), max_length=100, blank=True)
    postal_code = models.CharField(_("postal code"), max_length=20)
    country = models.CharField(_("country"), max_length=2, default="US")
    email = models.EmailField(_("contact e-mail"), blank=True)
    phone = models.CharField(_("contact phone"), max_length=32, blank=True)
    # Communication preferences; per-notice channel choices arrive with the reminders issue.
    language = models.CharField(_("language"), max_length=8, choices=settings.LANGUAGES, default="en")
    email_notices = models.BooleanField(_("notices by e-mail"), default=True)
    sms_notices = models.BooleanField(_("notices by text message"), default=False)
    import_batch = models.ForeignKey(
        ImportBatch, on_delete=models.SET_NULL, null=True, blank=True, related_name="accounts"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("customer account")
        verbose_name_plural = _("customer accounts")
        ordering = ["account_number"]
        constraints = [
            models.UniqueConstraint(fields=["biller", "account_number"], name="account_number_unique_per_biller")
        ]

    def __str__(self):
        return f"{self.account_number} · {self.holder_name}"

    @property
    def postal_code_normalized(self) -> str:
        return normalize_postal_code(self.postal_code)


def normalize_postal_code(value: str) -> str:
    return "".join(ch for ch in (value or "").upper() if ch.isalnum())


class Bill(models.Model):
    """A bill (invoice) sent to a customer account. "Bill" is the word used everywhere in this project."""

    class Status(models.TextChoices):
        DRAFT = "draft", _("Draft")
        OPEN = "open", _("Open")
        PAID = "paid", _("Paid")
        VOID = "void", _("Void")
        UNCOLLECTIBLE = "uncollectible", _("Uncollectible")

    # The one place that says which status changes are allowed. A refund or reversed payment reopens a paid bill.
    TRANSITIONS = {
        Status.DRAFT: {Status.OPEN, Status.VOID},
        Status.OPEN: {Status.PAID, Status.VOID, Status.UNCOLLECTIBLE},
        Status.PAID: {Status.OPEN},
        Status.UNCOLLECTIBLE: {Status.OPEN, Status.PAID},
        Status.VOID: set(),
    }
    PAYABLE_STATUSES = (Status.OPEN, Status.UNCOLLECTIBLE)

    biller = models.ForeignKey(Biller, on_delete=models.PROTECT, related_name="bills")
    account = models.ForeignKey(CustomerAccount, on_delete=models.PROTECT, related_name="bills")
    number = models.CharField(_("bill number"), max_length=40)
    status = models.CharField(_("status"), max_length=16, choices=Status.choices, default=Status.DRAFT)
    period_start = models.DateField(_("period start"))
    period_end = models.DateField(_("period end"))
    issue_date = models.DateField(_("issue date"), null=True, blank=True)
    due_date = models.DateField(_("due date"))
    currency = models.CharField(_("currency"), max_length=3)
    subtotal = models.BigIntegerField(_("subtotal"), default=0)
    tax = models.BigIntegerField(_("tax"), default=0)
    total = models.BigIntegerField(_("total"), default=0)
    amount_paid = models.BigIntegerField(_("amount paid"), default=0)
    import_batch = models.ForeignKey(
        ImportBatch, on_delete=models.SET_NULL, null=True, blank=True, related_name="bills"
    )
    # The stored PDF, and a fingerprint of what it was rendered from; a different fingerprint means re-render.
    pdf = models.FileField(_("PDF"), upload_to="bills/", storage=private_storage, blank=True, editable=False)
    pdf_fingerprint = models.CharField(max_length=64, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("bill")
        verbose_name_plural = _("bills")
        ordering = ["-due_date", "-pk"]
        permissions = [
            ("issue_bill", _("Can issue a bill")),
            ("void_bill", _("Can void a bill or write it off")),
            ("import_bills", _("Can import bills from a file")),
        ]
        constraints = [
            models.UniqueConstraint(fields=["biller", "number"], name="bill_number_unique_per_biller"),
            models.CheckConstraint(condition=Q(subtotal__gte=0), name="bill_subtotal_nonnegative"),
            models.CheckConstraint(condition=Q(tax__gte=0), name="bill_tax_nonnegative"),
            models.CheckConstraint(condition=Q(total=F("subtotal") + F("tax")), name="bill_total_is_subtotal_plus_tax"),
            models.CheckConstraint(condition=Q(amount_paid__gte=0), name="bill_amount_paid_nonnegative"),
            models.CheckConstraint(condition=Q(amount_paid__lte=F("total")), name="bill_never_overpaid"),
            models.CheckConstraint(condition=Q(period_end__gte=F("period_start")), name="bill_period_ordered"),
        ]
        indexes = [models.Index(fields=["account", "status", "due_date"])]

    def __str__(self):
        return self.number

    @property
    def balance_due(self) -> int:
        if self.status in (self.Status.VOID, self.Status.DRAFT):
            return 0
        return self.total - self.amount_paid

    def can_transition_to(self, status) -> bool:
        return status in self.TRANSITIONS.get(self.status, set())

    def money(self, minor: int) -> str:
        return format_money(minor, self.currency)

    def is_overdue(self, today) -> bool:
        return self.status in self.PAYABLE_STATUSES and self.due_date < today

    def pay_link_expires_on(self):
        return self.due_date + timedelta(days=self.biller.pay_link_valid_days)


class BillLine(models.Model):
    bill = models.ForeignKey(Bill, on_delete=models.CASCADE, related_name="lines")
    position = models.PositiveIntegerField(_("position"), default=0)
    description = models.CharField(_("description"), max_length=200)
    quantity = models.DecimalField(_("quantity"), max_digits=14, decimal_places=3, default=1)
    unit_amount = models.BigIntegerField(_("unit price"), default=0)
    amount = models.BigIntegerField(_("amount"))
    tax_amount = models.BigIntegerField(_("tax"), default=0)

    class Meta:
        verbose_name = _("bill line")
        verbose_name_plural = _("bill lines")
        ordering = ["bill", "position", "pk"]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gte=0), name="bill_line_amount_nonnegative"),
            models.CheckConstraint(condition=Q(tax_amount__gte=0), name="bill_line_tax_nonnegative"),
            models.CheckConstraint(condition=Q(unit_amount__gte=0), name="bill_line_unit_nonnegative"),
        ]

    def __str__(self):
        return self.description


class Payment(models.Model):
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

    class Method(models.TextChoices):
        CARD = "card", _("Card")
        CASH = "cash", _("Cash")
        CHEQUE = "cheque", _("Cheque")
        BANK_TRANSFER = "bank_transfer", _("Bank transfer")

    # A payer's online payment that the gateway may still complete. At most one per account at a time (a constraint
    # below), so a double click, a second tab or a retried request reuses it instead of charging twice.
    IN_FLIGHT_STATUSES = (Status.PENDING, Status.REQUIRES_ACTION, Status.PROCESSING)
    ONLINE_CHANNELS = (Channel.GUEST_WEB, Channel.PORTAL)

    biller = models.ForeignKey(Biller, on_delete=models.PROTECT, related_name="payments")
    account = models.ForeignKey(CustomerAccount, on_delete=models.PROTECT, related_name="payments")
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

    def __str__(self):
        return self.confirmation_number

    @property
    def total_charged(self) -> int:
        return self.amount + self.fee_amount + self.tip_amount

    @property
    def refundable(self) -> int:
        if self.status != self.Status.SUCCEEDED:
            return 0
        return self.total_charged - self.amount_refunded - self.amount_disputed

    def can_transition_to(self, status) -> bool:
        return status in self.TRANSITIONS.get(self.status, set())


class GuestEnrollmentRequest(models.Model):
    """A guest payer asked, before or right after paying, for paperless bills and/or autopay.

    Only the choice is recorded here: nothing is enrolled until the payer confirms through the link that the
    payer-accounts flow e-mails (it sets `consumed_at`). One per payment; a later tick on the receipt adds to it."""

    payment = models.OneToOneField(Payment, on_delete=models.CASCADE, related_name="enrollment_request")
    account = models.ForeignKey(CustomerAccount, on_delete=models.CASCADE, related_name="enrollment_requests")
    email = models.EmailField(_("e-mail"))
    paperless = models.BooleanField(_("paperless bills"), default=False)
    autopay = models.BooleanField(_("autopay"), default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    consumed_at = models.DateTimeField(_("confirmed"), null=True, blank=True)

    class Meta:
        verbose_name = _("guest enrolment request")
        verbose_name_plural = _("guest enrolment requests")
        ordering = ["-created_at", "-pk"]
        indexes = [models.Index(fields=["consumed_at", "created_at"])]

    def __str__(self):
        return f"{self.email} ({self.payment})"


class PaymentAllocation(models.Model):
    """How much of a payment went to which bill (oldest due first)."""

    payment = models.ForeignKey(Payment, on_delete=models.PROTECT, related_name="allocations")
    bill = models.ForeignKey(Bill, on_delete=models.PROTECT, related_name="allocations")
    amount = models.BigIntegerField(_("amount"))
    # Given back to the payer by refunds; the bill's amount_paid went down by the same amount.
    amount_reversed = models.BigIntegerField(_("amount refunded"), default=0)

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


class Refund(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", _("Pending")
        # The gateway was asked but its answer was lost (a timeout, a dropped connection): the money may have moved.
        # It still counts against the cap; billing/payments.py `refund_settle` asks the gateway before any retry.
        UNKNOWN = "unknown", _("Pending confirmation")
        SUCCEEDED = "succeeded", _("Succeeded")
        FAILED = "failed", _("Failed")

    # The one place that says which status changes are allowed (billing/payments.py `_refund_move` checks it).
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

    def can_transition_to(self, status) -> bool:
        return status in self.TRANSITIONS.get(self.status, set())


class Dispute(models.Model):
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

    def can_transition_to(self, status) -> bool:
        return status in self.TRANSITIONS.get(self.status, set())


class BillingEvent(models.Model):
    """Append-only history of every status change and money action: who, when, what."""

    class Kind(models.TextChoices):
        BILL_CREATED = "bill_created", _("Bill created")
        BILL_STATUS = "bill_status", _("Bill status changed")
        PAYMENT_RECORDED = "payment_recorded", _("Payment recorded")
        PAYMENT_STATUS = "payment_status", _("Payment status changed")
        PAYMENT_APPLIED = "payment_applied", _("Payment applied to bill")
        REFUND = "refund", _("Refund")
        REFUND_STATUS = "refund_status", _("Refund status changed")
        DISPUTE = "dispute", _("Dispute")
        PDF_RENDERED = "pdf_rendered", _("PDF rendered")
        IMPORTED = "imported", _("Imported")

    kind = models.CharField(_("what"), max_length=32, choices=Kind.choices)
    bill = models.ForeignKey(Bill, on_delete=models.CASCADE, null=True, blank=True, related_name="events")
    payment = models.ForeignKey(Payment, on_delete=models.CASCADE, null=True, blank=True, related_name="events")
    account = models.ForeignKey(
        CustomerAccount, on_delete=models.CASCADE, null=True, blank=True, related_name="events"
    )
    from_status = models.CharField(_("from"), max_length=16, blank=True)
    to_status = models.CharField(_("to"), max_length=16, blank=True)
    amount = models.BigIntegerField(_("amount"), null=True, blank=True)
    currency = models.CharField(_("currency"), max_length=3, blank=True)
    message = models.CharField(_("details"), max_length=500, blank=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("who"),
    )
    created_at = models.DateTimeField(_("when"), auto_now_add=True, db_index=True)

    class Meta:
        verbose_name = _("billing event")
        verbose_name_plural = _("billing history")
        ordering = ["-created_at", "-pk"]

    def __str__(self):
        return f"{self.get_kind_display()} {self.from_status}→{self.to_status}".strip()


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


# --- Saved payment methods, paperless e-bills and autopay (billing/enrollments.py holds their services) -------------


class GatewayCustomer(models.Model):
    """The gateway's customer object for one portal login: saved cards are attached to it."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="gateway_customer", verbose_name=_("user")
    )
    gateway_customer_id = models.CharField(_("gateway customer id"), max_length=255, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("gateway customer")
        verbose_name_plural = _("gateway customers")

    def __str__(self):
        return self.gateway_customer_id


class PaymentMethod(models.Model):
    """A card a payer saved to their login. Only the gateway's id and what we show (brand, last 4, expiry) are kept.

    One default per login (exactly one while any card is saved: the services keep that), at most one backup, which is
    what a failed charge on the default falls back to. Removed cards stay as history with `removed_at`."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="payment_methods", verbose_name=_("user")
    )
    gateway_customer_id = models.CharField(_("gateway customer id"), max_length=255)
    gateway_payment_method_id = models.CharField(_("gateway payment method id"), max_length=255, unique=True)
    brand = models.CharField(_("brand"), max_length=32, blank=True)
    last4 = models.CharField(_("last 4 digits"), max_length=4, blank=True)
    exp_month = models.PositiveSmallIntegerField(_("expiry month"), null=True, blank=True)
    exp_year = models.PositiveSmallIntegerField(_("expiry year"), null=True, blank=True)
    is_default = models.BooleanField(_("default"), default=False)
    is_backup = models.BooleanField(_("backup"), default=False)
    created_at = models.DateTimeField(_("saved"), auto_now_add=True)
    removed_at = models.DateTimeField(_("removed"), null=True, blank=True)
    # Set when the card came from a guest payment on this account (the receipt's autopay link), not typed in here.
    saved_from_account = models.ForeignKey(
        "CustomerAccount",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("saved from a payment on account"),
    )

    class Meta:
        verbose_name = _("saved payment method")
        verbose_name_plural = _("saved payment methods")
        ordering = ["-is_default", "-is_backup", "-created_at", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["user"], condition=Q(is_default=True), name="one_default_payment_method_per_user"
            ),
            models.UniqueConstraint(
                fields=["user"], condition=Q(is_backup=True), name="one_backup_payment_method_per_user"
            ),
            models.CheckConstraint(
                condition=~(Q(is_default=True) & Q(is_backup=True)), name="payment_method_default_is_not_backup"
            ),
            models.CheckConstraint(
                condition=Q(removed_at__isnull=True) | (Q(is_default=False) & Q(is_backup=False)),
                name="removed_payment_method_has_no_role",
            ),
        ]

    def __str__(self):
        return self.summary

    @property
    def summary(self) -> str:
        brand = (self.brand or _("Card")).title() if self.brand else str(_("Card"))
        if self.exp_month and self.exp_year:
            return _("%(brand)s ending %(last4)s, expires %(month)02d/%(year)d") % {
                "brand": brand, "last4": self.last4, "month": self.exp_month, "year": self.exp_year,
            }  # fmt: skip
        return _("%(brand)s ending %(last4)s") % {"brand": brand, "last4": self.last4}

    def is_expired(self, today) -> bool:
        if not (self.exp_month and self.exp_year):
            return False
        return (self.exp_year, self.exp_month) < (today.year, today.month)


class PaperlessEnrollment(models.Model):
    """A customer account's bills go by e-mail instead of paper. Cancelling keeps the row (consent is evidence)."""

    class Via(models.TextChoices):
        PORTAL = "portal", _("Payer portal")
        GUEST_RECEIPT = "guest_receipt", _("Receipt of a guest payment")
        INVITATION = "invitation", _("Enrolment invitation")

    account = models.ForeignKey(
        CustomerAccount, on_delete=models.CASCADE, related_name="paperless_enrollments", verbose_name=_("account")
    )
    email = models.EmailField(_("bills go to"))
    consent_text = models.TextField(_("consent shown"))
    consented_at = models.DateTimeField(_("consented"))
    ip = models.GenericIPAddressField(_("IP address"), null=True, blank=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+",
        verbose_name=_("login"),
    )  # fmt: skip
    via = models.CharField(_("enrolled through"), max_length=16, choices=Via.choices)
    cancelled_at = models.DateTimeField(_("back to paper"), null=True, blank=True)
    cancelled_ip = models.GenericIPAddressField(_("IP address of the cancellation"), null=True, blank=True)
    cancelled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+",
        verbose_name=_("cancelled by"),
    )  # fmt: skip

    class Meta:
        verbose_name = _("paperless enrolment")
        verbose_name_plural = _("paperless enrolments")
        ordering = ["-consented_at", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["account"], condition=Q(cancelled_at__isnull=True), name="one_active_paperless_per_account"
            ),
        ]

    def __str__(self):
        return f"{self.account} → {self.email}"

    @property
    def is_active(self) -> bool:
        return self.cancelled_at is None


class AutopayEnrollment(models.Model):
    """A payer's standing authorisation (mandate) to charge a saved card for each new bill of one account."""

    class Status(models.TextChoices):
        ACTIVE = "active", _("On")
        PAUSED = "paused", _("Paused")
        SUSPENDED = "suspended", _("Suspended")  # the system stopped it (e.g. the card kept failing)
        CANCELLED = "cancelled", _("Cancelled")

    TRANSITIONS = {
        Status.ACTIVE: {Status.PAUSED, Status.SUSPENDED, Status.CANCELLED},
        Status.PAUSED: {Status.ACTIVE, Status.CANCELLED},
        Status.SUSPENDED: {Status.ACTIVE, Status.CANCELLED},
        Status.CANCELLED: set(),
    }
    CURRENT_STATUSES = (Status.ACTIVE, Status.PAUSED, Status.SUSPENDED)

    class ChargeRule(models.TextChoices):
        ON_DUE_DATE = "on_due_date", _("On the due date")
        DAYS_BEFORE = "days_before", _("Some days before the due date")

    MAX_DAYS_BEFORE = 20

    account = models.ForeignKey(
        CustomerAccount, on_delete=models.CASCADE, related_name="autopay_enrollments", verbose_name=_("account")
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="autopay_enrollments",
        verbose_name=_("enrolled by"),
    )  # fmt: skip
    payment_method = models.ForeignKey(
        PaymentMethod, on_delete=models.PROTECT, related_name="autopay_enrollments", verbose_name=_("card")
    )
    charge_rule = models.CharField(_("when to charge"), max_length=16, choices=ChargeRule.choices)
    days_before = models.PositiveSmallIntegerField(_("days before the due date"), null=True, blank=True)
    max_amount = models.BigIntegerField(_("maximum per bill (minor units)"), null=True, blank=True)
    currency = models.CharField(_("currency"), max_length=3)
    status = models.CharField(_("status"), max_length=16, choices=Status.choices, default=Status.ACTIVE)
    # The mandate: what the payer agreed to, when, from where, with which card.
    consent_text = models.TextField(_("consent shown"))
    consented_at = models.DateTimeField(_("consented"))
    ip = models.GenericIPAddressField(_("IP address"), null=True, blank=True)
    payment_method_summary = models.CharField(_("card at consent"), max_length=200)
    status_changed_at = models.DateTimeField(_("status changed"), null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("autopay enrolment")
        verbose_name_plural = _("autopay enrolments")
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["account"],
                # CURRENT_STATUSES, spelled out: Meta cannot see the class attributes.
                condition=Q(status__in=["active", "paused", "suspended"]),
                name="one_current_autopay_per_account",
            ),
            models.CheckConstraint(
                condition=(Q(charge_rule="on_due_date") & Q(days_before__isnull=True))
                | (Q(charge_rule="days_before") & Q(days_before__gte=1) & Q(days_before__lte=20)),
                name="autopay_days_before_matches_rule",
            ),
            models.CheckConstraint(
                condition=Q(max_amount__isnull=True) | Q(max_amount__gt=0), name="autopay_max_amount_positive"
            ),
        ]

    def __str__(self):
        return f"{self.account} ({self.get_status_display()})"

    def can_transition_to(self, status) -> bool:
        return status in self.TRANSITIONS.get(self.status, set())

    def charge_date(self, due_date):
        if self.charge_rule == self.ChargeRule.DAYS_BEFORE:
            return due_date - timedelta(days=self.days_before or 0)
        return due_date


class EnrollmentEvent(models.Model):
    """Append-only history of saved cards, paperless and autopay changes: who, when, from where."""

    class Kind(models.TextChoices):
        CARD_ADDED = "card_added", _("Card saved")
        CARD_REMOVED = "card_removed", _("Card removed")
        CARD_ROLE = "card_role", _("Default or backup card changed")
        PAPERLESS_ON = "paperless_on", _("Paperless bills on")
        PAPERLESS_OFF = "paperless_off", _("Back to paper bills")
        AUTOPAY_ENROLLED = "autopay_enrolled", _("Autopay enrolled")
        AUTOPAY_STATUS = "autopay_status", _("Autopay status changed")

    kind = models.CharField(_("what"), max_length=32, choices=Kind.choices)
    account = models.ForeignKey(
        CustomerAccount, on_delete=models.CASCADE, null=True, blank=True, related_name="enrollment_events"
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+",
        verbose_name=_("who"),
    )  # fmt: skip
    autopay = models.ForeignKey(
        AutopayEnrollment, on_delete=models.CASCADE, null=True, blank=True, related_name="events"
    )
    from_status = models.CharField(_("from"), max_length=16, blank=True)
    to_status = models.CharField(_("to"), max_length=16, blank=True)
    message = models.CharField(_("details"), max_length=500, blank=True)
    ip = models.GenericIPAddressField(_("IP address"), null=True, blank=True)
    created_at = models.DateTimeField(_("when"), auto_now_add=True, db_index=True)

    class Meta:
        verbose_name = _("enrolment event")
        verbose_name_plural = _("enrolment history")
        ordering = ["-created_at", "-pk"]

    def __str__(self):
        return self.get_kind_display()


class GuestEnrollmentLink(models.Model):
    """A single-use, expiring link e-mailed to a guest who asked for paperless or autopay on a payment.

    Only a SHA-256 of the token is stored; the token itself exists only in the e-mail."""

    class Purpose(models.TextChoices):
        PAPERLESS = "paperless", _("Paperless bills")
        AUTOPAY = "autopay", _("Autopay with the card just used")

    request = models.ForeignKey(GuestEnrollmentRequest, on_delete=models.CASCADE, related_name="links")
    purpose = models.CharField(_("purpose"), max_length=16, choices=Purpose.choices)
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    expires_at = models.DateTimeField(_("expires"))
    used_at = models.DateTimeField(_("used"), null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # The one-time code that proves the mailbox before the autopay link saves a card (the link alone never does).
    # Only a keyed hash is kept; each new code replaces the last and resets its attempts.
    code_hash = models.CharField(max_length=64, blank=True, editable=False)
    code_expires_at = models.DateTimeField(_("code expires"), null=True, blank=True)
    code_attempts = models.PositiveSmallIntegerField(_("wrong codes"), default=0)
    codes_sent = models.PositiveSmallIntegerField(_("codes sent"), default=0)

    class Meta:
        verbose_name = _("guest enrolment link")
        verbose_name_plural = _("guest enrolment links")
        constraints = [
            models.UniqueConstraint(fields=["request", "purpose"], name="one_guest_link_per_purpose"),
        ]

    def __str__(self):
        return f"{self.get_purpose_display()} ({self.request})"


# --- Autopay charges: one row per (bill, enrolment), retries and all (billing/autopay.py holds the services) ---------


class AutopayCharge(models.Model):
    """Autopay paying one bill, as a database row: when to charge next, how many attempts were made, what the card
    said. Long waits (retries days apart) live in `next_attempt_at`, which a beat sweeper picks up; never a Celery
    ETA. The unique (bill, enrolment) pair means planning twice can never schedule a second charge."""

    class Status(models.TextChoices):
        SCHEDULED = "scheduled", _("Scheduled")
        CHARGING = "charging", _("Charging")
        SUCCEEDED = "succeeded", _("Paid")
        RETRY_SCHEDULED = "retry_scheduled", _("Retry scheduled")
        FAILED_FINAL = "failed_final", _("Failed, no more retries")
        CANCELLED = "cancelled", _("Cancelled")

    # The one place that says which status changes are allowed (billing/autopay.py `_charge_move` checks it).
    TRANSITIONS = {
        Status.SCHEDULED: {Status.CHARGING, Status.CANCELLED},
        Status.CHARGING: {Status.SUCCEEDED, Status.RETRY_SCHEDULED, Status.FAILED_FINAL, Status.CANCELLED},
        Status.RETRY_SCHEDULED: {Status.CHARGING, Status.CANCELLED},
        Status.SUCCEEDED: set(),
        Status.FAILED_FINAL: set(),
        Status.CANCELLED: set(),
    }
    WAITING_STATUSES = (Status.SCHEDULED, Status.RETRY_SCHEDULED)

    class MethodRole(models.TextChoices):
        DEFAULT = "default", _("Autopay card")
        BACKUP = "backup", _("Backup card")

    class Reason(models.TextChoices):
        NONE = "", _("—")
        ABOVE_MAX = "above_max", _("Bill above the payer's autopay maximum")
        PAID_ELSEWHERE = "paid_elsewhere", _("Bill paid another way")
        NOT_PAYABLE = "not_payable", _("Bill no longer payable")
        AUTOPAY_OFF = "autopay_off", _("Autopay paused, suspended or cancelled")
        NO_CARD = "no_card", _("No usable card")
        HARD_DECLINE = "hard_decline", _("Card declined for good")
        AUTHENTICATION = "authentication", _("The bank wants the payer to authenticate")
        RETRIES_EXHAUSTED = "retries_exhausted", _("Last retry failed")

    bill = models.ForeignKey(Bill, on_delete=models.CASCADE, related_name="autopay_charges", verbose_name=_("bill"))
    enrollment = models.ForeignKey(
        AutopayEnrollment, on_delete=models.CASCADE, related_name="charges", verbose_name=_("autopay enrolment")
    )
    account = models.ForeignKey(
        CustomerAccount, on_delete=models.CASCADE, related_name="autopay_charges", verbose_name=_("account")
    )
    status = models.CharField(_("status"), max_length=16, choices=Status.choices, default=Status.SCHEDULED)
    reason = models.CharField(_("why it stopped"), max_length=32, choices=Reason.choices, blank=True)
    charge_on = models.DateField(_("charge date under the rule"))
    next_attempt_at = models.DateTimeField(_("next attempt"), null=True, blank=True)
    attempt_number = models.PositiveSmallIntegerField(_("attempts made"), default=0)
    first_failed_at = models.DateTimeField(_("first failure"), null=True, blank=True)
    # Which cards are still worth charging off-session: a hard or authentication decline takes a card out.
    default_out = models.BooleanField(_("autopay card out"), default=False)
    backup_out = models.BooleanField(_("backup card out"), default=False)
    backup_tried = models.BooleanField(_("backup tried"), default=False)
    last_method_role = models.CharField(_("last card tried"), max_length=16, choices=MethodRole.choices, blank=True)
    last_decline_code = models.CharField(_("last decline code"), max_length=64, blank=True)
    last_decline_class = models.CharField(_("last decline class"), max_length=16, blank=True)
    amount = models.BigIntegerField(_("last amount charged"), null=True, blank=True)
    currency = models.CharField(_("currency"), max_length=3)
    payment = models.ForeignKey(
        Payment, on_delete=models.PROTECT, null=True, blank=True, related_name="+", verbose_name=_("paid by")
    )
    # A sweeper claimed the row (status charging) at claimed_at; a task started working on that claim at started_at.
    # A row still charging a timeout after its claim lost its worker and is claimed again.
    claimed_at = models.DateTimeField(_("claimed"), null=True, blank=True)
    started_at = models.DateTimeField(_("worker started"), null=True, blank=True)
    created_at = models.DateTimeField(_("planned"), auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("autopay charge")
        verbose_name_plural = _("autopay charges")
        ordering = ["-charge_on", "-pk"]
        constraints = [
            models.UniqueConstraint(fields=["bill", "enrollment"], name="one_autopay_charge_per_bill_and_enrollment"),
            models.CheckConstraint(condition=Q(amount__isnull=True) | Q(amount__gt=0), name="autopay_charge_positive"),
        ]
        indexes = [
            models.Index(fields=["status", "next_attempt_at"], name="autopay_charge_due"),
            models.Index(fields=["status", "claimed_at"], name="autopay_charge_claimed"),
        ]

    def __str__(self):
        return f"{self.bill} · {self.get_status_display()}"

    def can_transition_to(self, status) -> bool:
        return status in self.TRANSITIONS.get(self.status, set())


class AutopayChargeTry(models.Model):
    """Append-only: one off-session charge of one card for an autopay charge. Its Payment (channel autopay) carries
    the idempotency key `autopay-<charge>-<attempt>-<role>` in a unique column, and its PaymentAttempts the gateway
    calls; the unique (charge, attempt, role) triple means a redelivered task finds this row instead of charging."""

    class Outcome(models.TextChoices):
        PENDING = "pending", _("Pending")
        SUCCEEDED = "succeeded", _("Succeeded")
        DECLINED = "declined", _("Declined")
        AUTHENTICATION = "authentication", _("Needs the payer to authenticate")
        ERROR = "error", _("Gateway error")
        CANCELLED = "cancelled", _("Not charged (bill paid)")

    charge = models.ForeignKey(AutopayCharge, on_delete=models.CASCADE, related_name="tries")
    attempt_number = models.PositiveSmallIntegerField(_("attempt"))
    method_role = models.CharField(_("card"), max_length=16, choices=AutopayCharge.MethodRole.choices)
    payment_method = models.ForeignKey(PaymentMethod, on_delete=models.PROTECT, related_name="+")
    payment = models.OneToOneField(Payment, on_delete=models.PROTECT, related_name="autopay_try")
    outcome = models.CharField(_("outcome"), max_length=16, choices=Outcome.choices, default=Outcome.PENDING)
    decline_code = models.CharField(_("decline code"), max_length=64, blank=True)
    decline_class = models.CharField(_("decline class"), max_length=16, blank=True)
    created_at = models.DateTimeField(_("when"), auto_now_add=True)

    class Meta:
        verbose_name = _("autopay charge try")
        verbose_name_plural = _("autopay charge tries")
        ordering = ["charge", "attempt_number", "pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["charge", "attempt_number", "method_role"], name="one_autopay_try_per_attempt_and_card"
            ),
        ]

    def __str__(self):
        return f"#{self.attempt_number} {self.method_role} {self.outcome}"


class AutopayChargeEvent(models.Model):
    """Append-only history of an autopay charge's status changes."""

    charge = models.ForeignKey(AutopayCharge, on_delete=models.CASCADE, related_name="events")
    from_status = models.CharField(_("from"), max_length=16, blank=True)
    to_status = models.CharField(_("to"), max_length=16)
    message = models.CharField(_("details"), max_length=500, blank=True)
    created_at = models.DateTimeField(_("when"), auto_now_add=True)

    class Meta:
        verbose_name = _("autopay charge event")
        verbose_name_plural = _("autopay charge history")
        ordering = ["created_at", "pk"]

    def __str__(self):
        return f"{self.from_status or '—'} → {self.to_status}"
