"""Services write. Each takes keyword-only arguments, checks the business rules and raises ApplicationError when one
is broken. Anything that writes more than one row is atomic; money state is changed only under row locks."""

import secrets

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from .autopay import autopay_stop_for_paid_bills
from .errors import ApplicationError
from .models import Bill, BillingEvent, CustomerAccount, Payment, PaymentAllocation
from .money import format_money

# TEMPORARY (issue 9 stage 1): old import paths for code not yet moved; removed at integration.
from .bills.services import (  # noqa: F401
    LineInput,
    bill_create,
    bill_issue,
    bill_mark_uncollectible,
    bill_recalculate,
    bill_void,
    customer_account_create,
)
from .bills.services import bill_status_move as _bill_move  # the old name: used below and by billing/payments.py
from .events import event_record


def confirmation_number_new() -> str:
    # 10 characters from an alphabet with no look-alikes (no 0/O, 1/I/L): easy to read out on the phone.
    alphabet = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
    return "BP-" + "".join(secrets.choice(alphabet) for _ in range(10))


def payment_apply(*, payment: Payment, actor=None) -> list[PaymentAllocation]:
    """Apply a succeeded payment to the account's payable bills, oldest due date first.

    Must run inside the caller's transaction. The bills are locked in primary-key order (a fixed order, so two
    payments for one account never deadlock), and the balance is computed under the lock, so two payers at once can
    never overpay a bill: the second sees the first one's amount_paid.
    """
    bills = list(
        Bill.objects.select_for_update()
        .filter(account_id=payment.account_id, status__in=Bill.PAYABLE_STATUSES)
        .order_by("pk")
    )
    bills.sort(key=lambda b: (b.due_date, b.pk))
    owed = sum(b.balance_due for b in bills)
    if payment.amount > owed:
        raise ApplicationError(
            _("The payment of %(amount)s is more than the %(owed)s owed.")
            % {"amount": format_money(payment.amount, payment.currency), "owed": format_money(owed, payment.currency)}
        )
    remaining = payment.amount
    allocations = []
    for bill in bills:
        if remaining == 0:
            break
        share = min(remaining, bill.balance_due)
        if share == 0:
            continue
        remaining -= share
        bill.amount_paid += share
        bill.save(update_fields=["amount_paid", "updated_at"])
        allocations.append(PaymentAllocation(payment=payment, bill=bill, amount=share))
        event_record(
            kind=BillingEvent.Kind.PAYMENT_APPLIED, bill=bill, payment=payment, amount=share,
            currency=payment.currency, actor=actor,
        )
        if bill.balance_due == 0:
            _bill_move(bill=bill, to=Bill.Status.PAID, actor=actor, message=payment.confirmation_number)
    PaymentAllocation.objects.bulk_create(allocations)
    autopay_stop_for_paid_bills(bills=bills)  # a bill paid any way stops its waiting autopay charges at once
    return allocations


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
