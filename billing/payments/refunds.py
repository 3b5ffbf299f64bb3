"""Refunds: staff refunds in three steps (a pending row, the gateway call, the recorded outcome), the excess given back
automatically, settling refunds whose answer was lost, and refunds made outside Billpay (the gateway's dashboard).
"""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta

from django.db import transaction
from django.db.models import Q, Sum
from django.utils import timezone
from django.utils.translation import gettext as _

from billing.errors import ApplicationError
from billing.events import event_record, status_move
from billing.models import BillingEvent, Payment, PaymentAttempt, Refund
from billing.money import format_money
from billing.signals import refund_issued

from . import gateway as gateway_api
from .allocations import allocations_reverse
from .attempts import account_lock, is_int, our_key, payment_gateway_call
from .gateway import GatewayError, GatewayUnavailable, RefundResult

logger = logging.getLogger(__name__)


def refund_excess_return(*, payment: Payment, amount: int) -> None:
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


def _refund_row(*, payment: Payment, amount: int, reason: str, actor, kind: str = Refund.Kind.STAFF) -> Refund:
    refund = Refund.objects.create(
        payment=payment, kind=kind, amount=amount, currency=payment.currency, reason=reason[:500],
        status=Refund.Status.PENDING, idempotency_key=f"new-{uuid.uuid4()}",
        created_by=actor if getattr(actor, "is_authenticated", False) else None,
    )  # fmt: skip
    refund.idempotency_key = our_key("refund", refund.pk)
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
    gateway = gateway_api.get_gateway()
    try:
        result = payment_gateway_call(
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
    status_move(
        refund, to,
        error=lambda: _("A %(from)s refund cannot become %(to)s.")
        % {"from": Refund.Status(refund.status).label.lower(), "to": Refund.Status(to).label.lower()},
        update_fields=["status", "gateway_refund_id"],
        record=lambda from_status: event_record(
            kind=BillingEvent.Kind.REFUND_STATUS, payment=payment, from_status=from_status, to_status=to,
            amount=refund.amount, currency=refund.currency, message=message, actor=actor,
        ),
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
    transaction.on_commit(lambda: refund_issued.send_robust(sender=Refund, refund_id=refund_pk), robust=True)


def refund_create(*, payment: Payment, amount: int, reason: str, actor) -> Refund:
    """Give back part or all of a succeeded payment, and reopen the bills it paid (newest bill first).

    In three steps, so that money never moves without a row saying so: (1) under the payment lock, check the cap
    (what was charged, less what was refunded, withdrawn by a dispute, or is being refunded) and write a pending
    Refund; (2) call the gateway with the refund's own idempotency key; (3) under the lock again, record the outcome.
    A crash between the steps leaves a pending refund, and a lost answer an unknown one ("pending confirmation"):
    both still count against the cap and only `refund_settle` (staff, or the janitor) finishes them. localstripe
    refunds any amount; only this code and the payment_refund_capped constraint stop a refund of more than was paid."""
    reason = (reason or "").strip()
    if not is_int(amount) or amount <= 0:
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
    gateway = gateway_api.get_gateway()
    return payment_gateway_call(
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
        account_lock(payment_row["account_id"])
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
                if account_lock(account_id, skip_locked=True) is None:
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
        account_lock(row["account_id"])
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
