"""Bank transfers, the core's entry for money that arrives with no intent: a credit line of a bank statement matched
to an account (billing/banking/ finds the account; this records and applies the money), and the bank's return of
such a transfer.

A transfer is one succeeded Payment (channel and method `bank_transfer`) keyed on the bank's transaction
(`idempotency_key`, unique), so the same bank entry can never be recorded twice, whoever asks. Its amount is what the
bank credited; `payments_apply` puts it on the bills oldest due first, never more than they owe, and the rest is held
as account credit (billing/payments/credit.py). A statement chunk's transfers are recorded together
(`payment_record_bank_transfers`, a fixed number of statements however many); one transfer is a batch of one.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

from django.db import transaction
from django.db.models import Sum
from django.utils import timezone
from django.utils.translation import gettext as _

from billing.errors import ApplicationError
from billing.bulk import WriteBatch, row_new, rows_create, rows_insert, rows_read
from billing.events import event_new
from billing.models import AccountCreditEntry, Bill, BillingEvent, Biller, CustomerAccount, Payment, Refund
from billing.signals import payments_succeeded

from .allocations import allocations_reverse, payments_apply
from .attempts import account_lock
from .core import confirmation_number_new
from .credit import bank_refund_record, credit_take_back, credits_receive


@dataclass(frozen=True)
class BankTransfer:
    """One transfer to record: money the bank credited, matched to an account."""

    account_id: int
    amount: int
    currency: str
    key: str  # see `bank_entry_key`: unique per bank entry
    received_at: datetime | None = None
    reference: str = ""
    payer_name: str = ""


@dataclass(frozen=True)
class TransferResult:
    payment: Payment
    applied: int  # put on bills
    credited: int  # held as account credit
    created: bool  # False: this bank entry was already recorded (nothing new was written)
    owed: int = 0  # what the account's bills owed just before (under the lock); 0 when not created


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
    the caller's transaction if there is one, else its own. Idempotent on `key` (see `bank_entry_key`): a second
    call returns the first payment with created=False. The batch of one of `payment_record_bank_transfers`."""
    transfer = BankTransfer(
        account_id=account.pk, amount=amount, currency=currency, key=key, received_at=received_at,
        reference=reference, payer_name=payer_name,
    )  # fmt: skip
    return payment_record_bank_transfers(transfers=[transfer], actor=actor)[0]


# What recording and applying a transfer reads of the locked rows (thousands a statement chunk: the rest of each row
# is not loaded). `bill_paid`'s receivers read a bill's id and balance.
_ACCOUNT_FIELDS = ("biller_id", "email", "credit_balance")
_BILL_FIELDS = ("account_id", "status", "total", "amount_paid", "due_date")


