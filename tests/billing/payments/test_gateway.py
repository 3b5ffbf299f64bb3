"""The Stripe boundary (billing/payments/gateway.py and stripe_gateway.py).

Integration tests run the real stripe SDK against localstripe (fixtures in conftest.py). What localstripe cannot
produce (issuer decline codes, off-session authentication_required, transport failures, modern response shapes) is fed
to the gateway as Stripe-shaped responses and errors built with the SDK's own classes.
"""

import json
import logging
import socket
import time

import pytest
import stripe

from billing.payments.gateway import (
    DeclineClass,
    GatewayUnavailable,
    InvalidWebhook,
    PaymentDeclined,
    decline_classify,
    get_gateway,
)
from billing.payments.stripe_gateway import StripeGateway
from tests import stripe_support

# --------------------------------------------------------------------------------------------------------------------
# Against localstripe


@pytest.fixture
def gateway(stripe_settings):
    return get_gateway()


def _localstripe_card(base_url: str, number: str) -> str:
    """A PaymentMethod from a raw test number, as stripe.js would create it in the browser."""
    client = stripe.StripeClient(stripe_support.SECRET_KEY, base_addresses={"api": base_url}, max_network_retries=0)
    pm = client.v1.payment_methods.create(
        params={"type": "card", "card": {"number": number, "exp_month": 12, "exp_year": 2034, "cvc": "123"}}
    )
    return pm.id


def test_create_customer(gateway):
    customer = gateway.create_customer(email="payer@example.com", name="Pat Payer", idempotency_key="customer-1")

    assert customer.id.startswith("cus_")
    assert customer.email == "payer@example.com"


def test_visa_payment_succeeds_once(gateway, localstripe):
    created = gateway.create_payment_intent(
        amount=12_345, currency="USD", idempotency_key="attempt-1", metadata={"attempt": "1"}
    )
    assert created.status == "requires_payment_method"
    assert created.client_secret.startswith(created.id)

    paid = gateway.confirm_payment_intent(
        created.id, idempotency_key="attempt-1:confirm", payment_method="pm_card_visa"
    )

    assert paid.succeeded
    assert (paid.amount, paid.currency) == (12_345, "usd")
    assert paid.charge_id.startswith("ch_")
    assert paid.payment_method_id.startswith("pm_") and paid.payment_method_id != "pm_card_visa"
    assert paid.metadata == {"attempt": "1"}
    fetched = gateway.retrieve_payment_intent(paid.id)
    assert fetched.succeeded and fetched.card_last4 == "4242" and fetched.card_brand == "visa"
    assert [pi["id"] for pi in stripe_support.payment_intents(localstripe)] == [paid.id]


def test_real_stripe_only_parameters_are_not_sent_to_localstripe(gateway):
    # localstripe answers "400 Unexpected description" etc. if any of these reach it.
    intent = gateway.create_payment_intent(
        amount=500,
        currency="usd",
        idempotency_key="attempt-2",
        payment_method="pm_card_visa",
        confirm=True,
        description="Bill 2026-001",
        receipt_email="payer@example.com",
        setup_future_usage="off_session",
    )

    assert intent.succeeded


def test_off_session_charge_declined_at_charge_time(gateway, localstripe):
    customer = gateway.create_customer(email="payer@example.com", idempotency_key="customer-2")
    card = gateway.attach_payment_method("pm_card_chargeCustomerFail", customer=customer.id)
    assert card.customer_id == customer.id

    with pytest.raises(PaymentDeclined) as declined:
        gateway.create_payment_intent(
            amount=7_000,
            currency="usd",
            idempotency_key="autopay-1",
            customer=customer.id,
            payment_method=card.id,
            off_session=True,
        )

    error = declined.value
    assert error.code == "card_declined" and error.decline_code is None  # localstripe sends no decline_code
    assert error.decline_class == DeclineClass.SOFT
    assert error.charge_id.startswith("ch_")
    # Created, then confirmed in a second call: the decline still names the intent it belongs to.
    assert error.payment_intent_id.startswith("pi_")
    after = gateway.retrieve_payment_intent(error.payment_intent_id)
    assert after.status == "requires_payment_method"
    assert after.error_code == "card_declined"
    assert len(stripe_support.payment_intents(localstripe)) == 1


