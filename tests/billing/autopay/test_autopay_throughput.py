"""Autopay's cost per charge and its throughput, against real localstripe: the queries one successful charge makes
(each row read once per step, locked once, the enrolment and the cards read once), and the sweeper draining a
backlog larger than one batch. The gateway rate limit is tested in tests/billing/test_ratelimit.py."""

import pytest
from django.db import connection
from django.utils import timezone

from billing.autopay.planning import autopay_plan, autopay_sweep
from billing.models import AutopayCharge, Bill, BillingEvent, Payment
from tests.billing.autopay.test_autopay_runs import autopay_payer
from tests.billing.autopay_support import Driver, enroll, make_user, saved_card
from billing.payments.attempts import install_key
from notifications.models import Notification
from notifications.receipts import receipts_raise_batched
from tests.factories import make_bill

S = AutopayCharge.Status
# One successful charge, in three transactions (in production each is one BEGIN … COMMIT, which Django does not count).
# The small writes of a step that do not read each other go as one statement on PostgreSQL (billing.bulk.WriteBatch:
# data-modifying WITH parts), one statement each elsewhere (SQLite), so the counts differ by database:
# (1) the row locked and read with its bill, account, biller, enrolment and card in one query; the Payment; then its
#     event, the row's claim, the two attempt rows and the try (PostgreSQL 1 + 1 + 1, SQLite 1 + 1 + 4);
# (2) after the intent is created, its attempt row and the payment's intent id (PostgreSQL 1, SQLite 2);
# (3) the account, the row with its try and payment, and the payable bills locked (3); the payment's status, the
#     allocation, the bill's amount and status and the events (the payment's "succeeded", the bill's "applied" and
#     "paid") (PostgreSQL 1, SQLite 4); the waiting rows of paid bills; the plans receiver's one look on bill_paid;
#     the confirm's attempt row, the try, the row and the row's event (PostgreSQL 1, SQLite 4).
# 71 before the first rework, 22 before the second, 21 before the third (every database; SQLite still is).
CHARGE_QUERIES = {"postgresql": 11, "sqlite": 21}
SAVEPOINTS = 6  # the test runs inside a transaction, so each of the three atomic blocks is a savepoint pair
# After commit, payment_succeeded: nothing for an autopay payment (no guest ticks to keep; the receipt is raised by
# the notifications sweep's batch). It was 17: the guest ticks' read and the receipt's outbox row and send task.
AFTER_COMMIT_QUERIES = 0
# The notifications sweep raises the receipts of a batch of autopay payments at once, whatever its size: the payments
# with their accounts and billers, the billers' policies, the accounts' choices and notice settings, the outbox rows
# in one insert, receipt_sent_at in one UPDATE, and the savepoint pair.
RECEIPT_BATCH_QUERIES = 8


@pytest.fixture
def driver(django_capture_on_commit_callbacks):
    return Driver(django_capture_on_commit_callbacks)


