"""Small things from issue 10, item 18: a favicon, a sign-up link on the home page, the fixed convenience fee typed in
the currency's units in the admin, and a readable payment allocation row on a bill's admin page."""

import pytest
from django.contrib.staticfiles import finders
from django.urls import reverse

from billing.models import Payment
from billing.payments.offline import payment_record_offline
from tests.billing.bills.test_ebill import _biller_form
from tests.factories import make_bill
from tests.staff_support import staff_login

pytestmark = pytest.mark.django_db


@pytest.fixture
def superclient(client, django_user_model):
    admin = django_user_model.objects.create_superuser(email="root@riverside.example", password="pw-Root-123")
    return staff_login(client, admin)


def test_there_is_a_favicon(client, biller):
    home = client.get(reverse("billing:home")).content.decode()
    assert '<link rel="icon" href="/static/favicon.svg"' in home
    assert finders.find("favicon.svg")
    response = client.get("/favicon.ico")
    assert response.status_code == 301 and response["Location"] == "/static/favicon.svg"


def test_the_home_page_offers_a_sign_up(client, biller):
    home = client.get(reverse("billing:home")).content.decode()
    assert f'href="{reverse("account_signup")}"' in home


def test_the_fixed_fee_is_typed_in_currency_units(superclient, biller):
    url = reverse("admin:billing_biller_change", args=[biller.pk])
    response = superclient.post(url, _biller_form(biller, convenience_fee_fixed="1.50"))
    assert response.status_code == 302, response.content.decode()[:2000]
    biller.refresh_from_db()
    assert biller.convenience_fee_fixed == 150
    assert 'value="1.50"' in superclient.get(url).content.decode()
    refused = superclient.post(url, _biller_form(biller, convenience_fee_fixed="1.505"))
    assert refused.status_code == 200 and "at most 2 decimal places" in refused.content.decode()


def test_a_bills_payments_applied_row_reads_as_a_sentence(superclient, account):
    bill = make_bill(account, amounts=(5000,))
    payment = payment_record_offline(account=account, amount=2000, method=Payment.Method.CASH)
    page = superclient.get(reverse("admin:billing_bill_change", args=[bill.pk])).content.decode()
    assert "PaymentAllocation object" not in page
    assert f"$20.00 from payment {payment.confirmation_number} to bill {bill.number}" in page
