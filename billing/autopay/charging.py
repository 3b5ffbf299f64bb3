"""Autopay charging: plan a row per bill, sweep due rows, charge off-session, retry by decline code, notify.

State machine of an `AutopayCharge` (the map is `AutopayCharge.TRANSITIONS`; `_charge_move` is the only writer):

    scheduled ──sweeper──> charging ──> succeeded
        │                     │ ├────> retry_scheduled ──sweeper──> charging …
        │                     │ ├────> failed_final   (hard or authentication decline on every card; last retry)
        └──> cancelled <──────┘ └────> cancelled      (bill paid another way, autopay off, above the maximum)

One charge run (`autopay_charge`, the body of `autopay_charge_task`) makes at most two off-session charges: the autopay
card, and when that declines (any decline) the payer's backup card, once per bill. What happens next is decided by the
decline class (`billing.gateway.decline_classify`): a hard or authentication decline takes that card out for good; a
soft one leaves it in. With a card still in, the next attempt waits `biller.retry_schedule` days after the first
failure; with none, or after the last retry, the row stops (failed_final) and the payer is told, with the pay link.
After the last retry the enrolment is suspended (through its transition map) and past-due reminders take over.

Exactly once. A charge is a Payment (channel autopay) whose idempotency key `autopay-<row>-<attempt>-<card>` sits in a
unique column, with an `AutopayChargeTry` that is unique per (row, attempt, card). The work is split so that a worker
killed at any point can be resumed from the database alone:
  1. under the account, row and bill locks: compute what is owed *now*, write the Payment and the try (commit);
  2. create the PaymentIntent, unconfirmed (no money moves), and store its id (commit);
  3. under the account, row and bill locks again: re-check the bill is still owed, confirm the intent, and record
     the result through the payment services' one apply path (commit).
A redelivered or reclaimed run finds the pending try and asks the gateway about its intent instead of creating one;
an intent that was never stored (a crash inside step 2) was never confirmed, so it can never be charged. While step 3
holds the bill lock, an offline payment (which locks the bills) and a guest payment (which locks the account) wait, so
nothing is charged after a bill is paid another way; and the payment services apply at most what is owed now.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.urls import reverse
from django.utils import timezone

from ..gateway import (
    DeclineClass,
    GatewayError,
    IntentResult,
    IntentStatus,
    PaymentDeclined,
    decline_classify,
    get_gateway,
)
from ..models import (
    AutopayCharge,
    AutopayChargeEvent,
    AutopayChargeTry,
    AutopayEnrollment,
    Bill,
    BillingEvent,
    CustomerAccount,
    Payment,
    PaymentAttempt,
    PaymentMethod,
)
from ..money import format_money

logger = logging.getLogger(__name__)

Status = AutopayCharge.Status
Role = AutopayCharge.MethodRole
Reason = AutopayCharge.Reason


def _setting(name: str, default):
    return getattr(settings, name, default)


def charging_timeout() -> dt.timedelta:
    """A row still charging this long after its claim lost its worker. Longer than the task's hard time limit."""
    return dt.timedelta(seconds=int(_setting("AUTOPAY_CHARGING_TIMEOUT_SECONDS", 600)))


