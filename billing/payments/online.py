"""Online card payments: the quote, the exactly-once start and the confirm with the card the payer entered.

The server alone decides what is charged. The browser may name an amount and a tip choice; `payment_quote` checks them
against the biller's rules and the bills as they are now, and `payment_start` recomputes the quote under the account's
row lock before anything reaches the gateway.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from django.db import transaction
from django.db.models import Count, F, Subquery, Sum
from django.db.models.functions import JSONObject
from django.utils import timezone
from django.utils.translation import gettext as _

from billing.errors import ApplicationError
from billing.events import event_record
from billing.models import Bill, BillingEvent, CustomerAccount, Payment, PaymentAttempt
from billing.money import format_money, percent_of, validate_currency

from . import gateway as gateway_api
from .attempts import (
    account_lock,
    is_int,
    our_key,
    payment_gateway_call,
    payment_intent_cancel,
    payment_intent_retrieve,
    payment_status_move,
)
from .core import ABANDONED_AFTER, FINAL_STATUSES, OPEN_INTENT_STATUSES, confirmation_number_new, payment_sync
from .gateway import (
    GatewayError,
    GatewayUnavailable,
    IntentResult,
    IntentStatus,
    MandateAcceptance,
    PaymentDeclined,
    bank_decline_classify,
    decline_classify,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Quote:
    """What the payer owes and what one payment would charge, all in integer minor units of `currency`.

    `amount` goes to the bills (oldest due first), `fee` is the biller's convenience fee, `tip` the payer's optional
    tip, and `total` = amount + fee + tip is what the card is charged. `bills` are the oldest open bills, at most
    the number asked for; `open_bills` says how many there are in all."""

    owed: int
    amount: int
    fee: int
    tip: int
    total: int
    currency: str
    bills: tuple[Bill, ...]
    open_bills: int = 0


# The pay screen lists this many of the oldest open bills, then "and N more" with a link to all of them: an account
# with 200 open bills costs what one with 10 does.
QUOTE_BILLS = 10


def open_bills_with_balance(*, account_id: int, limit: int | None) -> tuple[tuple[Bill, ...], int, int]:
    """The oldest open bills with a balance (at most `limit`; None: all), what they owe together and how many there
    are: one query. The bills are read in order from the open bills' index (`bill_account_open`, which holds every
    column shown), so the oldest ten cost what ten bills cost; the total and the count are one pass over that
    index's entries of the account, computed by the database."""
    # The statuses written into the statement, for the open bills' partial index (billing/lookups.py).
    open_bills = Bill.objects.filter(
        account_id=account_id, status__in_constants=Bill.PAYABLE_STATUSES, amount_paid__lt=F("total")
    )
    totals = (
        open_bills.order_by()
        .values("account_id")
        .annotate(both=JSONObject(owed=Sum(F("total") - F("amount_paid")), count=Count("pk")))
        .values("both")
    )
    rows = (
        open_bills.annotate(totals=Subquery(totals))
        .order_by("due_date", "pk")
        # What a quote and its rows read (number, due date, balance, overdue): the columns of the index.
        .only("pk", "account_id", "number", "status", "due_date", "currency", "total", "amount_paid")
    )
    bills = tuple(rows if limit is None else rows[:limit])
    if not bills:
        return (), 0, 0
    return bills, int(bills[0].totals["owed"] or 0), int(bills[0].totals["count"])


