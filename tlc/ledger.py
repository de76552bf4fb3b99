"""The ledger: one manifest per month recording what every stage produced.

``{lake}/…/{color}_tripdata_{YYYY}-{MM}.manifest.json`` is plain JSON beside the Parquet (and
copied next to the object in the bucket), so anyone can audit a month without the pipeline:
rows, bytes and checksums at each stage, the source's ETag and sha256, rows dropped per rule,
and when each stage ran. Stages of one month may finish concurrently (BigQuery and Postgres
under ``--workers 2``), so each update is a locked read-modify-write followed by an atomic
rename.
"""

from __future__ import annotations

import datetime as dt
import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tlc import layout
from tlc.atomic import read_json, write_json
from tlc.month import Month
from tlc.schema import SCHEMA_VERSION

STAGES = ("source", "parquet", "gcs", "bigquery", "postgres")
# Which stage each stage was made from, and the key under which it records that input's sha256.
_MADE_FROM = {
    "parquet": "source_sha256",
    "gcs": "parquet_sha256",
    "bigquery": "parquet_sha256",
    "postgres": "parquet_sha256",
}
_INPUT = {"parquet": "source", "gcs": "parquet", "bigquery": "parquet", "postgres": "parquet"}


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(f".{path.name}.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def read(root: Path, month: Month) -> dict[str, Any]:
    return read_json(layout.manifest_path(root, month)) or {}


def unrecorded(root: Path, month: Month, stages: tuple[str, ...] = STAGES) -> list[str]:
    """Stages of ``stages`` the manifest lacks or marks stale: a kill between a sink's commit
    and its ``record`` leaves one, and IngestMonth records it again from the sink's state."""
    recorded = read(root, month).get("stages", {})
    return [s for s in stages if s not in recorded or recorded[s].get("stale")]


def record(root: Path, month: Month, stage: str, facts: dict[str, Any]) -> dict[str, Any]:
    """Set ``stage``'s entry; a new source or Parquet invalidates what later stages recorded."""
    if stage not in STAGES:
        raise ValueError(f"unknown ledger stage {stage!r}")
    path = layout.manifest_path(root, month)
    with _locked(path):
        manifest = read_json(path) or {}
        manifest.update(color=month.color, month=month.key, schema_version=SCHEMA_VERSION)
        stages = manifest.setdefault("stages", {})
        stages[stage] = {**facts, "recorded_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}
        for later, entry in stages.items():
            if _INPUT.get(later) == stage and entry.get(_MADE_FROM[later]) != facts.get("sha256"):
                entry["stale"] = True  # made from an older input; its task will redo it
        write_json(path, manifest)
    return manifest
