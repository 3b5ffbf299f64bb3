"""Disputes (chargebacks), recorded from the gateway's signed `charge.dispute.*` events.

localstripe has no disputes, so unlike payments the event's own dispute object is what we record (its signature was
verified). Events arrive in any order and more than once, so everything is keyed on the gateway's dispute id (a unique
column), the status never moves back when an older event (by the event's `created`) arrives after a newer one, and
the funds only ever move forward: none → withdrawn → reinstated.
"""

from __future__ import annotations

import datetime as dt
import logging

from django.db import transaction
from django.utils.translation import gettext as _

from billing.events import event_record, status_move
from billing.models import BillingEvent, CustomerAccount, Dispute, Payment, Refund
from billing.signals import dispute_recorded

from .allocations import allocations_reapply, allocations_reverse

logger = logging.getLogger(__name__)

DISPUTE_EVENTS = frozenset(
    {
        "charge.dispute.created",
        "charge.dispute.updated",
        "charge.dispute.closed",
        "charge.dispute.funds_withdrawn",
        "charge.dispute.funds_reinstated",
    }
)


def _id_of(value) -> str | None:
    return value.get("id") if isinstance(value, dict) else value or None


def _funds_of(event_type: str, data: dict) -> str:
    """How far the money has gone, from the event's type and the dispute's own balance transactions."""
    amounts = [int(t.get("amount") or 0) for t in data.get("balance_transactions") or [] if isinstance(t, dict)]
    if event_type == "charge.dispute.funds_reinstated" or any(a > 0 for a in amounts) or data.get("status") == "won":
        return Dispute.Funds.REINSTATED
    if event_type == "charge.dispute.funds_withdrawn" or any(a < 0 for a in amounts):
        return Dispute.Funds.WITHDRAWN
    return Dispute.Funds.NONE


def _due_by(data: dict) -> dt.datetime | None:
    due = (data.get("evidence_details") or {}).get("due_by")
    return dt.datetime.fromtimestamp(int(due), tz=dt.UTC) if due else None


def dispute_record(*, event_type: str, data: dict, event_created: int | None, source: str) -> Dispute | None:
    """Record one dispute event: open the Dispute (flag the payment, tell staff), move its status, and move the money
    (withdrawn: off the payment and the bills, newest bill first; reinstated: back on the bills). Idempotent.
    Returns None for a dispute on a charge that is not one of our payments."""
    intent_id = _id_of(data.get("payment_intent"))
    row = Payment.objects.filter(gateway_payment_id=intent_id).values("pk", "account_id").first() if intent_id else None
    if row is None:
        logger.warning("dispute %s on intent %s matches no payment (%s)", data.get("id"), intent_id, source)
        return None
    created_at = int(event_created or 0)
    with transaction.atomic():
        CustomerAccount.objects.select_for_update().filter(pk=row["account_id"]).first()  # lock order: account first
        payment = Payment.objects.select_for_update().get(pk=row["pk"])
        dispute = Dispute.objects.select_for_update().filter(gateway_dispute_id=data["id"]).first()
        status = data.get("status")
        if dispute is None:
            if status not in Dispute.Status.values:
                status = Dispute.Status.NEEDS_RESPONSE
            dispute = Dispute.objects.create(
                payment=payment, gateway_dispute_id=data["id"], gateway_charge_id=_id_of(data.get("charge")) or "",
                amount=int(data.get("amount") or 0), currency=(data.get("currency") or payment.currency).upper(),
                reason=(data.get("reason") or "")[:64], status=status, evidence_due_by=_due_by(data),
                last_event_created=created_at,
            )  # fmt: skip
            _dispute_opened(payment=payment, dispute=dispute, source=source)
        elif created_at >= dispute.last_event_created:
            dispute.evidence_due_by = _due_by(data) or dispute.evidence_due_by
            dispute.last_event_created = created_at
            dispute.save(update_fields=["evidence_due_by", "last_event_created", "updated_at"])
            if status != dispute.status and status in Dispute.Status.values:
                if dispute.can_transition_to(status):
                    _dispute_move(payment=payment, dispute=dispute, to=status, message=source)
                else:
                    event_record(
                        kind=BillingEvent.Kind.DISPUTE, payment=payment, from_status=dispute.status, to_status="",
                        message=f"dispute {dispute.gateway_dispute_id}: gateway says {status}, not a move we allow; "
                        f"kept {dispute.status} ({source})",
                    )  # fmt: skip
        # else: an older event than one already applied; its status is stale, but its funds news is still news.
        _dispute_funds(payment=payment, dispute=dispute, to=_funds_of(event_type, data), source=source)
    return dispute