def payment_quote(
    *,
    account: CustomerAccount,
    amount: int | None = None,
    tip_percent: int | None = None,
    tip_amount: int | None = None,
    bills_shown: int | None = QUOTE_BILLS,
) -> Quote:
    """Quote a payment on `account`. `amount` None means the full balance. At most one of `tip_percent` (one of the
    biller's presets) and `tip_amount` (a custom tip in minor units) may be given, and only when tips are enabled.
    The quote carries the oldest `bills_shown` open bills (None: all of them)."""
    biller = account.biller
    currency = validate_currency(biller.currency)
    money = lambda minor: format_money(minor, currency)  # noqa: E731 - a local shorthand for the messages

    bills, owed, open_bills = open_bills_with_balance(account_id=account.pk, limit=bills_shown)
    if owed <= 0:
        raise ApplicationError(_("There is nothing to pay on this account right now."))

    if amount is None:
        amount = owed
    elif not is_int(amount):
        raise ApplicationError(_("Enter the amount to pay."))

    if owed < biller.minimum_payment:
        # A balance below the minimum can still be paid off, but only in full.
        if amount != owed:
            raise ApplicationError(
                _("The balance of %(owed)s is below the minimum payment, so it can only be paid in full.")
                % {"owed": money(owed)}
            )
    else:
        most = min(owed, biller.maximum_payment or owed)
        if amount < biller.minimum_payment:
            raise ApplicationError(
                _("The smallest payment accepted online is %(minimum)s.") % {"minimum": money(biller.minimum_payment)}
            )
        if amount > owed:
            raise ApplicationError(
                _("The amount is more than the %(owed)s owed. Please pay %(owed)s or less.") % {"owed": money(owed)}
            )
        if amount > most:
            raise ApplicationError(
                _("The largest payment accepted online is %(maximum)s. Please pay a smaller amount, or contact us "
                  "for other ways to pay.") % {"maximum": money(most)}  # fmt: skip
            )

    fee = biller.convenience_fee_fixed + percent_of(amount, biller.convenience_fee_basis_points)

    tip = 0
    if tip_percent is not None and tip_amount is not None:
        raise ApplicationError(_("Choose a tip percentage or enter a tip amount, not both."))
    if (tip_percent or tip_amount) and not biller.tips_enabled:
        raise ApplicationError(_("Tips are not accepted for this biller."))
    if tip_percent == 0 or tip_amount == 0:
        pass  # "no tip" is always a valid choice
    elif tip_percent is not None:
        presets = [int(p) for p in (biller.tip_presets or []) if is_int(p) or str(p).isdigit()]
        if not is_int(tip_percent) or tip_percent not in presets:
            raise ApplicationError(
                _("Choose one of the offered tip percentages: %(presets)s.")
                % {"presets": ", ".join(f"{p}%" for p in presets)}
            )
        tip = percent_of(amount, tip_percent * 100)
    elif tip_amount is not None:
        if not is_int(tip_amount) or tip_amount < 0:
            raise ApplicationError(_("The tip cannot be negative."))
        tip = tip_amount

    return Quote(
        owed=owed, amount=amount, fee=fee, tip=tip, total=amount + fee + tip, currency=currency, bills=bills,
        open_bills=open_bills,
    )  # fmt: skip



# --------------------------------------------------------------------------------------------------------------------
# Starting a payment


def payment_start(
    *,
    account: CustomerAccount,
    payer_email: str,
    channel: str,
    amount: int | None = None,
    tip_percent: int | None = None,
    tip_amount: int | None = None,
    save_card_requested: bool = False,
    paperless_requested: bool = False,
    method: str = Payment.Method.CARD,
) -> tuple[Payment, str]:
    """Start (or resume) the account's online payment and return it with the intent's client secret for stripe.js.

    Exactly once: under the account's row lock the quote is recomputed and the account's one in-flight payment is
    reused (its intent's amount updated if the payer changed it), so any number of concurrent submissions yield one
    Payment and one PaymentIntent. The partial unique constraint "one_in_flight_online_payment_per_account" backs
    this even if the lock were bypassed. After a decline the same payment is reused with a fresh intent (the declined
    one is canceled): localstripe cannot confirm an intent again after a charge failed, and a canceled intent cannot
    be charged from a stale page. `method`: card, or a bank debit (billing/payments/bank_debits.py); an in-flight
    payment started for the other method is canceled and a fresh one started."""
    if channel not in Payment.ONLINE_CHANNELS:
        raise ApplicationError(_("This kind of payment cannot be made online."))
    choices = {
        "payer_email": (payer_email or "").strip(),
        "save_card_requested": bool(save_card_requested),
        "paperless_requested": bool(paperless_requested),
    }
    with transaction.atomic():
        locked = account_lock(account.pk)
        quote = payment_quote(account=locked, amount=amount, tip_percent=tip_percent, tip_amount=tip_amount)
        result = _payment_start_locked(account=locked, quote=quote, channel=channel, choices=choices, method=method)
    # Errors found after rows were written (an attempt, a recorded success) are raised after the commit.
    if isinstance(result, ApplicationError):
        raise result
    return result


