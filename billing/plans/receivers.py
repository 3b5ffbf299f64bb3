"""Plans' receivers on billing.signals, connected in BillingConfig.ready()."""

from __future__ import annotations

from .services import plans_progress_for_bills


def plans_progress_on_bill_paid(sender, *, bills, **kwargs) -> int:
    """bill_paid (sent with every payment applied, paid in full or not): bring the plans covering these bills up to
    date, so money arriving any way counts toward the next instalments. Under the sender's bill locks."""
    return plans_progress_for_bills(bills=bills)
