"""Credit held on an account: money received beyond what its bills owed (an overpaid bank transfer). A bill is never
overpaid; the extra is held here, put on the next bill when one is issued (`account_credit_apply`, as an
account-credit payment through `payment_apply`), or paid back by staff (`account_credit_refund`).

`CustomerAccount.credit_balance` and the append-only `AccountCreditEntry` rows change together, under the account's
row lock, only here. Each entry names the transfer the money came from, first in first out, so that a return of that
transfer finds what is left of its credit (`credit_take_back`).
"""

from __future__ import annotations

import uuid

from django.db import transaction
from django.db.models import Case, Exists, F, OuterRef, Sum, When
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.translation import gettext as _

from billing.errors import ApplicationError
from billing.bulk import row_new, rows_insert, rows_update
from billing.events import event_new, event_record
from billing.models import AccountCreditEntry, Bill, BillingEvent, CustomerAccount, Payment, Refund
from billing.money import format_money
from billing.signals import refund_issued

from .allocations import payment_apply
from .attempts import account_lock
from .core import confirmation_number_new


def credits_receive(*, items: list[tuple[CustomerAccount, Payment, int]], actor=None) -> list[AccountCreditEntry]:
    """Hold (account, payment, amount): the part of each payment its account's bills did not owe, as credit. Inside
    the caller's transaction, with the accounts locked. Three statements however many: the entries (returned without
    their ids), the accounts' balances (one UPDATE), the history."""
    if not items:
        return []
    message, actor_id = _("More than the bills owed."), getattr(_user(actor), "pk", None)
    entries = [
        row_new(
            AccountCreditEntry, account_id=account.pk, kind=AccountCreditEntry.Kind.RECEIVED, amount=amount,
            currency=payment.currency, source_payment_id=payment.pk, message=message, actor_id=actor_id,
        )  # fmt: skip
        for account, payment, amount in items
    ]
    rows_insert(entries)
    accounts = {}
    for account, _payment, amount in items:
        account.credit_balance += amount  # read under the account's lock, so this is the balance now
        accounts[account.pk] = account
    rows_update(list(accounts.values()), ["credit_balance"])
    rows_insert([
        event_new(
            kind=BillingEvent.Kind.CREDIT, payment=payment, account=account, amount=amount, currency=payment.currency,
            message=f"held as credit ({payment.confirmation_number})", actor=actor,
        )  # fmt: skip
        for account, payment, amount in items
    ])
    return entries


def credit_by_source(*, account_id: int) -> list[tuple[int, int]]:
    """(source payment id, credit it still holds), oldest transfer first; only those still holding some."""
    signed = Case(When(kind=AccountCreditEntry.Kind.RECEIVED, then=F("amount")), default=-F("amount"))
    rows = (
        AccountCreditEntry.objects.filter(account_id=account_id)
        .values("source_payment_id")
        .annotate(left=Coalesce(Sum(signed), 0))
        .filter(left__gt=0)
        .order_by("source_payment_id")
    )
    return [(row["source_payment_id"], row["left"]) for row in rows]


def _spend(*, account: CustomerAccount, amount: int, kind: str, actor, message: str, **links) -> list[tuple[int, int]]:
    """Take `amount` off the held credit, oldest transfer first, one entry per source. Returns (source id, amount)."""
    taken, remaining = [], amount
    for source_id, left in credit_by_source(account_id=account.pk):
        if remaining == 0:
            break
        take = min(left, remaining)
        remaining -= take
        taken.append((source_id, take))
    if remaining:
        raise ApplicationError(_("The account holds less credit than that."))
    AccountCreditEntry.objects.bulk_create(
        AccountCreditEntry(
            account=account, kind=kind, amount=take, currency=account.biller.currency, source_payment_id=source_id,
            message=message[:500], actor=_user(actor), **links,
        )  # fmt: skip
        for source_id, take in taken
    )
    CustomerAccount.objects.filter(pk=account.pk).update(credit_balance=F("credit_balance") - amount)
    account.credit_balance -= amount
    return taken


def account_credit_apply(*, account_id: int, actor=None) -> Payment | None:
    """Put held credit on the account's payable bills, oldest due first, never more than they owe: one
    account-credit payment through `payment_apply`. Called when bills are issued (billing.payments.receivers) and
    after a transfer is recorded. Returns the payment, or None when there was no credit or nothing owed."""
    with transaction.atomic():
        account = account_lock(account_id)
        if account is None or account.credit_balance <= 0:
            return None
        owed = sum(
            bill.balance_due
            for bill in Bill.objects.filter(account_id=account_id, status__in=Bill.PAYABLE_STATUSES).only(
                "status", "total", "amount_paid"
            )
        )
        amount = min(owed, account.credit_balance)
        if amount <= 0:
            return None
        payment = _credit_payment_create(account=account, amount=amount, actor=actor)
        _spend(
            account=account, amount=amount, kind=AccountCreditEntry.Kind.APPLIED, actor=actor,
            message=_("Applied to bills as %(number)s.") % {"number": payment.confirmation_number}, payment=payment,
        )  # fmt: skip
        payment_apply(payment=payment, actor=actor)
        return payment


