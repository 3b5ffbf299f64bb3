"""Online card payments: the quote, the exactly-once start, recording the gateway's result, the janitor and refunds.

The server alone decides what is charged. The browser may name an amount and a tip choice; `payment_quote` checks them
against the biller's rules and the bills as they are now, and `payment_start` recomputes the quote under the account's
row lock before anything reaches the gateway.
"""

from __future__ import annotations

import copy
import logging
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from django.db import transaction
from django.db.models import Q, Sum
from django.utils import timezone
from django.utils.translation import gettext as _

from .autopay import autopay_stop_for_paid_bills
from .errors import ApplicationError
from .gateway import (
    GatewayError,
    GatewayUnavailable,
    IntentResult,
    IntentStatus,
    PaymentDeclined,
    RefundResult,
    decline_classify,
    get_gateway,
)
from .models import Bill, BillingEvent, CustomerAccount, Payment, PaymentAllocation, PaymentAttempt, Refund
from .money import format_money, percent_of, validate_currency
from .services import _bill_move, confirmation_number_new, event_record, payment_apply

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Quote:
    """What the payer owes and what one payment would charge, all in integer minor units of `currency`.

    `amount` goes to the bills (oldest due first), `fee` is the biller's convenience fee, `tip` the payer's optional
    tip, and `total` = amount + fee + tip is what the card is charged."""

    owed: int
    amount: int
    fee: int
    tip: int
    total: int
    currency: str
    bills: tuple[Bill, ...]


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def payment_quote(
    *,
    account: CustomerAccount,
    amount: int | None = None,
    tip_percent: int | None = None,
    tip_amount: int | None = None,
) -> Quote:
    """Quote a payment on `account`. `amount` None means the full balance. At most one of `tip_percent` (one of the
    biller's presets) and `tip_amount` (a custom tip in minor units) may be given, and only when tips are enabled."""
    biller = account.biller
    currency = validate_currency(biller.currency)
    money = lambda minor: format_money(minor, currency)  # noqa: E731 - a local shorthand for the messages

    bills = tuple(
        Bill.objects.filter(account_id=account.pk, status__in=Bill.PAYABLE_STATUSES).order_by("due_date", "pk")
    )
    bills = tuple(bill for bill in bills if bill.balance_due > 0)
    owed = sum(bill.balance_due for bill in bills)
    if owed <= 0:
        raise ApplicationError(_("There is nothing to pay on this account right now."))

    if amount is None:
        amount = owed
    elif not _is_int(amount):
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
        presets = [int(p) for p in (biller.tip_presets or []) if _is_int(p) or str(p).isdigit()]
        if not _is_int(tip_percent) or tip_percent not in presets:
            raise ApplicationError(
                _("Choose one of the offered tip percentages: %(presets)s.")
                % {"presets": ", ".join(f"{p}%" for p in presets)}
            )
        tip = percent_of(amount, tip_percent * 100)
    elif tip_amount is not None:
        if not _is_int(tip_amount) or tip_amount < 0:
            raise ApplicationError(_("The tip cannot be negative."))
        tip = tip_amount

    return Quote(owed=owed, amount=amount, fee=fee, tip=tip, total=amount + fee + tip, currency=currency, bills=bills)


# --------------------------------------------------------------------------------------------------------------------
# Shared pieces
#
# Lock order, everywhere: the CustomerAccount row, then the Payment row, then the bills in primary-key order. Every
# service that changes an online payment's state takes the account lock first, so a start, a webhook, the browser's
# return and the janitor for one account run one after another, and never deadlock.

# A payer's online payment left unfinished this long is abandoned: the janitor cancels it, and a failed one is no
# longer picked up again by the next start.
ABANDONED_AFTER = timedelta(hours=24)
FINAL_STATUSES = (Payment.Status.SUCCEEDED, Payment.Status.CANCELED)
# Intent statuses in which the payer can still (re)confirm, so the amount may change and the intent may be canceled.
_OPEN_INTENT_STATUSES = (
    IntentStatus.REQUIRES_PAYMENT_METHOD,
    IntentStatus.REQUIRES_CONFIRMATION,
    IntentStatus.REQUIRES_ACTION,
)
# Intent statuses in which money has moved or is moving.
_CHARGED_INTENT_STATUSES = (IntentStatus.SUCCEEDED, IntentStatus.PROCESSING, IntentStatus.REQUIRES_CAPTURE)

_CARD_BRANDS = {
    "visa": "Visa",
    "mastercard": "Mastercard",
    "amex": "American Express",
    "discover": "Discover",
    "diners": "Diners Club",
    "jcb": "JCB",
    "unionpay": "UnionPay",
}


def _lock_account(account_id: int, *, skip_locked: bool = False) -> CustomerAccount | None:
    return CustomerAccount.objects.select_for_update(skip_locked=skip_locked).filter(pk=account_id).first()


def _payment_move(*, payment: Payment, to: str, message: str = "", actor=None) -> None:
    """Change a locked payment's status through the transition map, with an event. Moving to the same status is a
    no-op, so the services can be called repeatedly."""
    if payment.status == to:
        return
    if not payment.can_transition_to(to):
        raise ApplicationError(
            _("A %(from)s payment cannot become %(to)s.")
            % {"from": Payment.Status(payment.status).label.lower(), "to": Payment.Status(to).label.lower()}
        )
    from_status = payment.status
    payment.status = to
    payment.save(update_fields=["status", "updated_at"])
    event_record(
        kind=BillingEvent.Kind.PAYMENT_STATUS, payment=payment, from_status=from_status, to_status=to,
        amount=payment.total_charged, currency=payment.currency, message=message, actor=actor,
    )  # fmt: skip


def _intent_outcome(intent: IntentResult) -> str:
    if intent.status == IntentStatus.SUCCEEDED:
        return PaymentAttempt.Outcome.SUCCEEDED
    if intent.status == IntentStatus.REQUIRES_ACTION:
        return PaymentAttempt.Outcome.REQUIRES_ACTION
    if intent.status == IntentStatus.CANCELED:
        return PaymentAttempt.Outcome.CANCELED
    if _intent_declined(intent):
        return PaymentAttempt.Outcome.DECLINED
    return PaymentAttempt.Outcome.PENDING


