"""An autopay charge row's status moves, and what stops the rows of paid bills (on billing.signals.bill_paid)."""

from __future__ import annotations

from django.db.models import F

from ..events import status_move, status_set, transition_check
from ..models import AutopayCharge, AutopayChargeEvent

Status = AutopayCharge.Status
Reason = AutopayCharge.Reason


def charge_status_move(charge: AutopayCharge, to: str, *, message: str = "", writes=None, **fields) -> None:
    """Change a locked row's status through the transition map, with an event. An illegal move raises. With
    `writes` (a `billing.bulk.WriteBatch`), the row's UPDATE (the status, `fields` and updated_at) and the event's
    INSERT are queued there, for the caller to run before its transaction ends."""
    if writes is not None:
        from_status = status_set(
            charge, to, error=lambda: f"An autopay charge cannot go from {charge.status} to {to}.", changes=fields
        )
        writes.update([charge], ["status", *fields, "updated_at"])
        writes.insert([AutopayChargeEvent(charge=charge, from_status=from_status, to_status=to, message=message[:500])])
        return
    status_move(
        charge, to,
        error=lambda: f"An autopay charge cannot go from {charge.status} to {to}.",
        record=lambda from_status: AutopayChargeEvent.objects.create(
            charge=charge, from_status=from_status, to_status=to, message=message[:500]
        ),
        changes=fields,
    )  # fmt: skip


def charges_claim(charges: list[AutopayCharge], *, now) -> None:
    """The sweeper's claim of locked waiting rows: each moves to charging through the transition map (checked row by
    row; an illegal move raises before anything is written), with its next attempt number and an event, in one UPDATE
    and one insert for the whole batch (it was two queries a row)."""
    if not charges:
        return
    for charge in charges:
        transition_check(
            charge, Status.CHARGING, error=lambda: f"An autopay charge cannot go from {charge.status} to charging."
        )
    AutopayCharge.objects.filter(pk__in=[c.pk for c in charges]).update(
        status=Status.CHARGING, claimed_at=now, started_at=None, attempt_number=F("attempt_number") + 1,
        updated_at=now,
    )  # fmt: skip
    events = []
    for charge in charges:
        events.append(AutopayChargeEvent(
            charge=charge, from_status=charge.status, to_status=Status.CHARGING,
            message=f"attempt {charge.attempt_number + 1} claimed",
        ))  # fmt: skip
        charge.status, charge.claimed_at, charge.started_at = Status.CHARGING, now, None
        charge.attempt_number += 1
    AutopayChargeEvent.objects.bulk_create(events)


# --------------------------------------------------------------------------------------------------------------------
# Bills paid another way (billing.autopay.receivers connects this to bill_paid)


def autopay_stop_for_paid_bills(*, bills) -> int:
    """Runs on bill_paid, sent by payment_apply and allocations_reapply under the bill locks: a bill paid any way
    (guest, portal, offline, autopay itself) stops its waiting autopay rows at once. A row that is charging re-checks
    the bill under the same lock before it confirms, so it charges nothing either."""
    paid = [b.pk for b in bills if b.balance_due <= 0]
    if not paid:
        return 0
    rows = list(
        AutopayCharge.objects.select_for_update().filter(
            bill_id__any_of=paid, status__in=AutopayCharge.WAITING_STATUSES, instalment__isnull=True
        )
    )
    for charge in rows:
        charge_status_move(charge, Status.CANCELLED, reason=Reason.PAID_ELSEWHERE, next_attempt_at=None,
                           message="bill paid another way")  # fmt: skip
    return len(rows)
