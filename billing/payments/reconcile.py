"""The janitor for online payments: ask the gateway about payments left unfinished (a lost webhook, a closed tab) and
cancel those abandoned."""

from __future__ import annotations

import logging
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from billing.models import Payment

from .attempts import account_lock, payment_intent_cancel, payment_intent_retrieve, payment_status_move
from .core import ABANDONED_AFTER, OPEN_INTENT_STATUSES, payment_sync
from .gateway import GatewayError

logger = logging.getLogger(__name__)


def payments_reconcile(*, older_than_minutes: int = 15, batch_size: int = 500) -> dict[str, int]:
    """Ask the gateway about online payments left unfinished for `older_than_minutes` (a webhook lost, a payer who
    closed the tab), and cancel those abandoned for ABANDONED_AFTER. Accounts another worker holds are skipped; the
    next run takes them."""
    now = timezone.now()
    candidates = list(
        Payment.objects.filter(
            status__in=Payment.IN_FLIGHT_STATUSES,
            updated_at__lt=now - timedelta(minutes=older_than_minutes),
        )
        .order_by("pk")
        .values_list("pk", "account_id")[:batch_size]
    )
    counts = {"checked": 0, "skipped": 0, "canceled": 0, "errors": 0}
    for pk, account_id in candidates:
        try:
            with transaction.atomic():
                if account_lock(account_id, skip_locked=True) is None:
                    counts["skipped"] += 1
                    continue
                payment = Payment.objects.select_for_update().get(pk=pk)
                if payment.status not in Payment.IN_FLIGHT_STATUSES:
                    continue
                counts["checked"] += 1
                counts["canceled"] += _payment_reconcile_locked(payment=payment, abandoned_before=now - ABANDONED_AFTER)
        except GatewayError:
            counts["errors"] += 1
            logger.warning("payment %s: reconcile failed, will try again on the next run", pk, exc_info=True)
    return counts


def _payment_reconcile_locked(*, payment: Payment, abandoned_before) -> int:
    intent = None
    if payment.gateway_payment_id:
        intent = payment_intent_retrieve(payment, source="janitor")
        payment_sync(payment=payment, intent=intent, source="janitor")
    if payment.status not in Payment.IN_FLIGHT_STATUSES or payment.updated_at >= abandoned_before:
        return 0
    if intent is not None and intent.status not in OPEN_INTENT_STATUSES:
        return 0  # processing: money is moving, never cancel it
    if intent is not None:
        payment_intent_cancel(payment=payment)
    payment_status_move(payment=payment, to=Payment.Status.CANCELED, message="abandoned: not completed within 24 hours")
    return 1
