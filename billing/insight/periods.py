"""The period the insight page looks at, and the one it is compared with.

Dates are the biller's calendar dates; a period runs from `start` to `end`, both included. "This month" runs to the
end of the month (figures simply have nothing after today yet), so this month and last month are compared whole.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.utils.translation import gettext_lazy as _

from billing.errors import ApplicationError

THIS_MONTH, LAST_MONTH, LAST_12_MONTHS, CUSTOM = "this_month", "last_month", "last_12_months", "custom"
PERIOD_CHOICES = (
    (THIS_MONTH, _("This month")),
    (LAST_MONTH, _("Last month")),
    (LAST_12_MONTHS, _("Last 12 months")),
    (CUSTOM, _("Custom range")),
)
MAX_CUSTOM_DAYS = 3 * 366


def month_start(day: dt.date) -> dt.date:
    return day.replace(day=1)


def months_back(first: dt.date, count: int) -> dt.date:
    """The first day of the month `count` months before the month starting at `first`."""
    index = first.year * 12 + first.month - 1 - count
    return dt.date(index // 12, index % 12 + 1, 1)


def month_end(first: dt.date) -> dt.date:
    return months_back(first, -1) - dt.timedelta(days=1)


@dataclass(frozen=True)
class Period:
    kind: str
    start: dt.date
    end: dt.date  # included

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    @property
    def key(self) -> str:
        return f"{self.start.isoformat()}_{self.end.isoformat()}"

    def previous(self) -> Period:
        """The period just before, of the same shape: the month before, the 12 months before, or as many days before."""
        if self.kind in (THIS_MONTH, LAST_MONTH):
            first = months_back(self.start, 1)
            return Period(self.kind, first, month_end(first))
        if self.kind == LAST_12_MONTHS:
            first = months_back(self.start, 12)
            return Period(self.kind, first, self.start - dt.timedelta(days=1))
        return Period(self.kind, self.start - dt.timedelta(days=self.days), self.start - dt.timedelta(days=1))

    def trend_months(self) -> list[dt.date]:
        """The first days of the 12 months ending with the period's last month, oldest first."""
        last = month_start(self.end)
        return [months_back(last, count) for count in range(11, -1, -1)]


def period_make(*, kind: str, today: dt.date, start: dt.date | None = None, end: dt.date | None = None) -> Period:
    first = month_start(today)
    if kind == THIS_MONTH:
        return Period(kind, first, month_end(first))
    if kind == LAST_MONTH:
        previous = months_back(first, 1)
        return Period(kind, previous, month_end(previous))
    if kind == LAST_12_MONTHS:
        return Period(kind, months_back(first, 11), month_end(first))
    if kind == CUSTOM:
        if start is None or end is None:
            raise ApplicationError(_("Give both the first and the last day of the range."))
        if end < start:
            raise ApplicationError(_("The last day comes before the first day."))
        if (end - start).days + 1 > MAX_CUSTOM_DAYS:
            raise ApplicationError(_("A range can be at most three years long."))
        return Period(kind, start, end)
    raise ApplicationError(_("Unknown period."))
