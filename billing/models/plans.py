"""Payment plans: a balance paid in instalments, by the payer's choice or staff's arrangement (billing/plans/ holds the
schedule arithmetic, eligibility and the services). A plan covers the bills that were owed when it was made; what it
has been paid is read from those bills, so money arriving any way (guest pay, a bank transfer, the counter, an
instalment charge) counts toward the next instalments."""

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import F, Q
from django.utils.translation import gettext_lazy as _

from .base import TransitionsMixin


class Frequency(models.TextChoices):
    WEEKLY = "weekly", _("Weekly")
    BIWEEKLY = "biweekly", _("Every two weeks")
    MONTHLY = "monthly", _("Monthly")


class RemainderOn(models.TextChoices):
    FIRST = "first", _("First instalment")
    LAST = "last", _("Last instalment")


class PlanRules(models.Model):
    """A biller's rules for payment plans. Plans are off until staff turn them on."""

    class DownPayment(models.TextChoices):
        NONE = "none", _("No down payment")
        PERCENT = "percent", _("A percentage of the balance")
        FIXED = "fixed", _("A fixed amount")

    biller = models.OneToOneField(
        "billing.Biller", on_delete=models.CASCADE, related_name="plan_rules", verbose_name=_("biller")
    )
    enabled = models.BooleanField(_("offer payment plans"), default=False)
    self_service = models.BooleanField(
        _("payers may set up a plan themselves"), default=True, help_text=_("Off: only staff arrange plans.")
    )
    min_balance = models.BigIntegerField(_("smallest balance (minor units)"), default=10000)
    max_balance = models.BigIntegerField(
        _("largest balance (minor units)"), null=True, blank=True, help_text=_("Leave empty for no limit.")
    )
    min_days_overdue = models.PositiveIntegerField(
        _("oldest bill overdue at least (days)"), default=0, help_text=_("0: a balance qualifies before it is due.")
    )
    min_instalments = models.PositiveSmallIntegerField(
        _("fewest instalments"), default=2, validators=[MinValueValidator(2), MaxValueValidator(24)]
    )
    max_instalments = models.PositiveSmallIntegerField(
        _("most instalments"), default=6, validators=[MinValueValidator(2), MaxValueValidator(24)]
    )
    allow_weekly = models.BooleanField(_("weekly"), default=False)
    allow_biweekly = models.BooleanField(_("every two weeks"), default=True)
    allow_monthly = models.BooleanField(_("monthly"), default=True)
    min_instalment = models.BigIntegerField(_("smallest instalment (minor units)"), default=1000)
    down_payment = models.CharField(
        _("down payment"), max_length=8, choices=DownPayment.choices, default=DownPayment.NONE
    )
    down_payment_percent = models.PositiveSmallIntegerField(
        _("down payment, percent"), default=0, validators=[MaxValueValidator(90)]
    )
    down_payment_fixed = models.BigIntegerField(_("down payment, fixed (minor units)"), default=0)
    remainder_on = models.CharField(
        _("rounding remainder goes on"), max_length=8, choices=RemainderOn.choices, default=RemainderOn.LAST
    )
    max_active_plans = models.PositiveSmallIntegerField(
        _("active plans per account"), default=1, validators=[MinValueValidator(1)]
    )
    grace_days = models.PositiveSmallIntegerField(
        _("grace days before a missed instalment breaks the plan"), default=5
    )

    class Meta:
        verbose_name = _("payment plan rules")
        verbose_name_plural = _("payment plan rules")
        constraints = [
            models.CheckConstraint(condition=Q(min_balance__gte=0), name="plan_rules_min_balance_nonnegative"),
            models.CheckConstraint(
                condition=Q(max_balance__isnull=True) | Q(max_balance__gte=F("min_balance")),
                name="plan_rules_max_at_least_min",
            ),
            models.CheckConstraint(
                condition=Q(min_instalments__gte=2) & Q(max_instalments__gte=F("min_instalments")),
                name="plan_rules_instalment_range",
            ),
            models.CheckConstraint(condition=Q(min_instalment__gte=1), name="plan_rules_min_instalment_positive"),
            models.CheckConstraint(condition=Q(down_payment_fixed__gte=0), name="plan_rules_down_fixed_nonnegative"),
        ]

    def __str__(self):
        return f"{self.biller} plan rules"

    @property
    def frequencies(self) -> list[str]:
        allowed = {Frequency.WEEKLY: self.allow_weekly, Frequency.BIWEEKLY: self.allow_biweekly,
                   Frequency.MONTHLY: self.allow_monthly}  # fmt: skip
        return [f for f, on in allowed.items() if on]