def _intent_declined(intent: IntentResult) -> bool:
    return intent.status == IntentStatus.REQUIRES_PAYMENT_METHOD and bool(intent.error_code or intent.decline_code)


def _gateway_call(
    *,
    payment: Payment,
    kind: str,
    amount: int,
    call: Callable[[str | None], object],
    idempotency_key: str | None = None,
    key_from_attempt: bool = False,
    reference: str = "",
):
    """Make one gateway call and write its PaymentAttempt row (before the call, completed after it, so a crash in
    between still leaves a trace). With key_from_attempt the idempotency key is `attempt-<pk>` of that row."""
    attempt = PaymentAttempt.objects.create(
        payment=payment, kind=kind, amount=max(amount, 0), currency=payment.currency,
        outcome=PaymentAttempt.Outcome.PENDING, gateway_reference=reference or payment.gateway_payment_id or "",
    )  # fmt: skip
    if key_from_attempt:
        idempotency_key = attempt.idempotency_key = f"attempt-{attempt.pk}"
    elif idempotency_key and not PaymentAttempt.objects.filter(idempotency_key=idempotency_key).exists():
        attempt.idempotency_key = idempotency_key  # a retry with the same key is recorded without it (unique column)
    try:
        result = call(idempotency_key)
    except PaymentDeclined as exc:
        attempt.outcome = PaymentAttempt.Outcome.DECLINED
        attempt.decline_code = (exc.decline_code or exc.code or "")[:64]
        attempt.message = (exc.message or "")[:500]
        attempt.gateway_reference = exc.payment_intent_id or attempt.gateway_reference
        attempt.save()
        raise
    except GatewayError as exc:
        attempt.outcome = PaymentAttempt.Outcome.ERROR
        attempt.message = str(exc)[:500]
        attempt.save()
        raise
    if isinstance(result, IntentResult):
        attempt.outcome = _intent_outcome(result)
        attempt.gateway_reference = result.id
        if attempt.outcome == PaymentAttempt.Outcome.DECLINED:
            attempt.decline_code = (result.decline_code or result.error_code or "")[:64]
            attempt.message = (result.error_message or "")[:500]
    else:
        attempt.outcome = PaymentAttempt.Outcome.SUCCEEDED
        attempt.gateway_reference = getattr(result, "id", "") or attempt.gateway_reference
    attempt.save()
    return result


def _retrieve(payment: Payment, *, source: str) -> IntentResult:
    gateway = get_gateway()
    intent = _gateway_call(
        payment=payment, kind=PaymentAttempt.Kind.RETRIEVE, amount=payment.total_charged,
        call=lambda _key: gateway.retrieve_payment_intent(payment.gateway_payment_id),
    )  # fmt: skip
    logger.info("payment %s: intent %s is %s (%s)", payment.pk, intent.id, intent.status, source)
    return intent


def _card_summary(intent: IntentResult) -> str:
    if not intent.card_last4:
        return ""
    brand = _CARD_BRANDS.get((intent.card_brand or "").lower(), (intent.card_brand or _("Card")).title())
    return f"{brand} •••• {intent.card_last4}"


# --------------------------------------------------------------------------------------------------------------------
# Recording what the gateway says


def _payment_sync(*, payment: Payment, intent: IntentResult, source: str) -> None:
    """Bring a locked payment in line with its intent as the gateway reports it. Idempotent."""
    if payment.status in FINAL_STATUSES:
        return
    if intent.status in _CHARGED_INTENT_STATUSES and (
        intent.amount != payment.total_charged or intent.currency.upper() != payment.currency.upper()
    ):
        # Someone changed the intent behind our back (or a bug did): never apply money we did not ask for.
        logger.error(
            "payment %s: amount mismatch, intent %s charges %s %s, expected %s %s",
            payment.pk, intent.id, intent.amount, intent.currency, payment.total_charged, payment.currency,
        )  # fmt: skip
        if payment.status != Payment.Status.FAILED:
            _payment_move(
                payment=payment, to=Payment.Status.FAILED,
                message=f"amount mismatch: gateway {intent.amount} {intent.currency.upper()}, "
                f"expected {payment.total_charged} {payment.currency} ({source})",
            )  # fmt: skip
        return
    if payment.status == Payment.Status.FAILED and intent.status in (
        *_CHARGED_INTENT_STATUSES,
        IntentStatus.REQUIRES_ACTION,
    ):
        # The payer tried again on the same intent (another card in the same page) after a decline.
        _payment_move(payment=payment, to=Payment.Status.PENDING, message=f"payer tried again ({source})")

    if intent.status == IntentStatus.SUCCEEDED:
        _payment_succeed(payment=payment, intent=intent, source=source)
    elif intent.status in (IntentStatus.PROCESSING, IntentStatus.REQUIRES_CAPTURE):
        if payment.status in (Payment.Status.PENDING, Payment.Status.REQUIRES_ACTION):
            _payment_move(payment=payment, to=Payment.Status.PROCESSING, message=source)
    elif intent.status == IntentStatus.REQUIRES_ACTION:
        if payment.status == Payment.Status.PENDING:
            _payment_move(payment=payment, to=Payment.Status.REQUIRES_ACTION, message=source)
    elif _intent_declined(intent):
        if payment.status in Payment.IN_FLIGHT_STATUSES:
            code = intent.decline_code or intent.error_code
            _payment_move(payment=payment, to=Payment.Status.FAILED, message=f"declined: {code} ({source})")
    elif intent.status == IntentStatus.CANCELED:
        if payment.status in Payment.IN_FLIGHT_STATUSES:
            _payment_move(payment=payment, to=Payment.Status.CANCELED, message=f"intent canceled ({source})")


