"""billing.access.PayerAccess, answered with AccountLink rows (registered in AccountsConfig.ready())."""

from __future__ import annotations

from .models import AccountLink


class AccountLinkAccess:
    def linked(self, *, user, account) -> bool:
        return AccountLink.objects.filter(user=user, customer_account=account).exists()

    def may_pay_with_saved_cards(self, *, user, account) -> bool:
        # Only links made through the lookup or a proven address (AccountLink.VERIFIED_VIA).
        return AccountLink.objects.filter(
            user=user, customer_account=account, created_via__in=AccountLink.VERIFIED_VIA
        ).exists()
