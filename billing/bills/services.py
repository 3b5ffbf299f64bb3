"""Bill services: create, issue, void and recalculate bills, and the one checked bill status move.

Services write. Each takes keyword-only arguments, checks the business rules and raises ApplicationError when one
is broken. Anything that writes more than one row is atomic; money state is changed only under row locks."""

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from ..errors import ApplicationError
from ..events import event_new, event_record, status_move, status_set
from ..models import Bill, BillingEvent, BillLine, Biller, CustomerAccount
from ..money import multiply, validate_currency
from ..signals import bills_issued


@dataclass(frozen=True)
class LineInput:
    description: str
    amount: int | None = None  # minor units; computed from unit_amount × quantity when omitted
    quantity: Decimal = Decimal(1)
    unit_amount: int | None = None
    tax_amount: int = 0
    usage_unit: str = ""  # set on a metered line: its quantity is the period's usage in this unit
    meter_start: Decimal | None = None
    meter_end: Decimal | None = None

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
        if self.meter_start is not None and self.meter_end is not None and self.meter_end < self.meter_start:
            raise ApplicationError(_("The end meter reading is below the start reading."))
        return LineInput(
            self.description.strip(), amount, Decimal(self.quantity), unit, self.tax_amount,
            self.usage_unit.strip(), self.meter_start, self.meter_end,
        )

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
            usage_unit=self.usage_unit,
            meter_start=self.meter_start,
            meter_end=self.meter_end,
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


def _bill_locked(bill: Bill) -> Bill:
    return Bill.objects.select_for_update(of=("self",)).select_related("account", "biller").get(pk=bill.pk)


def bill_status_move(
    *, bill: Bill, to: str, actor=None, message: str = "", also_save: tuple[str, ...] = (), events: list | None = None
) -> Bill:
    """Change a (locked) bill's status if the transition map allows it, and record the change. `also_save` names
    fields the caller changed on the row, written in the same UPDATE; with `events`, the history row is appended
    there for the caller to `bulk_create` with its own."""

    def record(from_status: str) -> None:
        event = event_new(
            kind=BillingEvent.Kind.BILL_STATUS, bill=bill, from_status=from_status, to_status=to, message=message,
            actor=actor,
        )  # fmt: skip
        if events is None:
            event.save(force_insert=True)
        else:
            events.append(event)

    status_move(
        bill, to, error=_bill_move_error(bill, to), update_fields=["status", "issue_date", "updated_at", *also_save],
        record=record,
    )  # fmt: skip
    return bill


def bill_status_set(*, bill: Bill, to: str, events: list, actor=None, message: str = "") -> Bill:
    """The checked move of `bill_status_move` for a caller that writes many locked bills at once: the status is set
    on the row in memory (the caller's `bulk_update` writes it) and the history row is appended to `events`."""
    from_status = status_set(bill, to, error=_bill_move_error(bill, to))
    events.append(event_new(
        kind=BillingEvent.Kind.BILL_STATUS, bill=bill, from_status=from_status, to_status=to, message=message,
        actor=actor,
    ))  # fmt: skip
    return bill


def _bill_move_error(bill: Bill, to: str):
    return lambda: _("A %(from)s bill cannot become %(to)s.") % {
        "from": Bill.Status(bill.status).label.lower(), "to": Bill.Status(to).label.lower()
    }


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
    bill_status_move(bill=bill, to=Bill.Status.OPEN, actor=actor)
    if bill.total == 0:
        bill_status_move(bill=bill, to=Bill.Status.PAID, actor=actor, message=_("Nothing to pay."))
    else:
        bills_issued_announce(account_ids=[bill.account_id])
    return bill


def bills_issued_announce(*, account_ids: list[int]) -> None:
    """After commit, tell whoever listens that these accounts have new bills to pay (credit held pays them)."""
    ids = sorted(set(account_ids))
    if ids:
        transaction.on_commit(lambda: bills_issued.send_robust(sender=Bill, account_ids=ids), robust=True)


@transaction.atomic
def bill_void(*, bill: Bill, actor=None, reason: str = "") -> Bill:
    bill = _bill_locked(bill)
    if bill.amount_paid:
        raise ApplicationError(
            _("Bill %(number)s has payments on it. Refund them before voiding the bill.") % {"number": bill.number}
        )
    return bill_status_move(bill=bill, to=Bill.Status.VOID, actor=actor, message=reason)


@transaction.atomic
def bill_mark_uncollectible(*, bill: Bill, actor=None, reason: str = "") -> Bill:
    bill = _bill_locked(bill)
    return bill_status_move(bill=bill, to=Bill.Status.UNCOLLECTIBLE, actor=actor, message=reason)


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
