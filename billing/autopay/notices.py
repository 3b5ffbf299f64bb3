"""Autopay notices: asked for through billing.signals.autopay_notice_wanted (the notifications app enqueues them in
its outbox after commit), and what they say (the context notifications/render.py asks for with
notice_context_wanted)."""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.urls import reverse
from django.utils import timezone

from billing.payments.gateway import DeclineClass, bank_decline_classify, decline_classify

from ..models import AutopayCharge, AutopayChargeTry, AutopayEnrollment
from ..money import format_money
from ..signals import autopay_notice_wanted
from .selectors import expiring_cards

Status = AutopayCharge.Status
Reason = AutopayCharge.Reason


def autopay_notify(
    kind: str, *, account_id: int, bill_id: int | None = None, payment_id: int | None = None,
    once_per_bill: bool = False,
) -> bool:
    """Ask for an autopay notice (billing.signals.autopay_notice_wanted). The notifications app enqueues it through
    its outbox after commit (the outbox's unique key makes it once per event) and logs, never raises, a failure to
    enqueue. With once_per_bill, nothing is raised when a notice of this kind exists for the bill already. Returns
    whether a receiver took it."""
    responses = autopay_notice_wanted.send(
        sender=AutopayCharge, kind=kind, account_id=account_id, bill_id=bill_id, payment_id=payment_id,
        once_per_bill=once_per_bill,
    )  # fmt: skip
    return any(response is True for _receiver, response in responses)


# --------------------------------------------------------------------------------------------------------------------
# Bank debits: the pre-notification (amount, date, mandate reference), once per charge, before the debit


def debit_notice_given(charge: AutopayCharge) -> bool:
    """Whether the charge's pre-notification went out. Raising it also moved the charge's next attempt to at least
    the biller's debit_notice_days later, and the sweeper claims no bank charge before then."""
    return charge.debit_notice_at is not None


def autopay_debit_notices_raise(*, now: dt.datetime | None = None) -> int:
    """Raise the pre-notification of every waiting charge that will debit a bank account and has none yet, and move
    its debit to no earlier than the notice plus the biller's debit_notice_days. Safe to run repeatedly: a charge is
    notified once (debit_notice_at, under its row lock; the outbox key is per bill)."""
    from django.db import transaction

    from ..models import PaymentMethod

    now = now or timezone.now()
    raised = 0
    waiting = AutopayCharge.objects.filter(
        status__in=AutopayCharge.WAITING_STATUSES, debit_notice_at__isnull=True,
        enrollment__status=AutopayEnrollment.Status.ACTIVE,
        enrollment__payment_method__kind__in=PaymentMethod.BANK_KINDS,
    )  # fmt: skip
    for charge_id in waiting.order_by("pk").values_list("pk", flat=True):
        with transaction.atomic():
            charge = (
                AutopayCharge.objects.select_for_update(skip_locked=True, of=("self",))
                .select_related("account__biller")
                .filter(pk=charge_id, status__in=AutopayCharge.WAITING_STATUSES, debit_notice_at__isnull=True)
                .first()
            )
            if charge is None:
                continue
            earliest = now + dt.timedelta(days=charge.account.biller.debit_notice_days)
            charge.debit_notice_at = now
            charge.next_attempt_at = max(charge.next_attempt_at or earliest, earliest)
            charge.save(update_fields=["debit_notice_at", "next_attempt_at", "updated_at"])
            autopay_notify("debit_notice", account_id=charge.account_id, bill_id=charge.bill_id)
            raised += 1
    return raised


def _debit_notice_context(charge: AutopayCharge) -> dict:
    method = charge.enrollment.payment_method
    mandate = getattr(method, "mandate", None)
    return {
        "debit": {
            "amount": format_money(charge.bill.balance_due, charge.currency),
            "date": timezone.localtime(charge.next_attempt_at).date() if charge.next_attempt_at else charge.charge_on,
            "bank": method.summary,
            "reference": mandate.display_reference if mandate else "",
            "creditor_identifier": mandate.creditor_identifier if mandate else "",
        }
    }


def autopay_notice_context(notification) -> dict:
    """Autopay facts for the autopay notice kinds: amount, date, card, the decline reason in plain language, the next
    retry, the link to update cards. Empty for anything else."""
    kind = notification.kind
    if kind == "debit_notice" and notification.bill_id:
        charge = AutopayCharge.objects.filter(bill_id=notification.bill_id).order_by("-pk").first()
        return _debit_notice_context(charge) if charge else {}
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
    mandate = charge.enrollment or charge.instalment.plan
    max_amount = getattr(mandate, "max_amount", None)
    amount = charge.amount if charge.instalment_id and charge.amount else charge.bill.balance_due
    method = mandate.payment_method
    classify = bank_decline_classify if method is not None and method.is_bank_account else decline_classify
    info = classify(charge.last_decline_code or None) if charge.last_decline_code else None
    return {
        "autopay": {
            "charge_on": charge.charge_on,
            "amount": format_money(amount, charge.currency),
            "card": mandate.payment_method.summary if mandate.payment_method_id else "",
            "above_max": charge.reason == Reason.ABOVE_MAX,
            "max_amount": format_money(max_amount, charge.currency) if max_amount else "",
            "reason": str(info.payer_message) if info else "",
            "authentication": charge.last_decline_class == DeclineClass.AUTHENTICATION,
            "next_attempt_at": charge.next_attempt_at if charge.status == Status.RETRY_SCHEDULED else None,
            "final": charge.status == Status.FAILED_FINAL,
            "cards_url": cards_url,
        }
    }
