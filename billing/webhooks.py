# TEMPORARY (issue 9 stage 1): old import paths for code not yet moved; removed at integration.
from billing.payments.webhooks import stripe_webhook  # noqa: F401
