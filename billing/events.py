"""The histories and the one way a status changes. `event_record` writes one BillingEvent row about a bill, a payment
or an account; `enrollment_event_record` one EnrollmentEvent row per change to cards, paperless or autopay (both
append-only); `status_move` is the one way a row with a status changes it (check the model's TRANSITIONS, save, write
the event row)."""

from __future__ import annotations

from collections.abc import Callable

from .bulk import row_new
from .errors import ApplicationError
from .models import Bill, BillingEvent, CustomerAccount, EnrollmentEvent, Payment


def event_record(**fields) -> BillingEvent:
    """Write one history row (see `event_new` for the fields)."""
    event = event_new(**fields)
    event.save(force_insert=True)
    return event


def event_new(
    *,
    kind: str,
    bill: Bill | None = None,
    payment: Payment | None = None,
    account: CustomerAccount | None = None,
    statement_line=None,
    from_status: str = "",
    to_status: str = "",
    amount: int | None = None,
    currency: str = "",
    message: str = "",
    actor=None,
) -> BillingEvent:
    """A history row, not saved yet: for a caller that writes several at once with `bulk_create`. The related rows
    are set by id (they are saved already), which is cheaper when a statement chunk makes thousands."""
    return row_new(
        BillingEvent,
        kind=kind,
        bill_id=bill.pk if bill else None,
        payment_id=payment.pk if payment else None,
        # By id: the caller's bill or payment need not have its account loaded (one query fewer per event).
        account_id=(
            account.pk if account
            else bill.account_id if bill
            else payment.account_id if payment
            else statement_line.account_id if statement_line
            else None
        ),
        statement_line_id=statement_line.pk if statement_line else None,
        from_status=from_status,
        to_status=to_status,
        amount=amount,
        currency=currency,
        message=message[:500],
        actor_id=actor.pk if getattr(actor, "is_authenticated", False) else None,
    )


def enrollment_event_record(
    kind, *, user=None, account=None, autopay=None, from_status="", to_status="", message="", ip=None
) -> EnrollmentEvent:
    return EnrollmentEvent.objects.create(
        kind=kind, user=user, account=account, autopay=autopay, from_status=from_status, to_status=to_status,
        message=message[:500], ip=ip or None,
    )  # fmt: skip


def transition_check(obj_or_model, to: str, *, error: Callable[[], str], from_status: str | None = None) -> None:
    """Raise ApplicationError(error()) unless the model's TRANSITIONS allows `from_status` (the row's status unless
    told) → `to`. `error` is called only on refusal, so each model keeps its own wording."""
    if from_status is None:
        from_status = obj_or_model.status
    if to not in obj_or_model.TRANSITIONS.get(from_status, set()):
        raise ApplicationError(error())


def status_move(
    obj,
    to: str,
    *,
    error: Callable[[], str],
    update_fields: list[str] | None = None,
    record: Callable[[str], object] | None = None,
    changes: dict | None = None,
) -> str:
    """Move a (locked) row to `to` if its TRANSITIONS allow it: set `status` and the other `changes` (field: value),
    save (`update_fields`, or the whole row when None), then `record(from_status)` writes the history row. Returns the
    status it came from."""
    from_status = status_set(obj, to, error=error, changes=changes)
    obj.save(update_fields=update_fields)
    if record is not None:
        record(from_status)
    return from_status


def status_set(obj, to: str, *, error: Callable[[], str], changes: dict | None = None) -> str:
    """`status_move` without the save, for a caller that writes many locked rows at once (`bulk_update`) and their
    history rows with `bulk_create`: check the move, set `status` and the other `changes` on the row in memory.
    Returns the status it came from."""
    from_status = obj.status
    transition_check(obj, to, error=error)
    obj.status = to
    for name, value in (changes or {}).items():
        setattr(obj, name, value)
    return from_status