def test_three_d_secure_card_requires_action_even_off_session(gateway, localstripe):
    customer = gateway.create_customer(email="payer@example.com", idempotency_key="customer-3")
    card = gateway.attach_payment_method(_localstripe_card(localstripe, "4000002500003155"), customer=customer.id)

    intent = gateway.create_payment_intent(
        amount=2_500, currency="usd", idempotency_key="autopay-2", customer=customer.id,
        payment_method=card.id, off_session=True,
    )  # fmt: skip

    assert intent.requires_action
    assert intent.charge_id is None
    canceled = gateway.cancel_payment_intent(intent.id, idempotency_key="autopay-2:cancel")
    assert canceled.status == "canceled"


def test_partial_refund(gateway):
    paid = gateway.create_payment_intent(
        amount=5_000, currency="usd", idempotency_key="attempt-3", payment_method="pm_card_visa", confirm=True
    )

    refund = gateway.create_refund(payment_intent=paid.id, amount=1_500, idempotency_key="refund-1")

    assert refund.id.startswith("re_")
    assert (refund.status, refund.amount, refund.currency) == ("succeeded", 1_500, "usd")
    assert refund.payment_intent_id == paid.id
    assert refund.charge_id == paid.charge_id


def test_setup_intent_and_card_attach_detach(gateway):
    customer = gateway.create_customer(email="payer@example.com", idempotency_key="customer-4")

    setup = gateway.create_setup_intent(customer=customer.id, idempotency_key="enroll-1")
    assert setup.status == "requires_payment_method"
    assert setup.client_secret.startswith(setup.id) and setup.customer_id == customer.id

    card = gateway.attach_payment_method("pm_card_visa", customer=customer.id)
    assert (card.customer_id, card.card_last4, card.exp_year) == (customer.id, "4242", 2030)
    assert gateway.detach_payment_method(card.id).customer_id is None


def test_card_declined_when_attached(gateway):
    customer = gateway.create_customer(email="payer@example.com", idempotency_key="customer-5")

    with pytest.raises(PaymentDeclined) as declined:
        gateway.attach_payment_method("pm_card_visa_chargeDeclined", customer=customer.id)

    assert declined.value.code == "card_declined"


def test_unknown_intent_is_not_retryable(gateway):
    with pytest.raises(GatewayUnavailable) as failure:
        gateway.retrieve_payment_intent("pi_doesnotexist")

    assert failure.value.http_status == 404
    assert failure.value.retryable is False


def test_unreachable_gateway_is_retryable(stripe_settings):
    with socket.socket() as probe:  # a loopback port with nothing listening
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    stripe_settings.STRIPE_API_BASE = f"http://127.0.0.1:{closed_port}"

    with pytest.raises(GatewayUnavailable) as failure:
        get_gateway().create_customer(email="payer@example.com", idempotency_key="customer-6")

    assert failure.value.retryable is True


def test_signed_webhook_from_localstripe_is_accepted(gateway, webhook_receiver):
    paid = gateway.create_payment_intent(
        amount=900, currency="usd", idempotency_key="attempt-4", payment_method="pm_card_visa", confirm=True
    )

    delivery = webhook_receiver.wait_for("payment_intent.succeeded", object_id=paid.id)
    event = gateway.construct_webhook_event(delivery.body, delivery.signature)

    assert event.type == "payment_intent.succeeded"
    assert event.id.startswith("evt_")
    assert event.object_id == paid.id
    assert event.data["amount"] == 900


# --------------------------------------------------------------------------------------------------------------------
# Without a network: Stripe-shaped responses and errors through the real SDK


