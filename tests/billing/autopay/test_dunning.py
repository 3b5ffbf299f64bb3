"""Dunning by decline code: each class of decline leads to the right next state, the backup card is tried once right
after the autopay card declines, the last retry suspends autopay, and the payer's maximum is never exceeded.

The gateway is a stand-in whose declines are the real Stripe SDK's `stripe.CardError` (with a `code` and a
`decline_code`) translated by billing.payments.stripe_gateway, exactly as a real decline reaches the services."""

import datetime as dt

import pytest
from django.utils import timezone

from billing.autopay.charging import autopay_charge
from billing.models import AutopayCharge, AutopayChargeTry, AutopayEnrollment, Bill, Payment
from billing.payments.offline import payment_record_offline
from notifications.models import Notification
from notifications.receipts import receipts_raise_batched
from notifications.render import notification_render
from tests.billing.autopay_support import OK, THREE_DS, Driver, FakeGateway, enroll, make_user, saved_card, use_gateway
from tests.factories import make_bill

pytestmark = pytest.mark.django_db

S = AutopayCharge.Status


@pytest.fixture
def driver(django_capture_on_commit_callbacks):
    return Driver(django_capture_on_commit_callbacks)


@pytest.fixture
def payer(account, django_user_model):
    user = make_user(django_user_model)
    return user


def setup(account, payer, monkeypatch, behaviour, *, backup=False, max_amount=None, amount=5000, due_in_days=0):
    default = saved_card(payer, "pm_default", last4="0341", default=True)
    if backup:
        saved_card(payer, "pm_backup", last4="4242", backup=True)
    enrollment = enroll(account, payer, default, max_amount=max_amount)
    bill = make_bill(account, amounts=(amount,), due_in_days=due_in_days)
    gateway = FakeGateway(behaviour)
    use_gateway(monkeypatch, gateway)
    return enrollment, bill, gateway


def notices(kind):
    return list(Notification.objects.filter(kind=kind, channel="email"))


# --- The decline-code matrix ------------------------------------------------------------------------------------------

MATRIX = [
    # (code, decline_code) -> (row status, reason, card out)
    (("card_declined", "stolen_card"), S.FAILED_FINAL, "hard_decline"),
    (("card_declined", "lost_card"), S.FAILED_FINAL, "hard_decline"),
    (("card_declined", "invalid_account"), S.FAILED_FINAL, "hard_decline"),
    (("card_declined", "do_not_honor"), S.FAILED_FINAL, "hard_decline"),
    (("expired_card", None), S.FAILED_FINAL, "hard_decline"),
    (("authentication_required", "authentication_required"), S.FAILED_FINAL, "authentication"),
    (("card_declined", "insufficient_funds"), S.RETRY_SCHEDULED, ""),
    (("processing_error", None), S.RETRY_SCHEDULED, ""),
    (("card_declined", "generic_decline"), S.RETRY_SCHEDULED, ""),
    (("card_declined", "something_new"), S.RETRY_SCHEDULED, ""),  # unknown codes are soft
]


@pytest.mark.parametrize(("decline", "status", "reason"), MATRIX, ids=[m[0][1] or m[0][0] for m in MATRIX])
def test_each_decline_class_leads_to_its_next_state(account, payer, monkeypatch, driver, decline, status, reason):
    enrollment, bill, gateway = setup(account, payer, monkeypatch, {"pm_default": decline})
    driver.plan()
    assert driver.run() == [status]

    charge = AutopayCharge.objects.get(bill=bill)
    assert (charge.status, charge.reason, charge.attempt_number) == (status, reason, 1)
    assert charge.last_decline_code == (decline[1] or decline[0])
    assert charge.default_out == (status == S.FAILED_FINAL)
    attempt = charge.tries.get()
    assert attempt.payment.status == Payment.Status.FAILED
    assert attempt.payment.attempts.get(kind="confirm").decline_code == (decline[1] or decline[0])
    bill.refresh_from_db()
    assert bill.status == Bill.Status.OPEN and bill.amount_paid == 0
    enrollment.refresh_from_db()
    assert enrollment.status == AutopayEnrollment.Status.ACTIVE  # only the last retry suspends
    if status == S.RETRY_SCHEDULED:
        retry_day = charge.first_failed_at + dt.timedelta(days=1)  # biller.retry_schedule [1, 3, 5, 7]
        assert abs((charge.next_attempt_at - retry_day).total_seconds()) < 5
    else:
        assert charge.next_attempt_at is None
        assert driver.run(days=30) == []  # a hard or authentication decline is never retried off-session
    assert gateway.confirms() == ["pm_default"]

    # The payer is told, in plain language, with the bill's pay link.
    (notice,) = notices("payment_failed")
    assert notice.bill_id == bill.pk and notice.payment_id == attempt.payment_id
    message = notification_render(notice, to=account.email)
    assert "/pay/" in message.text
    if status == S.RETRY_SCHEDULED:
        assert "Autopay will try again on" in message.text
    elif reason == "authentication":
        assert "Your bank wants you to confirm this payment yourself" in message.text
    else:
        assert "Autopay will not try this bill again" in message.text


