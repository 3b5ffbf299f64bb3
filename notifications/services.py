"""Services for the notification outbox: enqueue event notices, sweep due rows, send one row. The reminder planner
(planner.py) writes its rows into the same outbox.

Life of a row:
    planner / notice_enqueue ──> pending ──sweeper claims──> sending ──task──> sent
                                    ^                           │
                                    └── retry (backoff), ───────┤──> failed   (permanent error, or out of attempts)
                                        quiet hours, reclaim    └──> skipped  (bill paid, opted out, too late)

Long waits live in the row (`next_attempt_at`), never in a Celery ETA. The sweeper claims due rows with
select_for_update(skip_locked=True), so sweepers running at once take disjoint rows; the send task starts an attempt
with a conditional UPDATE, so a redelivered or duplicated task message finds nothing to do.

Reminder rows come from planner.py, which holds the catch-up rule (beat or the workers were down). The same checks
run again just before sending, so a row delayed by an outage or quiet hours cannot say something stale.
"""

import datetime as dt
import logging
from dataclasses import dataclass, field

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from billing.bulk import row_new, rows_insert
from billing.clock import biller_today
from billing.errors import ApplicationError
from billing.events import transition_check
from billing.models import Bill
from billing.plans.selectors import bills_in_good_standing_plans, plan_notice_stale

from .channels import PermanentSendError, TransientSendError, channel_get, channel_names
from .models import (
    AccountNoticeSettings,
    DeliveryAttempt,
    NoticeKind,
    NoticePolicy,
    NoticePreference,
    Notification,
    SmsOptOut,
)
from .preferences import (
    TRANSACTIONAL_KINDS,
    Policy,
    channel_address,
    channel_wanted,
    notice_address,
    outside_quiet_hours,
    phone_normalize,
    quiet_hours_for,
)
from .render import notification_render

logger = logging.getLogger(__name__)
Status = Notification.Status

REMINDER_KINDS = frozenset({NoticeKind.DUE_UPCOMING, NoticeKind.DUE_TODAY, NoticeKind.PAST_DUE})
BILL_KINDS = REMINDER_KINDS | {NoticeKind.BILL_ISSUED}


def max_attempts() -> int:
    return settings.NOTIFICATIONS_MAX_ATTEMPTS


def sending_timeout() -> dt.timedelta:
    # Longer than the send task's hard time limit plus a queue wait, so a live worker is never reclaimed from.
    return dt.timedelta(seconds=settings.NOTIFICATIONS_SENDING_TIMEOUT_SECONDS)


def retry_delay(attempts: int) -> dt.timedelta:
    """Exponential: 1, 2, 4, 8 … minutes after the 1st, 2nd, 3rd … failure, at most 6 hours."""
    base = settings.NOTIFICATIONS_RETRY_BASE_SECONDS
    return dt.timedelta(seconds=min(base * 2 ** max(attempts - 1, 0), 6 * 3600))


def dedupe_key(
    *, kind: str, channel: str, bill=None, payment=None, refund=None, mandate=None, plan=None,
    step: int | None = None, instalment: int | None = None,
) -> str:  # fmt: skip
    if plan is not None:
        subject = f"plan:{_pk(plan)}" + (f":{instalment}" if instalment is not None else "")
    elif mandate is not None:
        subject = f"mandate:{_pk(mandate)}"
    elif refund is not None:
        subject = f"refund:{_pk(refund)}"
    elif payment is not None:
        subject = f"payment:{_pk(payment)}"
    else:
        subject = f"bill:{_pk(bill)}"
    key = f"{subject}:{kind}:{channel}"
    return key if step is None else f"{key}:{step}"


def _pk(obj) -> int:
    return obj if isinstance(obj, int) else obj.pk


@dataclass
class _ChunkPeers:
    """What a chunk of bills needs besides the bills, loaded in one query each."""

    choices: dict
    settings_rows: dict
    opted_out: set


