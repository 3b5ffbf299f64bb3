"""A payment plan on a 360 px phone, in English and in Arabic, against localstripe: an eligible payer opens "Pay over
time" from the dashboard, chooses three monthly instalments (every date and amount shown), pays the down payment with
their saved card, and sees the plan on the dashboard. Every page is axe-clean, does not scroll sideways and logs no
Content-Security-Policy violation; in Arabic it reads right to left."""

import re

import pytest
from allauth.account.models import EmailAddress
from django.core.cache import cache
from django.urls import reverse
from django.utils import translation
from playwright.sync_api import expect

from accounts.models import AccountLink
from accounts.services import account_link_grant
from billing.models import Payment, PaymentPlan
from tests.billing.cards_support import save_card
from tests.billing.plans.plans_support import owing, rules_on
from tests.browser.conftest import axe_serious_violations, has_horizontal_overflow
from tests.factories import BillerFactory, CustomerAccountFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "A-payer-Passw0rd!"


def assert_page_is_clean(page, language):
    assert page.evaluate("document.documentElement.dir") == ("rtl" if language == "ar" else "ltr")
    assert not has_horizontal_overflow(page)
    assert axe_serious_violations(page) == []
    assert page.csp_violations == []


@pytest.mark.parametrize("language", ["en", "ar"])
def test_choose_three_monthly_instalments_pay_the_down_payment_and_see_the_plan(
    live_server, phone, stripe_live, django_user_model, language
):
    cache.clear()
    account = CustomerAccountFactory(biller=BillerFactory(), holder_name="Dana Example")
    rules_on(account.biller)  # 10% down, then 2–6 monthly or two-weekly instalments
    owing(account, 30_000)
    user = django_user_model.objects.create_user(email="dana@example.com", password=PASSWORD)
    EmailAddress.objects.create(user=user, email=user.email, verified=True, primary=True)
    account_link_grant(user=user, account=account, via=AccountLink.Via.LOOKUP)
    card = save_card(user)

    phone.goto(live_server.url + reverse("account_login"))
    phone.get_by_label("Email").fill(user.email)
    phone.get_by_label("Password").fill(PASSWORD)
    phone.get_by_role("button", name="Sign In").click()
    phone.wait_for_url(re.compile(r".*/me/$"))
    if language != "en":
        phone.get_by_label("Language").select_option(language)
        phone.get_by_role("button", name="Change").click()
        phone.wait_for_load_state()
    assert_page_is_clean(phone, language)

    phone.get_by_test_id("pay-over-time").click()
    phone.wait_for_url(live_server.url + reverse("accounts:plan", args=[account.pk]))
    assert_page_is_clean(phone, language)
    three = phone.locator("#schedule-monthly-3-details")
    expect(three.locator("tbody tr")).to_have_count(4)  # the down payment and three instalments, each dated
    with translation.override(language):
        from django.utils.translation import gettext as _

        phone.locator("#schedule-monthly-3").check()
        expect(phone.get_by_label(card.summary)).to_be_checked()  # the saved card pays the down payment and the rest
        phone.get_by_label(_("I agree to the payment plan above.")).check()
        phone.get_by_role("button", name=_("Agree and set up the plan")).click()
    phone.wait_for_url(live_server.url + reverse("accounts:dashboard"))
    status = phone.get_by_test_id("plan-status")
    expect(status).to_be_visible()
    assert_page_is_clean(phone, language)

    plan = PaymentPlan.objects.get(account=account)
    assert plan.status == PaymentPlan.Status.ACTIVE and plan.payment_method == card
    assert [i.amount for i in plan.instalments.order_by("number")] == [3_000, 9_000, 9_000, 9_000]
    down = Payment.objects.get(account=account)
    assert down.status == Payment.Status.SUCCEEDED and down.amount == 3_000
    # What is paid and what is next, as the dashboard says it in this language.
    with translation.override(language):
        from billing.money import format_money

        expect(phone.get_by_test_id("plan-paid")).to_contain_text(format_money(3_000, "USD"))
        expect(phone.get_by_test_id("plan-next")).to_contain_text(format_money(9_000, "USD"))
