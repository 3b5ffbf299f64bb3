"""Autopay's receivers on billing.signals, connected in BillingConfig.ready()."""

from __future__ import annotations

from .charges import autopay_stop_for_paid_bills
from .dunning import autopay_debit_returned
from .notices import autopay_notice_context


def autopay_stop_on_bill_paid(sender, *, bills, **kwargs) -> int:
    """bill_paid: cancel the waiting autopay charges of the bills now paid. Synchronous, under the sender's bill
    locks and in its transaction; an error here rolls the payment back."""
    return autopay_stop_for_paid_bills(bills=bills)


def autopay_notice_context_give(sender, *, notification, **kwargs) -> dict:
    """notice_context_wanted (asked by notifications.render): the autopay facts for an autopay notice."""
    return autopay_notice_context(notification)


def autopay_dunning_on_bank_debit_returned(sender, *, payment_id: int, code: str, **kwargs) -> None:
    """bank_debit_returned: an autopay debit came back; reopen its charge row by the decline class. Synchronous, in
    the recording transaction (an error rolls the return back, and the webhook is retried)."""
    autopay_debit_returned(payment_id=payment_id, code=code)
