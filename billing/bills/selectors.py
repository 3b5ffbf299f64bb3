"""Selectors read. They never write, and each returns a fixed number of queries however much data there is."""

from django.conf import settings
from django.db.models import F, QuerySet, Sum

from ..models import Bill, Biller, CustomerAccount


def biller_for_site() -> Biller | None:
    """The biller this portal runs for: BILLPAY_BILLER_SLUG if set, else the first one."""
    slug = settings.BILLPAY_BILLER_SLUG
    qs = Biller.objects.all()
    if slug:
        return qs.filter(slug=slug).first()
    return qs.order_by("pk").first()


def account_payable_bills(*, account: CustomerAccount) -> QuerySet[Bill]:
    return Bill.objects.filter(account=account, status__in=Bill.PAYABLE_STATUSES).order_by("due_date", "pk")


def account_balance(*, account: CustomerAccount) -> int:
    totals = account_payable_bills(account=account).aggregate(owed=Sum(F("total") - F("amount_paid")))
    return totals["owed"] or 0
