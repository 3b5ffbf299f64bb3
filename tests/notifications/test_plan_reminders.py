"""Bills on a payment plan in good standing get no due or past-due reminders; when the plan ends early (broken,
cancelled) the reminders resume."""

import pytest
from django.core import mail

from billing.models import PlanRules
from billing.plans.services import plan_cancel
from notifications.models import Notification
from notifications.planner import reminders_plan
from notifications.services import notification_send, notifications_sweep
from tests.billing.cards_support import linked, make_user
from tests.billing.plans.plans_support import agreed_plan, rules_on

from .conftest import at, day, issued_bill

pytestmark = pytest.mark.django_db
Status = Notification.Status


@pytest.fixture
def planned(account, django_user_model):
    rules_on(account.biller, down_payment=PlanRules.DownPayment.NONE)
    bill = issued_bill(account, amount=30_000)
    payer = make_user(django_user_model)
    linked(payer, account)
    plan = agreed_plan(account, payer)
    assert plan.status == "active"
    return bill, plan


def test_no_past_due_reminders_while_the_plan_is_in_good_standing(planned, staff_user):
    bill, plan = planned
    for offset in (-5, 0, 3, 4, 10, 11):
        reminders_plan(today=day(offset), now=at(day(offset), 6))
    assert not Notification.objects.filter(bill=bill, kind__in=["due_upcoming", "due_today", "past_due"]).exists()

    plan_cancel(plan=plan, actor=staff_user)
    reminders_plan(today=day(11), now=at(day(11), 6))
    assert list(Notification.objects.filter(bill=bill, status=Status.PENDING).values_list("kind", "step")) == [
        ("past_due", 10)
    ]


def test_a_reminder_planned_before_the_plan_is_not_sent(account, django_user_model):
    bill = issued_bill(account, amount=30_000)
    reminders_plan(today=day(3), now=at(day(3), 6))
    row = Notification.objects.get(bill=bill, kind="past_due")
    rules_on(account.biller, down_payment=PlanRules.DownPayment.NONE)
    payer = make_user(django_user_model)
    linked(payer, account)
    agreed_plan(account, payer)
    claimed = notifications_sweep(now=at(day(3), 10), enqueue=False).claimed
    assert claimed == [row.pk]
    notification_send(notification_id=row.pk, now=at(day(3), 10))
    row.refresh_from_db()
    assert row.status == Status.SKIPPED and "payment plan" in row.last_error
    assert mail.outbox == []


def test_instalments_paid_by_hand_are_reminded_before_and_on_their_date(planned):
    import datetime as dt

    from django.utils import timezone

    from billing.models import Payment
    from billing.payments.offline import payment_record_offline
    from notifications.planner import plan_reminders_plan

    bill, plan = planned
    first = plan.instalments.get(number=1)
    offset = (first.due_date - timezone.localdate()).days

    def plan_on(days):
        return plan_reminders_plan(now=timezone.now() + dt.timedelta(days=offset + days))

    plan_on(-4)
    assert not Notification.objects.filter(plan=plan).exists()
    plan_on(-3)
    plan_on(-2)
    plan_on(0)
    keys = sorted(Notification.objects.filter(plan=plan).values_list("dedupe_key", flat=True))
    assert keys == [f"plan:{plan.pk}:1:plan_instalment_due:email:-3", f"plan:{plan.pk}:1:plan_instalment_due:email:0"]
    payment_record_offline(account=plan.account, amount=first.amount, method=Payment.Method.CASH)
    Notification.objects.all().delete()
    plan_on(0)  # paid: nothing to remind
    assert not Notification.objects.filter(plan=plan).exists()
