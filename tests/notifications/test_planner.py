"""The planner: the right notices at the right times over a bill's cycle, once each, and the catch-up rule."""

import datetime as dt

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from billing.bills.services import LineInput, bill_create, bill_void
from billing.payments.offline import payment_record_offline
from notifications.models import NoticePolicy, Notification
from notifications.planner import reminders_plan
from tests.factories import CustomerAccountFactory

from .conftest import DUE, at, day, issued_bill

pytestmark = pytest.mark.django_db
Status = Notification.Status


def keys(**filters):
    return sorted(Notification.objects.filter(**filters).values_list("dedupe_key", flat=True))


def pending_keys():
    return keys(status=Status.PENDING)


def test_a_bill_cycle_gets_each_notice_on_its_day(account):
    bill = issued_bill(account)  # schedule [-5, 0, 3, 10], e-mail only (no SMS opt-in)
    b = f"bill:{bill.pk}"
    seen = {}
    for offset in range(-16, 16):
        today = day(offset)
        reminders_plan(today=today, now=at(today, 6))
        for n in Notification.objects.filter(status=Status.PENDING).exclude(dedupe_key__in=seen):
            seen[n.dedupe_key] = (offset, n)
    assert {k: v[0] for k, v in seen.items()} == {
        f"{b}:bill_issued:email": -14,
        f"{b}:due_upcoming:email:-5": -5,
        f"{b}:due_today:email:0": 0,
        f"{b}:past_due:email:3": 3,
        f"{b}:past_due:email:10": 10,
    }
    # Scheduled reminders go out at the biller's send time (09:00 in its zone), the e-bill at once.
    assert seen[f"{b}:due_upcoming:email:-5"][1].send_at == at(day(-5), 9)
    assert seen[f"{b}:bill_issued:email"][1].send_at == at(day(-14), 6)
    assert not Notification.objects.exclude(status=Status.PENDING).exists()


def test_planning_twice_makes_the_same_rows(account, texting_account):
    issued_bill(account)
    issued_bill(texting_account)
    reminders_plan(today=DUE, now=at(DUE, 6))
    first = list(Notification.objects.order_by("pk").values_list("pk", "dedupe_key", "status", "send_at"))
    reminders_plan(today=DUE, now=at(DUE, 7))
    reminders_plan(today=DUE, now=at(DUE, 8), chunk_size=1)
    assert list(Notification.objects.order_by("pk").values_list("pk", "dedupe_key", "status", "send_at")) == first
    assert len(first) == 2 + 2 * 2  # due today for both + skipped -5 for both, SMS for the texting account


def test_sms_only_for_the_urgent_kinds_when_opted_in(texting_account):
    bill = issued_bill(texting_account, issued=DUE - dt.timedelta(days=5))
    reminders_plan(today=day(-5), now=at(day(-5), 6))
    assert pending_keys() == [
        f"bill:{bill.pk}:bill_issued:email",
        f"bill:{bill.pk}:due_upcoming:email:-5",
        f"bill:{bill.pk}:due_upcoming:sms:-5",
    ]


def test_catch_up_after_an_outage_sends_only_the_latest_step(account):
    bill = issued_bill(account)
    # Beat was down from before day -5 until day 4: -5 and 0 are stale, 3 is one day late and still useful.
    reminders_plan(today=day(4), now=at(day(4), 10))
    b = f"bill:{bill.pk}"
    assert pending_keys() == [f"{b}:past_due:email:3"]
    assert keys(status=Status.SKIPPED) == [f"{b}:due_today:email:0", f"{b}:due_upcoming:email:-5"]
    skipped = Notification.objects.get(dedupe_key=f"{b}:due_upcoming:email:-5")
    assert "later reminder step" in skipped.last_error
    # Late in the day: send now, not at this morning's 09:00.
    assert Notification.objects.get(dedupe_key=f"{b}:past_due:email:3").send_at == at(day(4), 10)


def test_catch_up_never_sends_due_soon_after_the_due_date(account, biller):
    biller.reminder_schedule = [-1, 7]
    biller.save()
    bill = issued_bill(account)
    reminders_plan(today=day(1), now=at(day(1)))  # -1 was two days ago, within catch-up, but the due date passed
    assert pending_keys() == []
    assert keys(status=Status.SKIPPED) == [f"bill:{bill.pk}:due_upcoming:email:-1"]


def test_a_past_due_step_too_late_is_skipped(account, biller):
    NoticePolicy.objects.create(biller=biller, catch_up_days=1)
    bill = issued_bill(account)
    reminders_plan(today=day(12), now=at(day(12)))  # step 10 was two days ago, only one allowed
    assert pending_keys() == []
    assert Notification.objects.get(dedupe_key=f"bill:{bill.pk}:past_due:email:10").status == Status.SKIPPED


def test_paid_void_and_draft_bills_get_no_reminders(account):
    paid = issued_bill(account)
    payment_record_offline(account=account, amount=paid.total, method="cash")
    bill_void(bill=issued_bill(account))
    bill_create(
        account=account, number="DRAFT-1", period_start=day(-40), period_end=day(-10), due_date=DUE,
        lines=[LineInput(description="x", amount=100)],
    )  # fmt: skip
    reminders_plan(today=DUE, now=at(DUE))
    assert not Notification.objects.exists()


def test_each_biller_uses_its_own_time_zone(biller):
    from billing.models import Biller

    far_east = Biller.objects.create(name="Tokyo Gas", slug="tokyo-gas", currency="JPY", time_zone="Asia/Tokyo")
    tokyo_bill = issued_bill(CustomerAccountFactory(biller=far_east))
    utc_bill = issued_bill(CustomerAccountFactory(biller=biller))
    # 20:00 UTC the day before the due date is already the due date in Tokyo.
    reminders_plan(now=at(day(-1), 20))
    assert f"bill:{tokyo_bill.pk}:due_today:email:0" in pending_keys()
    assert f"bill:{utc_bill.pk}:due_today:email:0" not in pending_keys()
    tokyo_row = Notification.objects.get(dedupe_key=f"bill:{tokyo_bill.pk}:due_today:email:0")
    assert tokyo_row.send_at == at(DUE, 0)  # it is 05:00 in Tokyo: the reminder waits for 09:00 there


def test_constant_queries_per_chunk(biller):
    accounts = [CustomerAccountFactory(biller=biller, phone=f"+1555{i:07d}", sms_notices=i % 2 == 0) for i in range(30)]
    for account in accounts:
        issued_bill(account)
    result = reminders_plan(today=DUE, now=at(DUE), chunk_size=10, count_queries=True)
    assert result.chunks == 3
    assert len(set(result.queries_per_chunk)) == 1, result.queries_per_chunk
    with CaptureQueriesContext(connection) as small:
        reminders_plan(today=DUE, now=at(DUE), chunk_size=500)
    assert result.bills == 30
    # One chunk for 30 bills costs what one chunk of 10 did (plus the policies and the empty-chunk check).
    assert len(small.captured_queries) <= result.queries_per_chunk[0] + 2
