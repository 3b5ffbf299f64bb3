"""Putting a payment's money on the account's bills (oldest due first), taking it back off (refunds, a dispute's
withdrawn funds) and putting it back again (a dispute won). Always inside the caller's transaction, under the bill
locks taken in primary-key order.
"""

from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar

from django.utils.translation import gettext as _

from billing.bills.services import bill_status_move, bill_status_set
from billing.bulk import WriteBatch, row_new
from billing.errors import ApplicationError
from billing.events import event_new, event_record
from billing.models import Bill, BillingEvent, Payment, PaymentAllocation
from billing.money import format_money
from billing.signals import bill_paid


def payment_apply(
    *, payment: Payment, actor=None, bills: list[Bill] | None = None, events: list[BillingEvent] | None = None,
    writes: WriteBatch | None = None, run: bool = True,
) -> list[PaymentAllocation]:
    """Apply a succeeded payment to the account's payable bills, oldest due date first.

    Must run inside the caller's transaction. The bills are locked in primary-key order (a fixed order, so two
    payments for one account never deadlock), and the balance is computed under the lock, so two payers at once can
    never overpay a bill: the second sees the first one's amount_paid. A caller that already holds those locks passes
    the rows as `bills` (the account's payable bills, locked in this transaction), which saves reading them again.
    `events`: unsaved history rows of the caller's (the payment's own status move) to insert first, with these.
    """
    if bills is None:
        bills = payable_bills_lock(account_id=payment.account_id)
    return payments_apply(
        portions=[(payment, payment.amount)], bills=bills, actor=actor, events=events, writes=writes, run=run
    )


def payments_apply(
    *, portions: list[tuple[Payment, int]], bills: list[Bill], actor=None, events: list[BillingEvent] | None = None,
    writes: WriteBatch | None = None, run: bool = True,
) -> list[PaymentAllocation]:
    """Put several payments on their accounts' bills at once (a statement chunk's transfers; `payment_apply` is this
    with one): each (payment, amount) in order, on its account's bills oldest due date first, never more than a bill
    owes; a payment for more than its account owes (after the portions before it) is refused. `bills` are the
    payable bills of the accounts concerned, locked in primary-key order in the caller's transaction.

    A fixed number of statements however many payments and bills: the allocations and the history in one INSERT
    each (the allocations are returned without their ids), the bills (amount paid, and status when paid) in one
    UPDATE, sent as one statement on PostgreSQL (`WriteBatch`), then one `bill_paid`. `events`: unsaved history
    rows of the caller's (a payment's own status move) to insert first, with these; `writes`: the caller's queued
    writes (that payment's UPDATE), sent in the same statement. With `run=False` the rows stay queued on the caller's
    `writes`, for it to run before anything reads them, inside `bills_paid_announced_once` (whose bill_paid then
    follows the writes): a batch applying many payments sends them all at once. The bills in memory are up to date
    either way, so the next payment applied sees what this one put on them."""
    if not run and (writes is None or _announce_later.get() is None):
        raise RuntimeError("payments_apply(run=False) needs the caller's writes, inside bills_paid_announced_once")
    by_account: dict[int, list[Bill]] = {}
    for bill in sorted(bills, key=lambda b: (b.due_date, b.pk)):
        by_account.setdefault(bill.account_id, []).append(bill)
    allocations, events, touched = [], list(events or []), {}
    for payment, amount in portions:
        account_bills = by_account.get(payment.account_id, [])
        owed = sum(b.balance_due for b in account_bills)
        if amount > owed:
            raise ApplicationError(
                _("The payment of %(amount)s is more than the %(owed)s owed.")
                % {"amount": format_money(amount, payment.currency), "owed": format_money(owed, payment.currency)}
            )
        remaining = amount
        for bill in account_bills:
            if remaining == 0:
                break
            share = min(remaining, bill.balance_due)
            if share == 0:
                continue
            remaining -= share
            bill.amount_paid += share
            touched[bill.pk] = bill
            allocations.append(row_new(PaymentAllocation, payment_id=payment.pk, bill_id=bill.pk, amount=share))
            events.append(event_new(
                kind=BillingEvent.Kind.PAYMENT_APPLIED, bill=bill, payment=payment, amount=share,
                currency=payment.currency, actor=actor,
            ))  # fmt: skip
            if bill.balance_due == 0:  # written with the new amount paid, in the same UPDATE
                bill_status_set(bill=bill, to=Bill.Status.PAID, events=events, actor=actor,
                                message=payment.confirmation_number)  # fmt: skip
    writes = WriteBatch() if writes is None else writes
    if not allocations:
        writes.insert(events)
        if run:
            writes.run()
        return allocations
    # One statement on PostgreSQL (three elsewhere): none of the three reads what another writes.
    writes.insert(allocations)
    writes.update(list(touched.values()), ["amount_paid", "status", "updated_at"])
    writes.insert(events)  # in order: the caller's, then each bill's "applied", then its "paid"
    if run:
        writes.run()
    # A bill paid any way stops its waiting autopay charges at once: `send`, not robust, under these locks and in
    # this transaction, so a receiver's error rolls the payments back.
    bills_paid_announce(bills)
    return allocations


