"""Autopay planning: a row per open bill of every active enrolment (with the upcoming-charge and expiring-card
notices), and the sweeper that claims due rows and hands them to the charge tasks."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from billing.clock import biller_today, biller_zone
from ..models import AutopayCharge, AutopayChargeEvent, AutopayEnrollment, Bill, PaymentMethod
from billing.plans.selectors import instalments_due_for_charging

from .charges import charge_status_move, charges_claim
from .notices import autopay_debit_notices_raise, autopay_notify
from .selectors import expiring_cards

Status = AutopayCharge.Status
Reason = AutopayCharge.Reason


def charging_timeout() -> dt.timedelta:
    """A row still charging this long after its claim lost its worker. Longer than the task's hard time limit."""
    return dt.timedelta(seconds=settings.AUTOPAY_CHARGING_TIMEOUT_SECONDS)


def _charge_time(biller, day: dt.date, now: dt.datetime) -> dt.datetime:
    """The biller's charge hour (AUTOPAY_CHARGE_HOUR, default 8:00 local) on `day`, or now if that has passed."""
    planned = dt.datetime.combine(day, dt.time(settings.AUTOPAY_CHARGE_HOUR), tzinfo=biller_zone(biller))
    return max(planned, now)


@dataclass
class PlanResult:
    created: int = 0
    above_max: int = 0
    upcoming_notices: int = 0
    card_notices: int = 0
    instalments: int = 0
    debit_notices: int = 0


def autopay_plan(*, now: dt.datetime | None = None, batch_size: int = 500) -> PlanResult:
    """Write a row for each open bill of every active enrolment, due under the rule; send the upcoming-charge notices
    that have come. Safe to run any number of times and concurrently: the row's unique (bill, enrolment) key and the
    outbox's unique key settle every race.

    Catch-up rule: a bill whose charge date passed while beat was down is still charged, at once, as long as it is at
    most AUTOPAY_CATCH_UP_DAYS (default 2) past its due date; an older bill is left to the past-due reminders. A bill
    above the payer's maximum gets a cancelled row (reason above_max) and a notice instead of a charge."""
    now = now or timezone.now()
    catch_up = settings.AUTOPAY_CATCH_UP_DAYS
    result = PlanResult()
    last_pk = 0
    while True:
        enrollments = list(
            AutopayEnrollment.objects.filter(status=AutopayEnrollment.Status.ACTIVE, pk__gt=last_pk)
            .select_related("account__biller")
            .order_by("pk")[:batch_size]
        )
        if not enrollments:
            break
        last_pk = enrollments[-1].pk
        by_account = {e.account_id: e for e in enrollments}
        earliest_due = min(biller_today(e.account.biller, now=now) for e in enrollments) - dt.timedelta(days=catch_up)
        bills = (
            Bill.objects.filter(
                account_id__in=by_account, status=Bill.Status.OPEN, amount_paid__lt=F("total"),
                issue_date__isnull=False, due_date__gte=earliest_due,
            )
            .exclude(autopay_charges__enrollment_id__in=[e.pk for e in enrollments])
            .order_by("pk")
        )  # fmt: skip
        for bill in bills:
            enrollment = by_account[bill.account_id]
            biller = enrollment.account.biller
            if bill.currency != enrollment.currency:
                continue
            if bill.due_date < biller_today(biller, now=now) - dt.timedelta(days=catch_up):
                continue
            created = _charge_plan_one(enrollment=enrollment, bill=bill, now=now)
            if created is not None:
                result.created += 1
                result.above_max += created.status == Status.CANCELLED
        if len(enrollments) < batch_size:
            break
    result.instalments = _instalments_plan(now=now)
    result.upcoming_notices = _upcoming_notices(now=now)
    result.card_notices = autopay_cards_expiring_notify(now=now)
    result.debit_notices = autopay_debit_notices_raise(now=now)
    return result


