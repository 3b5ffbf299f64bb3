# TEMPORARY (issue 9 stage 1): old import paths for code not yet moved; removed at integration.
from billing.payments.receipts import (  # noqa: F401
    guest_enrollment_record,
    payment_after_success,
    receipt_context,
    receipt_pdf,
    receipt_send,
    receipt_token,
    receipt_token_valid,
    receipt_url,
    session_may_see,
    session_remember,
)
