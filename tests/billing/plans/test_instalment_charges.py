"""Instalments charged by the autopay planner and sweeper against localstripe: the payer's setup end to end (the down
payment on-session, the first instalment off-session), exactly once, a decline retried and then paid by the backup
card, and a payment made another way lowering what is charged.

Card numbers: 4000000000000341 attaches but declines every charge; 4242424242424242 pays."""

import datetime as dt

import pytest
from django.utils import timezone

from billing.methods.services import payment_method_make_backup
from billing.models import AutopayCharge, Payment, PaymentPlan, PlanInstalment
from billing.payments.offline import payment_record_offline
from billing.plans.setup import plan_setup_by_payer
from tests import stripe_support
from tests.billing.autopay_support import Driver
from tests.billing.cards_support import linked, make_user, save_card

from .plans_support import owing, rules_on

pytestmark = pytest.mark.django_db
S = AutopayCharge.Status
FAILS_ON_CHARGE = "4000000000000341"


@pytest.fixture
def driver(django_capture_on_commit_callbacks):
    return Driver(django_capture_on_commit_callbacks)


def _days_until(instalment) -> int:
    return (instalment.due_date - timezone.now().date()).days


def _set_up(account, django_user_model, capture, *, number="4242424242424242"):
    rules_on(account.biller)
    owing(account)  # $300.00: $30.00 down, then 3 × $90.00 monthly
    payer = make_user(django_user_model)
    linked(payer, account)
    card = save_card(payer, number=number)
    return payer, card


