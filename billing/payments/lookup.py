"""Guest account lookup and the session grant that opens one account's payment screen.

A payer proves they hold an account with its number plus the biller's second factor (postal code of the service
address, or the amount of the last bill). The lookup must not tell an attacker whether an account number exists:

- a miss and a wrong factor raise the same LookupFailed, and the page shows the same message;
- a miss runs the same queries and the same constant-time comparison as a hit (against a stand-in value).

Guessing is slowed by two fixed-window limits in Django's cache, which every process shares (settings.CACHES):
failures per client IP, and failures per account number (counted whether or not the account exists). Only misses
count: a payer who found their account is not held back by an earlier typo, and many payers behind one address (a
carrier's NAT, a kiosk in a lobby) are not locked out by each other's successes. While either limit is exhausted the
lookup is not attempted at all.

The client IP is REMOTE_ADDR. Behind a load balancer, config/proxy.py sets REMOTE_ADDR to the real client address
from X-Forwarded-For, but only for requests that come from settings.TRUSTED_PROXIES (docs/deploy.md); otherwise
every payer would share the proxy's address and one attacker could lock everyone out. X-Forwarded-For is not read
here because any client can forge it.
"""

import hashlib
import hmac
import math
import re
import time
from dataclasses import dataclass

from billing.models import Bill, Biller, CustomerAccount, normalize_postal_code
from billing.ratelimit import rate_limit_hit, rate_limit_key, rate_limit_undo

IP_FAILURE_LIMIT = 10
IP_WINDOW_SECONDS = 15 * 60
ACCOUNT_FAILURE_LIMIT = 5
ACCOUNT_WINDOW_SECONDS = 15 * 60

GRANT_SESSION_KEY = "billpay_pay_grant"
GRANT_SECONDS = 30 * 60

# Compared against on a miss, so a miss does the same work as a wrong factor.
_STAND_IN = "\x00no-such-account\x00"


class LookupFailed(Exception):
    """No account matches these details. Deliberately says nothing about which detail was wrong."""


class LookupLocked(Exception):
    def __init__(self, retry_after: int):
        super().__init__(f"locked for {retry_after}s")
        self.retry_after = retry_after

    @property
    def minutes(self) -> int:
        return max(1, math.ceil(self.retry_after / 60))


@dataclass(frozen=True)
class LookupFactor:
    """What the payer typed as the second factor, already normalised: a postal code, or an amount in minor units."""

    postal_code: str | None = None
    last_bill_amount: int | None = None


def normalize_account_number(value: str) -> str:
    return (value or "").strip()


def _number_variants(account_number: str) -> list[str]:
    """As typed, and without the spaces or dashes a payer copies from a printed bill ("4100 200" for "4100200")."""
    compact = "".join(ch for ch in account_number if ch not in " -")
    return [account_number] if compact == account_number else [account_number, compact]


def _digest(value: str) -> bytes:
    # Comparing fixed-length digests keeps the comparison's time independent of the lengths, too.
    return hashlib.sha256(value.encode()).digest()


def _expected_factor(*, biller: Biller, account: CustomerAccount | None) -> str:
    if biller.lookup_factor == Biller.LookupFactor.LAST_BILL_AMOUNT:
        # On a miss the same query runs for an id no row has, so a miss costs what a hit costs.
        last_total = (
            Bill.objects.filter(account_id=account.pk if account else 0, issue_date__isnull=False)
            .exclude(status__in=(Bill.Status.DRAFT, Bill.Status.VOID))
            .order_by("-issue_date", "-pk")
            .values_list("total", flat=True)
            .first()
        )
        return _STAND_IN if last_total is None else str(last_total)
    return account.postal_code_normalized if account is not None else _STAND_IN


_ZIP_PLUS_4 = re.compile(r"\s*(\d{5})\s*-?\s*\d{4}\s*")


def _given_factor(*, biller: Biller, factor: LookupFactor, expected: str) -> str:
    if biller.lookup_factor == Biller.LookupFactor.LAST_BILL_AMOUNT:
        return "" if factor.last_bill_amount is None else str(factor.last_bill_amount)
    typed = factor.postal_code or ""
    zip_plus_4 = _ZIP_PLUS_4.fullmatch(typed)
    if zip_plus_4 and len(expected) == 5:
        # "92501-1234" for an address on file as "92501": the first five digits are the ZIP code.
        return zip_plus_4.group(1)
    return normalize_postal_code(typed)


def account_lookup(*, biller: Biller, account_number: str, factor: LookupFactor, client_ip: str) -> CustomerAccount:
    """The account these details belong to. Raises LookupLocked (nothing was tried) or LookupFailed."""
    account_number = normalize_account_number(account_number)
    ip_key = rate_limit_key("lookup", "ip", client_ip or "unknown")
    variants = _number_variants(account_number)
    account_key = rate_limit_key("lookup", "acct", f"{biller.pk}:{variants[-1].upper()}")

    # Both are counted as failures up front and given back on success, so that parallel guesses cannot overshoot
    # the limits; a locked attempt is given back too (it tried nothing).
    ip_failures, ip_left = rate_limit_hit(ip_key, IP_WINDOW_SECONDS)
    if ip_failures > IP_FAILURE_LIMIT:
        rate_limit_undo(ip_key)
        raise LookupLocked(ip_left)
    failures, account_left = rate_limit_hit(account_key, ACCOUNT_WINDOW_SECONDS)
    if failures > ACCOUNT_FAILURE_LIMIT:
        rate_limit_undo(ip_key)
        rate_limit_undo(account_key)
        raise LookupLocked(account_left)

    account = (
        CustomerAccount.objects.select_related("biller")
        .filter(biller=biller, account_number__in=variants)
        .order_by("pk")
        .first()
    )
    expected = _expected_factor(biller=biller, account=account)
    given = _given_factor(biller=biller, factor=factor, expected=expected)
    matches = hmac.compare_digest(_digest(expected), _digest(given))
    if account is None or not given or not matches:
        raise LookupFailed()
    rate_limit_undo(ip_key)
    rate_limit_undo(account_key)
    return account


# --- The grant: which one account this browser session may pay for, and until when ---------------------------------


def grant_store(request, *, account: CustomerAccount, seconds: int = GRANT_SECONDS) -> None:
    """Let this session open `account`'s payment screen for a while. Replaces any earlier grant.

    The session key is rotated first, so a session id fixed before the lookup is worthless after it.
    """
    request.session.cycle_key()
    request.session[GRANT_SESSION_KEY] = {"account_id": account.pk, "expires_at": int(time.time()) + seconds}


def granted_account_id(request) -> int | None:
    grant = request.session.get(GRANT_SESSION_KEY)
    if not isinstance(grant, dict):
        return None
    try:
        if int(grant["expires_at"]) <= time.time():
            return None
        return int(grant["account_id"])
    except (KeyError, TypeError, ValueError):
        return None