def test_an_off_session_3ds_challenge_is_an_authentication_decline(account, payer, monkeypatch, driver):
    _enrollment, bill, gateway = setup(account, payer, monkeypatch, {"pm_default": THREE_DS})
    driver.plan()
    assert driver.run() == [S.FAILED_FINAL]
    charge = AutopayCharge.objects.get(bill=bill)
    assert charge.reason == "authentication" and charge.last_decline_class == "authentication"
    payment = charge.tries.get().payment
    assert payment.status == Payment.Status.CANCELED  # the intent was canceled: it can never complete later
    assert ("cancel", "pm_default") in gateway.calls


# --- Fallback order: default, backup once, then the schedule ---------------------------------------------------------


def test_the_backup_card_pays_when_the_default_declines(account, payer, monkeypatch, driver):
    _enrollment, bill, gateway = setup(
        account, payer, monkeypatch, {"pm_default": ("card_declined", "insufficient_funds"), "pm_backup": OK},
        backup=True,
    )  # fmt: skip
    driver.plan()
    assert driver.run() == [S.SUCCEEDED]
    assert gateway.confirms() == ["pm_default", "pm_backup"]
    charge = AutopayCharge.objects.get(bill=bill)
    assert charge.last_method_role == "backup" and charge.payment.status == Payment.Status.SUCCEEDED
    assert [(t.method_role, t.outcome) for t in charge.tries.order_by("pk")] == [
        ("default", "declined"), ("backup", "succeeded"),
    ]  # fmt: skip
    bill.refresh_from_db()
    assert bill.status == Bill.Status.PAID and bill.amount_paid == 5000
    assert len(gateway.succeeded()) == 1
    assert notices("payment_failed") == []  # rescued by the backup: nothing failed for the payer
    assert notices("payment_received") == []  # autopay's receipts wait for the notifications sweep's batch
    receipts_raise_batched()
    (receipt,) = notices("payment_received")  # the receipt, through the outbox
    assert receipt.payment_id == charge.payment_id


def test_a_hard_decline_on_the_default_then_a_soft_one_on_the_backup_retries_the_backup(
    account, payer, monkeypatch, driver
):
    _enrollment, bill, gateway = setup(
        account, payer, monkeypatch,
        {"pm_default": ("card_declined", "stolen_card"), "pm_backup": [("card_declined", "insufficient_funds"), OK]},
        backup=True,
    )  # fmt: skip
    driver.plan()
    assert driver.run() == [S.RETRY_SCHEDULED]
    charge = AutopayCharge.objects.get(bill=bill)
    assert charge.default_out and not charge.backup_out
    assert driver.run(days=0.5) == []  # not before the first retry day
    assert driver.run(days=1.1) == [S.SUCCEEDED]
    assert gateway.confirms() == ["pm_default", "pm_backup", "pm_backup"]  # the stolen card is never charged again


def test_the_backup_is_tried_once_and_retries_go_back_to_the_default(account, payer, monkeypatch, driver):
    soft = ("card_declined", "insufficient_funds")
    _enrollment, bill, gateway = setup(
        account, payer, monkeypatch, {"pm_default": [soft, OK], "pm_backup": soft}, backup=True
    )
    driver.plan()
    assert driver.run() == [S.RETRY_SCHEDULED]
    assert driver.run(days=1.1) == [S.SUCCEEDED]
    assert gateway.confirms() == ["pm_default", "pm_backup", "pm_default"]
    assert AutopayCharge.objects.get(bill=bill).attempt_number == 2


def test_both_cards_hard_declined_stops_at_once(account, payer, monkeypatch, driver):
    _enrollment, bill, gateway = setup(
        account, payer, monkeypatch,
        {"pm_default": ("card_declined", "lost_card"), "pm_backup": ("card_declined", "do_not_honor")}, backup=True,
    )  # fmt: skip
    driver.plan()
    assert driver.run() == [S.FAILED_FINAL]
    assert len(notices("payment_failed")) == 1  # one notice per attempt, not per card
    assert driver.run(days=30) == []
    assert gateway.confirms() == ["pm_default", "pm_backup"]


