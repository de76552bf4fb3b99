"""The pipeline for ``luigi`` subprocesses, with optional holds: ``--module tests.faults.hooks``.

Importing it registers every task of ``tasks`` exactly as ``--module tasks`` does. Two
environment variables add test-only behaviour, so a CLI run can be caught *inside* a stage
and killed there with SIGKILL:

* ``TLC_FAULT_HOLD=<stage>`` (parquet, gcs, bigquery, postgres) and ``TLC_FAULT_HELD=<file>``:
  when the stage is under way (row groups written to its temporary, the upload about to
  start, the staging table loaded, half the rows COPYed) the process writes ``<file>`` and
  waits there, by polling, for ``<file>.release`` (at most two minutes). Nothing else changes.
  ``<sink>-committed`` (gcs, bigquery, postgres) holds after the sink committed the month,
  just before the stage's ledger entry is written. Every hold is a named phase of
  ``tlc.phases``: the stages announce them, this module only listens.
* ``TLC_FAULT_GATE=<dir>``: every stage waits (at most 3 s) as it starts (luigi's START event) until another
  process has reached the same task, so two concurrent CLI runs really do each stage at the
  same time instead of one run finding the other's outputs already done.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import luigi

import tasks
from tlc import phases
from tlc.lake import writer
from tlc.postgres import binary_copy
from tlc.sources import csv_releases

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
    marker = Path(HELD)
    tmp = marker.with_name(marker.name + ".part")
    tmp.write_text(f"{stage} {os.getpid()}\n")
    tmp.replace(marker)
    if not _wait_for(marker.with_name(marker.name + ".release"), 120):
        raise RuntimeError(f"held in {stage} for 120 s and never killed")


if HOLD == "parquet":
    # Small row groups, so the temporary Parquet really holds data when the run is held.
    writer.ROW_GROUP_ROWS = 250
    csv_releases.BLOCK_SIZE = 1 << 15
    _groups = [0]

    def _after_row_groups(**_: Any) -> None:
        _groups[0] += 1
        if _groups[0] == 6:
            hold("parquet")

    phases.on("parquet.row_group_written", _after_row_groups)

if HOLD == "gcs":
    phases.on("gcs.uploading", lambda **_: hold("gcs"))

if HOLD == "bigquery":
    phases.on("bigquery.swapping", lambda **_: hold("bigquery"))  # staged and checked; the swap has not begun

if HOLD == "postgres":
    binary_copy.BATCH_ROWS = 200
    _held = [False]

    def _at_half(rows: int, expected: int) -> None:
        if 0.5 <= rows / expected < 1 and not _held[0]:  # on the loading thread: the COPY stalls half-way
            _held[0] = True
            hold("postgres")

    phases.on("postgres.copying", _at_half)

if HOLD.endswith("-committed"):
    # The sink has committed (object verified, transaction done); the ledger is not written yet.
    phases.on(f"{HOLD.removesuffix('-committed')}.committed", lambda **_: hold(HOLD))

if GATE:

    def _rendezvous(task: luigi.Task) -> None:
        gate = Path(GATE)
        gate.mkdir(parents=True, exist_ok=True)
        (gate / f"{task.task_id}.{os.getpid()}").touch()
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline and len(list(gate.glob(f"{task.task_id}.*"))) < 2:
            time.sleep(0.02)

    for _cls in (tasks.DownloadCSV, tasks.ParquetFile, tasks.GCSObject, tasks.BigQueryTable, tasks.PostgresTable):
        _cls.event_handler(luigi.Event.START)(_rendezvous)  # luigi's own hook, just before run()

__all__ = tasks.__all__
