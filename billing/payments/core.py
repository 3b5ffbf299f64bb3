"""Recording what the gateway says about a payment: the one path for the webhook, the payer's return, the janitor and
a repeated start, and the one recorded success (apply to the bills, give back what cannot be applied, the receipt).
"""

from __future__ import annotations

import copy
import logging
import secrets
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from billing.bulk import WriteBatch
from billing.events import event_record
from billing.models import Bill, BillingEvent, Payment
from billing.signals import bank_debit_returned, payment_succeeded
from billing.models.methods import card_summary

from .allocations import allocations_reverse, payable_bills_lock, payment_apply
from .attempts import account_lock, intent_declined, payment_intent_retrieve, payment_status_move
from .gateway import GatewayError, IntentResult, IntentStatus
from .mandates import mandate_activate_on_debit
from .refunds import refund_excess_return

logger = logging.getLogger(__name__)


# A payer's online payment left unfinished this long is abandoned: the janitor cancels it, and a failed one is no
# longer picked up again by the next start.
ABANDONED_AFTER = timedelta(hours=24)
FINAL_STATUSES = (Payment.Status.SUCCEEDED, Payment.Status.CANCELED)
# Intent statuses in which the payer can still (re)confirm, so the amount may change and the intent may be canceled.
OPEN_INTENT_STATUSES = (
    IntentStatus.REQUIRES_PAYMENT_METHOD,
    IntentStatus.REQUIRES_CONFIRMATION,
    IntentStatus.REQUIRES_ACTION,
)
# Intent statuses in which money has moved or is moving.
_CHARGED_INTENT_STATUSES = (IntentStatus.SUCCEEDED, IntentStatus.PROCESSING, IntentStatus.REQUIRES_CAPTURE)


# --------------------------------------------------------------------------------------------------------------------
# Recording what the gateway says


