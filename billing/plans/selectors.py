"""Plan reads: a biller's rules, whether an account may have a plan now (and the schedules it may choose), what a plan
has been paid, and what is due next. What a plan has been paid is read from its bills, never counted by hand: money
that reached them any way counts."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from django.db.models import F, Sum
from django.utils.translation import gettext as _

from ..models import Bill, CustomerAccount, PaymentPlan, PlanBill, PlanInstalment, PlanRules
from ..money import format_money
from .schedule import Schedule, schedule_options

Status = PaymentPlan.Status


def plan_rules_for(biller) -> PlanRules:
    """The biller's rules, or the defaults (plans off) when staff never saved any."""
    try:
        return biller.plan_rules
    except PlanRules.DoesNotExist:
        return PlanRules(biller=biller)


def plan_bills_owed(*, account: CustomerAccount) -> list[Bill]:
    """The bills a new plan would cover: every issued bill still owed, oldest due first."""
    bills = Bill.objects.filter(
        account=account, status__in=Bill.PAYABLE_STATUSES, amount_paid__lt=F("total"), issue_date__isnull=False
    )
    return sorted(bills, key=lambda b: (b.due_date, b.pk))


def plans_open(*, account: CustomerAccount):
    return PaymentPlan.objects.filter(account=account, status__in=PaymentPlan.OPEN_STATUSES)


@dataclass
class Eligibility:
    eligible: bool
    reason: str = ""
    total: int = 0
    currency: str = ""
    bills: list[Bill] = field(default_factory=list)
    options: list[Schedule] = field(default_factory=list)


def plan_eligibility(*, account: CustomerAccount, today: dt.date, by_staff: bool = False) -> Eligibility:
    """May this account's balance be put on a plan now, under the biller's rules, and with which schedules? Staff
    may arrange a plan when payers may not set one up themselves; the other rules bind both."""
    biller = account.biller
    rules = plan_rules_for(biller)
    if not rules.enabled:
        return Eligibility(False, _("Payment plans are not offered for this account."))
    if not (rules.self_service or by_staff):
        return Eligibility(False, _("To arrange a payment plan, please contact us."))
    active = PaymentPlan.objects.filter(account=account, status=Status.ACTIVE).count()
    if active >= rules.max_active_plans:
        return Eligibility(False, _("This account already has a payment plan."))
    if plans_open(account=account).filter(status=Status.PROPOSED).exists():
        return Eligibility(False, _("A payment plan for this account is waiting to be accepted."))
    bills = plan_bills_owed(account=account)
    total = sum(b.balance_due for b in bills)
    money = lambda minor: format_money(minor, biller.currency)  # noqa: E731
    if total <= 0:
        return Eligibility(False, _("There is nothing to pay."))
    if total < rules.min_balance:
        return Eligibility(False, _("Payment plans are for balances of %(least)s or more.") % {
            "least": money(rules.min_balance)})  # fmt: skip
    if rules.max_balance is not None and total > rules.max_balance:
        return Eligibility(False, _("Payment plans are for balances up to %(most)s.") % {
            "most": money(rules.max_balance)})  # fmt: skip
    overdue_days = (today - bills[0].due_date).days
    if overdue_days < rules.min_days_overdue:
        return Eligibility(False, _("Payment plans are offered once a bill is %(days)d days overdue.") % {
            "days": rules.min_days_overdue})  # fmt: skip
    options = schedule_options(rules=rules, total=total, currency=biller.currency, start=today)
    if not options:
        return Eligibility(False, _("This balance is too small to split into instalments."))
    return Eligibility(True, "", total, biller.currency, bills, options)


def plan_paid(plan: PaymentPlan) -> int:
    """What the plan's bills owe less than when the plan was made (a refund that reopens a bill lowers it again)."""
    paid = 0
    for row in plan.plan_bills.select_related("bill"):
        paid += max(0, row.balance_at_start - row.bill.balance_due)
    return min(paid, plan.total)


def plan_instalments(plan: PaymentPlan) -> list[PlanInstalment]:
    return list(plan.instalments.exclude(status=PlanInstalment.Status.CANCELLED).order_by("number"))


def instalment_owed(*, plan: PaymentPlan, instalment: PlanInstalment, paid: int | None = None) -> int:
    """What must still be paid for this instalment to be paid: the scheduled amounts up to and including it, less
    everything the plan has been paid. An extra payment earlier lowers it; never below zero."""
    paid = plan_paid(plan) if paid is None else paid
    through = (
        plan.instalments.exclude(status=PlanInstalment.Status.CANCELLED)
        .filter(number__lte=instalment.number)
        .aggregate(s=Sum("amount"))["s"]
        or 0
    )
    return max(0, min(through - paid, instalment.amount))


@dataclass
class PlanView:
    """A plan as a payer or the e-bill reads it."""

    plan: PaymentPlan
    paid: int
    remaining: int
    instalments: list[PlanInstalment]
    next_instalment: PlanInstalment | None
    next_owed: int

    def money(self, minor: int) -> str:
        return format_money(minor, self.plan.currency)

    @property
    def paid_display(self) -> str:
        return self.money(self.paid)

    @property
    def remaining_display(self) -> str:
        return self.money(self.remaining)

    @property
    def total_display(self) -> str:
        return self.money(self.plan.total)

    @property
    def next_display(self) -> str:
        return self.money(self.next_owed)


def plan_view(plan: PaymentPlan) -> PlanView:
    paid = plan_paid(plan)
    instalments = plan_instalments(plan)
    upcoming = [i for i in instalments if i.status != PlanInstalment.Status.PAID]
    nxt = upcoming[0] if upcoming else None
    owed = instalment_owed(plan=plan, instalment=nxt, paid=paid) if nxt else 0
    return PlanView(plan, paid, plan.total - paid, instalments, nxt, owed)


def plan_current(*, account_id: int) -> PaymentPlan | None:
    """The account's plan a payer should see: the active one, else one waiting for their agreement."""
    plans = PaymentPlan.objects.filter(account_id=account_id, status__in=PaymentPlan.OPEN_STATUSES)
    return plans.order_by("status", "-pk").first()  # "active" sorts before "proposed"


def plans_by_account(*, account_ids: list[int]) -> dict[int, PlanView]:
    """The current plan of each account, for the dashboard."""
    plans = PaymentPlan.objects.filter(account_id__in=account_ids, status__in=PaymentPlan.OPEN_STATUSES).order_by(
        "status", "-pk"
    )
    found: dict[int, PlanView] = {}
    for plan in plans:
        if plan.account_id not in found:
            found[plan.account_id] = plan_view(plan)
    return found


def bills_in_good_standing_plans(*, bill_ids) -> set[int]:
    """Of these bills, those covered by an active plan (a plan in good standing: not broken, not cancelled). Their
    past-due reminders wait while the plan runs."""
    return set(
        PlanBill.objects.filter(bill_id__in=list(bill_ids), plan__status=Status.ACTIVE).values_list("bill_id", flat=True)
    )
