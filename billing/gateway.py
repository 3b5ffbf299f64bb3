# TEMPORARY (issue 9 stage 1): old import paths for code not yet moved; removed at integration.
from billing.payments.gateway import (  # noqa: F401
    DeclineClass,
    GatewayError,
    GatewayUnavailable,
    IntentResult,
    IntentStatus,
    InvalidWebhook,
    PaymentDeclined,
    RefundResult,
    decline_classify,
    get_gateway,
)
from billing.payments.stripe_gateway import StripeGateway, _translate  # noqa: F401
