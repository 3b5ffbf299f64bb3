"""Plans: eligibility, agreement, money arriving any way, early payoff, a missed instalment breaking the plan once,
staff's proposal accepted by link, cancel and reschedule."""

import datetime as dt

import pytest
from django.utils import timezone

from billing.errors import ApplicationError
from billing.models import Payment, PaymentPlan, PaymentPlanEvent, PlanInstalment
from billing.payments.offline import payment_record_offline
from billing.plans.running import plans_sweep
from billing.plans.selectors import plan_eligibility, plan_view
from billing.plans.services import (
    plan_accept_by_link,
    plan_accept_token,
    plan_cancel,
    plan_create,
    plan_from_link,
    plan_propose_by_staff,
    plan_reschedule,
)
from tests.billing.cards_support import linked, make_user
from tests.factories import CustomerAccountFactory

from .plans_support import agreed_plan, owing, rules_on

pytestmark = pytest.mark.django_db
TODAY = dt.date.today()


@pytest.fixture
def payer(django_user_model, account):
    return linked(make_user(django_user_model), account) and django_user_model.objects.get()


def _pay_other_way(account, amount):
    return payment_record_offline(account=account, amount=amount, method=Payment.Method.BANK_TRANSFER,
                                  reference="bank line")  # fmt: skip


# --- eligibility ------------------------------------------------------------------------------------------------------


def test_plans_are_off_by_default(account):
    owing(account)
    result = plan_eligibility(account=account, today=TODAY)
    assert not result.eligible and "not offered" in result.reason


@pytest.mark.parametrize(
    ("changes", "bill_amount", "due_in_days", "why"),
    [
        ({}, 9_999, -10, "or more"),
        ({"max_balance": 20_000}, 30_000, -10, "up to"),
        ({"min_days_overdue": 30}, 30_000, -10, "overdue"),
        ({"self_service": False}, 30_000, -10, "contact us"),
        ({"min_instalment": 20_000}, 30_000, -10, "too small"),
    ],
)
def test_each_rule_refuses_with_a_reason(account, changes, bill_amount, due_in_days, why):
    rules_on(account.biller, **changes)
    owing(account, bill_amount, due_in_days=due_in_days)
    result = plan_eligibility(account=account, today=TODAY)
    assert not result.eligible
    assert why in result.reason


def test_an_eligible_balance_gets_every_allowed_schedule(account):
    rules_on(account.biller, min_days_overdue=5)
    owing(account, 20_000)
    owing(account, 10_000, due_in_days=5)  # not yet due, still part of the balance
    result = plan_eligibility(account=account, today=TODAY)
    assert result.eligible and result.total == 30_000
    assert [o.key for o in result.options] == [
        "biweekly-2", "biweekly-3", "biweekly-4", "biweekly-5", "biweekly-6",
        "monthly-2", "monthly-3", "monthly-4", "monthly-5", "monthly-6",
    ]  # fmt: skip
    assert all(o.down_payment == 3_000 for o in result.options)
    assert all(sum(i.amount for i in o.instalments) == 30_000 for o in result.options)


def test_one_active_plan_per_account_by_default(account, payer):
    rules_on(account.biller)
    owing(account)
    agreed_plan(account, payer)
    assert not plan_eligibility(account=account, today=TODAY).eligible
    with pytest.raises(ApplicationError):
        plan_create(account=account, schedule_key="monthly-3", origin="payer")


def test_a_schedule_not_offered_is_refused(account):
    rules_on(account.biller)
    owing(account)
    with pytest.raises(ApplicationError, match="not available"):
        plan_create(account=account, schedule_key="weekly-3", origin="payer")


# --- agreement and money ----------------------------------------------------------------------------------------------


def test_agreement_is_kept_like_a_mandate_and_the_plan_waits_for_the_down_payment(account, payer):
    rules_on(account.biller)
    owing(account)
    plan = agreed_plan(account, payer)
    assert plan.status == PaymentPlan.Status.PROPOSED
    assert plan.agreed_by == payer and plan.agreed_ip == "198.51.100.7" and plan.agreed_at is not None
    assert "no interest and no fee" in plan.agreement_text
    assert [i["amount"] for i in plan.agreed_schedule] == [3_000, 9_000, 9_000, 9_000]
    assert plan.pays_by_hand
    _pay_other_way(account, 3_000)
    plan.refresh_from_db()
    assert plan.status == PaymentPlan.Status.ACTIVE
    assert plan.instalments.get(number=0).status == PlanInstalment.Status.PAID


def test_a_payment_made_another_way_lowers_the_next_instalment(account, payer):
    rules_on(account.biller)
    owing(account)
    plan = agreed_plan(account, payer)
    _pay_other_way(account, 3_000)
    _pay_other_way(account, 4_000)  # a bank transfer between instalments
    view = plan_view(PaymentPlan.objects.get(pk=plan.pk))
    assert view.paid == 7_000 and view.remaining == 23_000
    assert view.next_instalment.number == 1 and view.next_owed == 5_000  # 9,000 scheduled, 4,000 already in
    _pay_other_way(account, 6_000)  # more than the next instalment: the rest counts toward the one after
    view = plan_view(PaymentPlan.objects.get(pk=plan.pk))
    assert view.next_instalment.number == 2 and view.next_owed == 8_000


def test_paying_off_early_ends_the_plan(account, payer):
    rules_on(account.biller)
    owing(account)
    plan = agreed_plan(account, payer)
    _pay_other_way(account, 3_000)
    _pay_other_way(account, 27_000)
    plan.refresh_from_db()
    assert plan.status == PaymentPlan.Status.COMPLETED
    assert set(plan.instalments.values_list("status", flat=True)) == {PlanInstalment.Status.PAID}


