"""Reading the unmatched queue: whose a line probably is. A fixed number of queries per line, however many accounts."""

from __future__ import annotations

import difflib
import unicodedata
from collections import defaultdict
from dataclasses import dataclass, field

from django.db.models import F, Q, Sum

from billing.models import Bill, CustomerAccount, StatementLine
from billing.references import near_miss_account_ids, references_find

NEAR_MISS, OWES_EXACTLY, BILL_EXACTLY, NAME = 4, 3, 2, 2
_FOLD = str.maketrans({"ł": "l", "Ł": "l", "ø": "o", "Ø": "o", "đ": "d", "ß": "ss", "æ": "ae", "œ": "oe"})


def name_folded(name: str) -> str:
    """For comparing names across banks: case, accents and punctuation gone ("ZOË ÅNGSTRÖM" == "Zoe Angstrom")."""
    decomposed = unicodedata.normalize("NFKD", (name or "").translate(_FOLD))
    letters = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " ".join("".join(ch if ch.isalnum() else " " for ch in letters.casefold()).split())


@dataclass
class Suggestion:
    account: CustomerAccount
    score: int = 0
    reasons: list[str] = field(default_factory=list)
    owed: int = 0


def statement_line_suggestions(*, line: StatementLine, limit: int = 5) -> list[Suggestion]:
    """Accounts this unmatched credit may be for, best first: a reference one typo away (the check digit caught
    it), an account that owes exactly the amount, a bill of exactly the amount, a holder name like the payer's."""
    biller = line.biller
    scores: dict[int, int] = defaultdict(int)
    reasons: dict[int, list[str]] = defaultdict(list)

    def add(account_id: int, points: int, reason: str) -> None:
        scores[account_id] += points
        reasons[account_id].append(reason)

    numeric_prefix = biller.bank_reference_prefix if biller.bank_reference_scheme == "numeric" else None
    rf_prefix = biller.bank_reference_prefix if biller.bank_reference_scheme == "rf" else ""
    for found in references_find(f"{line.remittance} {line.end_to_end_id}", prefix=rf_prefix,
                                 numeric_prefix=numeric_prefix):  # fmt: skip
        if not found.valid:
            for account_id in near_miss_account_ids(found, prefix=rf_prefix, numeric_prefix=numeric_prefix or ""):
                add(account_id, NEAR_MISS, f"reference one typo from {found.reference}")

    payable = Bill.objects.filter(biller=biller, status__in=Bill.PAYABLE_STATUSES)
    for row in (
        payable.values("account_id").annotate(owed=Sum(F("total") - F("amount_paid"))).filter(owed=line.amount)[:20]
    ):
        add(row["account_id"], OWES_EXACTLY, "owes exactly this amount")
    for account_id in (
        payable.annotate(left=F("total") - F("amount_paid")).filter(left=line.amount)
        .values_list("account_id", flat=True).distinct()[:20]
    ):  # fmt: skip
        add(account_id, BILL_EXACTLY, "has a bill of exactly this amount")

    payer = name_folded(line.counterparty_name)
    words = [w for w in (line.counterparty_name or "").split() if len(w) >= 3][:4]
    by_name = (
        CustomerAccount.objects.filter(biller=biller)
        .filter(Q(pk__in=list(scores)) | Q(*[Q(holder_name__icontains=w) for w in words], _connector=Q.OR))
        .select_related("biller")[:50]
        if words or scores
        else CustomerAccount.objects.none()
    )
    accounts = {}
    for account in by_name:
        accounts[account.pk] = account
        if payer and difflib.SequenceMatcher(None, payer, name_folded(account.holder_name)).ratio() >= 0.75:
            add(account.pk, NAME, "holder name like the payer's")
    owed = dict(
        payable.filter(account_id__in=list(accounts)).values("account_id")
        .annotate(owed=Sum(F("total") - F("amount_paid"))).values_list("account_id", "owed")
    )  # fmt: skip
    ranked = sorted((pk for pk in scores if pk in accounts), key=lambda pk: (-scores[pk], pk))[:limit]
    return [Suggestion(accounts[pk], scores[pk], reasons[pk], owed.get(pk) or 0) for pk in ranked]


def unmatched_lines(*, biller_id: int | None = None):
    """The queue: credits waiting for staff, oldest first."""
    queryset = StatementLine.objects.filter(status=StatementLine.Status.UNMATCHED, direction="credit")
    if biller_id:
        queryset = queryset.filter(biller_id=biller_id)
    return queryset.select_related("biller", "statement").order_by("booking_date", "pk")
