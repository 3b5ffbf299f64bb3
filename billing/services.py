"""Services write. Each takes keyword-only arguments, checks the business rules and raises ApplicationError when one
is broken. Anything that writes more than one row is atomic; money state is changed only under row locks."""

import secrets
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from .autopay import autopay_stop_for_paid_bills
from .errors import ApplicationError
from .models import Bill, BillingEvent, BillLine, Biller, CustomerAccount, Payment, PaymentAllocation
from .money import format_money, multiply, validate_currency


@dataclass(frozen=True)
class LineInput:
    description: str
    amount: int | None = None  # minor units; computed from unit_amount × quantity when omitted
    quantity: Decimal = Decimal(1)
    unit_amount: int | None = None
    tax_amount: int = 0

    def resolved(self) -> "LineInput":
        amount = self.amount
        unit = self.unit_amount
        if amount is None:
            if unit is None:
                raise ApplicationError(_("A bill line needs an amount or a unit price."))
            amount = multiply(unit, self.quantity)
        if unit is None:
            unit = amount
        if amount < 0 or unit < 0 or self.tax_amount < 0:
            raise ApplicationError(_("Bill line amounts cannot be negative."))
        if not self.description.strip():
            raise ApplicationError(_("A bill line needs a description."))
        return LineInput(self.description.strip(), amount, Decimal(self.quantity), unit, self.tax_amount)

    def as_row(self, *, bill: Bill, position: int) -> BillLine:
        """The unsaved BillLine for this (resolved) line, for bulk_create."""
        return BillLine(
            bill=bill,
            position=position,
            description=self.description,
            quantity=self.quantity,
            unit_amount=self.unit_amount,
            amount=self.amount,
            tax_amount=self.tax_amount,
        )


@dataclass(frozen=True)
class Totals:
    subtotal: int
    tax: int
    total: int = field(init=False)

    def __post_init__(self):
        object.__setattr__(self, "total", self.subtotal + self.tax)


def bill_totals(lines: list[LineInput]) -> Totals:
    return Totals(subtotal=sum(line.amount for line in lines), tax=sum(line.tax_amount for line in lines))


def event_record(
    *,
    kind: str,
    bill: Bill | None = None,
    payment: Payment | None = None,
    account: CustomerAccount | None = None,
    from_status: str = "",
    to_status: str = "",
    amount: int | None = None,
    currency: str = "",
    message: str = "",
    actor=None,
) -> BillingEvent:
    return BillingEvent.objects.create(
        kind=kind,
        bill=bill,
        payment=payment,
        account=account or (bill.account if bill else payment.account if payment else None),
        from_status=from_status,
        to_status=to_status,
        amount=amount,
        currency=currency,
        message=message[:500],
        actor=actor if getattr(actor, "is_authenticated", False) else None,
    )


def _bill_locked(bill: Bill) -> Bill:
    return Bill.objects.select_for_update(of=("self",)).select_related("account", "biller").get(pk=bill.pk)


def _bill_move(*, bill: Bill, to: str, actor=None, message: str = "") -> Bill:
    """Change a (locked) bill's status if the transition map allows it, and record the change."""
    if not bill.can_transition_to(to):
        raise ApplicationError(
            _("A %(from)s bill cannot become %(to)s.")
            % {"from": Bill.Status(bill.status).label.lower(), "to": Bill.Status(to).label.lower()}
        )
    from_status = bill.status
    bill.status = to
    bill.save(update_fields=["status", "issue_date", "updated_at"])
    event_record(
        kind=BillingEvent.Kind.BILL_STATUS,
        bill=bill,
        from_status=from_status,
        to_status=to,
        message=message,
        actor=actor,
    )
    return bill


def customer_account_create(*, biller: Biller, account_number: str, holder_name: str, postal_code: str, **fields):
    account_number = account_number.strip()
    if not account_number:
        raise ApplicationError(_("An account number is required."))
    try:
        with transaction.atomic():
            return CustomerAccount.objects.create(
                biller=biller,
                account_number=account_number,
                holder_name=holder_name.strip(),
                postal_code=postal_code.strip(),
                **fields,
            )
    except IntegrityError:
        raise ApplicationError(_("Account %(number)s already exists.") % {"number": account_number}) from None


