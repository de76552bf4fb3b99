"""The luigi process itself dies or runs twice: SIGKILL in every stage, two workers, two CLI runs.

These run the real ``luigi`` CLI (``--module tests.faults.hooks``, which is ``--module tasks``
plus the holds described there) against the fault suite's own services. A run is killed only
once its stage is observably under way (its temporary file exists, or the hook says it is
inside the stage), with SIGKILL to its whole session, so no cleanup code runs. Afterwards
nothing may count as done that is not, and a plain rerun must land exactly the published
rows everywhere and leave no temporary behind.
"""

from __future__ import annotations

import os
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tasks import (
    BigQueryTable,
    DownloadCSV,
    GCSObject,
    ParquetFile,
    PostgresTable,
)
from tests.faults.conftest import Sinks
from tests.faults.helpers import (
    assert_lake_exact,
    cli_env,
    error_lines,
    finish,
    kill_hard,
    luigi_args,
    poll,
    reference,
    run_cli,
    start_cli,
    temporaries,
)
from tests.luigirun import run
from tests.sourceserver import SourceServer
from tlc import layout, ledger, phases
from tlc.atomic import temporary_name
from tlc.gcs.lake import Lake
from tlc.month import Month

pytestmark = pytest.mark.faults

JAN, FEB = ("yellow", 2021, 1), ("yellow", 2021, 2)
PATH = "/yellow/yellow_tripdata_2021-01.csv.gz"
STAGE_TASKS = {
    "download": DownloadCSV,
    "parquet": ParquetFile,
    "gcs": GCSObject,
    "bigquery": BigQueryTable,
    "postgres": PostgresTable,
    "gcs-committed": GCSObject,
    "bigquery-committed": BigQueryTable,
    "postgres-committed": PostgresTable,
}


def kill_in_stage(stage: str, data: Path, source: SourceServer, cfg: dict, tmp_path: Path) -> list[str]:
    """Start ``IngestMonth`` for January, SIGKILL it once ``stage`` is under way; return its command."""
    held = tmp_path / "held"
    if stage == "download":  # the source sends 100 bytes, then nothing: the download hangs mid-body
        source.stall_seconds = 60
        source.plans[PATH] = ["stall"]
    cmd = luigi_args("IngestMonth", "--color", "yellow", "--year", "2021", "--month", "1", lock_dir=tmp_path / "locks")
    log = tmp_path / "killed.log"
    proc = start_cli(cmd, cli_env(cfg, tmp_path, TLC_FAULT_HOLD=stage, TLC_FAULT_HELD=str(held)), log)
    try:

        def under_way() -> bool:
            assert proc.poll() is None, f"the run ended before it was killed:\n{log.read_text()[-3000:]}"
            return bool(temporaries(data)) if stage == "download" else held.exists()

        poll(under_way, f"the {stage} stage to be under way", timeout=90)
    finally:
        kill_hard(proc)
    source.plans.clear()
    return cmd


@pytest.mark.parametrize("stage", list(STAGE_TASKS))
def test_sigkill_mid_stage_then_a_plain_rerun_is_exact(
    pipeline_env: Path,
    source: SourceServer,
    sinks: Sinks,
    publish: Callable[..., Path],
    cfg: dict,
    tmp_path: Path,
    stage: str,
) -> None:
    src = publish(*JAN, seed=1)
    cmd = kill_in_stage(stage, pipeline_env, source, cfg, tmp_path)

    task = STAGE_TASKS[stage](color="yellow", year=2021, month=1)
    if stage in ("download", "parquet"):  # the killed writer's temporary is there, and means nothing
        [stale] = temporaries(pipeline_env)
        final = (layout.raw_path if stage == "download" else layout.lake_path)(pipeline_env, Month(*JAN))
        assert stale.name.startswith(f".{final.name}.tmp-") and not final.exists()
    if stage == "bigquery":
        assert [t for t in sinks.bq_tables() if "_staging_" in t], "the kill should land after the staging load"
    if stage == "postgres":  # the server rolls the COPY back once it notices the client is gone
        poll(lambda: not sinks.pg("SELECT 1 FROM pg_stat_activity WHERE application_name = 'tlc-luigi'"), "rollback")
        assert sinks.pg_staging() == []
    assert task.complete() == stage.endswith("-committed")  # killed after its commit: done; before: not

    rerun = run_cli(cmd, cli_env(cfg, tmp_path))
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    sinks.assert_exact(pipeline_env, *JAN, src)  # every sink, and no temporary left anywhere


