"""What the insight page shows, as plain data: sections of headline figures and tables, each with a note saying what
it counts. The selectors fill it, the admin view renders it, the CSV export writes its tables, charts draw from it.

Cells are typed so that the page and the CSV can each show them their own way: `Money` (minor units and currency),
`Ratio` (a share, None when there is nothing to divide by), or a plain int or str.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal


@dataclass(frozen=True)
class Money:
    minor: int
    currency: str


@dataclass(frozen=True)
class Ratio:
    """numerator ÷ denominator, kept whole so a test can check both; `percent` rounds to one decimal."""

    numerator: int
    denominator: int
    as_percent: bool = True

    @property
    def value(self) -> Decimal | None:
        if not self.denominator:
            return None
        scale = 100 if self.as_percent else 1
        places = Decimal("0.1") if self.as_percent else Decimal("0.01")
        return (Decimal(self.numerator) * scale / Decimal(self.denominator)).quantize(places, rounding=ROUND_HALF_UP)


def ratio_value(cell) -> Decimal | int | None:
    """The number behind a cell, for charts."""
    if isinstance(cell, Ratio):
        return cell.value
    if isinstance(cell, Money):
        return cell.minor
    if isinstance(cell, (int, Decimal)):
        return cell
    return None


@dataclass
class Chart:
    """Which columns of a table to draw as bars, one series per column; rows are the categories."""

    value_columns: list[int]
    description: str


@dataclass
class Table:
    slug: str
    title: str
    note: str
    columns: list[str]
    rows: list[list] = field(default_factory=list)
    chart: Chart | None = None


@dataclass
class Figure:
    label: str
    value: object
    previous: object
    note: str


@dataclass
class Section:
    slug: str
    title: str
    figures: list[Figure] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    caveats: list[str] = field(default_factory=list)


@dataclass
class Report:
    biller_id: int
    currency: str
    period: object
    previous: object
    today: object
    sections: list[Section] = field(default_factory=list)

    def section(self, slug: str) -> Section | None:
        return next((s for s in self.sections if s.slug == slug), None)

    def table(self, slug: str) -> Table | None:
        return next((t for s in self.sections for t in s.tables if t.slug == slug), None)

    def merge(self, extra: Section) -> None:
        """Add a source's section, or its figures and tables to the section of the same slug."""
        mine = self.section(extra.slug)
        if mine is None:
            self.sections.append(extra)
            return
        mine.figures.extend(extra.figures)
        mine.tables.extend(extra.tables)
        mine.caveats.extend(extra.caveats)
