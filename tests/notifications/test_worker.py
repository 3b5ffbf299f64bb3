"""Integration: a real Celery worker process on Redis, sharing the test's PostgreSQL database.

The sweeper claims due rows and enqueues one task per row; the worker sends them through file-writing backends the
test reads back. Sweeping twice, and from several threads at once, must send every notification exactly once.

Needs REDIS_URL and a PostgreSQL DATABASE_URL (a worker process cannot see SQLite's in-memory test database). Without
them a local run skips with the reason; in CI (CI=true) the tests fail instead.
"""

import datetime as dt
import email
import email.policy
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection, connections
from django.utils import timezone

from notifications import sms
from notifications.models import NoticePolicy, Notification
from notifications.planner import reminders_plan
from notifications.services import notifications_sweep
from tests.factories import BillerFactory, CustomerAccountFactory
from tests.worker_support import database_url as worker_database_url
from tests.worker_support import unavailable

from .conftest import issued_bill

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def celery_worker(django_db_setup, django_db_blocker, tmp_path_factory):
    """A `celery -A config worker --pool solo` process on REDIS_URL, using the test database. Yields the folders its
    e-mail and SMS backends write to."""
    if not settings.REDIS_URL:
        unavailable("needs REDIS_URL (CI sets it): the worker test runs a real Celery worker on Redis")
    with django_db_blocker.unblock():
        if connection.vendor != "postgresql":
            unavailable("needs PostgreSQL: set DATABASE_URL=postgres://… so the worker process shares the test DB")
        database_url = worker_database_url(connection.settings_dict)
    from config.celery_app import app

    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=3)
            # Only this module's messages: drop anything an earlier test published to the queue.
            for queue in app.conf.task_queues:  # every queue by kind (config/settings/base.py)
                conn.default_channel.queue_purge(queue.name)
    except Exception as exc:  # noqa: BLE001 - any failure to reach the broker means the same thing here
        unavailable(f"Redis at REDIS_URL is unreachable: {exc}")

    email_dir, sms_dir = tmp_path_factory.mktemp("worker-email"), tmp_path_factory.mktemp("worker-sms")
    log_path = tmp_path_factory.mktemp("worker-log") / "worker.log"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.notifications.worker_settings",
        "DATABASE_URL": database_url,
        "REDIS_URL": settings.REDIS_URL,
        "BILLPAY_TEST_EMAIL_DIR": str(email_dir),
        "BILLPAY_TEST_SMS_DIR": str(sms_dir),
        "PYTHONPATH": str(ROOT),
    }
    command = [
        sys.executable, "-m", "celery", "-A", "config", "worker", "--pool", "solo", "--loglevel", "INFO",
        "--hostname", f"notifications-test-{os.getpid()}@%h", "--without-gossip", "--without-mingle",
    ]  # fmt: skip
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while b"ready." not in log_path.read_bytes():
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail("the Celery worker did not start:\n" + log_path.read_text(errors="replace")[-4000:])
            time.sleep(0.2)
        yield {"email": email_dir, "sms": sms_dir, "log": log_path}
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def sent_emails(folder) -> list[str]:
    """The X-Billpay-Notification key of every e-mail the worker wrote (one file per connection, maybe several each)."""
    keys = []
    for path in Path(folder).glob("*.log"):
        for chunk in path.read_bytes().split(b"-" * 79):
            if chunk.strip():
                keys.append(
                    email.message_from_bytes(chunk.strip(), policy=email.policy.default)["X-Billpay-Notification"]
                )
    return keys


def sent_sms(folder) -> list[str]:
    return [record.reference for record in sms.file_outbox(folder)]


def wait_until_settled(expected: int, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if Notification.objects.filter(status=Notification.Status.SENT).count() >= expected and not (
            Notification.objects.filter(status__in=["pending", "sending"]).exists()
        ):
            return
        time.sleep(0.25)
    rows = list(Notification.objects.values_list("dedupe_key", "status", "last_error"))
    pytest.fail(f"notifications did not settle: {rows}")


def _sweep_in_thread(results, barrier):
    try:
        barrier.wait()
        results.append(notifications_sweep().claimed)
    finally:
        connections.close_all()


@pytest.mark.postgres
def test_the_worker_sends_every_due_notification_exactly_once(celery_worker, transactional_db):
    biller = BillerFactory()
    NoticePolicy.objects.create(biller=biller, send_time=dt.time(0, 0))  # due at once, whatever the hour
    today = timezone.now().date()
    for i in range(12):
        account = CustomerAccountFactory(biller=biller, phone=f"+1555{i:07d}", sms_notices=i % 3 == 0)
        issued_bill(account, due=today, issued=today - dt.timedelta(days=14))
    reminders_plan()
    rows = {n.dedupe_key: n for n in Notification.objects.exclude(status="skipped")}
    assert len(rows) == 12 + 4  # an e-mail each, a text for every third account

    # Sweepers twice in a row and four at once: every row is claimed by exactly one of them.
    claimed = [notifications_sweep().claimed, notifications_sweep().claimed]
    results, barrier = [], threading.Barrier(4)
    threads = [threading.Thread(target=_sweep_in_thread, args=(results, barrier)) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    all_claimed = [pk for batch in claimed + results for pk in batch]
    assert sorted(all_claimed) == sorted(n.pk for n in rows.values())

    wait_until_settled(len(rows))
    # Sweep again after everything went out, and redeliver a task by hand: nothing more is sent.
    assert notifications_sweep().claimed == []
    from notifications.tasks import notification_send_task

    some = next(iter(rows.values()))
    notification_send_task.delay(some.pk)
    time.sleep(2)

    emails, texts = sent_emails(celery_worker["email"]), sent_sms(celery_worker["sms"])
    assert sorted(emails) == sorted(k for k in rows if ":email" in k)
    assert sorted(texts) == sorted(k for k in rows if ":sms" in k)
    sent = Notification.objects.filter(status="sent")
    assert sent.count() == len(rows)
    assert all(n.attempts == 1 and n.provider_id for n in sent)
    log = celery_worker["log"].read_text(errors="replace")
    assert "notification_send_task" in log and "noop" in log
