"""Bills' reactions to model changes: a saved or deleted biller drops the cached `biller_for_site` (connected in
BillingConfig.ready)."""

from django.db import transaction

from .selectors import biller_cache_forget


def biller_cache_forget_on_change(sender, **kwargs) -> None:
    # Now and again after commit: a page served between the save and the commit would cache the old row again.
    biller_cache_forget()
    transaction.on_commit(biller_cache_forget)
