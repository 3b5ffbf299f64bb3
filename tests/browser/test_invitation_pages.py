"""The page a customer lands on from an invitation e-mail: usable on a phone, accessible, no CSP violations."""

import re

import pytest
from django.core import mail
from playwright.sync_api import expect

from accounts.invitations import invitation_issue
from accounts.models import InvitationKind
from billing.models import PaperlessEnrollment
from tests.browser.conftest import axe_serious_violations, has_horizontal_overflow
from tests.factories import BillerFactory, CustomerAccountFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


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
