"""Enrolment's receivers on billing.signals, connected in BillingConfig.ready()."""

from __future__ import annotations

import logging

from django.db.models import Q

from billing.models import Payment

from .guest import guest_enrollment_record

logger = logging.getLogger(__name__)


def guest_choices_on_payment_succeeded(sender, *, payment_id: int, channel: str | None = None, **kwargs) -> None:
    """payment_succeeded (after commit): keep the payer's enrolment ticks from the payment page (paperless, save the
    card for autopay). Runs before the receipt (notifications connects later). Errors are logged, never raised into
    the webhook or the payer's request."""
    if channel == Payment.Channel.AUTOPAY:
        return  # no payment page, so no ticks: not even a read for each autopay charge
    try:
        payment = Payment.objects.select_related("account").get(pk=payment_id)
        email = payment.payer_email or payment.account.email
        if email and (payment.paperless_requested or payment.save_card_requested):
            guest_enrollment_record(
                payment=payment, email=email, paperless=payment.paperless_requested,
                autopay=payment.save_card_requested,
            )  # fmt: skip
    except Exception:
        logger.exception("payment %s: receipt or enrolment after success failed", payment_id)


def guest_choices_on_payments_succeeded(sender, *, payment_ids: list[int], **kwargs) -> None:
    """payments_succeeded (after commit, a batch): the same for each payment of the batch that asked for something
    (one query when none did, as bank transfers never do)."""
    wanting = (
        Payment.objects.filter(pk__any_of=payment_ids)
        .filter(Q(paperless_requested=True) | Q(save_card_requested=True))
        .values_list("pk", flat=True)
    )
    try:
        wanting = list(wanting)
    except Exception:
        logger.exception("payments %s: enrolment after success failed", payment_ids[:20])
        return
    for payment_id in wanting:
        guest_choices_on_payment_succeeded(sender, payment_id=payment_id)
