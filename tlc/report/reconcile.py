"""Reconcile every ingested month across all stages, by asking the real sinks through their Targets.

Each month that has a ledger is counted at the source (the quality report), in the Parquet
footer, in the GCS object (whose md5 must match), in BigQuery and in Postgres. The sinks'
Targets are asked in bulk (one listing or query per color), and they are the same classes
that decide when a task is done, so the report and the pipeline can never disagree about
what "done" means. It trusts no task status: every number is read back from where data lives.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from tlc.atomic import read_json
from tlc.bigquery.dataset import Dataset
from tlc.bigquery.target import BigQueryMonth
from tlc.config import CleaningConfig
from tlc.gcs.target import GcsObject, Lake
from tlc.lake.target import LakeParquet
from tlc.month import COLORS, Month
from tlc.postgres.target import Database, PostgresMonth

STAGES = ("source", "parquet", "gcs", "bigquery", "postgres")


@dataclass
class MonthRow:
    month: Month
    counts: dict[str, int | None] = field(default_factory=dict)
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


def ledger_months(root: Path) -> list[Month]:
    found = set()
    for manifest in sorted((root / "lake").glob("v*/*/*/*.manifest.json")):
        doc = read_json(manifest)
        if doc and doc.get("color") in COLORS:
            found.add(Month.parse(doc["color"], doc["month"]))
    return sorted(found)


def _local(row: MonthRow, parquet: LakeParquet) -> None:
    report = parquet.report()
    if report:
        row.counts["source"] = report.source_rows
    row.counts["parquet"] = parquet.rows()
    if report and parquet.path.exists() and report.parquet.size != parquet.path.stat().st_size:
        row.notes.append("Parquet differs from its report")


# Each sink's Target and the handle it needs; every Target takes (handle, month, parquet).
_SINK_TARGETS = {
    "gcs": (GcsObject, Lake.from_config),
    "bigquery": (BigQueryMonth, Dataset.from_config),
    "postgres": (PostgresMonth, Database.from_config),
}


def reconcile(root: Path, skip: set[str]) -> list[MonthRow]:
    rows = [MonthRow(m) for m in ledger_months(root)]
    rules = CleaningConfig().rules().active()
    parquets = [LakeParquet(root, row.month, rules) for row in rows]
    for row, parquet in zip(rows, parquets, strict=True):
        _local(row, parquet)
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
