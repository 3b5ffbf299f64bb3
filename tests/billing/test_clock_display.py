"""Dates and times in one style per page (issue 10, items 13 and 15): CLDR's long date through babel in the active
language, the biller's clock with the zone named, and Solar Hijri with Persian digits on Persian pages when the
biller chooses it."""

import datetime as dt

import pytest
from django.utils import translation

from billing.bills import documents
from billing.clock import date_display, datetime_display
from billing.models import Biller, PaymentAllocation
from billing.payments import receipts
from tests.billing.payments.test_receipts import succeeded_payment
from tests.factories import CustomerAccountFactory, make_bill

DAY = dt.date(2026, 11, 27)
MOMENT = dt.datetime(2026, 11, 27, 16, 36, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("language", "shown"),
    [("en", "November 27, 2026"), ("es", "27 de noviembre de 2026"), ("ar", "27 نوفمبر 2026"), ("fa", "27 نوامبر 2026")],
)
def test_one_long_date_style_per_language(language, shown):
    assert date_display(DAY, language=language) == shown


def test_solar_hijri_with_persian_digits_on_persian_pages_when_the_biller_chooses_it():
    biller = Biller(name="B", slug="b", calendar=Biller.Calendar.SOLAR_HIJRI, time_zone="Asia/Tehran")
    assert date_display(DAY, biller=biller, language="fa") == "۶ آذر ۱۴۰۵"
    assert date_display(DAY, biller=biller, language="ar") == "27 نوفمبر 2026"  # Persian pages only
    assert date_display(DAY, biller=Biller(calendar=Biller.Calendar.GREGORIAN), language="fa") == "27 نوامبر 2026"
    assert datetime_display(MOMENT, biller=biller, language="fa").startswith("۶ آذر ۱۴۰۵")
    assert "۲۰:۰۶" in datetime_display(MOMENT, biller=biller, language="fa")  # 16:36 UTC is 20:06 in Tehran


@pytest.mark.parametrize(
    ("zone", "shown"),
    [
        ("America/Chicago", "November 27, 2026, 10:36\u202fAM Chicago"),
        ("Asia/Riyadh", "November 27, 2026, 7:36\u202fPM Riyadh"),
        ("UTC", "November 27, 2026, 4:36\u202fPM UTC"),
    ],
)
def test_times_are_on_the_billers_clock_with_the_zone_named(zone, shown):
    assert datetime_display(MOMENT, biller=Biller(time_zone=zone), language="en") == shown


def test_a_moment_late_in_the_evening_is_dated_where_the_biller_is():
    late = dt.datetime(2026, 11, 28, 3, 0, tzinfo=dt.UTC)  # still the 27th in Chicago
    assert date_display(late, biller=Biller(time_zone="America/Chicago"), language="en") == "November 27, 2026"


def test_arabic_receipt_and_bill_show_the_same_date_style(account):
    account.language = "ar"
    account.save()
    payment = succeeded_payment(account)
    bill = account.bills.get()
    PaymentAllocation.objects.create(payment=payment, bill=bill, amount=5000)
    with translation.override("ar"):
        on_receipt = receipts.receipt_context(payment)["bills_paid"][0]["due"]
    html = documents.bill_document_html(document=documents.bill_document_get(bill=bill))
    assert on_receipt == date_display(bill.due_date, language="ar")
    assert f"<dd>{on_receipt}</dd>" in html  # the bill's due date, written the same way


def test_a_solar_hijri_billers_persian_bill_uses_it(db):
    account = CustomerAccountFactory(language="fa")
    account.biller.calendar = Biller.Calendar.SOLAR_HIJRI
    account.biller.save()
    bill = make_bill(account, today=DAY)
    html = documents.bill_document_html(document=documents.bill_document_get(bill=bill))
    assert date_display(bill.due_date, biller=account.biller, language="fa") in html
    assert "۱۴۰۵" in html
