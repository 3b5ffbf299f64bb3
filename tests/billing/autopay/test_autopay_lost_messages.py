"""An autopay charge message lost from the broker (a Redis flush, a purged queue): a row the sweeper claimed that no
worker started is enqueued again within about a minute, and the bill is still charged exactly once. A row a worker
started keeps the long charging timeout (it may be mid-charge).

The sweeper logic in-process with the stand-in gateway; then a real Celery worker on Redis and localstripe after the
queue really lost the message (needs REDIS_URL and a PostgreSQL DATABASE_URL: skipped locally, failing in CI)."""

import datetime as dt
from pathlib import Path

import pytest
from django.conf import settings
from django.utils import timezone

from billing.autopay.charging import autopay_charge, autopay_charge_batch
from billing.autopay.planning import autopay_plan, autopay_sweep
from billing.autopay.tasks import autopay_charge_batch_task, autopay_charge_task
from billing.models import AutopayCharge, AutopayChargeEvent, Bill, Payment
from tests.billing.autopay_support import OK, FakeGateway, enroll, make_user, saved_card, use_gateway
from tests.factories import CustomerAccountFactory, make_bill

from .test_autopay_runs import autopay_payer, intents
from .test_autopay_worker import Worker, _wait, worker_env  # noqa: F401 - the kill test's worker and its settings

S = AutopayCharge.Status


@pytest.fixture
def enqueued(monkeypatch):
    """The row ids the sweeper enqueues charge tasks for (after commit; a claimed batch's rows, or a row alone),
    instead of a broker."""
    sent = []
    monkeypatch.setattr(autopay_charge_task, "delay_on_commit", lambda pk: sent.append(pk))
    monkeypatch.setattr(autopay_charge_batch_task, "delay_on_commit", lambda pks: sent.extend(pks))
    return sent


@pytest.fixture
def claimed(account, django_user_model, monkeypatch, enqueued):
    """A due autopay row claimed by the sweeper at `claimed.at`, its task enqueued once; the stand-in gateway pays."""
    user = make_user(django_user_model)
    enroll(account, user, saved_card(user, "pm_default", default=True))
    make_bill(account, amounts=(5000,), due_in_days=0)
    gateway = FakeGateway({"pm_default": OK})
    use_gateway(monkeypatch, gateway)
    autopay_plan()
    at = timezone.now() + dt.timedelta(days=1)
    (charge_id,) = autopay_sweep(now=at).claimed
    assert enqueued == [charge_id]
    return type("Claimed", (), {"id": charge_id, "at": at, "gateway": gateway})


@pytest.mark.django_db
def test_a_claimed_charge_whose_message_was_lost_is_enqueued_again_after_a_minute_and_charged_once(
    claimed, enqueued, django_capture_on_commit_callbacks
):
    early = autopay_sweep(now=claimed.at + dt.timedelta(seconds=59))
    assert enqueued == [claimed.id] and early.claimed == [] and early.reclaimed == []
    late = autopay_sweep(now=claimed.at + dt.timedelta(seconds=61))  # AUTOPAY_UNSTARTED_TIMEOUT_SECONDS
    assert enqueued == [claimed.id, claimed.id]  # the next minute's sweep sends the message again
    assert late.requeued == [claimed.id] and late.claimed == [] and late.reclaimed == []
    charge = AutopayCharge.objects.get(pk=claimed.id)
    assert charge.status == S.CHARGING and charge.attempt_number == 1  # the same claim, not a new attempt
    assert AutopayChargeEvent.objects.filter(charge=charge, message__contains="enqueued again").count() == 1

    # The lost message (the sweep's batch) turns up after all, and the re-sent one (the row alone) too: one charge.
    with django_capture_on_commit_callbacks(execute=True):
        outcomes = [autopay_charge_batch(charge_ids=[claimed.id])[claimed.id], autopay_charge(charge_id=claimed.id)]
    assert outcomes == [S.SUCCEEDED, "noop"]
    assert claimed.gateway.confirms() == ["pm_default"] and len(claimed.gateway.succeeded()) == 1
    assert autopay_sweep(now=claimed.at + dt.timedelta(minutes=5)).requeued == []


@pytest.mark.django_db
def test_a_charge_a_worker_started_is_left_to_the_charging_timeout(claimed, enqueued, settings):
    AutopayCharge.objects.filter(pk=claimed.id).update(started_at=claimed.at)  # a worker is charging it

    result = autopay_sweep(now=claimed.at + dt.timedelta(minutes=5))
    assert result.requeued == [] and result.reclaimed == [] and enqueued == [claimed.id]
    assert autopay_charge(charge_id=claimed.id) == "noop"
    settings.AUTOPAY_CHARGING_TIMEOUT_SECONDS = 600
    assert autopay_sweep(now=claimed.at + dt.timedelta(minutes=11)).reclaimed == [claimed.id]


# --- A real worker after a Redis flush -------------------------------------------------------------------------------


@pytest.mark.postgres
def test_after_a_redis_flush_the_worker_charges_the_lost_row_exactly_once(
    worker_env, localstripe, biller, django_user_model, tmp_path
):
    import redis

    account = CustomerAccountFactory(biller=biller)
    autopay_payer(account, django_user_model)  # pays with 4242
    bill = make_bill(account, amounts=(3100,), due_in_days=0)
    assert autopay_plan().created == 1
    Path(worker_env["BILLPAY_TEST_AUTOPAY_PAUSE_FILE"]).write_text("")  # no kill-test pause in this run

    # Claimed and enqueued on Redis while no worker runs, then Redis is flushed: the message is really gone.
    claimed_at = timezone.now() + dt.timedelta(days=1)
    (charge_id,) = autopay_sweep(now=claimed_at).claimed
    client = redis.Redis.from_url(settings.REDIS_URL)
    assert client.dbsize() > 0
    client.flushdb()

    worker = Worker(worker_env, tmp_path / "worker.log", "autopay-lost")
    try:
        charge = AutopayCharge.objects.get(pk=charge_id)
        assert charge.status == S.CHARGING and charge.started_at is None  # nothing reached the worker
        # The next minute's sweep enqueues it again; a second one right after may add a duplicate message if the
        # worker has not started it yet. The bill is still charged once.
        first = autopay_sweep(now=claimed_at + dt.timedelta(seconds=61))
        autopay_sweep(now=claimed_at + dt.timedelta(seconds=122))
        _wait(
            lambda: AutopayCharge.objects.get(pk=charge_id).status == S.SUCCEEDED,
            60, "the worker to charge the re-sent row", worker,
        )  # fmt: skip
        assert first.requeued == [charge_id]
    finally:
        worker.stop()

    succeeded = intents(localstripe, "succeeded")
    assert len(succeeded) == 1 and len(intents(localstripe)) == 1 and succeeded[0]["amount"] == 3100
    assert Payment.objects.filter(account=account, status="succeeded").count() == 1
    bill.refresh_from_db()
    assert bill.status == Bill.Status.PAID and bill.amount_paid == 3100