def payment_record_bank_transfers(*, transfers: list[BankTransfer], actor=None) -> list[TransferResult]:
    """Record and apply many bank transfers in one transaction (the caller's if there is one), with a fixed number
    of statements however many there are: lock their accounts (primary-key order), find the bank entries already
    recorded, lock the accounts' payable bills (primary-key order), then insert the payments, put them on the bills
    oldest due first (`payments_apply`), hold what the bills did not owe as credit (`credits_receive`) and write the
    history, each in one statement. Transfers to one account apply in the order given. Idempotent on each `key`: an
    entry already recorded (or repeated in the batch) gives the first payment back with created=False. One
    `payments_succeeded` after commit raises the receipts of the batch. Raises ApplicationError, recording nothing,
    when a transfer's amount is not above zero, its account is gone or it is in another currency than the bills."""
    if any(t.amount <= 0 for t in transfers):
        raise ApplicationError(_("The amount must be more than zero."))
    if not transfers:
        return []
    with transaction.atomic():
        accounts = {
            a.pk: a
            for a in rows_read(
                CustomerAccount.objects.select_for_update()
                .filter(pk__any_of={t.account_id for t in transfers})
                .order_by("pk"),
                _ACCOUNT_FIELDS,
            )
        }
        if len(accounts) < len({t.account_id for t in transfers}):
            raise ApplicationError(_("No such account."))
        billers = Biller.objects.in_bulk({a.biller_id for a in accounts.values()})
        for account in accounts.values():
            account.biller = billers[account.biller_id]
        for t in transfers:
            bills_currency = accounts[t.account_id].biller.currency
            if t.currency.upper() != bills_currency.upper():
                raise ApplicationError(
                    _("The transfer is in %(currency)s; this account's bills are in %(bills)s.")
                    % {"currency": t.currency.upper(), "bills": bills_currency}
                )
        keys = {t.key for t in transfers}
        recorded = {p.idempotency_key: p for p in Payment.objects.filter(idempotency_key__any_of=keys)}
        received = AccountCreditEntry.objects.filter(
            source_payment__in=recorded.values(), kind=AccountCreditEntry.Kind.RECEIVED
        )
        credited_before = dict(received.values_list("source_payment_id", "amount")) if recorded else {}
        fresh: dict[str, Payment] = {}
        summary, now = _("Bank transfer"), timezone.now()
        for t in transfers:
            if t.key in recorded or t.key in fresh:
                continue
            account = accounts[t.account_id]
            fresh[t.key] = row_new(
                Payment, biller_id=account.biller_id, account=account, confirmation_number=confirmation_number_new(),
                channel=Payment.Channel.BANK_TRANSFER, method=Payment.Method.BANK_TRANSFER,
                status=Payment.Status.SUCCEEDED, currency=account.biller.currency, amount=t.amount,
                reference=t.reference[:100], idempotency_key=t.key, received_at=t.received_at or now,
                payment_method_summary=(summary + (f", {t.payer_name}" if t.payer_name else ""))[:64],
                payer_email=account.email,
            )  # fmt: skip
        if not fresh:
            return [_result_of(recorded[t.key], credited_before) for t in transfers]

        bills = rows_read(
            Bill.objects.select_for_update()
            .filter(account_id__any_of={p.account_id for p in fresh.values()}, status__in=Bill.PAYABLE_STATUSES)
            .order_by("pk"),
            _BILL_FIELDS,
        )
        owed: dict[int, int] = {}
        for bill in bills:
            owed[bill.account_id] = owed.get(bill.account_id, 0) + bill.balance_due
        rows_create(list(fresh.values()))
        rows_insert([
            event_new(
                kind=BillingEvent.Kind.PAYMENT_RECORDED, payment=p, to_status=p.status, amount=p.amount,
                currency=p.currency, message=f"bank transfer {p.reference}".strip(), actor=actor,
            )  # fmt: skip
            for p in fresh.values()
        ])
        portions, credits, results = [], [], {}
        for key, payment in fresh.items():  # in the order given
            before = owed.get(payment.account_id, 0)
            applied = min(before, payment.amount)
            owed[payment.account_id] = before - applied
            if applied:
                portions.append((payment, applied))
            if payment.amount > applied:
                credits.append((payment.account, payment, payment.amount - applied))
            results[key] = TransferResult(
                payment=payment, applied=applied, credited=payment.amount - applied, created=True, owed=before
            )
        payments_apply(portions=portions, bills=bills, actor=actor, writes=WriteBatch(copy_inserts=True))
        credits_receive(items=credits, actor=actor)
        payment_ids = [p.pk for p in fresh.values()]
        transaction.on_commit(
            lambda: payments_succeeded.send_robust(sender=Payment, payment_ids=payment_ids), robust=True
        )
    out, seen = [], set()
    for t in transfers:
        if t.key in recorded:
            out.append(_result_of(recorded[t.key], credited_before))
        elif t.key in seen:  # the same bank entry twice in one batch: recorded once
            first = results[t.key]
            out.append(TransferResult(payment=first.payment, applied=first.applied, credited=first.credited,
                                      created=False))  # fmt: skip
        else:
            seen.add(t.key)
            out.append(results[t.key])
    return out


def _result_of(payment: Payment, credited_before: dict[int, int]) -> TransferResult:
    credited = credited_before.get(payment.pk, 0)
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