def _payment_succeed(*, payment: Payment, intent: IntentResult, source: str) -> None:
    payment.received_at = timezone.now()
    payment.payment_method_summary = _card_summary(intent) or payment.payment_method_summary
    payment.save(update_fields=["received_at", "payment_method_summary", "updated_at"])
    _payment_move(payment=payment, to=Payment.Status.SUCCEEDED, message=source)
    # The receipt notice (payment_received, through the notifications outbox) and the payer's enrolment choices
    # follow the one recorded success, after commit. Raised once whichever path got here first (one conditional
    # UPDATE of receipt_sent_at, and one outbox row per payment, kind and channel).
    from .receipts import payment_after_success  # imported here: receipts renders documents and reads payments

    payment_pk = payment.pk
    transaction.on_commit(lambda: payment_after_success(payment_id=payment_pk))

    # The bills may have been paid some other way (at the counter, a second payer) since the quote. Apply only what
    # is owed now, under the bill locks, and give the rest back: a bill is never overpaid.
    bills = list(
        Bill.objects.select_for_update()
        .filter(account_id=payment.account_id, status__in=Bill.PAYABLE_STATUSES)
        .order_by("pk")
    )
    owed = sum(bill.balance_due for bill in bills)
    applied = min(owed, payment.amount)
    if applied:
        portion = copy.copy(payment)  # payment_apply applies `amount`; the row itself keeps what was charged
        portion.amount = applied
        payment_apply(payment=portion)
    if applied < payment.amount:
        # Nothing applied at all: nothing was delivered for the fee and tip either, so they go back too.
        excess = payment.amount - applied if applied else payment.total_charged
        _refund_excess(payment=payment, amount=excess)


def _refund_excess(*, payment: Payment, amount: int) -> None:
    """Give back what could not be applied, inside the caller's transaction (account and payment locked). If the
    gateway refuses, the payment stays succeeded and an event tells staff to refund the excess by hand; if its answer
    is lost, the refund is pending confirmation and the janitor settles it (`refunds_reconcile`)."""
    reason = _("The bills were already paid; the extra amount is returned automatically.")
    refund = _refund_row(payment=payment, amount=amount, reason=reason, actor=None, kind=Refund.Kind.EXCESS)
    status, result, error = _refund_send(payment=payment, refund=refund)
    message = reason
    if status == Refund.Status.FAILED:
        message = f"excess of {amount} could not be refunded automatically, refund it by hand: {error}"
    elif status == Refund.Status.UNKNOWN:
        message = f"excess refund of {amount} pending confirmation, the janitor checks with the gateway: {error}"
    _refund_record(payment=payment, refund=refund, to=status, result=result, message=message)


def payment_record_result(*, payment_intent_id: str, source: str) -> Payment | None:
    """Record what the gateway says about a payment's intent: the one path for the webhook, the payer's return to
    the site, the janitor and a repeated start. Safe to call any number of times, concurrently.

    The gateway is asked again; a webhook body is only a hint of which intent to look at. Returns None for an intent
    that is not (or no longer) a payment's, e.g. one replaced after a decline. A GatewayUnavailable is raised after
    the attempt row is committed: the caller retries later (the janitor will anyway)."""
    error: GatewayError | None = None
    with transaction.atomic():
        row = Payment.objects.filter(gateway_payment_id=payment_intent_id).values("pk", "account_id").first()
        if row is None:
            logger.info("payment intent %s belongs to no payment (%s)", payment_intent_id, source)
            return None
        _lock_account(row["account_id"])
        payment = Payment.objects.select_for_update().get(pk=row["pk"])
        if payment.gateway_payment_id != payment_intent_id:
            return None  # replaced while we waited for the lock
        if payment.status in FINAL_STATUSES:
            return payment
        try:
            intent = _retrieve(payment, source=source)
        except GatewayError as exc:
            error = exc
        else:
            _payment_sync(payment=payment, intent=intent, source=source)
    if error is not None:
        raise error
    return payment


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
) -> tuple[Payment, str]:
    """Start (or resume) the account's online payment and return it with the intent's client secret for stripe.js.

    Exactly once: under the account's row lock the quote is recomputed and the account's one in-flight payment is
    reused (its intent's amount updated if the payer changed it), so any number of concurrent submissions yield one
    Payment and one PaymentIntent. The partial unique constraint "one_in_flight_online_payment_per_account" backs
    this even if the lock were bypassed. After a decline the same payment is reused with a fresh intent (the declined
    one is canceled): localstripe cannot confirm an intent again after a charge failed, and a canceled intent cannot
    be charged from a stale page."""
    if channel not in Payment.ONLINE_CHANNELS:
        raise ApplicationError(_("This kind of payment cannot be made online."))
    choices = {
        "payer_email": (payer_email or "").strip(),
        "save_card_requested": bool(save_card_requested),
        "paperless_requested": bool(paperless_requested),
    }
    with transaction.atomic():
        locked = _lock_account(account.pk)
        quote = payment_quote(account=locked, amount=amount, tip_percent=tip_percent, tip_amount=tip_amount)
        result = _payment_start_locked(account=locked, quote=quote, channel=channel, choices=choices)
    # Errors found after rows were written (an attempt, a recorded success) are raised after the commit.
    if isinstance(result, ApplicationError):
        raise result
    return result


def _unavailable() -> ApplicationError:
    return ApplicationError(_("The payment service is unavailable right now. Nothing was charged; please try again."))


