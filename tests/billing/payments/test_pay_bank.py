"""Paying from a bank account on the pay screen (guest and signed-in), against a real localstripe: the choice is
offered only when the biller can take debits, the IBAN and the mandate acceptance are checked with messages on their
fields, the mandate is stored as shown with the request's address and browser, and the receipt says what happens."""

import pytest

from billing.models import BankMandate, Payment
from billing.payments.bank_debits import mandate_text_digest
from billing.payments.mandates import mandate_text
from tests import stripe_support
from tests.billing.bank_support import BAD_CHECKSUM_IBAN, GOOD_IBAN, RETURNED_IBAN, sepa_biller
from tests.billing.payments.test_pay_flow import grant
from tests.factories import make_bill

PAGE = "/pay/account/"
BANK = "/pay/account/bank/"
UA = "Mozilla/5.0 (Test; 360px phone)"


@pytest.fixture
def payer(client, account):
    sepa_biller(account.biller)
    return grant(client, account)


def bank_form(account, **extra):
    text = mandate_text(biller=account.biller, usage=BankMandate.Usage.SINGLE_USE)
    return {
        "amount_choice": "full", "receipt_email": "jana@example.com", "pay_method": "sepa_debit", "iban": GOOD_IBAN,
        "holder_name": "Jana Novak", "mandate_accepted": "on", "mandate_digest": mandate_text_digest(text), **extra,
    }  # fmt: skip


def post_json(client, data):
    response = client.post(BANK, data, HTTP_ACCEPT="application/json", HTTP_USER_AGENT=UA)
    return response.status_code, response.json()


def test_the_pay_screen_offers_the_bank_only_when_the_biller_takes_debits(client, account):
    make_bill(account, amounts=(5000,))
    grant(client, account)
    assert "Pay from a bank account (SEPA)" not in client.get(PAGE).content.decode()  # USD, no creditor identifier
    sepa_biller(account.biller)
    html = client.get(PAGE).content.decode()
    assert "Pay from a bank account (SEPA)" in html
    assert account.biller.sepa_creditor_identifier in html and "8 weeks" in html  # the mandate, as it is stored
    assert 'name="iban"' in html and "js/pay_bank.js" in html


def test_a_guest_pays_by_iban_and_the_mandate_is_stored_as_shown(stripe_settings, localstripe, payer, account):
    bill = make_bill(account, amounts=(5000,))
    status, answer = post_json(payer, bank_form(account))
    assert status == 200 and answer["status"] == "succeeded"
    receipt = payer.get(answer["next"])
    payment = Payment.objects.get()
    assert receipt.status_code == 302 and payment.confirmation_number in receipt.url
    html = payer.get(receipt.url).content.decode()
    assert "Commerzbank •••• 3000" in html and payment.mandate.reference in html
    bill.refresh_from_db()
    assert (payment.channel, payment.method, bill.status) == ("guest_web", "sepa_debit", "paid")
    mandate = payment.mandate
    assert (mandate.ip, mandate.user_agent, mandate.user_id) == ("127.0.0.1", UA, None)
    assert mandate.mandate_text == mandate_text(biller=account.biller, usage="single_use")


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"iban": BAD_CHECKSUM_IBAN}, "iban", "a character may be mistyped"),
        ({"iban": "DE89 3704"}, "iban", "wrong number of characters"),
        ({"mandate_accepted": ""}, "mandate_accepted", "accept the mandate"),
        ({"holder_name": ""}, "holder_name", "account holder's name"),
    ],
)
def test_bad_input_gets_a_message_on_its_field_and_nothing_reaches_stripe(
    stripe_settings, localstripe, payer, account, change, field, message
):
    make_bill(account, amounts=(5000,))
    status, answer = post_json(payer, bank_form(account, **change))
    assert status == 400 and message in answer["errors"][field]
    assert stripe_support.payment_intents(localstripe) == []
    assert not Payment.objects.exists() and not BankMandate.objects.exists()


def test_a_changed_mandate_text_is_refused(stripe_settings, localstripe, payer, account):
    make_bill(account, amounts=(5000,))
    status, answer = post_json(payer, bank_form(account, mandate_digest="not-what-was-shown"))
    assert status == 409 and "read it again" in answer["error"]
    assert not BankMandate.objects.exists()


def test_without_javascript_the_form_posts_and_opens_the_receipt(stripe_settings, localstripe, payer, account):
    make_bill(account, amounts=(5000,))
    response = payer.post(BANK, bank_form(account, iban=RETURNED_IBAN), follow=True)
    payment = Payment.objects.get()
    assert payment.status == "processing"
    html = response.content.decode()
    assert "Your direct debit is on its way" in html and "we will not debit or remind you again" in html
    assert "Set up autopay by direct debit" in html
    bad = payer.post(BANK, bank_form(account, iban=BAD_CHECKSUM_IBAN), follow=True)
    assert "a character may be mistyped" in bad.content.decode()


def test_a_signed_in_payer_pays_by_bank_on_the_portal_channel(stripe_settings, localstripe, client, account, user):
    from accounts.models import AccountLink
    from accounts.services import account_link_grant

    sepa_biller(account.biller)
    make_bill(account, amounts=(5000,))
    account_link_grant(user=user, account=account, via=AccountLink.Via.LOOKUP)
    client.force_login(user)
    grant(client, account)
    status, _answer = post_json(client, bank_form(account))
    payment = Payment.objects.get()
    assert status == 200 and payment.channel == "portal" and payment.mandate.user_id == user.pk