# --- Suspension after the last retry ---------------------------------------------------------------------------------


def test_the_last_retry_suspends_autopay_and_leaves_the_bill_to_the_reminders(account, payer, monkeypatch, driver):
    account.biller.retry_schedule = [1, 3]
    account.biller.save()
    enrollment, bill, gateway = setup(
        account, payer, monkeypatch, {"pm_default": ("card_declined", "insufficient_funds")}
    )
    driver.plan()
    assert driver.run() == [S.RETRY_SCHEDULED]
    assert driver.run(days=1.1) == [S.RETRY_SCHEDULED]
    charge = AutopayCharge.objects.get(bill=bill)
    assert abs((charge.next_attempt_at - (charge.first_failed_at + dt.timedelta(days=3))).total_seconds()) < 5
    assert driver.run(days=3.1) == [S.FAILED_FINAL]

    charge.refresh_from_db()
    assert (charge.reason, charge.attempt_number) == ("retries_exhausted", 3)
    enrollment.refresh_from_db()
    assert enrollment.status == AutopayEnrollment.Status.SUSPENDED
    assert enrollment.events.filter(to_status="suspended").exists()
    bill.refresh_from_db()
    assert bill.status == Bill.Status.OPEN
    assert len(notices("payment_failed")) == 2 and len(notices("autopay_suspended")) == 1
    text = notification_render(notices("autopay_suspended")[0], to=account.email).text
    assert "autopay is paused" in text and "/me/cards/" in text
    assert gateway.confirms() == ["pm_default"] * 3
    # Suspended: the planner writes nothing for the next bill.
    make_bill(account, amounts=(700,), due_in_days=0)
    assert driver.plan().created == 0


# --- The maximum ---------------------------------------------------------------------------------------------------


def test_a_bill_above_the_maximum_is_not_charged_and_the_payer_is_told(account, payer, monkeypatch, driver):
    _enrollment, bill, gateway = setup(account, payer, monkeypatch, {}, max_amount=3000, amount=5000)
    result = driver.plan()
    assert (result.created, result.above_max) == (1, 1)
    charge = AutopayCharge.objects.get(bill=bill)
    assert (charge.status, charge.reason) == (S.CANCELLED, "above_max")
    assert driver.run(days=30) == [] and gateway.calls == []
    (notice,) = notices("autopay_upcoming")
    message = notification_render(notice, to=account.email)
    assert "above your autopay limit of $30.00" in message.text and "/pay/" in message.text
    assert message.subject == "Autopay will not pay this bill"


def test_the_amount_is_what_the_bill_owes_when_charging(account, payer, monkeypatch, driver):
    _enrollment, bill, gateway = setup(account, payer, monkeypatch, {}, max_amount=5000, amount=5000)
    driver.plan()
    with driver.capture(execute=True):
        payment_record_offline(account=account, amount=1500, method="cash")  # part paid at the counter
    assert driver.run() == [S.SUCCEEDED]
    (intent,) = gateway.intents.values()
    assert intent["amount"] == 3500
    bill.refresh_from_db()
    assert bill.status == Bill.Status.PAID and bill.amount_paid == 5000


# --- Upcoming notice and expiring cards --------------------------------------------------------------------------------


def test_the_upcoming_notice_names_the_amount_the_card_and_the_date(account, payer, monkeypatch, driver):
    _enrollment, bill, _gateway = setup(account, payer, monkeypatch, {}, due_in_days=2)
    result = driver.plan()
    assert (result.created, result.upcoming_notices) == (1, 1)
    assert driver.plan().upcoming_notices == 0  # once per bill
    message = notification_render(notices("autopay_upcoming")[0], to=account.email)
    assert "$50.00" in message.text and "Visa ending 0341" in message.text
    assert driver.run(days=0) == []  # not charged before its day


def test_a_card_expiring_next_month_gets_a_notice_with_the_cards_link(account, payer, monkeypatch, driver):
    today = timezone.localdate()
    soon = (today.replace(day=1) + dt.timedelta(days=32)).replace(day=1)
    card = saved_card(payer, "pm_soon", last4="1111", default=True, exp_year=soon.year, exp_month=soon.month)
    enroll(account, payer, card)
    make_bill(account, amounts=(900,), due_in_days=10)
    result = driver.plan()
    assert result.card_notices == 1 and driver.plan().card_notices == 0
    text = notification_render(notices("card_expiring")[0], to=account.email).text
    assert "ending 1111" in text and "/me/cards/" in text


