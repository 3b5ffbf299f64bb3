"""Plan reads: a biller's rules, whether an account may have a plan now (and the schedules it may choose), what a plan
has been paid, and what is due next. What a plan has been paid is read from its bills, never counted by hand: money
that reached them any way counts."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from django.db.models import F
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


def _paid_of(plan: PaymentPlan, plan_bills) -> int:
    paid = sum(max(0, row.balance_at_start - row.bill.balance_due) for row in plan_bills)
    return min(paid, plan.total)


def plan_paid(plan: PaymentPlan) -> int:
    """What the plan's bills owe less than when the plan was made (a refund that reopens a bill lowers it again)."""
    return _paid_of(plan, plan.plan_bills.select_related("bill"))


def plan_instalments(plan: PaymentPlan) -> list[PlanInstalment]:
    return list(plan.instalments.exclude(status=PlanInstalment.Status.CANCELLED).order_by("number"))


def _owed_of(instalment: PlanInstalment, live: list[PlanInstalment], paid: int) -> int:
    through = sum(i.amount for i in live if i.number <= instalment.number)
    return max(0, min(through - paid, instalment.amount))


def instalment_owed(*, plan: PaymentPlan, instalment: PlanInstalment, paid: int | None = None) -> int:
    """What must still be paid for this instalment to be paid: the scheduled amounts up to and including it, less
    everything the plan has been paid. An extra payment earlier lowers it; never below zero."""
    paid = plan_paid(plan) if paid is None else paid
    return _owed_of(instalment, plan_instalments(plan), paid)


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


def _view_of(plan: PaymentPlan, plan_bills, instalments) -> PlanView:
    paid = _paid_of(plan, plan_bills)
    live = sorted((i for i in instalments if i.status != PlanInstalment.Status.CANCELLED), key=lambda i: i.number)
    upcoming = [i for i in live if i.status != PlanInstalment.Status.PAID]
    nxt = upcoming[0] if upcoming else None
    owed = _owed_of(nxt, live, paid) if nxt else 0
    return PlanView(plan, paid, plan.total - paid, live, nxt, owed)


def plan_view(plan: PaymentPlan) -> PlanView:
    return _view_of(plan, plan.plan_bills.select_related("bill"), plan.instalments.all())


def plan_current(*, account_id: int) -> PaymentPlan | None:
    """The account's plan a payer should see: the active one, else one waiting for their agreement."""
    plans = PaymentPlan.objects.filter(account_id=account_id, status__in=PaymentPlan.OPEN_STATUSES)
    return plans.select_related("payment_method").order_by("status", "-pk").first()  # "active" before "proposed"


def plans_by_account(*, account_ids: list[int]) -> dict[int, PlanView]:
    """The current plan of each account, for the dashboard: three queries however many accounts."""
    plans = list(
        PaymentPlan.objects.filter(account_id__in=account_ids, status__in=PaymentPlan.OPEN_STATUSES)
        .select_related("payment_method")
        .order_by("status", "-pk")
    )
    current: dict[int, PaymentPlan] = {}
    for plan in plans:
        current.setdefault(plan.account_id, plan)
    ids = [p.pk for p in current.values()]
    bills_of: dict[int, list] = {pk: [] for pk in ids}
    for row in PlanBill.objects.filter(plan_id__in=ids).select_related("bill"):
        bills_of[row.plan_id].append(row)
    instalments_of: dict[int, list] = {pk: [] for pk in ids}
    for instalment in PlanInstalment.objects.filter(plan_id__in=ids):
        instalments_of[instalment.plan_id].append(instalment)
    return {
        account_id: _view_of(plan, bills_of[plan.pk], instalments_of[plan.pk]) for account_id, plan in current.items()
    }


def plans_offered(*, billers) -> set[int]:
    """Of these billers (with their rules loaded, as `biller_cached` gives them), those whose payers may set up a
    plan themselves. No query when the rules came with the billers."""
    return {biller.pk for biller in billers if (rules := plan_rules_for(biller)).enabled and rules.self_service}


def bills_in_good_standing_plans(*, bill_ids) -> set[int]:
    """Of these bills, those covered by an active plan (a plan in good standing: not broken, not cancelled). Their
    past-due reminders wait while the plan runs."""
    return set(
        PlanBill.objects.filter(bill_id__in=list(bill_ids), plan__status=Status.ACTIVE).values_list("bill_id", flat=True)
    )


# Reminders for instalments paid by hand: days from the instalment's date (before, and on the day).
INSTALMENT_REMINDER_STEPS = (-3, 0)


def instalments_to_remind(*, today_of, plans=None):
    """(plan, instalment, step) for every unpaid instalment of an active plan paid by hand whose reminder day has
    come: the latest step of INSTALMENT_REMINDER_STEPS on or before today, up to the instalment's date. `today_of`
    gives a biller's today."""
    plans = plans if plans is not None else (
        PaymentPlan.objects.filter(status=Status.ACTIVE, pays_by_hand=True).select_related("account__biller")
    )  # fmt: skip
    for plan in plans.order_by("pk"):
        today = today_of(plan.account.biller)
        paid = plan_paid(plan)
        for instalment in plan_instalments(plan):
            if instalment.status == PlanInstalment.Status.PAID:
                continue
            days = (today - instalment.due_date).days
            steps = [s for s in INSTALMENT_REMINDER_STEPS if s <= days <= 0]
            if steps and instalment_owed(plan=plan, instalment=instalment, paid=paid) > 0:
                yield plan, instalment, steps[-1]
            break  # only the next unpaid instalment is reminded


def plan_notice_stale(notification) -> str:
    """Why a plan notice planned earlier must not go out now, or "" (checked at send time)."""
    plan = notification.plan
    if notification.kind == "plan_proposed" and (plan.status != Status.PROPOSED or plan.agreed_at):
        return f"the plan is {plan.status}"
    if notification.kind == "plan_instalment_due":
        if plan.status != Status.ACTIVE:
            return f"the plan is {plan.status}"
        if plan_view(plan).next_owed <= 0:
            return "the instalment is paid"
    return ""


def instalment_charge_amount(instalment: PlanInstalment) -> tuple[int, str]:
    """What an automatic charge of this instalment takes now, or 0 and why not ("plan_ended", "paid_elsewhere"):
    the instalment's cumulative amount less what the plan was paid (a payment made another way lowers it), never more
    than the plan still owes."""
    plan = instalment.plan
    if plan.status != Status.ACTIVE or instalment.status == PlanInstalment.Status.CANCELLED:
        return 0, "plan_ended"
    paid = plan_paid(plan)
    owed = min(instalment_owed(plan=plan, instalment=instalment, paid=paid), plan.total - paid)
    return (owed, "") if owed > 0 else (0, "paid_elsewhere")


def instalments_due_for_charging(*, today_of):
    """(plan, instalment) for every instalment of an active plan paid by a saved method whose date has come, that no
    autopay row charges yet (the OneToOne on AutopayCharge.instalment makes it once)."""
    plans = PaymentPlan.objects.filter(status=Status.ACTIVE, pays_by_hand=False, payment_method__isnull=False)
    for plan in plans.select_related("account__biller").order_by("pk"):
        today = today_of(plan.account.biller)
        due = plan.instalments.filter(
            number__gte=1, due_date__lte=today, autopay_charge__isnull=True,
            status__in=[PlanInstalment.Status.SCHEDULED, PlanInstalment.Status.MISSED],
        ).order_by("number")  # fmt: skip
        for instalment in due:
            yield plan, instalment