def test_manifest_names_every_stage_after_a_kill_between_commit_and_ledger(
    pipeline_env: Path,
    source: SourceServer,
    sinks: Sinks,
    publish: Callable[..., Path],
    cfg: dict,
    tmp_path: Path,
) -> None:
    src = publish(*JAN, seed=1)
    cmd = kill_in_stage("postgres-committed", pipeline_env, source, cfg, tmp_path)
    assert run_cli(cmd, cli_env(cfg, tmp_path)).returncode == 0
    sinks.assert_exact(pipeline_env, *JAN, src)
    stages = ledger.read(Lake.from_config(), Month(*JAN))["stages"]
    assert set(stages) == {"source", "parquet", "gcs", "bigquery", "postgres"}, sorted(stages)


def test_stale_temporaries_are_removed_by_the_next_writer_and_never_count_as_done(
    pipeline_env: Path, source: SourceServer, publish: Callable[..., Path]
) -> None:
    src = publish(*JAN, seed=1)
    dead = subprocess.Popen(["true"])
    dead.wait()  # a writer that no longer runs
    raw, lake = layout.raw_path(pipeline_env, Month(*JAN)), layout.lake_path(pipeline_env, Month(*JAN))
    lake.parent.mkdir(parents=True)
    raw.parent.mkdir(parents=True)
    # What a killed run leaves: whole, valid content, under temporary names of a dead writer.
    stale_raw = temporary_name(raw, dead.pid, "0badf00d")
    stale_raw.write_bytes(src.read_bytes())
    stale_lake = temporary_name(lake, dead.pid, "0badf00d")
    elsewhere = temporary_name(lake, dead.pid, "0badf00d", host="0therh0s")  # another host's: not ours to judge
    reference(src, *JAN).to_pandas().to_parquet(stale_lake)
    elsewhere.write_bytes(b"another host's, sharing this volume")
    running = temporary_name(lake, os.getpid(), "5ca1ab1e")  # a writer still at work: this process
    running.write_bytes(b"in progress")
    download, parquet = DownloadCSV(color="yellow", year=2021, month=1), ParquetFile(color="yellow", year=2021, month=1)
    assert not download.complete() and not parquet.complete()

    result = run([parquet])
    assert result.ok and result.ran == {download.task_id, parquet.task_id}
    assert not stale_raw.exists() and not stale_lake.exists()
    assert running.read_bytes() == b"in progress"  # a live writer's file is never touched
    assert elsewhere.exists()  # nor one of another host
    assert temporaries(pipeline_env) == sorted([running, elsewhere])
    running.unlink()
    elsewhere.unlink()
    assert_lake_exact(pipeline_env, *JAN, src)


MONTHS = [("yellow", 2021, 1), ("yellow", 2021, 2), ("green", 2021, 1)]


def test_two_workers_in_one_run_load_every_month_exactly_once(
    pipeline_env: Path,
    source: SourceServer,
    sinks: Sinks,
    publish: Callable[..., Path],
    cfg: dict,
    tmp_path: Path,
) -> None:
    published = {m: publish(*m, seed=i) for i, m in enumerate(MONTHS)}
    cmd = luigi_args(
        "IngestRange", "--colors", "yellow,green", "--start", "2021-01", "--stop", "2021-02", "--workers", "2",
        lock_dir=tmp_path / "locks",
    )  # fmt: skip
    # green 2021-02 is not published: that month fails alone, the others land
    result = run_cli(cmd, cli_env(cfg, tmp_path))
    assert result.returncode == 30, result.stderr[-3000:]
    [line] = error_lines(result.stderr)
    assert "DownloadCSV(color=green, year=2021, month=2)" in line and "HTTP 404" in line
    for month, src in published.items():
        sinks.assert_exact(pipeline_env, *month, src)
    assert sinks.bq_counts("yellow") == sinks.pg_counts("yellow") == {"2021-01": 2000, "2021-02": 2000}
    assert sinks.bq_counts("green") == sinks.pg_counts("green") == {"2021-01": 2000}