def chunk_peers(accounts) -> _ChunkPeers:
    account_ids = [a.pk for a in accounts]
    choices = {
        (account_id, kind, channel): enabled
        for account_id, kind, channel, enabled in NoticePreference.objects.filter(
            account_id__in=account_ids
        ).values_list("account_id", "kind", "channel", "enabled")
    }
    settings_rows = {s.account_id: s for s in AccountNoticeSettings.objects.filter(account_id__in=account_ids)}
    phones = sorted({p for p in (phone_normalize(a.phone) for a in accounts) if p})
    opted_out = set(SmsOptOut.objects.filter(phone__in=phones).values_list("phone", flat=True)) if phones else set()
    return _ChunkPeers(choices=choices, settings_rows=settings_rows, opted_out=opted_out)


# ----------------------------------------------------------------------------------------------------------------
# Enqueueing


@transaction.atomic
def notice_enqueue(
    *, kind: str, account, bill=None, payment=None, refund=None, mandate=None, plan=None,
    instalment: int | None = None, step: int | None = None, now: dt.datetime | None = None,
) -> list[Notification]:  # fmt: skip
    """Outbox rows for an event notice (payment received or failed, refund issued, autopay …) on every channel the
    account wants. Call it from the service that caused the event, after commit. Idempotent per event and channel."""
    if bill is None and payment is None and refund is None and mandate is None:
        raise ApplicationError("A notice needs a bill, a payment, a refund or a mandate.")
    now = now or timezone.now()
    biller = account.biller
    policy = Policy.of(NoticePolicy.objects.filter(biller_id=biller.pk).first())
    rows = _event_rows(
        kind=kind, account=account, policy=policy, peers=chunk_peers([account]), now=now, bill=bill, payment=payment,
        refund=refund, mandate=mandate, plan=plan, instalment=instalment, step=step,
    )  # fmt: skip
    Notification.objects.bulk_create(rows, ignore_conflicts=True)
    return list(Notification.objects.filter(dedupe_key__in=[r.dedupe_key for r in rows]).order_by("pk"))


def payment_notices_enqueue(*, kind: str, payments, now: dt.datetime | None = None) -> list[Notification]:
    """`notice_enqueue` for many payments at once (the receipts of a bank statement chunk), with a fixed number of
    queries however many: the billers' policies, the accounts' choices, one insert, one read back. The payments come
    with `account__biller` loaded. Idempotent per payment and channel."""
    rows = _payment_notice_rows(kind=kind, payments=payments, now=now)
    rows_insert(rows, ignore_conflicts=True)  # one statement however many (bulk_create splits them on SQLite)
    return list(Notification.objects.filter(dedupe_key__in=[r.dedupe_key for r in rows]).order_by("pk"))


def payment_notices_write(*, kind: str, payments, now: dt.datetime | None = None) -> int:
    """`payment_notices_enqueue` for a caller that leaves the rows to the sweep (autopay's receipts): the same rows,
    not read back. Returns how many were written (a row already there is skipped)."""
    return rows_insert(_payment_notice_rows(kind=kind, payments=payments, now=now), ignore_conflicts=True)


def _payment_notice_rows(*, kind: str, payments, now: dt.datetime | None) -> list[Notification]:
    now = now or timezone.now()
    # A payment nobody can be told of (no address on any channel: `channel_wanted` would refuse each) needs none of
    # the accounts' choices read: most of a bank statement's payers when the biller holds no addresses.
    names = channel_names()
    payments = [p for p in payments if any(notice_address(p.account, channel, p) for channel in names)]
    if not payments:
        return []
    accounts = list({p.account_id: p.account for p in payments}.values())
    policies = {
        row.biller_id: row for row in NoticePolicy.objects.filter(biller_id__in={a.biller_id for a in accounts})
    }
    peers = chunk_peers(accounts)
    return [
        row
        for payment in payments
        for row in _event_rows(
            kind=kind, account=payment.account, policy=Policy.of(policies.get(payment.account.biller_id)),
            peers=peers, now=now, payment=payment,
        )  # fmt: skip
    ]


