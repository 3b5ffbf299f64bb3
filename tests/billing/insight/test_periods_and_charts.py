"""The period selector's dates and the SVG chart geometry, left to right and right to left."""

import datetime as dt

import pytest

from billing.errors import ApplicationError
from billing.insight.charts import LABEL_WIDTH, WIDTH, chart_build
from billing.insight.periods import CUSTOM, LAST_12_MONTHS, LAST_MONTH, THIS_MONTH, period_make
from billing.insight.report import Chart, Money, Ratio, Table

TODAY = dt.date(2026, 3, 15)


def span(period):
    return period.start.isoformat(), period.end.isoformat()


def test_periods_and_what_they_are_compared_with():
    this = period_make(kind=THIS_MONTH, today=TODAY)
    assert span(this) == ("2026-03-01", "2026-03-31") and span(this.previous()) == ("2026-02-01", "2026-02-28")
    last = period_make(kind=LAST_MONTH, today=TODAY)
    assert span(last) == ("2026-02-01", "2026-02-28") and span(last.previous()) == ("2026-01-01", "2026-01-31")
    year = period_make(kind=LAST_12_MONTHS, today=TODAY)
    assert span(year) == ("2025-04-01", "2026-03-31") and span(year.previous()) == ("2024-04-01", "2025-03-31")
    custom = period_make(kind=CUSTOM, today=TODAY, start=dt.date(2026, 1, 10), end=dt.date(2026, 1, 19))
    assert custom.days == 10 and span(custom.previous()) == ("2025-12-31", "2026-01-09")
    # January's "last month" crosses the year.
    assert span(period_make(kind=LAST_MONTH, today=dt.date(2026, 1, 5))) == ("2025-12-01", "2025-12-31")
    assert [m.isoformat() for m in year.trend_months()][::11] == ["2025-04-01", "2026-03-01"]


@pytest.mark.parametrize(
    "start, end, message",
    [(None, dt.date(2026, 1, 1), "both"), (dt.date(2026, 2, 1), dt.date(2026, 1, 1), "before"),
     (dt.date(2020, 1, 1), dt.date(2026, 1, 1), "three years")],
)  # fmt: skip
def test_custom_range_is_checked(start, end, message):
    with pytest.raises(ApplicationError, match=message):
        period_make(kind=CUSTOM, today=TODAY, start=start, end=end)


def table():
    return Table(
        slug="t", title="Collected", note="n", columns=["Name", "Amount", "Share"],
        rows=[["Guest", Money(3000, "USD"), Ratio(3, 4)], ["Portal", Money(1000, "USD"), Ratio(1, 4)],
              ["Staff", Money(0, "USD"), Ratio(0, 4)]],
        chart=Chart(value_columns=[1], description="Amount by channel."),
    )  # fmt: skip


def test_bars_are_proportional_and_labelled():
    chart = chart_build(table(), rtl=False)
    guest, portal, staff = (row.bars[0] for row in chart.rows)
    # The largest bar fills the bar area; 1000 is a third of 3000; zero draws nothing.
    full = WIDTH - LABEL_WIDTH - 110
    assert (guest.x, guest.width) == (LABEL_WIDTH, full)
    assert portal.width == round(full / 3, 1) and staff.width == 0
    assert [b.text for b in (guest, portal, staff)] == ["$30.00", "$10.00", "$0.00"]
    assert chart.title == "Collected" and chart.description == "Amount by channel."


def test_right_to_left_bars_grow_from_the_right():
    chart = chart_build(table(), rtl=True)
    guest, portal = chart.rows[0].bars[0], chart.rows[1].bars[0]
    assert guest.x + guest.width == portal.x + portal.width == WIDTH - LABEL_WIDTH
    assert chart.rows[0].label_x > WIDTH - LABEL_WIDTH and chart.rtl
    assert guest.text_x < guest.x  # the value sits at the bar's far (left) end


def test_a_table_without_rows_or_chart_draws_nothing():
    empty = table()
    empty.rows = []
    assert chart_build(empty, rtl=False) is None
