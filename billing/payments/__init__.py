"""Payments: the gateway interface and its Stripe module, the payment core (attempts, recording a gateway result,
applying money to bills), online payments, refunds, the janitor, offline payments, disputes, receipts, the guest
lookup and the webhook endpoint. Import from the modules, e.g. `billing.payments.online`."""

# TEMPORARY (issue 9 stage 1): old import paths for code not yet moved; removed at integration.
# Old name -> (module, name there). Looked up on first use (PEP 562), not imported here: billing.autopay and
# billing.services, which these modules import, themselves import from billing.payments, so eager re-exports would
# be circular.
_OLD_NAMES = {
    "payment_quote": ("online", "payment_quote"),
    "payment_start": ("online", "payment_start"),
    "payment_confirm": ("online", "payment_confirm"),
    "payment_record_result": ("core", "payment_record_result"),
    "payments_reconcile": ("reconcile", "payments_reconcile"),
    "refund_create": ("refunds", "refund_create"),
    "refund_settle": ("refunds", "refund_settle"),
    "refunds_reconcile": ("refunds", "refunds_reconcile"),
    "_refund_row": ("refunds", "_refund_row"),
    "_CARD_BRANDS": ("attempts", "CARD_BRANDS"),
    "_gateway_call": ("attempts", "payment_gateway_call"),
    "_intent_outcome": ("attempts", "intent_outcome"),
    "_payment_move": ("attempts", "payment_status_move"),
    "_retrieve": ("attempts", "payment_intent_retrieve"),
    "_payment_sync": ("core", "payment_sync"),
}


def __getattr__(name):
    if name in _OLD_NAMES:
        import importlib

        module, attribute = _OLD_NAMES[name]
        return getattr(importlib.import_module(f"{__name__}.{module}"), attribute)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