class FakeHTTPClient(stripe.HTTPClient):
    """Answers every request with one canned response, or raises `error` (an SDK exception) from the transport."""

    name = "fake"

    def __init__(self, *, status: int = 200, body: dict | None = None, error: Exception | None = None):
        super().__init__()
        self.status, self.body, self.error = status, body or {}, error
        self.requests: list[tuple[str, str, str]] = []

    def request(self, method, url, headers, post_data=None, *, _usage=None):
        self.requests.append((method, url, post_data or ""))
        if self.error is not None:
            raise self.error
        return json.dumps(self.body), self.status, {"request-id": "req_fake"}

    def close(self):
        pass


def _gateway(http_client, *, live_api=False, webhook_secret="whsec_unit"):
    return StripeGateway(
        api_key="sk_test_unit",
        api_base="https://api.stripe.com" if live_api else "http://127.0.0.1:9",
        live_api=live_api,
        webhook_secret=webhook_secret,
        max_network_retries=0,
        http_client=http_client,
    )


INTENT_NEW_SHAPE = {  # API 2022-11-15 and later: latest_charge is an id, no charges list
    "id": "pi_new",
    "object": "payment_intent",
    "status": "succeeded",
    "amount": 4200,
    "currency": "eur",
    "client_secret": "pi_new_secret_x",
    "customer": "cus_1",
    "payment_method": {"id": "pm_1", "object": "payment_method", "card": {"brand": "mastercard", "last4": "4444"}},
    "latest_charge": "ch_new",
    "last_payment_error": None,
    "metadata": {"attempt": "9"},
}
INTENT_OLD_SHAPE = {  # localstripe / before 2022-11-15: no latest_charge, charges.data embedded
    "id": "pi_old",
    "object": "payment_intent",
    "status": "requires_payment_method",
    "amount": 100,
    "currency": "usd",
    "payment_method": "pm_2",
    "charges": {"object": "list", "data": [{"id": "ch_old", "object": "charge", "payment_method": "pm_2"}]},
    "last_payment_error": {"code": "card_declined", "decline_code": "insufficient_funds", "message": "Declined."},
}


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (INTENT_NEW_SHAPE, ("succeeded", "ch_new", "pm_1", "4444", "cus_1", None, None)),
        (
            INTENT_OLD_SHAPE,
            ("requires_payment_method", "ch_old", "pm_2", None, None, "card_declined", "insufficient_funds"),
        ),
    ],
    ids=["latest_charge-id", "charges-list"],
)
def test_reads_both_response_shapes(body, expected):
    intent = _gateway(FakeHTTPClient(body=body)).retrieve_payment_intent(body["id"])

    assert (
        intent.status, intent.charge_id, intent.payment_method_id, intent.card_last4, intent.customer_id,
        intent.error_code, intent.decline_code,
    ) == expected  # fmt: skip


DECLINES = [
    # code, decline_code, class, words the payer sees
    ("card_declined", "stolen_card", DeclineClass.HARD, "use a different card"),
    ("card_declined", "lost_card", DeclineClass.HARD, "use a different card"),
    ("card_declined", "fraudulent", DeclineClass.HARD, "use a different card"),
    ("card_declined", "do_not_honor", DeclineClass.HARD, "use a different card"),
    ("expired_card", None, DeclineClass.HARD, "expired"),
    ("incorrect_cvc", None, DeclineClass.HARD, "security code"),
    ("incorrect_number", None, DeclineClass.HARD, "card number"),
    ("card_declined", "insufficient_funds", DeclineClass.SOFT, "insufficient funds"),
    ("card_declined", "card_velocity_exceeded", DeclineClass.SOFT, "limit"),
    ("card_declined", "try_again_later", DeclineClass.SOFT, "try again"),
    ("processing_error", None, DeclineClass.SOFT, "try again"),
    ("card_declined", "generic_decline", DeclineClass.SOFT, "declined"),
    ("card_declined", None, DeclineClass.SOFT, "declined"),
    ("authentication_required", "authentication_required", DeclineClass.AUTHENTICATION, "confirm this payment"),
    ("card_declined", "some_new_issuer_code", DeclineClass.SOFT, "declined"),
]


