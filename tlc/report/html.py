"""The reconciliation as text and as one self-contained HTML page (no scripts, no network)."""

from __future__ import annotations

import datetime as dt
import html

from tlc.month import COLORS
from tlc.report import quality_view
from tlc.report.reconcile import STAGES, MonthRow, stale_note


def table(rows: list[MonthRow], skip: set[str]) -> str:
    shown = [s for s in STAGES if s not in skip]
    head = f"{'color':<7}{'month':<9}" + "".join(f"{s:>11}" for s in shown) + "  status"
    lines = [head, "-" * len(head)]
    for r in rows:
        cells = "".join(f"{'-' if r.counts.get(s) is None else f'{r.counts[s]:,}':>11}" for s in shown)
        remarks = "  " + "; ".join(r.remarks) if r.remarks else ""
        lines.append(f"{r.month.color:<7}{r.key:<9}{cells}  {r.status}{remarks}")
    return "\n".join(lines)


_COLOURS = {"yellow": "#e6b800", "green": "#2e8b57", "fhv": "#4a6fa5", "fhvhv": "#6d4c41"}
_STATUS = {"ok": "#c8e6c9", "stale": "#fff59d", "missing": "#eeeeee", "mismatch": "#ef9a9a"}


def _verdict(rows: list[MonthRow]) -> tuple[int, str]:
    """Months that do not reconcile, and the page's one-line verdict (stale months are no failure)."""
    bad = sum(r.status == "mismatch" for r in rows)
    verdict = f"{bad} month(s) do not reconcile" if bad else f"all {len(rows)} month(s) reconcile"
    return bad, verdict + stale_note(rows)


def html_page(rows: list[MonthRow], skip: set[str]) -> str:
    """One file, no scripts or network: inline SVG charts, a coverage grid, the quality view."""
    months = sorted({r.key for r in rows})
    by = {(r.month.color, r.key): r for r in rows}
    colors = [c for c in COLORS if any(r.month.color == c for r in rows)]
    peak = max([r.counts.get("parquet") or 0 for r in rows] + [1])
    group, bar, height = 18 * max(len(colors), 1) + 14, 16, 220
    width = 60 + group * max(len(months), 1)
    svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height + 60}" role="img">']
    svg.append(f'<text x="4" y="14" font-size="11">{peak:,} rows</text>')
    for i, key in enumerate(months):
        x0 = 60 + i * group
        for j, color in enumerate(colors):
            r = by.get((color, key))
            n = (r.counts.get("parquet") or 0) if r else 0
            h = round(height * n / peak)
            svg.append(
                f'<rect x="{x0 + j * 18}" y="{20 + height - h}" width="{bar}" height="{h}" '
                f'fill="{_COLOURS[color]}"><title>{color} {key}: {n:,} rows</title></rect>'
            )
        svg.append(f'<text x="{x0}" y="{height + 36}" font-size="11">{key}</text>')
    svg.append("</svg>")
    legend = " ".join(f'<span style="color:{_COLOURS[c]}">&#9632; {c}</span>' for c in colors)
    grid = ["<table class=grid><tr><th>month</th>" + "".join(f"<th>{c}</th>" for c in colors) + "</tr>"]
    for key in months:
        cells = []
        for color in colors:
            r = by.get((color, key))
            status = r.status if r else "missing"
            title = html.escape("; ".join(r.remarks) if r and r.remarks else status)
            cells.append(f'<td style="background:{_STATUS[status]}" title="{title}">{status}</td>')
        grid.append(f"<tr><th>{key}</th>{''.join(cells)}</tr>")
    grid.append("</table>")
    bad, verdict = _verdict(rows)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>tlc-luigi reconciliation</title>
<style>body{{font-family:sans-serif;margin:24px}} table{{border-collapse:collapse}}
td,th{{border:1px solid #999;padding:4px 10px;text-align:right}} .grid td{{text-align:center}}
.quality td.nulls{{text-align:left;font-size:12px}} h3{{font-size:16px}}
h1{{font-size:20px}} .verdict{{font-weight:bold;color:{"#b71c1c" if bad else "#1b5e20"}}}</style></head>
<body><h1>tlc-luigi: rows per month, reconciled across stages</h1>
<p class="verdict">{html.escape(verdict)}</p>
<h2>Rows per month (Parquet)</h2><p>{legend}</p>{"".join(svg)}
<h2>Coverage</h2>{"".join(grid)}
<h2>Counts</h2><pre>{html.escape(table(rows, skip))}</pre>
{quality_view.section(colors, rows)}
<p>Generated {dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}</p></body></html>
"""
