"""The Stripe boundary: the only module in the project that imports `stripe`.

`StripeGateway` implements the `PaymentGateway` interface of `billing.payments.gateway`: services get back its small
frozen dataclasses and two kinds of error:
`PaymentDeclined` (the payer's problem: show `payer_message`, do not retry the same card blindly) and
`GatewayUnavailable` (ours: transport or API trouble; retry when `retryable`). Raw Stripe objects never leave here.

The same code talks to real Stripe and to localstripe (a fake Stripe for tests and the local run). The differences are
kept in two places only: `REAL_STRIPE_ONLY_PARAMS` (parameters localstripe rejects) and the response readers, which
accept both the current response shape and localstripe's 2017-2020 one.

Never log card data or request bodies here: log ids, statuses and codes only.
"""

from __future__ import annotations

import logging
import os
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

import stripe

from billing.ratelimit import rate_limit_slot_take

from .gateway import (
    STRIPE_API_BASE,
    BankAccountDetails,
    CustomerResult,
    GatewayError,
    GatewayUnavailable,
    IntentResult,
    InvalidWebhook,
    MandateAcceptance,
    MandateResult,
    PaymentDeclined,
    PaymentMethodResult,
    RefundResult,
    SetupIntentResult,
    WebhookEvent,
)

logger = logging.getLogger(__name__)


# Parameters that real Stripe understands and localstripe 1.15 answers with "400 Unexpected <param>".
# They are sent only when settings.STRIPE_LIVE_API is true. This is the one list to extend.
REAL_STRIPE_ONLY_PARAMS = frozenset(
    {
        "automatic_payment_methods",
        "description",
        "error_on_requires_action",
        "mandate",  # an existing Mandate for an off-session bank debit (localstripe has no mandates)
        "mandate_data",
        "off_session",  # localstripe accepts it only on create together with confirm=true; we confirm separately
        "reason",
        "receipt_email",
        "return_url",
        "setup_future_usage",
        "statement_descriptor",
        "statement_descriptor_suffix",
    }
)


def _translate(exc: stripe.StripeError, *, operation: str, payment_intent_id: str | None = None) -> GatewayError:
    error = exc.json_body.get("error", {}) if isinstance(exc.json_body, dict) else {}
    request_id = getattr(exc, "request_id", None)
    if isinstance(exc, stripe.CardError):
        intent = error.get("payment_intent")
        intent_id = intent.get("id") if isinstance(intent, dict) else intent
        charge = error.get("charge")
        declined = PaymentDeclined.from_codes(
            exc.code or error.get("code"),
            error.get("decline_code"),
            exc.user_message or error.get("message") or "",
            payment_intent_id=intent_id or payment_intent_id,
            charge_id=charge.get("id") if isinstance(charge, dict) else charge,
        )
        logger.info(
            "stripe %s declined: intent=%s code=%s decline_code=%s class=%s request=%s",
            operation, declined.payment_intent_id, declined.code, declined.decline_code, declined.decline_class,
            request_id,
        )  # fmt: skip
        return declined
    status = exc.http_status
    retryable = isinstance(exc, (stripe.APIConnectionError, stripe.RateLimitError)) or (
        status is None or status == 409 or status >= 500
    )
    if isinstance(exc, (stripe.InvalidRequestError, stripe.AuthenticationError, stripe.PermissionError)):
        retryable = False
    if isinstance(exc, stripe.IdempotencyError):
        retryable = False
    logger.warning(
        "stripe %s failed: %s status=%s code=%s retryable=%s intent=%s request=%s",
        operation, type(exc).__name__, status, exc.code, retryable, payment_intent_id, request_id,
    )  # fmt: skip
    return GatewayUnavailable(
        exc.user_message or type(exc).__name__, retryable=retryable, http_status=status, code=exc.code
    )


# --------------------------------------------------------------------------------------------------------------------
# Reading responses (both shapes)


def _plain(obj: Any) -> Any:
    """A StripeObject (not a dict since stripe 12) as plain dicts and lists; other values unchanged."""
    if isinstance(obj, stripe.StripeObject):
        return obj.to_dict()
    return obj


def _id_of(value: Any) -> str | None:
    """An id field that may be an id string, an expanded/embedded object, or missing."""
    if isinstance(value, dict):
        return value.get("id")
    return value or None


