"""TEMPORARY (issue 9 stage 1): the old `billing.services` path, for code not yet moved; removed at integration.
Bill services live in billing/bills/services.py, event_record in billing/events.py, payment services in
billing/payments/."""

from .bills.services import (  # noqa: F401
    LineInput,
    bill_create,
    bill_issue,
    bill_mark_uncollectible,
    bill_recalculate,
    bill_void,
    customer_account_create,
)
from .bills.services import bill_status_move as _bill_move  # noqa: F401 - the old name
from .errors import ApplicationError  # noqa: F401
from .events import event_record  # noqa: F401

# Looked up on first use (PEP 562): billing.payments imports this module, so importing it here would be circular.
_MOVED_TO_PAYMENTS = {
    "confirmation_number_new": "billing.payments.core",
    "payment_apply": "billing.payments.allocations",
    "payment_record_offline": "billing.payments.offline",
}


def __getattr__(name):
    if name in _MOVED_TO_PAYMENTS:
        import importlib

        return getattr(importlib.import_module(_MOVED_TO_PAYMENTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
