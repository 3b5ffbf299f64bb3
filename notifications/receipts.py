"""The notices that follow money moving: the receipt (payment_received) and the refund notice (refund_issued). Raised
by notifications.receivers on billing's payment_succeeded and refund_issued signals; billing never calls them."""

from __future__ import annotations

import datetime as dt
import logging

from django.db import transaction
from django.utils import timezone

from billing.models import Biller, Payment, Refund

from .models import NoticeKind
from .preferences import payment_addressed_q
from .services import notice_enqueue, notices_dispatch, payment_notices_enqueue, payment_notices_write

logger = logging.getLogger(__name__)


def receipt_send(*, payment_id: int) -> bool:
    """Raise the payment_received notice once, through the notifications outbox, and have it sent now. Returns False
    when it was raised before, the payment did not succeed, or there is nobody to tell.

    The e-mail (notifications/templates/notifications/payment_received/) carries the receipt: amounts, fee, tip,
    total, bills paid, card and the signed receipt link; it goes to Payment.payer_email when the payer typed one.
    Sent once: the outbox allows one row per payment, kind and channel and sends each row once, so callers racing
    here (webhook, return, janitor) may all enqueue; receipt_sent_at ("notice raised at", set by one conditional
    UPDATE) picks the one that hands the rows to a worker. No lock is held while the rows are written: recording a
    success locks the account then the payment, and the rows' foreign keys touch both."""
    payment = Payment.objects.select_related("account__biller").get(pk=payment_id)
    if payment.receipt_sent_at is not None or payment.status != Payment.Status.SUCCEEDED:
        return False
    rows = notice_enqueue(kind=NoticeKind.PAYMENT_RECEIVED, account=payment.account, payment=payment)
    if not rows:
        return False
    with transaction.atomic():
        now = timezone.now()
        marked = Payment.objects.filter(pk=payment_id, receipt_sent_at__isnull=True).update(
            receipt_sent_at=now, updated_at=now
        )
        if marked:
            # Claimed and handed to a worker once this commits; if the broker is down the beat sweeper sends them.
            notices_dispatch(notification_ids=[row.pk for row in rows])
    return bool(marked)


# What choosing a receipt's channels reads of an account (notifications/preferences.py).
_ACCOUNT_FIELDS = ("biller_id", "email", "phone", "email_notices", "sms_notices")


def receipts_send(*, payment_ids: list[int]) -> int:
    """`receipt_send` for a batch of payments (a bank statement chunk's transfers), with a fixed number of queries
    however many: the payments, the outbox rows of all of them in one insert, one conditional UPDATE of
    receipt_sent_at under the payments' row locks (primary-key order) that claims those not raised yet, and one send
    task for the batch. Returns how many receipts this call raised."""
    payments = list(
        Payment.objects.filter(pk__any_of=payment_ids, receipt_sent_at__isnull=True, status=Payment.Status.SUCCEEDED)
        .filter(payment_addressed_q())  # nobody to tell, no receipt: not read (most of a statement's payers)
        .select_related("account")
        .only("account_id", "payer_email", *(f"account__{name}" for name in _ACCOUNT_FIELDS))
        .order_by("pk")
    )
    if not payments:
        return 0
    billers = Biller.objects.in_bulk({p.account.biller_id for p in payments})
    for payment in payments:
        payment.account.biller = billers[payment.account.biller_id]
    rows = payment_notices_enqueue(kind=NoticeKind.PAYMENT_RECEIVED, payments=payments)
    with_rows = sorted({row.payment_id for row in rows})
    if not with_rows:
        return 0
    with transaction.atomic():
        now = timezone.now()
        claimed = list(
            Payment.objects.select_for_update()
            .filter(pk__in=with_rows, receipt_sent_at__isnull=True)
            .order_by("pk")
            .values_list("pk", flat=True)
        )
        if claimed:
            Payment.objects.filter(pk__in=claimed).update(receipt_sent_at=now, updated_at=now)
            mine = set(claimed)
            notices_dispatch(notification_ids=[row.pk for row in rows if row.payment_id in mine], batch=True)
    return len(claimed)


def payments_after_success(*, payment_ids: list[int]) -> None:
    """On payments_succeeded (after commit, a batch of bank transfers): their receipts. Errors are logged, never
    raised into the statement import."""
    try:
        receipts_send(payment_ids=payment_ids)
    except Exception:
        logger.exception("payments %s: receipts not raised", payment_ids[:20])


# Autopay's receipts are raised in batches by the notifications sweep (every minute), not one by one after each charge:
# the payer is not waiting on a page, and a batch costs a few queries for hundreds of receipts where one receipt cost
# sixteen queries and a broker round trip inside the charge worker. A payment older than this (the sweep was down for
# longer) gets no receipt rather than a late one.
BATCHED_RECEIPT_MAX_AGE = dt.timedelta(days=2)


def receipt_batched(payment_channel: str | None) -> bool:
    """Is the receipt of a payment made on this channel raised by `receipts_raise_batched` (autopay's)?"""
    return payment_channel == Payment.Channel.AUTOPAY


def receipts_raise_batched(*, now=None, batch_size: int = 500) -> int:
    """The receipts of autopay's successful payments that have none yet, in batches of `batch_size` payments: one
    read, the policies and choices of the batch (chunk_peers), one insert of outbox rows (pending, due now: the
    sweep that runs this claims and sends them), and one UPDATE of receipt_sent_at. Safe to run concurrently and
    again: the outbox's unique key per payment, kind and channel, and the conditional UPDATE. No row is locked, so a
    recorder holding an account lock never waits on a batch (nor the other way round). Returns the rows written."""
    now = now or timezone.now()
    written = last_pk = 0
    while True:
        payments = list(
            Payment.objects.filter(
                channel=Payment.Channel.AUTOPAY, status=Payment.Status.SUCCEEDED, receipt_sent_at__isnull=True,
                received_at__gte=now - BATCHED_RECEIPT_MAX_AGE, pk__gt=last_pk,
            )
            .select_related("account__biller")
            .order_by("pk")[:batch_size]
        )  # fmt: skip
        if not payments:
            break
        last_pk = payments[-1].pk
        with transaction.atomic():
            written += payment_notices_write(kind=NoticeKind.PAYMENT_RECEIVED, payments=payments, now=now)
            Payment.objects.filter(pk__in=[p.pk for p in payments], receipt_sent_at__isnull=True).update(
                receipt_sent_at=now, updated_at=now
            )
        if len(payments) < batch_size:
            break
    return written


def payment_after_success(*, payment_id: int) -> None:
    """On payment_succeeded (after commit, whichever path recorded the success): send the receipt. Errors are logged,
    never raised into the webhook or the payer's request. The guest's enrolment ticks were recorded just before, by
    billing.enrolment.receivers (connected first)."""
    try:
        receipt_send(payment_id=payment_id)
    except Exception:
        # The wording predates the split of this hook in two (billing.enrolment.receivers logs the same way).
        logger.exception("payment %s: receipt or enrolment after success failed", payment_id)


def refund_notice_send(*, refund_id: int) -> bool:
    """Raise the refund_issued notice (amount and reason; the e-mail goes to the payer's address) through the
    notifications outbox and have it sent now. Once per refund and channel. False when there is nobody to tell."""
    refund = Refund.objects.select_related("payment__account__biller").get(pk=refund_id)
    payment = refund.payment
    rows = notice_enqueue(kind=NoticeKind.REFUND_ISSUED, account=payment.account, payment=payment, refund=refund)
    notices_dispatch(notification_ids=[row.pk for row in rows])
    return bool(rows)