def test_setup_end_to_end_down_payment_then_the_first_instalment_charged_once(
    stripe_settings, localstripe, account, django_user_model, driver, django_capture_on_commit_callbacks
):
    payer, card = _set_up(account, django_user_model, django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks(execute=True):
        outcome = plan_setup_by_payer(account=account, user=payer, schedule_key="monthly-3", payment_method=card,
                                      pays_by_hand=False, ip="198.51.100.2")  # fmt: skip
    assert outcome.down_payment == "paid" and outcome.plan.status == PaymentPlan.Status.ACTIVE
    plan = outcome.plan
    first = plan.instalments.get(number=1)
    days = _days_until(first)

    assert driver.plan(now=timezone.now() + dt.timedelta(days=days - 1)).instalments == 0  # not before its date
    assert driver.plan(now=timezone.now() + dt.timedelta(days=days, hours=1)).instalments == 1
    assert driver.run(days=days + 0.5) == [S.SUCCEEDED]
    first.refresh_from_db()
    assert first.status == PlanInstalment.Status.PAID
    charged = Payment.objects.filter(channel="autopay", status="succeeded").get()
    assert charged.amount == 9_000 and charged.payment_method_summary == "Visa •••• 4242"
    succeeded = [i for i in stripe_support.payment_intents(localstripe) if i["status"] == "succeeded"]
    assert sorted(i["amount"] for i in succeeded) == [3_000, 9_000]  # the down payment, and instalment 1
    # Planner and sweeper again, later: the next instalment is not due yet; nothing is charged twice.
    assert driver.plan(now=timezone.now() + dt.timedelta(days=days + 2)).instalments == 0
    assert driver.run(days=days + 2) == []
    assert AutopayCharge.objects.filter(instalment__isnull=False).count() == 1


def test_a_declined_instalment_falls_back_to_the_backup_card(
    stripe_settings, localstripe, account, django_user_model, driver
):
    rules_on(account.biller, down_payment="none")
    owing(account)
    payer = make_user(django_user_model)
    linked(payer, account)
    failing = save_card(payer, number=FAILS_ON_CHARGE)
    payment_method_make_backup(user=payer, payment_method=save_card(payer))
    plan = plan_setup_by_payer(account=account, user=payer, schedule_key="monthly-3", payment_method=failing,
                               pays_by_hand=False, ip=None).plan  # fmt: skip
    assert plan.status == PaymentPlan.Status.ACTIVE
    days = _days_until(plan.instalments.get(number=1))
    driver.plan(now=timezone.now() + dt.timedelta(days=days, hours=1))
    assert driver.run(days=days + 0.5) == [S.SUCCEEDED]
    charge = AutopayCharge.objects.get(instalment__plan=plan)
    assert [(t.method_role, t.outcome) for t in charge.tries.order_by("pk")] == [
        ("default", "declined"), ("backup", "succeeded"),
    ]  # fmt: skip
    assert plan.instalments.get(number=1).status == PlanInstalment.Status.PAID
    paid = Payment.objects.get(channel="autopay", status="succeeded")
    assert paid.amount == 10_000 and paid.payment_method_summary == "Visa •••• 4242"
    assert [i["amount"] for i in stripe_support.payment_intents(localstripe) if i["status"] == "succeeded"] == [10_000]


def test_a_declined_instalment_is_retried_then_paid_by_the_backup_card(
    account, django_user_model, driver, monkeypatch
):
    """The same decline-aware retries as a bill's autopay (gateway stood in for: localstripe has no decline codes):
    soft declines on both cards → a retry on the biller's schedule; a hard decline takes the plan's card out; the
    next retry charges the backup card."""
    from tests.billing.autopay_support import FakeGateway, saved_card, use_gateway

    rules_on(account.biller, down_payment="none")
    owing(account)
    payer = make_user(django_user_model)
    linked(payer, account)
    card = saved_card(payer, "pm_plan", last4="0341", default=True)
    saved_card(payer, "pm_backup", last4="4242", backup=True)
    soft, hard = ("card_declined", "insufficient_funds"), ("card_declined", "do_not_honor")
    gateway = FakeGateway({"pm_plan": [soft, hard], "pm_backup": [soft, "ok"]})
    use_gateway(monkeypatch, gateway)
    plan = plan_setup_by_payer(account=account, user=payer, schedule_key="monthly-3", payment_method=card,
                               pays_by_hand=False, ip=None).plan  # fmt: skip
    days = _days_until(plan.instalments.get(number=1))
    driver.plan(now=timezone.now() + dt.timedelta(days=days, hours=1))
    assert driver.run(days=days + 0.5) == [S.RETRY_SCHEDULED]  # plan card and backup both declined (soft)
    assert driver.run(days=days + 2) == [S.RETRY_SCHEDULED]  # retry 1: the plan's card declined for good
    assert driver.run(days=days + 4) == [S.SUCCEEDED]  # retry 2: the backup card pays
    charge = AutopayCharge.objects.get(instalment__plan=plan)
    assert [(t.attempt_number, t.method_role, t.outcome) for t in charge.tries.order_by("pk")] == [
        (1, "default", "declined"), (1, "backup", "declined"), (2, "default", "declined"), (3, "backup", "succeeded"),
    ]  # fmt: skip
    assert gateway.confirms() == ["pm_plan", "pm_backup", "pm_plan", "pm_backup"]
    assert plan.instalments.get(number=1).status == PlanInstalment.Status.PAID
    assert Payment.objects.get(channel="autopay", status="succeeded").amount == 10_000


def test_a_payment_made_another_way_lowers_the_instalment_charged(
    stripe_settings, localstripe, account, django_user_model, driver
):
    rules_on(account.biller, down_payment="none")
    owing(account)
    payer = make_user(django_user_model)
    linked(payer, account)
    card = save_card(payer)
    plan = plan_setup_by_payer(account=account, user=payer, schedule_key="monthly-3", payment_method=card,
                               pays_by_hand=False, ip=None).plan  # fmt: skip
    payment_record_offline(account=account, amount=4_000, method=Payment.Method.BANK_TRANSFER, reference="bank")
    days = _days_until(plan.instalments.get(number=1))
    driver.plan(now=timezone.now() + dt.timedelta(days=days, hours=1))
    assert driver.run(days=days + 0.5) == [S.SUCCEEDED]
    assert Payment.objects.get(channel="autopay").amount == 6_000  # $100.00 scheduled, $40.00 already in
    assert plan.instalments.get(number=1).status == PlanInstalment.Status.PAID


def test_a_cancelled_plan_charges_nothing(stripe_settings, localstripe, account, django_user_model, driver,
                                         staff_user):  # fmt: skip
    from billing.plans.services import plan_cancel

    rules_on(account.biller, down_payment="none")
    owing(account)
    payer = make_user(django_user_model)
    linked(payer, account)
    plan = plan_setup_by_payer(account=account, user=payer, schedule_key="monthly-3", payment_method=save_card(payer),
                               pays_by_hand=False, ip=None).plan  # fmt: skip
    days = _days_until(plan.instalments.get(number=1))
    driver.plan(now=timezone.now() + dt.timedelta(days=days, hours=1))
    plan_cancel(plan=plan, actor=staff_user)
    assert driver.run(days=days + 0.5) == [S.CANCELLED]
    assert AutopayCharge.objects.get().reason == AutopayCharge.Reason.PLAN_ENDED
    assert not Payment.objects.filter(channel="autopay").exists()


def test_a_guest_card_payment_during_the_plan_lowers_the_next_instalment(
    stripe_settings, localstripe, account, django_user_model
):
    """A guest pays part of the balance on the pay screen (payment core, localstripe): the plan counts it."""
    from billing.payments.core import payment_record_result
    from billing.payments.online import payment_confirm, payment_start
    from billing.plans.selectors import plan_view

    rules_on(account.biller, down_payment="none")
    owing(account)
    payer = make_user(django_user_model)
    linked(payer, account)
    plan = plan_setup_by_payer(account=account, user=payer, schedule_key="monthly-3", payment_method=save_card(payer),
                               pays_by_hand=False, ip=None).plan  # fmt: skip
    assert plan_view(plan).next_owed == 10_000
    payment, _secret = payment_start(account=account, payer_email="guest@example.com", channel=Payment.Channel.GUEST_WEB,
                                     amount=2_500)  # fmt: skip
    outcome = payment_confirm(account_id=account.pk, payment_intent_id=payment.gateway_payment_id,
                              payment_method_id="pm_card_visa")  # fmt: skip
    assert outcome.status == "succeeded"
    payment_record_result(payment_intent_id=payment.gateway_payment_id, source="return")
    view = plan_view(PaymentPlan.objects.get(pk=plan.pk))
    assert view.paid == 2_500 and view.next_instalment.number == 1 and view.next_owed == 7_500