def payment_sync(
    *, payment: Payment, intent: IntentResult, source: str, bills: list[Bill] | None = None,
    writes: WriteBatch | None = None,
) -> None:
    """Bring a locked payment in line with its intent as the gateway reports it. Idempotent. A caller that already
    holds the account's payable bills locked (in primary-key order, this transaction) passes them as `bills`. A
    caller recording many payments at once (a batch of autopay charges) passes its `writes`: a success's rows (the
    payment's status, its allocations, the bills, the history) are queued there, for it to run inside
    `bills_paid_announced_once` (payments_apply's `run=False`)."""
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
            payment_status_move(
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
        payment_status_move(payment=payment, to=Payment.Status.PENDING, message=f"payer tried again ({source})")

    if intent.status == IntentStatus.SUCCEEDED:
        _payment_succeed(payment=payment, intent=intent, source=source, bills=bills, writes=writes)
    elif intent.status in (IntentStatus.PROCESSING, IntentStatus.REQUIRES_CAPTURE):
        if payment.status in (Payment.Status.PENDING, Payment.Status.REQUIRES_ACTION):
            payment_status_move(payment=payment, to=Payment.Status.PROCESSING, message=source)
        if payment.is_bank_debit and payment.status == Payment.Status.PROCESSING and payment.applied_at is None:
            _bank_debit_apply(payment=payment, source=source)
    elif intent.status == IntentStatus.REQUIRES_ACTION:
        if payment.status == Payment.Status.PENDING:
            payment_status_move(payment=payment, to=Payment.Status.REQUIRES_ACTION, message=source)
    elif intent_declined(intent):
        if payment.status in Payment.IN_FLIGHT_STATUSES:
            code = intent.decline_code or intent.error_code
            payment_status_move(payment=payment, to=Payment.Status.FAILED, message=f"declined: {code} ({source})")
            _bank_debit_reverse(payment=payment, code=code or "", source=source)
    elif intent.status == IntentStatus.CANCELED:
        if payment.status in Payment.IN_FLIGHT_STATUSES:
            payment_status_move(payment=payment, to=Payment.Status.CANCELED, message=f"intent canceled ({source})")
            _bank_debit_reverse(payment=payment, code="canceled", source=source)


# --------------------------------------------------------------------------------------------------------------------
# Bank debits: counted on the bills while they process, taken off again if the bank returns them (docs/payments.md)


def _apply_what_is_owed(
    payment: Payment, bills: list[Bill] | None = None, events: list | None = None, writes: WriteBatch | None = None,
    run: bool = True,
) -> int:
    """Apply the payment to the bills, never more than is owed now (they may have been paid some other way since
    the quote). Under the bill locks (the caller's `bills`, if it holds them); returns what was applied. `events`:
    the caller's unsaved history rows, inserted here with the bills' (or alone, when nothing is applied); `writes`:
    the caller's queued writes, run here with them (queued there for the caller to run, with `run=False`)."""
    if bills is None:
        bills = payable_bills_lock(account_id=payment.account_id)
    owed = sum(bill.balance_due for bill in bills)
    applied = min(owed, payment.amount)
    if applied:
        portion = copy.copy(payment)  # payment_apply applies `amount`; the row itself keeps what was charged
        portion.amount = applied
        payment_apply(payment=portion, bills=bills, events=events, writes=writes, run=run)
    elif writes is not None:
        writes.insert(events or [])
        if run:
            writes.run()
    elif events:
        BillingEvent.objects.bulk_create(events)
    return applied


def _bank_debit_apply(*, payment: Payment, source: str) -> None:
    """A bank debit is processing: the bank has it and normally pays it days later. It counts on the bills now, so
    the payer sees the bill paid, reminders stop and nobody (autopay, the payer, a second tab) pays it twice. What
    cannot be applied is given back once the debit settles (a processing debit cannot be refunded)."""
    applied = _apply_what_is_owed(payment)
    payment.applied_at = timezone.now()
    payment.save(update_fields=["applied_at", "updated_at"])
    event_record(
        kind=BillingEvent.Kind.PAYMENT_STATUS, payment=payment, from_status=payment.status, to_status=payment.status,
        amount=applied, currency=payment.currency, message=f"bank debit processing: {applied} counted on the bills ({source})",
    )  # fmt: skip


def _bank_debit_reverse(*, payment: Payment, code: str, source: str) -> None:
    """A bank debit that was counted while it processed failed (insufficient funds, account closed, mandate revoked):
    take exactly what it applied back off the bills (they reopen), then tell autopay and the payer
    (bank_debit_returned). Runs once: only on the move out of processing, which happens once."""
    if payment.applied_at is None:
        return
    on_bills = sum(a.amount - a.amount_reversed for a in payment.allocations.all())
    if on_bills:
        allocations_reverse(payment=payment, amount=on_bills, reason=f"bank debit returned: {code} ({source})", actor=None)
    bank_debit_returned.send(sender=Payment, payment_id=payment.pk, code=code)


def _payment_succeed(
    *, payment: Payment, intent: IntentResult, source: str, bills: list[Bill] | None, writes: WriteBatch | None = None
) -> None:
    # One UPDATE: the status, when it was received, the card, and (when it is applied below, in this transaction)
    # when it was applied.
    changes = {"received_at": timezone.now()}
    if intent.card_last4:
        changes["payment_method_summary"] = card_summary(intent.card_brand, intent.card_last4)
    applying_now = payment.applied_at is None
    if applying_now:
        changes["applied_at"] = changes["received_at"]
    # When the money is applied below, the success's UPDATE and event row go in with the allocation, the bills and
    # their events (one statement on PostgreSQL): nothing in between reads the payment's row.
    queued = writes is not None and applying_now  # the caller runs the writes (payment_sync's `writes`)
    events, writes = ([], writes if queued else WriteBatch()) if applying_now else (None, None)
    payment_status_move(
        payment=payment, to=Payment.Status.SUCCEEDED, message=source, changes=changes, events=events, writes=writes
    )
    if payment.mandate_id:
        mandate_activate_on_debit(mandate_id=payment.mandate_id, source=source)
    # The payer's enrolment choices and the receipt notice follow the one recorded success, after commit, on
    # payment_succeeded (billing/signals.py). The receipt is raised once whichever path got here first (one
    # conditional UPDATE of receipt_sent_at, and one outbox row per payment, kind and channel).
    payment_pk, channel = payment.pk, payment.channel
    transaction.on_commit(
        lambda: payment_succeeded.send_robust(sender=Payment, payment_id=payment_pk, channel=channel), robust=True
    )

    # The bills may have been paid some other way (at the counter, a second payer) since the quote. Apply only what
    # is owed now, under the bill locks, and give the rest back: a bill is never overpaid. A bank debit was applied
    # while it processed; what it could not apply then is given back now that it settled.
    if applying_now:
        applied = _apply_what_is_owed(payment, bills, events, writes, run=not queued)
    else:
        applied = sum(a.amount for a in payment.allocations.all())
    if applied < payment.amount:
        if queued:
            writes.run()  # the refund reads the payment's row: it must say succeeded first
        # Nothing applied at all: nothing was delivered for the fee and tip either, so they go back too.
        excess = payment.amount - applied if applied else payment.total_charged
        refund_excess_return(payment=payment, amount=excess)


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
        account_lock(row["account_id"])
        payment = Payment.objects.select_for_update().get(pk=row["pk"])
        if payment.gateway_payment_id != payment_intent_id:
            return None  # replaced while we waited for the lock
        if payment.status in FINAL_STATUSES:
            return payment
        try:
            intent = payment_intent_retrieve(payment, source=source)
        except GatewayError as exc:
            error = exc
        else:
            payment_sync(payment=payment, intent=intent, source=source)
    if error is not None:
        raise error
    return payment


_CONFIRMATION_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"


def confirmation_number_new() -> str:
    # 10 characters from an alphabet with no look-alikes (no 0/O, 1/I/L): easy to read out on the phone. One random
    # number below 31**10 written in that alphabet: each of the 31**10 numbers equally likely, as ten draws of a
    # character would be, at one draw's cost (a statement chunk makes hundreds).
    number, chars = secrets.randbelow(len(_CONFIRMATION_ALPHABET) ** 10), []
    for _ in range(10):
        number, digit = divmod(number, len(_CONFIRMATION_ALPHABET))
        chars.append(_CONFIRMATION_ALPHABET[digit])
    return "BP-" + "".join(chars)
