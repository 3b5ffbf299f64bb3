"""Bank transfers, the core's entry for money that arrives with no intent: a credit line of a bank statement matched
to an account (billing/banking/ finds the account; this records and applies the money), and the bank's return of
such a transfer.

A transfer is one succeeded Payment (channel and method `bank_transfer`) keyed on the bank's transaction
(`idempotency_key`, unique), so the same bank entry can never be recorded twice, whoever asks. Its amount is what the
bank credited; `payment_apply` puts it on the bills oldest due first, never more than they owe, and the rest is held
as account credit (billing/payments/credit.py).
"""

from __future__ import annotations

import copy
import hashlib
from dataclasses import dataclass

from django.db import transaction
from django.db.models import Sum
from django.utils import timezone
from django.utils.translation import gettext as _

from billing.errors import ApplicationError
from billing.events import event_record
from billing.models import AccountCreditEntry, Bill, BillingEvent, CustomerAccount, Payment, Refund
from billing.signals import payment_succeeded

from .allocations import allocations_reverse, payment_apply
from .attempts import account_lock
from .core import confirmation_number_new
from .credit import bank_refund_record, credit_receive, credit_take_back


@dataclass(frozen=True)
class TransferResult:
    payment: Payment
    applied: int  # put on bills
    credited: int  # held as account credit
    created: bool  # False: this bank entry was already recorded (nothing new was written)


def bank_entry_key(*, kind: str, biller_id: int, entry_key: str) -> str:
    """A unique-column key for a bank entry of a biller ("transfer" or "return"). Long bank references are hashed so
    the key fits; the biller is part of it because two billers' banks may number their entries alike."""
    raw = f"{biller_id}:{entry_key}"
    if len(raw) > 70:
        raw = f"{biller_id}:sha256:{hashlib.sha256(entry_key.encode()).hexdigest()[:48]}"
    return f"bank-{kind}:{raw}"


def payment_record_bank_transfer(
    *,
    account: CustomerAccount,
    amount: int,
    currency: str,
    key: str,
    received_at=None,
    reference: str = "",
    payer_name: str = "",
    actor=None,
) -> TransferResult:
    """Record a bank transfer to `account` and apply it: bills oldest due first, the rest held as credit. Runs in
    the caller's transaction if there is one (the statement matcher's per-line one), else its own. Idempotent on
    `key` (see `bank_entry_key`): a second call returns the first payment with created=False."""
    if amount <= 0:
        raise ApplicationError(_("The amount must be more than zero."))
    with transaction.atomic():
        account = account_lock(account.pk)
        existing = Payment.objects.filter(idempotency_key=key).first()
        if existing is not None:
            return _result_of(existing)
        if currency.upper() != account.biller.currency.upper():
            raise ApplicationError(
                _("The transfer is in %(currency)s; this account's bills are in %(bills)s.")
                % {"currency": currency.upper(), "bills": account.biller.currency}
            )
        payment = Payment.objects.create(
            biller_id=account.biller_id, account=account, confirmation_number=confirmation_number_new(),
            channel=Payment.Channel.BANK_TRANSFER, method=Payment.Method.BANK_TRANSFER,
            status=Payment.Status.SUCCEEDED, currency=account.biller.currency, amount=amount,
            reference=reference[:100], idempotency_key=key, received_at=received_at or timezone.now(),
            payment_method_summary=(_("Bank transfer") + (f", {payer_name}" if payer_name else ""))[:64],
            payer_email=account.email,
        )  # fmt: skip
        event_record(
            kind=BillingEvent.Kind.PAYMENT_RECORDED, payment=payment, to_status=payment.status, amount=amount,
            currency=payment.currency, message=f"bank transfer {reference}".strip(), actor=actor,
        )  # fmt: skip
        owed = sum(
            bill.balance_due
            for bill in Bill.objects.select_for_update()
            .filter(account_id=account.pk, status__in=Bill.PAYABLE_STATUSES)
            .order_by("pk")
        )
        applied = min(owed, amount)
        if applied:
            portion = copy.copy(payment)  # payment_apply applies `amount`; the row keeps what the bank credited
            portion.amount = applied
            payment_apply(payment=portion, actor=actor)
        if amount > applied:
            credit_receive(account=account, payment=payment, amount=amount - applied, actor=actor)
        payment_pk = payment.pk
        transaction.on_commit(
            lambda: payment_succeeded.send_robust(sender=Payment, payment_id=payment_pk), robust=True
        )
        return TransferResult(payment=payment, applied=applied, credited=amount - applied, created=True)


def _result_of(payment: Payment) -> TransferResult:
    credited = (
        AccountCreditEntry.objects.filter(source_payment=payment, kind=AccountCreditEntry.Kind.RECEIVED)
        .values_list("amount", flat=True)
        .first()
        or 0
    )
    return TransferResult(payment=payment, applied=payment.amount - credited, credited=credited, created=False)


def payment_bank_transfer_return(*, payment: Payment, amount: int, key: str, reason: str, actor=None) -> int:
    """The bank sent a transfer back (a return, an R-transaction): take back what it gave, in this order: its credit
    still held, then the bills it paid (newest first; paid bills reopen), then the bills its credit paid later.
    Idempotent on `key`. Returns the amount reversed (0 if this return was already recorded)."""
    with transaction.atomic():
        account = account_lock(payment.account_id)
        payment = Payment.objects.select_for_update().get(pk=payment.pk)
        if Refund.objects.filter(idempotency_key=key).exists():
            return 0
        if payment.channel != Payment.Channel.BANK_TRANSFER:
            raise ApplicationError(_("Only a bank transfer can be returned by the bank."))
        amount = min(amount, payment.refundable)
        if amount <= 0:
            raise ApplicationError(_("This transfer has already been given back in full."))
        refund = bank_refund_record(
            payment=payment, amount=amount, kind=Refund.Kind.BANK_RETURN, key=key, reason=reason, actor=actor
        )
        left = amount - credit_take_back(account=account, source=payment, amount=amount, refund=refund, actor=actor)
        left -= allocations_reverse(payment=payment, amount=left, reason=reason, actor=actor)
        # What is still left was the transfer's credit, since put on later bills by account-credit payments.
        spent = (
            AccountCreditEntry.objects.filter(source_payment=payment, kind=AccountCreditEntry.Kind.APPLIED)
            .values("payment_id")
            .annotate(total=Sum("amount"))
            .order_by("-payment_id")
        )
        for row in spent:
            if left <= 0:
                break
            credit_payment = Payment.objects.select_for_update().get(pk=row["payment_id"])
            take = min(left, row["total"], credit_payment.refundable)
            if take <= 0:
                continue
            bank_refund_record(
                payment=credit_payment, amount=take, kind=Refund.Kind.BANK_RETURN,
                key=f"{key}:{credit_payment.pk}", reason=reason, actor=actor,
            )  # fmt: skip
            left -= allocations_reverse(payment=credit_payment, amount=take, reason=reason, actor=actor)
        return amount