class PaymentPlan(TransitionsMixin, models.Model):
    """A balance paid in instalments. The agreement is kept like a mandate: the text, when, from where, by whom, and the
    schedule as it was shown."""

    class Status(models.TextChoices):
        PROPOSED = "proposed", _("Proposed")
        ACTIVE = "active", _("Active")
        COMPLETED = "completed", _("Completed")
        BROKEN = "broken", _("Broken")
        CANCELLED = "cancelled", _("Cancelled")

    TRANSITIONS = {
        Status.PROPOSED: {Status.ACTIVE, Status.CANCELLED},
        Status.ACTIVE: {Status.COMPLETED, Status.BROKEN, Status.CANCELLED},
        Status.COMPLETED: set(),
        Status.BROKEN: set(),
        Status.CANCELLED: set(),
    }
    OPEN_STATUSES = (Status.PROPOSED, Status.ACTIVE)

    class Origin(models.TextChoices):
        PAYER = "payer", _("Set up by the payer")
        STAFF = "staff", _("Arranged by staff")

    biller = models.ForeignKey("billing.Biller", on_delete=models.PROTECT, related_name="payment_plans")
    account = models.ForeignKey(
        "billing.CustomerAccount", on_delete=models.PROTECT, related_name="payment_plans", verbose_name=_("account")
    )
    status = models.CharField(_("status"), max_length=16, choices=Status.choices, default=Status.PROPOSED)
    origin = models.CharField(_("origin"), max_length=8, choices=Origin.choices)
    currency = models.CharField(_("currency"), max_length=3)
    total = models.BigIntegerField(_("balance covered (minor units)"))
    frequency = models.CharField(_("frequency"), max_length=16, choices=Frequency.choices)
    instalment_count = models.PositiveSmallIntegerField(_("instalments after the down payment"))
    down_payment = models.BigIntegerField(_("down payment (minor units)"), default=0)
    remainder_on = models.CharField(_("rounding remainder on"), max_length=8, choices=RemainderOn.choices)
    grace_days = models.PositiveSmallIntegerField(_("grace days"))
    outside_rules = models.BooleanField(_("outside the biller's rules"), default=False)
    # How the instalments after the down payment are paid: a saved method charged automatically, or by hand.
    payment_method = models.ForeignKey(
        "billing.PaymentMethod", on_delete=models.PROTECT, null=True, blank=True, related_name="payment_plans",
        verbose_name=_("method for the instalments"),
    )  # fmt: skip
    pays_by_hand = models.BooleanField(_("pays each instalment by hand"), default=False)
    # The agreement.
    agreed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="payment_plans",
        verbose_name=_("agreed by"),
    )  # fmt: skip
    agreement_text = models.TextField(_("agreement shown"), blank=True)
    agreed_at = models.DateTimeField(_("agreed"), null=True, blank=True)
    agreed_ip = models.GenericIPAddressField(_("IP address"), null=True, blank=True)
    agreed_schedule = models.JSONField(_("schedule agreed"), default=list, blank=True)
    # Staff's proposal, accepted by a signed, expiring, single-use link (billing/plans/services.py plan_accept_url).
    proposed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+",
        verbose_name=_("proposed by"),
    )  # fmt: skip
    accept_expires_at = models.DateTimeField(_("link expires"), null=True, blank=True)
    accept_used_at = models.DateTimeField(_("link used"), null=True, blank=True)
    status_changed_at = models.DateTimeField(_("status changed"), null=True, blank=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("payment plan")
        verbose_name_plural = _("payment plans")
        ordering = ["-created_at", "-pk"]
        permissions = [("arrange_payment_plan", _("Can arrange, cancel or reschedule a payment plan"))]
        constraints = [
            models.CheckConstraint(condition=Q(total__gt=0), name="plan_total_positive"),
            models.CheckConstraint(
                condition=Q(down_payment__gte=0) & Q(down_payment__lt=F("total")), name="plan_down_payment_in_range"
            ),
            models.CheckConstraint(condition=Q(instalment_count__gte=1), name="plan_has_instalments"),
            models.CheckConstraint(
                condition=~(Q(pays_by_hand=True) & Q(payment_method__isnull=False)), name="plan_method_or_by_hand"
            ),
        ]
        indexes = [models.Index(fields=["account", "status"])]

    def __str__(self):
        return f"{self.account} · {self.get_status_display()}"

    @property
    def user_id(self):
        """The payer whose saved cards back the plan's method up (read by billing.autopay.selectors.autopay_cards,
        which takes a plan where it takes an enrolment)."""
        return self.agreed_by_id


class PlanBill(models.Model):
    """A bill covered by a plan, with what it still owed when the plan was made. What the plan has been paid is what
    these bills owe less than that now."""

    plan = models.ForeignKey(PaymentPlan, on_delete=models.CASCADE, related_name="plan_bills")
    bill = models.ForeignKey("billing.Bill", on_delete=models.PROTECT, related_name="plan_bills")
    balance_at_start = models.BigIntegerField(_("owed when the plan was made"))

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["plan", "bill"], name="one_plan_bill_per_plan_and_bill"),
            models.CheckConstraint(condition=Q(balance_at_start__gt=0), name="plan_bill_balance_positive"),
        ]