_announce_later: ContextVar[dict | None] = ContextVar("bills_paid_later", default=None)


def bills_paid_announce(bills: list[Bill]) -> None:
    """Send bill_paid for `bills` (its receivers look among them for the bills now paid), or, inside
    `bills_paid_announced_once`, keep them for the one bill_paid sent when it ends."""
    later = _announce_later.get()
    if later is None:
        bill_paid.send(sender=Bill, bills=bills)
    else:
        later.update((bill.pk, bill) for bill in bills)


@contextmanager
def bills_paid_announced_once():
    """For a caller applying many payments in one transaction (a batch of autopay charges): the applications inside
    send no bill_paid each; one bill_paid for all their bills is sent as the block ends without an error, still in
    the caller's transaction and under its locks, so its receivers (autopay's waiting rows, the plans' progress)
    run once and a receiver's error still rolls everything back. Nothing inside may depend on a receiver having
    run: the caller's own rows must not be ones the receivers change."""
    later: dict = {}
    token = _announce_later.set(later)
    try:
        yield
    finally:
        _announce_later.reset(token)
    if later:
        bill_paid.send(sender=Bill, bills=list(later.values()))


def payable_bills_lock(*, account_id: int | None = None, account_ids: list[int] | None = None) -> list[Bill]:
    """The account's payable bills (or those of every account in `account_ids`, in one query), locked in
    primary-key order (inside the caller's transaction)."""
    accounts = {"account_id": account_id} if account_ids is None else {"account_id__any_of": account_ids}
    return list(
        Bill.objects.select_for_update().filter(**accounts, status__in=Bill.PAYABLE_STATUSES).order_by("pk")
    )


def allocations_reverse(*, payment: Payment, amount: int, reason: str, actor) -> int:
    """Take money back off the bills the payment paid, newest bill first, and reopen paid bills (refunds, and a
    dispute's withdrawn funds). Returns what came off the bills; the rest was the fee, the tip, or an excess already
    returned. Inside the caller's transaction, with the payment locked."""
    allocations = list(
        PaymentAllocation.objects.select_for_update()
        .filter(payment=payment)
        .order_by("-bill__due_date", "-bill_id")
    )
    bills = {
        bill.pk: bill
        for bill in Bill.objects.select_for_update().filter(pk__in=[a.bill_id for a in allocations]).order_by("pk")
    }
    remaining = amount
    for allocation in allocations:
        take = min(remaining, allocation.amount - allocation.amount_reversed)
        if take <= 0:
            continue
        remaining -= take
        allocation.amount_reversed += take
        allocation.save(update_fields=["amount_reversed"])
        bill = bills[allocation.bill_id]
        bill.amount_paid -= take
        bill.save(update_fields=["amount_paid", "updated_at"])
        event_record(
            kind=BillingEvent.Kind.REFUND, bill=bill, payment=payment, amount=take, currency=payment.currency,
            message=reason, actor=actor,
        )  # fmt: skip
        if bill.status == Bill.Status.PAID and bill.balance_due > 0:
            bill_status_move(bill=bill, to=Bill.Status.OPEN, actor=actor, message=reason)
    return amount - remaining


def allocations_reapply(*, payment: Payment, amount: int, reason: str, actor=None) -> int:
    """Put reversed money back on the bills the payment paid, oldest bill first, never more than a bill still owes
    and only on bills that can still be paid. Returns what was put back; the caller records the rest for staff."""
    allocations = list(
        PaymentAllocation.objects.select_for_update()
        .filter(payment=payment, amount_reversed__gt=0)
        .order_by("bill__due_date", "bill_id")
    )
    bills = {
        bill.pk: bill
        for bill in Bill.objects.select_for_update().filter(pk__in=[a.bill_id for a in allocations]).order_by("pk")
    }
    remaining = amount
    for allocation in allocations:
        bill = bills[allocation.bill_id]
        if bill.status not in Bill.PAYABLE_STATUSES:
            continue
        take = min(remaining, allocation.amount_reversed, bill.balance_due)
        if take <= 0:
            continue
        remaining -= take
        allocation.amount_reversed -= take
        allocation.save(update_fields=["amount_reversed"])
        bill.amount_paid += take
        bill.save(update_fields=["amount_paid", "updated_at"])
        event_record(
            kind=BillingEvent.Kind.PAYMENT_APPLIED, bill=bill, payment=payment, amount=take,
            currency=payment.currency, message=reason, actor=actor,
        )  # fmt: skip
        if bill.balance_due == 0:
            bill_status_move(bill=bill, to=Bill.Status.PAID, actor=actor, message=reason)
    bills_paid_announce(list(bills.values()))  # as in payment_apply: synchronous, under the locks
    return amount - remaining
