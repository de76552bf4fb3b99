"""luigid restarted under a running backfill (issue 14).

A worker of ``IngestRange`` is held inside its first conversion (``TLC_FAULT_HOLD=parquet``)
while the fault stack's luigid is restarted on the same port, either from the state it saved
on SIGTERM or from scratch (SIGKILL, state file gone: a crash, a new machine). luigi's own
worker then stopped with most of the range undone and exited 25, as a harmless overlapping
run does; the project's worker (``tasks.worker.RecoveringWorker``) adds the tasks luigid
forgot again, so the same run lands every month exactly, and says in one line that it did.
With recoveries turned off the run says in one ERROR line that luigid lost its tasks, and a
plain rerun lands them.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path

import pytest

import scripts.stack.luigid as luigid_service
from tests.faults.conftest import Sinks
from tests.faults.helpers import cli_env, error_lines, finish, kill_hard, luigi_args, poll, run_cli, start_cli
from tests.sourceserver import SourceServer

pytestmark = pytest.mark.faults

# Months of their own in each test: luigid ignores a PENDING claim on a task it saw DONE in the
# last 10 s (stable_done_cooldown_secs), and other tests' runs through this luigid share task ids.
RANGES = {"from-scratch": (2020, 1), "from-saved-state": (2020, 4), "unrecovered": (2020, 7)}


def range_args(first: tuple[int, int]) -> tuple[str, ...]:
    start, stop = f"{first[0]}-{first[1]:02d}", f"{first[0]}-{first[1] + 2:02d}"
    return ("IngestRange", "--colors", "yellow", "--start", start, "--stop", stop, "--workers", "1")


def restart_luigid(sinks: Sinks, from_scratch: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """Stop luigid (SIGTERM: it saves its state; SIGKILL + state removed: it starts empty), then
    start it again on the same port, so the running worker reaches it at the same URL."""
    state = sinks.stack.dir.load_state()["luigid"]
    sinks.stop("luigid", signal.SIGKILL if from_scratch else signal.SIGTERM)
    saved = Path(state["state_path"])
    if from_scratch:
        saved.unlink(missing_ok=True)
    else:
        assert saved.exists(), "luigid should have saved its state on SIGTERM"
    monkeypatch.setattr(luigid_service, "free_port", lambda: state["port"])
    sinks.stack.up(("luigid",))


def range_command(sinks: Sinks, first: tuple[int, int], tmp_path: Path) -> list[str]:
    scheduler = sinks.stack.up(("luigid",))["LUIGI_SCHEDULER_URL"]
    return luigi_args(*range_args(first), "--scheduler-url", scheduler, lock_dir=tmp_path / "locks", local=False)


def held_range_run(
    sinks: Sinks, first: tuple[int, int], cfg: dict, tmp_path: Path, restart: Callable[[], None]
) -> tuple[int, str]:
    """Run the range through luigid, restart luigid while the worker is held in its first
    conversion, release it; the exit code and the run's output."""
    held, log = tmp_path / "held", tmp_path / "range.log"
    cmd = range_command(sinks, first, tmp_path)
    proc = start_cli(cmd, cli_env(cfg, tmp_path, TLC_FAULT_HOLD="parquet", TLC_FAULT_HELD=str(held)), log)
    try:
        poll(lambda: held.exists() or proc.poll() is not None, "the hold", timeout=90)
        assert proc.poll() is None, log.read_text()[-3000:]
        restart()
        held.with_name("held.release").touch()
        code = finish(proc, log, timeout=180)
    finally:
        if proc.poll() is None:
            kill_hard(proc)
    return code, log.read_text()


def publish_range(publish: Callable[..., Path], cfg: dict, first: tuple[int, int]) -> dict:
    cfg["core", "rpc-retry-wait"] = "1"  # the worker's calls made while luigid is down are retried soon
    months = [("yellow", first[0], first[1] + i) for i in range(3)]
    return {m: publish(*m, seed=i) for i, m in enumerate(months)}


def assert_every_month_exact(data: Path, sinks: Sinks, months: dict) -> None:
    for month, src in months.items():
        sinks.assert_exact(data, *month, src)
    counts = {f"{y}-{m:02d}": 2000 for _, y, m in months}
    assert {k: v for k, v in sinks.bq_counts("yellow").items() if k in counts} == counts
    assert {k: v for k, v in sinks.pg_counts("yellow").items() if k in counts} == counts


@pytest.mark.parametrize("case", ["from-scratch", "from-saved-state"])
def test_luigid_restarted_mid_range_the_same_run_lands_every_month(
    pipeline_env: Path,
    source: SourceServer,
    sinks: Sinks,
    publish: Callable[..., Path],
    cfg: dict,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    case: str,
) -> None:
    months = publish_range(publish, cfg, RANGES[case])
    from_scratch = case == "from-scratch"
    restart = lambda: restart_luigid(sinks, from_scratch, monkeypatch)  # noqa: E731
    code, output = held_range_run(sinks, RANGES[case], cfg, tmp_path, restart)
    assert code == 0 and error_lines(output) == [], output[-4000:]
    assert "Traceback" not in output, output[-4000:]
    recovered = [line for line in output.splitlines() if "luigid no longer knows" in line]
    if from_scratch:
        assert len(recovered) == 1 and "adding them again (recovery 1 of 3)" in recovered[0], output[-4000:]
    else:  # luigid came back with the graph: nothing was lost, nothing to recover
        assert recovered == [], output[-4000:]
    assert_every_month_exact(pipeline_env, sinks, months)


def test_lost_tasks_that_cannot_be_recovered_are_named_and_a_plain_rerun_lands_them(
    pipeline_env: Path,
    source: SourceServer,
    sinks: Sinks,
    publish: Callable[..., Path],
    cfg: dict,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first = RANGES["unrecovered"]
    months = publish_range(publish, cfg, first)
    cfg["tlc.schedule", "luigid_recoveries"] = "0"
    code, output = held_range_run(sinks, first, cfg, tmp_path, lambda: restart_luigid(sinks, True, monkeypatch))
    assert code == 25, output[-4000:]  # luigi's not_run: the run did not finish its range
    [line] = error_lines(output)
    assert "luigid lost" in line and "task(s) of this run and forgot them again after 0 recoveries" in line
    assert "they did not run (a rerun does them)" in line
    assert "Traceback" not in output

    rerun = run_cli(range_command(sinks, first, tmp_path), cli_env(cfg, tmp_path), timeout=180)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert_every_month_exact(pipeline_env, sinks, months)