def _latest_charge(intent: dict) -> dict | str | None:
    # Current API: `latest_charge` is an id (an object when expanded). localstripe embeds the object.
    # API versions before 2022-11-15 (and localstripe) also have `charges.data`, newest first.
    charge = intent.get("latest_charge")
    if charge:
        return charge
    charges = (intent.get("charges") or {}).get("data") or []
    return charges[0] if charges else None


def _card(payment_method: Any) -> dict:
    if not isinstance(payment_method, dict):
        return {}
    if payment_method.get("object") == "card":  # a legacy Card (card_...) used as the payment method: flat fields
        return payment_method
    return payment_method.get("card") or {}


def _intent_result(obj: Any) -> IntentResult:
    intent = _plain(obj)
    charge = _latest_charge(intent)
    charge_obj = charge if isinstance(charge, dict) else {}
    payment_method = intent.get("payment_method")
    # localstripe keeps an alias such as "pm_card_visa" on the intent and the real id on the charge only.
    payment_method_id = charge_obj.get("payment_method") or _id_of(payment_method)
    details = charge_obj.get("payment_method_details") or {}
    card = _card(payment_method) or details.get("card") or {}
    method_type = details.get("type") or (payment_method.get("type") if isinstance(payment_method, dict) else None)
    mandate = _id_of(intent.get("mandate")) or (details.get("sepa_debit") or {}).get("mandate")
    error = intent.get("last_payment_error") or {}
    return IntentResult(
        id=intent["id"],
        status=intent["status"],
        amount=int(intent["amount"]),
        currency=intent["currency"],
        client_secret=intent.get("client_secret"),
        payment_method_id=payment_method_id,
        customer_id=_id_of(intent.get("customer")),
        charge_id=_id_of(charge),
        card_brand=card.get("brand"),
        card_last4=card.get("last4"),
        error_code=error.get("code"),
        decline_code=error.get("decline_code"),
        error_message=error.get("message"),
        metadata=dict(intent.get("metadata") or {}),
        payment_method_type=method_type,
        mandate_id=_id_of(mandate),
    )


def _refund_result(obj: Any, *, payment_intent: str | None = None) -> RefundResult:
    data = _plain(obj)
    return RefundResult(
        id=data["id"],
        status=data.get("status") or "",
        amount=int(data["amount"]),
        currency=data["currency"],
        payment_intent_id=_id_of(data.get("payment_intent")) or payment_intent,
        charge_id=_id_of(data.get("charge")),
        metadata=dict(data.get("metadata") or {}),
    )


def _payment_method_result(obj: Any) -> PaymentMethodResult:
    pm = _plain(obj)
    card = _card(pm)
    bank = pm.get("sepa_debit") or {}
    return PaymentMethodResult(
        id=pm["id"],
        customer_id=_id_of(pm.get("customer")),
        card_brand=card.get("brand"),
        card_last4=card.get("last4"),
        exp_month=card.get("exp_month"),
        exp_year=card.get("exp_year"),
        type=pm.get("type") or "card",
        bank_last4=bank.get("last4"),
        bank_country=bank.get("country"),
    )


def _mandate_result(obj: Any) -> MandateResult:
    data = _plain(obj)
    details = data.get("payment_method_details") or {}
    bank = details.get(details.get("type") or "sepa_debit") or {}
    return MandateResult(
        id=data["id"], status=data.get("status") or "", reference=bank.get("reference") or "",
        payment_method_id=_id_of(data.get("payment_method")),
    )  # fmt: skip


def _setup_intent_result(obj: Any) -> SetupIntentResult:
    data = _plain(obj)
    return SetupIntentResult(
        id=data["id"],
        status=data["status"],
        client_secret=data.get("client_secret"),
        customer_id=_id_of(data.get("customer")),
        payment_method_id=_id_of(data.get("payment_method")),
    )



@lru_cache(maxsize=8)
def _stripe_client(api_key: str, api_base: str, max_network_retries: int) -> stripe.StripeClient:
    return stripe.StripeClient(
        api_key, base_addresses={"api": api_base}, max_network_retries=max_network_retries
    )


# A forked process (a Celery prefork child, a bench worker) must not inherit its parent's client: the client keeps
# its HTTP connections open, and two processes reading one socket get each other's answers (one worker stored the
# other's intent id: the IntegrityError on gateway_payment_id in the backlog bench of 2026-11-27).
os.register_at_fork(after_in_child=_stripe_client.cache_clear)