def test_two_concurrent_cli_runs_on_the_same_months_leave_each_sink_exact(
    pipeline_env: Path,
    source: SourceServer,
    sinks: Sinks,
    publish: Callable[..., Path],
    cfg: dict,
    tmp_path: Path,
) -> None:
    """Two schedulers that do not know each other (cron and a manual backfill) run the same months,
    every stage of them side by side (the hooks' gate makes each task wait for its twin)."""
    published = {m: publish(*m, seed=i) for i, m in enumerate([JAN, FEB])}
    env = cli_env(cfg, tmp_path, TLC_FAULT_GATE=str(tmp_path / "gate"))
    commands = [
        ("IngestRange", "--colors", "yellow", "--start", "2021-01", "--stop", "2021-02"),
        ("IngestRange", "--colors", "yellow", "--year", "2021", "--months", "1,2"),
    ]
    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    procs = [
        start_cli(luigi_args(*c, "--workers", "2", lock_dir=tmp_path / "locks"), env, log)
        for c, log in zip(commands, logs, strict=True)
    ]
    try:
        codes = [finish(p, log) for p, log in zip(procs, logs, strict=True)]
    finally:
        for p in procs:
            if p.poll() is None:
                kill_hard(p)
    outputs = [log.read_text() for log in logs]
    for code, out in zip(codes, outputs, strict=True):
        assert "Traceback" not in out, out[-3000:]
        assert code == 0 and error_lines(out) == [], out[-3000:]  # neither run may fail for the other
    for month, src in published.items():
        sinks.assert_exact(pipeline_env, *month, src)
    assert sinks.bq_counts("yellow") == sinks.pg_counts("yellow") == {"2021-01": 2000, "2021-02": 2000}
    again = run_cli(luigi_args(*commands[0], lock_dir=tmp_path / "locks"), cli_env(cfg, tmp_path))
    assert again.returncode == 0 and "Did not run any tasks" in again.stderr, again.stderr[-3000:]


def test_two_runs_uploading_the_same_month_at_once_both_succeed(
    pipeline_env: Path, source: SourceServer, sinks: Sinks, publish: Callable[..., Path], on_phase: Any
) -> None:
    """Forces the interleaving the concurrent CLI test meets by chance: both looked, neither found it."""

    src = publish(*JAN, seed=1)
    assert run([ParquetFile(color="yellow", year=2021, month=1)]).ok
    both_looked = threading.Barrier(2, timeout=30)
    on_phase("gcs.uploading", lambda name: both_looked.wait())
    errors = run_side_by_side(lambda: quiet(GCSObject(color="yellow", year=2021, month=1)).run())
    sinks.assert_exact(pipeline_env, *JAN, src, sinks=("gcs",))  # the data is right either way
    assert errors == [], errors


def test_two_runs_loading_the_same_month_at_once_both_succeed(
    pipeline_env: Path, source: SourceServer, sinks: Sinks, publish: Callable[..., Path], on_phase: Any
) -> None:
    """First load: load, count, [wait for the second to count], swap, drop staging, [tell the second].
    Second load: load, count, [wait for the first to drop], swap: the interleaving two schedulers can take."""
    src = publish(*JAN, seed=1)
    assert run([GCSObject(color="yellow", year=2021, month=1)]).ok
    counted, dropped = threading.Event(), threading.Event()
    first: list[str] = []

    def interleaved_swap(staging: str) -> None:  # each load reaches its swap once it has counted
        me = threading.current_thread().name
        if not first:
            first.append(me)
            assert counted.wait(30)
        else:
            counted.set()
            assert dropped.wait(30)

    def first_done(month: Any) -> None:  # committed, and its staging table dropped
        if first and threading.current_thread().name == first[0]:
            dropped.set()

    on_phase("bigquery.swapping", interleaved_swap)
    on_phase("bigquery.committed", first_done)
    errors = run_side_by_side(lambda: quiet(BigQueryTable(color="yellow", year=2021, month=1)).run())
    phases.clear()
    assert sinks.bq_counts("yellow") == {"2021-01": 2000}  # never doubled
    assert errors == [], errors
    sinks.assert_exact(pipeline_env, *JAN, src, sinks=("gcs", "bq"))


def quiet(task: Any) -> Any:
    """A task whose run() can be called outside a luigi worker (no scheduler to report progress to)."""
    task.set_status_message = lambda message: None
    task.set_progress_percentage = lambda percentage: None
    return task


def run_side_by_side(action: Callable[[], None]) -> list[str]:
    """Run ``action`` in two threads at once; the one-line errors they raised."""
    errors: list[str] = []

    def guarded() -> None:
        try:
            action()
        except Exception as exc:  # noqa: BLE001 - collected and asserted on by the caller
            errors.append(f"{type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=guarded, name=f"run-{i}") for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    return errors
