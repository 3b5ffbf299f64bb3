"""scripts/localstripe_server.py: localstripe's cards behave like Stripe's test cards (issue 10, item 3), and with
--state-file its objects survive a restart (item 2). Driven through the real stripe SDK and our gateway module."""

import pytest
import stripe

from billing.payments.gateway import DeclineClass, GatewayUnavailable, PaymentDeclined, get_gateway
from tests import stripe_support
from tests.billing import conftest as billing_fixtures

localstripe = billing_fixtures.localstripe
stripe_settings = billing_fixtures.stripe_settings


def sdk(base_url: str) -> stripe.StripeClient:
    return stripe.StripeClient(stripe_support.SECRET_KEY, base_addresses={"api": base_url}, max_network_retries=0)


def card(base_url: str, number: str) -> str:
    """A PaymentMethod from a number as the payer typed it, as stripe.js would create it."""
    params = {"type": "card", "card": {"number": number, "exp_month": 12, "exp_year": 2034, "cvc": "123"}}
    return sdk(base_url).v1.payment_methods.create(params=params).id


def pay(base_url: str, payment_method: str, amount: int = 4200):
    """Create, then confirm with the card (our gateway's two calls)."""
    gateway = get_gateway()
    intent = gateway.create_payment_intent(amount=amount, currency="usd", idempotency_key=f"t-{payment_method}")
    return gateway.confirm_payment_intent(intent.id, idempotency_key=f"t-{payment_method}:c", payment_method=payment_method)


@pytest.mark.parametrize("typed", ["4242 4242 4242 4242", "4242-4242-4242-4242", "4242424242424242"])
def test_a_card_number_typed_with_spaces_pays(stripe_settings, localstripe, typed):
    paid = pay(localstripe, card(localstripe, typed))
    assert paid.succeeded and get_gateway().retrieve_payment_intent(paid.id).card_last4 == "4242"


def test_a_card_token_typed_with_spaces_works(stripe_settings, localstripe):
    """The stand-in stripe.js's createToken (what the pay page uses) posts the number as typed."""
    token = sdk(localstripe).v1.tokens.create(
        params={"card": {"number": "4242 4242 4242 4242", "exp_month": 12, "exp_year": 2034, "cvc": "123"}}
    )
    assert token.card.last4 == "4242"
    assert pay(localstripe, token.card.id).succeeded


@pytest.mark.parametrize(
    ("number", "code", "decline_code", "decline_class", "words"),
    [
        ("4000000000000002", "card_declined", "generic_decline", DeclineClass.SOFT, "was declined"),
        ("4000000000009995", "card_declined", "insufficient_funds", DeclineClass.SOFT, "insufficient funds"),
        ("4000000000000069", "expired_card", "expired_card", DeclineClass.HARD, "has expired"),
    ],
)
def test_stripes_decline_cards_decline_when_charged(
    stripe_settings, localstripe, number, code, decline_code, decline_class, words
):
    with pytest.raises(PaymentDeclined) as declined:
        pay(localstripe, card(localstripe, number))
    error = declined.value
    assert (error.code, error.decline_code, error.decline_class) == (code, decline_code, decline_class)
    assert words in str(error.payer_message)
    # The intent keeps the reason, as Stripe's last_payment_error does.
    intent = sdk(localstripe).v1.payment_intents.retrieve(error.payment_intent_id)
    assert intent.status == "requires_payment_method"
    assert (intent.last_payment_error.code, intent.last_payment_error.decline_code) == (code, decline_code)
    after = get_gateway().retrieve_payment_intent(error.payment_intent_id)
    assert (after.error_code, after.decline_code) == (code, decline_code)


def test_localstripes_own_decline_card_still_declines(stripe_settings, localstripe):
    with pytest.raises(PaymentDeclined) as declined:
        pay(localstripe, card(localstripe, "4000000000000341"))
    assert declined.value.code == "card_declined"


def test_with_a_state_file_a_restart_keeps_every_object(tmp_path, settings):
    state = tmp_path / "localstripe.pickle"
    first = stripe_support.LocalstripeProcess(extra_args=("--state-file", str(state)))
    url = first.start()
    try:
        settings.STRIPE_API_BASE, settings.STRIPE_LIVE_API = url, False
        settings.STRIPE_SECRET_KEY, settings.STRIPE_MAX_NETWORK_RETRIES = stripe_support.SECRET_KEY, 0
        paid = pay(url, card(url, "4242424242424242"))
    finally:
        first.stop()
    assert state.exists()

    second = stripe_support.LocalstripeProcess(extra_args=("--state-file", str(state)))
    url = second.start()
    try:
        settings.STRIPE_API_BASE = url
        again = get_gateway().retrieve_payment_intent(paid.id)
        assert again.succeeded and (again.amount, again.card_last4) == (paid.amount, "4242")
    finally:
        second.stop()

    # Without the file, a start is empty, as before.
    third = stripe_support.LocalstripeProcess()
    url = third.start()
    try:
        settings.STRIPE_API_BASE = url
        with pytest.raises(GatewayUnavailable) as missing:
            get_gateway().retrieve_payment_intent(paid.id)
        assert missing.value.http_status == 404
    finally:
        third.stop()