@pytest.mark.django_db
def test_a_successful_charge_costs_a_fixed_small_number_of_queries(
    stripe_settings, localstripe, account, django_user_model, driver, django_assert_num_queries,
    django_capture_on_commit_callbacks,
):  # fmt: skip
    from billing.autopay.charging import autopay_charge

    autopay_payer(account, django_user_model)
    bill = make_bill(account, amounts=(4200,), due_in_days=0)
    make_bill(account, amounts=(1000,), due_in_days=20)  # another open bill, which the charge must not pay
    driver.plan()
    claimed = driver.sweep().claimed
    charge_id = AutopayCharge.objects.get(bill=bill).pk
    assert charge_id in claimed
    install_key()  # made once per database and remembered by the worker process, not once per charge
    with django_capture_on_commit_callbacks(execute=False) as after_commit:
        with django_assert_num_queries(CHARGE_QUERIES[connection.vendor] + SAVEPOINTS):
            assert autopay_charge(charge_id=charge_id) == S.SUCCEEDED
    with django_assert_num_queries(AFTER_COMMIT_QUERIES):
        for callback in after_commit:
            callback()
    bill.refresh_from_db()
    assert bill.status == Bill.Status.PAID and bill.amount_paid == 4200
    # Every row the batched writes carry is there: the two gateway calls' rows completed with the intent (the create's
    # outcome is the intent's state then: created, not yet confirmed), the try, the row and its history, the payment
    # and its allocation.
    charge = AutopayCharge.objects.get(pk=charge_id)
    payment = charge.payment
    assert payment.status == Payment.Status.SUCCEEDED and payment.amount == 4200 and payment.gateway_payment_id
    assert payment.applied_at is not None and payment.received_at is not None
    assert sorted(payment.attempts.values_list("kind", "outcome", "gateway_reference")) == [
        ("confirm", "succeeded", payment.gateway_payment_id), ("create", "pending", payment.gateway_payment_id)
    ]
    assert list(payment.allocations.values_list("bill_id", "amount")) == [(bill.pk, 4200)]
    assert payment.autopay_try.outcome == "succeeded" and charge.started_at is not None
    assert [e.to_status for e in charge.events.order_by("pk")] == ["scheduled", "charging", "succeeded"]
    assert list(BillingEvent.objects.filter(payment=payment).order_by("pk").values_list("kind", flat=True)) == [
        "payment_recorded", "payment_status", "payment_applied"
    ]
    assert not Notification.objects.filter(kind="payment_received").exists()
    with django_assert_num_queries(RECEIPT_BATCH_QUERIES):
        assert receipts_raise_batched() == 1
    (receipt,) = Notification.objects.filter(kind="payment_received")
    assert receipt.payment.channel == "autopay" and receipt.status == "pending"  # the same sweep claims and sends it


@pytest.mark.django_db
def test_a_batch_of_receipts_costs_the_same_queries_as_one(account, biller, django_user_model, django_assert_num_queries):
    from billing.models import Payment
    from tests.factories import CustomerAccountFactory

    now = timezone.now()
    payments = []
    for i in range(6):
        payer_account = account if i == 0 else CustomerAccountFactory(biller=biller)
        payments.append(Payment.objects.create(
            biller=biller, account=payer_account, confirmation_number=f"BP-BATCH{i:05d}", channel="autopay",
            method="card", status="succeeded", currency=biller.currency, amount=1000 + i, received_at=now,
        ))  # fmt: skip
    with django_assert_num_queries(RECEIPT_BATCH_QUERIES):
        written = receipts_raise_batched(now=now)
    assert written == Notification.objects.filter(kind="payment_received").count() >= 6
    assert not Payment.objects.filter(receipt_sent_at__isnull=True).exists()
    assert receipts_raise_batched(now=now) == 0  # raised once: a second sweep finds nothing
    assert Notification.objects.filter(kind="payment_received").count() == written


@pytest.mark.django_db
def test_one_sweep_claims_a_backlog_larger_than_a_batch(account, django_user_model):
    user = make_user(django_user_model)
    enroll(account, user, saved_card(user, "pm_default", default=True))
    for _ in range(25):
        make_bill(account, amounts=(700,), due_in_days=0)
    assert autopay_plan().created == 25

    result = autopay_sweep(now=_tomorrow(), batch_size=10, enqueue=False)

    assert len(result.claimed) == 25  # three batches: 10, 10 and the last 5, not one batch a minute
    assert set(AutopayCharge.objects.values_list("status", flat=True)) == {S.CHARGING}
    assert autopay_sweep(now=_tomorrow(), batch_size=10, enqueue=False).claimed == []


@pytest.mark.django_db
def test_a_sweep_stops_at_its_batch_budget(account, django_user_model, settings):
    user = make_user(django_user_model)
    enroll(account, user, saved_card(user, "pm_default", default=True))
    for _ in range(25):
        make_bill(account, amounts=(700,), due_in_days=0)
    autopay_plan()
    settings.GATEWAY_RATE_LIMIT_PER_SECOND = 1  # 30 charges a minute: three batches of 10
    assert len(autopay_sweep(now=_tomorrow(), batch_size=10, enqueue=False).claimed) == 25
    assert len(autopay_sweep(now=_tomorrow(), batch_size=10, max_batches=1, enqueue=False).claimed) == 0


def _tomorrow():
    import datetime as dt

    from django.utils import timezone

    return timezone.now() + dt.timedelta(days=1)
