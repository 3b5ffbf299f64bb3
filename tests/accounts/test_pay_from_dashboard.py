"""A signed-in payer pays from the dashboard: the receipt address is theirs, and what the account already has
(paperless, autopay) is not offered again (issue 10, items 5 and 9)."""

import re

import pytest
from django.urls import reverse

from accounts.models import AccountLink
from accounts.services import account_link_grant
from billing.enrolment.paperless import paperless_enroll
from billing.models import PaperlessEnrollment
from tests.billing.autopay_support import enroll, saved_card
from tests.factories import CustomerAccountFactory, make_bill

pytestmark = pytest.mark.django_db


@pytest.fixture
def linked_account(payer, biller):
    account = CustomerAccountFactory(biller=biller, email="household@example.com")
    account_link_grant(user=payer, account=account, via=AccountLink.Via.LOOKUP)
    make_bill(account, amounts=(5000,))
    return account


def pay_screen(client, account) -> str:
    response = client.post(reverse("accounts:pay", args=[account.pk]), follow=True)
    assert response.status_code == 200
    return response.content.decode()


def email_field(html: str) -> str:
    return re.search(r'<input[^>]*name="receipt_email"[^>]*>', html).group(0)


def test_the_receipt_address_is_the_signed_in_payers_own(payer_client, payer, linked_account):
    html = pay_screen(payer_client, linked_account)
    assert f'value="{payer.email}"' in email_field(html)
    assert "household@example.com" not in html


def test_paperless_and_autopay_are_offered_while_the_account_has_neither(payer_client, linked_account):
    html = pay_screen(payer_client, linked_account)
    assert 'name="paperless"' in html and 'name="autopay"' in html


def test_paperless_already_on_is_not_offered_again(payer_client, payer, linked_account):
    paperless_enroll(
        account=linked_account, email=payer.email, consent_text="I agree.", ip="198.51.100.7",
        via=PaperlessEnrollment.Via.PORTAL, user=payer,
    )  # fmt: skip
    html = pay_screen(payer_client, linked_account)
    assert 'name="paperless"' not in html
    assert 'name="autopay"' in html


def test_autopay_already_on_is_not_offered_again(payer_client, payer, linked_account):
    enroll(linked_account, payer, saved_card(payer, "pm_card_visa", default=True))
    paperless_enroll(
        account=linked_account, email=payer.email, consent_text="I agree.", ip="198.51.100.7",
        via=PaperlessEnrollment.Via.PORTAL, user=payer,
    )  # fmt: skip
    html = pay_screen(payer_client, linked_account)
    assert 'name="autopay"' not in html and 'name="paperless"' not in html
    assert "Make next time easier" not in html
