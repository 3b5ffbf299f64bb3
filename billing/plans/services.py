"""Plan services: make a plan (the payer within the rules, staff possibly outside them), record the payer's agreement,
follow what its bills were paid, cancel and reschedule it. Every status change goes through `PaymentPlan.TRANSITIONS`
(`plan_status_move`) and writes a `PaymentPlanEvent`.

A plan never holds money of its own. It covers the bills owed when it was made (`PlanBill`, with what each owed); what it
has been paid is what those bills owe less now. So a guest payment, a bank transfer, staff's offline payment or an
instalment charge all count the same way, and `plan_progress` (run on `bill_paid`, under the bill locks, and by the
sweeper) marks instalments paid, activates a plan once its down payment is in, and completes it when nothing is left.
Money goes to the account's bills oldest due first (`payment_apply`), so it reaches the plan's bills before any bill
issued after the plan; those newer bills are billed as usual, outside it.
"""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.core import signing
from django.db import transaction
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _

from ..access import payer_access
from ..clock import biller_today
from ..errors import ApplicationError
from ..events import status_move
from ..methods.services import SAVED_CARD_NEEDS_LOOKUP, payment_method_may_pay, payment_method_owned
from ..models import CustomerAccount, PaymentMethod, PaymentPlan, PaymentPlanEvent, PlanBill, PlanInstalment
from ..money import format_money
from ..signals import plan_notice_wanted
from .schedule import Schedule, down_payment_for, schedule_build
from .selectors import plan_bills_owed, plan_eligibility, plan_paid, plan_rules_for, plan_view

Status = PaymentPlan.Status
IStatus = PlanInstalment.Status

STAFF_LINK_DAYS = 14


def plan_event(plan: PaymentPlan, message: str, *, from_status: str = "", to_status: str = "", actor=None):
    return PaymentPlanEvent.objects.create(
        plan=plan, from_status=from_status, to_status=to_status, message=message[:500],
        actor=actor if getattr(actor, "is_authenticated", False) else None,
    )  # fmt: skip


def plan_status_move(plan: PaymentPlan, to: str, *, message: str = "", actor=None) -> str:
    """Move a locked plan through its transition map, with an event. An illegal move raises ApplicationError."""
    return status_move(
        plan, to,
        error=lambda: _("This payment plan cannot go from %(from)s to %(to)s.") % {"from": plan.status, "to": to},
        record=lambda from_status: plan_event(plan, message, from_status=from_status, to_status=to, actor=actor),
        changes={"status_changed_at": timezone.now()},
    )  # fmt: skip


def instalment_status_move(instalment: PlanInstalment, to: str, **changes) -> None:
    status_move(
        instalment, to,
        error=lambda: f"An instalment cannot go from {instalment.status} to {to}.",
        changes=changes,
    )  # fmt: skip


def _plan_lock(plan_id: int) -> PaymentPlan:
    return PaymentPlan.objects.select_for_update().select_related("account__biller").get(pk=plan_id)


# --------------------------------------------------------------------------------------------------------------------
# Making a plan


def schedule_for(*, account: CustomerAccount, key: str, total: int, start: dt.date, outside_rules: bool = False,
                 down_payment: int | None = None) -> Schedule:  # fmt: skip
    """The schedule a form named by its key ("monthly-3"), rebuilt on the server from the balance."""
    frequency, _sep, count = (key or "").partition("-")
    if not count.isdigit():
        raise ApplicationError(_("Choose a schedule."))
    rules = plan_rules_for(account.biller)
    if not outside_rules:
        eligibility = plan_eligibility(account=account, today=start, by_staff=True)
        match = next((o for o in eligibility.options if o.key == key), None)
        if match is None:
            raise ApplicationError(_("That schedule is not available. Please choose one of those shown."))
        return match
    down = down_payment_for(rules=rules, total=total) if down_payment is None else down_payment
    return schedule_build(total=total, currency=account.biller.currency, count=int(count), frequency=frequency,
                          start=start, down_payment=down, remainder_on=rules.remainder_on)  # fmt: skip


