"""The staff side of payment plans: the rules on the biller, arranging a plan (outside the rules too), the Plans list
with its filters and constant query count, and the cancel and reschedule actions through the services."""

import pytest
from django.urls import reverse

from billing.models import PaymentPlan, PlanInstalment, PlanRules
from tests.billing.plans.plans_support import agreed_plan, owing, rules_on
from tests.factories import CustomerAccountFactory
from tests.staff_support import staff_login

PLANS = reverse("admin:billing_paymentplan_changelist")
ARRANGE = reverse("admin:billing_paymentplan_arrange")


@pytest.fixture
def superclient(client, django_user_model):
    admin = django_user_model.objects.create_superuser(email="root@riverside.example", password="pw-Root-123")
    staff_login(client, admin)
    return client


def test_staff_turn_plans_on_in_the_biller_page(superclient, biller):
    page = superclient.get(reverse("admin:billing_biller_change", args=[biller.pk]))
    assert page.status_code == 200 and b"payment plan rules" in page.content.lower()
    assert not PlanRules.objects.exists()  # off by default: no row, the defaults say "not offered"


def test_arrange_outside_the_rules_then_reschedule_and_cancel(superclient, account, django_user_model):
    owing(account, 50_000)
    response = superclient.post(ARRANGE, {"account_number": account.account_number, "frequency": "weekly",
                                          "count": "8", "down_payment": "50.00", "outside_rules": "on"})  # fmt: skip
    plan = PaymentPlan.objects.get()
    assert response.status_code == 302
    assert plan.status == "proposed" and plan.outside_rules and plan.down_payment == 5_000
    assert plan.instalments.count() == 9 and sum(plan.instalments.values_list("amount", flat=True)) == 50_000
    assert plan.events.get().actor is not None

    # Plans off and not outside the rules: refused with the reason, nothing saved.
    other = CustomerAccountFactory(biller=account.biller)
    owing(other, 50_000)
    refused = superclient.post(ARRANGE, {"account_number": other.account_number, "frequency": "monthly", "count": "3"})
    assert refused.status_code == 200 and b"not offered" in refused.content
    assert PaymentPlan.objects.count() == 1

    change = superclient.get(reverse("admin:billing_paymentplan_change", args=[plan.pk]))
    assert change.status_code == 200 and b"Reschedule" not in change.content  # only an active plan


def test_reschedule_and_cancel_an_active_plan(superclient, account, django_user_model):
    from tests.billing.cards_support import linked, make_user

    rules_on(account.biller, down_payment=PlanRules.DownPayment.NONE)
    owing(account)
    payer = make_user(django_user_model)
    linked(payer, account)
    plan = agreed_plan(account, payer)
    assert plan.status == "active"
    url = reverse("admin:billing_paymentplan_reschedule", args=[plan.pk])
    response = superclient.post(url, {"frequency": "monthly", "count": "5"})
    assert response.status_code == 302
    live = plan.instalments.exclude(status=PlanInstalment.Status.CANCELLED)
    assert live.count() == 5 and sum(live.values_list("amount", flat=True)) == 30_000
    superclient.post(PLANS, {"action": "cancel_plans", "_selected_action": [plan.pk]})
    plan.refresh_from_db()
    assert plan.status == "cancelled"
    assert plan.events.filter(to_status="cancelled", actor__isnull=False).count() == 1


def test_plans_list_filters_and_constant_queries(superclient, biller, django_user_model, django_assert_max_num_queries):
    from tests.billing.cards_support import linked, make_user

    rules_on(biller)

    def add(n):
        for _ in range(n):
            account = CustomerAccountFactory(biller=biller)
            owing(account)
            payer = make_user(django_user_model, email=f"p{account.pk}@example.com")
            linked(payer, account)
            agreed_plan(account, payer)

    add(2)
    superclient.get(PLANS)
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as two:
        superclient.get(PLANS)
    add(10)
    with django_assert_max_num_queries(len(two.captured_queries)):
        response = superclient.get(PLANS)
    assert response.context["cl"].result_count == 12
    filtered = superclient.get(PLANS, {"status__exact": "broken"})
    assert filtered.context["cl"].result_count == 0