@transaction.atomic
def bill_create(
    *,
    account: CustomerAccount,
    number: str,
    period_start: date,
    period_end: date,
    due_date: date,
    lines: list[LineInput],
    actor=None,
) -> Bill:
    """Create a draft bill with its lines. The totals are computed here, never taken from the caller."""
    number = number.strip()
    if not number:
        raise ApplicationError(_("A bill number is required."))
    if not lines:
        raise ApplicationError(_("A bill needs at least one line."))
    if period_end < period_start:
        raise ApplicationError(_("The billing period ends before it starts."))
    resolved = [line.resolved() for line in lines]
    totals = bill_totals(resolved)
    biller = account.biller
    if Bill.objects.filter(biller=biller, number=number).exists():
        raise ApplicationError(_("Bill %(number)s already exists.") % {"number": number})
    bill = Bill.objects.create(
        biller=biller,
        account=account,
        number=number,
        period_start=period_start,
        period_end=period_end,
        due_date=due_date,
        currency=validate_currency(biller.currency),
        subtotal=totals.subtotal,
        tax=totals.tax,
        total=totals.total,
    )
    BillLine.objects.bulk_create(line.as_row(bill=bill, position=i) for i, line in enumerate(resolved))
    event_record(
        kind=BillingEvent.Kind.BILL_CREATED, bill=bill, to_status=bill.status, amount=bill.total,
        currency=bill.currency, actor=actor,
    )
    return bill


@transaction.atomic
def bill_issue(*, bill: Bill, actor=None, issue_date: date | None = None) -> Bill:
    """Send a draft bill out: it becomes open and payable. A zero bill is issued straight to paid."""
    bill = _bill_locked(bill)
    if bill.status != Bill.Status.DRAFT:
        raise ApplicationError(_("Bill %(number)s has already been issued.") % {"number": bill.number})
    bill.issue_date = issue_date or timezone.localdate()
    _bill_move(bill=bill, to=Bill.Status.OPEN, actor=actor)
    if bill.total == 0:
        _bill_move(bill=bill, to=Bill.Status.PAID, actor=actor, message=_("Nothing to pay."))
    return bill


@transaction.atomic
def bill_void(*, bill: Bill, actor=None, reason: str = "") -> Bill:
    bill = _bill_locked(bill)
    if bill.amount_paid:
        raise ApplicationError(
            _("Bill %(number)s has payments on it. Refund them before voiding the bill.") % {"number": bill.number}
        )
    return _bill_move(bill=bill, to=Bill.Status.VOID, actor=actor, message=reason)


@transaction.atomic
def bill_mark_uncollectible(*, bill: Bill, actor=None, reason: str = "") -> Bill:
    bill = _bill_locked(bill)
    return _bill_move(bill=bill, to=Bill.Status.UNCOLLECTIBLE, actor=actor, message=reason)


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


@transaction.atomic
def bill_recalculate(*, bill: Bill, actor=None, created: bool = False) -> Bill:
    """Recompute a draft bill's totals from its stored lines, after staff entered or edited them in the admin.

    Only a draft can change: an issued bill's lines and totals are what the payer was sent. With created=True the bill
    was just entered by staff, so its creation goes into the history with the final total."""
    bill = _bill_locked(bill)
    if bill.status != Bill.Status.DRAFT:
        raise ApplicationError(
            _("Bill %(number)s has been issued; its lines can no longer change.") % {"number": bill.number}
        )
    lines = list(bill.lines.all())
    if not lines:
        raise ApplicationError(_("A bill needs at least one line."))
    if any(line.amount < 0 or line.tax_amount < 0 for line in lines):
        raise ApplicationError(_("Bill line amounts cannot be negative."))
    bill.subtotal = sum(line.amount for line in lines)
    bill.tax = sum(line.tax_amount for line in lines)
    bill.total = bill.subtotal + bill.tax
    bill.save(update_fields=["subtotal", "tax", "total", "updated_at"])
    if created:
        event_record(
            kind=BillingEvent.Kind.BILL_CREATED, bill=bill, to_status=bill.status, amount=bill.total,
            currency=bill.currency, actor=actor,
        )
    return bill