def _unavailable() -> ApplicationError:
    return ApplicationError(_("The payment service is unavailable right now. Nothing was charged; please try again."))


def _payment_start_locked(*, account, quote: Quote, channel: str, choices: dict, method: str):
    online = Payment.objects.select_for_update().filter(account=account, channel__in=Payment.ONLINE_CHANNELS)
    payment = online.filter(status__in=Payment.IN_FLIGHT_STATUSES).first()
    if payment is not None and payment.method != method and payment.status == Payment.Status.PENDING:
        # The payer switched between card and bank: this intent was made for the other method. Cancel it (nothing was
        # confirmed on it) and start afresh.
        if payment.gateway_payment_id:
            try:
                payment_intent_cancel(payment=payment)
            except GatewayError:
                return _unavailable()
        payment_status_move(payment=payment, to=Payment.Status.CANCELED, message=f"payer switched to {method}")
        payment = None
    retry: Payment | None = None
    intent: IntentResult | None = None
    if payment is not None and not payment.gateway_payment_id:
        # An earlier start could not reach the gateway: create the intent now, with the same idempotency key.
        return _intent_create(payment=payment, quote=quote, choices=choices)
    if payment is None:
        retry = (
            online.filter(
                status=Payment.Status.FAILED, method=method, updated_at__gte=timezone.now() - ABANDONED_AFTER,
                applied_at__isnull=True,  # a returned bank debit is history, never retried on the same row
            )
            .order_by("-pk")
            .first()
        )
        payment = retry
    if payment is not None:
        try:
            intent = payment_intent_retrieve(payment, source="start")
        except GatewayUnavailable as error:
            if not error.not_found:
                return _unavailable()
            _intent_missing(payment)
            intent = None
        except GatewayError:
            return _unavailable()
    if intent is not None:
        payment_sync(payment=payment, intent=intent, source="start")
        if payment.status == Payment.Status.SUCCEEDED:
            return ApplicationError(
                _("A payment on this account has just gone through (confirmation %(number)s). Please check the "
                  "balance before paying again.") % {"number": payment.confirmation_number}  # fmt: skip
            )
        if payment.status in Payment.IN_FLIGHT_STATUSES:
            if intent.status not in OPEN_INTENT_STATUSES:
                return ApplicationError(
                    _("A payment on this account is being processed. Please wait a minute and check again.")
                )
            return _intent_reuse(payment=payment, intent=intent, quote=quote, choices=choices)
        if payment.status == Payment.Status.FAILED and intent.status in (*OPEN_INTENT_STATUSES, IntentStatus.CANCELED):
            return _intent_replace(payment=payment, intent=intent, quote=quote, choices=choices)
        # Canceled, or failed with money on it (an amount mismatch, for staff to look at): start afresh.
    payment = Payment.objects.create(
        biller_id=account.biller_id,
        account=account,
        confirmation_number=confirmation_number_new(),
        channel=channel,
        method=method,
        status=Payment.Status.PENDING,
        currency=quote.currency,
        amount=quote.amount,
        fee_amount=quote.fee,
        tip_amount=quote.tip,
        **choices,
    )
    payment.idempotency_key = our_key("payment", payment.pk)
    payment.save(update_fields=["idempotency_key"])
    event_record(
        kind=BillingEvent.Kind.PAYMENT_RECORDED, payment=payment, to_status=payment.status,
        amount=payment.total_charged, currency=payment.currency, message=f"online payment started ({channel})",
    )  # fmt: skip
    return _intent_create(payment=payment, quote=quote, choices=choices)