class StripeGateway:
    """`PaymentGateway` on Stripe's API (real Stripe, or localstripe when `live_api` is false)."""

    def __init__(
        self,
        *,
        api_key: str,
        api_base: str = STRIPE_API_BASE,
        live_api: bool | None = None,
        webhook_secret: str = "",
        max_network_retries: int = 2,
        http_client: Any = None,  # a stripe.HTTPClient; tests pass a fake one
        rate_limit_per_second: int = 0,  # requests per second for all processes together; 0: no limit
    ):
        self._rate_limit = rate_limit_per_second
        self._api_key = api_key
        self._api_base = api_base
        self._max_network_retries = max_network_retries
        self._http_client = http_client
        self.live_api = (urlsplit(api_base).hostname == "api.stripe.com") if live_api is None else live_api
        self._webhook_secret = webhook_secret

    @property
    def _client(self) -> stripe.StripeClient:
        # Built on first use, so that verifying a webhook needs no API key.
        if not self._api_key:
            raise GatewayUnavailable("STRIPE_SECRET_KEY is not set", retryable=False)
        if self._http_client is None:
            return _stripe_client(self._api_key, self._api_base, self._max_network_retries)
        return stripe.StripeClient(
            self._api_key, base_addresses={"api": self._api_base}, max_network_retries=self._max_network_retries,
            http_client=self._http_client,
        )  # fmt: skip

    # The one place that decides what is sent.
    def _params(self, **params: Any) -> dict[str, Any]:
        sent = {}
        for key, value in params.items():
            if value is None or (key in REAL_STRIPE_ONLY_PARAMS and not self.live_api):
                continue
            sent[key] = value
        return sent

    def _call(self, operation: str, fn, *args, payment_intent_id: str | None = None, **kwargs):
        if self._rate_limit:
            # Every API request waits for a slot of the shared limit, so however many web and worker processes run,
            # together they stay under Stripe's rate limit instead of meeting its 429s.
            rate_limit_slot_take("gateway", self._rate_limit)
        try:
            return fn(*args, **kwargs)
        except stripe.StripeError as exc:
            raise _translate(exc, operation=operation, payment_intent_id=payment_intent_id) from exc

    @staticmethod
    def _options(idempotency_key: str | None) -> dict[str, str]:
        return {"idempotency_key": idempotency_key} if idempotency_key else {}

    # Customers and payment methods

    def create_customer(
        self, *, email: str, name: str = "", metadata: dict | None = None, idempotency_key: str
    ) -> CustomerResult:
        params = self._params(email=email, name=name or None, metadata=metadata or None)
        customer = self._call(
            "customers.create", self._client.v1.customers.create, params=params, options=self._options(idempotency_key)
        )
        logger.info("stripe customer created: %s", customer.id)
        return CustomerResult(id=customer.id, email=customer.email)

    def attach_payment_method(self, payment_method: str, *, customer: str) -> PaymentMethodResult:
        pm = self._call(
            "payment_methods.attach", self._client.v1.payment_methods.attach, payment_method,
            params={"customer": customer},
        )  # fmt: skip
        logger.info("stripe payment method %s attached to %s", pm.id, customer)
        return _payment_method_result(pm)

    def detach_payment_method(self, payment_method: str) -> PaymentMethodResult:
        pm = self._call("payment_methods.detach", self._client.v1.payment_methods.detach, payment_method)
        logger.info("stripe payment method %s detached", pm.id)
        return _payment_method_result(pm)

    # PaymentIntents

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
    ) -> IntentResult:
        """Create an intent; with `confirm` (implied by `off_session`) also confirm it, as a second call.
        `payment_method_types` names the method (a bank debit: ["sepa_debit"]); without it, cards as before.
        `mandate`: the Mandate real Stripe made for a saved bank account, for an off-session debit.

        Create-then-confirm rather than `confirm=true` on create: a decline then still tells us the intent id (on
        localstripe the 402 names only the charge), and both backends take the same path."""
        if amount <= 0:
            raise ValueError("amount must be positive minor units")
        confirm = confirm or off_session
        params = self._params(
            amount=int(amount),
            currency=currency.lower(),
            customer=customer,
            payment_method=payment_method,
            metadata=metadata or None,
            description=description,
            receipt_email=receipt_email,
            setup_future_usage=setup_future_usage,
            payment_method_types=payment_method_types,
            mandate=mandate,
            # The server confirms card payments itself; redirect-based methods would need a return_url.
            automatic_payment_methods=None if payment_method_types else {"enabled": True, "allow_redirects": "never"},
        )
        intent = self._call(
            "payment_intents.create", self._client.v1.payment_intents.create, params=params,
            options=self._options(idempotency_key),
        )  # fmt: skip
        logger.info("stripe payment intent created: %s status=%s", intent.id, intent.status)
        if not confirm:
            return _intent_result(intent)
        return self.confirm_payment_intent(
            intent.id, idempotency_key=f"{idempotency_key}:confirm", off_session=off_session
        )

    def retrieve_payment_intent(self, intent_id: str) -> IntentResult:
        intent = self._call(
            "payment_intents.retrieve", self._client.v1.payment_intents.retrieve, intent_id,
            params={"expand": ["payment_method"]}, payment_intent_id=intent_id,
        )  # fmt: skip
        return _intent_result(intent)

    def update_payment_intent_amount(self, intent_id: str, *, amount: int, idempotency_key: str) -> IntentResult:
        """Change the amount of an intent that has not been charged yet (the payer changed the amount or the tip)."""
        if amount <= 0:
            raise ValueError("amount must be positive minor units")
        intent = self._call(
            "payment_intents.update", self._client.v1.payment_intents.update, intent_id,
            params={"amount": int(amount)}, options=self._options(idempotency_key), payment_intent_id=intent_id,
        )  # fmt: skip
        logger.info("stripe payment intent amount changed: %s status=%s", intent.id, intent.status)
        return _intent_result(intent)

    def confirm_payment_intent(
        self,
        intent_id: str,
        *,
        idempotency_key: str,
        payment_method: str | None = None,
        off_session: bool = False,
        customer: str | None = None,
        mandate_acceptance: MandateAcceptance | None = None,
    ) -> IntentResult:
        """Confirm server-side. A bank debit on the pay screen carries the payer's `mandate_acceptance` (sent to real
        Stripe as `mandate_data`; localstripe refuses it, and our BankMandate row is the record there). A new `payment_method` is set by an update first: localstripe answers 500 to
        confirm(payment_method=...), and the two calls mean the same thing on real Stripe. A saved card belongs to
        a gateway customer, which the intent must name too (`customer`)."""
        if payment_method:
            update = {"payment_method": payment_method, **({"customer": customer} if customer else {})}
            self._call(
                "payment_intents.update", self._client.v1.payment_intents.update, intent_id,
                params=update, options=self._options(f"{idempotency_key}:pm"),
                payment_intent_id=intent_id,
            )  # fmt: skip
        params = self._params(
            off_session=True if off_session else None,
            mandate_data=mandate_acceptance.as_mandate_data() if mandate_acceptance else None,
        )
        intent = self._call(
            "payment_intents.confirm", self._client.v1.payment_intents.confirm, intent_id, params=params,
            options=self._options(idempotency_key), payment_intent_id=intent_id,
        )  # fmt: skip
        logger.info("stripe payment intent confirmed: %s status=%s", intent.id, intent.status)
        return _intent_result(intent)

    def cancel_payment_intent(self, intent_id: str, *, idempotency_key: str | None = None) -> IntentResult:
        intent = self._call(
            "payment_intents.cancel", self._client.v1.payment_intents.cancel, intent_id,
            options=self._options(idempotency_key), payment_intent_id=intent_id,
        )  # fmt: skip
        logger.info("stripe payment intent canceled: %s", intent.id)
        return _intent_result(intent)

    # Bank accounts (SEPA Direct Debit)

    def create_bank_payment_method(
        self, *, bank_account: BankAccountDetails, idempotency_key: str
    ) -> PaymentMethodResult:
        """A bank-debit PaymentMethod from the account number the payer typed (an IBAN is not card data and may pass
        through our server). Logged by id and last 4 only."""
        kind = bank_account.kind
        params = {
            "type": kind,
            kind: {"iban": bank_account.account_number},
            "billing_details": {"name": bank_account.holder_name, "email": bank_account.holder_email},
        }
        pm = self._call(
            "payment_methods.create", self._client.v1.payment_methods.create, params=params,
            options=self._options(idempotency_key),
        )  # fmt: skip
        result = _payment_method_result(pm)
        logger.info("stripe %s payment method created: %s (…%s)", kind, result.id, result.bank_last4)
        return result

    def setup_bank_mandate(
        self, *, customer: str, payment_method: str, acceptance: MandateAcceptance, idempotency_key: str
    ) -> MandateResult | None:
        """A standing mandate for a saved bank account. Real Stripe: a SetupIntent confirmed with the payer's
        acceptance (it attaches the method and makes the Mandate, returned here). localstripe refuses a SetupIntent
        created with payment_method and confirm, and has no mandates: there the method is only attached, None is
        returned, and our BankMandate row is the whole record."""
        if not self.live_api:
            self.attach_payment_method(payment_method, customer=customer)
            return None
        setup = self._call(
            "setup_intents.create", self._client.v1.setup_intents.create,
            params={
                "customer": customer, "payment_method": payment_method, "payment_method_types": ["sepa_debit"],
                "usage": "off_session", "confirm": True, "mandate_data": acceptance.as_mandate_data(),
            },
            options=self._options(idempotency_key),
        )  # fmt: skip
        mandate_id = _id_of(_plain(setup).get("mandate"))
        logger.info("stripe bank setup %s: %s, mandate %s", setup.id, setup.status, mandate_id)
        return self.retrieve_mandate(mandate_id) if mandate_id else None

    def retrieve_mandate(self, mandate_id: str) -> MandateResult:
        mandate = self._call("mandates.retrieve", self._client.v1.mandates.retrieve, mandate_id)
        return _mandate_result(mandate)

    # SetupIntents (saving a card for autopay)

    def create_setup_intent(
        self, *, customer: str, idempotency_key: str, metadata: dict | None = None
    ) -> SetupIntentResult:
        params = self._params(
            customer=customer,
            usage="off_session",
            metadata=metadata or None,
            automatic_payment_methods={"enabled": True, "allow_redirects": "never"},
        )
        setup = self._call(
            "setup_intents.create", self._client.v1.setup_intents.create, params=params,
            options=self._options(idempotency_key),
        )  # fmt: skip
        logger.info("stripe setup intent created: %s", setup.id)
        return _setup_intent_result(setup)

    def retrieve_setup_intent(self, setup_intent_id: str) -> SetupIntentResult:
        """Read a SetupIntent after stripe.js confirmed it: its status, customer and payment method are what we trust
        (localstripe does not attach the method to the customer; the caller attaches it)."""
        setup = self._call("setup_intents.retrieve", self._client.v1.setup_intents.retrieve, setup_intent_id)
        return _setup_intent_result(setup)

    # Refunds

    def create_refund(
        self, *, payment_intent: str, amount: int, idempotency_key: str, metadata: dict | None = None
    ) -> RefundResult:
        """Refund part or all of a payment. The caller must cap `amount` at what is still refundable:
        localstripe refunds any amount, and our records must stay right whatever the gateway allows."""
        if amount <= 0:
            raise ValueError("amount must be positive minor units")
        params = self._params(payment_intent=payment_intent, amount=int(amount), metadata=metadata or None)
        refund = self._call(
            "refunds.create", self._client.v1.refunds.create, params=params, options=self._options(idempotency_key),
            payment_intent_id=payment_intent,
        )  # fmt: skip
        result = _refund_result(refund, payment_intent=payment_intent)
        logger.info("stripe refund created: %s intent=%s status=%s", result.id, payment_intent, result.status)
        return result

    def list_refunds(self, *, payment_intent: str) -> list[RefundResult]:
        """Every refund of the intent's charge, made by us or anyone else (the dashboard): what settles a refund
        whose answer was lost, and what records refunds made outside Billpay."""
        page = self._call(
            "refunds.list", self._client.v1.refunds.list, params={"payment_intent": payment_intent, "limit": 100},
            payment_intent_id=payment_intent,
        )  # fmt: skip
        try:
            return [_refund_result(refund, payment_intent=payment_intent) for refund in page.auto_paging_iter()]
        except stripe.StripeError as exc:  # a later page failed
            raise _translate(exc, operation="refunds.list", payment_intent_id=payment_intent) from exc

    # Webhooks

    def construct_webhook_event(self, payload: bytes | str, sig_header: str | None) -> WebhookEvent:
        if not self._webhook_secret:
            raise InvalidWebhook("STRIPE_WEBHOOK_SECRET is not set")
        try:
            event = stripe.Webhook.construct_event(payload, sig_header, self._webhook_secret)
        except stripe.SignatureVerificationError as exc:
            raise InvalidWebhook("signature verification failed") from exc
        except ValueError as exc:  # not JSON
            raise InvalidWebhook("payload is not valid JSON") from exc
        data = _plain(event)
        obj = (data.get("data") or {}).get("object") or {}
        return WebhookEvent(
            id=data["id"],
            type=data["type"],
            object_id=obj.get("id"),
            data=obj,
            livemode=bool(data.get("livemode")),
            created=data.get("created"),
            api_version=data.get("api_version"),
        )