def _charge_plan_one(*, enrollment: AutopayEnrollment, bill: Bill, now: dt.datetime) -> AutopayCharge | None:
    biller = enrollment.account.biller
    charge_on = enrollment.charge_date(bill.due_date)
    try:
        with transaction.atomic():
            charge = AutopayCharge.objects.create(
                bill=bill, enrollment=enrollment, account_id=bill.account_id, currency=bill.currency,
                charge_on=charge_on, next_attempt_at=_charge_time(biller, charge_on, now),
            )  # fmt: skip
            AutopayChargeEvent.objects.create(charge=charge, to_status=charge.status, message="planned")
            if enrollment.max_amount is not None and bill.balance_due > enrollment.max_amount:
                # Never charge above the payer's mandate: tell them instead, with the pay link.
                charge_status_move(
                    charge, Status.CANCELLED, reason=Reason.ABOVE_MAX, next_attempt_at=None,
                    message=f"bill balance {bill.balance_due} is above the maximum {enrollment.max_amount}",
                )  # fmt: skip
                autopay_notify("autopay_upcoming", account_id=bill.account_id, bill_id=bill.pk)
    except IntegrityError:
        return None  # another planner wrote it first
    return charge


def _instalments_plan(*, now: dt.datetime) -> int:
    """A row for each instalment of a running payment plan whose date has come and which a saved method pays: the
    same sweeper, tries, retries and backup card as a bill's autopay charge. The row's `bill` is the plan's oldest
    bill (for the notices' pay link); what it charges is what the instalment still owes (billing.plans)."""
    created = 0
    for plan, instalment in instalments_due_for_charging(today_of=lambda biller: biller_today(biller, now=now)):
        bill = Bill.objects.filter(plan_bills__plan=plan).order_by("due_date", "pk").first()
        try:
            with transaction.atomic():
                charge = AutopayCharge.objects.create(
                    bill=bill, instalment=instalment, account_id=plan.account_id, currency=plan.currency,
                    charge_on=instalment.due_date, next_attempt_at=_charge_time(plan.account.biller, instalment.due_date, now),
                )  # fmt: skip
                AutopayChargeEvent.objects.create(
                    charge=charge, to_status=charge.status, message=f"planned: plan {plan.pk}, instalment {instalment.number}"
                )
        except IntegrityError:
            continue  # another planner wrote it first
        created += 1
    return created


def _upcoming_notices(*, now: dt.datetime) -> int:
    """autopay_upcoming, AUTOPAY_UPCOMING_NOTICE_DAYS (default 3) before a scheduled charge: amount and card."""
    days = settings.AUTOPAY_UPCOMING_NOTICE_DAYS
    sent = 0
    rows = (
        AutopayCharge.objects.filter(
            status=Status.SCHEDULED, charge_on__lte=timezone.localdate(now) + dt.timedelta(days=days + 1)
        )
        .exclude(enrollment__payment_method__kind__in=PaymentMethod.BANK_KINDS)  # they get the debit pre-notification
        .select_related("account__biller")
    )
    for charge in rows.order_by("pk"):
        today = biller_today(charge.account.biller, now=now)
        if not today < charge.charge_on <= today + dt.timedelta(days=days):
            continue  # a charge made today or late has nothing "upcoming" to announce
        with transaction.atomic():
            raised = autopay_notify(
                "autopay_upcoming", account_id=charge.account_id, bill_id=charge.bill_id, once_per_bill=True
            )
        if raised:
            sent += 1
    return sent


def autopay_cards_expiring_notify(*, now: dt.datetime | None = None) -> int:
    """card_expiring for an active enrolment whose card or backup card expires this month or next, on the bill
    autopay pays next (the outbox key is per bill, so once per billing cycle). The notice links to /me/cards/."""
    now = now or timezone.now()
    sent = 0
    enrollments = AutopayEnrollment.objects.filter(status=AutopayEnrollment.Status.ACTIVE).select_related(
        "account__biller", "payment_method"
    )
    for enrollment in enrollments.order_by("pk"):
        today = biller_today(enrollment.account.biller, now=now)
        if not expiring_cards(enrollment, today):
            continue
        bill = (
            Bill.objects.filter(account_id=enrollment.account_id, status=Bill.Status.OPEN, amount_paid__lt=F("total"))
            .order_by("due_date", "pk")
            .first()
        )
        if bill is None:
            continue
        with transaction.atomic():
            raised = autopay_notify(
                "card_expiring", account_id=enrollment.account_id, bill_id=bill.pk, once_per_bill=True
            )
        if raised:
            sent += 1
    return sent


# --------------------------------------------------------------------------------------------------------------------
# Sweeping


@dataclass
class SweepResult:
    reclaimed: list[int] = field(default_factory=list)
    claimed: list[int] = field(default_factory=list)
    requeued: list[int] = field(default_factory=list)


