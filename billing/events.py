"""The histories: `event_record` writes one BillingEvent row about a bill, a payment or an account;
`enrollment_event_record` one EnrollmentEvent row per change to cards, paperless or autopay. Both append-only."""

from .models import Bill, BillingEvent, CustomerAccount, EnrollmentEvent, Payment


def event_record(
    *,
    kind: str,
    bill: Bill | None = None,
    payment: Payment | None = None,
    account: CustomerAccount | None = None,
    from_status: str = "",
    to_status: str = "",
    amount: int | None = None,
    currency: str = "",
    message: str = "",
    actor=None,
) -> BillingEvent:
    return BillingEvent.objects.create(
        kind=kind,
        bill=bill,
        payment=payment,
        account=account or (bill.account if bill else payment.account if payment else None),
        from_status=from_status,
        to_status=to_status,
        amount=amount,
        currency=currency,
        message=message[:500],
        actor=actor if getattr(actor, "is_authenticated", False) else None,
    )


def enrollment_event_record(
    kind, *, user=None, account=None, autopay=None, from_status="", to_status="", message="", ip=None
) -> EnrollmentEvent:
    return EnrollmentEvent.objects.create(
        kind=kind, user=user, account=account, autopay=autopay, from_status=from_status, to_status=to_status,
        message=message[:500], ip=ip or None,
    )  # fmt: skip
