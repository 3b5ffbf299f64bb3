"""The CSV files: formula escaping, the daily posting file (its totals match the payments table) and the deposit
report, on the hand-checkable biller of insight_support.py."""

import csv
import datetime as dt
import io
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db.models import Sum

from billing.csvsafe import csv_cell, csv_text
from billing.insight.exports import deposit_rows, posting_csv, posting_lines
from billing.insight.periods import CUSTOM, period_make
from billing.models import Dispute, Payment, Refund

from .insight_support import at, build, payment


@pytest.mark.parametrize(
    "value, cell",
    [
        ("=HYPERLINK(\"http://x\")", "'=HYPERLINK(\"http://x\")"),
        ("+1 555 0100", "'+1 555 0100"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tcmd", "'\tcmd"),
        ("\rcmd", "'\rcmd"),
        ("Holder = 1", "Holder = 1"),  # only the first character matters
        ("12.50", "12.50"),
        (None, ""),
        (0, "0"),
    ],
)
def test_csv_cell_escapes_what_a_spreadsheet_would_run(value, cell):
    assert csv_cell(value) == cell


def test_csv_text_guards_every_cell():
    rows = list(csv.reader(io.StringIO(csv_text([["name", "city"], ["=1+1", "@home"]]))))
    assert rows == [["name", "city"], ["'=1+1", "'@home"]]


def read(text: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(text)))


@pytest.fixture
def data(db, django_user_model):
    return build(django_user_model)


def test_posting_file_has_one_line_per_payment_refund_and_reversal(data):
    a1, a2, *_ = data.accounts
    # A second payment on Oct 10 by an account whose holder typed a formula, and a chargeback withdrawn that day.
    a2.account_number = "=A2"
    a2.save()
    p8 = payment(a2, amount=1500, channel="portal", received=at("2026-10-10", 18))
    Dispute.objects.create(payment=p8, gateway_dispute_id="dp_1", amount=1500, currency="USD", status="lost",
                           funds="withdrawn", amount_withdrawn=1500)  # fmt: skip
    Dispute.objects.filter(gateway_dispute_id="dp_1").update(updated_at=at("2026-10-10", 20))
    rows = read(posting_csv(biller=data.biller, day=dt.date(2026, 10, 10)))
    p1 = data.payments[0]
    assert rows[0] == {
        "record_type": "payment", "direction": "credit", "account_number": "A1", "bill_number": "B1",
        "amount": "100.00", "currency": "USD", "date": "2026-10-10", "channel": "guest_web", "method": "card",
        "confirmation_number": p1.confirmation_number, "reference": "",
    }  # fmt: skip
    assert [(r["record_type"], r["account_number"], r["amount"]) for r in rows] == [
        ("payment", "A1", "100.00"), ("payment", "'=A2", "15.00"), ("reversal", "'=A2", "15.00"),
    ]  # fmt: skip
    # R1 (10.00) was made on Oct 15: it is that day's only line.
    refund_day = read(posting_csv(biller=data.biller, day=dt.date(2026, 10, 15)))
    assert [(r["record_type"], r["direction"], r["bill_number"], r["amount"]) for r in refund_day] == [
        ("refund", "debit", "B1", "10.00")
    ]


def test_posting_totals_match_the_payments_table_day_by_day(data):
    for day in (dt.date(2026, 10, d) for d in range(1, 32)):
        lines = posting_lines(biller=data.biller, day=day)
        start, end = at(day.isoformat(), 0), at(day.isoformat(), 0) + dt.timedelta(days=1)
        paid = Payment.objects.filter(
            biller=data.biller, status="succeeded", received_at__gte=start, received_at__lt=end
        ).aggregate(total=Sum("amount"))["total"] or 0
        refunded = Refund.objects.filter(
            payment__biller=data.biller, status="succeeded", created_at__gte=start, created_at__lt=end
        ).aggregate(total=Sum("amount"))["total"] or 0
        assert sum(line.amount for line in lines if line.record_type == "payment") == paid
        assert sum(line.amount for line in lines if line.record_type == "refund") == refunded
    # And the month adds up to October's "Collected" on the page: 100 + 50 + 30 = 180.00.
    month = [line for d in range(1, 32) for line in posting_lines(biller=data.biller, day=dt.date(2026, 10, d))]
    assert sum(line.amount for line in month if line.record_type == "payment") == 18000


def test_export_payments_command_writes_the_same_file(data, tmp_path):
    out = StringIO()
    call_command("export_payments", biller=data.biller.slug, date="2026-10-12", stdout=out)
    assert out.getvalue() == posting_csv(biller=data.biller, day=dt.date(2026, 10, 12))
    assert [r["bill_number"] for r in read(out.getvalue())] == ["B2"]
    target = tmp_path / "posting.csv"
    call_command("export_payments", biller=data.biller.slug, date="2026-10-12", output=str(target))
    assert target.read_bytes().decode("utf-8") == out.getvalue()  # CSV's CRLF line ends kept
    with pytest.raises(CommandError, match="No biller"):
        call_command("export_payments", biller="nobody", date="2026-10-12")
    with pytest.raises(CommandError, match="not a date"):
        call_command("export_payments", biller=data.biller.slug, date="12/10/2026")


def test_deposit_report_groups_gateway_money_by_day(data):
    period = period_make(kind=CUSTOM, today=dt.date(2026, 11, 10), start=dt.date(2026, 9, 1), end=dt.date(2026, 10, 31))
    # Sep 20's cash (P3) was banked by the biller, not paid out by the gateway: left out.
    # Oct 10: P1 100.00; Oct 12: P2 50.00; Oct 15: R1 10.00 out; Oct 25: P5 30.00.
    assert deposit_rows(biller=data.biller, period=period) == [
        ["2026-10-10", "USD", 1, Decimal("100.00"), Decimal("0.00"), Decimal("0.00"), Decimal("0.00"), Decimal("100.00"), "in"],
        ["2026-10-12", "USD", 1, Decimal("50.00"), Decimal("0.00"), Decimal("0.00"), Decimal("0.00"), Decimal("50.00"), "in"],
        ["2026-10-15", "USD", 0, Decimal("0.00"), Decimal("0.00"), Decimal("0.00"), Decimal("10.00"), Decimal("10.00"),
         "out"],
        ["2026-10-25", "USD", 1, Decimal("30.00"), Decimal("0.00"), Decimal("0.00"), Decimal("0.00"), Decimal("30.00"), "in"],
    ]