@pytest.mark.parametrize(("code", "decline_code", "decline_class", "words"), DECLINES)
def test_card_error_becomes_payment_declined(code, decline_code, decline_class, words):
    sdk_error = stripe.CardError(
        "Stripe's own message",
        None,
        code,
        http_status=402,
        json_body={"error": {"type": "card_error", "code": code, "decline_code": decline_code,
                             "message": "Stripe's own message", "payment_intent": {"id": "pi_declined"}}},
    )  # fmt: skip

    with pytest.raises(PaymentDeclined) as declined:
        _gateway(FakeHTTPClient(error=sdk_error)).confirm_payment_intent("pi_declined", idempotency_key="k")

    error = declined.value
    assert (error.code, error.decline_code, error.decline_class) == (code, decline_code, decline_class)
    assert error.payment_intent_id == "pi_declined"
    assert words in str(error.payer_message).lower()
    assert "Stripe's own message" not in str(error.payer_message)
    assert "stolen" not in str(error.payer_message).lower() and "fraud" not in str(error.payer_message).lower()


def test_402_response_is_parsed_by_the_sdk_into_a_decline():
    body = {"error": {"type": "card_error", "code": "card_declined", "decline_code": "insufficient_funds",
                      "message": "Your card has insufficient funds.", "charge": "ch_x"}}  # fmt: skip

    with pytest.raises(PaymentDeclined) as declined:
        _gateway(FakeHTTPClient(status=402, body=body)).confirm_payment_intent("pi_x", idempotency_key="k")

    assert declined.value.decline_code == "insufficient_funds"
    assert declined.value.decline_class == DeclineClass.SOFT
    assert (declined.value.payment_intent_id, declined.value.charge_id) == ("pi_x", "ch_x")


@pytest.mark.parametrize(
    ("client", "retryable"),
    [
        (FakeHTTPClient(error=stripe.APIConnectionError("Network error: connection reset")), True),
        (FakeHTTPClient(status=500, body={"error": {"type": "api_error", "message": "boom"}}), True),
        (FakeHTTPClient(status=429, body={"error": {"type": "invalid_request_error", "code": "rate_limit"}}), True),
        (FakeHTTPClient(status=400, body={"error": {"type": "invalid_request_error", "message": "Unexpected"}}), False),
        (FakeHTTPClient(status=401, body={"error": {"type": "invalid_request_error", "message": "Bad key"}}), False),
    ],
    ids=["connection", "500", "429", "400", "401"],
)
def test_transport_and_api_errors_become_gateway_unavailable(client, retryable):
    with pytest.raises(GatewayUnavailable) as failure:
        _gateway(client).create_customer(email="payer@example.com", idempotency_key="k")

    assert failure.value.retryable is retryable


def _sent_params(client) -> str:
    return "&".join(post for _, _, post in client.requests)


def test_real_stripe_only_parameters_are_sent_only_to_real_stripe():
    for live_api in (False, True):
        client = FakeHTTPClient(body={**INTENT_NEW_SHAPE, "status": "requires_payment_method"})
        _gateway(client, live_api=live_api).create_payment_intent(
            amount=100, currency="usd", idempotency_key="k", description="Bill 7", receipt_email="p@example.com"
        )
        sent = _sent_params(client)
        for param in ("description=", "receipt_email=", "automatic_payment_methods"):
            assert (param in sent) is live_api, (param, live_api)


def test_off_session_is_sent_on_confirm_to_real_stripe_only():
    for live_api in (False, True):
        client = FakeHTTPClient(body=INTENT_NEW_SHAPE)
        _gateway(client, live_api=live_api).create_payment_intent(
            amount=100, currency="usd", idempotency_key="k", customer="cus_1", payment_method="pm_1", off_session=True
        )
        (create, _, create_body), (confirm, confirm_url, confirm_body) = client.requests
        assert confirm_url.endswith("/v1/payment_intents/pi_new/confirm")
        assert "off_session" not in create_body and "confirm=" not in create_body
        assert ("off_session=true" in confirm_body) is live_api


