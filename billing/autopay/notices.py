"""Autopay notices: enqueued through the notifications outbox after commit, and what they say (the context
notifications/render.py asks for)."""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from billing.payments.gateway import DeclineClass, decline_classify

from ..models import AutopayCharge, AutopayChargeTry, AutopayEnrollment, Bill, CustomerAccount, Payment
from ..money import format_money
from .selectors import expiring_cards

logger = logging.getLogger(__name__)

Status = AutopayCharge.Status
Reason = AutopayCharge.Reason


def autopay_notify(kind: str, *, account_id: int, bill_id: int | None = None, payment_id: int | None = None) -> None:
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
        cards = expiring_cards(enrollment, today) if enrollment else []
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
