"""Kill test: a real Celery worker on Redis charges an autopay bill on localstripe and is SIGKILLed at the worst moment
(the card was charged, nothing is recorded yet). A second worker picks the row up after the charging timeout, and the
end state is one succeeded PaymentIntent in localstripe, recorded once.

Why that point: before the confirm, a kill loses nothing (the intent id is committed before the confirm, and an intent
that was never confirmed never charges). After the confirm returned, the money has moved and our transaction holding
the result dies with the worker: only the stored intent id and the try's unique key stop a second charge. That is the
case this test proves.

Needs REDIS_URL and a PostgreSQL DATABASE_URL (the worker is another process and must see the test database). Without
them a local run skips with the reason; in CI (CI=true) it fails instead.
"""

import datetime as dt
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone

from billing.autopay.planning import autopay_plan, autopay_sweep
from billing.models import AutopayCharge, AutopayChargeEvent, Bill, Payment, PaymentAttempt
from tests import stripe_support
from tests.factories import CustomerAccountFactory, make_bill
from tests.worker_support import database_url as worker_database_url
from tests.worker_support import unavailable

from .test_autopay_runs import autopay_payer, intents

ROOT = Path(__file__).resolve().parents[3]


class Worker:
    """`celery -A config worker --pool solo` on REDIS_URL with the autopay worker settings."""

    def __init__(self, env: dict, log_path: Path, name: str):
        self.log_path = log_path
        command = [
            sys.executable, "-m", "celery", "-A", "config", "worker", "--pool", "solo", "--loglevel", "INFO",
            "--hostname", f"{name}-{os.getpid()}@%h", "--without-gossip", "--without-mingle", "--without-heartbeat",
        ]  # fmt: skip
        with open(log_path, "wb") as log:
            self.process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while b"ready." not in log_path.read_bytes():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                pytest.fail("the Celery worker did not start:\n" + self.log())
            time.sleep(0.2)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def kill(self) -> None:
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


@pytest.fixture
def worker_env(transactional_db, stripe_settings, localstripe, tmp_path):
    if not settings.REDIS_URL:
        unavailable("needs REDIS_URL (CI sets it): the kill test runs a real Celery worker on Redis")
    if connection.vendor != "postgresql":
        unavailable("needs PostgreSQL: set DATABASE_URL=postgres://… so the worker process shares the test DB")
    from config.celery_app import app

    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=3)
            for queue in app.conf.task_queues:  # every queue by kind (config/settings/base.py)
                conn.default_channel.queue_purge(queue.name)
    except Exception as exc:  # noqa: BLE001 - any failure to reach the broker means the same thing here
        unavailable(f"Redis at REDIS_URL is unreachable: {exc}")
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.billing.autopay_worker_settings",
        "DATABASE_URL": worker_database_url(connection.settings_dict),
        "REDIS_URL": settings.REDIS_URL,
        "STRIPE_API_BASE": localstripe,
        "STRIPE_SECRET_KEY": stripe_support.SECRET_KEY,
        "BILLPAY_TEST_AUTOPAY_PAUSE_FILE": str(tmp_path / "charged-not-recorded"),
        "PYTHONPATH": str(ROOT),
    }


def _wait(condition, timeout: float, what: str, worker: Worker):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}; worker log:\n{worker.log()}")


@pytest.mark.postgres
def test_a_worker_killed_after_charging_is_recovered_without_a_second_charge(
    worker_env, localstripe, biller, django_user_model, tmp_path, settings
):
    account = CustomerAccountFactory(biller=biller)
    autopay_payer(account, django_user_model)  # pays with 4242
    bill = make_bill(account, amounts=(2750,), due_in_days=0)
    assert autopay_plan().created == 1
    marker = Path(worker_env["BILLPAY_TEST_AUTOPAY_PAUSE_FILE"])

    first = Worker(worker_env, tmp_path / "worker-1.log", "autopay-kill-1")
    try:
        later = timezone.now() + dt.timedelta(days=1)
        (charge_id,) = autopay_sweep(now=later).claimed  # enqueues autopay_charge_task on Redis
        _wait(marker.exists, 60, "the worker to charge the card", first)
        # The card is charged; our database knows only the intent id and a pending try.
        assert [i["status"] for i in intents(localstripe)] == ["succeeded"]
        charge = AutopayCharge.objects.get(pk=charge_id)
        assert charge.status == AutopayCharge.Status.CHARGING
        assert charge.tries.get().outcome == "pending" and charge.tries.get().payment.status == "pending"
        first.kill()
    finally:
        first.stop()

    second = Worker(worker_env, tmp_path / "worker-2.log", "autopay-kill-2")
    try:
        # Before the timeout the sweeper leaves the row alone; after it, the row is claimed again and re-enqueued.
        assert autopay_sweep(now=later + dt.timedelta(seconds=1)).reclaimed == []
        settings.AUTOPAY_CHARGING_TIMEOUT_SECONDS = 2
        result = autopay_sweep(now=later + dt.timedelta(seconds=3))
        assert result.reclaimed == [charge_id] and result.claimed == []
        _wait(
            lambda: AutopayCharge.objects.get(pk=charge_id).status == AutopayCharge.Status.SUCCEEDED,
            60, "the second worker to record the charge", second,
        )  # fmt: skip
        assert "autopay_charge_task" in second.log()
    finally:
        second.stop()

    succeeded = intents(localstripe, "succeeded")
    assert len(succeeded) == 1 and len(intents(localstripe)) == 1 and succeeded[0]["amount"] == 2750
    payment = Payment.objects.get(account=account)
    assert payment.status == Payment.Status.SUCCEEDED and payment.gateway_payment_id == succeeded[0]["id"]
    # The confirm's row was committed before the call; the second worker completed it from the intent.
    calls = list(PaymentAttempt.objects.filter(payment=payment).order_by("pk"))
    assert [(a.kind, a.outcome) for a in calls] == [
        ("create", "pending"), ("confirm", "succeeded"), ("retrieve", "succeeded"),
    ]  # fmt: skip
    assert "lost worker" in calls[1].message
    bill.refresh_from_db()
    assert bill.status == Bill.Status.PAID and bill.amount_paid == 2750
    assert AutopayChargeEvent.objects.filter(charge_id=charge_id, message__contains="claimed again").count() == 1
