# TEMPORARY (issue 9 stage 1): old import paths for code not yet moved; removed at integration.
from billing.payments.lookup import (  # noqa: F401
    ACCOUNT_FAILURE_LIMIT,
    GRANT_SECONDS,
    GRANT_SESSION_KEY,
    IP_ATTEMPT_LIMIT,
    LookupFactor,
    LookupFailed,
    LookupLocked,
    account_lookup,
    grant_store,
    granted_account_id,
)
