"""Reconcile every ingested month across all stages, by asking the real sinks.

``python -m tasks.report`` (``make report``) lists each month that has a ledger, counts its
rows at the source (the quality report), in the Parquet footer, in the GCS object (whose md5
must match), in BigQuery and in Postgres, prints one table, writes a self-contained HTML
page (rows per month per color, and a months x colors coverage grid), and exits 1 when any
stage disagrees. It trusts no task status: every number is read back from where data lives.
"""

from __future__ import annotations

import argparse
import datetime as dt
import html
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tasks import gcp, lake, layout, pgload
from tasks.atomic import read_json
from tasks.bigquery import BigQueryTable
from tasks.convert import parquet_rows
from tasks.errors import PipelineError
from tasks.gcs import GCSObject
from tasks.identifiers import identifier
from tasks.months import COLORS
from tasks.settings import gcs, paths, postgres

STAGES = ("source", "parquet", "gcs", "bigquery", "postgres")


@dataclass
class MonthRow:
    color: str
    year: int
    month: int
    counts: dict[str, int | None] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def key(self) -> str:
        return f"{self.year}-{self.month:02d}"

    @property
    def status(self) -> str:
        expected = self.counts.get("parquet")
        values = [self.counts.get(s) for s in STAGES[1:]]
        if self.notes or any(v is not None and v != expected for v in values):
            return "mismatch"
        return "missing" if any(v is None for v in values) else "ok"


def ledger_months(root: Path) -> list[tuple[str, int, int]]:
    found = []
    for manifest in sorted((root / "lake").glob("v*/*/*/*.manifest.json")):
        doc = read_json(manifest)
        if doc and doc.get("color") in COLORS:
            year, month = map(int, doc["month"].split("-"))
            found.append((doc["color"], year, month))
    return sorted(set(found))


def local_counts(root: Path, row: MonthRow) -> None:
    parquet = layout.lake_path(root, row.color, row.year, row.month)
    quality = read_json(layout.quality_path(parquet)) or {}
    if quality:
        row.counts["source"] = quality["rows_read"] - sum(quality.get("rows_dropped", {}).values())
    row.counts["parquet"] = parquet_rows(parquet) if parquet.exists() else None
    if quality and parquet.exists() and quality["parquet"]["size"] != parquet.stat().st_size:
        row.notes.append("Parquet differs from its report")


def gcs_counts(rows: list[MonthRow]) -> None:
    cfg, bucket = gcs(), gcp.lake_bucket()
    root = paths().root()
    for row in rows:
        name = GCSObject(color=row.color, year=row.year, month=row.month).object_name()
        with gcp.sink_errors(f"GCS read of gs://{bucket.name}/{name}"):
            blob = bucket.get_blob(name, retry=gcp.storage_retry(cfg.retry_seconds))
        if blob is None:
            row.counts["gcs"] = None
            continue
        quality = read_json(layout.quality_path(layout.lake_path(root, row.color, row.year, row.month)))
        if quality and blob.md5_hash != lake.md5_b64(quality["parquet"]["md5"]):
            row.notes.append("GCS object differs from the Parquet (md5)")
        row.counts["gcs"] = int((blob.metadata or {}).get("rows", -1))


def bigquery_counts(rows: list[MonthRow]) -> None:
    for color in sorted({r.color for r in rows}):
        first = next(r for r in rows if r.color == color)
        wh = BigQueryTable(color=color, year=first.year, month=first.month).warehouse()
        counts = wh.counts_by_month(color)
        for row in rows:
            if row.color == color:
                row.counts["bigquery"] = counts.get(dt.date(row.year, row.month, 1))


def postgres_counts(rows: list[MonthRow]) -> None:
    cfg = postgres()
    conn = pgload.connect(cfg.dsn_parts())
    try:
        for color in sorted({r.color for r in rows}):
            mine = [r for r in rows if r.color == color]
            states = (
                pgload.month_states(
                    conn, identifier(cfg.schema, "postgres schema"), color, [(r.year, r.month) for r in mine]
                )
                or {}
            )
            for row in mine:
                state = states.get((row.year, row.month))
                row.counts["postgres"] = state.count if state else None
    finally:
        conn.close()