def _dispute_move(*, payment: Payment, dispute: Dispute, to: str, message: str = "") -> None:
    status_move(
        dispute, to,
        error=lambda: _("A %(from)s dispute cannot become %(to)s.") % {"from": dispute.status, "to": to},
        update_fields=["status", "updated_at"],
        record=lambda from_status: event_record(
            kind=BillingEvent.Kind.DISPUTE, payment=payment, from_status=from_status[:16], to_status=to[:16],
            amount=dispute.amount, currency=dispute.currency,
            message=f"dispute {dispute.gateway_dispute_id}: {Dispute.Status(to).label} ({message})",
        ),
    )  # fmt: skip
    if to in (Dispute.Status.WON, Dispute.Status.LOST):
        _staff_notify(payment=payment, dispute=dispute)


def _dispute_opened(*, payment: Payment, dispute: Dispute, source: str) -> None:
    if not payment.disputed:
        payment.disputed = True
        payment.save(update_fields=["disputed", "updated_at"])
    event_record(
        kind=BillingEvent.Kind.DISPUTE, payment=payment, to_status=dispute.status[:16], amount=dispute.amount,
        currency=dispute.currency,
        message=f"dispute {dispute.gateway_dispute_id} opened: {dispute.reason or 'no reason given'} ({source})",
    )  # fmt: skip
    _staff_notify(payment=payment, dispute=dispute)


def _dispute_funds(*, payment: Payment, dispute: Dispute, to: str, source: str) -> None:
    order = Dispute.FUNDS_ORDER
    if order.index(to) <= order.index(dispute.funds):
        return  # never backwards: a late "withdrawn" after "reinstated" changes nothing
    before = dispute.funds
    if before == Dispute.Funds.NONE and to == Dispute.Funds.WITHDRAWN:
        _funds_withdraw(payment=payment, dispute=dispute, source=source)
    elif before == Dispute.Funds.WITHDRAWN:
        _funds_reinstate(payment=payment, dispute=dispute, source=source)
    # none → reinstated: the money went and came back before we heard of it; nothing to move.
    dispute.funds = to
    dispute.save(update_fields=["funds", "amount_withdrawn", "amount_reversed_on_bills", "updated_at"])


def _funds_withdraw(*, payment: Payment, dispute: Dispute, source: str) -> None:
    # Refunds in flight may be out too: what is left is what can be taken, so refunds + disputes never exceed it.
    held = sum(payment.refunds.filter(status__in=Refund.HELD_STATUSES).values_list("amount", flat=True))
    room = max(payment.total_charged - payment.amount_refunded - payment.amount_disputed - held, 0)
    take = min(dispute.amount, room)
    reason = _("Payment disputed by the payer's bank (chargeback).")
    payment.amount_disputed += take
    payment.save(update_fields=["amount_disputed", "updated_at"])
    on_bills = allocations_reverse(payment=payment, amount=take, reason=reason, actor=None) if take else 0
    dispute.amount_withdrawn, dispute.amount_reversed_on_bills = take, on_bills
    message = f"dispute {dispute.gateway_dispute_id}: funds withdrawn, {on_bills} taken off the bills ({source})"
    if take < dispute.amount:
        message += f"; {dispute.amount - take} more than our records leave on the payment: staff, please check"
    event_record(
        kind=BillingEvent.Kind.DISPUTE, payment=payment, amount=take, currency=payment.currency, message=message
    )


def _funds_reinstate(*, payment: Payment, dispute: Dispute, source: str) -> None:
    reason = _("Dispute won: the money is back.")
    payment.amount_disputed -= dispute.amount_withdrawn
    payment.save(update_fields=["amount_disputed", "updated_at"])
    reapplied = allocations_reapply(payment=payment, amount=dispute.amount_reversed_on_bills, reason=reason)
    message = f"dispute {dispute.gateway_dispute_id}: funds reinstated, {reapplied} put back on the bills ({source})"
    left = dispute.amount_reversed_on_bills - reapplied
    if left:
        # The bills were paid another way (or voided) meanwhile: never overpay; staff refund or credit the rest.
        message += f"; {left} could not be re-applied (bills paid another way or closed): refund or credit it"
    event_record(
        kind=BillingEvent.Kind.DISPUTE, payment=payment, amount=dispute.amount_withdrawn, currency=payment.currency,
        message=message,
    )  # fmt: skip


def _staff_notify(*, payment: Payment, dispute: Dispute) -> None:
    """Have the biller's staff told (the notifications app e-mails them on dispute_recorded), after commit."""
    dispute_pk = dispute.pk
    # robust: the dispute is recorded whatever the mail server says; a failure is logged, not raised at the webhook.
    transaction.on_commit(lambda: dispute_recorded.send_robust(sender=Dispute, dispute_id=dispute_pk), robust=True)
