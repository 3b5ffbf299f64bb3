"""The bank-debit calls of the Stripe gateway without a network (the real SDK against a fake transport): what is sent
to real Stripe only (mandate_data, an existing mandate, a confirmed SetupIntent) and what localstripe gets, and how a
Mandate and a bank payment method are read. These are the paths the localstripe tests cannot reach."""

import urllib.parse

from billing.payments.gateway import BankAccountDetails, MandateAcceptance
from tests.billing.payments.test_gateway import FakeHTTPClient, _gateway

INTENT = {"id": "pi_1", "object": "payment_intent", "status": "processing", "amount": 5000, "currency": "eur",
          "payment_method": "pm_1", "latest_charge": None, "mandate": "mandate_1"}  # fmt: skip
ACCEPTANCE = MandateAcceptance(accepted_at=1_767_000_000, ip="203.0.113.9", user_agent="UA/1.0")


def sent(client) -> list[dict]:
    return [urllib.parse.parse_qs(body) for _method, _url, body in client.requests]


def test_mandate_data_goes_to_real_stripe_only():
    for live in (True, False):
        client = FakeHTTPClient(body=INTENT)
        intent = _gateway(client, live_api=live).confirm_payment_intent(
            "pi_1", idempotency_key="k", payment_method="pm_1", mandate_acceptance=ACCEPTANCE
        )
        confirm = sent(client)[-1]
        if live:
            assert confirm["mandate_data[customer_acceptance][online][ip_address]"] == ["203.0.113.9"]
            assert confirm["mandate_data[customer_acceptance][accepted_at]"] == ["1767000000"]
            assert confirm["mandate_data[customer_acceptance][online][user_agent]"] == ["UA/1.0"]
        else:
            assert not any(key.startswith("mandate_data") for key in confirm)
        assert (intent.status, intent.mandate_id) == ("processing", "mandate_1")


def test_a_bank_debit_names_its_method_type_and_real_stripe_gets_the_mandate():
    for live in (True, False):
        client = FakeHTTPClient(body=INTENT)
        _gateway(client, live_api=live).create_payment_intent(
            amount=5000, currency="EUR", idempotency_key="k", customer="cus_1", payment_method="pm_1",
            payment_method_types=["sepa_debit"], mandate="mandate_1",
        )  # fmt: skip
        create = sent(client)[0]
        assert create["payment_method_types[0]"] == ["sepa_debit"]
        assert "automatic_payment_methods[enabled]" not in create
        assert create.get("mandate") == (["mandate_1"] if live else None)


def test_a_bank_payment_method_is_created_from_the_iban_and_read_without_it():
    pm = {"id": "pm_sepa", "object": "payment_method", "type": "sepa_debit",
          "sepa_debit": {"last4": "3000", "country": "DE", "bank_code": "37040044"}}  # fmt: skip
    client = FakeHTTPClient(body=pm)
    details = BankAccountDetails(kind="sepa_debit", account_number="DE89370400440532013000", holder_name="Jana Novak",
                                 holder_email="jana@example.com")  # fmt: skip
    result = _gateway(client).create_bank_payment_method(bank_account=details, idempotency_key="k")
    body = sent(client)[0]
    assert body["type"] == ["sepa_debit"] and body["sepa_debit[iban]"] == ["DE89370400440532013000"]
    assert body["billing_details[name]"] == ["Jana Novak"]
    assert (result.id, result.type, result.bank_last4, result.bank_country) == ("pm_sepa", "sepa_debit", "3000", "DE")


def test_real_stripe_saves_a_bank_account_with_a_confirmed_setup_intent_and_its_mandate():
    class Answers(FakeHTTPClient):
        def request(self, method, url, headers, post_data=None, *, _usage=None):
            self.body = (
                {"id": "seti_1", "object": "setup_intent", "status": "succeeded", "mandate": "mandate_9"}
                if "/setup_intents" in url
                else {"id": "mandate_9", "object": "mandate", "status": "active", "payment_method": "pm_1",
                      "payment_method_details": {"type": "sepa_debit", "sepa_debit": {"reference": "REF9"}}}
            )  # fmt: skip
            return super().request(method, url, headers, post_data, _usage=_usage)

    client = Answers()
    mandate = _gateway(client, live_api=True).setup_bank_mandate(
        customer="cus_1", payment_method="pm_1", acceptance=ACCEPTANCE, idempotency_key="k"
    )
    setup = sent(client)[0]
    assert setup["confirm"] == ["true"] and setup["payment_method_types[0]"] == ["sepa_debit"]
    assert setup["mandate_data[customer_acceptance][type]"] == ["online"]
    assert (mandate.id, mandate.status, mandate.reference) == ("mandate_9", "active", "REF9")
