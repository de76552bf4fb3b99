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

from tlc import fingerprint, layout, ledger
from tlc.bigquery.dataset import Dataset
from tlc.bigquery.target import BigQueryMonth
from tlc.config import CleaningConfig
from tlc.errors import InvalidInput
from tlc.gcs.lake import Lake
from tlc.gcs.target import GcsObject
from tlc.lake.target import LakeParquet
from tlc.month import COLORS, Month
from tlc.postgres.target import Database, PostgresMonth
from tlc.quality import QualityReport
from tlc.sink import SinkState, SinkTarget

STAGES = ("source", "parquet", "gcs", "bigquery", "postgres")


@dataclass
class MonthRow:
    month: Month
    counts: dict[str, int | None] = field(default_factory=dict)
    quality: QualityReport | None = None
    notes: list[str] = field(default_factory=list)
    stale: str = ""  # why every stage agrees yet the month is out of date (the next run rebuilds it)

    @property
    def key(self) -> str:
        return self.month.key

    @property
    def status(self) -> str:
        """mismatch: a stage asked holds other rows, or none (a month half-landed), or a note says
        why (other values, a manifest that disagrees, an object not the Parquet); stale: every stage
        agrees, under rules or a schema no longer configured (not an error: a rule change makes
        every month stale until the runs that rebuild them); else ok."""
        expected = self.counts.get("parquet")
        asked = [self.counts[s] for s in STAGES[1:] if s in self.counts]
        if self.notes or expected is None or any(v != expected for v in asked):
            return "mismatch"
        return "stale" if self.stale else "ok"

    @property
    def remarks(self) -> list[str]:
        """What the printed table and the page show beside the status: the notes, then why stale."""
        return self.notes + ([self.stale] if self.stale else [])


def stale_note(rows: list[MonthRow]) -> str:
    """What the printed summary and the page add for stale months: no failure, a rebuild to come."""
    stale = sum(r.status == "stale" for r in rows)
    return f"; {stale} stale (the next run rebuilds them)" if stale else ""


_MANIFEST = re.compile(r"(?P<color>[a-z]+)_tripdata_(?P<month>\d{4}-\d{2})\.manifest\.json$")


def ledger_months(lake: Lake) -> tuple[list[Month], list[str]]:
    """Every month with a manifest in the lake, from one listing; and the manifests named for no
    valid month, which are reported by name rather than stopping the report."""
    found, strays = set(), []
    for key in lake.listing(layout.meta_prefix()):
        match = _MANIFEST.search(key)
        if not match:
            continue
        try:
            if match["color"] not in COLORS:
                raise InvalidInput(f"color {match['color']!r} is not one of {', '.join(COLORS)}")
            found.add(Month.parse(match["color"], match["month"]))
        except InvalidInput as exc:
            strays.append(f"{lake.uri(key)}: {exc}")
    return sorted(found), strays


def _local(row: MonthRow, parquet: LakeParquet, report: QualityReport | None) -> None:
    row.quality = report
    if report is not None:
        row.counts["source"] = report.source_rows
    row.counts["parquet"] = parquet.rows(report) if report is not None else None
    if report is not None and row.counts["parquet"] is None:
        row.notes.append("the Parquet its report describes is not in the lake")
    if report is not None and not parquet.current(report):
        row.stale = "made under other cleaning rules or schema than configured: the next run rebuilds it"


# Each sink's Target and the handle it needs; every Target takes (handle, month, parquet).
_SINK_TARGETS = {
    "gcs": (GcsObject, Lake.from_config),
    "bigquery": (BigQueryMonth, Dataset.from_config),
    "postgres": (PostgresMonth, Database.from_config),
}


def _held_yet_not_this_parquet(state: SinkState, row: MonthRow) -> bool:
    """The right number of rows, yet not the Parquet's (marker or checksum other): a count alone
    must never read as ok, nor may a stale month hide it."""
    same_count = state.rows is not None and state.rows == row.counts["parquet"]
    return same_count and row.quality is not None and not state.holds


def _check_manifests(lake: Lake, rows: list[MonthRow]) -> None:
    """Each manifest against the lake: a missing, stale, edited or unreadable entry is a mismatch."""
    for row in rows:
        doc, generation = lake.read_json(layout.manifest_key(row.month))
        if doc is None:
            row.notes.append("manifest unreadable" if generation else "manifest missing")
            continue
        stages = tuple(s for s in STAGES if s in row.counts or s in ("source", "parquet"))
        for stage, why in ledger.disagreements(doc, stages, row.quality).items():
            row.notes.append(f"manifest {stage}: {why}")


def _check_values(target: type[SinkTarget], name: str, rows: list[MonthRow], targets: list[SinkTarget]) -> None:
    """Each sink's values against the quality report's fingerprint, where the rows are all there."""
    found = target.fingerprints(targets)  # type: ignore[attr-defined]
    for row, values in zip(rows, found, strict=True):
        if row.quality is None or not row.quality.fingerprint or values is None:
            continue
        wrong = fingerprint.differences(row.quality.fingerprint, values)
        if wrong:
            more = f" (+{len(wrong) - 3} more)" if len(wrong) > 3 else ""
            row.notes.append(f"{name} values differ: {'; '.join(wrong[:3])}{more}")


def reconcile(root: Path, skip: set[str]) -> tuple[list[MonthRow], list[str]]:
    """Every month, counted and checked in every stage not skipped; and the manifests of no month."""
    lake = Lake.from_config()
    months, strays = ledger_months(lake)
    rows = [MonthRow(m) for m in months]
    rules = CleaningConfig().rules().active()
    parquets = [LakeParquet(lake, root, row.month, rules) for row in rows]
    for row, parquet, report in zip(rows, parquets, LakeParquet.reports(parquets), strict=True):
        _local(row, parquet, report)
    for name, (target, handle) in _SINK_TARGETS.items():
        if name in skip or not rows:
            continue
        where = handle()
        targets = [target(where, r.month, p) for r, p in zip(rows, parquets, strict=True)]
        for row, state in zip(rows, target.observe_all(targets), strict=True):
            row.counts[name] = state.rows
            if state.note:
                row.notes.append(state.note)
            elif _held_yet_not_this_parquet(state, row):
                row.notes.append(f"{name} holds {state.rows:,} rows that are not this Parquet's")
        if hasattr(target, "fingerprints"):
            _check_values(target, name, rows, targets)
    _check_manifests(lake, rows)
    return rows, strays
