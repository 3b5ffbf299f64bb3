# TEMPORARY (issue 9 stage 1): old import paths for code not yet moved; removed at integration.
from billing.payments.disputes import DISPUTE_EVENTS, dispute_notice_send, dispute_record  # noqa: F401
