"""Schedule arithmetic: instalments always add up to the balance in minor units, in a 0-decimal and a 3-decimal
currency, with the rounding remainder where the biller said."""

import datetime as dt

import pytest

from billing.errors import ApplicationError
from billing.models import Frequency, PlanRules, RemainderOn
from billing.money import currency_decimals
from billing.plans.schedule import add_months, down_payment_for, schedule_build, schedule_options

START = dt.date(2026, 1, 31)


@pytest.mark.parametrize("currency", ["JPY", "KWD", "USD"])
@pytest.mark.parametrize("total", [2, 7, 100, 9_999, 10_000, 33_334, 1_000_001, 123_456_789])
@pytest.mark.parametrize("count", [2, 3, 4, 6])
@pytest.mark.parametrize("down", [0, 1, 999])
@pytest.mark.parametrize("remainder_on", [RemainderOn.FIRST, RemainderOn.LAST])
def test_instalments_always_sum_to_the_balance(currency, total, count, down, remainder_on):
    if down >= total or total - down < count:
        with pytest.raises(ApplicationError):
            schedule_build(total=total, currency=currency, count=count, frequency=Frequency.MONTHLY, start=START,
                           down_payment=down, remainder_on=remainder_on)  # fmt: skip
        return
    schedule = schedule_build(total=total, currency=currency, count=count, frequency=Frequency.MONTHLY, start=START,
                              down_payment=down, remainder_on=remainder_on)  # fmt: skip
    assert sum(i.amount for i in schedule.instalments) == total
    regular = [i.amount for i in schedule.instalments if i.number > 0]
    assert len(regular) == count and all(a > 0 for a in regular)
    # Every instalment but the one carrying the remainder is the same amount.
    carrier = 0 if remainder_on == RemainderOn.FIRST else -1
    others = regular[1:] if carrier == 0 else regular[:-1]
    assert len(set(others)) <= 1
    assert regular[carrier] == others[0] + schedule.remainder


def test_kwd_instalments_are_whole_dinars_with_the_fils_on_the_last():
    # 100.000 KWD in three: 33.000, 33.000, 34.000 (3 decimals: 1 dinar = 1000 fils)
    assert currency_decimals("KWD") == 3
    schedule = schedule_build(total=100_000, currency="KWD", count=3, frequency=Frequency.MONTHLY, start=START)
    assert [i.amount for i in schedule.instalments] == [33_000, 33_000, 34_000]
    assert schedule.remainder == 1_000
    odd = schedule_build(total=100_001, currency="KWD", count=3, frequency=Frequency.MONTHLY, start=START,
                         remainder_on=RemainderOn.FIRST)  # fmt: skip
    assert [i.amount for i in odd.instalments] == [34_001, 33_000, 33_000]


def test_jpy_has_no_minor_unit_to_round_to():
    assert currency_decimals("JPY") == 0
    schedule = schedule_build(total=10_000, currency="JPY", count=3, frequency=Frequency.WEEKLY, start=START,
                              down_payment=1_000)  # fmt: skip
    assert [(i.number, i.amount) for i in schedule.instalments] == [(0, 1_000), (1, 3_000), (2, 3_000), (3, 3_000)]
    schedule = schedule_build(total=10_001, currency="JPY", count=3, frequency=Frequency.WEEKLY, start=START)
    assert [i.amount for i in schedule.instalments] == [3_333, 3_333, 3_335]


def test_dates_follow_the_frequency_and_month_ends():
    monthly = schedule_build(total=90_000, currency="USD", count=3, frequency=Frequency.MONTHLY, start=START,
                             down_payment=9_000)  # fmt: skip
    assert [i.due_date for i in monthly.instalments] == [
        START, dt.date(2026, 2, 28), dt.date(2026, 3, 31), dt.date(2026, 4, 30)
    ]
    biweekly = schedule_build(total=90_000, currency="USD", count=2, frequency=Frequency.BIWEEKLY, start=START)
    assert [i.due_date for i in biweekly.instalments] == [dt.date(2026, 2, 14), dt.date(2026, 2, 28)]
    assert add_months(dt.date(2028, 1, 31), 1) == dt.date(2028, 2, 29)
    assert add_months(dt.date(2026, 11, 15), 3) == dt.date(2027, 2, 15)


def test_down_payment_percent_and_fixed():
    rules = PlanRules(down_payment=PlanRules.DownPayment.PERCENT, down_payment_percent=10)
    assert down_payment_for(rules=rules, total=12_345) == 1_234
    rules = PlanRules(down_payment=PlanRules.DownPayment.FIXED, down_payment_fixed=5_000)
    assert down_payment_for(rules=rules, total=12_345) == 5_000
    assert down_payment_for(rules=rules, total=5_000) == 0  # never the whole balance
    assert down_payment_for(rules=PlanRules(), total=12_345) == 0


def test_options_respect_the_smallest_instalment_and_the_frequencies():
    rules = PlanRules(min_instalments=2, max_instalments=6, allow_weekly=False, allow_biweekly=False,
                      allow_monthly=True, min_instalment=2_500)  # fmt: skip
    options = schedule_options(rules=rules, total=10_000, currency="USD", start=START)
    assert [o.key for o in options] == ["monthly-2", "monthly-3", "monthly-4"]
    for option in options:
        assert sum(i.amount for i in option.instalments) == 10_000
