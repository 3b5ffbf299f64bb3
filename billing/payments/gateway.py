"""The payment gateway interface: what the payment services need from a card gateway, the small frozen result
dataclasses it returns, and its two kinds of error: `PaymentDeclined` (the payer's problem: show `payer_message`, do
not retry the same card blindly) and `GatewayUnavailable` (ours: transport or API trouble; retry when `retryable`).

`get_gateway()` returns the configured implementation. The only one is `StripeGateway` in `stripe_gateway` (the only
module in the project that imports `stripe`); it is imported when first asked for, so reading these types never loads
the Stripe SDK.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from django.conf import settings
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

STRIPE_API_BASE = "https://api.stripe.com"


# --------------------------------------------------------------------------------------------------------------------
# Results


class IntentStatus(StrEnum):
    REQUIRES_PAYMENT_METHOD = "requires_payment_method"
    REQUIRES_CONFIRMATION = "requires_confirmation"
    REQUIRES_ACTION = "requires_action"
    PROCESSING = "processing"
    REQUIRES_CAPTURE = "requires_capture"
    CANCELED = "canceled"
    SUCCEEDED = "succeeded"


@dataclass(frozen=True)
class IntentResult:
    """A PaymentIntent as the portal needs it. `status` is one of `IntentStatus`."""

    id: str
    status: str
    amount: int
    currency: str
    client_secret: str | None = None
    payment_method_id: str | None = None
    customer_id: str | None = None
    charge_id: str | None = None
    card_brand: str | None = None
    card_last4: str | None = None
    error_code: str | None = None  # from last_payment_error, e.g. after a failed confirmation
    decline_code: str | None = None
    error_message: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    payment_method_type: str | None = None  # "card", "sepa_debit"
    mandate_id: str | None = None  # real Stripe's Mandate behind a bank debit

    @property
    def succeeded(self) -> bool:
        return self.status == IntentStatus.SUCCEEDED

    @property
    def requires_action(self) -> bool:
        return self.status == IntentStatus.REQUIRES_ACTION


@dataclass(frozen=True)
class SetupIntentResult:
    id: str
    status: str
    client_secret: str | None = None
    customer_id: str | None = None
    payment_method_id: str | None = None


@dataclass(frozen=True)
class CustomerResult:
    id: str
    email: str | None = None


@dataclass(frozen=True)
class PaymentMethodResult:
    id: str
    customer_id: str | None = None
    card_brand: str | None = None
    card_last4: str | None = None
    exp_month: int | None = None
    exp_year: int | None = None
    type: str = "card"
    bank_last4: str | None = None
    bank_country: str | None = None


@dataclass(frozen=True)
class BankAccountDetails:
    """A bank account to debit, as the payer typed it and our validation read it. `account_number` is the IBAN
    (SEPA) and never leaves the gateway call: it is not logged and not stored. ACH would add routing_number and
    account_type, and its own `kind` (docs/payments.md)."""

    kind: str  # a PaymentMethod.Kind of a bank, e.g. "sepa_debit"
    account_number: str
    holder_name: str
    holder_email: str

    def __repr__(self) -> str:  # never the whole account number, even in a traceback
        return f"BankAccountDetails(kind={self.kind!r}, account_number='…{self.account_number[-4:]}')"


@dataclass(frozen=True)
class MandateAcceptance:
    """What real Stripe wants as `mandate_data`: when and from where the payer accepted the mandate online."""

    accepted_at: int  # unix time
    ip: str
    user_agent: str

    def as_mandate_data(self) -> dict:
        return {
            "customer_acceptance": {
                "type": "online", "accepted_at": self.accepted_at,
                "online": {"ip_address": self.ip, "user_agent": self.user_agent},
            }
        }  # fmt: skip


@dataclass(frozen=True)
class MandateResult:
    id: str
    status: str  # Stripe's: active, inactive, pending
    reference: str = ""
    payment_method_id: str | None = None


@dataclass(frozen=True)
class RefundResult:
    id: str
    status: str
    amount: int
    currency: str
    payment_intent_id: str | None = None
    charge_id: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class WebhookEvent:
    id: str
    type: str
    object_id: str | None
    data: dict[str, Any]  # data.object as plain JSON-like data
    livemode: bool = False
    created: int | None = None
    api_version: str | None = None


# --------------------------------------------------------------------------------------------------------------------
# Errors and the decline table


class DeclineClass(StrEnum):
    HARD = "hard"  # this card will not work: ask for another one, never retry it automatically
    SOFT = "soft"  # may work later or on a second try
    AUTHENTICATION = "authentication"  # the payer must authenticate (3-D Secure) on-session


_GENERIC_DECLINE = _("Your card was declined. Please try again or use a different card.")
_HARD_DECLINE = _("Your card was declined. Please use a different card, or contact your card issuer.")
_TRY_LATER = _("Your card issuer could not be reached. Please try again in a few minutes.")
_AUTHENTICATE = _("Your bank needs you to confirm this payment. Please complete the verification step to continue.")

# Stripe recommends not telling the payer a card was reported lost, stolen or fraudulent: those get the plain message.
_DECLINE_TABLE: dict[str, tuple[DeclineClass, Promise]] = {
    # hard
    "stolen_card": (DeclineClass.HARD, _HARD_DECLINE),
    "lost_card": (DeclineClass.HARD, _HARD_DECLINE),
    "pickup_card": (DeclineClass.HARD, _HARD_DECLINE),
    "fraudulent": (DeclineClass.HARD, _HARD_DECLINE),
    "merchant_blacklist": (DeclineClass.HARD, _HARD_DECLINE),
    "security_violation": (DeclineClass.HARD, _HARD_DECLINE),
    "do_not_honor": (DeclineClass.HARD, _HARD_DECLINE),
    "restricted_card": (DeclineClass.HARD, _HARD_DECLINE),
    "revocation_of_authorization": (DeclineClass.HARD, _HARD_DECLINE),
    "revocation_of_all_authorizations": (DeclineClass.HARD, _HARD_DECLINE),
    "stop_payment_order": (DeclineClass.HARD, _HARD_DECLINE),
    "transaction_not_allowed": (DeclineClass.HARD, _HARD_DECLINE),
    "invalid_account": (DeclineClass.HARD, _("This card account is no longer valid. Please use a different card.")),
    "new_account_information_available": (
        DeclineClass.HARD,
        _("Your card details have changed. Please enter the new details or use a different card."),
    ),
    "card_not_supported": (
        DeclineClass.HARD,
        _("This card does not support this kind of payment. Please use another."),
    ),
    "currency_not_supported": (DeclineClass.HARD, _("This card cannot pay in this currency. Please use another card.")),
    "expired_card": (DeclineClass.HARD, _("Your card has expired. Please use a different card.")),
    "incorrect_number": (DeclineClass.HARD, _("The card number is not correct. Please check it and try again.")),
    "invalid_number": (DeclineClass.HARD, _("The card number is not correct. Please check it and try again.")),
    "invalid_cvc": (DeclineClass.HARD, _("The security code (CVC) is not correct. Please check it and try again.")),
    "incorrect_cvc": (DeclineClass.HARD, _("The security code (CVC) is not correct. Please check it and try again.")),
    "invalid_expiry_month": (DeclineClass.HARD, _("The expiry date is not correct. Please check it and try again.")),
    "invalid_expiry_year": (DeclineClass.HARD, _("The expiry date is not correct. Please check it and try again.")),
    "incorrect_zip": (DeclineClass.HARD, _("The postal code does not match your card. Please check it and try again.")),
    # soft
    "insufficient_funds": (
        DeclineClass.SOFT,
        _("Your card has insufficient funds. Please use a different card or try again later."),
    ),
    "processing_error": (DeclineClass.SOFT, _("Something went wrong while processing your card. Please try again.")),
    "try_again_later": (DeclineClass.SOFT, _TRY_LATER),
    "issuer_not_available": (DeclineClass.SOFT, _TRY_LATER),
    "reenter_transaction": (DeclineClass.SOFT, _("The payment could not be processed. Please try again.")),
    "card_velocity_exceeded": (
        DeclineClass.SOFT,
        _("Your card has reached its spending limit for now. Please use a different card or try again later."),
    ),
    "withdrawal_count_limit_exceeded": (
        DeclineClass.SOFT,
        _("Your card has reached its spending limit for now. Please use a different card or try again later."),
    ),
    "generic_decline": (DeclineClass.SOFT, _GENERIC_DECLINE),
    "card_declined": (DeclineClass.SOFT, _GENERIC_DECLINE),
    "call_issuer": (DeclineClass.SOFT, _("Your card was declined. Please contact your card issuer for details.")),
    "approve_with_id": (DeclineClass.SOFT, _("The payment could not be authorised. Please try again.")),
    # bank debits (SEPA, and ACH when it comes): Stripe's charge failure codes for a returned debit
    "account_closed": (DeclineClass.HARD, _("The bank account has been closed. Please use another account or card.")),
    "no_account": (DeclineClass.HARD, _("The bank could not find this account. Please check the IBAN or use another.")),
    "invalid_account_number": (
        DeclineClass.HARD, _("The bank could not find this account. Please check the IBAN or use another."),
    ),
    "account_frozen": (DeclineClass.HARD, _("The bank account is blocked. Please contact your bank or use another.")),
    "bank_account_restricted": (
        DeclineClass.HARD, _("This bank account does not accept direct debits. Please use another account or card."),
    ),
    "debit_not_authorized": (
        DeclineClass.HARD,
        _("Your bank says this debit was not authorised, so it was returned. Please pay another way."),
    ),
    "generic_could_not_process": (
        DeclineClass.SOFT, _("Your bank could not process the debit. We will try again, or please pay another way."),
    ),
    # authentication
    "authentication_required": (DeclineClass.AUTHENTICATION, _AUTHENTICATE),
    "requires_action": (DeclineClass.AUTHENTICATION, _AUTHENTICATE),
    "card_not_enrolled": (DeclineClass.AUTHENTICATION, _AUTHENTICATE),
    "offline_pin_required": (DeclineClass.AUTHENTICATION, _AUTHENTICATE),
    "online_or_offline_pin_required": (DeclineClass.AUTHENTICATION, _AUTHENTICATE),
    "payment_intent_authentication_failure": (
        DeclineClass.AUTHENTICATION,
        _("We could not verify this payment with your bank. Please try again or use a different card."),
    ),
}


@dataclass(frozen=True)
class DeclineInfo:
    code: str  # the code the class was decided on: decline_code when known, else code, else "unknown"
    decline_class: DeclineClass
    payer_message: Promise | str  # lazy: str() it in the payer's active language

    @property
    def is_hard(self) -> bool:
        return self.decline_class == DeclineClass.HARD

    @property
    def retryable(self) -> bool:
        """Whether an automatic retry of the same card later (e.g. autopay) makes sense."""
        return self.decline_class == DeclineClass.SOFT


def decline_classify(code: str | None, decline_code: str | None = None) -> DeclineInfo:
    """Class and payer message for a Stripe error `code` and issuer `decline_code`. Unknown codes are soft."""
    for candidate in (decline_code, code):
        if candidate and candidate in _DECLINE_TABLE:
            decline_class, message = _DECLINE_TABLE[candidate]
            return DeclineInfo(candidate, decline_class, message)
    return DeclineInfo(decline_code or code or "unknown", DeclineClass.SOFT, _GENERIC_DECLINE)


# A bank says "insufficient funds" about an account, not a card: the same class, in words that fit.
_BANK_WORDS: dict[str, Promise] = {
    "insufficient_funds": _("There was not enough money in the bank account for the debit. We will try again, or "
                            "please pay another way."),  # fmt: skip
    "card_declined": _("Your bank returned the debit. Please pay another way or use another account."),
    "generic_decline": _("Your bank returned the debit. Please pay another way or use another account."),
}


def bank_decline_classify(code: str | None, decline_code: str | None = None) -> DeclineInfo:
    """`decline_classify` for a returned bank debit: the same classes, the payer told about their bank account."""
    info = decline_classify(code, decline_code)
    if info.code in _BANK_WORDS:
        return DeclineInfo(info.code, info.decline_class, _BANK_WORDS[info.code])
    if info.code not in _DECLINE_TABLE:
        return DeclineInfo(info.code, info.decline_class, _BANK_WORDS["generic_decline"])
    return info


class GatewayError(Exception):
    """Base for errors that come out of the gateway."""


class PaymentDeclined(GatewayError):
    """The card or bank said no. The payer's problem: show `payer_message`; `decline_class` says what to do next."""

    def __init__(
        self,
        code: str | None,
        decline_code: str | None,
        message: str,
        payer_message: Promise | str,
        *,
        decline_class: DeclineClass = DeclineClass.SOFT,
        payment_intent_id: str | None = None,
        charge_id: str | None = None,
    ):
        super().__init__(message)
        self.code = code
        self.decline_code = decline_code
        self.message = message  # Stripe's own text, for staff and logs; never shown to the payer
        self.payer_message = payer_message
        self.decline_class = decline_class
        self.payment_intent_id = payment_intent_id
        self.charge_id = charge_id

    @classmethod
    def from_codes(cls, code, decline_code, message="", **ids) -> PaymentDeclined:
        info = decline_classify(code, decline_code)
        return cls(code, decline_code, message, info.payer_message, decline_class=info.decline_class, **ids)


