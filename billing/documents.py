"""Moved to billing/bills/documents.py."""

# TEMPORARY (issue 9 stage 1): old import paths for code not yet moved; removed at integration.
from .bills.documents import (  # noqa: F401
    bill_document_get,
    bill_document_html,
    bill_fingerprint,
    bill_pdf_ensure,
    bill_pdf_response,
    pdf_from_html,
)
