"""Moved to billing/bills/imports.py (writing, batches) and billing/bills/csv_rows.py (reading the CSV)."""

# TEMPORARY (issue 9 stage 1): old import paths for code not yet moved; removed at integration.
from .bills.csv_rows import ImportFileError  # noqa: F401
from .bills.imports import bill_import_submit  # noqa: F401
