import pytest
from allauth.account.models import EmailAddress

PASSWORD = "A-payer-Passw0rd!"


@pytest.fixture
def make_payer(db, django_user_model):
    def make(email="payer@example.com", *, verified=True):
        user = django_user_model.objects.create_user(email=email, password=PASSWORD)
        EmailAddress.objects.create(user=user, email=email, verified=verified, primary=True)
        return user

    return make


@pytest.fixture
def payer(make_payer):
    return make_payer()


@pytest.fixture
def payer_client(client, payer):
    client.force_login(payer)
    return client


@pytest.fixture(autouse=True)
def _fresh_rate_limits():
    """The lookup's counters live in the cache (LocMemCache in tests), which outlives a test."""
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()