def _zone(biller):
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        return ZoneInfo(biller.time_zone or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return dt.UTC


def _local_today(biller, now: dt.datetime) -> dt.date:
    return now.astimezone(_zone(biller)).date()


def _charge_time(biller, day: dt.date, now: dt.datetime) -> dt.datetime:
    """The biller's charge hour (AUTOPAY_CHARGE_HOUR, default 8:00 local) on `day`, or now if that has passed."""
    planned = dt.datetime.combine(day, dt.time(int(_setting("AUTOPAY_CHARGE_HOUR", 8))), tzinfo=_zone(biller))
    return max(planned, now)


def _charge_move(charge: AutopayCharge, to: str, *, message: str = "", **fields) -> None:
    """Change a locked row's status through the transition map, with an event. An illegal move raises."""
    from ..errors import ApplicationError

    if not charge.can_transition_to(to):
        raise ApplicationError(f"An autopay charge cannot go from {charge.status} to {to}.")
    from_status = charge.status
    charge.status = to
    for name, value in fields.items():
        setattr(charge, name, value)
    charge.save()
    AutopayChargeEvent.objects.create(charge=charge, from_status=from_status, to_status=to, message=message[:500])


def _notify(kind: str, *, account_id: int, bill_id: int | None = None, payment_id: int | None = None) -> None:
    """An event notice through the outbox, after commit (the outbox's unique key makes it once per event)."""

    def enqueue():
        from notifications.services import notice_enqueue

        account = CustomerAccount.objects.select_related("biller").get(pk=account_id)
        bill = Bill.objects.get(pk=bill_id) if bill_id else None
        payment = Payment.objects.get(pk=payment_id) if payment_id else None
        try:
            notice_enqueue(kind=kind, account=account, bill=bill, payment=payment)
        except Exception:  # a notice must never undo or block a charge that was recorded
            logger.exception("autopay notice %s for account %s not enqueued", kind, account_id)

    transaction.on_commit(enqueue)


# --------------------------------------------------------------------------------------------------------------------
# Selectors


def autopay_cards(*, enrollment: AutopayEnrollment, today: dt.date) -> dict[str, PaymentMethod | None]:
    """The cards autopay may charge: the enrolment's card ("default"), and the payer's backup card ("backup"; the
    payer's default card when the enrolment card is the backup). Removed or expired cards are left out."""

    def usable(method):
        return method is not None and method.removed_at is None and not method.is_expired(today)

    default = enrollment.payment_method if usable(enrollment.payment_method) else None
    saved = PaymentMethod.objects.filter(user_id=enrollment.user_id, removed_at__isnull=True).exclude(
        pk=enrollment.payment_method_id
    )
    backup = saved.filter(is_backup=True).first() or saved.filter(is_default=True).first()
    return {Role.DEFAULT: default, Role.BACKUP: backup if usable(backup) else None}


def autopay_charges_for_bill(*, bill: Bill):
    return AutopayCharge.objects.filter(bill=bill).prefetch_related("tries__payment__attempts").order_by("pk")


def autopay_retry_days(biller) -> list[int]:
    days = [d for d in (biller.retry_schedule or []) if isinstance(d, int) and not isinstance(d, bool) and d > 0]
    return sorted(days)


# --------------------------------------------------------------------------------------------------------------------
# Planning


@dataclass
class PlanResult:
    created: int = 0
    above_max: int = 0
    upcoming_notices: int = 0
    card_notices: int = 0


def autopay_plan(*, now: dt.datetime | None = None, batch_size: int = 500) -> PlanResult:
    """Write a row for each open bill of every active enrolment, due under the rule; send the upcoming-charge notices
    that have come. Safe to run any number of times and concurrently: the row's unique (bill, enrolment) key and the
    outbox's unique key settle every race.

    Catch-up rule: a bill whose charge date passed while beat was down is still charged, at once, as long as it is at
    most AUTOPAY_CATCH_UP_DAYS (default 2) past its due date; an older bill is left to the past-due reminders. A bill
    above the payer's maximum gets a cancelled row (reason above_max) and a notice instead of a charge."""
    now = now or timezone.now()
    catch_up = int(_setting("AUTOPAY_CATCH_UP_DAYS", 2))
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
        earliest_due = min(_local_today(e.account.biller, now) for e in enrollments) - dt.timedelta(days=catch_up)
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
            if bill.due_date < _local_today(biller, now) - dt.timedelta(days=catch_up):
                continue
            created = _charge_plan_one(enrollment=enrollment, bill=bill, now=now)
            if created is not None:
                result.created += 1
                result.above_max += created.status == Status.CANCELLED
        if len(enrollments) < batch_size:
            break
    result.upcoming_notices = _upcoming_notices(now=now)
    result.card_notices = autopay_cards_expiring_notify(now=now)
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
                _charge_move(
                    charge, Status.CANCELLED, reason=Reason.ABOVE_MAX, next_attempt_at=None,
                    message=f"bill balance {bill.balance_due} is above the maximum {enrollment.max_amount}",
                )  # fmt: skip
                _notify("autopay_upcoming", account_id=bill.account_id, bill_id=bill.pk)
    except IntegrityError:
        return None  # another planner wrote it first
    return charge


def _upcoming_notices(*, now: dt.datetime) -> int:
    """autopay_upcoming, AUTOPAY_UPCOMING_NOTICE_DAYS (default 3) before a scheduled charge: amount and card."""
    days = int(_setting("AUTOPAY_UPCOMING_NOTICE_DAYS", 3))
    sent = 0
    rows = AutopayCharge.objects.filter(
        status=Status.SCHEDULED, charge_on__lte=timezone.localdate(now) + dt.timedelta(days=days + 1)
    ).select_related("account__biller")
    for charge in rows.order_by("pk"):
        today = _local_today(charge.account.biller, now)
        if not today < charge.charge_on <= today + dt.timedelta(days=days):
            continue  # a charge made today or late has nothing "upcoming" to announce
        from notifications.models import Notification

        if Notification.objects.filter(bill_id=charge.bill_id, kind="autopay_upcoming").exists():
            continue
        with transaction.atomic():
            _notify("autopay_upcoming", account_id=charge.account_id, bill_id=charge.bill_id)
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
        today = _local_today(enrollment.account.biller, now)
        if not _expiring_cards(enrollment, today):
            continue
        bill = (
            Bill.objects.filter(account_id=enrollment.account_id, status=Bill.Status.OPEN, amount_paid__lt=F("total"))
            .order_by("due_date", "pk")
            .first()
        )
        if bill is None:
            continue
        from notifications.models import Notification

        if Notification.objects.filter(bill_id=bill.pk, kind="card_expiring").exists():
            continue
        with transaction.atomic():
            _notify("card_expiring", account_id=enrollment.account_id, bill_id=bill.pk)
        sent += 1
    return sent


def _expiring_cards(enrollment: AutopayEnrollment, today: dt.date) -> list[PaymentMethod]:
    next_month = (today.replace(day=1) + dt.timedelta(days=32)).replace(day=1)
    soon = {(today.year, today.month), (next_month.year, next_month.month)}
    cards = [enrollment.payment_method]
    cards += list(
        PaymentMethod.objects.filter(user_id=enrollment.user_id, removed_at__isnull=True, is_backup=True).exclude(
            pk=enrollment.payment_method_id
        )
    )
    return [c for c in cards if c.removed_at is None and c.exp_year and (c.exp_year, c.exp_month) in soon]


# --------------------------------------------------------------------------------------------------------------------
# Sweeping


@dataclass
class SweepResult:
    reclaimed: list[int] = field(default_factory=list)
    claimed: list[int] = field(default_factory=list)
    requeued: list[int] = field(default_factory=list)


def autopay_sweep(*, now: dt.datetime | None = None, batch_size: int = 100, enqueue: bool = True) -> SweepResult:
    """Reclaim rows a dead worker left charging, enqueue again claimed rows no worker started (a lost message), then
    claim due rows (skip_locked: concurrent sweeps take disjoint rows), mark them charging and enqueue one
    `autopay_charge_task` each after commit."""
    from ..tasks import autopay_charge_task

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
    with transaction.atomic():
        due = list(
            AutopayCharge.objects.select_for_update(skip_locked=True)
            .filter(status__in=AutopayCharge.WAITING_STATUSES, next_attempt_at__lte=now)
            .order_by("next_attempt_at", "pk")[:batch_size]
        )
        for charge in due:
            _charge_move(
                charge, Status.CHARGING, claimed_at=now, started_at=None, attempt_number=charge.attempt_number + 1,
                message=f"attempt {charge.attempt_number + 1} claimed",
            )  # fmt: skip
            if enqueue:
                autopay_charge_task.delay_on_commit(charge.pk)
            result.claimed.append(charge.pk)
    return result


# --------------------------------------------------------------------------------------------------------------------
# Charging


def autopay_charge(*, charge_id: int) -> str:
    """Run a claimed row: charge the autopay card, and the backup card once if it declines. Returns the row's status
    afterwards, or "noop" when another delivery of the task has this claim (or the row is not charging)."""
    started = AutopayCharge.objects.filter(pk=charge_id, status=Status.CHARGING, started_at__isnull=True).update(
        started_at=timezone.now()
    )
    if not started:
        return "noop"
    for _ in range(4):  # at most two tries (autopay card, backup card) and two passes that skip a missing card
        outcome = _charge_step(charge_id)
        if outcome != "continue":
            return outcome
    return AutopayCharge.objects.get(pk=charge_id).status


def _lock(charge_id: int) -> tuple[AutopayCharge, Bill]:
    """Lock order, as in billing/payments.py: the account, then this row, then the bill."""
    account_id = AutopayCharge.objects.values_list("account_id", flat=True).get(pk=charge_id)
    CustomerAccount.objects.select_for_update().filter(pk=account_id).first()
    charge = (
        AutopayCharge.objects.select_for_update(of=("self",))
        .select_related("enrollment", "account__biller", "bill")
        .get(pk=charge_id)
    )
    bill = Bill.objects.select_for_update().get(pk=charge.bill_id)
    return charge, bill


def _charge_step(charge_id: int) -> str:
    """One pass: start (or resume) the next try of the current attempt and run it. "continue" asks for another pass
    (the backup card after a decline, or the next card when one is missing)."""
    with transaction.atomic():
        charge, bill = _lock(charge_id)
        if charge.status != Status.CHARGING:
            return charge.status
        current = list(
            charge.tries.filter(attempt_number=charge.attempt_number).select_related("payment").order_by("pk")
        )
        pending = next((t for t in current if t.outcome == AutopayChargeTry.Outcome.PENDING), None)
        if pending is None:
            role = _next_role(charge, current)
            if role is None:
                return _conclude(charge, bill, current[-1] if current else None)
            stop = _stop_reason(charge, bill)
            if stop:
                _charge_move(charge, Status.CANCELLED, reason=stop, next_attempt_at=None, message=stop)
                return charge.status
            today = _local_today(charge.account.biller, timezone.now())
            card = autopay_cards(enrollment=charge.enrollment, today=today)[role]
            if card is None:
                # Removed or expired since enrolment: that card is out, as after a hard decline.
                if role == Role.DEFAULT:
                    charge.default_out = True
                else:
                    charge.backup_out = charge.backup_tried = True
                charge.save(update_fields=["default_out", "backup_out", "backup_tried", "updated_at"])
                return "continue"
            pending = _try_start(charge=charge, bill=bill, role=role, card=card)
        resuming = pending.payment.attempts.exists()
    return _try_run(charge_id, pending.pk, resuming=resuming)


def _next_role(charge: AutopayCharge, current: list[AutopayChargeTry]) -> str | None:
    """The card for the next try of the current attempt, or None when the attempt is over."""
    if not current:  # a fresh attempt: the autopay card while it is in, else the backup card
        if not charge.default_out:
            return Role.DEFAULT
        return Role.BACKUP if not charge.backup_out else None
    last = current[-1]
    if last.outcome in (AutopayChargeTry.Outcome.SUCCEEDED, AutopayChargeTry.Outcome.CANCELLED):
        return None
    if last.method_role == Role.DEFAULT and not charge.backup_tried and not charge.backup_out:
        return Role.BACKUP  # the backup card, once per bill, right after the autopay card declined
    return None


def _stop_reason(charge: AutopayCharge, bill: Bill) -> str:
    """Why a try must not start, checked under the locks with the bill as it is now."""
    if bill.status not in Bill.PAYABLE_STATUSES:
        return Reason.PAID_ELSEWHERE if bill.status == Bill.Status.PAID else Reason.NOT_PAYABLE
    if bill.balance_due <= 0:
        return Reason.PAID_ELSEWHERE
    enrollment = AutopayEnrollment.objects.get(pk=charge.enrollment_id)
    if enrollment.status != AutopayEnrollment.Status.ACTIVE:
        return Reason.AUTOPAY_OFF
    if enrollment.max_amount is not None and bill.balance_due > enrollment.max_amount:
        return Reason.ABOVE_MAX
    return ""


def _try_start(*, charge: AutopayCharge, bill: Bill, role: str, card: PaymentMethod) -> AutopayChargeTry:
    """Step 1: the Payment and the try, for what the bill owes now. Both carry the row's idempotency key."""
    from ..services import confirmation_number_new, event_record

    from ..payments import _CARD_BRANDS

    key = f"autopay-{charge.pk}-{charge.attempt_number}-{role}"
    brand = _CARD_BRANDS.get((card.brand or "").lower(), (card.brand or "Card").title())
    payment = Payment.objects.create(
        biller_id=bill.biller_id, account_id=bill.account_id, confirmation_number=confirmation_number_new(),
        channel=Payment.Channel.AUTOPAY, method=Payment.Method.CARD, status=Payment.Status.PENDING,
        currency=bill.currency, amount=bill.balance_due, payer_email=charge.account.email,
        payment_method_summary=f"{brand} •••• {card.last4}"[:64], idempotency_key=key,
    )  # fmt: skip
    event_record(
        kind=BillingEvent.Kind.PAYMENT_RECORDED, payment=payment, to_status=payment.status, amount=payment.amount,
        currency=payment.currency, message=f"autopay charge {charge.pk}, attempt {charge.attempt_number}, {role} card",
    )  # fmt: skip
    if role == Role.BACKUP:
        charge.backup_tried = True
    charge.last_method_role, charge.amount = role, payment.amount
    charge.save(update_fields=["backup_tried", "last_method_role", "amount", "updated_at"])
    return AutopayChargeTry.objects.create(
        charge=charge, attempt_number=charge.attempt_number, method_role=role, payment_method=card, payment=payment
    )


def _try_run(charge_id: int, try_id: int, *, resuming: bool) -> str:
    """Steps 2 and 3 for one try: make sure an intent exists (stored before it is confirmed), then confirm and record
    under the locks. A resumed try asks the gateway where its intent stands first."""
    gateway = get_gateway()
    attempt = AutopayChargeTry.objects.select_related("payment", "payment_method").get(pk=try_id)
    payment = attempt.payment
    if not payment.gateway_payment_id:
        from ..payments import _gateway_call

        card = attempt.payment_method
        try:
            intent = _gateway_call(
                payment=payment, kind=PaymentAttempt.Kind.CREATE, amount=payment.amount, reference="-",
                idempotency_key=payment.idempotency_key,
                call=lambda k: gateway.create_payment_intent(
                    amount=payment.amount, currency=payment.currency, idempotency_key=k,
                    customer=card.gateway_customer_id, payment_method=card.gateway_payment_method_id,
                    metadata={"payment": str(payment.pk), "autopay_charge": str(charge_id),
                              "account": str(payment.account_id)},
                ),
            )  # fmt: skip
        except GatewayError:
            # Nothing was confirmed. The row stays charging; a reclaim after the timeout resumes this try.
            logger.warning("autopay charge %s: intent not created, will resume", charge_id, exc_info=True)
            return "gateway_error"
        Payment.objects.filter(pk=payment.pk).update(gateway_payment_id=intent.id, updated_at=timezone.now())
        resuming = False
    payment.refresh_from_db()
    _confirm_row(payment)
    with transaction.atomic():
        charge, bill = _lock(charge_id)
        payment = Payment.objects.select_for_update().get(pk=payment.pk)
        attempt = AutopayChargeTry.objects.select_for_update().get(pk=try_id)
        if charge.status != Status.CHARGING or attempt.outcome != AutopayChargeTry.Outcome.PENDING:
            return charge.status
        return _confirm_and_record(charge=charge, bill=bill, payment=payment, attempt=attempt, resuming=resuming)


def _confirm_row(payment: Payment) -> PaymentAttempt:
    """The confirm's PaymentAttempt, committed before the confirm runs (in its own autocommit write, outside the
    locked transaction that makes the call), so a worker killed during or after the call still leaves its trace."""
    row, _created = PaymentAttempt.objects.get_or_create(
        idempotency_key=f"{payment.idempotency_key}:confirm",
        defaults={"payment": payment, "kind": PaymentAttempt.Kind.CONFIRM, "amount": payment.amount,
                  "currency": payment.currency, "outcome": PaymentAttempt.Outcome.PENDING,
                  "gateway_reference": payment.gateway_payment_id or ""},
    )  # fmt: skip
    return row


def _confirm(payment: Payment) -> IntentResult:
    """Confirm off-session and complete the pre-written attempt row (inside the caller's locked transaction)."""
    from ..payments import _intent_outcome

    row = PaymentAttempt.objects.select_for_update().get(idempotency_key=f"{payment.idempotency_key}:confirm")
    try:
        intent = get_gateway().confirm_payment_intent(
            payment.gateway_payment_id, idempotency_key=row.idempotency_key, off_session=True
        )
    except PaymentDeclined as exc:
        row.outcome, row.decline_code = PaymentAttempt.Outcome.DECLINED, (exc.decline_code or exc.code or "")[:64]
        row.message = (exc.message or "")[:500]
        row.save()
        raise
    except GatewayError as exc:
        row.outcome, row.message = PaymentAttempt.Outcome.ERROR, str(exc)[:500]
        row.save()
        raise
    row.outcome = _intent_outcome(intent)
    row.save()
    return intent


def _confirm_and_record(*, charge, bill, payment, attempt, resuming: bool) -> str:
    from ..payments import _intent_outcome, _payment_move, _payment_sync, _retrieve

    intent: IntentResult | None = None
    if resuming or payment.status != Payment.Status.PENDING:
        try:
            intent = _retrieve(payment, source="autopay")
        except GatewayError:
            return "gateway_error"
        lost = PaymentAttempt.objects.filter(
            payment=payment, kind=PaymentAttempt.Kind.CONFIRM, outcome=PaymentAttempt.Outcome.PENDING
        )
        if intent.status != IntentStatus.REQUIRES_CONFIRMATION:
            # The confirm reached the gateway but its worker died before recording: complete its row from the intent.
            lost.update(outcome=_intent_outcome(intent), message="outcome read back from the gateway after a lost worker",
                        decline_code=(intent.decline_code or intent.error_code or "")[:64])  # fmt: skip
        _payment_sync(payment=payment, intent=intent, source="autopay")
    if payment.status == Payment.Status.PENDING and (
        intent is None or intent.status in (IntentStatus.REQUIRES_CONFIRMATION, IntentStatus.REQUIRES_PAYMENT_METHOD)
    ):
        stop = _stop_reason(charge, bill)
        if stop or bill.balance_due < payment.amount:
            return _try_abandon(charge=charge, payment=payment, attempt=attempt, stop=stop, bill=bill)
        try:
            intent = _confirm(payment)
        except PaymentDeclined as declined:
            if payment.status in Payment.IN_FLIGHT_STATUSES:
                _payment_move(payment=payment, to=Payment.Status.FAILED, message=f"autopay declined: {declined.code}")
            return _declined(charge, bill, attempt, code=declined.code, decline_code=declined.decline_code)
        except GatewayError:
            # Did it charge? Unknown: the row stays charging, and the resumed run asks the gateway.
            logger.warning("autopay charge %s: confirm failed, will resume", charge.pk, exc_info=True)
            return "gateway_error"
        _test_pause_point()  # tests only: the kill test stops the worker here, after the money moved
        _payment_sync(payment=payment, intent=intent, source="autopay")
    return _after_sync(charge=charge, bill=bill, payment=payment, attempt=attempt, intent=intent)


def _after_sync(*, charge, bill, payment, attempt, intent: IntentResult | None) -> str:
    from ..payments import _gateway_call, _payment_move

    if payment.status == Payment.Status.SUCCEEDED:
        attempt.outcome = AutopayChargeTry.Outcome.SUCCEEDED
        attempt.save(update_fields=["outcome"])
        _charge_move(charge, Status.SUCCEEDED, payment=payment, next_attempt_at=None, reason="",
                     message=f"paid by {payment.confirmation_number} ({attempt.method_role} card)")  # fmt: skip
        return charge.status
    if payment.status == Payment.Status.REQUIRES_ACTION:
        # Off-session, the bank wants the payer: cancel this intent (it can never complete behind their back) and
        # ask them to pay on-session with the pay link.
        gateway = get_gateway()
        try:
            _gateway_call(
                payment=payment, kind=PaymentAttempt.Kind.CANCEL, amount=payment.amount, key_from_attempt=True,
                call=lambda k: gateway.cancel_payment_intent(payment.gateway_payment_id, idempotency_key=k),
            )  # fmt: skip
        except GatewayError:
            return "gateway_error"
        _payment_move(payment=payment, to=Payment.Status.CANCELED, message="autopay: authentication required")
        return _declined(charge, bill, attempt, code="authentication_required", decline_code=None)
    if payment.status == Payment.Status.FAILED:
        code = (intent.error_code if intent else None) or "card_declined"
        return _declined(charge, bill, attempt, code=code, decline_code=intent.decline_code if intent else None)
    if payment.status == Payment.Status.CANCELED:
        return _declined(charge, bill, attempt, code="processing_error", decline_code=None)
    return charge.status  # processing: money is moving; the row stays charging and is resumed later


def _try_abandon(*, charge, bill, payment, attempt, stop: str) -> str:
    """The bill was paid (or changed) between step 1 and the confirm: cancel the unconfirmed intent, charge nothing."""
    from ..payments import _gateway_call, _payment_move

    gateway = get_gateway()
    try:
        _gateway_call(
            payment=payment, kind=PaymentAttempt.Kind.CANCEL, amount=payment.amount, key_from_attempt=True,
            call=lambda k: gateway.cancel_payment_intent(payment.gateway_payment_id, idempotency_key=k),
        )  # fmt: skip
    except GatewayError:
        pass  # never confirmed, so never charged; the janitor may cancel it later
    PaymentAttempt.objects.filter(
        payment=payment, kind=PaymentAttempt.Kind.CONFIRM, outcome=PaymentAttempt.Outcome.PENDING
    ).update(outcome=PaymentAttempt.Outcome.CANCELED, message="not sent: the bill changed before the charge")
    _payment_move(payment=payment, to=Payment.Status.CANCELED, message=f"autopay: not charged ({stop or 'amount'})")
    attempt.outcome = AutopayChargeTry.Outcome.CANCELLED
    attempt.save(update_fields=["outcome"])
    if stop:
        _charge_move(charge, Status.CANCELLED, reason=stop, next_attempt_at=None, message=stop)
        return charge.status
    # Partly paid another way: this attempt is void; a fresh attempt for the new balance starts at once.
    _charge_move(charge, Status.RETRY_SCHEDULED, next_attempt_at=timezone.now(), message="balance changed")
    return charge.status


def _declined(charge: AutopayCharge, bill: Bill, attempt: AutopayChargeTry, *, code, decline_code) -> str:
    info = decline_classify(code, decline_code)
    attempt.outcome = (
        AutopayChargeTry.Outcome.AUTHENTICATION
        if info.decline_class == DeclineClass.AUTHENTICATION
        else AutopayChargeTry.Outcome.DECLINED
    )
    raw = (decline_code or code or info.code)[:64]  # what the issuer said, even when the table does not know it
    attempt.decline_code, attempt.decline_class = raw, info.decline_class
    attempt.save(update_fields=["outcome", "decline_code", "decline_class"])
    charge.last_method_role = attempt.method_role
    charge.last_decline_code, charge.last_decline_class = raw, info.decline_class
    charge.first_failed_at = charge.first_failed_at or timezone.now()
    if info.decline_class != DeclineClass.SOFT:  # hard or authentication: never this card off-session again
        if attempt.method_role == Role.DEFAULT:
            charge.default_out = True
        else:
            charge.backup_out = True
    charge.save()
    logger.info("autopay charge %s: %s card declined (%s, %s)", charge.pk, attempt.method_role, info.code,
                info.decline_class)  # fmt: skip
    today = _local_today(charge.account.biller, timezone.now())
    if attempt.method_role == Role.DEFAULT and not charge.backup_tried:
        if autopay_cards(enrollment=charge.enrollment, today=today)[Role.BACKUP] is not None:
            return "continue"  # the backup card, once, at once
        charge.backup_tried = True
        charge.save(update_fields=["backup_tried", "updated_at"])
    return _conclude(charge, bill, attempt)


def _conclude(charge: AutopayCharge, bill: Bill, last: AutopayChargeTry | None) -> str:
    """An attempt ended without a success: retry later, or stop. Under the locks, in the recording transaction."""
    now = timezone.now()
    today = _local_today(charge.account.biller, now)
    cards = autopay_cards(enrollment=charge.enrollment, today=today)
    still_in = [r for r in (Role.DEFAULT, Role.BACKUP) if cards[r] is not None and not getattr(charge, f"{r}_out")]
    schedule = autopay_retry_days(charge.account.biller)
    # The notice names the last charge that failed (an earlier attempt's when this one found no card to charge).
    payment_id = last.payment_id if last else charge.tries.order_by("-pk").values_list("payment_id", flat=True).first()
    if not still_in:
        reason = Reason.AUTHENTICATION if charge.last_decline_class == DeclineClass.AUTHENTICATION else (
            Reason.HARD_DECLINE if last else Reason.NO_CARD)  # fmt: skip
        _charge_move(charge, Status.FAILED_FINAL, reason=reason, next_attempt_at=None,
                     message=f"stopped: {charge.last_decline_code or reason}")  # fmt: skip
        _notify("payment_failed", account_id=charge.account_id, bill_id=bill.pk, payment_id=payment_id)
        return charge.status
    if charge.attempt_number > len(schedule):
        _charge_move(charge, Status.FAILED_FINAL, reason=Reason.RETRIES_EXHAUSTED, next_attempt_at=None,
                     message=f"last retry failed: {charge.last_decline_code}")  # fmt: skip
        _enrollment_suspend(charge)
        _notify("autopay_suspended", account_id=charge.account_id, bill_id=bill.pk)
        return charge.status
    # Catch-up: retries keep their count, but two charges of one bill are never closer than AUTOPAY_MIN_RETRY_GAP_HOURS.
    planned = (charge.first_failed_at or now) + dt.timedelta(days=schedule[charge.attempt_number - 1])
    gap = dt.timedelta(hours=int(_setting("AUTOPAY_MIN_RETRY_GAP_HOURS", 12)))
    _charge_move(charge, Status.RETRY_SCHEDULED, next_attempt_at=max(planned, now + gap),
                 message=f"retry {charge.attempt_number} of {len(schedule)} scheduled after {charge.last_decline_code}")  # fmt: skip
    _notify("payment_failed", account_id=charge.account_id, bill_id=bill.pk, payment_id=payment_id)
    return charge.status


def _enrollment_suspend(charge: AutopayCharge) -> None:
    from ..enrollments import _autopay_move

    enrollment = AutopayEnrollment.objects.select_for_update().get(pk=charge.enrollment_id)
    if enrollment.status == AutopayEnrollment.Status.SUSPENDED:
        return
    if enrollment.can_transition_to(AutopayEnrollment.Status.SUSPENDED):
        _autopay_move(enrollment, AutopayEnrollment.Status.SUSPENDED,
                      message=f"the last retry of bill {charge.bill.number} failed")  # fmt: skip


def _test_pause_point() -> None:
    """Tests only (AUTOPAY_TEST_PAUSE_FILE is set by the kill test's worker settings, never in config/settings): write
    the marker file and sleep, right after the gateway answered the confirm and before anything is recorded, so the
    test can SIGKILL the worker at exactly that point. Once per marker file."""
    marker = _setting("AUTOPAY_TEST_PAUSE_FILE", "")
    if not marker or os.path.exists(marker):
        return
    Path(marker).write_text(str(os.getpid()))
    time.sleep(float(_setting("AUTOPAY_TEST_PAUSE_SECONDS", 60)))


# --------------------------------------------------------------------------------------------------------------------
# The hook in the payment-apply path


def autopay_stop_for_paid_bills(*, bills) -> int:
    """Called by services.payment_apply under the bill locks: a bill paid any way (guest, portal, offline, autopay
    itself) stops its waiting autopay rows at once. A row that is charging re-checks the bill under the same lock
    before it confirms, so it charges nothing either."""
    paid = [b.pk for b in bills if b.balance_due <= 0]
    if not paid:
        return 0
    rows = list(
        AutopayCharge.objects.select_for_update().filter(bill_id__in=paid, status__in=AutopayCharge.WAITING_STATUSES)
    )
    for charge in rows:
        _charge_move(charge, Status.CANCELLED, reason=Reason.PAID_ELSEWHERE, next_attempt_at=None,
                     message="bill paid another way")  # fmt: skip
    return len(rows)


# --------------------------------------------------------------------------------------------------------------------
# What the notices say (notifications/render.py asks for this)


def autopay_notice_context(notification) -> dict:
    """Autopay facts for the autopay notice kinds: amount, date, card, the decline reason in plain language, the next
    retry, the link to update cards. Empty for anything else."""
    kind = notification.kind
    if kind not in ("autopay_upcoming", "payment_failed", "autopay_suspended", "card_expiring"):
        return {}
    payment = notification.payment
    charge = None
    if payment is not None:
        autopay_try = AutopayChargeTry.objects.filter(payment=payment).select_related("charge").first()
        if autopay_try is None:
            return {}
        charge = autopay_try.charge
    elif notification.bill_id:
        charge = AutopayCharge.objects.filter(bill_id=notification.bill_id).order_by("-pk").first()
    cards_url = settings.SITE_URL + reverse("accounts:payment_methods")
    if kind == "card_expiring":
        enrollment = AutopayEnrollment.objects.filter(
            account_id=notification.account_id, status__in=AutopayEnrollment.CURRENT_STATUSES
        ).first()
        today = timezone.localdate()
        cards = _expiring_cards(enrollment, today) if enrollment else []
        return {"autopay": {"cards_url": cards_url, "expiring": ", ".join(str(c.summary) for c in cards)}}
    if charge is None:
        return {}
    enrollment = charge.enrollment
    info = decline_classify(charge.last_decline_code or None) if charge.last_decline_code else None
    return {
        "autopay": {
            "charge_on": charge.charge_on,
            "amount": format_money(charge.bill.balance_due, charge.currency),
            "card": enrollment.payment_method.summary if enrollment.payment_method_id else "",
            "above_max": charge.reason == Reason.ABOVE_MAX,
            "max_amount": format_money(enrollment.max_amount, charge.currency) if enrollment.max_amount else "",
            "reason": str(info.payer_message) if info else "",
            "authentication": charge.last_decline_class == DeclineClass.AUTHENTICATION,
            "next_attempt_at": charge.next_attempt_at if charge.status == Status.RETRY_SCHEDULED else None,
            "final": charge.status == Status.FAILED_FINAL,
            "cards_url": cards_url,
        }
    }


__all__ = [
    "PlanResult",
    "SweepResult",
    "autopay_cards",
    "autopay_charge",
    "autopay_charges_for_bill",
    "autopay_cards_expiring_notify",
    "autopay_notice_context",
    "autopay_plan",
    "autopay_stop_for_paid_bills",
    "autopay_sweep",
]
