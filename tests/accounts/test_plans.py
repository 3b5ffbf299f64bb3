"""The payer's payment plan pages: "Pay over time" from the dashboard, choosing a schedule that shows every date and
amount, paying the down payment with a saved card against localstripe (through the payment core), by hand on the pay
screen, and staff's proposal accepted from the e-mailed link."""

import re

import pytest
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from billing.models import Payment, PaymentPlan, PlanInstalment, PlanRules
from billing.plans.services import plan_propose_by_staff
from notifications.services import notification_send, notifications_sweep
from tests.accounts.test_dashboard import DASHBOARD_QUERY_BUDGET, linked
from tests.billing import conftest as billing_fixtures
from tests.billing.cards_support import save_card
from tests.billing.plans.plans_support import owing, rules_on

pytestmark = pytest.mark.django_db

localstripe = billing_fixtures.localstripe
stripe_settings = billing_fixtures.stripe_settings


def _send_notices():
    now = timezone.now()
    for pk in notifications_sweep(now=now, enqueue=False).claimed:
        notification_send(notification_id=pk, now=now)


def test_dashboard_offers_pay_over_time_only_when_the_biller_does(payer_client, payer, account):
    linked(payer, account)
    owing(account)
    assert 'data-testid="pay-over-time"' not in payer_client.get(reverse("accounts:dashboard")).content.decode()
    rules_on(account.biller)
    assert 'data-testid="pay-over-time"' in payer_client.get(reverse("accounts:dashboard")).content.decode()


def test_the_page_shows_every_date_and_amount_and_the_remainder(payer_client, payer, account):
    linked(payer, account)
    rules_on(account.biller, allow_biweekly=False, down_payment=PlanRules.DownPayment.NONE)
    owing(account, 10_000)
    page = payer_client.get(reverse("accounts:plan", args=[account.pk])).content.decode()
    assert "3 monthly instalments of $33.00" in page
    assert "The last instalment is $1.00 more" in page
    three = page[page.index('id="schedule-monthly-3-details"'):page.index('id="schedule-monthly-4"')]
    assert re.findall(r"<bdi>(\$[\d.,]+)</bdi>", three) == ["$33.00", "$33.00", "$34.00"]
    assert "no interest and no fee" in page


def test_bad_input_is_answered_and_nothing_is_saved(payer_client, payer, account):
    linked(payer, account)
    rules_on(account.biller)
    owing(account)
    response = payer_client.post(reverse("accounts:plan", args=[account.pk]), {"schedule": "weekly-99"})
    assert response.status_code == 400
    page = response.content.decode()
    assert "Choose one of the schedules shown." in page and "Tick the box to agree" in page
    assert not PaymentPlan.objects.exists()


def test_by_hand_the_down_payment_is_paid_on_the_pay_screen(payer_client, payer, account):
    linked(payer, account)
    rules_on(account.biller)
    owing(account)
    response = payer_client.post(reverse("accounts:plan", args=[account.pk]),
                                 {"schedule": "monthly-3", "method": "hand", "agree": "on"})  # fmt: skip
    assert response.status_code == 302 and response["Location"] == reverse("billing:pay_account")
    plan = PaymentPlan.objects.get()
    assert plan.status == "proposed" and plan.agreed_at is not None and plan.pays_by_hand
    assert plan.agreed_ip == "127.0.0.1" and "Instalment 3" in plan.agreement_text
    pay_page = payer_client.get(reverse("billing:pay_account")).content.decode()
    assert "$30.00" in pay_page  # the message names the down payment


def test_setup_with_a_saved_card_pays_the_down_payment_through_localstripe(
    stripe_settings, payer_client, payer, account, django_capture_on_commit_callbacks, django_assert_max_num_queries
):
    linked(payer, account)
    rules_on(account.biller)
    owing(account)  # $300.00: 10% down, then 3 × $90.00
    card = save_card(payer)
    with django_capture_on_commit_callbacks(execute=True):
        response = payer_client.post(reverse("accounts:plan", args=[account.pk]),
                                     {"schedule": "monthly-3", "method": str(card.pk), "agree": "on"})  # fmt: skip
    assert response.status_code == 302 and response["Location"] == reverse("accounts:dashboard")
    plan = PaymentPlan.objects.get()
    assert plan.status == "active" and plan.payment_method == card
    payment = Payment.objects.get(account=account)
    assert payment.status == "succeeded" and payment.amount == 3_000 and payment.channel == "portal"
    assert plan.instalments.get(number=0).status == PlanInstalment.Status.PAID
    with django_assert_max_num_queries(DASHBOARD_QUERY_BUDGET):
        dashboard = payer_client.get(reverse("accounts:dashboard")).content.decode()
    assert 'data-testid="plan-status"' in dashboard
    assert "$30.00" in dashboard and "$90.00" in dashboard  # paid so far, and the next instalment


def test_staff_proposal_is_emailed_and_accepted_by_link(payer_client, payer, account, staff_user,
                                                        django_capture_on_commit_callbacks, settings):  # fmt: skip
    settings.SITE_URL = "https://pay.example"
    linked(payer, account)
    rules_on(account.biller, down_payment=PlanRules.DownPayment.NONE)
    owing(account)
    with django_capture_on_commit_callbacks(execute=True):
        plan = plan_propose_by_staff(account=account, schedule_key="monthly-2", actor=staff_user)
    _send_notices()
    [message] = mail.outbox
    assert "$150.00" in message.body  # every instalment in the e-mail
    path = re.search(r"https://pay\.example(/me/plan/accept/[^/\s]+/)", message.body).group(1)
    page = payer_client.get(path)
    assert page.status_code == 200 and "$300.00 in instalments" in page.content.decode()
    plan.refresh_from_db()
    assert plan.accept_used_at is None  # opening the link changes nothing
    with django_capture_on_commit_callbacks(execute=True):
        done = payer_client.post(path, {"method": "hand", "agree": "on"})
    assert done.status_code == 302
    plan.refresh_from_db()
    assert plan.status == "active" and plan.accept_used_at is not None
    again = payer_client.get(path)
    assert again.status_code == 410 and "already been used" in again.content.decode()


def test_the_pay_screen_links_to_pay_over_time(client, account):
    from billing.payments import lookup

    owing(account)
    rules_on(account.biller)
    session = client.session
    session[lookup.GRANT_SESSION_KEY] = {"account_id": account.pk, "expires_at": 2**40}
    session.save()
    page = client.get(reverse("billing:pay_account")).content.decode()
    assert 'data-testid="pay-over-time"' in page
    rules_on(account.biller, enabled=False)
    assert 'data-testid="pay-over-time"' not in client.get(reverse("billing:pay_account")).content.decode()
