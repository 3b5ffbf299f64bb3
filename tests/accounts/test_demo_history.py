"""seed_demo's twelve months of history (accounts/demo_history.py): enough for every insight chart, written once."""

from io import StringIO

import pytest
from django.core.management import call_command

from accounts.demo import DEMO_BILLER_SLUG
from accounts.demo_history import demo_history_seed
from billing.clock import biller_today
from billing.insight.periods import LAST_12_MONTHS, period_make
from billing.insight.selectors import insight_report_build
from billing.models import AutopayEnrollment, Bill, Biller, Payment
from notifications.models import Notification


@pytest.fixture
def biller(db):
    call_command("seed_demo", stdout=StringIO())
    return Biller.objects.get(slug=DEMO_BILLER_SLUG)


def test_history_fills_every_chart_of_the_last_12_months(biller):
    today = biller_today(biller)
    report = insight_report_build(biller=biller, period=period_make(kind=LAST_12_MONTHS, today=today), today=today)
    trend = report.table("adoption_trend").rows
    assert len(trend) == 12 and all(row[1] > 0 for row in trend)  # bills went out every month
    assert trend[0][2].value < trend[-1][2].value  # paperless grew over the year
    assert trend[-1][3].value > 0  # and autopay is there
    channels = {row[0]: row[1] for row in report.table("collections_by_channel").rows}
    assert all(channels[str(label)] > 0 for label in ("Guest, online", "Signed-in payer", "Autopay",
                                                       "Recorded by staff"))  # fmt: skip
    assert [row[0] for row in report.table("recovery_by_attempt").rows] == [1, 2]
    assert {row[0] for row in report.table("recovery_by_decline_class").rows} == {"Hard decline", "Soft decline"}
    reminders = report.table("reminder_yield").rows
    assert any(row[6] > 0 for row in reminders)  # opted-out payers give same-age bills to compare with
    assert report.table("invitations_by_batch").rows and report.table("sign_ins_trend").rows[-1][1] > 0


def test_history_is_written_once_and_never_charges(biller):
    counts = (Bill.objects.count(), Payment.objects.count(), Notification.objects.count())
    call_command("seed_demo", stdout=StringIO())
    assert demo_history_seed(biller=biller) == 0
    assert (Bill.objects.count(), Payment.objects.count(), Notification.objects.count()) == counts
    # The demo autopay enrolments are paused: the sweeper never charges their (made-up) card.
    assert set(AutopayEnrollment.objects.values_list("status", flat=True)) == {"paused"}