def _event_rows(
    *, kind: str, account, policy: Policy, peers: _ChunkPeers, now: dt.datetime, bill=None, payment=None,
    refund=None, mandate=None, plan=None, instalment: int | None = None, step: int | None = None,
) -> list[Notification]:  # fmt: skip
    """The unsaved outbox rows of one event notice, one per channel the account wants."""
    # Whose e-mail address the notice goes to: the payer's typed address, or a mandate's account holder.
    paid_with = mandate or (payment if payment is not None else getattr(refund, "payment", None))
    quiet = quiet_hours_for(policy=policy, biller=account.biller, settings_row=peers.settings_rows.get(account.pk))
    at = now if kind in TRANSACTIONAL_KINDS else outside_quiet_hours(now, quiet)
    wanted = {"policy": policy, "choices": peers.choices, "opted_out": peers.opted_out, "payment": paid_with}
    return [
        row_new(
            Notification,
            dedupe_key=dedupe_key(kind=kind, channel=channel, bill=bill, payment=payment, refund=refund,
                                  mandate=mandate, plan=plan, instalment=instalment, step=step),
            biller_id=account.biller_id,
            account_id=account.pk,
            bill=bill,
            payment=payment,
            refund=refund,
            mandate=mandate,
            plan=plan,
            kind=kind,
            channel=channel,
            step=step,
            status=Status.PENDING,
            send_at=at,
            next_attempt_at=at,
        )  # fmt: skip
        for channel in channel_names()
        if channel_wanted(account=account, kind=kind, channel=channel, **wanted)
    ]


def notices_dispatch(*, notification_ids, now: dt.datetime | None = None, batch: bool = False) -> list[int]:
    """Send event notices now rather than at the next sweep (a receipt should not wait a minute): claim those of the
    given rows that are due, as the sweeper does (a row held by quiet hours keeps waiting), and enqueue one send task
    per row after commit (with `batch`, one task for all the rows: a statement chunk's receipts). A row already
    claimed or sent is left alone, so calling this twice sends nothing twice. If the broker refuses a message the
    rows go straight back to pending and the next sweep sends them."""
    now = now or timezone.now()
    _check(Status.PENDING, Status.SENDING)
    with transaction.atomic():
        ids = list(
            Notification.objects.select_for_update(skip_locked=True)
            .filter(pk__in=list(notification_ids), status=Status.PENDING, next_attempt_at__lte=now)
            .order_by("pk")
            .values_list("pk", flat=True)
        )
        if ids:
            Notification.objects.filter(pk__in=ids, status=Status.PENDING).update(
                status=Status.SENDING, claimed_at=now, attempt_started_at=None, updated_at=now
            )
            transaction.on_commit(lambda: (_enqueue_batch_or_release if batch else _enqueue_or_release)(ids))
    return ids


def _enqueue_batch_or_release(ids: list[int]) -> None:
    from .tasks import notifications_send_batch_task

    try:
        notifications_send_batch_task.delay(ids)
    except Exception:  # the broker is down: leave the rows to the sweeper instead of the sending timeout
        logger.exception("notifications %s: batch send task not enqueued; the sweeper will send them", ids)
        _release(ids)


def _enqueue_or_release(ids: list[int]) -> None:
    from .tasks import notification_send_task

    for pk in ids:
        try:
            notification_send_task.delay(pk)
        except Exception:  # the broker is down: leave the row to the sweeper instead of the sending timeout
            logger.exception("notification %s: send task not enqueued; the sweeper will send it", pk)
            _release([pk])


def _release(ids: list[int]) -> None:
    """Rows claimed for sending whose task never reached the broker: back to pending, due now."""
    now = timezone.now()
    Notification.objects.filter(pk__in=ids, status=Status.SENDING, attempt_started_at__isnull=True).update(
        status=Status.PENDING, claimed_at=None, next_attempt_at=now, updated_at=now
    )


# ----------------------------------------------------------------------------------------------------------------
# Sweeping


@dataclass
class SweepResult:
    receipts: int = 0
    reclaimed: int = 0
    failed_lost: int = 0
    claimed: list[int] = field(default_factory=list)
    requeued: list[int] = field(default_factory=list)


