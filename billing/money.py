"""The one place that converts, rounds and formats money.

Amounts live as integers in the currency's minor unit (cents, fils, yen). The number of decimals comes from the
currency itself (ISO 4217 via babel): KWD, BHD and OMR have 3, JPY has 0, most others 2.
"""

import re
from collections.abc import Callable
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from functools import lru_cache

from babel import Locale
from babel.numbers import (
    NumberFormatError,
    format_decimal,
    get_currency_precision,
    get_currency_symbol,
    get_decimal_symbol,
    get_group_symbol,
    list_currencies,
    parse_decimal,
)
from django.utils.translation import get_language, to_locale
from django.utils.translation import gettext as _

from .errors import ApplicationError

_KNOWN_CURRENCIES = frozenset(list_currencies())
# Commas are accepted only as thousands separators in whole groups of three ("1,234.50"). Anything else with a comma,
# like "12,50", is refused: read as a decimal comma it means 12.50, read as a separator 1250.00; we never guess.
_THOUSANDS = re.compile(r"^[+-]?\d{1,3}(,\d{3})+(\.\d*)?$")


def validate_currency(code: str) -> str:
    code = (code or "").strip().upper()
    if code not in _KNOWN_CURRENCIES:
        raise ApplicationError(_("Unknown currency code “%(code)s”.") % {"code": code})
    return code


def currency_decimals(currency: str) -> int:
    return get_currency_precision(validate_currency(currency))


def to_minor(value, currency: str, *, strict: bool = False) -> int:
    """Turn a decimal amount ("12.345", Decimal, int) into integer minor units.

    Rounds half up to the currency's precision. With strict=True, more decimals than the currency has is an error
    instead: imports use that, so a typo never silently changes an amount.
    """
    places = currency_decimals(currency)
    text = str(value).strip()
    if "," in text:
        if not _THOUSANDS.match(text):
            raise ApplicationError(
                _("“%(value)s” is not an amount. Use a dot for decimals, like 12.50.") % {"value": value}
            )
        text = text.replace(",", "")
    try:
        amount = Decimal(text)
    except (InvalidOperation, ValueError):
        raise ApplicationError(_("“%(value)s” is not an amount.") % {"value": value}) from None
    if not amount.is_finite():
        raise ApplicationError(_("“%(value)s” is not an amount.") % {"value": value})
    quantum = Decimal(1).scaleb(-places)
    rounded = amount.quantize(quantum, rounding=ROUND_HALF_UP)
    if strict and rounded != amount:
        raise ApplicationError(
            _("“%(value)s” has more than %(places)s decimal places for %(currency)s.")
            % {"value": value, "places": places, "currency": currency}
        )
    return int(rounded.scaleb(places))


# Typed amounts. Arabic-Indic (٠-٩) and Persian (۰-۹) digits are digits; the Arabic decimal separator (٫) and
# thousands separator (٬), which Persian uses too, mean only that, so they are read the same in every language.
_NATIVE_DIGIT_SETS = {"arab": "٠١٢٣٤٥٦٧٨٩", "arabext": "۰۱۲۳۴۵۶۷۸۹"}
_NATIVE_DIGITS = str.maketrans("".join(_NATIVE_DIGIT_SETS.values()), "0123456789" * len(_NATIVE_DIGIT_SETS))
_ARABIC_DECIMAL, _ARABIC_GROUP = "\u066b", "\u066c"
# Direction marks and isolates come along when a right-to-left number is copied; they are not part of it.
_BIDI_MARKS = dict.fromkeys(map(ord, "\u200e\u200f\u061c\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"))
_SIGNS = frozenset("+-\u2212\u2012\u2013\ufe63\uff0b\uff0d")


def _currency_marks(currency: str, locale: str) -> list[str]:
    """What may stand before or after a typed amount: the bill's own currency code and symbols, never another's."""
    marks = {currency}
    for where in (locale, "en"):
        try:
            marks.add(get_currency_symbol(currency, locale=where).translate(_BIDI_MARKS).strip())
        except Exception:  # an unknown locale must never break a form
            continue
    return sorted((m for m in marks if m), key=len, reverse=True)


def amount_example(currency: str, locale: str | None = None) -> str:
    """42.50 as this language writes it (۴۲٫۵۰ in Persian, 42,50 in Spanish), with the currency's decimals."""
    locale = locale or to_locale(get_language() or "en")
    places = currency_decimals(currency)
    pattern = "0." + "0" * places if places else "0"
    example = format_decimal(Decimal("42.50"), format=pattern, locale=locale, numbering_system="default")
    # babel gives the native separators but Latin digits; write the native digits too where the language uses them.
    native = _NATIVE_DIGIT_SETS.get(Locale.parse(locale).default_numbering_system)
    return example.translate(str.maketrans("0123456789", native)) if native else example