@transaction.atomic
def plan_create(
    *, account: CustomerAccount, schedule_key: str, origin: str, actor=None, outside_rules: bool = False,
    down_payment: int | None = None, start: dt.date | None = None,
) -> PaymentPlan:  # fmt: skip
    """A proposed plan for everything the account owes now: its bills, and the schedule named by `schedule_key`.
    Payers are held to the biller's rules; staff may pass `outside_rules` (and their own down payment)."""
    account = CustomerAccount.objects.select_for_update().select_related("biller").get(pk=account.pk)
    biller = account.biller
    today = biller_today(biller)
    start = start or today
    rules = plan_rules_for(biller)
    if outside_rules:
        if PaymentPlan.objects.filter(account=account, status__in=PaymentPlan.OPEN_STATUSES).exists():
            raise ApplicationError(_("This account already has a payment plan."))
        bills = plan_bills_owed(account=account)
        total = sum(b.balance_due for b in bills)
        if total <= 0:
            raise ApplicationError(_("There is nothing to pay."))
    else:
        eligibility = plan_eligibility(account=account, today=today, by_staff=origin == PaymentPlan.Origin.STAFF)
        if not eligibility.eligible:
            raise ApplicationError(eligibility.reason)
        bills, total = eligibility.bills, eligibility.total
    schedule = schedule_for(account=account, key=schedule_key, total=total, start=start, outside_rules=outside_rules,
                            down_payment=down_payment)  # fmt: skip
    plan = PaymentPlan.objects.create(
        biller=biller, account=account, origin=origin, currency=biller.currency, total=total,
        frequency=schedule.frequency, instalment_count=schedule.count, down_payment=schedule.down_payment,
        remainder_on=schedule.remainder_on, grace_days=rules.grace_days, outside_rules=outside_rules,
        proposed_by=actor if origin == PaymentPlan.Origin.STAFF else None,
    )  # fmt: skip
    PlanBill.objects.bulk_create([PlanBill(plan=plan, bill=b, balance_at_start=b.balance_due) for b in bills])
    PlanInstalment.objects.bulk_create(
        [PlanInstalment(plan=plan, number=i.number, due_date=i.due_date, amount=i.amount) for i in schedule.instalments]
    )
    plan_event(plan, f"proposed: {len(bills)} bill(s), {schedule.key}, {format_money(total, plan.currency)}"
               + (" (outside the rules)" if outside_rules else ""), to_status=plan.status, actor=actor)  # fmt: skip
    return plan


def plan_terms_text(*, account: CustomerAccount, total: int, grace_days: int | None = None) -> str:
    """The terms the payer agrees to, as the page shows them above the schedules."""
    if grace_days is None:
        grace_days = plan_rules_for(account.biller).grace_days
    return _(
        "I agree to pay %(total)s owed on account %(number)s to %(biller)s in the instalments of the schedule I "
        "chose. There is no interest and no fee. A payment made another way counts toward the next instalments. If an "
        "instalment is more than %(grace)d days late, the plan ends and the whole balance is due."
    ) % {"total": format_money(total, account.biller.currency), "number": account.account_number,
         "biller": account.biller.name, "grace": grace_days}  # fmt: skip


def plan_agreement_text(*, plan: PaymentPlan) -> str:
    """The terms with every date and amount of the plan's schedule: stored on the plan as the payer agreed to it."""
    money = lambda minor: format_money(minor, plan.currency)  # noqa: E731
    lines = [
        (_("Down payment, %(date)s: %(amount)s") if i.number == 0 else _("Instalment %(n)d, %(date)s: %(amount)s"))
        % {"n": i.number, "date": i.due_date.isoformat(), "amount": money(i.amount)}
        for i in plan.instalments.exclude(status=IStatus.CANCELLED).order_by("number")
    ]
    terms = plan_terms_text(account=plan.account, total=plan.total, grace_days=plan.grace_days)
    return "\n".join([terms, *lines])


@transaction.atomic
def plan_agree(
    *, plan: PaymentPlan, user, ip: str | None, agreement_text: str, payment_method: PaymentMethod | None = None,
    pays_by_hand: bool = False,
) -> PaymentPlan:  # fmt: skip
    """The payer agrees to a proposed plan: the text, the time, the IP address and the schedule are kept, with the
    saved method that pays the instalments (or by hand). A plan without a down payment is active at once; one with a
    down payment becomes active when the down payment is paid (`plan_progress`)."""
    plan = _plan_lock(plan.pk)
    if plan.status != Status.PROPOSED or plan.agreed_at is not None:
        raise ApplicationError(_("This payment plan is no longer waiting for your agreement."))
    if not payer_access().linked(user=user, account=plan.account):
        raise ApplicationError(_("That account is not linked to your login."))
    if payment_method is not None:
        payment_method = payment_method_owned(user, payment_method)
        if not payment_method_may_pay(user=user, account=plan.account):
            raise ApplicationError(str(SAVED_CARD_NEEDS_LOOKUP))
    elif not pays_by_hand:
        raise ApplicationError(_("Choose a saved card for the instalments, or to pay each one yourself."))
    plan.agreed_by, plan.agreement_text, plan.agreed_ip = user, agreement_text, ip or None
    plan.agreed_at = timezone.now()
    plan.agreed_schedule = [
        {"number": i.number, "due_date": i.due_date.isoformat(), "amount": i.amount}
        for i in plan.instalments.order_by("number")
    ]
    plan.payment_method, plan.pays_by_hand = payment_method, payment_method is None
    plan.save()
    how = payment_method.summary if payment_method else "by hand"
    plan_event(plan, f"agreed by {user.email} from {ip or 'unknown IP'}; instalments {how}", actor=user)
    return plan_progress(plan_id=plan.pk)


