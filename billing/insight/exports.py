"""CSV files for staff and for the biller's own billing system: any table of the insight page, the daily payments
posting file, and the deposit report. Every cell goes through billing/csvsafe.py's formula guard; amounts are written
unsigned in major units ("12.50"), with a column saying which way the money went.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.db.models import Count, Prefetch, Q, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from billing.clock import biller_zone
from billing.csvsafe import csv_text
from billing.models import Biller, Dispute, Payment, PaymentAllocation, Refund
from billing.money import from_minor

from .periods import Period
from .report import Money, Ratio, Table


def cell_csv(cell) -> str:
    if isinstance(cell, Money):
        return str(from_minor(cell.minor, cell.currency))
    if isinstance(cell, Ratio):
        value = cell.value
        return "" if value is None else str(value)
    return "" if cell is None else str(cell)


def table_csv(table: Table) -> str:
    return csv_text([table.columns, *([cell_csv(cell) for cell in row] for row in table.rows)])


# ----------------------------------------------------------------------------------------------------------------
# The posting file: what the biller's billing system posts to its ledger each day


POSTING_COLUMNS = (
    "record_type", "direction", "account_number", "bill_number", "amount", "currency", "date", "channel", "method",
    "confirmation_number", "reference",
)  # fmt: skip
PAYMENT, REFUND, REVERSAL = "payment", "refund", "reversal"


@dataclass(frozen=True)
class PostingLine:
    record_type: str  # payment (money in), refund or reversal (money out: a chargeback withdrawn by the bank)
    account_number: str
    bill_numbers: str  # the bills the payment was put on, oldest first, separated by spaces
    amount: int  # minor units, never negative; record_type says which way
    currency: str
    date: dt.date
    channel: str
    method: str
    confirmation_number: str
    reference: str

    @property
    def direction(self) -> str:
        return "credit" if self.record_type == PAYMENT else "debit"

    def row(self) -> list:
        return [
            self.record_type, self.direction, self.account_number, self.bill_numbers,
            from_minor(self.amount, self.currency), self.currency, self.date.isoformat(), self.channel, self.method,
            self.confirmation_number, self.reference,
        ]  # fmt: skip


def _day_bounds(biller: Biller, day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    zone = biller_zone(biller)
    start = dt.datetime.combine(day, dt.time.min, tzinfo=zone)
    return start, start + dt.timedelta(days=1)


def posting_lines(*, biller: Biller, day: dt.date) -> list[PostingLine]:
    """One line per payment received, refund made and chargeback withdrawn on the biller's calendar day `day`.

    Three queries whatever the number of payments: payments (with their allocations' bills), refunds, disputes.
    A payment's amount is what it put on bills (fees and tips are the biller's revenue, not the payer's balance).
    """
    start, end = _day_bounds(biller, day)
    allocations = Prefetch(
        "allocations", queryset=PaymentAllocation.objects.select_related("bill").order_by("bill__due_date", "bill_id")
    )
    payments = (
        Payment.objects.filter(
            biller=biller, status=Payment.Status.SUCCEEDED, received_at__gte=start, received_at__lt=end
        )
        .select_related("account")
        .prefetch_related(allocations)
        .order_by("received_at", "pk")
    )
    lines = [
        PostingLine(
            record_type=PAYMENT, account_number=p.account.account_number,
            bill_numbers=" ".join(a.bill.number for a in p.allocations.all()), amount=p.amount, currency=p.currency,
            date=day, channel=p.channel, method=p.method, confirmation_number=p.confirmation_number,
            reference=p.reference,
        )  # fmt: skip
        for p in payments
    ]
    refunds = (
        Refund.objects.filter(
            payment__biller=biller, status=Refund.Status.SUCCEEDED, created_at__gte=start, created_at__lt=end
        )
        .select_related("payment__account")
        .prefetch_related(Prefetch("payment__allocations", queryset=PaymentAllocation.objects.select_related("bill")))
        .order_by("created_at", "pk")
    )
    lines += [
        PostingLine(
            record_type=REFUND, account_number=r.payment.account.account_number,
            bill_numbers=" ".join(a.bill.number for a in r.payment.allocations.all()), amount=r.amount,
            currency=r.currency, date=day, channel=r.payment.channel, method=r.payment.method,
            confirmation_number=r.payment.confirmation_number, reference=r.gateway_refund_id or "",
        )  # fmt: skip
        for r in refunds
    ]
    # A chargeback's withdrawal is dated by the dispute's last change; the dispute row keeps what was withdrawn.
    disputes = (
        Dispute.objects.filter(
            payment__biller=biller, amount_withdrawn__gt=0, updated_at__gte=start, updated_at__lt=end
        )
        .exclude(funds=Dispute.Funds.REINSTATED)
        .select_related("payment__account")
        .order_by("updated_at", "pk")
    )
    lines += [
        PostingLine(
            record_type=REVERSAL, account_number=d.payment.account.account_number, bill_numbers="",
            amount=d.amount_withdrawn, currency=d.currency, date=day, channel=d.payment.channel,
            method=d.payment.method, confirmation_number=d.payment.confirmation_number,
            reference=d.gateway_dispute_id,
        )  # fmt: skip
        for d in disputes
    ]
    return lines


def posting_csv(*, biller: Biller, day: dt.date) -> str:
    return csv_text([POSTING_COLUMNS, *(line.row() for line in posting_lines(biller=biller, day=day))])


# ----------------------------------------------------------------------------------------------------------------
# The deposit report

DEPOSIT_COLUMNS = ("date", "currency", "payments", "gross", "fees", "tips", "refunds", "net", "net_direction")


def deposit_rows(*, biller: Biller, period: Period) -> list[list]:
    """Money in and out, day by day on the biller's calendar. The gateway's payouts are not recorded in Billpay, so
    this groups by the day the money was received rather than by payout: two queries, one per side."""
    zone = biller_zone(biller)
    start = dt.datetime.combine(period.start, dt.time.min, tzinfo=zone)
    end = dt.datetime.combine(period.end + dt.timedelta(days=1), dt.time.min, tzinfo=zone)
    with timezone.override(zone):
        money_in = (
            Payment.objects.filter(
                biller=biller, status=Payment.Status.SUCCEEDED, received_at__gte=start, received_at__lt=end
            )
            .exclude(channel=Payment.Channel.STAFF_OFFLINE)  # cash and cheques are banked by the biller, not the gateway
            .annotate(day=TruncDate("received_at", tzinfo=zone))
            .values("day", "currency")
            .annotate(n=Count("pk"), money=Sum("amount"), fees=Sum("fee_amount"), tips=Sum("tip_amount"))
            .order_by("day", "currency")
        )
        money_out = (
            Refund.objects.filter(
                Q(status=Refund.Status.SUCCEEDED), payment__biller=biller, created_at__gte=start, created_at__lt=end
            )
            .exclude(payment__channel=Payment.Channel.STAFF_OFFLINE)
            .annotate(day=TruncDate("created_at", tzinfo=zone))
            .values("day", "currency")
            .annotate(money=Sum("amount"))
            .order_by()
        )
        refunds = {(row["day"], row["currency"]): row["money"] for row in money_out}
        days = {(row["day"], row["currency"]): row for row in money_in}
    rows = []
    for day, currency in sorted(set(days) | set(refunds)):
        row = days.get((day, currency), {"n": 0, "money": 0, "fees": 0, "tips": 0})
        gross = (row["money"] or 0) + (row["fees"] or 0) + (row["tips"] or 0)
        out = refunds.get((day, currency), 0) or 0
        rows.append([day.isoformat(), currency, row["n"], from_minor(gross, currency),
                     from_minor(row["fees"] or 0, currency), from_minor(row["tips"] or 0, currency),
                     from_minor(out, currency), from_minor(abs(gross - out), currency),
                     "in" if gross >= out else "out"])  # fmt: skip
    return rows


def deposit_csv(*, biller: Biller, period: Period) -> str:
    return csv_text([DEPOSIT_COLUMNS, *deposit_rows(biller=biller, period=period)])
