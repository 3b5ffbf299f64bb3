"""billing.access: billing asks the accounts app who may pay for an account; without a registration it says so."""

import pytest
from django.core.exceptions import ImproperlyConfigured

from accounts.access import AccountLinkAccess
from billing import access


def test_accounts_registers_the_payer_access():
    assert isinstance(access.payer_access(), AccountLinkAccess)


def test_a_missing_registration_is_a_clear_configuration_error(monkeypatch):
    monkeypatch.setattr(access, "_registered", None)
    with pytest.raises(ImproperlyConfigured, match="AccountsConfig.ready"):
        access.payer_access()