class PlanInstalment(TransitionsMixin, models.Model):
    """One dated part of a plan. Number 0 is the down payment (when there is one). An instalment is paid when the plan
    has been paid at least the scheduled amounts up to and including it, however that money arrived."""

    class Status(models.TextChoices):
        SCHEDULED = "scheduled", _("Scheduled")
        PAID = "paid", _("Paid")
        MISSED = "missed", _("Missed")
        CANCELLED = "cancelled", _("Cancelled")

    TRANSITIONS = {
        Status.SCHEDULED: {Status.PAID, Status.MISSED, Status.CANCELLED},
        Status.MISSED: {Status.PAID, Status.CANCELLED},
        Status.PAID: {Status.SCHEDULED},  # a refund or a reversed payment takes the money back off the bills
        Status.CANCELLED: set(),
    }

    plan = models.ForeignKey(PaymentPlan, on_delete=models.CASCADE, related_name="instalments")
    number = models.PositiveSmallIntegerField(_("number"))
    due_date = models.DateField(_("due"))
    amount = models.BigIntegerField(_("amount (minor units)"))
    status = models.CharField(_("status"), max_length=16, choices=Status.choices, default=Status.SCHEDULED)
    paid_at = models.DateTimeField(_("paid"), null=True, blank=True)

    class Meta:
        verbose_name = _("instalment")
        verbose_name_plural = _("instalments")
        ordering = ["plan", "number"]
        constraints = [
            models.UniqueConstraint(fields=["plan", "number"], name="one_instalment_per_plan_and_number"),
            models.CheckConstraint(condition=Q(amount__gt=0), name="instalment_amount_positive"),
        ]
        indexes = [models.Index(fields=["status", "due_date"], name="instalment_due")]

    def __str__(self):
        return f"#{self.number} {self.due_date} {self.amount}"


class PaymentPlanEvent(models.Model):
    """Append-only history of a plan: status changes, payments counted, reminders, reschedules."""

    plan = models.ForeignKey(PaymentPlan, on_delete=models.CASCADE, related_name="events")
    from_status = models.CharField(_("from"), max_length=16, blank=True)
    to_status = models.CharField(_("to"), max_length=16, blank=True)
    message = models.CharField(_("details"), max_length=500, blank=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+",
        verbose_name=_("who"),
    )  # fmt: skip
    created_at = models.DateTimeField(_("when"), auto_now_add=True)

    class Meta:
        verbose_name = _("payment plan event")
        verbose_name_plural = _("payment plan history")
        ordering = ["created_at", "pk"]

    def __str__(self):
        return f"{self.from_status or '—'} → {self.to_status or '—'}: {self.message}"
