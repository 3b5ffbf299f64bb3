"""Billing data: billers, customer accounts, bills, payments and their append-only history, by sub-domain.

Money is integer minor units beside an ISO 4217 currency on the same row. Status changes go only through the services,
which check the allowed-transition maps defined on the models. `from billing.models import X` is the way to import a
model; the app label stays `billing`, so tables, migrations and permissions do not depend on these module names.
"""

from .bills import (
    BankReferenceScheme,
    Bill,
    Biller,
    BillingEvent,
    BillLine,
    CustomerAccount,
    ImportBatch,
    default_reminder_schedule,
    default_retry_schedule,
    default_tip_presets,
    normalize_postal_code,
)
from .payments import Dispute, Installation, Payment, PaymentAllocation, PaymentAttempt, Refund, WebhookEvent
from .methods import BankMandate, GatewayCustomer, PaymentMethod
from .enrolment import EnrollmentEvent, GuestEnrollmentLink, GuestEnrollmentRequest, PaperlessEnrollment
from .autopay import AutopayCharge, AutopayChargeEvent, AutopayChargeTry, AutopayEnrollment
from .banking import AccountCreditEntry, BankStatement, StatementLine
from .plans import Frequency, PaymentPlan, PaymentPlanEvent, PlanBill, PlanInstalment, PlanRules, RemainderOn

__all__ = [
    "AccountCreditEntry",
    "BankStatement",
    "AutopayCharge",
    "AutopayChargeEvent",
    "AutopayChargeTry",
    "AutopayEnrollment",
    "BankMandate",
    "BankReferenceScheme",
    "Bill",
    "BillLine",
    "Biller",
    "BillingEvent",
    "CustomerAccount",
    "Dispute",
    "Frequency",
    "EnrollmentEvent",
    "GatewayCustomer",
    "GuestEnrollmentLink",
    "GuestEnrollmentRequest",
    "ImportBatch",
    "Installation",
    "PaperlessEnrollment",
    "Payment",
    "PaymentAllocation",
    "PaymentAttempt",
    "PaymentMethod",
    "PaymentPlan",
    "PaymentPlanEvent",
    "PlanBill",
    "PlanInstalment",
    "PlanRules",
    "Refund",
    "RemainderOn",
    "StatementLine",
    "WebhookEvent",
    "default_reminder_schedule",
    "default_retry_schedule",
    "default_tip_presets",
    "normalize_postal_code",
]