# --------------------------------------------------------------------------------------------------------------------
# Staff's proposal, accepted by a single-use link


ACCEPT_SALT = "billing.plans.accept"


def plan_accept_token(plan: PaymentPlan) -> str:
    return signing.TimestampSigner(salt=ACCEPT_SALT).sign(str(plan.pk))


def plan_accept_url(plan: PaymentPlan) -> str:
    """The absolute, signed link in staff's proposal e-mail."""
    return settings.SITE_URL + reverse("accounts:plan_accept", kwargs={"token": plan_accept_token(plan)})


@transaction.atomic
def plan_propose_by_staff(
    *, account: CustomerAccount, schedule_key: str, actor, outside_rules: bool = False,
    down_payment: int | None = None,
) -> PaymentPlan:  # fmt: skip
    """Staff arrange a plan: proposed, with a signed link that expires after STAFF_LINK_DAYS and works once. The payer
    is e-mailed the schedule and the link."""
    plan = plan_create(account=account, schedule_key=schedule_key, origin=PaymentPlan.Origin.STAFF, actor=actor,
                       outside_rules=outside_rules, down_payment=down_payment)  # fmt: skip
    plan.accept_expires_at = timezone.now() + dt.timedelta(days=STAFF_LINK_DAYS)
    plan.save(update_fields=["accept_expires_at", "updated_at"])
    plan_notice_wanted.send(sender=PaymentPlan, kind="plan_proposed", plan_id=plan.pk)
    return plan


def plan_from_link(*, token: str) -> PaymentPlan:
    """The plan a staff link names, if the signature holds, the link is unused and unexpired and the plan still waits
    for the payer. Changes nothing (mail scanners open links)."""
    try:
        plan_id = signing.TimestampSigner(salt=ACCEPT_SALT).unsign(token or "", max_age=STAFF_LINK_DAYS * 86400)
    except signing.SignatureExpired:
        raise ApplicationError(_("This link has expired. Please contact us for a new one.")) from None
    except signing.BadSignature:
        raise ApplicationError(_("This link has already been used or does not work.")) from None
    plan = PaymentPlan.objects.select_related("account__biller").filter(pk=int(plan_id)).first()
    if plan is None or plan.accept_used_at is not None or plan.status != Status.PROPOSED or plan.agreed_at:
        raise ApplicationError(_("This link has already been used or does not work."))
    if plan.accept_expires_at is None or plan.accept_expires_at < timezone.now():
        raise ApplicationError(_("This link has expired. Please contact us for a new one."))
    return plan


@transaction.atomic
def plan_accept_by_link(
    *, token: str, user, ip: str | None, payment_method: PaymentMethod | None, pays_by_hand: bool
) -> PaymentPlan:
    """The payer accepts staff's proposal from the e-mailed link: the link is used up, the agreement recorded."""
    plan = plan_from_link(token=token)
    used = PaymentPlan.objects.filter(pk=plan.pk, accept_used_at__isnull=True).update(accept_used_at=timezone.now())
    if not used:
        raise ApplicationError(_("This link has already been used or does not work."))
    return plan_agree(plan=plan, user=user, ip=ip, agreement_text=plan_agreement_text(plan=plan),
                      payment_method=payment_method, pays_by_hand=pays_by_hand)  # fmt: skip


def plan_notice_context(plan: PaymentPlan, *, proposal: bool) -> dict:
    """What a plan notice shows: the plan (paid, left, next), every instalment, and for a proposal the accept link."""
    view = plan_view(plan)
    lines = [
        {"number": i.number, "date": i.due_date, "amount": view.money(i.amount), "paid": i.status == IStatus.PAID}
        for i in view.instalments
    ]
    context = {"plan": view, "plan_lines": lines, "plan_grace_days": plan.grace_days}
    if proposal:
        context["pay_url"] = context["accept_url"] = plan_accept_url(plan)
    return context


# --------------------------------------------------------------------------------------------------------------------
# Following the money


def plans_progress_for_bills(*, bills) -> int:
    """On bill_paid (under the bill locks, in the payment's transaction): bring the open plans covering these bills up
    to date. Returns how many plans were looked at."""
    plan_ids = sorted(
        set(
            PlanBill.objects.filter(bill_id__any_of=[b.pk for b in bills], plan__status__in=PaymentPlan.OPEN_STATUSES)
            .values_list("plan_id", flat=True)
        )
    )
    for plan_id in plan_ids:
        plan_progress(plan_id=plan_id)
    return len(plan_ids)


