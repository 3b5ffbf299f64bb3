import os

import pytest

from tests.factories import BillerFactory, CustomerAccountFactory

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


@pytest.fixture(autouse=True)
def default_language():
    """Each test starts in the default language. The test client runs LocaleMiddleware in the test's own thread,
    and it leaves the request's language active afterwards; without this, one Spanish request makes later tests
    see Spanish messages."""
    from django.conf import settings
    from django.utils import translation

    translation.activate(settings.LANGUAGE_CODE)
    yield
    translation.deactivate()


@pytest.fixture(autouse=True)
def empty_cache():
    """Each test starts with an empty cache. Rolled-back rows give their primary keys to the next test's rows
    (SQLite), so a figure cached under "biller 1" by one test must not answer for another test's biller 1."""
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def biller(db):
    return BillerFactory()


@pytest.fixture
def account(biller):
    return CustomerAccountFactory(biller=biller)


@pytest.fixture
def staff_user(db, django_user_model):
    return django_user_model.objects.create_user(email="clerk@example.com", password="pw-Staff-123", is_staff=True)


@pytest.fixture
def require_postgres(db):
    """For tests that only mean something on PostgreSQL (row locks, concurrent writers).

    Outside CI, a SQLite run skips them with the reason. In CI they fail: CI must prove them on PostgreSQL."""
    from django.db import connection

    if connection.vendor != "postgresql":
        message = "needs PostgreSQL: set DATABASE_URL=postgres://… (CI does)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture
def admin_client(client, admin_user):
    """pytest-django's admin_client, signed in the way staff must be: a TOTP authenticator, passed this session."""
    from tests.staff_support import staff_login

    return staff_login(client, admin_user)
