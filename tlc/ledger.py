"""The ledger: one manifest per month, in the lake bucket, recording what every stage produced.

``{prefix}/_meta/v{S}/{color}/{stem}.manifest.json`` is plain JSON, so anyone can audit a month
without the pipeline: rows, bytes and checksums at each stage, the source's ETag and sha256,
rows dropped per rule, when and where each stage ran, and a history of every stage record
(so "each month was converted once" can be counted). Stages of one month may finish at once
on several hosts, so each update is a read-modify-write guarded by the object's generation:
a writer that lost the race reads again and retries, and no entry is ever lost.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
from typing import TYPE_CHECKING, Any

from tlc import layout
from tlc.errors import SinkError
from tlc.month import Month
from tlc.schema import SCHEMA_VERSION

if TYPE_CHECKING:
    from tlc.gcs.lake import Lake
    from tlc.quality import QualityReport

STAGES = ("source", "parquet", "gcs", "bigquery", "postgres")
# Which stage each stage was made from, and the key under which it records that input's sha256.
_MADE_FROM = {
    "parquet": "source_sha256",
    "gcs": "parquet_sha256",
    "bigquery": "parquet_sha256",
    "postgres": "parquet_sha256",
}
_INPUT = {"parquet": "source", "gcs": "parquet", "bigquery": "parquet", "postgres": "parquet"}
HISTORY = 200  # stage records kept per month, newest last
ATTEMPTS = 50  # a manifest updated by this many writers at once is a sign of a runaway, not of load


def worker() -> str:
    """Who wrote an entry: the host (``TLC_WORKER_NAME`` names it when hostnames say nothing) and pid."""
    return f"{os.environ.get('TLC_WORKER_NAME') or socket.gethostname()}:{os.getpid()}"


def read(lake: Lake, month: Month) -> dict[str, Any]:
    doc, _ = lake.read_json(layout.manifest_key(month))
    return doc or {}


def expected(report: QualityReport) -> dict[str, dict[str, Any]]:
    """What each stage's entry must say of the month the quality report describes."""
    parquet = {"parquet_sha256": report.parquet.sha256, "rows": report.rows_written}
    return {
        "source": {"sha256": report.source.sha256},
        "parquet": {"sha256": report.parquet.sha256, "rows_written": report.rows_written},
        "gcs": {"md5": report.parquet.md5, "parquet_sha256": report.parquet.sha256},
        "bigquery": parquet,
        "postgres": parquet,
    }


def disagreements(manifest: dict[str, Any], stages: tuple[str, ...], report: QualityReport | None) -> dict[str, str]:
    """Stage -> why its entry cannot be trusted: missing, stale, or saying other than the lake does.

    The manifest is a record for people to read, never the truth: an edited or half-written
    one is noticed here (by the report and by IngestMonth, which writes the entry again).
    """
    recorded = manifest.get("stages") if isinstance(manifest.get("stages"), dict) else {}
    wanted = expected(report) if report is not None else {}
    found = {}
    for stage in stages:
        entry = recorded.get(stage)
        if not isinstance(entry, dict):
            found[stage] = "no entry"
        elif entry.get("stale"):
            found[stage] = "stale (made from an older input)"
        else:
            wrong = [k for k, v in wanted.get(stage, {}).items() if v is not None and entry.get(k) != v]
            if wrong:
                found[stage] = f"says other {', '.join(wrong)} than the lake"
    return found


def unrecorded(lake: Lake, month: Month, stages: tuple[str, ...], report: QualityReport | None) -> list[str]:
    """Stages whose entry IngestMonth must write again from the stage's state: a kill between a
    sink's commit and its ``record`` leaves one missing, an edit by hand leaves one wrong."""
    return list(disagreements(read(lake, month), stages, report))


def _updated(manifest: dict[str, Any], month: Month, stage: str, facts: dict[str, Any]) -> dict[str, Any]:
    now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    manifest.update(color=month.color, month=month.key, schema_version=SCHEMA_VERSION)
    # A hand-edited or foreign manifest may hold anything: what is not the shape we write is
    # dropped (the tasks write each stage again) rather than failing every later record.
    stages = manifest["stages"] = (
        {k: v for k, v in (manifest.get("stages") or {}).items() if isinstance(v, dict)}
        if isinstance(manifest.get("stages"), dict)
        else {}
    )
    stages[stage] = {**facts, "recorded_at": now, "worker": worker()}
    for later, entry in stages.items():
        if _INPUT.get(later) == stage and entry.get(_MADE_FROM[later]) != facts.get("sha256"):
            entry["stale"] = True  # made from an older input; its task will redo it
    kept = manifest.get("history")
    history = manifest["history"] = [h for h in kept if isinstance(h, dict)] if isinstance(kept, list) else []
    made = facts.get("sha256") or facts.get("parquet_sha256")
    history.append({"stage": stage, "at": now, "worker": worker(), "sha256": made})
    del history[:-HISTORY]
    return manifest


def record(lake: Lake, month: Month, stage: str, facts: dict[str, Any]) -> dict[str, Any]:
    """Set ``stage``'s entry; a new source or Parquet invalidates what later stages recorded."""
    if stage not in STAGES:
        raise ValueError(f"unknown ledger stage {stage!r}")
    key = layout.manifest_key(month)
    for _ in range(ATTEMPTS):
        manifest, generation = lake.read_json(key)
        manifest = _updated(manifest or {}, month, stage, facts)
        if lake.write_json(key, manifest, if_generation_match=generation):
            return manifest
    raise SinkError(f"the manifest of {month.label} kept changing under {ATTEMPTS} attempts to record {stage}")
