import datetime as dt
import itertools

import pytest

from billing.bills.services import LineInput, bill_create, bill_issue
from notifications import sms
from tests.factories import CustomerAccountFactory

DUE = dt.date(2025, 3, 20)  # a Thursday; every test moves time around this due date
_numbers = itertools.count(1)


def at(day: dt.date, hour: int = 12, minute: int = 0) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, hour, minute, tzinfo=dt.UTC)


def day(offset: int) -> dt.date:
    return DUE + dt.timedelta(days=offset)


def issued_bill(account, *, due=DUE, issued=None, amount=5000):
    """An open bill due on `due`, issued 14 days before unless `issued` says otherwise."""
    bill = bill_create(
        account=account,
        number=f"N-{next(_numbers):06d}",
        period_start=due - dt.timedelta(days=45),
        period_end=due - dt.timedelta(days=15),
        due_date=due,
        lines=[LineInput(description="Water", amount=amount)],
    )
    return bill_issue(bill=bill, issue_date=issued or due - dt.timedelta(days=14))


@pytest.fixture(autouse=True)
def sms_locmem(settings):
    settings.SMS_BACKEND = "locmem"
    settings.SITE_URL = "https://pay.riverside.example"
    settings.NOTIFICATIONS_ATTACH_BILL_PDF = False  # WeasyPrint is slow; the PDF test turns it on
    sms.outbox.clear()
    yield sms.outbox
    sms.outbox.clear()


@pytest.fixture
def texting_account(biller):
    return CustomerAccountFactory(biller=biller, phone="+1 555 0100 123", sms_notices=True)