def _intent_missing(payment: Payment) -> None:
    """The gateway says the payment's intent does not exist (it was lost, e.g. a local stand-in restarted empty):
    nothing can be charged through it, so an in-flight payment is abandoned (canceled, with its event) and the
    start goes on with a new payment. A failed one simply stays failed."""
    logger.warning("payment %s: intent %s is unknown to the gateway; abandoned", payment.pk, payment.gateway_payment_id)
    if payment.status in Payment.IN_FLIGHT_STATUSES:
        payment_status_move(
            payment=payment, to=Payment.Status.CANCELED,
            message=f"abandoned: the gateway does not know intent {payment.gateway_payment_id}",
        )  # fmt: skip


def _quote_store(*, payment: Payment, quote: Quote, choices: dict) -> None:
    payment.amount, payment.fee_amount, payment.tip_amount = quote.amount, quote.fee, quote.tip
    for name, value in choices.items():
        setattr(payment, name, value)
    payment.save()


def _intent_create(*, payment: Payment, quote: Quote, choices: dict):
    _quote_store(payment=payment, quote=quote, choices=choices)
    gateway = gateway_api.get_gateway()
    # One key per intent of this payment: a retry after a transport error reuses the key of the intent it retries,
    # a fresh intent after a decline gets the next one.
    intents_so_far = (
        payment.attempts.filter(kind=PaymentAttempt.Kind.CREATE).exclude(gateway_reference__in=["", "-"]).count()
    )
    key = payment.idempotency_key if not intents_so_far else f"{payment.idempotency_key}:intent-{intents_so_far + 1}"
    try:
        intent = payment_gateway_call(
            payment=payment, kind=PaymentAttempt.Kind.CREATE, amount=payment.total_charged, idempotency_key=key,
            reference="-",
            call=lambda k: gateway.create_payment_intent(
                amount=payment.total_charged, currency=payment.currency, idempotency_key=k,
                metadata={
                    "payment": str(payment.pk),
                    "confirmation_number": payment.confirmation_number,
                    "account": payment.account.account_number,
                },
                description=f"{payment.account.biller.name} {payment.account.account_number}",
                receipt_email=payment.payer_email or None,
                # Real Stripe lets a card be attached to a customer afterwards (for autopay) only if the intent said
                # so up front; the gateway sends this to real Stripe only (localstripe rejects it).
                setup_future_usage="off_session" if payment.save_card_requested else None,
                payment_method_types=[payment.method] if payment.is_bank_debit else None,
            ),
        )  # fmt: skip
    except GatewayError:
        # The payment stays pending without an intent; the next start retries with the same key, the janitor
        # cancels it if nobody comes back.
        return _unavailable()
    payment.gateway_payment_id = intent.id
    payment.save(update_fields=["gateway_payment_id", "updated_at"])
    return payment, intent.client_secret


def _intent_reuse(*, payment: Payment, intent: IntentResult, quote: Quote, choices: dict):
    _quote_store(payment=payment, quote=quote, choices=choices)
    if intent.amount != payment.total_charged:
        gateway = gateway_api.get_gateway()
        try:
            intent = payment_gateway_call(
                payment=payment, kind=PaymentAttempt.Kind.UPDATE, amount=payment.total_charged, key_from_attempt=True,
                call=lambda k: gateway.update_payment_intent_amount(
                    payment.gateway_payment_id, amount=payment.total_charged, idempotency_key=k
                ),
            )  # fmt: skip
        except GatewayError:
            return _unavailable()
    return payment, intent.client_secret