@transaction.atomic
def plan_progress(*, plan_id: int) -> PaymentPlan:
    """Mark instalments paid (or back to scheduled after a refund) by what the plan's bills were paid; a proposed plan
    the payer agreed to becomes active once its down payment is in; an active plan with nothing left is completed
    (paying off early ends it). Idempotent."""
    plan = _plan_lock(plan_id)
    if plan.status not in PaymentPlan.OPEN_STATUSES:
        return plan
    paid = plan_paid(plan)
    now = timezone.now()
    through = 0
    for instalment in plan.instalments.select_for_update().exclude(status=IStatus.CANCELLED).order_by("number"):
        through += instalment.amount
        if paid >= through and instalment.status != IStatus.PAID:
            instalment_status_move(instalment, IStatus.PAID, paid_at=now)
            plan_event(plan, f"instalment {instalment.number} paid ({format_money(instalment.amount, plan.currency)})")
        elif paid < through and instalment.status == IStatus.PAID:
            instalment_status_move(instalment, IStatus.SCHEDULED, paid_at=None)
            plan_event(plan, f"instalment {instalment.number} no longer paid (money taken back off the bills)")
    if plan.status == Status.PROPOSED and plan.agreed_at is not None and paid >= plan.down_payment:
        plan_status_move(plan, Status.ACTIVE, message="agreed" + (", down payment paid" if plan.down_payment else ""))
        plan_notice_wanted.send(sender=PaymentPlan, kind="plan_active", plan_id=plan.pk)
    if plan.status == Status.ACTIVE and paid >= plan.total:
        plan_status_move(plan, Status.COMPLETED, message="paid in full")
    return plan


# --------------------------------------------------------------------------------------------------------------------
# Staff actions


@transaction.atomic
def plan_cancel(*, plan: PaymentPlan, actor, reason: str = "") -> PaymentPlan:
    """End a proposed or active plan: its unpaid instalments are cancelled (their waiting charges then charge nothing)
    and the bills are reminded as usual."""
    plan = _plan_lock(plan.pk)
    plan_status_move(plan, Status.CANCELLED, message=f"cancelled{': ' + reason if reason else ''}", actor=actor)
    for instalment in plan.instalments.select_for_update().exclude(status__in=[IStatus.PAID, IStatus.CANCELLED]):
        instalment_status_move(instalment, IStatus.CANCELLED)
    return plan


@transaction.atomic
def plan_reschedule(*, plan: PaymentPlan, actor, schedule_key: str, start: dt.date | None = None) -> PaymentPlan:
    """Spread what an active plan still owes over a new schedule from `start` (today by default), outside the rules if
    staff say so. Money already paid stays paid: a partly paid instalment is cut to what it was paid."""
    plan = _plan_lock(plan.pk)
    if plan.status != Status.ACTIVE:
        raise ApplicationError(_("Only an active payment plan can be rescheduled."))
    start = start or biller_today(plan.account.biller)
    paid = plan_paid(plan)
    remaining = plan.total - paid
    frequency, _sep, count = schedule_key.partition("-")
    if not count.isdigit():
        raise ApplicationError(_("Choose a schedule."))
    schedule = schedule_build(total=remaining, currency=plan.currency, count=int(count), frequency=frequency,
                              start=start, remainder_on=plan.remainder_on)  # fmt: skip
    through = 0
    last_number = 0
    for instalment in plan.instalments.select_for_update().exclude(status=IStatus.CANCELLED).order_by("number"):
        last_number = max(last_number, instalment.number)
        if instalment.status == IStatus.PAID:
            through += instalment.amount
            continue
        part = min(instalment.amount, max(0, paid - through))
        through += part
        if part:
            instalment.amount = part
            instalment_status_move(instalment, IStatus.PAID, paid_at=timezone.now())
        else:
            instalment_status_move(instalment, IStatus.CANCELLED)
    new = [
        PlanInstalment(plan=plan, number=last_number + i.number, due_date=i.due_date, amount=i.amount)
        for i in schedule.instalments
    ]
    PlanInstalment.objects.bulk_create(new)
    plan.frequency = frequency
    plan.instalment_count = plan.instalments.exclude(status=IStatus.CANCELLED).exclude(number=0).count()
    plan.save(update_fields=["frequency", "instalment_count", "updated_at"])
    plan_event(plan, f"rescheduled: {format_money(remaining, plan.currency)} as {schedule.key} from {start}",
               actor=actor)  # fmt: skip
    return plan