def _payment_start_locked(*, account, quote: Quote, channel: str, choices: dict):
    online = Payment.objects.select_for_update().filter(account=account, channel__in=Payment.ONLINE_CHANNELS)
    payment = online.filter(status__in=Payment.IN_FLIGHT_STATUSES).first()
    retry: Payment | None = None
    if payment is not None and not payment.gateway_payment_id:
        # An earlier start could not reach the gateway: create the intent now, with the same idempotency key.
        return _intent_create(payment=payment, quote=quote, choices=choices)
    if payment is None:
        retry = (
            online.filter(status=Payment.Status.FAILED, updated_at__gte=timezone.now() - ABANDONED_AFTER)
            .order_by("-pk")
            .first()
        )
        payment = retry
    if payment is not None:
        try:
            intent = _retrieve(payment, source="start")
        except GatewayError:
            return _unavailable()
        _payment_sync(payment=payment, intent=intent, source="start")
        if payment.status == Payment.Status.SUCCEEDED:
            return ApplicationError(
                _("A payment on this account has just gone through (confirmation %(number)s). Please check the "
                  "balance before paying again.") % {"number": payment.confirmation_number}  # fmt: skip
            )
        if payment.status in Payment.IN_FLIGHT_STATUSES:
            if intent.status not in _OPEN_INTENT_STATUSES:
                return ApplicationError(
                    _("A payment on this account is being processed. Please wait a minute and check again.")
                )
            return _intent_reuse(payment=payment, intent=intent, quote=quote, choices=choices)
        if payment.status == Payment.Status.FAILED and intent.status in (*_OPEN_INTENT_STATUSES, IntentStatus.CANCELED):
            return _intent_replace(payment=payment, intent=intent, quote=quote, choices=choices)
        # Canceled, or failed with money on it (an amount mismatch, for staff to look at): start afresh.
    payment = Payment.objects.create(
        biller_id=account.biller_id,
        account=account,
        confirmation_number=confirmation_number_new(),
        channel=channel,
        method=Payment.Method.CARD,
        status=Payment.Status.PENDING,
        currency=quote.currency,
        amount=quote.amount,
        fee_amount=quote.fee,
        tip_amount=quote.tip,
        **choices,
    )
    payment.idempotency_key = f"payment-{payment.pk}"
    payment.save(update_fields=["idempotency_key"])
    event_record(
        kind=BillingEvent.Kind.PAYMENT_RECORDED, payment=payment, to_status=payment.status,
        amount=payment.total_charged, currency=payment.currency, message=f"online payment started ({channel})",
    )  # fmt: skip
    return _intent_create(payment=payment, quote=quote, choices=choices)


def _quote_store(*, payment: Payment, quote: Quote, choices: dict) -> None:
    payment.amount, payment.fee_amount, payment.tip_amount = quote.amount, quote.fee, quote.tip
    for name, value in choices.items():
        setattr(payment, name, value)
    payment.save()


