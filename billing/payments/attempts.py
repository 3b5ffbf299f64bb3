"""One gateway call and its PaymentAttempt row, the account lock, and a payment's status move: the bookkeeping every
way of taking money shares (guest and portal pay, autopay, refunds, the janitor).
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable

from django.db import connections
from django.utils.translation import gettext as _

from billing.events import event_new, status_move, status_set
from billing.models import BillingEvent, CustomerAccount, Installation, Payment, PaymentAttempt

from . import gateway as gateway_api
from .gateway import GatewayError, IntentResult, IntentStatus, PaymentDeclined

logger = logging.getLogger(__name__)

# --------------------------------------------------------------------------------------------------------------------
# Shared pieces
#
# Lock order, everywhere: the CustomerAccount row, then the Payment row, then the bills in primary-key order. Every
# service that changes an online payment's state takes the account lock first, so a start, a webhook, the browser's
# return and the janitor for one account run one after another, and never deadlock.

def is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)



_install_keys: dict[str, str] = {}  # this process's memory of each database's key (billing.models.Installation)


def install_key(*, using: str = "default") -> str:
    """This database's random key, made by migrate (`install_key_forget`) or else on first use, and remembered by the
    process: it salts the idempotency keys derived from our primary keys, so a recreated database never repeats a
    key an earlier one sent to the gateway. Forgotten after migrate and flush (post_migrate), which is when a
    database is made anew under a live process. A first use whose transaction rolls back leaves this process with a key no row holds; the next process makes
    another. Harmless: a key only has to differ between databases, and each payment stores the key it sent."""
    key = _install_keys.get(using)
    if key is None:
        row, _created = Installation.objects.using(using).get_or_create(pk=1, defaults={"key": secrets.token_hex(8)})
        key = _install_keys[using] = row.key
    return key


def our_key(kind: str, pk) -> str:
    """An idempotency key derived from one of our primary keys ("payment", "refund", "attempt", "customer-user"),
    salted with this database's key so that a database made anew never sends a key an earlier one sent."""
    return f"{kind}-{install_key()}-{pk}"


def install_key_forget(*, using: str = "default", **kwargs) -> None:
    """post_migrate (migrate, and a flush): the database may be a new one, so forget the key this process
    remembers, and make the database's key now, while nothing else runs: a web and a worker process using a new
    database for the first time at once would otherwise both try to make it (SQLite answers one of them "database
    table is locked")."""
    _install_keys.clear()
    if Installation._meta.db_table in connections[using].introspection.table_names():
        Installation.objects.using(using).get_or_create(pk=1, defaults={"key": secrets.token_hex(8)})


def account_lock(account_id: int, *, skip_locked: bool = False, read: bool = True) -> CustomerAccount | int | None:
    """Lock the account's row (the first lock, everywhere). With `read=False` only its id is read back (a caller that
    needs the lock, not the row), and the id is returned instead of the account."""
    locked = CustomerAccount.objects.select_for_update(skip_locked=skip_locked).filter(pk=account_id)
    if not read:
        return locked.values_list("pk", flat=True).first()
    return locked.first()


def payment_status_move(
    *, payment: Payment, to: str, message: str = "", actor=None, changes: dict | None = None,
    events: list | None = None, writes=None,
) -> None:
    """Change a locked payment's status through the transition map, with an event. Moving to the same status is a
    no-op, so the services can be called repeatedly. `changes` (field: value) are written in the same UPDATE. With
    `events`, the event row is appended to that list, unsaved, for the caller to insert with the others it writes
    (bulk_create, in order) before its transaction ends. With `writes` (a `billing.bulk.WriteBatch`), the UPDATE is
    queued there too, for the caller to run (with `events`) before anything reads the row again."""
    if payment.status == to:
        return

    def record(from_status: str) -> None:
        event = event_new(
            kind=BillingEvent.Kind.PAYMENT_STATUS, payment=payment, from_status=from_status, to_status=to,
            amount=payment.total_charged, currency=payment.currency, message=message, actor=actor,
        )  # fmt: skip
        if events is None:
            event.save(force_insert=True)
        else:
            events.append(event)

    def error() -> str:
        return _("A %(from)s payment cannot become %(to)s.") % {
            "from": Payment.Status(payment.status).label.lower(), "to": Payment.Status(to).label.lower()
        }

    update_fields = ["status", "updated_at", *(changes or {})]
    if writes is not None:
        from_status = status_set(payment, to, error=error, changes=changes)
        writes.update([payment], update_fields)
        record(from_status)
        return
    status_move(payment, to, error=error, update_fields=update_fields, changes=changes, record=record)


def intent_outcome(intent: IntentResult) -> str:
    if intent.status == IntentStatus.SUCCEEDED:
        return PaymentAttempt.Outcome.SUCCEEDED
    if intent.status == IntentStatus.REQUIRES_ACTION:
        return PaymentAttempt.Outcome.REQUIRES_ACTION
    if intent.status == IntentStatus.CANCELED:
        return PaymentAttempt.Outcome.CANCELED
    if intent_declined(intent):
        return PaymentAttempt.Outcome.DECLINED
    return PaymentAttempt.Outcome.PENDING


def intent_declined(intent: IntentResult) -> bool:
    return intent.status == IntentStatus.REQUIRES_PAYMENT_METHOD and bool(intent.error_code or intent.decline_code)


