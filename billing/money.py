"""The one place that converts, rounds and formats money.

Amounts live as integers in the currency's minor unit (cents, fils, yen). The number of decimals comes from the
currency itself (ISO 4217 via babel): KWD, BHD and OMR have 3, JPY has 0, most others 2.
"""

import re
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from babel.numbers import format_currency, get_currency_precision, list_currencies
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


def from_minor(minor: int, currency: str) -> Decimal:
    places = currency_decimals(currency)
    return Decimal(int(minor)).scaleb(-places).quantize(Decimal(1).scaleb(-places))


def format_money(minor: int, currency: str, locale: str | None = None) -> str:
    locale = locale or to_locale(get_language() or "en")
    try:
        return format_currency(from_minor(minor, currency), currency, locale=locale)
    except Exception:  # an unknown locale must never break a page
        return format_currency(from_minor(minor, currency), currency, locale="en")


def percent_of(minor: int, basis_points: int) -> int:
    """basis_points/10000 of an amount, rounded half up, in integers only (250 bp = 2.5%)."""
    numerator = int(minor) * int(basis_points)
    quotient, remainder = divmod(numerator, 10_000)
    return quotient + (1 if remainder * 2 >= 10_000 else 0)


def multiply(unit_minor: int, quantity: Decimal) -> int:
    """unit price × quantity, rounded half up to whole minor units."""
    return int((Decimal(int(unit_minor)) * Decimal(quantity)).quantize(Decimal(1), rounding=ROUND_HALF_UP))
