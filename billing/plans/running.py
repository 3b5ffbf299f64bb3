"""Running plans day by day (`plans_sweep`, beat hourly): bring every open plan up to date with its bills, mark
instalments that are late, break a plan whose instalment is later than the grace days (exactly once: the move goes
through `PaymentPlan.TRANSITIONS` under the plan's lock, and a broken plan cannot break again), and let a proposal the
payer never took up lapse.

When a plan breaks, the payer is told (`plan_broken` notice) and the bills' past-due reminders resume (they wait only
while the plan is active); staff see it in the Plans list (status broken) and its history. Charging instalments paid by
a saved method is autopay's work (billing/autopay/); reminders for instalments paid by hand are the notifications
planner's.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from django.db import transaction
from django.utils import timezone

from ..clock import biller_today
from ..models import PaymentPlan, PlanInstalment
from ..signals import plan_notice_wanted
from .selectors import plan_paid
from .services import instalment_status_move, plan_event, plan_progress, plan_status_move

Status = PaymentPlan.Status
IStatus = PlanInstalment.Status

PROPOSAL_LAPSES_DAYS = 14  # a proposal nobody agreed to, or a down payment never paid, after this many days


@dataclass
class SweepResult:
    looked_at: int = 0
    missed: list[int] = field(default_factory=list)
    broken: list[int] = field(default_factory=list)
    lapsed: list[int] = field(default_factory=list)


def plans_sweep(*, now: dt.datetime | None = None, batch_size: int = 500) -> SweepResult:
    now = now or timezone.now()
    result = SweepResult()
    last_pk = 0
    while True:
        ids = list(
            PaymentPlan.objects.filter(status__in=PaymentPlan.OPEN_STATUSES, pk__gt=last_pk)
            .order_by("pk")
            .values_list("pk", flat=True)[:batch_size]
        )
        if not ids:
            break
        last_pk = ids[-1]
        for plan_id in ids:
            result.looked_at += 1
            _plan_sweep_one(plan_id=plan_id, now=now, result=result)
        if len(ids) < batch_size:
            break
    return result


@transaction.atomic
def _plan_sweep_one(*, plan_id: int, now: dt.datetime, result: SweepResult) -> None:
    plan = plan_progress(plan_id=plan_id)  # locks the plan
    today = biller_today(plan.account.biller, now=now)
    if plan.status == Status.PROPOSED:
        expires = plan.accept_expires_at or (plan.created_at + dt.timedelta(days=PROPOSAL_LAPSES_DAYS))
        if expires < now:
            plan_status_move(plan, Status.CANCELLED, message="lapsed: not agreed or down payment not paid in time")
            plan.instalments.exclude(status__in=[IStatus.PAID, IStatus.CANCELLED]).update(status=IStatus.CANCELLED)
            result.lapsed.append(plan.pk)
        return
    if plan.status != Status.ACTIVE:
        return
    paid = plan_paid(plan)
    through = 0
    for instalment in plan.instalments.select_for_update().exclude(status=IStatus.CANCELLED).order_by("number"):
        through += instalment.amount
        if instalment.status == IStatus.PAID or instalment.due_date >= today:
            continue
        if instalment.status == IStatus.SCHEDULED:
            instalment_status_move(instalment, IStatus.MISSED)
            plan_event(plan, f"instalment {instalment.number} due {instalment.due_date} not paid "
                             f"({through - paid} minor units short)")  # fmt: skip
            result.missed.append(instalment.pk)
        if (today - instalment.due_date).days > plan.grace_days:
            plan_status_move(
                plan, Status.BROKEN,
                message=f"instalment {instalment.number} due {instalment.due_date} unpaid after {plan.grace_days} "
                        f"grace days",
            )  # fmt: skip
            plan_notice_wanted.send(sender=PaymentPlan, kind="plan_broken", plan_id=plan.pk)
            result.broken.append(plan.pk)
            return
