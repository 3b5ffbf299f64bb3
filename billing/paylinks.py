"""Moved to billing/bills/paylinks.py."""

# TEMPORARY (issue 9 stage 1): old import paths for code not yet moved; removed at integration.
from .bills.paylinks import (  # noqa: F401
    SALT,
    PayLinkBillVoid,
    PayLinkError,
    PayLinkExpired,
    PayLinkTampered,
    bill_from_pay_token,
    bill_pay_url,
    biller_today,
    pay_token,
)