def test_a_new_bill_during_the_plan_is_outside_it(account, payer):
    rules_on(account.biller)
    owing(account)
    plan = agreed_plan(account, payer)
    _pay_other_way(account, 3_000)
    owing(account, 5_000, due_in_days=20)
    _pay_other_way(account, 27_000)  # the old bill first (oldest due first): the plan is paid off
    plan.refresh_from_db()
    assert plan.status == PaymentPlan.Status.COMPLETED and plan.total == 30_000
    assert plan.plan_bills.count() == 1


# --- a missed instalment ----------------------------------------------------------------------------------------------


def test_a_missed_manual_instalment_breaks_the_plan_after_grace_exactly_once(account, payer, django_capture_on_commit_callbacks):
    rules_on(account.biller, grace_days=5)
    owing(account)
    plan = agreed_plan(account, payer)
    _pay_other_way(account, 3_000)
    first = plan.instalments.get(number=1)
    day = lambda d: timezone.now() + dt.timedelta(days=(first.due_date - TODAY).days + d)  # noqa: E731
    assert plans_sweep(now=day(0)).missed == []  # due today: not late yet
    late = plans_sweep(now=day(1))
    assert late.missed == [first.pk] and late.broken == []
    assert plans_sweep(now=day(5)).broken == []  # within the grace days
    with django_capture_on_commit_callbacks(execute=False):
        broken = plans_sweep(now=day(6))
    assert broken.broken == [plan.pk]
    assert plans_sweep(now=day(7)).broken == []  # never twice
    plan.refresh_from_db()
    assert plan.status == PaymentPlan.Status.BROKEN
    assert PaymentPlanEvent.objects.filter(plan=plan, to_status=PaymentPlan.Status.BROKEN).count() == 1


def test_a_late_instalment_paid_within_grace_keeps_the_plan(account, payer):
    rules_on(account.biller, grace_days=5)
    owing(account)
    plan = agreed_plan(account, payer)
    _pay_other_way(account, 3_000)
    first = plan.instalments.get(number=1)
    offset = (first.due_date - TODAY).days
    plans_sweep(now=timezone.now() + dt.timedelta(days=offset + 2))
    _pay_other_way(account, 9_000)
    assert plans_sweep(now=timezone.now() + dt.timedelta(days=offset + 10)).broken == []
    plan.refresh_from_db()
    assert plan.status == PaymentPlan.Status.ACTIVE
    assert plan.instalments.get(number=1).status == PlanInstalment.Status.PAID


# --- staff -----------------------------------------------------------------------------------------------------------


def test_staff_proposal_accepted_by_link_once(account, payer, staff_user):
    rules_on(account.biller, enabled=False)
    owing(account)
    plan = plan_propose_by_staff(account=account, schedule_key="weekly-4", actor=staff_user, outside_rules=True,
                                 down_payment=0)  # fmt: skip
    assert plan.status == PaymentPlan.Status.PROPOSED and plan.outside_rules and plan.down_payment == 0
    token = plan_accept_token(plan)
    assert plan_from_link(token=token) == plan  # opening the link changes nothing
    accepted = plan_accept_by_link(token=token, user=payer, ip="203.0.113.9", payment_method=None, pays_by_hand=True)
    assert accepted.status == PaymentPlan.Status.ACTIVE  # no down payment: active on agreement
    assert accepted.agreed_ip == "203.0.113.9" and accepted.accept_used_at is not None
    with pytest.raises(ApplicationError, match="already been used"):
        plan_accept_by_link(token=token, user=payer, ip=None, payment_method=None, pays_by_hand=True)
    with pytest.raises(ApplicationError):
        plan_from_link(token=token + "x")


def test_a_stranger_cannot_accept_a_proposal(account, staff_user, django_user_model):
    rules_on(account.biller)
    owing(account)
    plan = plan_propose_by_staff(account=account, schedule_key="monthly-3", actor=staff_user)
    stranger = make_user(django_user_model, email="stranger@example.com")
    linked(stranger, CustomerAccountFactory(biller=account.biller))
    with pytest.raises(ApplicationError, match="not linked"):
        plan_accept_by_link(token=plan_accept_token(plan), user=stranger, ip=None, payment_method=None,
                            pays_by_hand=True)  # fmt: skip
    plan.refresh_from_db()
    assert plan.accept_used_at is None  # the failed try rolled back: the payer can still use the link


def test_cancel_and_reschedule(account, payer, staff_user):
    rules_on(account.biller)
    owing(account)
    plan = agreed_plan(account, payer)
    _pay_other_way(account, 3_000 + 4_000)
    plan_reschedule(plan=plan, actor=staff_user, schedule_key="weekly-2")
    plan.refresh_from_db()
    live = list(plan.instalments.exclude(status=PlanInstalment.Status.CANCELLED).order_by("number"))
    assert sum(i.amount for i in live) == 30_000
    assert [(i.amount, i.status) for i in live] == [
        (3_000, "paid"), (4_000, "paid"), (11_500, "scheduled"), (11_500, "scheduled"),
    ]  # fmt: skip
    assert plan_view(plan).next_owed == 11_500
    plan_cancel(plan=plan, actor=staff_user, reason="payer asked")
    plan.refresh_from_db()
    assert plan.status == PaymentPlan.Status.CANCELLED
    assert not plan.instalments.filter(status=PlanInstalment.Status.SCHEDULED).exists()
    with pytest.raises(ApplicationError):
        plan_cancel(plan=plan, actor=staff_user)
