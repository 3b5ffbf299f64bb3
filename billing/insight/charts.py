"""Bar charts as server-rendered SVG, drawn from a report table: no script, no inline style (colours and sizes are SVG
presentation attributes, which a strict CSP allows), a <title> and <desc>, and the same numbers in the table beside.

Our own small template (templates/admin/billing/insight/chart.svg) rather than pygal: pygal's output leans on an
inline <style> block and optional JavaScript tooltips, which the strict CSP blocks or which we would have to strip,
and it does not mirror for right-to-left pages. Horizontal bars need only rectangles and text, so the geometry below
is the whole chart. Right to left, the labels move to the right and the bars grow leftwards.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from billing.money import format_money

from .report import Money, Ratio, Table, ratio_value

WIDTH = 640
LABEL_WIDTH = 190
VALUE_WIDTH = 110
BAR_HEIGHT = 14
BAR_GAP = 3
ROW_GAP = 10
TOP = 8
LEGEND_HEIGHT = 22
# Dark enough for text contrast (WCAG AA) on white, and told apart by more than hue: the legend names them.
COLOURS = ("#0b5cab", "#b4370b", "#196b33", "#6b3fa0")


@dataclass
class Bar:
    x: float
    y: float
    width: float
    fill: str
    text: str
    text_x: float
    text_anchor: str


@dataclass
class Row:
    label: str
    label_x: float
    label_y: float
    bars: list[Bar] = field(default_factory=list)


@dataclass
class Legend:
    name: str
    fill: str
    x: float
    text_x: float


@dataclass
class SvgChart:
    id: str
    title: str
    description: str
    width: int
    height: int
    rtl: bool
    label_anchor: str
    rows: list[Row]
    legend: list[Legend]
    bar_height: int = BAR_HEIGHT


def cell_text(cell) -> str:
    if isinstance(cell, Money):
        return format_money(cell.minor, cell.currency)
    if isinstance(cell, Ratio):
        value = cell.value
        if value is None:
            return "—"
        return f"{value}%" if cell.as_percent else str(value)
    return "" if cell is None else str(cell)


def chart_build(table: Table, *, rtl: bool) -> SvgChart | None:
    if table.chart is None or not table.rows:
        return None
    columns = table.chart.value_columns
    values = [[ratio_value(row[c]) for c in columns] for row in table.rows]
    largest = max((v for row in values for v in row if v is not None), default=0) or 1
    span = WIDTH - LABEL_WIDTH - VALUE_WIDTH
    legend_height = LEGEND_HEIGHT if len(columns) > 1 else 0
    group = len(columns) * (BAR_HEIGHT + BAR_GAP) - BAR_GAP
    rows: list[Row] = []
    y = TOP + legend_height
    for row, numbers in zip(table.rows, values):
        chart_row = Row(label=str(row[0]), label_x=WIDTH - LABEL_WIDTH + 6 if rtl else LABEL_WIDTH - 6,
                        label_y=y + group / 2 + 4)  # fmt: skip
        for index, (column, number) in enumerate(zip(columns, numbers)):
            length = float(Decimal(number or 0) / Decimal(largest) * span) if number else 0.0
            length = max(length, 0.0)
            bar_y = y + index * (BAR_HEIGHT + BAR_GAP)
            if rtl:
                x = WIDTH - LABEL_WIDTH - length
                text_x, anchor = x - 4, "start"  # under direction="rtl", "start" is the right edge of the text
            else:
                x = LABEL_WIDTH
                text_x, anchor = x + length + 4, "start"
            chart_row.bars.append(
                Bar(x=round(x, 1), y=bar_y, width=round(length, 1), fill=COLOURS[index % len(COLOURS)],
                    text=cell_text(row[column]), text_x=round(text_x, 1), text_anchor=anchor)
            )  # fmt: skip
        rows.append(chart_row)
        y += group + ROW_GAP
    legend = []
    if legend_height:
        for index, column in enumerate(columns):
            offset = LABEL_WIDTH + index * 150
            x = WIDTH - offset - 12 if rtl else offset
            legend.append(
                Legend(name=str(table.columns[column]), fill=COLOURS[index % len(COLOURS)], x=x,
                       text_x=x - 4 if rtl else x + 16)
            )  # fmt: skip
    return SvgChart(
        id=f"chart-{table.slug}", title=table.title, description=table.chart.description, width=WIDTH,
        height=int(y - ROW_GAP + TOP), rtl=rtl, label_anchor="end", rows=rows, legend=legend,
    )  # fmt: skip
