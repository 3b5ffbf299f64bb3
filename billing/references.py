"""The bank-transfer reference of a customer account: what a payer quotes on a transfer so that the statement line
finds its account, with a check digit so that a typo is caught instead of paying someone else's bill.

Two schemes, chosen per biller (`Biller.bank_reference_scheme`):

- ``rf``: the ISO 11649 structured creditor reference, ``RF`` + two check digits (ISO 7064 mod 97-10) + the biller's
  optional prefix (letters and digits) + the account's id in 9 digits, e.g. ``RF65 BP00 0000 042``;
- ``numeric``: the biller's prefix (digits) + the account's id in 9 digits + a Luhn check digit, e.g. ``7100000004 24``.

The account's id (its primary key) never changes, so neither does its reference, and it is computed, not stored:
`references_find` reads the id back. RF references are always read, so a biller that moves to numeric references
does not orphan the ones printed on old bills; numeric ones only for a biller that uses them. Check digits come from
python-stdnum.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from itertools import combinations

from stdnum import luhn
from stdnum.iso7064 import mod_97_10

ID_DIGITS = 9
SCHEME_RF = "rf"
SCHEME_NUMERIC = "numeric"


def _rf_check_digits(base: str) -> str:
    # ISO 11649: the check digits make base + "RF" + digits valid under ISO 7064 mod 97-10.
    return mod_97_10.calc_check_digits(base + "RF")


def bank_reference(*, account_id: int, scheme: str = SCHEME_RF, prefix: str = "") -> str:
    """The compact reference (no spaces) of an account."""
    body = f"{prefix.upper()}{account_id:0{ID_DIGITS}d}"
    if scheme == SCHEME_NUMERIC:
        return body + luhn.calc_check_digit(body)
    return "RF" + _rf_check_digits(body) + body


def bank_reference_display(reference: str) -> str:
    """Grouped in fours for print and screen, as banks print them ("RF65 BP00 0000 042")."""
    return " ".join(reference[i : i + 4] for i in range(0, len(reference), 4))


def bank_reference_valid(reference: str) -> bool:
    reference = compact(reference)
    if reference.startswith("RF"):
        return reference[2:4].isdigit() and mod_97_10.is_valid(reference[4:] + reference[:4])
    return reference.isdigit() and luhn.is_valid(reference)


def compact(text: str) -> str:
    return re.sub(r"[\s\-./]", "", text or "").upper()


@dataclass(frozen=True)
class Found:
    """A reference-shaped token in a statement line's text. `valid` says whether its check digit holds;
    `account_id` is what it names if taken as written (for a near miss: whom the payer probably meant)."""

    reference: str
    account_id: int
    valid: bool


def _spaced(pattern: str) -> str:
    # Payers and banks put spaces (or dashes) anywhere: between every character of the pattern allow them.
    return r"[\s\-]*".join(pattern)


@functools.lru_cache(maxsize=64)
def _patterns(rf_prefix: str, numeric_prefix: str | None) -> tuple[re.Pattern, re.Pattern, re.Pattern]:
    """`references_find`'s three patterns for a biller's prefixes, built once (a statement reads thousands of lines):
    the RF reference, the same without "RF", and the numeric reference."""
    digit = r"\d"
    body = "".join(_spaced(ch) + r"[\s\-]*" for ch in rf_prefix) + r"[\s\-]*".join([digit] * ID_DIGITS)
    rf = re.compile(r"R[\s\-]*F[\s\-]*(\d[\s\-]*\d)[\s\-]*(" + body + r")(?!\d)")
    bare = re.compile(r"(?<![\dA-Z])(\d[\s\-]*\d)[\s\-]*(" + body + r")(?!\d)")
    numeric = re.compile(
        r"(?<![\dA-Z])(" + r"[\s\-]*".join([digit] * (len(numeric_prefix or "") + ID_DIGITS + 1)) + r")(?!\d)"
    )
    return rf, bare, numeric


def references_find(text: str, *, prefix: str = "", numeric_prefix: str | None = None) -> list[Found]:
    """Every token in `text` that has the shape of one of this biller's references, valid ones first.

    `numeric_prefix` None: the biller does not use numeric references, so none is looked for.
    Tolerates spaces, dashes and case, and a missing "RF" (a payer who typed only the digits). The shapes are fixed
    length (prefix + 9 digits), so a reference run into a following word ("RF65BP000000042INVOICE") is still read.
    """
    text = (text or "").upper()
    found: list[Found] = []
    rf_prefix = prefix.upper()
    rf, bare, numeric = _patterns(rf_prefix, numeric_prefix)
    for match in rf.finditer(text):
        check, base = compact(match.group(1)), compact(match.group(2))
        found.append(Found("RF" + check + base, int(base[len(rf_prefix) :]), mod_97_10.is_valid(base + "RF" + check)))
    # "RF" left out: the check digits and the body as the payer typed them.
    for match in bare.finditer(text):
        check, base = compact(match.group(1)), compact(match.group(2))
        if mod_97_10.is_valid(base + "RF" + check):
            found.append(Found("RF" + check + base, int(base[len(rf_prefix) :]), True))
    # Numeric references only for a biller that uses them: a bare run of digits passes a Luhn check one time in ten.
    for match in numeric.finditer(text) if numeric_prefix is not None else ():
        digits = compact(match.group(1))
        if digits.startswith(numeric_prefix):
            found.append(Found(digits, int(digits[len(numeric_prefix) : -1]), luhn.is_valid(digits)))
    seen, unique = set(), []
    for item in sorted(found, key=lambda f: not f.valid):
        if item.reference not in seen:
            seen.add(item.reference)
            unique.append(item)
    return unique


def near_miss_account_ids(found: Found, *, prefix: str = "", numeric_prefix: str = "") -> list[int]:
    """For a reference whose check digit fails: the account ids one typo away (one digit changed, or two neighbours
    swapped) whose reference is valid, plus the id as written. The payer most likely meant one of them."""
    if found.valid:
        return [found.account_id]
    written = f"{found.account_id:0{ID_DIGITS}d}"
    candidates = {written}
    for i in range(ID_DIGITS):
        for d in "0123456789":
            candidates.add(written[:i] + d + written[i + 1 :])
    for i, j in combinations(range(ID_DIGITS), 2):
        if j == i + 1:
            candidates.add(written[:i] + written[j] + written[i] + written[j + 1 :])
    ids = []
    for body in candidates:
        if found.reference.startswith("RF"):
            ok = _rf_check_digits(prefix.upper() + body) == found.reference[2:4]
        else:
            ok = luhn.calc_check_digit(numeric_prefix + body) == found.reference[-1]
        if ok or body == written:
            ids.append(int(body))
    return sorted(set(ids) - {0})