def test_card_data_and_client_secrets_are_not_logged(caplog):
    caplog.set_level(logging.DEBUG, logger="billing.payments.stripe_gateway")
    _gateway(FakeHTTPClient(body=INTENT_NEW_SHAPE)).create_payment_intent(
        amount=100, currency="usd", idempotency_key="k", payment_method="pm_1", confirm=True
    )

    assert "pi_new" in caplog.text
    assert "secret" not in caplog.text and "4444" not in caplog.text


def test_decline_classify_defaults_unknown_codes_to_soft():
    info = decline_classify("card_declined", "brand_new_code")  # falls back to the generic code's entry
    assert (info.code, info.decline_class, info.retryable) == ("card_declined", DeclineClass.SOFT, True)
    info = decline_classify("brand_new_error", "brand_new_code")
    assert (info.code, info.decline_class) == ("brand_new_code", DeclineClass.SOFT)
    assert "declined" in str(info.payer_message)
    assert decline_classify(None).decline_class == DeclineClass.SOFT
    assert decline_classify("card_declined", "pickup_card").is_hard


# --------------------------------------------------------------------------------------------------------------------
# Webhook signatures

PAYLOAD = json.dumps(
    {"id": "evt_1", "object": "event", "type": "payment_intent.succeeded", "created": 1, "livemode": False,
     "data": {"object": {"id": "pi_1", "object": "payment_intent", "amount": 100}}}
)  # fmt: skip


def test_webhook_with_valid_signature_is_accepted():
    header = stripe_support.sign_webhook_payload(PAYLOAD, "whsec_unit")

    event = _gateway(FakeHTTPClient()).construct_webhook_event(PAYLOAD.encode(), header)

    assert (event.id, event.type, event.object_id) == ("evt_1", "payment_intent.succeeded", "pi_1")
    assert event.data["amount"] == 100


@pytest.mark.parametrize(
    ("payload", "header"),
    [
        (PAYLOAD.replace('"amount": 100', '"amount": 1'), stripe_support.sign_webhook_payload(PAYLOAD, "whsec_unit")),
        (PAYLOAD, stripe_support.sign_webhook_payload(PAYLOAD, "whsec_someone_else")),
        (PAYLOAD, stripe_support.sign_webhook_payload(PAYLOAD, "whsec_unit", timestamp=int(time.time()) - 3600)),
        (PAYLOAD, None),
        ("not json", stripe_support.sign_webhook_payload("not json", "whsec_unit")),
    ],
    ids=["tampered", "wrong-secret", "replayed-old", "unsigned", "not-json"],
)
def test_webhook_that_does_not_verify_is_rejected(payload, header):
    with pytest.raises(InvalidWebhook):
        _gateway(FakeHTTPClient()).construct_webhook_event(payload, header)


def test_a_forked_process_gets_its_own_stripe_client():
    """A Celery prefork child (or a bench worker) must not share its parent's HTTP connections to Stripe: two processes
    reading one socket get each other's answers (one worker stored another's intent id)."""
    import os

    from billing.payments import stripe_gateway

    parent = stripe_gateway._stripe_client("sk_test_fork", "http://127.0.0.1:9", 0)
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: answer and leave at once
        shared = stripe_gateway._stripe_client("sk_test_fork", "http://127.0.0.1:9", 0) is parent
        os.write(write_end, b"shared" if shared else b"own")
        os._exit(0)
    os.waitpid(pid, 0)
    assert os.read(read_end, 16) == b"own"
    assert stripe_gateway._stripe_client("sk_test_fork", "http://127.0.0.1:9", 0) is parent  # the parent keeps its own
