"""The pipeline for ``luigi`` subprocesses, with optional holds: ``--module tests.faults.hooks``.

Importing it registers every task of ``tasks`` exactly as ``--module tasks`` does. Two
environment variables add test-only behaviour, so a CLI run can be caught *inside* a stage
and killed there with SIGKILL:

* ``TLC_FAULT_HOLD=<stage>`` (parquet, gcs, bigquery, postgres) and ``TLC_FAULT_HELD=<file>``:
  when the stage is under way (row groups written to its temporary, the upload about to
  start, the staging table loaded, half the rows COPYed) the process writes ``<file>`` and
  waits there, by polling, for ``<file>.release`` (at most two minutes). Nothing else changes.
  ``<sink>-committed`` (gcs, bigquery, postgres) holds after the sink committed the month,
  just before the stage's ledger entry is written.
* ``TLC_FAULT_GATE=<dir>``: every task waits (at most 3 s) before ``run()`` until another
  process has reached the same task, so two concurrent CLI runs really do each stage at the
  same time instead of one run finding the other's outputs already done.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import luigi

import tasks
from tasks import convert, ledger, pgload, warehouse

HOLD = os.environ.get("TLC_FAULT_HOLD", "")
HELD = os.environ.get("TLC_FAULT_HELD", "")
GATE = os.environ.get("TLC_FAULT_GATE", "")


def _wait_for(path: Path, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            return True
        time.sleep(0.05)
    return False


def hold(stage: str) -> None:
    """Announce that ``stage`` is under way, then wait to be killed (or released)."""
    if stage != HOLD:
        return
    marker = Path(HELD)
    tmp = marker.with_name(marker.name + ".part")
    tmp.write_text(f"{stage} {os.getpid()}\n")
    tmp.replace(marker)
    if not _wait_for(marker.with_name(marker.name + ".release"), 120):
        raise RuntimeError(f"held in {stage} for 120 s and never killed")


def _wrap(owner: Any, name: str, before: Callable[..., None]) -> None:
    original = getattr(owner, name)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        before(*args, **kwargs)
        return original(*args, **kwargs)

    setattr(owner, name, wrapper)


if HOLD == "parquet":
    # Small row groups, so the temporary Parquet really holds data when the run is held.
    convert.ROW_GROUP_ROWS = 250
    convert.BLOCK_SIZE = 1 << 15
    _added = [0]

    def _after_rows(*_: Any) -> None:
        _added[0] += 1
        if _added[0] == 6:
            hold("parquet")

    _wrap(convert._RowGroupWriter, "add", _after_rows)

if HOLD == "gcs":
    from google.cloud import storage

    _wrap(storage.Blob, "upload_from_filename", lambda *a, **k: hold("gcs"))

if HOLD == "bigquery":
    # Called with the transaction only after the load job filled the staging table.
    _wrap(warehouse.Warehouse, "_query", lambda _self, sql: hold("bigquery") if "BEGIN TRANSACTION" in sql else None)

if HOLD == "postgres":
    pgload.BATCH_ROWS = 200
    _load = pgload.load_month

    def _load_and_hold(*args: Any, progress: Any = None, **kwargs: Any) -> int:
        def at_half(fraction: float, message: str) -> None:
            if 0.5 <= fraction < 1:  # called on the loading thread: the COPY stalls half-way
                hold("postgres")

        return _load(*args, progress=at_half, **kwargs)

    pgload.load_month = _load_and_hold

if HOLD.endswith("-committed"):
    # The sink has committed (object verified, transaction done); the ledger is not written yet.
    _sink = HOLD.removesuffix("-committed")  # the ledger's stage names: gcs, bigquery, postgres

    def _before_record(_root: Any, _color: str, _year: int, _month: int, stage: str, *_: Any) -> None:
        if stage == _sink:
            hold(HOLD)

    _wrap(ledger, "record", _before_record)

if GATE:

    def _rendezvous(task: luigi.Task) -> None:
        gate = Path(GATE)
        gate.mkdir(parents=True, exist_ok=True)
        (gate / f"{task.task_id}.{os.getpid()}").touch()
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline and len(list(gate.glob(f"{task.task_id}.*"))) < 2:
            time.sleep(0.02)

    for _cls in (tasks.DownloadCSV, tasks.ParquetFile, tasks.GCSObject, tasks.BigQueryTable, tasks.PostgresTable):
        _wrap(_cls, "run", _rendezvous)

__all__ = tasks.__all__
