from decimal import Decimal

import pytest

from billing.errors import ApplicationError
from billing.money import currency_decimals, format_money, from_minor, multiply, percent_of, to_minor


@pytest.mark.parametrize(("currency", "places"), [("USD", 2), ("EUR", 2), ("KWD", 3), ("BHD", 3), ("OMR", 3), ("JPY", 0)])
def test_decimals_come_from_the_currency(currency, places):
    assert currency_decimals(currency) == places


def test_three_decimal_currency_rounds_half_up_at_the_third_place():
    assert to_minor("1.2345", "KWD") == 1235  # 1.2345 → 1.235 KWD = 1235 fils
    assert to_minor("1.2344", "KWD") == 1234
    assert to_minor("0.0005", "KWD") == 1
    assert to_minor("12.5", "KWD") == 12500
    assert from_minor(1235, "KWD") == Decimal("1.235")


def test_two_and_zero_decimal_currencies():
    assert to_minor("10.005", "USD") == 1001
    assert to_minor("10.004", "USD") == 1000
    assert to_minor("1500.5", "JPY") == 1501
    assert to_minor(7, "USD") == 700


def test_strict_refuses_more_decimals_than_the_currency_has():
    assert to_minor("1.234", "KWD", strict=True) == 1234
    with pytest.raises(ApplicationError, match="more than 2 decimal places"):
        to_minor("1.234", "USD", strict=True)


@pytest.mark.parametrize("bad", ["", "abc", "1.2.3", "NaN", "Infinity"])
def test_garbage_is_not_an_amount(bad):
    with pytest.raises(ApplicationError, match="not an amount"):
        to_minor(bad, "USD")


def test_unknown_currency_is_refused():
    with pytest.raises(ApplicationError, match="Unknown currency"):
        to_minor("1", "XXQ")


def test_integer_percentages_round_half_up():
    assert percent_of(1000, 250) == 25  # 2.5% of 10.00
    assert percent_of(999, 250) == 25  # 24.975 → 25
    assert percent_of(998, 250) == 25  # 24.95 → 25
    assert percent_of(979, 250) == 24  # 24.475 → 24
    assert multiply(1234, Decimal("2.5")) == 3085


def test_formatting_uses_the_currency_precision():
    assert format_money(1235, "KWD", "en") == "KWD1.235"
    assert format_money(150000, "USD", "en_US") == "$1,500.00"
    assert format_money(1500, "JPY", "en") == "¥1,500"


def test_commas_only_as_thousands_separators():
    assert to_minor("1,234.50", "USD") == 123450
    assert to_minor("12,345,678", "JPY") == 12345678
    for ambiguous in ["12,50", "1,23", "1,2345.00", ",5"]:
        with pytest.raises(ApplicationError, match="Use a dot for decimals"):
            to_minor(ambiguous, "USD")


# --- Typed amounts: parsed by the active language, never guessed (issue 8, item 6) ---------------------------------

from django.utils import translation  # noqa: E402

from billing.money import parse_amount  # noqa: E402


@pytest.mark.parametrize(
    ("language", "typed", "currency", "minor"),
    [
        ("en", "42.50", "USD", 4250),
        ("en", "$42.50", "USD", 4250),
        ("en", " 1,042.5 ", "USD", 104250),
        ("en", "USD 7", "USD", 700),
        ("en", "1.234", "KWD", 1234),
        ("en", "1,500", "JPY", 1500),
        ("es", "42,50", "USD", 4250),
        ("es", "1.042,50", "USD", 104250),
        ("es", "42,50 US$", "USD", 4250),
        ("ar", "10.5", "USD", 1050),
        ("ar", "10٫5", "USD", 1050),
        ("ar", "١٠٫٥", "USD", 1050),
        ("ar", "١٬٠٤٢٫٥٠", "USD", 104250),
        ("ar", "١٫٢٣٤", "KWD", 1234),
        ("fa", "۱۰٫۵", "USD", 1050),
        ("fa", "10٫5", "USD", 1050),
        ("fa", "۱۰.۵", "USD", 1050),
        ("fa", "۱٬۰۴۲٫۵۰", "USD", 104250),
        ("fa", "\u200e۴۲٫۵۰\u200f", "USD", 4250),  # direction marks copied along with a right-to-left number
        ("en", "۱۰٫۵", "USD", 1050),  # Arabic-Indic and Persian separators mean one thing in any language
    ],
)
def test_typed_amounts_follow_the_active_language(language, typed, currency, minor):
    with translation.override(language):
        assert parse_amount(typed, currency) == minor


@pytest.mark.parametrize(
    ("language", "typed", "currency", "message"),
    [
        ("en", "-10", "USD", "plus or minus sign"),
        ("en", "+10", "USD", "plus or minus sign"),
        ("en", "−10", "USD", "plus or minus sign"),
        ("en", "1e3", "USD", "is not an amount"),
        ("en", "1/2", "USD", "is not an amount"),
        ("en", "12,50", "USD", "is not an amount"),  # a comma is not a decimal point in English: no guessing
        ("en", "1.2.3", "USD", "is not an amount"),
        ("en", "1 000", "USD", "is not an amount"),
        ("en", "NaN", "USD", "is not an amount"),
        ("en", "9" * 40, "USD", "is not an amount"),
        ("en", "4\u00a0250", "USD", "is not an amount"),
        ("en", "10 €", "USD", "is not an amount"),  # another currency's sign
        ("en", "", "USD", "Enter an amount"),
        ("en", "  $ ", "USD", "Enter an amount"),
        ("en", "10.505", "USD", "at most 2 decimal places"),
        ("en", "1.2345", "KWD", "at most 3 decimal places"),
        ("en", "1500.5", "JPY", "no decimals"),
        ("es", "12.50", "USD", "no es un importe"),  # a dot groups thousands in Spanish
        ("es", "-10", "USD", "signo"),
        ("ar", "١/٢", "USD", "ليس مبلغًا"),
        ("ar", "-١٠", "USD", "إشارة"),
        ("fa", "۱/۲", "USD", "مبلغ نیست"),
        ("fa", "", "USD", "مبلغ را وارد کنید"),
    ],
)
def test_anything_else_is_refused_with_a_clear_message(language, typed, currency, message):
    with translation.override(language):
        with pytest.raises(ApplicationError) as refused:
            parse_amount(typed, currency)
    assert message in str(refused.value.message)


def test_the_example_in_the_message_is_written_the_local_way():
    with translation.override("es"):
        with pytest.raises(ApplicationError, match="42,50"):
            parse_amount("", "USD")
    with translation.override("fa"):
        with pytest.raises(ApplicationError, match="۴۲٫۵۰"):
            parse_amount("", "USD")