def _check(from_status: str, to_status: str) -> None:
    transition_check(
        Notification, to_status, from_status=from_status,
        error=lambda: f"A notification cannot go from {from_status} to {to_status}.",
    )  # fmt: skip


def notifications_sweep(
    *, now: dt.datetime | None = None, batch_size: int = 500, max_batches: int = 20, enqueue: bool = True
) -> SweepResult:
    """One short sweep: reclaim rows a dead worker left in sending, enqueue again claimed rows no worker started
    (a lost message), then claim due rows in batches and enqueue one send task per row after each batch commits. Safe
    to run concurrently (skip_locked) and repeatedly."""
    from .receipts import receipts_raise_batched

    now = now or timezone.now()
    result = SweepResult()
    result.receipts = receipts_raise_batched(now=now, batch_size=batch_size)  # claimed below with the other due rows
    result.reclaimed, result.failed_lost = notifications_reclaim(now=now, batch_size=batch_size)
    result.requeued = notifications_requeue_unstarted(now=now, batch_size=batch_size, enqueue=enqueue)
    _check(Status.PENDING, Status.SENDING)
    from .tasks import notification_send_task

    for _ in range(max_batches):
        with transaction.atomic():
            ids = list(
                Notification.objects.select_for_update(skip_locked=True)
                .filter(status=Status.PENDING, next_attempt_at__lte=now)
                .order_by("next_attempt_at", "pk")
                .values_list("pk", flat=True)[:batch_size]
            )
            if not ids:
                break
            Notification.objects.filter(pk__in=ids, status=Status.PENDING).update(
                status=Status.SENDING, claimed_at=now, attempt_started_at=None, updated_at=now
            )
            if enqueue:
                for pk in ids:
                    notification_send_task.delay_on_commit(pk)
        result.claimed.extend(ids)
        if len(ids) < batch_size:
            break
    return result


def notifications_requeue_unstarted(*, now: dt.datetime, batch_size: int = 500, enqueue: bool = True) -> list[int]:
    """Rows claimed more than NOTIFICATIONS_UNSTARTED_TIMEOUT_SECONDS ago that no worker has started: their task
    message was lost (a Redis flush, a purged queue) or still waits behind others. Enqueue each again and restart its
    claim's clock, instead of leaving it to the long sending timeout. Never sent twice: the worker starts a row with a
    conditional UPDATE (sending, not started), so the first message to arrive sends and any other finds it started."""
    from .tasks import notification_send_task

    unstarted_since = now - dt.timedelta(seconds=settings.NOTIFICATIONS_UNSTARTED_TIMEOUT_SECONDS)
    with transaction.atomic():
        ids = list(
            Notification.objects.select_for_update(skip_locked=True)
            .filter(status=Status.SENDING, attempt_started_at__isnull=True, claimed_at__lt=unstarted_since)
            .order_by("pk")
            .values_list("pk", flat=True)[:batch_size]
        )
        if ids:
            # Not a status change: the row stays claimed (sending), with a fresh message.
            Notification.objects.filter(pk__in=ids, status=Status.SENDING, attempt_started_at__isnull=True).update(
                claimed_at=now, updated_at=now
            )
            logger.warning("notifications %s: claimed but never started; their send tasks are enqueued again", ids)
            if enqueue:
                for pk in ids:
                    notification_send_task.delay_on_commit(pk)
    return ids


def notifications_reclaim(*, now: dt.datetime, batch_size: int = 500) -> tuple[int, int]:
    """Rows in sending for longer than the timeout: their worker died or their message was lost. A row that never
    started goes back to pending as is; one that started counts the attempt as lost and retries (or fails)."""
    stale = now - sending_timeout()
    reclaimed = failed = 0
    with transaction.atomic():
        rows = list(
            Notification.objects.select_for_update(skip_locked=True)
            .filter(status=Status.SENDING, claimed_at__lt=stale)
            .order_by("pk")[:batch_size]
        )
        lost = []
        for row in rows:
            if row.attempt_started_at is None:
                _move(row, Status.PENDING, now=now, next_attempt_at=now, claimed_at=None)
                reclaimed += 1
                continue
            lost.append(DeliveryAttempt(notification=row, number=row.attempts, outcome=DeliveryAttempt.Outcome.LOST,
                                        error="still sending after the timeout; the worker was lost"))  # fmt: skip
            if row.attempts >= max_attempts():
                _move(row, Status.FAILED, now=now, claimed_at=None, next_attempt_at=None,
                      last_error="worker lost on the last attempt")  # fmt: skip
                failed += 1
            else:
                _move(row, Status.PENDING, now=now, claimed_at=None, next_attempt_at=now + retry_delay(row.attempts),
                      last_error="worker lost; retrying")  # fmt: skip
                reclaimed += 1
        DeliveryAttempt.objects.bulk_create(lost)
    return reclaimed, failed


