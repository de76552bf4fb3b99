"""Reconcile every ingested month across all stages, by asking the real sinks through their Targets.

Each month that has a ledger is counted at the source (the quality report), in the Parquet
footer, in the GCS object (whose md5 must match), in BigQuery and in Postgres. The sinks'
Targets are asked in bulk (one listing or query per color), and they are the same classes
that decide when a task is done, so the report and the pipeline can never disagree about
what "done" means. It trusts no task status: every number is read back from where data lives.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow.parquet as pq

from tlc import layout
from tlc.bigquery.dataset import Dataset
from tlc.bigquery.target import BigQueryMonth
from tlc.config import CleaningConfig
from tlc.gcs.lake import Lake
from tlc.gcs.target import GcsObject
from tlc.lake.target import LakeParquet
from tlc.lake.writer import parquet_rows
from tlc.month import COLORS, Month
from tlc.postgres.target import Database, PostgresMonth
from tlc.quality import QualityReport

STAGES = ("source", "parquet", "gcs", "bigquery", "postgres")


@dataclass
class MonthRow:
    month: Month
    counts: dict[str, int | None] = field(default_factory=dict)
    quality: QualityReport | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def key(self) -> str:
        return self.month.key

    @property
    def status(self) -> str:
        expected = self.counts.get("parquet")
        values = [self.counts.get(s) for s in STAGES[1:]]
        if self.notes or any(v is not None and v != expected for v in values):
            return "mismatch"
        return "missing" if any(v is None for v in values) else "ok"


_MANIFEST = re.compile(r"(?P<color>[a-z]+)_tripdata_(?P<month>\d{4}-\d{2})\.manifest\.json$")


def ledger_months(lake: Lake) -> list[Month]:
    """Every month with a manifest in the lake, from one listing."""
    found = set()
    for key in lake.listing(layout.meta_prefix()):
        match = _MANIFEST.search(key)
        if match and match["color"] in COLORS:
            found.add(Month.parse(match["color"], match["month"]))
    return sorted(found)


def _parquet_rows(parquet: LakeParquet, report: QualityReport | None) -> int | None:
    """Rows in the Parquet's own footer: this host's copy, else the object in the lake (read by range)."""
    if report is None:
        return None
    local = parquet.cached(report)
    if local is not None:
        return parquet_rows(local)
    blob = parquet.stored(report)
    if blob is None:
        return None
    with parquet.lake.reader(blob) as fh:
        return pq.ParquetFile(fh).metadata.num_rows


def _local(row: MonthRow, parquet: LakeParquet, report: QualityReport | None) -> None:
    row.quality = report
    if report is not None:
        row.counts["source"] = report.source_rows
    row.counts["parquet"] = _parquet_rows(parquet, report)
    if report is not None and row.counts["parquet"] is None:
        row.notes.append("the Parquet its report describes is not in the lake")


# Each sink's Target and the handle it needs; every Target takes (handle, month, parquet).
_SINK_TARGETS = {
    "gcs": (GcsObject, Lake.from_config),
    "bigquery": (BigQueryMonth, Dataset.from_config),
    "postgres": (PostgresMonth, Database.from_config),
}


def reconcile(root: Path, skip: set[str]) -> list[MonthRow]:
    lake = Lake.from_config()
    rows = [MonthRow(m) for m in ledger_months(lake)]
    rules = CleaningConfig().rules().active()
    parquets = [LakeParquet(lake, root, row.month, rules) for row in rows]
    for row, parquet, report in zip(rows, parquets, LakeParquet.reports(parquets), strict=True):
        _local(row, parquet, report)
    for name, (target, handle) in _SINK_TARGETS.items():
        if name in skip or not rows:
            continue
        where = handle()
        states = target.observe_all([target(where, r.month, p) for r, p in zip(rows, parquets, strict=True)])
        for row, state in zip(rows, states, strict=True):
            row.counts[name] = state.rows
            if state.note:
                row.notes.append(state.note)
    return rows
