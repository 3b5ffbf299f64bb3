"""A send task message lost from the broker (a Redis flush, a purged queue): the row the sweeper claimed is enqueued
again within about a minute when no worker started it, and is still sent exactly once. A row a worker started keeps
the long sending timeout (it may be mid-send).

The sweeper logic in-process; then a real Celery worker on Redis after the queue really lost the messages (needs
REDIS_URL and a PostgreSQL DATABASE_URL: skipped locally without them, failing in CI)."""

import datetime as dt

import pytest
from django.conf import settings
from django.core import mail
from django.utils import timezone

from notifications.models import NoticePolicy, Notification
from notifications.planner import reminders_plan
from notifications.services import notification_send, notifications_sweep
from notifications.tasks import notification_send_task
from tests.factories import BillerFactory, CustomerAccountFactory

from .conftest import DUE, at, issued_bill
from .test_worker import celery_worker  # noqa: F401 - started mid-test, after the broker lost the messages

Status = Notification.Status


@pytest.fixture
def enqueued(monkeypatch):
    """The ids the sweeper enqueues send tasks for (after commit), instead of a broker."""
    sent = []
    monkeypatch.setattr(notification_send_task, "delay_on_commit", lambda pk: sent.append(pk))
    return sent


@pytest.mark.django_db
def test_a_claimed_row_whose_message_was_lost_is_enqueued_again_after_a_minute_and_sent_once(account, enqueued):
    issued_bill(account)
    reminders_plan(today=DUE, now=at(DUE, 6))
    [pk] = notifications_sweep(now=at(DUE, 9)).claimed
    assert enqueued == [pk]  # ... and the broker loses that message

    early = notifications_sweep(now=at(DUE, 9) + dt.timedelta(seconds=59))
    assert enqueued == [pk] and early.claimed == []
    late = notifications_sweep(now=at(DUE, 9) + dt.timedelta(seconds=61))  # NOTIFICATIONS_UNSTARTED_TIMEOUT_SECONDS
    assert enqueued == [pk, pk]  # the next minute's sweep sends the message again
    assert late.requeued == [pk] and late.claimed == [] and late.reclaimed == 0
    row = Notification.objects.get(pk=pk)
    assert row.status == Status.SENDING and row.claimed_at == at(DUE, 9) + dt.timedelta(seconds=61)

    # The lost message turns up after all, and the re-sent one too: one e-mail.
    now = at(DUE, 9, 2)
    assert [notification_send(notification_id=pk, now=now) for _ in range(2)] == ["sent", "noop"]
    assert len(mail.outbox) == 1
    assert notifications_sweep(now=at(DUE, 9, 5)).requeued == []


@pytest.mark.django_db
def test_a_row_a_worker_started_is_not_enqueued_again_before_the_sending_timeout(account, enqueued):
    issued_bill(account)
    reminders_plan(today=DUE, now=at(DUE, 6))
    [pk] = notifications_sweep(now=at(DUE, 9)).claimed
    Notification.objects.filter(pk=pk).update(attempt_started_at=at(DUE, 9))  # a worker is sending it

    result = notifications_sweep(now=at(DUE, 9, 5))
    assert result.requeued == [] and result.reclaimed == 0 and enqueued == [pk]
    assert Notification.objects.get(pk=pk).status == Status.SENDING
    assert notification_send(notification_id=pk, now=at(DUE, 9, 5)) == "noop"


@pytest.mark.django_db
def test_rows_claimed_less_than_a_minute_ago_are_left_alone(account, enqueued, settings):
    settings.NOTIFICATIONS_UNSTARTED_TIMEOUT_SECONDS = 120
    issued_bill(account)
    reminders_plan(today=DUE, now=at(DUE, 6))
    [pk] = notifications_sweep(now=at(DUE, 9)).claimed
    assert notifications_sweep(now=at(DUE, 9) + dt.timedelta(seconds=90)).requeued == []
    assert notifications_sweep(now=at(DUE, 9) + dt.timedelta(seconds=121)).requeued == [pk]


# --- A real worker after a Redis flush -------------------------------------------------------------------------------


@pytest.mark.postgres
def test_after_a_redis_flush_the_worker_sends_every_lost_notice_exactly_once(transactional_db, request):
    import redis

    from .test_worker import sent_emails, sent_sms, wait_until_settled

    if not settings.REDIS_URL:
        from tests.worker_support import unavailable

        unavailable("needs REDIS_URL (CI sets it): this test loses messages from a real Redis")
    biller = BillerFactory()
    NoticePolicy.objects.create(biller=biller, send_time=dt.time(0, 0))  # due at once, whatever the hour
    today = timezone.now().date()
    for i in range(4):
        account = CustomerAccountFactory(biller=biller, phone=f"+1556{i:07d}", sms_notices=i % 2 == 0)
        issued_bill(account, due=today, issued=today - dt.timedelta(days=14))
    reminders_plan()
    rows = {n.dedupe_key: n for n in Notification.objects.exclude(status="skipped")}
    assert len(rows) == 4 + 2

    # Claimed and enqueued on Redis while no worker runs, then Redis is flushed: the messages are really gone.
    claimed_at = timezone.now()
    assert sorted(notifications_sweep(now=claimed_at).claimed) == sorted(n.pk for n in rows.values())
    client = redis.Redis.from_url(settings.REDIS_URL)
    assert client.dbsize() > 0
    client.flushdb()
    worker = request.getfixturevalue("celery_worker")  # starts the worker now, on the emptied broker
    assert set(Notification.objects.values_list("status", flat=True)) - {"skipped"} == {"sending"}
    assert not Notification.objects.filter(attempt_started_at__isnull=False).exists()  # nothing reached the worker

    # The next minute's sweep enqueues them again; a second sweep right after may enqueue duplicates of rows not
    # yet started. Each row is still sent once.
    later = claimed_at + dt.timedelta(seconds=61)
    first = notifications_sweep(now=later)
    notifications_sweep(now=later + dt.timedelta(seconds=61))
    wait_until_settled(len(rows))
    assert sorted(first.requeued) == sorted(n.pk for n in rows.values())
    assert notifications_sweep(now=later + dt.timedelta(seconds=200)).requeued == []

    assert sorted(sent_emails(worker["email"])) == sorted(k for k in rows if ":email" in k)
    assert sorted(sent_sms(worker["sms"])) == sorted(k for k in rows if ":sms" in k)
    assert all(n.attempts == 1 for n in Notification.objects.filter(status="sent"))
