"""The HTML e-bill on a 360 px phone, signed in, in English, Arabic and Persian: it fits the screen, has a Pay button
(the bill's signed pay link) and a way back to the account, and speaks the language the payer chose.

Screenshots land in BILLPAY_SCREENSHOTS when it is set, to look at by eye.
"""

import os

import pytest
from allauth.account.models import EmailAddress
from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model
from django.contrib.sessions.backends.db import SessionStore
from django.core.cache import cache
from django.urls import reverse

from accounts.models import AccountLink
from accounts.services import account_link_grant
from billing.bills.paylinks import pay_token
from tests.browser.conftest import axe_serious_violations, has_horizontal_overflow
from tests.factories import BillerFactory, CustomerAccountFactory, make_bill

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SCREENSHOTS = os.environ.get("BILLPAY_SCREENSHOTS", "")


def signed_in(phone, live_server, user, *, language="en"):
    """Sign the browser in as `user` (a session made server-side) with `language` chosen in the language switch."""
    session = SessionStore()
    session[SESSION_KEY] = str(user.pk)
    session[BACKEND_SESSION_KEY] = "allauth.account.auth_backends.AuthenticationBackend"
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    session.create()
    host = live_server.url.split("//", 1)[1].split(":")[0]
    phone.context.add_cookies(
        [
            {"name": settings.SESSION_COOKIE_NAME, "value": session.session_key, "domain": host, "path": "/"},
            {"name": settings.LANGUAGE_COOKIE_NAME, "value": language, "domain": host, "path": "/"},
        ]
    )


@pytest.fixture
def payer_with_bill(db):
    cache.clear()
    biller = BillerFactory(remit_address="Riverside Water\nPO Box 139\nRiverside CA 92501")
    account = CustomerAccountFactory(
        biller=biller, holder_name="Dana Example", address_line1="139 River Rd", language="en"
    )
    bill = make_bill(account, amounts=(4250, 1999), number="RW-2026-000123")
    user = get_user_model().objects.create_user(email="dana@example.com", password="A-payer-Passw0rd!")
    EmailAddress.objects.create(user=user, email=user.email, verified=True, primary=True)
    account_link_grant(user=user, account=account, via=AccountLink.Via.LOOKUP)
    return user, account, bill


@pytest.mark.parametrize("language", ["en", "ar", "fa"])
def test_ebill_fits_a_phone_has_pay_and_back_and_speaks_the_chosen_language(
    live_server, phone, payer_with_bill, language
):
    user, account, bill = payer_with_bill
    signed_in(phone, live_server, user, language=language)

    phone.goto(live_server.url + reverse("accounts:bill", args=[bill.pk]))

    assert phone.evaluate("document.documentElement.lang") == language
    assert phone.evaluate("document.documentElement.dir") == ("rtl" if language in {"ar", "fa"} else "ltr")
    if SCREENSHOTS:
        phone.screenshot(path=f"{SCREENSHOTS}/ebill-{language}.png", full_page=True)
    assert phone.evaluate("document.documentElement.scrollWidth") <= 360
    assert not has_horizontal_overflow(phone)
    pay = phone.locator("a.pay-button")
    assert pay.count() == 1
    assert pay.get_attribute("href").endswith(reverse("billing:pay_link", kwargs={"token": pay_token(bill)}))
    back = phone.locator("a.back-to-account")
    assert back.get_attribute("href") == reverse("accounts:account", args=[account.pk])
    assert axe_serious_violations(phone) == []

    pay.click()
    phone.wait_for_url(f"{live_server.url}{reverse('billing:pay_account')}")
