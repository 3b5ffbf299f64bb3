"""Reminder yield on the insight page (notifications/insight.py), on insight_support.py's biller plus a few notices.

Added here: B10 (A4, issued Oct 1, due Oct 20, 20.00) paid by P10 on Oct 21 10:00, with no notice at all; P9, 10.00
on B2 on Oct 30 10:00. The schedule is [0, 3]. Notices sent in October:

    N1  B3  bill_issued  email  step —  Oct 20 09:00   B3's next payment is Oct 25: not within 72 h
    N2  B1  due_today    email  step 0  Oct 25 09:00   B1 was paid on Oct 10, nothing after: not within 72 h
    N3  B2  past_due     email  step 3  Oct 28 09:00   P9 on Oct 30 10:00 (49 h later): within 72 h
    N4  B2  past_due     sms    step 3  Oct 28 09:00   same bill, same payment: within 72 h
    N5  B9  past_due     email  step 3  skipped        (not sent: does not count)
"""

import datetime as dt

import pytest

from billing.insight.charts import cell_text
from billing.insight.periods import LAST_MONTH, period_make
from billing.insight.selectors import insight_report_build
from billing.models import Bill
from notifications.models import Notification
from tests.billing.insight.insight_support import TODAY, at, bill, build, payment



def notice(b, kind, channel, step, sent, status="sent"):
    Notification.objects.create(
        dedupe_key=f"t:{b.number}:{kind}:{channel}:{step}", biller=b.biller, account=b.account, bill=b, kind=kind,
        channel=channel, step=step, status=status, send_at=sent, sent_at=sent if status == "sent" else None,
    )  # fmt: skip


@pytest.fixture
def report(db, django_user_model):
    data = build(django_user_model)
    data.biller.reminder_schedule = [0, 3]
    data.biller.save()
    a1, a2, a3, a4, a5 = data.accounts
    b10 = bill(a4, "B10", "2026-10-01", "2026-10-20", 2000, 2000, "paid")
    payment(a4, amount=2000, channel="portal", received=at("2026-10-21", 10), bills=[(b10, 2000)])
    b1, b2, b3, b9 = (Bill.objects.get(number=n) for n in ("B1", "B2", "B3", "B9"))
    payment(a2, amount=1000, channel="portal", received=at("2026-10-30", 10), bills=[(b2, 1000)])
    notice(b3, "bill_issued", "email", None, at("2026-10-20", 9))
    notice(b1, "due_today", "email", 0, at("2026-10-25", 9))
    notice(b2, "past_due", "email", 3, at("2026-10-28", 9))
    notice(b2, "past_due", "sms", 3, at("2026-10-28", 9))
    notice(b9, "past_due", "email", 3, at("2026-10-28", 9), status="skipped")
    return insight_report_build(biller=data.biller, period=period_make(kind=LAST_MONTH, today=TODAY), today=TODAY)


def test_reminder_yield_per_kind_channel_and_step(report):
    rows = [[cell_text(c) for c in row] for row in report.table("reminder_yield").rows]
    # Step 0's comparison: bills due in October with no step-0 notice, unpaid on their due date: B2 was paid on
    # Oct 12 (before), B1 got the notice, B5 is void; B10 (due Oct 20) qualifies and was paid Oct 21 10:00, within
    # 72 h → 1 of 1. Step 3's (due Sep 28 – Oct 28): B1 and B10 were paid before their step-3 day, B2 got the
    # notice → no bill to compare with.
    assert rows == [
        ["New bill", "E-mail", "—", "1", "0", "0.0%", "0", "—"],
        ["Bill due today", "E-mail", "0", "1", "0", "0.0%", "1", "100.0%"],
        ["Bill past due", "E-mail", "3", "1", "1", "100.0%", "0", "—"],
        ["Bill past due", "Text message", "3", "1", "1", "100.0%", "0", "—"],
    ]
    caveats = report.section("reminders").caveats
    assert len(caveats) == 1 and "step(s) 3" in caveats[0] and "every bill of that age got a notice" in caveats[0]


def test_a_period_without_notices_says_so(db, django_user_model):
    data = build(django_user_model)
    report = insight_report_build(
        biller=data.biller, period=period_make(kind=LAST_MONTH, today=dt.date(2026, 3, 1)), today=dt.date(2026, 3, 1)
    )
    assert report.table("reminder_yield").rows == []
    assert report.section("reminders").caveats == ["No bill notice was sent in the period."]