def _move(row: Notification, to: str, *, now: dt.datetime, guard: dict | None = None, **fields) -> bool:
    """Change one row's status if the map allows it and the row is still as we saw it. False if it moved meanwhile."""
    _check(row.status, to)
    updated = Notification.objects.filter(pk=row.pk, status=row.status, **(guard or {})).update(
        status=to, updated_at=now, **fields
    )
    if updated:
        row.status = to
        for name, value in fields.items():
            setattr(row, name, value)
    return bool(updated)


# ----------------------------------------------------------------------------------------------------------------
# Sending


def _payment_of(row: Notification):
    """What the e-mail recipient comes from (its `payer_email`): the payment a payment or refund notice is about, or
    the mandate a mandate notice is about (its account holder); else None."""
    if row.mandate_id:
        return row.mandate
    if row.payment_id:
        return row.payment
    return row.refund.payment if row.refund_id else None


def _skip_reason(row: Notification, now: dt.datetime) -> str:
    """Why a claimed row must not go out after all, or "". Re-checked at send time because time passed since planning."""
    account, biller = row.account, row.biller
    policy = Policy.of(NoticePolicy.objects.filter(biller_id=biller.pk).first())
    if row.kind in BILL_KINDS and row.bill_id:
        bill = row.bill
        if bill.status in (Bill.Status.VOID, Bill.Status.DRAFT):
            return f"bill is {bill.status}"
        if row.kind in REMINDER_KINDS and (bill.status != Bill.Status.OPEN or bill.balance_due <= 0):
            return "bill no longer owes anything" if bill.balance_due <= 0 else f"bill is {bill.status}"
        if row.kind in REMINDER_KINDS and bills_in_good_standing_plans(bill_ids=[bill.pk]):
            return "the bill is on a payment plan in good standing"
        today = biller_today(biller, now=now)
        if row.kind == NoticeKind.DUE_UPCOMING and today >= bill.due_date:
            return "the due date has come"
        if row.kind == NoticeKind.DUE_TODAY and today != bill.due_date:
            return "the due date has passed"
        if row.kind == NoticeKind.PAST_DUE and row.step is not None:
            late = (today - bill.due_date - dt.timedelta(days=row.step)).days
            if late > policy.catch_up_days:
                return f"{late} days late, more than the {policy.catch_up_days} allowed"
    if row.plan_id:
        reason = plan_notice_stale(row)
        if reason:
            return reason
    peers = chunk_peers([account])
    if not channel_wanted(
        account=account, kind=row.kind, channel=row.channel, policy=policy, choices=peers.choices,
        opted_out=peers.opted_out, payment=_payment_of(row),
    ):  # fmt: skip
        if row.channel == "sms" and channel_address(account, "sms") in peers.opted_out:
            return "the number replied STOP"
        return "the account no longer wants this notice on this channel"
    return ""


def _quiet_until(row: Notification, now: dt.datetime) -> dt.datetime | None:
    if row.kind in TRANSACTIONAL_KINDS:
        return None
    policy = Policy.of(NoticePolicy.objects.filter(biller_id=row.biller_id).first())
    settings_row = AccountNoticeSettings.objects.filter(account_id=row.account_id).first()
    quiet = quiet_hours_for(policy=policy, biller=row.biller, settings_row=settings_row)
    return quiet.end_if_inside(now) if quiet else None


