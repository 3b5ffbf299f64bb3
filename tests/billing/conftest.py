import os

import pytest

from tests import stripe_support


@pytest.fixture(scope="session")
def localstripe():
    """Base URL of a running localstripe: LOCALSTRIPE_URL when CI provides one, else a child process on a free
    loopback port, stopped at the end of the session."""
    url = os.environ.get("LOCALSTRIPE_URL", "").rstrip("/")
    if url:
        stripe_support.wait_until_ready(url, api_key=stripe_support.SECRET_KEY)
        yield url
        return
    process = stripe_support.LocalstripeProcess()
    try:
        yield process.start()
    finally:
        process.stop()


@pytest.fixture
def stripe_settings(localstripe, settings):
    """Point the gateway at localstripe, emptied before the test. Yields pytest-django's `settings`."""
    stripe_support.flush(localstripe)
    settings.STRIPE_API_BASE = localstripe
    settings.STRIPE_LIVE_API = False
    settings.STRIPE_SECRET_KEY = stripe_support.SECRET_KEY
    settings.STRIPE_PUBLISHABLE_KEY = stripe_support.PUBLISHABLE_KEY
    settings.STRIPE_WEBHOOK_SECRET = stripe_support.WEBHOOK_SECRET
    settings.STRIPE_MAX_NETWORK_RETRIES = 0  # an unsupported call would otherwise retry for 1.5 s
    settings.STRIPE_JS_URL = f"{localstripe}/js.stripe.com/v3/"
    yield settings


@pytest.fixture
def webhook_receiver(localstripe, stripe_settings):
    """Records localstripe's signed webhook deliveries. Registered under one id, so each test replaces the last."""
    receiver = stripe_support.WebhookReceiver().start()
    stripe_support.register_webhook(
        localstripe, url=receiver.url, secret=stripe_support.WEBHOOK_SECRET, webhook_id="tests"
    )
    yield receiver
    receiver.stop()


@pytest.fixture
def user(django_user_model):
    """A payer's login with a verified address (tests/billing/cards_support.py make_user)."""
    from tests.billing.cards_support import make_user

    return make_user(django_user_model)
