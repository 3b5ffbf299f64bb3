"""Moved to billing/bills/selectors.py."""

# TEMPORARY (issue 9 stage 1): old import paths for code not yet moved; removed at integration.
from .bills.selectors import account_balance, biller_for_site  # noqa: F401
