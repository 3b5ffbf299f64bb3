"""Bills' reactions to model changes: a saved or deleted biller (or its plan rules) drops the cached biller
(connected in BillingConfig.ready)."""

from django.db import transaction

from ..models import Biller
from .selectors import biller_cache_forget


def biller_cache_forget_on_change(sender, instance, **kwargs) -> None:
    """A Biller, or a biller's PlanRules, was saved or deleted."""
    biller_id = instance.pk if isinstance(instance, Biller) else instance.biller_id

    def forget() -> None:
        biller_cache_forget(biller_id)

    # Now and again after commit: a page served between the save and the commit would cache the old row again.
    forget()
    transaction.on_commit(forget)
