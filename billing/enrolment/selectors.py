"""Enrolment reads."""

from __future__ import annotations

from django.db.models import Exists, F, OuterRef, QuerySet

from ..models import Bill, CustomerAccount, PaperlessEnrollment


def paper_bill_accounts(*, biller=None) -> QuerySet[CustomerAccount]:
    """Accounts that still need paper bills: an issued bill still open, and no active paperless enrolment."""
    open_bill = Bill.objects.filter(
        account=OuterRef("pk"), status__in=Bill.PAYABLE_STATUSES, amount_paid__lt=F("total")
    )
    paperless = PaperlessEnrollment.objects.filter(account=OuterRef("pk"), cancelled_at__isnull=True)
    accounts = CustomerAccount.objects.filter(Exists(open_bill)).exclude(Exists(paperless))
    if biller is not None:
        accounts = accounts.filter(biller=biller)
    return accounts.select_related("biller").order_by("biller_id", "account_number")
