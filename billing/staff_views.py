"""Moved to billing/bills/views.py."""

# TEMPORARY (issue 9 stage 1): old import paths for code not yet moved; removed at integration.
from .bills.views import bill_pdf, bill_print  # noqa: F401
