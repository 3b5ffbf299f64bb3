"""Enrolment's receivers on billing.signals, connected in BillingConfig.ready()."""

from __future__ import annotations

import logging

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
