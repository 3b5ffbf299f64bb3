"""Who may act for a customer account: asked by billing, answered by the accounts app (dependency inversion, so
billing never imports accounts). accounts/access.py implements PayerAccess with its AccountLink rows and registers it
in AccountsConfig.ready(); billing calls payer_access()."""

from __future__ import annotations

from typing import Protocol

from django.core.exceptions import ImproperlyConfigured


class PayerAccess(Protocol):
    def linked(self, *, user, account) -> bool:
        """Whether the login linked this customer account (any way)."""

    def may_pay_with_saved_cards(self, *, user, account) -> bool:
        """Whether the login's saved cards may pay this account: it reached the account through the protected
        lookup or a link whose address it proved, never a link that may have come from a forwarded e-mail."""


_registered: PayerAccess | None = None


def payer_access_set(access: PayerAccess | None) -> None:
    global _registered
    _registered = access


def payer_access() -> PayerAccess:
    if _registered is None:
        raise ImproperlyConfigured(
            "No payer access is registered: billing.access.payer_access_set() is called by the accounts app "
            "(AccountsConfig.ready()); is 'accounts' in INSTALLED_APPS?"
        )
    return _registered