def sweep_max_batches(batch_size: int) -> int:
    """How many batches one sweep claims at most: what the gateway rate limit lets the workers charge in a minute
    (two requests per charge: create, confirm), so a backlog is cleared within a beat period without claiming rows no
    worker could reach before the next sweep."""
    per_minute = settings.GATEWAY_RATE_LIMIT_PER_SECOND * 60 // 2 or 10_000
    return max(1, -(-per_minute // batch_size))


def autopay_sweep(
    *, now: dt.datetime | None = None, batch_size: int = 100, max_batches: int | None = None, enqueue: bool = True
) -> SweepResult:
    """Reclaim rows a dead worker left charging, enqueue again claimed rows no worker started (a lost message), then
    claim due rows batch after batch while the batches come back full (skip_locked: concurrent sweeps take disjoint
    rows), mark them charging and enqueue them after their batch commits, AUTOPAY_CHARGE_BATCH_SIZE rows to an
    `autopay_charge_batch_task` (a reclaimed or re-enqueued row goes alone to `autopay_charge_task`). A backlog of any
    size drains at what the gateway rate limit allows (`sweep_max_batches`), not at one batch a minute."""
    from .tasks import autopay_charge_batch_task, autopay_charge_task

    now = now or timezone.now()
    result = SweepResult()
    with transaction.atomic():
        stale = list(
            AutopayCharge.objects.select_for_update(skip_locked=True)
            .filter(status=Status.CHARGING, claimed_at__lt=now - charging_timeout())
            .order_by("pk")[:batch_size]
        )
        for charge in stale:
            # Not a status change: the row stays charging and its next run resumes from the tries on record.
            charge.claimed_at, charge.started_at = now, None
            charge.save(update_fields=["claimed_at", "started_at", "updated_at"])
            AutopayChargeEvent.objects.create(
                charge=charge, from_status=Status.CHARGING, to_status=Status.CHARGING,
                message="still charging after the timeout: the worker was lost; claimed again",
            )  # fmt: skip
            if enqueue:
                autopay_charge_task.delay_on_commit(charge.pk)
            result.reclaimed.append(charge.pk)
    with transaction.atomic():
        # Claimed AUTOPAY_UNSTARTED_TIMEOUT_SECONDS ago and no worker started it: the message was lost (a Redis flush,
        # a purged queue) or still waits in the queue. Enqueue it again now rather than after the charging timeout.
        # A row a worker started is left to that timeout: it may be mid-charge. Never run twice: autopay_charge starts
        # with a conditional UPDATE (charging, not started), so a second message finds it started and does nothing.
        unstarted = list(
            AutopayCharge.objects.select_for_update(skip_locked=True)
            .filter(
                status=Status.CHARGING, started_at__isnull=True,
                claimed_at__lt=now - dt.timedelta(seconds=settings.AUTOPAY_UNSTARTED_TIMEOUT_SECONDS),
            )
            .order_by("pk")[:batch_size]
        )  # fmt: skip
        for charge in unstarted:
            charge.claimed_at = now
            charge.save(update_fields=["claimed_at", "updated_at"])
            AutopayChargeEvent.objects.create(
                charge=charge, from_status=Status.CHARGING, to_status=Status.CHARGING,
                message="claimed but no worker started it: the message was lost; enqueued again",
            )  # fmt: skip
            if enqueue:
                autopay_charge_task.delay_on_commit(charge.pk)
            result.requeued.append(charge.pk)
    autopay_debit_notices_raise(now=now)  # a bank debit due without its pre-notification gets it now, and waits
    for _ in range(max_batches or sweep_max_batches(batch_size)):
        with transaction.atomic():  # one batch per transaction: workers start on it while the next is claimed
            due = list(
                AutopayCharge.objects.select_for_update(skip_locked=True, of=("self",))
                .filter(status__in=AutopayCharge.WAITING_STATUSES, next_attempt_at__lte=now)
                .exclude(debit_notice_at__isnull=True, enrollment__payment_method__kind__in=PaymentMethod.BANK_KINDS)
                .order_by("next_attempt_at", "pk")[:batch_size]
            )
            charges_claim(due, now=now)  # one UPDATE and one insert for the batch
            ids = [charge.pk for charge in due]
            if enqueue:
                size = settings.AUTOPAY_CHARGE_BATCH_SIZE
                for start in range(0, len(ids), size):
                    autopay_charge_batch_task.delay_on_commit(ids[start : start + size])
            result.claimed.extend(ids)
        if len(due) < batch_size:
            break
    return result
