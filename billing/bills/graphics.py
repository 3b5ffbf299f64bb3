"""Pictures on the e-bill, drawn on the server as inline SVG so the page and its PDF need nothing from outside: the QR
code of the pay link (encoded by the `qrcode` library, pinned) and the usage history chart.

Both are accessible: role="img" with a title and a description; the chart's numbers are also in a table beside it.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import qrcode
from django.utils.html import escape, format_html
from django.utils.safestring import SafeString, mark_safe


def qr_svg(data: str, *, label: str, size_mm: int = 30) -> SafeString:
    """A QR code of `data` (error correction M: still reads on a creased printout), drawn as one SVG path."""
    code = qrcode.QRCode(border=2, error_correction=qrcode.constants.ERROR_CORRECT_M)
    code.add_data(data)
    code.make(fit=True)
    matrix = code.get_matrix()  # rows of booleans, the quiet border included
    runs = []
    for y, row in enumerate(matrix):
        x = 0
        while x < len(row):
            if row[x]:
                start = x
                while x < len(row) and row[x]:
                    x += 1
                runs.append(f"M{start} {y}h{x - start}v1h-{x - start}z")
            else:
                x += 1
    side = len(matrix)
    return format_html(
        '<svg class="qr" role="img" aria-label="{}" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {} {}" '
        'width="{}mm" height="{}mm" shape-rendering="crispEdges"><rect width="{}" height="{}" fill="#fff"/>'
        '<path fill="#000" d="{}"/></svg>',
        label, side, side, size_mm, size_mm, side, side, "".join(runs),
    )


@dataclass(frozen=True)
class UsagePoint:
    label: str  # the period as shown under its bar ("Nov 2026")
    usage: Decimal
    shown: str  # the usage formatted for the page's language
    current: bool


def usage_chart_svg(
    points: list[UsagePoint], *, title: str, description: str, chart_id: str, colour: str = "#0b5cab"
) -> SafeString:
    """A bar chart of usage per period, oldest first, the current period in `colour` (a checked #rrggbb). Colours are
    attributes, not CSS: the PDF renderer does not style SVG from the page's stylesheet."""
    width, height, top, bottom = 320, 150, 18, 28
    plot = height - top - bottom
    peak = max((p.usage for p in points), default=Decimal(0)) or Decimal(1)
    slot = width / max(len(points), 1)
    bar = slot * 0.62
    parts = [
        f'<svg class="usage-chart" role="img" aria-labelledby="{chart_id}-title {chart_id}-desc" '
        f'xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" direction="ltr">',
        f'<title id="{chart_id}-title">{escape(title)}</title>',
        f'<desc id="{chart_id}-desc">{escape(description)}</desc>',
        f'<line x1="0" y1="{top + plot}" x2="{width}" y2="{top + plot}" stroke="#6b7280" stroke-width="1"/>',
        '<g fill="#1b1f24" font-family="DejaVu Sans, sans-serif">',
    ]
    for i, point in enumerate(points):
        h = float(point.usage / peak) * plot
        x = i * slot + (slot - bar) / 2
        css, fill = ("bar current", colour) if point.current else ("bar", "#9ca3af")
        parts.append(
            f'<rect class="{css}" fill="{fill}" x="{x:.1f}" y="{top + plot - h:.1f}" width="{bar:.1f}" '
            f'height="{max(h, 0.5):.1f}"/>'
        )
        centre = i * slot + slot / 2
        parts.append(
            f'<text x="{centre:.1f}" y="{height - 10}" text-anchor="middle" font-size="9">{escape(point.label)}</text>'
        )
        if point.current:
            parts.append(
                f'<text x="{centre:.1f}" y="{max(top + plot - h - 4, 10):.1f}" text-anchor="middle" font-size="10" '
                f'font-weight="700">{escape(point.shown)}</text>'
            )
    parts.append("</g></svg>")
    return mark_safe("".join(parts))  # noqa: S308 - every text in it is escaped above; the rest are numbers
