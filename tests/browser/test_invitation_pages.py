"""The page a customer lands on from an invitation e-mail: usable on a phone, accessible, no CSP violations."""

import re

import pytest
from allauth.account.models import EmailAddress
from django.core import mail
from django.urls import reverse
from playwright.sync_api import expect

from accounts.invitations import invitation_issue
from accounts.models import AccountLink, InvitationKind
from billing.models import PaperlessEnrollment
from tests.browser.conftest import axe_serious_violations, has_horizontal_overflow
from tests.factories import BillerFactory, CustomerAccountFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "A-payer-Passw0rd!"


def _link_in_last_mail() -> str:
    return re.search(r"https?://\S+/me/invite/[\w-]+/", mail.outbox[-1].body).group(0)


def assert_clean(page):
    assert not has_horizontal_overflow(page)
    assert axe_serious_violations(page) == []
    assert page.csp_violations == []


def test_paperless_invitation_on_a_phone(live_server, phone, settings):
    settings.SITE_URL = live_server.url
    account = CustomerAccountFactory(biller=BillerFactory(), email="invited@example.com")
    invitation_issue(account=account, kind=InvitationKind.PAPERLESS)
    phone.goto(_link_in_last_mail())
    assert_clean(phone)
    phone.get_by_role("button", name=re.compile("Confirm paperless")).click()
    phone.get_by_text("Paperless bills are on").first.wait_for(timeout=10_000)
    assert_clean(phone)
    assert PaperlessEnrollment.objects.filter(account=account, email="invited@example.com").exists()


def test_used_link_offers_a_fresh_one_on_a_phone(live_server, phone, settings):
    settings.SITE_URL = live_server.url
    account = CustomerAccountFactory(biller=BillerFactory(), email="invited@example.com")
    invitation_issue(account=account, kind=InvitationKind.JOIN)
    link = _link_in_last_mail()
    phone.goto(link.replace("/invite/", "/invite/x"))  # tampered
    expect(phone.get_by_role("button", name=re.compile("new link", re.I))).to_be_visible()
    assert_clean(phone)


def _signed_in_phone(browser, live_server, email: str, password: str):
    context = browser.new_context(viewport={"width": 360, "height": 740}, device_scale_factor=2, is_mobile=True)
    page = context.new_page()
    page.csp_violations = []
    page.on("console", lambda msg: page.csp_violations.append(msg.text) if "Content Security Policy" in msg.text else None)
    page.goto(live_server.url + reverse("account_login"))
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign In").click()
    page.wait_for_url(re.compile(r".*/me/$"))
    return context, page


def test_a_forwarded_join_link_gives_a_stranger_nothing_and_the_invited_payer_still_joins(
    live_server, phone, settings, django_user_model
):
    """Issue 8, item 3: a stranger signed in with their own login opens a forwarded join link. They are asked for
    the account number and the bill's second factor, and without them nothing is linked; the invited payer then
    opens the same link and the account is theirs."""
    from django.core.cache import cache

    cache.clear()
    settings.SITE_URL = live_server.url
    account = CustomerAccountFactory(biller=BillerFactory(), email="invited@example.com")
    invitation_issue(account=account, kind=InvitationKind.JOIN)
    link = _link_in_last_mail()
    for email in ("stranger@example.com", "invited@example.com"):
        user = django_user_model.objects.create_user(email=email, password=PASSWORD)
        EmailAddress.objects.create(user=user, email=email, verified=True, primary=True)

    context, stranger = _signed_in_phone(phone.context.browser, live_server, "stranger@example.com", PASSWORD)
    stranger.goto(link)
    stranger.wait_for_url(re.compile(r".*/me/invite/continue/$"))
    expect(stranger.get_by_label("Account number")).to_be_visible()
    assert_clean(stranger)
    stranger.get_by_label("Account number").fill(account.account_number)
    stranger.get_by_label(re.compile("postal code", re.I)).fill("00000")
    stranger.get_by_role("button", name="Link account").click()
    expect(stranger.get_by_role("alert")).to_contain_text("We couldn't find an account with those details")
    assert_clean(stranger)
    context.close()
    assert not AccountLink.objects.exists()

    context, invited = _signed_in_phone(phone.context.browser, live_server, "invited@example.com", PASSWORD)
    invited.goto(link)
    invited.wait_for_url(re.compile(r".*/me/$"))
    expect(invited.get_by_text(f"Account {account.account_number} is now linked")).to_be_visible()
    assert_clean(invited)
    context.close()
    assert list(AccountLink.objects.values_list("user__email", "created_via")) == [
        ("invited@example.com", AccountLink.Via.INVITED_EMAIL)
    ]