def parse_amount(value: str, currency: str, *, locale: str | None = None) -> int:
    """An amount a person typed, read the way the active language writes numbers, as integer minor units.

    "1,042.50" in English, "1.042,50" in Spanish, "١٬٠٤٢٫٥٠" or "۱٬۰۴۲٫۵۰" in Arabic or Persian. The bill's own
    currency sign or code may stand around it. Signs, exponents, fractions, other characters, separators in the wrong
    places, another currency's sign and more decimals than the currency has are refused with a message: an amount that
    could be read two ways is never guessed. Raises ApplicationError.
    """
    locale = locale or to_locale(get_language() or "en")
    places = currency_decimals(currency)
    example = amount_example(currency, locale)
    text = (value or "").translate(_BIDI_MARKS).strip()
    for mark in _currency_marks(currency, locale):
        if text.startswith(mark):
            text = text[len(mark):].strip()
        elif text.endswith(mark):
            text = text[: -len(mark)].strip()
    if not text:
        raise ApplicationError(_("Enter an amount, for example %(example)s.") % {"example": example})
    if any(ch in _SIGNS for ch in text):
        raise ApplicationError(_("Enter the amount without a plus or minus sign."))
    decimal_symbol = get_decimal_symbol(locale, numbering_system="latn")
    group_symbol = get_group_symbol(locale, numbering_system="latn")
    text = text.translate(_NATIVE_DIGITS).replace(_ARABIC_DECIMAL, decimal_symbol).replace(_ARABIC_GROUP, group_symbol)
    not_an_amount = ApplicationError(
        _("“%(value)s” is not an amount. Type it like %(example)s.") % {"value": value.strip(), "example": example}
    )
    # Only ASCII digits and this language's two separators; babel then checks where the separators stand.
    allowed = f"[0-9{re.escape(group_symbol + decimal_symbol)}]+"
    if not re.fullmatch(allowed, text) or not re.search("[0-9]", text):
        raise not_an_amount
    try:
        amount = parse_decimal(text, locale=locale, strict=True, numbering_system="latn")
        whole = amount.quantize(Decimal(1).scaleb(-places))
    except (NumberFormatError, InvalidOperation):  # InvalidOperation: more digits than any bill has
        raise not_an_amount from None
    if amount != whole:
        if not places:
            raise ApplicationError(_("%(currency)s amounts have no decimals.") % {"currency": currency})
        raise ApplicationError(
            _("%(currency)s amounts have at most %(places)s decimal places.") % {"currency": currency, "places": places}
        )
    return to_minor(amount, currency, strict=True)


def from_minor(minor: int, currency: str) -> Decimal:
    places = currency_decimals(currency)
    return Decimal(int(minor)).scaleb(-places).quantize(Decimal(1).scaleb(-places))


# Right-to-left languages: an amount is a left-to-right island in the sentence around it. Unicode's isolates
# (LEFT-TO-RIGHT ISOLATE ... POP DIRECTIONAL ISOLATE) keep "62.49 US$" from showing as "$US 62.49" on pages, in PDFs
# and in e-mails alike, wherever the string lands.
_RTL_LANGUAGES = frozenset({"ar", "fa", "he", "ur"})
LTR_ISOLATE, POP_ISOLATE = "\u2066", "\u2069"


def format_money(minor: int, currency: str, locale: str | None = None) -> str:
    return money_formatter(currency, locale or to_locale(get_language() or "en"))(minor)


@lru_cache(maxsize=256)
def money_formatter(currency: str, locale: str) -> Callable[[int], str]:
    """One formatter per currency and language, made once per process: babel's locale data and currency pattern are
    looked up here, not for every amount on a page (two thirds of `format_currency`'s time). Same output."""
    try:
        parsed = Locale.parse(locale)
    except Exception:  # an unknown locale must never break a page
        parsed = Locale.parse("en")
    pattern = parsed.currency_formats["standard"]
    isolate = locale.split("_")[0].lower() in _RTL_LANGUAGES

    def formatted(minor: int) -> str:
        text = pattern.apply(from_minor(minor, currency), parsed, currency=currency, currency_digits=True)
        return f"{LTR_ISOLATE}{text}{POP_ISOLATE}" if isolate else text

    return formatted


def percent_of(minor: int, basis_points: int) -> int:
    """basis_points/10000 of an amount, rounded half up, in integers only (250 bp = 2.5%)."""
    numerator = int(minor) * int(basis_points)
    quotient, remainder = divmod(numerator, 10_000)
    return quotient + (1 if remainder * 2 >= 10_000 else 0)


def multiply(unit_minor: int, quantity: Decimal) -> int:
    """unit price × quantity, rounded half up to whole minor units."""
    return int((Decimal(int(unit_minor)) * Decimal(quantity)).quantize(Decimal(1), rounding=ROUND_HALF_UP))
