"""The portal's bank-account pages: the autopay form offers the bank account (also when an invitation link opened
it), the bank page checks the IBAN and the mandate tick with messages on their fields and saves nothing on an error,
and a saved bank account's mandate is revoked from the saved methods page."""

import pytest
from django.urls import reverse

from billing.models import BankMandate, PaymentMethod
from billing.payments.bank_debits import mandate_text_digest
from billing.payments.mandates import mandate_text
from tests.accounts import test_payment_methods as card_pages
from tests.accounts.test_dashboard import linked
from tests.billing import conftest as billing_fixtures
from tests.billing.bank_support import BAD_CHECKSUM_IBAN, GOOD_IBAN, sepa_biller

pytestmark = pytest.mark.django_db
localstripe = billing_fixtures.localstripe
stripe_settings = billing_fixtures.stripe_settings
fresh_client = card_pages.fresh_client


def bank_form(account, **extra):
    text = mandate_text(biller=account.biller, usage="multi_use")
    return {"iban": GOOD_IBAN, "holder_name": "Jana Novak", "mandate_accepted": "on",
            "mandate_digest": mandate_text_digest(text)} | extra  # fmt: skip


def test_the_autopay_form_offers_a_bank_account_only_for_a_sepa_biller(fresh_client, payer, account):
    linked(payer, account)
    url = reverse("accounts:autopay", args=[account.pk])
    bank_url = reverse("accounts:autopay_bank", args=[account.pk])
    assert bank_url not in fresh_client.get(url).content.decode()
    assert fresh_client.get(bank_url).status_code == 404
    sepa_biller(account.biller)
    assert bank_url in fresh_client.get(url).content.decode()
    page = fresh_client.get(bank_url).content.decode()
    assert account.biller.sepa_creditor_identifier in page and "at least 3 days before it" in page


@pytest.mark.parametrize(
    ("change", "message"),
    [({"iban": BAD_CHECKSUM_IBAN}, "a character may be mistyped"), ({"mandate_accepted": ""}, "accept the mandate")],
)
def test_bad_input_saves_nothing(stripe_settings, localstripe, fresh_client, payer, account, change, message):
    sepa_biller(account.biller)
    linked(payer, account)
    response = fresh_client.post(reverse("accounts:autopay_bank", args=[account.pk]), bank_form(account, **change))
    assert response.status_code == 400 and message in response.content.decode()
    assert 'aria-invalid="true"' in response.content.decode()
    assert not PaymentMethod.objects.exists() and not BankMandate.objects.exists()


def test_save_then_revoke_the_mandate(stripe_settings, localstripe, fresh_client, payer, account):
    sepa_biller(account.biller)
    linked(payer, account)
    response = fresh_client.post(reverse("accounts:autopay_bank", args=[account.pk]), bank_form(account))
    method = PaymentMethod.objects.get(user=payer)
    assert response.status_code == 302
    assert response.url == f"{reverse('accounts:autopay', args=[account.pk])}?card={method.pk}"
    mandate = method.mandate
    assert (mandate.usage, mandate.account_id, mandate.ip) == ("multi_use", account.pk, "127.0.0.1")
    listing = fresh_client.get(reverse("accounts:payment_methods")).content.decode()
    assert f"Mandate {mandate.reference}" in listing and "Revoke mandate" in listing
    fresh_client.post(reverse("accounts:bank_mandate_revoke", args=[method.pk]))
    mandate.refresh_from_db()
    assert mandate.status == "revoked"
    assert "Mandate revoked: not debited" in fresh_client.get(reverse("accounts:payment_methods")).content.decode()


def test_removing_a_bank_account_revokes_its_mandate_and_the_pay_screen_never_offers_it(
    stripe_settings, localstripe, fresh_client, payer, account
):
    from billing.payments import lookup
    from tests.factories import make_bill

    sepa_biller(account.biller)
    linked(payer, account)
    make_bill(account, amounts=(5000,))
    fresh_client.post(reverse("accounts:autopay_bank", args=[account.pk]), bank_form(account))
    method = PaymentMethod.objects.get(user=payer)
    session = fresh_client.session
    session[lookup.GRANT_SESSION_KEY] = {"account_id": account.pk, "expires_at": 2**40}
    session.save()
    assert f'name="saved_card" value="{method.pk}"' not in fresh_client.get(reverse("billing:pay_account")).content.decode()
    fresh_client.post(reverse("accounts:payment_method_remove", args=[method.pk]))
    method.refresh_from_db()
    assert method.removed_at is not None and method.mandate.status == "revoked"
