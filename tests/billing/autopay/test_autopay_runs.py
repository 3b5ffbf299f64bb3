"""Autopay runs against real localstripe: saved cards charged off-session, the backup after a failing default, and
the exactly-once guarantees (sweepers twice and at once, a guest paying while a retry waits, a redelivered task).

Planner, sweeper and task body are called the way beat and a worker call them (tests/billing/autopay/test_autopay_worker.py
runs a real worker). Card numbers: 4000000000000341 attaches but declines every charge; 4242424242424242 pays."""

import threading

import pytest
import stripe
from django.conf import settings
from django.db import connections
from django.utils import timezone

from accounts.models import AccountLink
from accounts.services import account_link_grant
from billing.autopay.charging import autopay_charge
from billing.autopay.enrolment import autopay_enroll
from billing.autopay.planning import autopay_plan, autopay_sweep
from billing.methods.services import (
    payment_method_make_backup,
    payment_method_save_from_setup,
    payment_method_setup_start,
)
from billing.models import AutopayCharge, Bill, Payment, PaymentAttempt
from billing.payments.online import payment_confirm, payment_start
from notifications.models import Notification
from tests import stripe_support
from tests.billing.autopay_support import Driver, make_user
from tests.factories import CustomerAccountFactory, make_bill

S = AutopayCharge.Status
FAILS_ON_CHARGE = "4000000000000341"
VISA = "4242424242424242"


def _stripe():
    return stripe.StripeClient(
        stripe_support.SECRET_KEY, base_addresses={"api": settings.STRIPE_API_BASE}, max_network_retries=0
    )


def save_card(user, number: str):
    """A card saved the way the payer's settings page saves it: a SetupIntent confirmed by (a stand-in for) stripe.js."""
    secret = payment_method_setup_start(user=user)
    setup_id = secret.split("_secret_")[0]
    card = {"number": number, "exp_month": "12", "exp_year": "2034", "cvc": "123"}
    _stripe().v1.setup_intents.confirm(setup_id, params={"payment_method_data": {"type": "card", "card": card}})
    return payment_method_save_from_setup(user=user, setup_intent_id=setup_id, ip="203.0.113.5")


def autopay_payer(account, django_user_model, *, default=VISA, backup=None):
    user = make_user(django_user_model)
    account_link_grant(user=user, account=account, via=AccountLink.Via.LOOKUP)
    card = save_card(user, default)
    if backup:
        payment_method_make_backup(user=user, payment_method=save_card(user, backup))
    autopay_enroll(
        account=account, user=user, payment_method=card, charge_rule="on_due_date", consent_text="I agree.",
    )  # fmt: skip
    return user


def intents(localstripe, status=None):
    found = stripe_support.payment_intents(localstripe)
    return [i for i in found if status is None or i["status"] == status]


@pytest.fixture
def driver(django_capture_on_commit_callbacks):
    return Driver(django_capture_on_commit_callbacks)


@pytest.mark.django_db
def test_the_failing_default_falls_back_to_the_backup_and_the_bill_is_paid_once(
    stripe_settings, localstripe, account, django_user_model, driver
):
    autopay_payer(account, django_user_model, default=FAILS_ON_CHARGE, backup=VISA)
    bill = make_bill(account, amounts=(4200,), due_in_days=0)
    assert driver.plan().created == 1
    assert driver.run() == [S.SUCCEEDED]

    charge = AutopayCharge.objects.get(bill=bill)
    assert [(t.method_role, t.outcome) for t in charge.tries.order_by("pk")] == [
        ("default", "declined"), ("backup", "succeeded"),
    ]  # fmt: skip
    bill.refresh_from_db()
    assert bill.status == Bill.Status.PAID and bill.amount_paid == 4200
    paid = Payment.objects.get(status=Payment.Status.SUCCEEDED)
    assert (paid.channel, paid.amount, paid.payment_method_summary) == ("autopay", 4200, "Visa •••• 4242")
    succeeded = intents(localstripe, "succeeded")
    assert len(succeeded) == 1 and succeeded[0]["id"] == paid.gateway_payment_id and succeeded[0]["amount"] == 4200
    assert len(intents(localstripe)) == 2  # the declined one on the default card, and the one that paid
    declined = PaymentAttempt.objects.get(kind="confirm", outcome="declined")
    assert declined.payment.autopay_try.method_role == "default" and declined.decline_code
    # Every sweeper again: nothing more to do, nothing charged again.
    assert driver.plan().created == 0 and driver.run(days=30) == []
    assert len(intents(localstripe, "succeeded")) == 1