def _credit_payment_create(*, account: CustomerAccount, amount: int, actor) -> Payment:
    payment = Payment.objects.create(
        biller_id=account.biller_id, account=account, confirmation_number=confirmation_number_new(),
        channel=Payment.Channel.ACCOUNT_CREDIT, method=Payment.Method.ACCOUNT_CREDIT,
        status=Payment.Status.SUCCEEDED, currency=account.biller.currency, amount=amount,
        reference=_("Account credit"), received_at=timezone.now(), recorded_by=_user(actor),
    )  # fmt: skip
    event_record(
        kind=BillingEvent.Kind.PAYMENT_RECORDED, payment=payment, to_status=payment.status, amount=amount,
        currency=payment.currency, message="account credit applied", actor=actor,
    )  # fmt: skip
    return payment


def credits_apply(*, limit: int = 500) -> int:
    """The sweeper's pass: accounts that hold credit while their bills owe something (a bill reopened by a refund or a
    dispute, or a `bills_issued` reaction that failed after commit) get it applied. Returns how many were paid."""
    owing = Bill.objects.filter(account_id=OuterRef("pk"), status__in=Bill.PAYABLE_STATUSES, amount_paid__lt=F("total"))
    account_ids = list(
        CustomerAccount.objects.filter(credit_balance__gt=0).filter(Exists(owing)).order_by("pk")
        .values_list("pk", flat=True)[:limit]
    )  # fmt: skip
    return sum(1 for account_id in account_ids if account_credit_apply(account_id=account_id) is not None)


@transaction.atomic
def account_credit_refund(*, account: CustomerAccount, amount: int, reference: str, actor) -> list[Refund]:
    """Staff paid held credit back to the payer (by a bank transfer made outside Billpay): one succeeded
    credit-refund Refund on each transfer the credit came from, oldest first, and the refund notice."""
    reference = (reference or "").strip()
    if amount <= 0:
        raise ApplicationError(_("Enter an amount of more than zero."))
    if not reference:
        raise ApplicationError(_("Enter the reference of the transfer that paid the credit back."))
    account = account_lock(account.pk)
    if amount > account.credit_balance:
        raise ApplicationError(
            _("The account holds %(credit)s of credit; no more can be paid back.")
            % {"credit": format_money(account.credit_balance, account.biller.currency)}
        )
    refunds = []
    for source_id, take in credit_by_source(account_id=account.pk):
        if sum(r.amount for r in refunds) == amount:
            break
        take = min(take, amount - sum(r.amount for r in refunds))
        source = Payment.objects.select_for_update().get(pk=source_id)
        refund = bank_refund_record(
            payment=source, amount=take, kind=Refund.Kind.CREDIT_REFUND, key=f"credit-refund-{uuid.uuid4()}",
            reason=_("Credit paid back: %(reference)s") % {"reference": reference}, actor=actor,
        )  # fmt: skip
        AccountCreditEntry.objects.create(
            account=account, kind=AccountCreditEntry.Kind.REFUNDED, amount=take, currency=source.currency,
            source_payment=source, refund=refund, message=reference[:500], actor=_user(actor),
        )  # fmt: skip
        refunds.append(refund)
    CustomerAccount.objects.filter(pk=account.pk).update(credit_balance=F("credit_balance") - amount)
    for refund in refunds:
        refund_pk = refund.pk
        transaction.on_commit(lambda pk=refund_pk: refund_issued.send_robust(sender=Refund, refund_id=pk), robust=True)
    return refunds


def bank_refund_record(*, payment: Payment, amount: int, kind: str, key: str, reason: str, actor) -> Refund:
    """A refund that went by bank, not through the gateway (a bank return, credit paid back): written succeeded,
    counted on the (locked) payment. Inside the caller's transaction."""
    refund = Refund.objects.create(
        payment=payment, kind=kind, amount=amount, currency=payment.currency, reason=reason[:500],
        status=Refund.Status.SUCCEEDED, idempotency_key=key[:100], created_by=_user(actor),
    )  # fmt: skip
    payment.amount_refunded += amount
    payment.save(update_fields=["amount_refunded", "updated_at"])
    event_record(
        kind=BillingEvent.Kind.REFUND, payment=payment, amount=amount, currency=payment.currency, message=reason,
        actor=actor,
    )  # fmt: skip
    return refund


def credit_take_back(*, account: CustomerAccount, source: Payment, amount: int, refund: Refund, actor) -> int:
    """A return of `source` takes back what is left of its credit (up to `amount`). Returns what it took."""
    left = dict(credit_by_source(account_id=account.pk)).get(source.pk, 0)
    take = min(left, amount)
    if take:
        AccountCreditEntry.objects.create(
            account=account, kind=AccountCreditEntry.Kind.RETURNED, amount=take, currency=source.currency,
            source_payment=source, refund=refund, message=refund.reason[:500], actor=_user(actor),
        )  # fmt: skip
        CustomerAccount.objects.filter(pk=account.pk).update(credit_balance=F("credit_balance") - take)
        account.credit_balance -= take
    return take


def _user(actor):
    return actor if getattr(actor, "is_authenticated", False) else None
