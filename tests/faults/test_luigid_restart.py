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
from dataclasses import dataclass, field
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


@dataclass
class Backfill:
    """A three-month ``IngestRange`` through the fault stack's luigid, and the means to restart it."""

    data: Path
    sinks: Sinks
    cfg: dict
    tmp_path: Path
    monkeypatch: pytest.MonkeyPatch
    publish: Callable[..., Path]
    months: dict = field(default_factory=dict)
    first: tuple[int, int] = (2020, 1)

    def publish_range(self, case: str) -> None:
        self.first = RANGES[case]
        months = [("yellow", self.first[0], self.first[1] + i) for i in range(3)]
        self.months = {m: self.publish(*m, seed=i) for i, m in enumerate(months)}

    def command(self) -> list[str]:
        year, month = self.first
        span = ("--start", f"{year}-{month:02d}", "--stop", f"{year}-{month + 2:02d}")
        scheduler = self.sinks.stack.up(("luigid",))["LUIGI_SCHEDULER_URL"]
        args = ("IngestRange", "--colors", "yellow", *span, "--workers", "1", "--scheduler-url", scheduler)
        return luigi_args(*args, lock_dir=self.tmp_path / "locks", local=False)

    def restart_luigid(self, from_scratch: bool) -> None:
        """Stop luigid (SIGTERM: it saves its state; SIGKILL + state removed: it starts empty), then
        start it again on the same port, so the running worker reaches it at the same URL."""
        state = self.sinks.stack.dir.load_state()["luigid"]
        self.sinks.stop("luigid", signal.SIGKILL if from_scratch else signal.SIGTERM)
        saved = Path(state["state_path"])
        if from_scratch:
            saved.unlink(missing_ok=True)
        else:
            assert saved.exists(), "luigid should have saved its state on SIGTERM"
        self.monkeypatch.setattr(luigid_service, "free_port", lambda: state["port"])
        self.sinks.stack.up(("luigid",))

    def held_run(self, from_scratch: bool) -> tuple[int, str]:
        """Run the range, restart luigid while the worker is held in its first conversion, release
        it; the exit code and the run's output."""
        held, log = self.tmp_path / "held", self.tmp_path / "range.log"
        env = cli_env(self.cfg, self.tmp_path, TLC_FAULT_HOLD="parquet", TLC_FAULT_HELD=str(held))
        proc = start_cli(self.command(), env, log)
        try:
            poll(lambda: held.exists() or proc.poll() is not None, "the hold", timeout=90)
            assert proc.poll() is None, log.read_text()[-3000:]
            self.restart_luigid(from_scratch)
            held.with_name("held.release").touch()
            code = finish(proc, log, timeout=180)
        finally:
            if proc.poll() is None:
                kill_hard(proc)
        return code, log.read_text()

    def assert_every_month_exact(self) -> None:
        for month, src in self.months.items():
            self.sinks.assert_exact(self.data, *month, src)
        counts = {f"{y}-{m:02d}": 2000 for _, y, m in self.months}
        assert {k: v for k, v in self.sinks.bq_counts("yellow").items() if k in counts} == counts
        assert {k: v for k, v in self.sinks.pg_counts("yellow").items() if k in counts} == counts


@pytest.fixture
def backfill(
    pipeline_env: Path,
    source: SourceServer,
    sinks: Sinks,
    publish: Callable[..., Path],
    cfg: dict,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Backfill:
    cfg["core", "rpc-retry-wait"] = "1"  # the worker's calls made while luigid is down are retried soon
    return Backfill(pipeline_env, sinks, cfg, tmp_path, monkeypatch, publish)


@pytest.mark.parametrize("case", ["from-scratch", "from-saved-state"])
def test_luigid_restarted_mid_range_the_same_run_lands_every_month(backfill: Backfill, case: str) -> None:
    backfill.publish_range(case)
    code, output = backfill.held_run(from_scratch=case == "from-scratch")
    assert code == 0 and error_lines(output) == [], output[-4000:]
    assert "Traceback" not in output, output[-4000:]
    recovered = [line for line in output.splitlines() if "luigid no longer knows" in line]
    if case == "from-scratch":
        assert len(recovered) == 1 and "adding them again (recovery 1 of 3)" in recovered[0], output[-4000:]
    else:  # luigid came back with the graph: nothing was lost, nothing to recover
        assert recovered == [], output[-4000:]
    backfill.assert_every_month_exact()


def test_lost_tasks_that_cannot_be_recovered_are_named_and_a_plain_rerun_lands_them(backfill: Backfill) -> None:
    backfill.publish_range("unrecovered")
    backfill.cfg["tlc.schedule", "luigid_recoveries"] = "0"
    code, output = backfill.held_run(from_scratch=True)
    assert code == 25, output[-4000:]  # luigi's not_run: the run did not finish its range
    [line] = error_lines(output)
    assert "luigid lost" in line and "task(s) of this run and forgot them again after 0 recoveries" in line
    assert "they did not run (a rerun does them)" in line
    assert "Traceback" not in output

    rerun = run_cli(backfill.command(), cli_env(backfill.cfg, backfill.tmp_path), timeout=180)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    backfill.assert_every_month_exact()