@pytest.mark.django_db
def test_a_guest_payment_while_a_retry_waits_stops_the_retry(
    stripe_settings, localstripe, account, django_user_model, driver
):
    autopay_payer(account, django_user_model, default=FAILS_ON_CHARGE)
    bill = make_bill(account, amounts=(3000,), due_in_days=0)
    driver.plan()
    assert driver.run() == [S.RETRY_SCHEDULED]
    assert Notification.objects.filter(kind="payment_failed").exists()

    # The payer pays as a guest from the notice's link, before the retry day.
    with driver.capture(execute=True):
        payment, _secret = payment_start(account=account, payer_email="payer@example.com", channel="guest_web")
        outcome = payment_confirm(
            account_id=account.pk, payment_intent_id=payment.gateway_payment_id, payment_method_id="pm_card_visa"
        )
    assert outcome.status == "succeeded"
    charge = AutopayCharge.objects.get(bill=bill)
    assert (charge.status, charge.reason) == (S.CANCELLED, "paid_elsewhere")
    assert driver.run(days=30) == []
    assert [i["amount"] for i in intents(localstripe, "succeeded")] == [3000]  # the guest's, only
    bill.refresh_from_db()
    assert bill.status == Bill.Status.PAID and bill.amount_paid == 3000


@pytest.mark.django_db
def test_a_redelivered_charge_task_charges_once(stripe_settings, localstripe, account, django_user_model, driver):
    from billing.autopay.tasks import autopay_charge_task

    autopay_payer(account, django_user_model)
    make_bill(account, amounts=(1234,), due_in_days=0)
    driver.plan()
    (charge_id,) = driver.sweep().claimed
    with driver.capture(execute=True):
        first = autopay_charge_task.run(charge_id)
        second = autopay_charge_task.run(charge_id)
    assert (first, second) == (S.SUCCEEDED, "noop")
    assert len(intents(localstripe, "succeeded")) == 1 and len(intents(localstripe)) == 1


def _in_threads(target, count: int) -> list:
    results, errors, barrier = [], [], threading.Barrier(count)

    def run(i):
        try:
            barrier.wait()
            results.append(target(i))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    return results


@pytest.mark.postgres
def test_every_sweeper_twice_and_at_once_charges_nothing_twice(
    require_postgres, transactional_db, stripe_settings, localstripe, biller, django_user_model
):
    bills = []
    for _ in range(5):
        account = CustomerAccountFactory(biller=biller)
        autopay_payer(account, django_user_model)
        bills.append(make_bill(account, amounts=(1000 + account.pk,), due_in_days=0))

    # Planners twice, then four at once.
    autopay_plan()
    autopay_plan()
    _in_threads(lambda i: autopay_plan(), 4)
    assert AutopayCharge.objects.count() == 5

    # Sweepers twice, then four at once: every row claimed by exactly one of them.
    later = timezone.now() + timezone.timedelta(days=1)
    claimed = (
        autopay_sweep(now=later, enqueue=False).claimed
        + autopay_sweep(now=later, enqueue=False).claimed
    )
    claimed += [
        pk for r in _in_threads(lambda i: autopay_sweep(now=later, enqueue=False), 4) for pk in r.claimed
    ]
    assert sorted(claimed) == sorted(AutopayCharge.objects.values_list("pk", flat=True))

    # Every task delivered three times, all at once (acks_late redelivery, a reclaim, a duplicate message).
    deliveries = [pk for pk in claimed for _ in range(3)]
    outcomes = _in_threads(lambda i: autopay_charge(charge_id=deliveries[i]), len(deliveries))
    assert sorted(outcomes) == sorted(["noop"] * 10 + [S.SUCCEEDED] * 5)

    # And everything once more, sequentially.
    autopay_plan()
    assert autopay_sweep(now=later + timezone.timedelta(days=30), enqueue=False).claimed == []
    for pk in claimed:
        assert autopay_charge(charge_id=pk) == "noop"

    succeeded = intents(localstripe, "succeeded")
    assert sorted(i["amount"] for i in succeeded) == sorted(b.total for b in bills)
    assert len(intents(localstripe)) == 5
    for bill in bills:
        bill.refresh_from_db()
        assert bill.status == Bill.Status.PAID and bill.amount_paid == bill.total
        assert Payment.objects.filter(account=bill.account, status="succeeded").count() == 1
