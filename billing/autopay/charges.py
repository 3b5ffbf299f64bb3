"""An autopay charge row's status moves, and what stops the rows of paid bills (on billing.signals.bill_paid)."""

from __future__ import annotations

from ..events import status_move
from ..models import AutopayCharge, AutopayChargeEvent

Status = AutopayCharge.Status
Reason = AutopayCharge.Reason


def charge_status_move(charge: AutopayCharge, to: str, *, message: str = "", **fields) -> None:
    """Change a locked row's status through the transition map, with an event. An illegal move raises."""
    status_move(
        charge, to,
        error=lambda: f"An autopay charge cannot go from {charge.status} to {to}.",
        record=lambda from_status: AutopayChargeEvent.objects.create(
            charge=charge, from_status=from_status, to_status=to, message=message[:500]
        ),
        changes=fields,
    )  # fmt: skip


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
            bill_id__in=paid, status__in=AutopayCharge.WAITING_STATUSES, instalment__isnull=True
        )
    )
    for charge in rows:
        charge_status_move(charge, Status.CANCELLED, reason=Reason.PAID_ELSEWHERE, next_attempt_at=None,
                           message="bill paid another way")  # fmt: skip
    return len(rows)
