"""Schedule arithmetic: a balance in minor units split into dated instalments that add up to it exactly.

Each instalment is a whole number of the currency's major units where the balance allows it (¥3,334 not ¥3,333.33 is
moot in yen, but 33.000 KWD rather than 33.333 KWD matters), and what rounding leaves over goes on the first or the last
instalment, as the biller chose; the payer is told which. The number of decimals comes from the currency
(`billing.money.currency_decimals`): JPY has none, KWD three. No interest, no fee: the instalments add up to the balance.
"""

from __future__ import annotations

import calendar
import datetime as dt
from dataclasses import dataclass

from django.utils.translation import gettext as _

from ..errors import ApplicationError
from ..models import Frequency, PlanRules, RemainderOn
from ..money import currency_decimals


@dataclass(frozen=True)
class Instalment:
    number: int  # 0 is the down payment
    due_date: dt.date
    amount: int

    @property
    def is_down_payment(self) -> bool:
        return self.number == 0


@dataclass(frozen=True)
class Schedule:
    currency: str
    total: int
    frequency: str
    count: int  # instalments after the down payment
    down_payment: int
    remainder: int  # minor units added to one instalment by rounding
    remainder_on: str
    instalments: tuple[Instalment, ...]

    @property
    def key(self) -> str:
        """What a form sends back to name this choice: the server rebuilds the schedule from it, never trusting amounts."""
        return f"{self.frequency}-{self.count}"

    @property
    def regular_amount(self) -> int:
        return min(i.amount for i in self.instalments if not i.is_down_payment)

    def as_json(self) -> list[dict]:
        return [{"number": i.number, "due_date": i.due_date.isoformat(), "amount": i.amount} for i in self.instalments]


def add_months(day: dt.date, months: int) -> dt.date:
    """The same day `months` later, or the month's last day when it is shorter (31 January + 1 → 28 or 29 February)."""
    month_index = day.month - 1 + months
    year, month = day.year + month_index // 12, month_index % 12 + 1
    return day.replace(year=year, month=month, day=min(day.day, calendar.monthrange(year, month)[1]))


def instalment_date(start: dt.date, frequency: str, number: int) -> dt.date:
    """The date of instalment `number` (1, 2, …) of a plan made on `start`; the down payment (0) is due on `start`."""
    if frequency == Frequency.WEEKLY:
        return start + dt.timedelta(weeks=number)
    if frequency == Frequency.BIWEEKLY:
        return start + dt.timedelta(weeks=2 * number)
    if frequency == Frequency.MONTHLY:
        return add_months(start, number)
    raise ApplicationError(_("Unknown instalment frequency."))


def schedule_build(
    *, total: int, currency: str, count: int, frequency: str, start: dt.date, down_payment: int = 0,
    remainder_on: str = RemainderOn.LAST,
) -> Schedule:  # fmt: skip
    """`total` minor units as a down payment due on `start` (when there is one) and `count` instalments, one period
    apart after it. The amounts always add up to `total` exactly."""
    if count < 1:
        raise ApplicationError(_("A plan needs at least one instalment."))
    if not 0 <= down_payment < total:
        raise ApplicationError(_("The down payment must be less than the balance."))
    rest = total - down_payment
    if rest < count:
        raise ApplicationError(_("The balance is too small for that many instalments."))
    whole_unit = 10 ** currency_decimals(currency)
    share = rest // count
    # Whole major units when each share is at least one; smaller balances keep minor units.
    base = share - share % whole_unit if share >= whole_unit else share
    remainder = rest - base * count
    amounts = [base] * count
    amounts[0 if remainder_on == RemainderOn.FIRST else -1] += remainder
    items = [Instalment(0, start, down_payment)] if down_payment else []
    items += [Instalment(n, instalment_date(start, frequency, n), a) for n, a in enumerate(amounts, start=1)]
    schedule = Schedule(
        currency=currency, total=total, frequency=frequency, count=count, down_payment=down_payment,
        remainder=remainder, remainder_on=remainder_on, instalments=tuple(items),
    )  # fmt: skip
    assert sum(i.amount for i in schedule.instalments) == total  # the one promise of this module
    return schedule


def down_payment_for(*, rules: PlanRules, total: int) -> int:
    """The rules' down payment on a balance: a percentage (rounded down to the minor unit) or a fixed amount; never
    the whole balance."""
    if rules.down_payment == PlanRules.DownPayment.PERCENT:
        amount = total * rules.down_payment_percent // 100
    elif rules.down_payment == PlanRules.DownPayment.FIXED:
        amount = rules.down_payment_fixed
    else:
        amount = 0
    return amount if amount < total else 0


def schedule_options(*, rules: PlanRules, total: int, currency: str, start: dt.date) -> list[Schedule]:
    """Every schedule the rules allow for this balance: each frequency, each number of instalments whose smallest
    instalment is at least the rules' minimum."""
    down = down_payment_for(rules=rules, total=total)
    options = []
    for frequency in rules.frequencies:
        for count in range(rules.min_instalments, rules.max_instalments + 1):
            if total - down < count:
                break
            schedule = schedule_build(
                total=total, currency=currency, count=count, frequency=frequency, start=start, down_payment=down,
                remainder_on=rules.remainder_on,
            )  # fmt: skip
            if schedule.regular_amount < rules.min_instalment:
                break
            options.append(schedule)
    return options
