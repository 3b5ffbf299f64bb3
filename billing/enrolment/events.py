"""The enrolment history: one append-only `EnrollmentEvent` row per change to cards, paperless or autopay."""

from __future__ import annotations

from ..models import EnrollmentEvent


def enrollment_event_record(
    kind, *, user=None, account=None, autopay=None, from_status="", to_status="", message="", ip=None
):
    EnrollmentEvent.objects.create(
        kind=kind, user=user, account=account, autopay=autopay, from_status=from_status, to_status=to_status,
        message=message[:500], ip=ip or None,
    )  # fmt: skip
