"""A fresh sign-in counts as recent: adding a card or turning paperless on right after signing in (by password or by
an e-mailed code) does not ask for the password again; an older session still is asked (issue 10, item 8)."""

import pytest
from django.core import mail
from django.urls import reverse

from billing.models import PaperlessEnrollment
from tests.accounts.conftest import PASSWORD
from tests.accounts.test_auth_flows import code_in
from tests.accounts.test_dashboard import linked
from tests.accounts.test_payment_methods import make_stale
from tests.billing import conftest as billing_fixtures
from tests.factories import CustomerAccountFactory

pytestmark = pytest.mark.django_db

localstripe = billing_fixtures.localstripe
stripe_settings = billing_fixtures.stripe_settings


def sign_in_with_password(client, payer):
    response = client.post(reverse("account_login"), {"login": payer.email, "password": PASSWORD})
    assert response.status_code == 302 and not response["Location"].startswith(reverse("account_login"))
    return client


def sign_in_with_a_code(client, payer):
    mail.outbox = []
    client.post(reverse("account_request_login_code"), {"email": payer.email})
    client.post(reverse("account_confirm_login_code"), {"code": code_in(mail.outbox[-1])})
    assert client.get(reverse("accounts:dashboard")).status_code == 200
    return client


def paperless_on(client, account):
    return client.post(reverse("accounts:paperless", args=[account.pk]), {"paperless": "on", "email": "me@example.com"})


@pytest.mark.parametrize("sign_in", [sign_in_with_password, sign_in_with_a_code], ids=["password", "code"])
def test_right_after_signing_in_no_password_is_asked(stripe_settings, client, biller, payer, sign_in):
    account = CustomerAccountFactory(biller=biller)
    linked(payer, account)
    sign_in(client, payer)
    assert client.get(reverse("accounts:payment_method_add")).status_code == 200
    setup = client.post(reverse("accounts:payment_method_setup"))
    assert setup.status_code == 200 and setup.json()["clientSecret"]
    response = paperless_on(client, account)
    assert not response["Location"].startswith(reverse("account_reauthenticate"))
    assert PaperlessEnrollment.objects.filter(account=account, cancelled_at__isnull=True).count() == 1


@pytest.mark.parametrize("sign_in", [sign_in_with_password, sign_in_with_a_code], ids=["password", "code"])
def test_an_older_sign_in_is_still_asked(client, biller, payer, sign_in):
    account = CustomerAccountFactory(biller=biller)
    linked(payer, account)
    sign_in(client, payer)
    make_stale(client)
    response = client.get(reverse("accounts:payment_method_add"))
    assert response.status_code == 302 and response["Location"].startswith(reverse("account_reauthenticate"))
    assert paperless_on(client, account)["Location"].startswith(reverse("account_reauthenticate"))
    assert not PaperlessEnrollment.objects.exists()
