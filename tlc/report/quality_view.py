"""The report's quality view: what each month's quality report says, as charts and a table.

Row counts say a month landed; the quality report says what landed: rows the cleaning rules
dropped, pickups outside the month, rows with a negative amount (refunds), and nulls per
column. Per color, one chart shows each month's share of rows flagged (so a month that
suddenly has ten times the usual out-of-month pickups, a sign of another month's file, stands
out at a glance), and one table the numbers. Inline SVG, no scripts, no network.
"""

from __future__ import annotations

import html

from tlc.quality import QualityReport
from tlc.report.reconcile import MonthRow

# (label, colour, the count it charts), each as a share of the month's rows read.
SERIES = (
    ("out-of-month pickups", "#8e24aa", lambda q: q.out_of_month_pickups),
    ("rows with a negative amount", "#e53935", lambda q: q.negative_amount_rows),
    ("rows dropped by rules", "#fb8c00", lambda q: sum(q.rows_dropped.values())),
    ("rows without a vendor", "#546e7a", lambda q: q.nulls.get("vendor_id", 0)),
)
_BAR, _GAP, _HEIGHT = 10, 14, 160


def _share(report: QualityReport, count: int) -> float:
    return count / report.rows_read if report.rows_read else 0.0


def chart(color: str, rows: list[MonthRow]) -> str:
    """Grouped bars per month: the share of its rows in each series (the scale is the largest share)."""
    reports = [(r.key, r.quality) for r in rows if r.quality is not None]
    top = max([_share(q, f(q)) for _, q in reports for _, _, f in SERIES] + [0.001])
    group = len(SERIES) * _BAR + _GAP
    width = 70 + group * max(len(reports), 1)
    svg = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{_HEIGHT + 50}" role="img" '
        f'aria-label="{color}: share of rows flagged per month">',
        f'<text x="2" y="12" font-size="11">{top:.2%}</text><text x="2" y="{_HEIGHT + 12}" font-size="11">0</text>',
    ]
    for i, (key, q) in enumerate(reports):
        x0 = 70 + i * group
        for j, (label, fill, count) in enumerate(SERIES):
            share = _share(q, count(q))
            h = round(_HEIGHT * share / top)
            svg.append(
                f'<rect x="{x0 + j * _BAR}" y="{12 + _HEIGHT - h}" width="{_BAR - 1}" height="{h}" fill="{fill}">'
                f"<title>{color} {key}: {label} {count(q):,} ({share:.3%})</title></rect>"
            )
        svg.append(f'<text x="{x0}" y="{_HEIGHT + 30}" font-size="10">{key}</text>')
    svg.append("</svg>")
    return "".join(svg)


def _nulls(q: QualityReport) -> str:
    found = [f"{name} {n:,}" for name, n in sorted(q.nulls.items()) if n]
    return ", ".join(found) or "none"


def details(rows: list[MonthRow]) -> str:
    head = "<tr><th>month</th><th>rows read</th><th>written</th><th>dropped (rule: rows)</th>"
    head += "<th>out-of-month pickups</th><th>negative-amount rows</th><th>nulls per column</th></tr>"
    lines = [f"<table class=quality>{head}"]
    for r in rows:
        q = r.quality
        if q is None:
            lines.append(f"<tr><th>{r.key}</th><td colspan=6>no quality report</td></tr>")
            continue
        dropped = ", ".join(f"{rule}: {n:,}" for rule, n in q.rows_dropped.items()) or "none"
        lines.append(
            f"<tr><th>{r.key}</th><td>{q.rows_read:,}</td><td>{q.rows_written:,}</td><td>{html.escape(dropped)}</td>"
            f"<td>{q.out_of_month_pickups:,}</td><td>{q.negative_amount_rows:,}</td>"
            f"<td class=nulls>{html.escape(_nulls(q))}</td></tr>"
        )
    lines.append("</table>")
    return "".join(lines)


def section(colors: list[str], rows: list[MonthRow]) -> str:
    legend = " ".join(f'<span style="color:{fill}">&#9632; {label}</span>' for label, fill, _ in SERIES)
    parts = [f"<h2>Quality: what each month holds</h2><p>share of the month's rows read: {legend}</p>"]
    for color in colors:
        mine = [r for r in rows if r.month.color == color]
        parts.append(f"<h3>{color}</h3>{chart(color, mine)}{details(mine)}")
    return "".join(parts)
