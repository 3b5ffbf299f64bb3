"""Autopay: the payer's standing authorisation, and its charges as rows, one per (bill, enrolment), retries and
all (billing/autopay/ holds enrolment, planning and charging)."""

from datetime import timedelta

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from .base import TransitionsMixin


class AutopayEnrollment(TransitionsMixin, models.Model):
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
        "billing.CustomerAccount",
        on_delete=models.CASCADE,
        related_name="autopay_enrollments",
        verbose_name=_("account"),
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="autopay_enrollments",
        verbose_name=_("enrolled by"),
    )  # fmt: skip
    payment_method = models.ForeignKey(
        "billing.PaymentMethod", on_delete=models.PROTECT, related_name="autopay_enrollments", verbose_name=_("card")
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

    def charge_date(self, due_date):
        if self.charge_rule == self.ChargeRule.DAYS_BEFORE:
            return due_date - timedelta(days=self.days_before or 0)
        return due_date


class AutopayCharge(TransitionsMixin, models.Model):
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

    # The one place that says which status changes are allowed (billing/autopay/charges.py `charge_status_move` checks it).
    TRANSITIONS = {
        Status.SCHEDULED: {Status.CHARGING, Status.CANCELLED},
        Status.CHARGING: {Status.SUCCEEDED, Status.RETRY_SCHEDULED, Status.FAILED_FINAL, Status.CANCELLED},
        Status.RETRY_SCHEDULED: {Status.CHARGING, Status.CANCELLED},
        # A bank debit counts as paid while it processes; the bank may still return it days later.
        Status.SUCCEEDED: {Status.RETRY_SCHEDULED, Status.FAILED_FINAL},
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
        PLAN_ENDED = "plan_ended", _("Payment plan no longer running")

    bill = models.ForeignKey(
        "billing.Bill", on_delete=models.CASCADE, related_name="autopay_charges", verbose_name=_("bill")
    )
    # What authorises the charge: an autopay enrolment (the bill's balance), or a payment plan's instalment (what the
    # instalment still owes; `bill` is then the plan's oldest bill, for the notices' pay link).
    enrollment = models.ForeignKey(
        AutopayEnrollment, on_delete=models.CASCADE, related_name="charges", verbose_name=_("autopay enrolment"),
        null=True, blank=True,
    )  # fmt: skip
    instalment = models.OneToOneField(
        "billing.PlanInstalment", on_delete=models.CASCADE, related_name="autopay_charge", null=True, blank=True,
        verbose_name=_("payment plan instalment"),
    )  # fmt: skip
    account = models.ForeignKey(
        "billing.CustomerAccount", on_delete=models.CASCADE, related_name="autopay_charges", verbose_name=_("account")
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
        "billing.Payment", on_delete=models.PROTECT, null=True, blank=True, related_name="+", verbose_name=_("paid by")
    )
    # A sweeper claimed the row (status charging) at claimed_at; a task started working on that claim at started_at.
    # A row still charging a timeout after its claim lost its worker and is claimed again.
    claimed_at = models.DateTimeField(_("claimed"), null=True, blank=True)
    # A bank debit's pre-notification (amount, date, mandate reference) was raised: no debit before it plus the
    # biller's debit_notice_days.
    debit_notice_at = models.DateTimeField(_("debit pre-notification raised"), null=True, blank=True)
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
            models.CheckConstraint(
                condition=Q(enrollment__isnull=False, instalment__isnull=True)
                | Q(enrollment__isnull=True, instalment__isnull=False),
                name="autopay_charge_enrolment_or_instalment",
            ),
        ]
        indexes = [
            models.Index(fields=["status", "next_attempt_at"], name="autopay_charge_due"),
            models.Index(fields=["status", "claimed_at"], name="autopay_charge_claimed"),
        ]

    def __str__(self):
        return f"{self.bill} · {self.get_status_display()}"


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
    payment_method = models.ForeignKey("billing.PaymentMethod", on_delete=models.PROTECT, related_name="+")
    payment = models.OneToOneField("billing.Payment", on_delete=models.PROTECT, related_name="autopay_try")
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