def notification_send(*, notification_id: int, now: dt.datetime | None = None) -> str:
    """Send one claimed row. Returns the row's resulting status, or "noop" when there was nothing to do (the row is
    not in sending, or another delivery of the same task already started this claim)."""
    now = now or timezone.now()
    # Start the attempt: exactly one caller wins this conditional update per claim.
    started = Notification.objects.filter(
        pk=notification_id, status=Status.SENDING, attempt_started_at__isnull=True
    ).update(attempt_started_at=now, updated_at=now)
    if not started:
        return "noop"
    row = Notification.objects.select_related("account", "biller", "bill", "payment", "refund__payment", "mandate").get(
        pk=notification_id
    )
    guard = {"attempt_started_at": row.attempt_started_at}

    reason = _skip_reason(row, now)
    if reason:
        _move(row, Status.SKIPPED, now=now, guard=guard, last_error=f"not sent: {reason}", next_attempt_at=None)
        return row.status
    quiet_end = _quiet_until(row, now)
    if quiet_end is not None:
        _move(row, Status.PENDING, now=now, guard=guard, next_attempt_at=quiet_end, claimed_at=None,
              attempt_started_at=None, last_error="")  # fmt: skip
        return row.status

    address = notice_address(row.account, row.channel, _payment_of(row))
    number = row.attempts + 1
    try:
        message = notification_render(row, to=address, now=now)
        provider_id = channel_get(row.channel).send(message)
    except TransientSendError as exc:
        return _attempt_failed(row, now=now, guard=guard, number=number, error=str(exc), permanent=False)
    except PermanentSendError as exc:
        return _attempt_failed(row, now=now, guard=guard, number=number, error=str(exc), permanent=True)
    except Exception as exc:  # a bug in a template or a backend: retried, and visible in the admin
        logger.exception("notification %s failed unexpectedly", row.pk)
        return _attempt_failed(row, now=now, guard=guard, number=number, error=f"{type(exc).__name__}: {exc}",
                               permanent=False)  # fmt: skip

    with transaction.atomic():
        DeliveryAttempt.objects.create(notification=row, number=number, outcome=DeliveryAttempt.Outcome.SENT,
                                       provider_id=provider_id)  # fmt: skip
        moved = _move(row, Status.SENT, now=now, guard=guard, attempts=number, provider_id=provider_id, sent_at=now,
                      recipient=address, language=row.account.language, last_error="", next_attempt_at=None)  # fmt: skip
    if not moved:
        logger.warning("notification %s was sent but changed meanwhile (reclaimed?)", row.pk)
    return row.status


def _attempt_failed(row, *, now, guard, number: int, error: str, permanent: bool) -> str:
    outcome = DeliveryAttempt.Outcome.PERMANENT if permanent else DeliveryAttempt.Outcome.TRANSIENT
    error = error[:2000]
    with transaction.atomic():
        DeliveryAttempt.objects.create(notification=row, number=number, outcome=outcome, error=error)
        if permanent or number >= max_attempts():
            suffix = "" if permanent else f" (gave up after {number} attempts)"
            _move(row, Status.FAILED, now=now, guard=guard, attempts=number, last_error=error + suffix,
                  next_attempt_at=None, recipient=notice_address(row.account, row.channel, _payment_of(row)))  # fmt: skip
        else:
            _move(row, Status.PENDING, now=now, guard=guard, attempts=number, last_error=error, claimed_at=None,
                  attempt_started_at=None, next_attempt_at=now + retry_delay(number))  # fmt: skip
    return row.status


# ----------------------------------------------------------------------------------------------------------------
# SMS opt-out


def sms_opt_out_record(*, phone: str, source: str = "sms_stop", keyword: str = "") -> SmsOptOut | None:
    number = phone_normalize(phone)
    if not number:
        return None
    opt_out, _created = SmsOptOut.objects.get_or_create(phone=number, defaults={"source": source, "keyword": keyword})
    return opt_out


def sms_opt_in_record(*, phone: str) -> bool:
    deleted, _ = SmsOptOut.objects.filter(phone=phone_normalize(phone)).delete()
    return bool(deleted)