def _intent_replace(*, payment: Payment, intent: IntentResult, quote: Quote, choices: dict):
    if intent.status != IntentStatus.CANCELED:
        try:
            payment_intent_cancel(payment=payment)
        except GatewayError:
            return _unavailable()
    payment.gateway_payment_id = None  # the old intent is canceled; its late webhooks now match no payment
    payment.save(update_fields=["gateway_payment_id", "updated_at"])
    payment_status_move(payment=payment, to=Payment.Status.PENDING, message="payer tries again with a new intent")
    return _intent_create(payment=payment, quote=quote, choices=choices)


# --------------------------------------------------------------------------------------------------------------------
# Confirming with the card the payer entered
#
# stripe.js turns the card into a payment method id in the browser (card data never reaches us); the server confirms
# the intent with that id. One path for real Stripe and localstripe, whose stand-in stripe.js cannot confirm an
# intent itself; stripe.js only handles 3-D Secure when the intent asks for it (requires_action).


@dataclass(frozen=True)
class ConfirmOutcome:
    """What the payment page does next. `status`: succeeded, processing, requires_action (run 3-D Secure with
    `client_secret`), declined (show `payer_message`, let the payer try another card), balance_changed (nothing was
    charged because less is owed now than was quoted: show `payer_message`, offer to reload) or failed."""

    payment: Payment
    status: str
    client_secret: str | None = None
    payer_message: str = ""


_PAYMENT_METHOD_ID = re.compile(r"^(pm|card|src)_[A-Za-z0-9_]{1,200}$")


def _confirm_outcome(payment: Payment, intent: IntentResult | None, declined_message: str = "") -> ConfirmOutcome:
    if payment.status == Payment.Status.SUCCEEDED:
        return ConfirmOutcome(payment, "succeeded")
    if payment.status == Payment.Status.PROCESSING:
        return ConfirmOutcome(payment, "processing")
    if payment.status == Payment.Status.REQUIRES_ACTION and intent is not None:
        return ConfirmOutcome(payment, "requires_action", client_secret=intent.client_secret)
    if payment.status == Payment.Status.FAILED:
        classify = bank_decline_classify if payment.is_bank_debit else decline_classify
        if not declined_message and intent is not None:
            declined_message = str(classify(intent.error_code, intent.decline_code).payer_message)
        return ConfirmOutcome(
            payment, "declined", payer_message=declined_message or str(decline_classify(None).payer_message)
        )
    if payment.status == Payment.Status.CANCELED:
        return ConfirmOutcome(
            payment, "failed", payer_message=_("This payment was cancelled. Please start again; nothing was charged.")
        )
    return ConfirmOutcome(payment, "pending")


def _owed_locked(account_id: int) -> int:
    """What the account owes now, with its payable bills locked (after the account and payment locks, by pk), so no
    other payment can lower it between this check and the confirm."""
    bills = Bill.objects.select_for_update().filter(account_id=account_id, status__in=Bill.PAYABLE_STATUSES)
    return sum(max(bill.balance_due, 0) for bill in bills.order_by("pk"))


def _payment_cancel_balance_changed(*, payment: Payment, owed: int) -> ConfirmOutcome:
    """The bills were paid down (autopay, the counter, another payer) after the payer's quote: charging it now would
    only be refunded. Cancel the unconfirmed intent, so a stale page cannot charge it either, and say so."""
    payment_intent_cancel(payment=payment)
    payment_status_move(
        payment=payment, to=Payment.Status.CANCELED,
        message=f"balance changed: {owed} owed now, {payment.amount} quoted; intent canceled, nothing charged",
    )  # fmt: skip
    return ConfirmOutcome(
        payment, "balance_changed",
        payer_message=_("The balance on this account changed while this page was open, so nothing was charged. "
                        "Please reload the page to see what is owed now."),
    )  # fmt: skip