def reconcile(root: Path, skip: set[str]) -> list[MonthRow]:
    rows = [MonthRow(c, y, m) for c, y, m in ledger_months(root)]
    for row in rows:
        local_counts(root, row)
    sinks: dict[str, Callable[[list[MonthRow]], None]] = {
        "gcs": gcs_counts,
        "bigquery": bigquery_counts,
        "postgres": postgres_counts,
    }
    for name, count in sinks.items():
        if name not in skip and rows:
            count(rows)
    return rows


def table(rows: list[MonthRow], skip: set[str]) -> str:
    shown = [s for s in STAGES if s not in skip]
    head = f"{'color':<7}{'month':<9}" + "".join(f"{s:>11}" for s in shown) + "  status"
    lines = [head, "-" * len(head)]
    for r in rows:
        cells = "".join(f"{'-' if r.counts.get(s) is None else f'{r.counts[s]:,}':>11}" for s in shown)
        lines.append(f"{r.color:<7}{r.key:<9}{cells}  {r.status}{'  ' + '; '.join(r.notes) if r.notes else ''}")
    return "\n".join(lines)


_COLOURS = {"yellow": "#e6b800", "green": "#2e8b57", "fhv": "#4a6fa5"}
_STATUS = {"ok": "#c8e6c9", "missing": "#eeeeee", "mismatch": "#ef9a9a"}


def html_page(rows: list[MonthRow], skip: set[str]) -> str:
    """One file, no scripts or network: an inline SVG chart and a coverage grid."""
    months = sorted({r.key for r in rows})
    by = {(r.color, r.key): r for r in rows}
    colors = [c for c in COLORS if any(r.color == c for r in rows)]
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
            title = html.escape("; ".join(r.notes) if r and r.notes else status)
            cells.append(f'<td style="background:{_STATUS[status]}" title="{title}">{status}</td>')
        grid.append(f"<tr><th>{key}</th>{''.join(cells)}</tr>")
    grid.append("</table>")
    bad = sum(r.status == "mismatch" for r in rows)
    verdict = f"{bad} month(s) do not reconcile" if bad else f"all {len(rows)} month(s) reconcile"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>tlc-luigi reconciliation</title>
<style>body{{font-family:sans-serif;margin:24px}} table{{border-collapse:collapse}}
td,th{{border:1px solid #999;padding:4px 10px;text-align:right}} .grid td{{text-align:center}}
h1{{font-size:20px}} .verdict{{font-weight:bold;color:{"#b71c1c" if bad else "#1b5e20"}}}</style></head>
<body><h1>tlc-luigi: rows per month, reconciled across stages</h1>
<p class="verdict">{html.escape(verdict)}</p>
<h2>Rows per month (Parquet)</h2><p>{legend}</p>{"".join(svg)}
<h2>Coverage</h2>{"".join(grid)}
<h2>Counts</h2><pre>{html.escape(table(rows, skip))}</pre>
<p>Generated {dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}</p></body></html>
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tasks.report", description=__doc__)
    parser.add_argument("--html", default="report.html", help="where to write the page (default report.html)")
    parser.add_argument("--skip", default="", help="comma-separated sinks not to query: gcs,bigquery,postgres")
    args = parser.parse_args(argv)
    skip = {s for s in args.skip.split(",") if s}
    try:
        rows = reconcile(paths().root(), skip)
    except PipelineError as exc:
        print(f"report: {exc}", file=sys.stderr)
        return 2
    print(table(rows, skip))
    Path(args.html).write_text(html_page(rows, skip))
    bad = [r for r in rows if r.status == "mismatch"]
    print(f"\n{len(rows)} month(s); {len(bad)} mismatch(es); page: {Path(args.html).resolve()}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
