"""The notices that follow money moving: the receipt (payment_received) and the refund notice (refund_issued). Raised
by notifications.receivers on billing's payment_succeeded and refund_issued signals; billing never calls them."""

from __future__ import annotations

import logging

from django.db import transaction
from django.utils import timezone

from billing.models import Payment, Refund

from .models import NoticeKind
from .services import notice_enqueue, notices_dispatch

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