def payment_confirm(
    *,
    account_id: int,
    payment_intent_id: str,
    payment_method_id: str | None = None,
    customer_id: str | None = None,
    mandate_acceptance: MandateAcceptance | None = None,
) -> ConfirmOutcome:
    """Confirm the account's in-flight payment with the payment method stripe.js created, or, without one, only
    record where the intent stands (after 3-D Secure in the page).

    Under the account and payment locks, so a double click confirms once: a second call finds the payment no longer
    pending and reports its state. An intent that is not this account's current one (a stale tab, a replaced intent)
    raises ApplicationError and nothing is sent to the gateway.

    What is owed is checked again under the locks right before the confirm, as autopay does: if the bills were paid
    down since the quote (autopay charged while the page was open) below the payment's amount, the intent is canceled
    and nothing is charged ("balance_changed"). A balance that went up is charged as quoted: that is the amount the
    payer saw and agreed to, and it pays part of what is owed now."""
    if payment_method_id is not None and not _PAYMENT_METHOD_ID.match(payment_method_id):
        raise ApplicationError(_("Please check the card details and try again."))
    error: GatewayError | None = None
    with transaction.atomic():
        account_lock(account_id)
        payment = (
            Payment.objects.select_for_update()
            .filter(account_id=account_id, gateway_payment_id=payment_intent_id, channel__in=Payment.ONLINE_CHANNELS)
            .first()
        )
        if not payment_intent_id or payment is None:
            raise ApplicationError(
                _("This payment page is out of date, so nothing was charged. Please reload the page and try again.")
            )
        if payment.status in FINAL_STATUSES:
            return _confirm_outcome(payment, None)
        if payment.status != Payment.Status.PENDING or payment_method_id is None:
            try:
                intent = payment_intent_retrieve(payment, source="page")
            except GatewayError as exc:
                error = exc
            else:
                payment_sync(payment=payment, intent=intent, source="page")
                return _confirm_outcome(payment, intent)
        elif payment.amount > (owed := _owed_locked(account_id)):
            try:
                return _payment_cancel_balance_changed(payment=payment, owed=owed)
            except GatewayError as exc:
                error = exc  # the intent stays open but unconfirmed, so nothing is charged; the payer tries again
        else:
            gateway = gateway_api.get_gateway()
            try:
                intent = payment_gateway_call(
                    payment=payment, kind=PaymentAttempt.Kind.CONFIRM, amount=payment.total_charged,
                    key_from_attempt=True,
                    call=lambda k: gateway.confirm_payment_intent(
                        payment.gateway_payment_id, payment_method=payment_method_id, idempotency_key=k,
                        customer=customer_id, mandate_acceptance=mandate_acceptance,
                    ),
                )  # fmt: skip
            except PaymentDeclined as declined:
                message = str(declined.payer_message)
                try:
                    intent = payment_intent_retrieve(payment, source="page")
                except GatewayError:
                    # The decline itself is certain; the next start asks the gateway again.
                    payment_status_move(payment=payment, to=Payment.Status.FAILED, message=f"declined: {declined.code}")
                    return _confirm_outcome(payment, None, message)
                payment_sync(payment=payment, intent=intent, source="page")
                if payment.status == Payment.Status.PENDING:  # an intent that kept no error: still a decline
                    payment_status_move(payment=payment, to=Payment.Status.FAILED, message=f"declined: {declined.code}")
                return _confirm_outcome(payment, intent, message)
            except GatewayError as exc:
                error = exc
            else:
                if intent.status == IntentStatus.SUCCEEDED and not intent.card_last4:
                    # The confirm answer names the payment method without its card; the receipt wants "Visa •••• 4242".
                    try:
                        intent = payment_intent_retrieve(payment, source="page")
                    except GatewayError:
                        pass  # the summary is a nicety; the success is certain
                payment_sync(payment=payment, intent=intent, source="page")
                return _confirm_outcome(payment, intent)
    logger.warning("payment confirm for intent %s failed: %s", payment_intent_id, error)
    raise ApplicationError(
        _("We could not reach the payment service. Please try again in a moment; you will not be charged twice.")
    )
