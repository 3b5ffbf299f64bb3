"""The payment core's reactions to billing's signals (connected in BillingConfig.ready)."""

from __future__ import annotations

from billing.models import CustomerAccount

from .credit import account_credit_apply


def credit_apply_on_bills_issued(sender, *, account_ids: list[int], **kwargs) -> None:
    """New bills on accounts that hold credit: the credit pays them (after commit; each account in its own
    transaction, so one account's failure leaves the others paid)."""
    holding = CustomerAccount.objects.filter(pk__in=account_ids, credit_balance__gt=0).values_list("pk", flat=True)
    for account_id in holding.order_by("pk"):
        account_credit_apply(account_id=account_id)