def _intent_create(*, payment: Payment, quote: Quote, choices: dict):
    _quote_store(payment=payment, quote=quote, choices=choices)
    gateway = get_gateway()
    # One key per intent of this payment: a retry after a transport error reuses the key of the intent it retries,
    # a fresh intent after a decline gets the next one.
    intents_so_far = (
        payment.attempts.filter(kind=PaymentAttempt.Kind.CREATE).exclude(gateway_reference__in=["", "-"]).count()
    )
    key = payment.idempotency_key if not intents_so_far else f"{payment.idempotency_key}:intent-{intents_so_far + 1}"
    try:
        intent = _gateway_call(
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
        gateway = get_gateway()
        try:
            intent = _gateway_call(
                payment=payment, kind=PaymentAttempt.Kind.UPDATE, amount=payment.total_charged, key_from_attempt=True,
                call=lambda k: gateway.update_payment_intent_amount(
                    payment.gateway_payment_id, amount=payment.total_charged, idempotency_key=k
                ),
            )  # fmt: skip
        except GatewayError:
            return _unavailable()
    return payment, intent.client_secret


def _intent_replace(*, payment: Payment, intent: IntentResult, quote: Quote, choices: dict):
    gateway = get_gateway()
    if intent.status != IntentStatus.CANCELED:
        try:
            _gateway_call(
                payment=payment, kind=PaymentAttempt.Kind.CANCEL, amount=payment.total_charged, key_from_attempt=True,
                call=lambda k: gateway.cancel_payment_intent(payment.gateway_payment_id, idempotency_key=k),
            )  # fmt: skip
        except GatewayError:
            return _unavailable()
    payment.gateway_payment_id = None  # the old intent is canceled; its late webhooks now match no payment
    payment.save(update_fields=["gateway_payment_id", "updated_at"])
    _payment_move(payment=payment, to=Payment.Status.PENDING, message="payer tries again with a new intent")
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
        if not declined_message and intent is not None:
            declined_message = str(decline_classify(intent.error_code, intent.decline_code).payer_message)
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
    gateway = get_gateway()
    _gateway_call(
        payment=payment, kind=PaymentAttempt.Kind.CANCEL, amount=payment.total_charged, key_from_attempt=True,
        call=lambda k: gateway.cancel_payment_intent(payment.gateway_payment_id, idempotency_key=k),
    )  # fmt: skip
    _payment_move(
        payment=payment, to=Payment.Status.CANCELED,
        message=f"balance changed: {owed} owed now, {payment.amount} quoted; intent canceled, nothing charged",
    )  # fmt: skip
    return ConfirmOutcome(
        payment, "balance_changed",
        payer_message=_("The balance on this account changed while this page was open, so nothing was charged. "
                        "Please reload the page to see what is owed now."),
    )  # fmt: skip


def payment_confirm(
    *, account_id: int, payment_intent_id: str, payment_method_id: str | None = None, customer_id: str | None = None
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
        _lock_account(account_id)
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
                intent = _retrieve(payment, source="page")
            except GatewayError as exc:
                error = exc
            else:
                _payment_sync(payment=payment, intent=intent, source="page")
                return _confirm_outcome(payment, intent)
        elif payment.amount > (owed := _owed_locked(account_id)):
            try:
                return _payment_cancel_balance_changed(payment=payment, owed=owed)
            except GatewayError as exc:
                error = exc  # the intent stays open but unconfirmed, so nothing is charged; the payer tries again
        else:
            gateway = get_gateway()
            try:
                intent = _gateway_call(
                    payment=payment, kind=PaymentAttempt.Kind.CONFIRM, amount=payment.total_charged,
                    key_from_attempt=True,
                    call=lambda k: gateway.confirm_payment_intent(
                        payment.gateway_payment_id, payment_method=payment_method_id, idempotency_key=k,
                        customer=customer_id,
                    ),
                )  # fmt: skip
            except PaymentDeclined as declined:
                message = str(declined.payer_message)
                try:
                    intent = _retrieve(payment, source="page")
                except GatewayError:
                    # The decline itself is certain; the next start asks the gateway again.
                    _payment_move(payment=payment, to=Payment.Status.FAILED, message=f"declined: {declined.code}")
                    return _confirm_outcome(payment, None, message)
                _payment_sync(payment=payment, intent=intent, source="page")
                if payment.status == Payment.Status.PENDING:  # an intent that kept no error: still a decline
                    _payment_move(payment=payment, to=Payment.Status.FAILED, message=f"declined: {declined.code}")
                return _confirm_outcome(payment, intent, message)
            except GatewayError as exc:
                error = exc
            else:
                if intent.status == IntentStatus.SUCCEEDED and not intent.card_last4:
                    # The confirm answer names the payment method without its card; the receipt wants "Visa •••• 4242".
                    try:
                        intent = _retrieve(payment, source="page")
                    except GatewayError:
                        pass  # the summary is a nicety; the success is certain
                _payment_sync(payment=payment, intent=intent, source="page")
                return _confirm_outcome(payment, intent)
    logger.warning("payment confirm for intent %s failed: %s", payment_intent_id, error)
    raise ApplicationError(
        _("We could not reach the payment service. Please try again in a moment; you will not be charged twice.")
    )


# --------------------------------------------------------------------------------------------------------------------
# The janitor


def payments_reconcile(*, older_than_minutes: int = 15, batch_size: int = 500) -> dict[str, int]:
    """Ask the gateway about online payments left unfinished for `older_than_minutes` (a webhook lost, a payer who
    closed the tab), and cancel those abandoned for ABANDONED_AFTER. Accounts another worker holds are skipped; the
    next run takes them."""
    now = timezone.now()
    candidates = list(
        Payment.objects.filter(
            status__in=Payment.IN_FLIGHT_STATUSES,
            updated_at__lt=now - timedelta(minutes=older_than_minutes),
        )
        .order_by("pk")
        .values_list("pk", "account_id")[:batch_size]
    )
    counts = {"checked": 0, "skipped": 0, "canceled": 0, "errors": 0}
    for pk, account_id in candidates:
        try:
            with transaction.atomic():
                if _lock_account(account_id, skip_locked=True) is None:
                    counts["skipped"] += 1
                    continue
                payment = Payment.objects.select_for_update().get(pk=pk)
                if payment.status not in Payment.IN_FLIGHT_STATUSES:
                    continue
                counts["checked"] += 1
                counts["canceled"] += _payment_reconcile_locked(payment=payment, abandoned_before=now - ABANDONED_AFTER)
        except GatewayError:
            counts["errors"] += 1
            logger.warning("payment %s: reconcile failed, will try again on the next run", pk, exc_info=True)
    return counts


def _payment_reconcile_locked(*, payment: Payment, abandoned_before) -> int:
    intent = None
    if payment.gateway_payment_id:
        intent = _retrieve(payment, source="janitor")
        _payment_sync(payment=payment, intent=intent, source="janitor")
    if payment.status not in Payment.IN_FLIGHT_STATUSES or payment.updated_at >= abandoned_before:
        return 0
    if intent is not None and intent.status not in _OPEN_INTENT_STATUSES:
        return 0  # processing: money is moving, never cancel it
    if intent is not None:
        gateway = get_gateway()
        _gateway_call(
            payment=payment, kind=PaymentAttempt.Kind.CANCEL, amount=payment.total_charged, key_from_attempt=True,
            call=lambda k: gateway.cancel_payment_intent(payment.gateway_payment_id, idempotency_key=k),
        )  # fmt: skip
    _payment_move(payment=payment, to=Payment.Status.CANCELED, message="abandoned: not completed within 24 hours")
    return 1


# --------------------------------------------------------------------------------------------------------------------
# Refunds


def _refund_row(*, payment: Payment, amount: int, reason: str, actor, kind: str = Refund.Kind.STAFF) -> Refund:
    refund = Refund.objects.create(
        payment=payment, kind=kind, amount=amount, currency=payment.currency, reason=reason[:500],
        status=Refund.Status.PENDING, idempotency_key=f"new-{uuid.uuid4()}",
        created_by=actor if getattr(actor, "is_authenticated", False) else None,
    )  # fmt: skip
    refund.idempotency_key = f"refund-{refund.pk}"
    refund.save(update_fields=["idempotency_key"])
    return refund


def _refund_status_of(result: RefundResult) -> str:
    """Our status for a refund as the gateway reports it. Stripe's "pending" refund is on its way: the money is
    committed, so it counts as made (as before); "requires_action" and unknown values stay unknown."""
    if result.status in ("succeeded", "pending"):
        return Refund.Status.SUCCEEDED
    if result.status in ("failed", "canceled"):
        return Refund.Status.FAILED
    return Refund.Status.UNKNOWN


def _refund_send(*, payment: Payment, refund: Refund) -> tuple[str, RefundResult | None, GatewayError | None]:
    """Send one refund to the gateway with the row's own idempotency key and its pk in the metadata (which is how
    `_refund_settle_locked` recognises it later). Returns the status it ends in, the result and the error.

    A transport error (retryable) means the request may have been carried out and only the answer lost: UNKNOWN,
    never FAILED. Only a refusal the gateway actually sent (a 4xx, a decline) proves nothing was refunded."""
    gateway = get_gateway()
    try:
        result = _gateway_call(
            payment=payment, kind=PaymentAttempt.Kind.REFUND, amount=refund.amount,
            idempotency_key=refund.idempotency_key,
            call=lambda key: gateway.create_refund(
                payment_intent=payment.gateway_payment_id, amount=refund.amount, idempotency_key=key,
                metadata={"payment": str(payment.pk), "refund": str(refund.pk)},
            ),
        )  # fmt: skip
    except GatewayUnavailable as exc:
        return (Refund.Status.UNKNOWN if exc.retryable else Refund.Status.FAILED), None, exc
    except GatewayError as exc:
        return Refund.Status.FAILED, None, exc
    return _refund_status_of(result), result, None


def _refund_move(*, payment: Payment, refund: Refund, to: str, message: str = "", actor=None) -> None:
    """Change a locked refund's status through Refund.TRANSITIONS, with an event in the payment's history."""
    if not refund.can_transition_to(to):
        raise ApplicationError(
            _("A %(from)s refund cannot become %(to)s.")
            % {"from": Refund.Status(refund.status).label.lower(), "to": Refund.Status(to).label.lower()}
        )
    from_status = refund.status
    refund.status = to
    refund.save(update_fields=["status", "gateway_refund_id"])
    event_record(
        kind=BillingEvent.Kind.REFUND_STATUS, payment=payment, from_status=from_status, to_status=to,
        amount=refund.amount, currency=refund.currency, message=message, actor=actor,
    )  # fmt: skip


def _refund_record(
    *, payment: Payment, refund: Refund, to: str, result: RefundResult | None = None, message: str = "", actor=None
) -> None:
    """Record a refund's outcome on the locked payment and refund. Idempotent: a refund already in `to` (settled by
    the janitor meanwhile, say) is left alone, so its money is never counted twice."""
    if refund.status == to:
        return
    if result is not None:
        refund.gateway_refund_id = result.id
    _refund_move(payment=payment, refund=refund, to=to, message=message, actor=actor)
    if to == Refund.Status.SUCCEEDED:
        _refund_apply(payment=payment, refund=refund, actor=actor or refund.created_by)


def _refund_apply(*, payment: Payment, refund: Refund, actor=None) -> None:
    """Money that went back to the payer: count it on the payment, take it off the bills (newest first) unless it
    never was on them (an excess), and tell the payer after commit."""
    # Never more than our records leave (a dashboard refund after a chargeback, say): the constraint
    # payment_refund_capped holds, and the difference is left for staff.
    room = payment.total_charged - payment.amount_refunded - payment.amount_disputed
    counted = min(refund.amount, max(room, 0))
    payment.amount_refunded += counted
    payment.save(update_fields=["amount_refunded", "updated_at"])
    event_record(
        kind=BillingEvent.Kind.REFUND, payment=payment, amount=refund.amount, currency=payment.currency,
        message=refund.reason, actor=actor,
    )  # fmt: skip
    if counted < refund.amount:
        event_record(
            kind=BillingEvent.Kind.REFUND, payment=payment, amount=refund.amount - counted, currency=payment.currency,
            message=f"refund {refund.gateway_refund_id or refund.pk} is more than our records leave on the payment "
            "(refunded or withdrawn by a dispute already): staff, please check",
        )  # fmt: skip
    if refund.kind != Refund.Kind.EXCESS:
        allocations_reverse(payment=payment, amount=counted, reason=refund.reason, actor=actor)
    refund_pk = refund.pk
    transaction.on_commit(lambda: refund_notice_send(refund_id=refund_pk))


def refund_create(*, payment: Payment, amount: int, reason: str, actor) -> Refund:
    """Give back part or all of a succeeded payment, and reopen the bills it paid (newest bill first).

    In three steps, so that money never moves without a row saying so: (1) under the payment lock, check the cap
    (what was charged, less what was refunded, withdrawn by a dispute, or is being refunded) and write a pending
    Refund; (2) call the gateway with the refund's own idempotency key; (3) under the lock again, record the outcome.
    A crash between the steps leaves a pending refund, and a lost answer an unknown one ("pending confirmation"):
    both still count against the cap and only `refund_settle` (staff, or the janitor) finishes them. localstripe
    refunds any amount; only this code and the payment_refund_capped constraint stop a refund of more than was paid."""
    reason = (reason or "").strip()
    if not _is_int(amount) or amount <= 0:
        raise ApplicationError(_("Enter a refund amount of more than zero."))
    if not reason:
        raise ApplicationError(_("Enter the reason for the refund."))
    with transaction.atomic():
        payment = Payment.objects.select_for_update().get(pk=payment.pk)
        if payment.status != Payment.Status.SUCCEEDED:
            raise ApplicationError(_("Only a payment that went through can be refunded."))
        if payment.refunds.filter(status=Refund.Status.UNKNOWN).exists():
            # Refunding again now is how the same money went out twice: settle the first one before anything else.
            raise ApplicationError(
                _("A refund of this payment is pending confirmation from the payment service. Check it with the "
                  "gateway (Refunds, “Check with the gateway / retry”) before refunding again.")  # fmt: skip
            )
        in_progress = payment.refunds.filter(status__in=Refund.HELD_STATUSES).aggregate(s=Sum("amount"))["s"] or 0
        available = payment.refundable - in_progress
        if amount > available:
            if available <= 0:
                raise ApplicationError(_("This payment has already been refunded in full."))
            raise ApplicationError(
                _("At most %(amount)s of this payment can still be refunded.")
                % {"amount": format_money(available, payment.currency)}
            )
        refund = _refund_row(payment=payment, amount=amount, reason=reason, actor=actor)

    # Without a gateway id (cash, cheque) staff hand the money back themselves; the record is all there is.
    status, result, error = Refund.Status.SUCCEEDED, None, None
    if payment.gateway_payment_id:
        status, result, error = _refund_send(payment=payment, refund=refund)

    with transaction.atomic():
        payment = Payment.objects.select_for_update().get(pk=payment.pk)
        refund = Refund.objects.select_for_update().get(pk=refund.pk)
        if refund.status == Refund.Status.PENDING:  # else the janitor settled it meanwhile
            message = reason if status == Refund.Status.SUCCEEDED else f"refund {status}: {error}"
            _refund_record(payment=payment, refund=refund, to=status, result=result, message=message, actor=actor)
    if status == Refund.Status.FAILED:
        raise ApplicationError(_("The refund could not be made. Nothing was refunded; please try again later."))
    if status == Refund.Status.UNKNOWN:
        raise ApplicationError(
            _("The payment service did not confirm this refund, so it is pending confirmation: it may have been "
              "made. Billpay checks with the payment service and completes it; do not refund this payment again.")
        )  # fmt: skip
    return refund


def _refund_match(refund: Refund, found: list[RefundResult]) -> RefundResult | None:
    for candidate in found:
        if refund.gateway_refund_id and candidate.id == refund.gateway_refund_id:
            return candidate
        if candidate.metadata.get("refund") == str(refund.pk) and candidate.metadata.get("payment") == str(
            refund.payment_id
        ):
            return candidate
    return None


def _refunds_list(payment: Payment) -> list[RefundResult]:
    gateway = get_gateway()
    return _gateway_call(
        payment=payment, kind=PaymentAttempt.Kind.RETRIEVE, amount=0,
        call=lambda _key: gateway.list_refunds(payment_intent=payment.gateway_payment_id),
    )  # fmt: skip


def _refund_settle_locked(*, payment: Payment, refund: Refund, source: str, actor=None) -> None:
    """Find out what became of a pending or unknown refund (account, payment and refund locked).

    FIRST the intent's refunds are listed at the gateway and ours is looked for (by id, or by the refund pk in its
    metadata). Only if it is not there may it be sent again, with the same row and the same idempotency key: that
    keeps one payout even on localstripe, which ignores idempotency keys. A GatewayError while listing leaves it as
    it is (raised to the caller)."""
    found = _refunds_list(payment)
    match = _refund_match(refund, found)
    if match is not None:
        to = _refund_status_of(match)
        if to != refund.status and to != Refund.Status.UNKNOWN:
            _refund_record(
                payment=payment, refund=refund, to=to, result=match, actor=actor,
                message=f"found at the gateway as {match.status} ({source})",
            )  # fmt: skip
        return
    # Not at the gateway: nothing went out, so sending it again cannot pay twice.
    status, result, error = _refund_send(payment=payment, refund=refund)
    _refund_record(
        payment=payment, refund=refund, to=status, result=result, actor=actor,
        message=f"not found at the gateway, sent again: {result.status if result else error} ({source})",
    )  # fmt: skip


# A pending refund younger than this may still be in its own refund_create's gateway call (made outside the locks).
REFUND_IN_FLIGHT_FOR = timedelta(minutes=15)


def refund_settle(*, refund: Refund, actor=None, source: str = "staff") -> Refund:
    """Settle a refund whose outcome we do not know ("pending confirmation"): staff's "Check with the gateway /
    retry" and the janitor both come here. Under the account and payment locks, so two of them never both send it.
    Raises ApplicationError when the gateway cannot be reached (the refund stays pending confirmation)."""
    payment_row = Payment.objects.filter(pk=refund.payment_id).values("account_id").get()
    error: GatewayError | None = None
    with transaction.atomic():
        _lock_account(payment_row["account_id"])
        payment = Payment.objects.select_for_update().get(pk=refund.payment_id)
        refund = Refund.objects.select_for_update().get(pk=refund.pk)
        if refund.status == Refund.Status.PENDING and refund.created_at > timezone.now() - REFUND_IN_FLIGHT_FOR:
            # Its own refund_create may still be waiting for the gateway: listing now would not find it yet, and
            # sending it again would pay twice. The janitor takes it once this has passed.
            raise ApplicationError(_("This refund is still being sent to the payment service. Check again in a few "
                                     "minutes."))
        if refund.status in Refund.HELD_STATUSES and payment.gateway_payment_id:
            try:
                _refund_settle_locked(payment=payment, refund=refund, source=source, actor=actor)
            except GatewayError as exc:
                error = exc  # the attempt row is kept; the refund stays as it was
    if error is not None:
        raise ApplicationError(
            _("The payment service could not be reached, so the refund is still pending confirmation. "
              "Please try again later.")  # fmt: skip
        )
    return refund


def refunds_reconcile(*, batch_size: int = 500) -> dict[str, int]:
    """The janitor's part for refunds: settle every unknown refund, and pending ones left by a crash between the
    gateway call and recording it (older than REFUND_IN_FLIGHT_FOR). Accounts another worker holds are skipped."""
    stale = timezone.now() - REFUND_IN_FLIGHT_FOR
    candidates = list(
        Refund.objects.filter(
            Q(status=Refund.Status.UNKNOWN) | Q(status=Refund.Status.PENDING, created_at__lt=stale),
            payment__gateway_payment_id__isnull=False,
        )
        .order_by("pk")
        .values_list("pk", "payment_id", "payment__account_id")[:batch_size]
    )
    counts = {"checked": 0, "skipped": 0, "succeeded": 0, "failed": 0, "unknown": 0, "errors": 0}
    for pk, payment_id, account_id in candidates:
        try:
            with transaction.atomic():
                if _lock_account(account_id, skip_locked=True) is None:
                    counts["skipped"] += 1
                    continue
                payment = Payment.objects.select_for_update().get(pk=payment_id)
                refund = Refund.objects.select_for_update().get(pk=pk)
                if refund.status not in Refund.HELD_STATUSES:
                    continue
                counts["checked"] += 1
                _refund_settle_locked(payment=payment, refund=refund, source="janitor")
                counts[refund.status if refund.status in counts else "unknown"] += 1
        except GatewayError:
            counts["errors"] += 1
            logger.warning("refund %s: settling failed, will try again on the next run", pk, exc_info=True)
    return counts


def payment_refunds_sync(*, payment_intent_id: str, source: str) -> Payment | None:
    """Record what the gateway holds for a payment's refunds: the path for `charge.refunded` and `refund.*` events.

    The event is only a hint: the intent's refunds are listed at the gateway. Ours are settled if still unknown; a
    refund made outside Billpay (Stripe's dashboard) becomes a Refund row of kind "external", keyed on the gateway's
    refund id (a unique column), so any number of deliveries, in any order, record it once."""
    row = Payment.objects.filter(gateway_payment_id=payment_intent_id).values("pk", "account_id").first()
    if row is None:
        logger.info("refund event for intent %s, which is no payment's (%s)", payment_intent_id, source)
        return None
    error: GatewayError | None = None
    with transaction.atomic():
        _lock_account(row["account_id"])
        payment = Payment.objects.select_for_update().get(pk=row["pk"])
        try:
            found = _refunds_list(payment)
        except GatewayError as exc:
            error = exc
        else:
            ours = list(payment.refunds.select_for_update().order_by("pk"))
            for result in found:
                refund = next((r for r in ours if _refund_match(r, [result]) is not None), None)
                if refund is not None:
                    to = _refund_status_of(result)
                    if refund.status in Refund.HELD_STATUSES and to != Refund.Status.UNKNOWN:
                        _refund_record(
                            payment=payment, refund=refund, to=to, result=result,
                            message=f"found at the gateway as {result.status} ({source})",
                        )  # fmt: skip
                    continue
                if _refund_status_of(result) != Refund.Status.SUCCEEDED:
                    continue  # a dashboard refund that failed moved no money
                _refund_external_record(payment=payment, result=result, source=source)
    if error is not None:
        raise error
    return payment


def _refund_external_record(*, payment: Payment, result: RefundResult, source: str) -> None:
    refund = Refund.objects.create(
        payment=payment, kind=Refund.Kind.EXTERNAL, amount=result.amount, currency=result.currency.upper(),
        reason=_("Refunded at the payment service, outside Billpay."), status=Refund.Status.SUCCEEDED,
        gateway_refund_id=result.id, idempotency_key=f"gateway-{result.id}",
    )  # fmt: skip
    event_record(
        kind=BillingEvent.Kind.REFUND_STATUS, payment=payment, to_status=refund.status, amount=refund.amount,
        currency=refund.currency, message=f"refund {result.id} made outside Billpay recorded ({source})",
    )  # fmt: skip
    _refund_apply(payment=payment, refund=refund)


def allocations_reverse(*, payment: Payment, amount: int, reason: str, actor) -> int:
    """Take money back off the bills the payment paid, newest bill first, and reopen paid bills (refunds, and a
    dispute's withdrawn funds). Returns what came off the bills; the rest was the fee, the tip, or an excess already
    returned. Inside the caller's transaction, with the payment locked."""
    allocations = list(
        PaymentAllocation.objects.select_for_update()
        .filter(payment=payment)
        .order_by("-bill__due_date", "-bill_id")
    )
    bills = {
        bill.pk: bill
        for bill in Bill.objects.select_for_update().filter(pk__in=[a.bill_id for a in allocations]).order_by("pk")
    }
    remaining = amount
    for allocation in allocations:
        take = min(remaining, allocation.amount - allocation.amount_reversed)
        if take <= 0:
            continue
        remaining -= take
        allocation.amount_reversed += take
        allocation.save(update_fields=["amount_reversed"])
        bill = bills[allocation.bill_id]
        bill.amount_paid -= take
        bill.save(update_fields=["amount_paid", "updated_at"])
        event_record(
            kind=BillingEvent.Kind.REFUND, bill=bill, payment=payment, amount=take, currency=payment.currency,
            message=reason, actor=actor,
        )  # fmt: skip
        if bill.status == Bill.Status.PAID and bill.balance_due > 0:
            _bill_move(bill=bill, to=Bill.Status.OPEN, actor=actor, message=reason)
    return amount - remaining


def allocations_reapply(*, payment: Payment, amount: int, reason: str, actor=None) -> int:
    """Put reversed money back on the bills the payment paid, oldest bill first, never more than a bill still owes
    and only on bills that can still be paid. Returns what was put back; the caller records the rest for staff."""
    allocations = list(
        PaymentAllocation.objects.select_for_update()
        .filter(payment=payment, amount_reversed__gt=0)
        .order_by("bill__due_date", "bill_id")
    )
    bills = {
        bill.pk: bill
        for bill in Bill.objects.select_for_update().filter(pk__in=[a.bill_id for a in allocations]).order_by("pk")
    }
    remaining = amount
    for allocation in allocations:
        bill = bills[allocation.bill_id]
        if bill.status not in Bill.PAYABLE_STATUSES:
            continue
        take = min(remaining, allocation.amount_reversed, bill.balance_due)
        if take <= 0:
            continue
        remaining -= take
        allocation.amount_reversed -= take
        allocation.save(update_fields=["amount_reversed"])
        bill.amount_paid += take
        bill.save(update_fields=["amount_paid", "updated_at"])
        event_record(
            kind=BillingEvent.Kind.PAYMENT_APPLIED, bill=bill, payment=payment, amount=take,
            currency=payment.currency, message=reason, actor=actor,
        )  # fmt: skip
        if bill.balance_due == 0:
            _bill_move(bill=bill, to=Bill.Status.PAID, actor=actor, message=reason)
    autopay_stop_for_paid_bills(bills=list(bills.values()))
    return amount - remaining


def refund_notice_send(*, refund_id: int) -> bool:
    """Raise the refund_issued notice (amount and reason; the e-mail goes to the payer's address) through the
    notifications outbox and have it sent now. Once per refund and channel. False when there is nobody to tell."""
    from notifications.models import NoticeKind
    from notifications.services import notice_enqueue, notices_dispatch

    refund = Refund.objects.select_related("payment__account__biller").get(pk=refund_id)
    payment = refund.payment
    rows = notice_enqueue(kind=NoticeKind.REFUND_ISSUED, account=payment.account, payment=payment, refund=refund)
    notices_dispatch(notification_ids=[row.pk for row in rows])
    return bool(rows)
