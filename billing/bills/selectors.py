"""Selectors read. They never write, and each returns a fixed number of queries however much data there is."""

from django.conf import settings
from django.core.cache import cache
from django.db.models import F, QuerySet, Sum

from ..models import Bill, Biller, CustomerAccount
from ..pagecache import pages_forget
from ..references import bank_reference, bank_reference_display

# Every page asks for the biller (its name and branding, through the context processor): it is kept in the shared
# cache, so all web processes see one copy, and dropped whenever a Biller is saved or deleted (billing/bills/receivers.py).
# The timeout is only a safety net for a change made behind the ORM's back (raw SQL, another database client).
BILLER_CACHE_SECONDS = 5 * 60
_NO_BILLER = "none"  # cached "there is no biller yet", so an empty site does not query on every page either


def _biller_cache_key() -> str:
    return f"billpay:biller_for_site:{settings.BILLPAY_BILLER_SLUG or '-'}"


def _biller_by_id_cache_key(biller_id: int) -> str:
    return f"billpay:biller:{biller_id}"


def biller_for_site() -> Biller | None:
    """The biller this portal runs for: BILLPAY_BILLER_SLUG if set, else the first one. Cached (see above)."""
    key = _biller_cache_key()
    cached = cache.get(key)
    if cached is not None:
        return None if cached == _NO_BILLER else cached
    slug = settings.BILLPAY_BILLER_SLUG
    qs = Biller.objects.select_related("plan_rules")
    biller = qs.filter(slug=slug).first() if slug else qs.order_by("pk").first()
    cache.set(key, _NO_BILLER if biller is None else biller, BILLER_CACHE_SECONDS)
    return biller


def biller_cached(biller_id: int) -> Biller:
    """One biller with its payment plan rules, for pages that only show them (the pay screen and its in-place
    total): from the shared cache, dropped like `biller_for_site` whenever the biller or its rules change. Code that
    moves money reads the biller from the database instead."""
    key = _biller_by_id_cache_key(biller_id)
    biller = cache.get(key)
    if biller is None:
        biller = Biller.objects.select_related("plan_rules").get(pk=biller_id)
        cache.set(key, biller, BILLER_CACHE_SECONDS)
    return biller


def biller_cache_forget(biller_id: int | None = None) -> None:
    """Drop the cached biller(s), and every cached page (they show the biller): the next page reads them again. Runs
    when any Biller or its plan rules are saved or deleted."""
    cache.delete_many([_biller_cache_key(), *([_biller_by_id_cache_key(biller_id)] if biller_id else [])])
    pages_forget()


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