class GatewayUnavailable(GatewayError):
    """Our problem, not the payer's: the gateway could not be reached or refused the request.

    `retryable` is true for network errors, timeouts, 409/429 and 5xx: try again later with the same idempotency key.
    It is false for 400/401/403/404, which mean a configuration or programming error that a retry will not fix.
    """

    def __init__(
        self, message: str, *, retryable: bool = True, http_status: int | None = None, code: str | None = None
    ):
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.http_status = http_status
        self.code = code

    @property
    def not_found(self) -> bool:
        """The gateway says the object does not exist (Stripe: 404 resource_missing; localstripe: a bare 404)."""
        return self.http_status == 404 or self.code == "resource_missing"


class InvalidWebhook(GatewayError):
    """A webhook delivery whose signature or body does not check out. Answer 400 and do nothing."""


# --------------------------------------------------------------------------------------------------------------------
# The gateway


class PaymentGateway(Protocol):
    """What the payment services need from a card gateway. Amounts are integer minor units."""

    def create_customer(self, *, email: str, name: str = "", metadata: dict | None = None,
                        idempotency_key: str) -> CustomerResult: ...  # fmt: skip

    def create_payment_intent(
        self,
        *,
        amount: int,
        currency: str,
        idempotency_key: str,
        customer: str | None = None,
        payment_method: str | None = None,
        off_session: bool = False,
        confirm: bool = False,
        metadata: dict | None = None,
        description: str | None = None,
        receipt_email: str | None = None,
        setup_future_usage: str | None = None,
        payment_method_types: list[str] | None = None,
        mandate: str | None = None,
    ) -> IntentResult: ...

    def retrieve_payment_intent(self, intent_id: str) -> IntentResult: ...

    def update_payment_intent_amount(self, intent_id: str, *, amount: int, idempotency_key: str) -> IntentResult: ...

    def confirm_payment_intent(self, intent_id: str, *, idempotency_key: str, payment_method: str | None = None,
                               off_session: bool = False, customer: str | None = None,
                               mandate_acceptance: MandateAcceptance | None = None) -> IntentResult: ...  # fmt: skip

    def create_bank_payment_method(self, *, bank_account: BankAccountDetails,
                                   idempotency_key: str) -> PaymentMethodResult: ...  # fmt: skip

    def setup_bank_mandate(self, *, customer: str, payment_method: str, acceptance: MandateAcceptance,
                           idempotency_key: str) -> MandateResult | None: ...  # fmt: skip

    def retrieve_mandate(self, mandate_id: str) -> MandateResult: ...

    def cancel_payment_intent(self, intent_id: str, *, idempotency_key: str | None = None) -> IntentResult: ...

    def create_setup_intent(self, *, customer: str, idempotency_key: str,
                            metadata: dict | None = None) -> SetupIntentResult: ...  # fmt: skip

    def retrieve_setup_intent(self, setup_intent_id: str) -> SetupIntentResult: ...

    def attach_payment_method(self, payment_method: str, *, customer: str) -> PaymentMethodResult: ...

    def detach_payment_method(self, payment_method: str) -> PaymentMethodResult: ...

    def create_refund(self, *, payment_intent: str, amount: int, idempotency_key: str,
                      metadata: dict | None = None) -> RefundResult: ...  # fmt: skip

    def list_refunds(self, *, payment_intent: str) -> list[RefundResult]: ...

    def construct_webhook_event(self, payload: bytes | str, sig_header: str | None) -> WebhookEvent: ...



def is_live_api() -> bool:
    """True when the configured API base is real Stripe (test or live mode), false for localstripe."""
    return bool(settings.STRIPE_LIVE_API)


def get_gateway() -> PaymentGateway:
    """The gateway configured by settings. Cheap: the underlying StripeClient is cached per configuration."""
    from .stripe_gateway import StripeGateway  # the Stripe SDK is loaded only when a gateway is used

    return StripeGateway(
        api_key=settings.STRIPE_SECRET_KEY,
        api_base=settings.STRIPE_API_BASE,
        live_api=is_live_api(),
        webhook_secret=settings.STRIPE_WEBHOOK_SECRET,
        max_network_retries=settings.STRIPE_MAX_NETWORK_RETRIES,
        rate_limit_per_second=settings.GATEWAY_RATE_LIMIT_PER_SECOND,
    )
