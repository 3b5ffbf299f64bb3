"""Paperless e-bills, per customer account; the consent is stored as it was shown, with the time and IP."""

from __future__ import annotations

from django.db import transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone
from django.utils.translation import gettext as _

from ..errors import ApplicationError
from ..models import CustomerAccount, EnrollmentEvent, PaperlessEnrollment
from ..events import enrollment_event_record


def paperless_consent_text(*, account: CustomerAccount) -> str:
    return _(
        "Send the bills for account %(number)s to my e-mail address instead of by post. Each e-mail links to the "
        "bill and the payment screen. I can go back to paper bills at any time."
    ) % {"number": account.account_number}


def paperless_enroll(*, account, email, consent_text, ip, via, user=None) -> PaperlessEnrollment:
    """Bills for `account` go to `email` instead of paper. Enrolling again with the same address keeps the current
    enrolment; a new address ends it and starts a new one, so each consent stays on record as given."""
    if via not in PaperlessEnrollment.Via.values:
        raise ValueError(f"unknown paperless origin {via!r}")
    email = (email or "").strip()
    if not email:
        raise ApplicationError(_("Enter the e-mail address for your bills."))
    with transaction.atomic():
        account = CustomerAccount.objects.select_for_update().get(pk=account.pk)
        current = PaperlessEnrollment.objects.filter(account=account, cancelled_at__isnull=True).first()
        if current is not None and current.email.lower() == email.lower():
            return current
        now = timezone.now()
        if current is not None:
            current.cancelled_at, current.cancelled_ip, current.cancelled_by = now, ip or None, user
            current.save(update_fields=["cancelled_at", "cancelled_ip", "cancelled_by"])
        enrollment = PaperlessEnrollment.objects.create(
            account=account, email=email, consent_text=consent_text, consented_at=now, ip=ip or None, via=via,
            user=user,
        )  # fmt: skip
        enrollment_event_record(
            EnrollmentEvent.Kind.PAPERLESS_ON, user=user, account=account, message=f"{email} ({via})", ip=ip
        )
    return enrollment


def paperless_cancel(*, account, ip, user=None) -> PaperlessEnrollment | None:
    """Back to paper bills. Returns the ended enrolment, or None when there was none."""
    with transaction.atomic():
        account = CustomerAccount.objects.select_for_update().get(pk=account.pk)
        current = PaperlessEnrollment.objects.filter(account=account, cancelled_at__isnull=True).first()
        if current is None:
            return None
        current.cancelled_at, current.cancelled_ip, current.cancelled_by = timezone.now(), ip or None, user
        current.save(update_fields=["cancelled_at", "cancelled_ip", "cancelled_by"])
        enrollment_event_record(
            EnrollmentEvent.Kind.PAPERLESS_OFF, user=user, account=account, message=current.email, ip=ip
        )
    return current


def paperless_current(*, account) -> PaperlessEnrollment | None:
    return PaperlessEnrollment.objects.filter(account=account, cancelled_at__isnull=True).first()


def paperless_on(account_ref: str = "pk") -> Exists:
    """Whether the account (the outer query's `account_ref`) is paperless now, as an expression to annotate an
    account query with: `paperless_current(...) is not None` without a query of its own."""
    return Exists(PaperlessEnrollment.objects.filter(account=OuterRef(account_ref), cancelled_at__isnull=True))
