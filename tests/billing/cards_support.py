"""Helpers for tests that need a login with saved cards (localstripe), a linked account or a guest card payment."""

import re

import stripe
from allauth.account.models import EmailAddress
from django.conf import settings
from django.utils import timezone

from accounts.models import AccountLink
from accounts.services import account_link_grant
from billing.autopay.enrolment import autopay_enroll
from billing.methods.services import payment_method_save_from_setup, payment_method_setup_start
from billing.models import AutopayEnrollment, Payment, PaymentMethod
from billing.payments.core import confirmation_number_new
from billing.payments.gateway import get_gateway
from tests import stripe_support
from tests.factories import make_bill


CONSENT = "I agree (as shown in the test)."


def make_user(django_user_model, email="payer@example.com"):
    user = django_user_model.objects.create_user(email=email, password="A-payer-Passw0rd!")
    EmailAddress.objects.create(user=user, email=email, verified=True, primary=True)
    return user


def _stripe():
    return stripe.StripeClient(
        stripe_support.SECRET_KEY, base_addresses={"api": settings.STRIPE_API_BASE}, max_network_retries=0
    )


def confirm_setup_in_browser_stand_in(client_secret: str, number: str = "4242424242424242", exp_year: int = 2034):
    """What stripe.confirmCardSetup does in the browser: confirm the SetupIntent with the card. Returns its id."""
    setup_id = client_secret.split("_secret_")[0]
    card = {"number": number, "exp_month": "12", "exp_year": str(exp_year), "cvc": "123"}
    _stripe().v1.setup_intents.confirm(setup_id, params={"payment_method_data": {"type": "card", "card": card}})
    return setup_id


def save_card(user, number="4242424242424242", exp_year=2034) -> PaymentMethod:
    secret = payment_method_setup_start(user=user)
    setup_id = confirm_setup_in_browser_stand_in(secret, number, exp_year)
    return payment_method_save_from_setup(user=user, setup_intent_id=setup_id, ip="203.0.113.5")


def gateway_pm(method: PaymentMethod) -> dict:
    return _stripe().v1.payment_methods.retrieve(method.gateway_payment_method_id).to_dict()


def linked(user, account):
    account_link_grant(user=user, account=account, via=AccountLink.Via.LOOKUP)
    return account


def enrol(account, user, method, **kwargs):
    values = {"charge_rule": AutopayEnrollment.ChargeRule.ON_DUE_DATE, "consent_text": CONSENT, "ip": "192.0.2.1"}
    return autopay_enroll(account=account, user=user, payment_method=method, **(values | kwargs))


def guest_card_payment(account, email="guest@example.com") -> Payment:
    """A guest payment that really went through localstripe with a card."""
    make_bill(account, amounts=(5000,))
    gateway = get_gateway()
    intent = gateway.create_payment_intent(amount=5000, currency="usd", idempotency_key=f"test-{account.pk}")
    intent = gateway.confirm_payment_intent(
        intent.id, idempotency_key=f"test-{account.pk}:c", payment_method="pm_card_visa"
    )
    assert intent.succeeded
    return Payment.objects.create(
        biller=account.biller, account=account, confirmation_number=confirmation_number_new(),
        channel=Payment.Channel.GUEST_WEB, method=Payment.Method.CARD, status=Payment.Status.SUCCEEDED,
        currency="USD", amount=5000, payer_email=email, gateway_payment_id=intent.id,
        payment_method_summary="Visa •••• 4242", received_at=timezone.now(), save_card_requested=True,
    )  # fmt: skip


def link_token(body: str, kind: str) -> str:
    return re.search(rf"/me/enrol/{kind}/([^/\s]+)/", body).group(1)