# --- Crash points, in process ------------------------------------------------------------------------------------------


class Killed(BaseException):
    """Stands in for SIGKILL: not an Exception, so nothing in the code under test catches it."""


def test_a_run_killed_after_the_charge_is_resumed_from_the_intent_without_charging_again(
    account, payer, monkeypatch, driver, settings
):
    _enrollment, bill, gateway = setup(account, payer, monkeypatch, {"pm_default": OK})
    driver.plan()

    from billing.autopay import charging

    confirm = charging.payment_confirm_off_session

    def confirm_then_die(payment, **kwargs):
        confirm(payment, **kwargs)  # the gateway answered; nothing after it runs, as if the worker were killed right here
        raise Killed

    monkeypatch.setattr(charging, "payment_confirm_off_session", confirm_then_die)
    (charge_id,) = driver.sweep().claimed
    with pytest.raises(Killed):
        autopay_charge(charge_id=charge_id)
    assert len(gateway.succeeded()) == 1  # the money moved, and nothing about it was recorded
    charge = AutopayCharge.objects.get(pk=charge_id)
    assert charge.status == S.CHARGING and charge.tries.get().outcome == AutopayChargeTry.Outcome.PENDING
    assert charge.tries.get().payment.gateway_payment_id  # stored before the confirm

    monkeypatch.setattr(charging, "payment_confirm_off_session", confirm)
    assert driver.charge(charge_id) == "noop"  # a second delivery of the same claim does nothing
    settings.AUTOPAY_CHARGING_TIMEOUT_SECONDS = 0
    assert driver.run(days=1.01) == [S.SUCCEEDED]  # reclaimed: asks the gateway, records, never confirms again
    assert gateway.confirms() == ["pm_default"] and len(gateway.succeeded()) == 1
    bill.refresh_from_db()
    assert bill.status == Bill.Status.PAID and Payment.objects.filter(status="succeeded").count() == 1


def test_a_redelivered_task_charges_once(account, payer, monkeypatch, driver):
    _enrollment, bill, gateway = setup(account, payer, monkeypatch, {"pm_default": OK})
    driver.plan()
    (charge_id,) = driver.sweep().claimed
    assert driver.charge(charge_id) == S.SUCCEEDED
    assert driver.charge(charge_id) == "noop"
    assert gateway.confirms() == ["pm_default"]


def test_illegal_moves_are_refused(account, payer, monkeypatch, driver):
    from billing.autopay.charges import charge_status_move as _charge_move
    from billing.errors import ApplicationError

    _enrollment, bill, _gateway = setup(account, payer, monkeypatch, {})
    driver.plan()
    charge = AutopayCharge.objects.get(bill=bill)
    with pytest.raises(ApplicationError):
        _charge_move(charge, S.SUCCEEDED)
    assert AutopayCharge.objects.get(bill=bill).status == S.SCHEDULED


# --- Admin --------------------------------------------------------------------------------------------------------------


def test_the_bill_admin_shows_the_retry_timeline_and_charges_filter_by_status(
    account, payer, monkeypatch, driver, admin_client
):
    from django.urls import reverse

    _enrollment, bill, _gateway = setup(
        account, payer, monkeypatch, {"pm_default": ("card_declined", "insufficient_funds"), "pm_backup": OK},
        backup=True,
    )  # fmt: skip
    driver.plan()
    driver.run()
    page = admin_client.get(reverse("admin:billing_bill_change", args=[bill.pk])).content.decode()
    assert "autopay retry timeline" in page.lower()
    assert "insufficient_funds" in page and "Backup card" in page and "Succeeded" in page
    listing = admin_client.get(reverse("admin:billing_autopaycharge_changelist"), {"status__exact": "succeeded"})
    assert listing.status_code == 200 and bill.number in listing.content.decode()
    empty = admin_client.get(reverse("admin:billing_autopaycharge_changelist"), {"status__exact": "failed_final"})
    assert bill.number not in empty.content.decode()
    charge = AutopayCharge.objects.get(bill=bill)
    detail = admin_client.get(reverse("admin:billing_autopaycharge_change", args=[charge.pk]))
    assert detail.status_code == 200 and "attempt 1 claimed" in detail.content.decode()
