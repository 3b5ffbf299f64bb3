"""Figures that live outside billing: reminders (notifications) and portal sign-ins and invitations (accounts).

Billing never imports those apps (pyproject.toml's contracts), so they register a source here from their
`AppConfig.ready()`, the way accounts registers `billing.access`. Each source answers with sections; a section with
the slug of one of billing's (say "adoption") adds its figures and tables there. A source runs a fixed number of
queries, whatever the number of bills.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Protocol

from billing.clock import biller_zone

from .periods import Period
from .report import Section


@dataclass(frozen=True)
class InsightContext:
    """What every source needs: whose figures, which dates, and billing's own denominators."""

    biller: object
    period: Period
    previous: Period
    today: dt.date
    # Accounts with a bill issued in the period, the previous period, and each of the 12 trend months.
    active_accounts: int = 0
    active_accounts_previous: int = 0
    active_by_month: dict[dt.date, int] = field(default_factory=dict)

    def day_start(self, day: dt.date) -> dt.datetime:
        """Midnight at the start of `day` on the biller's clock."""
        return dt.datetime.combine(day, dt.time.min, tzinfo=biller_zone(self.biller))

    def bounds(self, period: Period) -> tuple[dt.datetime, dt.datetime]:
        """The period as aware moments [start, end) on the biller's clock."""
        return self.day_start(period.start), self.day_start(period.end + dt.timedelta(days=1))


class InsightSource(Protocol):
    def sections(self, *, context: InsightContext) -> list[Section]:
        """This source's sections for the context's biller and period."""


_sources: dict[str, InsightSource] = {}


def insight_source_add(name: str, source: InsightSource) -> None:
    """Register (or replace) a source under a name; registering twice keeps one."""
    _sources[name] = source


def insight_sources() -> list[InsightSource]:
    return [_sources[name] for name in sorted(_sources)]
