"""Staff and bank debits: the mandate as accepted (text, time, IP address, browser, references), revoking it, debits
in flight and returned ones, payments filtered by method, and a refund of a bank debit like a card's."""

import pytest
from django.urls import reverse

from billing.models import BankMandate, Payment
from billing.payments.core import payment_record_result
from tests import stripe_support
from tests.billing.bank_support import CREDITOR_ID, RETURNED_IBAN, USER_AGENT, pay_by_bank, sepa_biller, wait_for_intent
from tests.factories import CustomerAccountFactory, make_bill
from tests.staff_support import staff_login

MANDATES = reverse("admin:billing_bankmandate_changelist")
PAYMENTS = reverse("admin:billing_payment_changelist")


@pytest.fixture
def superclient(client, django_user_model):
    admin = django_user_model.objects.create_superuser(email="root@riverside.example", password="pw-Root-123")
    return staff_login(client, admin)


@pytest.fixture
def sepa_account(account):
    sepa_biller(account.biller)
    return account


def test_the_mandate_text_and_acceptance_are_stored_and_shown_to_staff(
    superclient, stripe_settings, localstripe, sepa_account
):
    make_bill(sepa_account, amounts=(5000,))
    pay_by_bank(sepa_account)
    mandate = BankMandate.objects.get()
    listing = superclient.get(MANDATES).content.decode()
    assert mandate.reference in listing and "203.0.113.9" in listing and "Active" in listing

    page = superclient.get(reverse("admin:billing_bankmandate_change", args=[mandate.pk])).content.decode()
    assert USER_AGENT in page and CREDITOR_ID in page and "8 weeks" in page
    assert "Jana Novak" in page and "Commerzbank" in page
    assert mandate.payments.get().confirmation_number in page
    assert "DE89370400440532013000" not in page  # never the IBAN


def test_staff_revoke_a_mandate_through_the_service(superclient, stripe_settings, localstripe, sepa_account):
    make_bill(sepa_account, amounts=(5000,))
    pay_by_bank(sepa_account)
    mandate = BankMandate.objects.get()
    superclient.post(MANDATES, {"action": "revoke", "_selected_action": [mandate.pk]})
    mandate.refresh_from_db()
    assert mandate.status == "revoked" and not mandate.may_debit
    assert mandate.account.events.filter(kind="mandate", to_status="revoked").exists()


def test_debits_in_flight_and_returned_and_the_method_filter(superclient, stripe_settings, localstripe, sepa_account):
    make_bill(sepa_account, amounts=(5000,))
    pay_by_bank(sepa_account, iban=RETURNED_IBAN)
    other = CustomerAccountFactory(biller=sepa_account.biller)
    make_bill(other, amounts=(3000,))
    pay_by_bank(other)
    processing = Payment.objects.get(account=sepa_account)
    paid = Payment.objects.get(account=other)

    def listed(query):
        return {str(p) for p in superclient.get(PAYMENTS + query).context["cl"].result_list}

    assert listed("?bank_debit=in_flight") == {processing.confirmation_number}
    assert listed("?method__exact=sepa_debit") == {processing.confirmation_number, paid.confirmation_number}
    assert listed("?method__exact=card") == set()

    wait_for_intent(localstripe, processing.gateway_payment_id, "requires_payment_method")
    payment_record_result(payment_intent_id=processing.gateway_payment_id, source="test")
    assert listed("?bank_debit=returned") == {processing.confirmation_number}
    assert listed("?bank_debit=in_flight") == set()


def test_a_bank_debit_is_refunded_like_a_card_payment(superclient, stripe_settings, localstripe, sepa_account):
    bill = make_bill(sepa_account, amounts=(5000,))
    pay_by_bank(sepa_account)
    payment = Payment.objects.get()
    url = reverse("admin:billing_payment_refund", args=[payment.pk])
    response = superclient.post(url, {"amount": "20.00", "reason": "Overbilled"})
    assert response.status_code == 302
    payment.refresh_from_db()
    bill.refresh_from_db()
    assert payment.amount_refunded == 2000 and bill.status == "open" and bill.balance_due == 2000
    refunds = stripe_support.list_objects(localstripe, "/v1/refunds", api_key=stripe_support.SECRET_KEY)
    assert [r["amount"] for r in refunds] == [2000]


def test_the_mandate_list_costs_the_same_queries_for_2_and_12_mandates(
    superclient, stripe_settings, localstripe, sepa_account, django_assert_max_num_queries
):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def add(n):
        for _ in range(n):
            other = CustomerAccountFactory(biller=sepa_account.biller)
            make_bill(other, amounts=(1000,))
            pay_by_bank(other)

    add(2)
    with CaptureQueriesContext(connection) as two:
        assert superclient.get(MANDATES).status_code == 200
    add(10)
    with django_assert_max_num_queries(len(two.captured_queries)):
        response = superclient.get(MANDATES)
    assert response.context["cl"].result_count == 12