def payment_gateway_call(
    *,
    payment: Payment,
    kind: str,
    amount: int,
    call: Callable[[str | None], object],
    idempotency_key: str | None = None,
    key_from_attempt: bool = False,
    reference: str = "",
    attempt: PaymentAttempt | None = None,
    writes=None,
):
    """Make one gateway call and write its PaymentAttempt row (before the call, completed after it, so a crash in
    between still leaves a trace). With key_from_attempt the idempotency key is `attempt-<install>-<pk>` of that row
    (`our_key`). With `attempt`, the caller wrote (and committed) the row beforehand, and its key is the call's key.
    With `writes` (a `billing.bulk.WriteBatch`), the completed row of a call that answered is queued there, for the
    caller to write with its other rows in the same transaction; a failed call's row is written at once."""
    if attempt is not None:
        idempotency_key = attempt.idempotency_key
    else:
        attempt = PaymentAttempt.objects.create(
            payment=payment, kind=kind, amount=max(amount, 0), currency=payment.currency,
            outcome=PaymentAttempt.Outcome.PENDING, gateway_reference=reference or payment.gateway_payment_id or "",
        )  # fmt: skip
    if key_from_attempt:
        idempotency_key = attempt.idempotency_key = our_key("attempt", attempt.pk)
    elif idempotency_key and not attempt.idempotency_key and not PaymentAttempt.objects.filter(
        idempotency_key=idempotency_key
    ).exists():
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
        attempt.outcome = intent_outcome(result)
        attempt.gateway_reference = result.id
        if attempt.outcome == PaymentAttempt.Outcome.DECLINED:
            attempt.decline_code = (result.decline_code or result.error_code or "")[:64]
            attempt.message = (result.error_message or "")[:500]
    else:
        attempt.outcome = PaymentAttempt.Outcome.SUCCEEDED
        attempt.gateway_reference = getattr(result, "id", "") or attempt.gateway_reference
    if writes is not None:
        writes.update([attempt], ATTEMPT_RESULT_FIELDS)
    else:
        attempt.save()
    return result


# What a call's answer changes on its PaymentAttempt row.
ATTEMPT_RESULT_FIELDS = ["idempotency_key", "outcome", "gateway_reference", "decline_code", "message"]


def payment_intent_retrieve(payment: Payment, *, source: str) -> IntentResult:
    gateway = gateway_api.get_gateway()
    intent = payment_gateway_call(
        payment=payment, kind=PaymentAttempt.Kind.RETRIEVE, amount=payment.total_charged,
        call=lambda _key: gateway.retrieve_payment_intent(payment.gateway_payment_id),
    )  # fmt: skip
    logger.info("payment %s: intent %s is %s (%s)", payment.pk, intent.id, intent.status, source)
    return intent


def payment_intent_cancel(*, payment: Payment, amount: int | None = None):
    """Cancel the payment's intent at the gateway, with its CANCEL attempt row (keyed `attempt-<pk>`). `amount` is what
    the row records: the payment's total unless told. Raises GatewayError like any gateway call; the payment's status
    is the caller's to move."""
    gateway = gateway_api.get_gateway()
    return payment_gateway_call(
        payment=payment, kind=PaymentAttempt.Kind.CANCEL,
        amount=payment.total_charged if amount is None else amount, key_from_attempt=True,
        call=lambda k: gateway.cancel_payment_intent(payment.gateway_payment_id, idempotency_key=k),
    )  # fmt: skip


def payment_confirm_attempt_open(payment: Payment) -> PaymentAttempt:
    """The off-session confirm's PaymentAttempt, written before the confirm runs and committed by the caller outside
    the locked transaction that makes the call, so a worker killed during or after the call still leaves its trace.
    Its key is derived from the payment, so a resumed run finds the same row."""
    row, _created = PaymentAttempt.objects.get_or_create(
        idempotency_key=f"{payment.idempotency_key}:confirm",
        defaults={"payment": payment, "kind": PaymentAttempt.Kind.CONFIRM, "amount": payment.amount,
                  "currency": payment.currency, "outcome": PaymentAttempt.Outcome.PENDING,
                  "gateway_reference": payment.gateway_payment_id or ""},
    )  # fmt: skip
    return row


def payment_confirm_off_session(
    payment: Payment, *, attempt: PaymentAttempt | None = None, writes=None
) -> IntentResult:
    """Confirm a saved-method payment with no payer present (autopay), completing the row that
    `payment_confirm_attempt_open` wrote (or the caller wrote and committed, passed as `attempt`, keyed
    `<payment key>:confirm`), inside the caller's locked transaction (with `writes`: queued there, as in
    `payment_gateway_call`)."""
    key = f"{payment.idempotency_key}:confirm"
    if attempt is not None and attempt.idempotency_key == key:
        row = attempt
    else:
        row = PaymentAttempt.objects.select_for_update().get(idempotency_key=key)
    return payment_gateway_call(
        payment=payment, kind=PaymentAttempt.Kind.CONFIRM, amount=row.amount, attempt=row, writes=writes,
        call=lambda key: gateway_api.get_gateway().confirm_payment_intent(
            payment.gateway_payment_id, idempotency_key=key, off_session=True
        ),
    )  # fmt: skip
