"""Selectors read. They never write, and each returns a fixed number of queries however much data there is."""

from django.conf import settings
from django.db.models import F, QuerySet, Sum

from ..models import Bill, Biller, CustomerAccount
from ..references import bank_reference, bank_reference_display


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


def bank_transfer_details(*, account: CustomerAccount, biller: Biller | None = None) -> dict | None:
    """What a payer needs to pay by bank transfer: the biller's bank details and the account's reference (the pay
    screen, the e-bill's how-to-pay box and its payment stub). None when the biller gave no bank account. No query
    when the biller is given (or already loaded on the account)."""
    biller = biller or account.biller
    if not biller.bank_transfer_offered:
        return None
    return {
        "account_name": biller.bank_account_name or biller.name,
        "bank_name": biller.bank_name,
        "iban": " ".join(biller.bank_iban[i : i + 4] for i in range(0, len(biller.bank_iban), 4)),
        "account_number": biller.bank_account_number,
        "routing_number": biller.bank_routing_number,
        "bic": biller.bank_bic,
        "reference": bank_reference_display(
            bank_reference(account_id=account.pk, scheme=biller.bank_reference_scheme, prefix=biller.bank_reference_prefix)
        ),
    }
