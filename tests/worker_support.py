"""Shared by the tests that run a real Celery worker process (notifications sending, autopay kill test)."""

import pytest

from tests.conftest import IN_CI


def unavailable(reason: str):
    """A real server the test needs is missing: fail in CI, skip with the reason elsewhere."""
    if IN_CI:
        pytest.fail(reason)
    pytest.skip(reason)


def database_url(settings_dict) -> str:
    """The test database as a URL, so a worker process (another program) opens the same database."""
    user = settings_dict.get("USER") or ""
    password = settings_dict.get("PASSWORD") or ""
    auth = f"{user}:{password}@" if password else (f"{user}@" if user else "")
    host = settings_dict.get("HOST") or "127.0.0.1"
    port = settings_dict.get("PORT") or 5432
    return f"postgres://{auth}{host}:{port}/{settings_dict['NAME']}"
