"""Autopay's cost per charge and its throughput, against real localstripe: the queries one successful charge makes
(each row read once per step, locked once, the enrolment and the cards read once), and the sweeper draining a
backlog larger than one batch. The gateway rate limit is tested in tests/billing/test_ratelimit.py."""

import pytest

from billing.autopay.planning import autopay_plan, autopay_sweep
from billing.models import AutopayCharge, Bill
from tests.billing.autopay.test_autopay_runs import autopay_payer
from tests.billing.autopay_support import Driver, enroll, make_user, saved_card
from tests.factories import make_bill

S = AutopayCharge.Status
# One successful charge, in three transactions (in production each is one BEGIN … COMMIT, which Django does not count): (1) the row locked and read with its bill, account, enrolment and
# card in one query; the Payment, its event, the row's claim, the try and the two attempt rows (6); (2) after the
# intent is created, its attempt row and the payment's intent id (2); (3) the account, the row with its try and
# payment, and the payable bills locked (3); the confirm's attempt row; the payment's status and its event; the
# bill's amount and status in one UPDATE; the allocation; the "applied"/"paid" events in one insert; the waiting
# rows of paid bills; the try, the row and the row's event (10); and, since payment plans, the plans receiver's one
# look on bill_paid for an active plan covering the paid bills (1). 71 before the rework.
CHARGE_QUERIES = 22
SAVEPOINTS = 6  # the test runs inside a transaction, so each of the three atomic blocks is a savepoint pair
# The receipt, raised after commit on payment_succeeded (notifications: the outbox row and its send task).
RECEIPT_QUERIES = 16


@pytest.fixture
def driver(django_capture_on_commit_callbacks):
    return Driver(django_capture_on_commit_callbacks)


@pytest.mark.django_db
def test_a_successful_charge_costs_a_fixed_small_number_of_queries(
    stripe_settings, localstripe, account, django_user_model, driver, django_assert_max_num_queries,
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
    with django_capture_on_commit_callbacks(execute=False) as after_commit:
        with django_assert_max_num_queries(CHARGE_QUERIES + SAVEPOINTS):
            assert autopay_charge(charge_id=charge_id) == S.SUCCEEDED
    with django_assert_max_num_queries(RECEIPT_QUERIES):
        for callback in after_commit:
            callback()
    bill.refresh_from_db()
    assert bill.status == Bill.Status.PAID and bill.amount_paid == 4200


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
