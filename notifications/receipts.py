"""The notices that follow money moving: the receipt (payment_received) and the refund notice (refund_issued). Raised
by notifications.receivers on billing's payment_succeeded and refund_issued signals; billing never calls them."""

from __future__ import annotations

import datetime as dt
import logging

from django.db import transaction
from django.utils import timezone

from billing.models import Payment, Refund

from .models import NoticeKind
from .services import notice_enqueue, notices_dispatch, payment_notices_enqueue

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
            written += payment_notices_enqueue(kind=NoticeKind.PAYMENT_RECEIVED, payments=payments, now=now)
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
