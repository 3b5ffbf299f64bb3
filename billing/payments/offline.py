"""Payments staff record by hand: cash or a cheque at the counter or by mail, a bank transfer."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from billing.errors import ApplicationError
from billing.events import event_record
from billing.models import BillingEvent, CustomerAccount, Payment

from .allocations import payment_apply
from .core import confirmation_number_new


@transaction.atomic
def payment_record_offline(
    *,
    account: CustomerAccount,
    amount: int,
    method: str,
    reference: str = "",
    received_at=None,
    actor=None,
) -> Payment:
    """Staff record cash or a cheque received at the counter or by mail."""
    if method not in (Payment.Method.CASH, Payment.Method.CHEQUE, Payment.Method.BANK_TRANSFER):
        raise ApplicationError(_("Offline payments are cash, cheque or bank transfer."))
    if amount <= 0:
        raise ApplicationError(_("The amount must be more than zero."))
    if method == Payment.Method.CHEQUE and not reference.strip():
        raise ApplicationError(_("Enter the cheque number as the reference."))
    currency = account.biller.currency
    payment = Payment.objects.create(
        biller_id=account.biller_id,
        account=account,
        confirmation_number=confirmation_number_new(),
        channel=Payment.Channel.STAFF_OFFLINE,
        method=method,
        status=Payment.Status.SUCCEEDED,
        currency=currency,
        amount=amount,
        reference=reference.strip(),
        received_at=received_at or timezone.now(),
        recorded_by=actor if getattr(actor, "is_authenticated", False) else None,
    )
    event_record(
        kind=BillingEvent.Kind.PAYMENT_RECORDED, payment=payment, to_status=payment.status, amount=amount,
        currency=currency, message=f"{payment.get_method_display()} {payment.reference}".strip(), actor=actor,
    )
    payment_apply(payment=payment, actor=actor)
    return payment
