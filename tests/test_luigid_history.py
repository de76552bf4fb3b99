"""luigid as the stack runs it: task history in PostgreSQL, Prometheus metrics, no flags needed.

One stack (PostgreSQL + luigid, as ``make stack-up`` starts them) per module. The CLI runs
use no ``--scheduler-url``: they run from the repo root with the stack's ``LUIGI_CONFIG_PATH``,
as after ``. .stack/env``, so they prove the config layering (the stack's scheduler URL over
``./luigi.cfg``, whose ``[retcode]`` still applies). Then the runs are read back three ways:
luigid's ``/history`` pages in headless Chromium (screenshot in test-artifacts/), the history
tables in PostgreSQL over SQL, and the counters at ``/metrics``. This luigid sees only this
module's runs, so every count is exact.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import luigi
import psycopg2
import pytest

from tests.browser import ARTIFACTS, chromium, require_chromium
from tests.conftest import let_server_user_in
from tests.test_luigid import MONTHS, ThrowawayMonth, ThrowawayRange, _png_pixels

REPO = Path(__file__).resolve().parents[1]
LUIGI = Path(sys.executable).with_name("luigi")
TASK_FAILED = 30  # ./luigi.cfg [retcode] task_failed: luigi's own default would be 0
__all__ = ["ThrowawayMonth", "ThrowawayRange"]  # re-exported: the CLI runs load them from here


class OpsFailure(luigi.Task):
    """A task that always fails, so history and metrics have a FAILED run to show."""

    root = luigi.Parameter()

    def output(self) -> luigi.LocalTarget:
        return luigi.LocalTarget(str(Path(self.root) / "never.txt"))

    def run(self) -> None:
        raise RuntimeError("this task fails on purpose")


@dataclass
class Ops:
    stack: Any  # scripts.stack.Stack
    env: dict[str, str]  # the stack's env file, as `. .stack/env` exports it
    stack_dir: Path
    luigid_pid: int
    root: Path  # outputs of the CLI runs
    range_rc: int
    failure_rc: int

    @property
    def url(self) -> str:
        return self.env["LUIGI_SCHEDULER_URL"]

    def get(self, path: str) -> str:
        with urllib.request.urlopen(f"{self.url}{path.lstrip('/')}", timeout=10) as resp:
            assert resp.status == 200
            return resp.read().decode()

    def history_db(self) -> psycopg2.extensions.connection:
        """luigid's own login: no password given, libpq finds it in the stack's passfile
        (a PGPASSWORD in the environment would win over it: the caller removes it)."""
        return psycopg2.connect(
            host=self.env["PGHOST"],
            port=self.env["PGPORT"],
            user="luigid",
            dbname="luigi_history",
            passfile=str(self.stack_dir / "luigid" / "pgpass"),
            connect_timeout=5,
        )


def _luigi(args: list[str], env: dict[str, str], log: Path) -> int:
    """A plain CLI run from the repo root: no scheduler flag at all."""
    full = {**os.environ, **env, "PYTHONPATH": str(REPO)}
    with open(log, "wb") as out:
        proc = subprocess.run(
            [str(LUIGI), "--module", "tests.test_luigid_history", *args],
            cwd=REPO,
            env=full,
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=120,
            check=False,
        )
    return proc.returncode


@pytest.fixture(scope="module")
def ops(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ops]:
    from scripts.stack import Stack

    stack_dir = tmp_path_factory.mktemp("ops-stack")
    let_server_user_in(stack_dir, tmp_path_factory.getbasetemp().parent)
    stack = Stack(stack_dir)
    try:
        env = stack.up(("postgres", "luigid"))
        root = tmp_path_factory.mktemp("ops-runs")
        range_rc = _luigi(
            ["ThrowawayRange", "--root", str(root), "--start", "2024-01", "--stop", "2024-03", "--workers", "2"],
            env,
            root.parent / f"{root.name}-range.log",
        )
        failure_rc = _luigi(["OpsFailure", "--root", str(root)], env, root.parent / f"{root.name}-failure.log")
        pid = stack.dir.load_state()["luigid"]["pids"][0]
        yield Ops(stack, env, stack.dir.root, pid, root, range_rc, failure_rc)
    finally:
        stack.down()


def test_plain_cli_uses_the_stacks_luigid_and_the_repos_luigi_cfg(ops: Ops) -> None:
    assert ops.range_rc == 0
    assert ops.failure_rc == TASK_FAILED
    client = Path(ops.env["LUIGI_CONFIG_PATH"])
    assert client.read_text().splitlines()[-2:] == ["[core]", f"scheduler_url = {ops.url}"]
    # luigi's documented alias default-scheduler-url would warn on every run; this key does not.
    for log in ops.root.parent.glob(f"{ops.root.name}-*.log"):
        assert "UnconsumedParameterWarning" not in log.read_text(), log
    # The runs reached this luigid (no --scheduler-url was given): it holds their tasks.
    listed = ops.get(f"api/task_list?data=%7B%22status%22%3A%22DONE%22%2C%22search%22%3A%22{ops.root.name}%22%7D")
    for month in MONTHS[:3]:
        assert f'"month": "{month}"' in listed


def test_history_tables_hold_every_run_with_its_events_and_parameters(
    ops: Ops, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PGPASSWORD", raising=False)
    with ops.history_db() as conn, conn.cursor() as cur:
        cur.execute(
            """
            SELECT t.name, p.value AS month, string_agg(e.event_name, ',' ORDER BY e.ts, e.id)
            FROM tasks t
            JOIN task_parameters root ON root.task_id = t.id AND root.name = 'root' AND root.value = %s
            LEFT JOIN task_parameters p ON p.task_id = t.id AND p.name = 'month'
            JOIN task_events e ON e.task_id = t.id
            GROUP BY t.id, t.name, p.value
            ORDER BY t.name, p.value
            """,
            (str(ops.root),),
        )
        rows = cur.fetchall()
        cur.execute(
            "SELECT p.name, p.value FROM task_parameters p JOIN tasks t ON t.id = p.task_id"
            " WHERE t.name = 'ThrowawayRange'"
        )
        range_params = dict(cur.fetchall())
    assert rows == [
        ("OpsFailure", None, "PENDING,RUNNING,FAILED"),
        ("ThrowawayMonth", "2024-01", "PENDING,RUNNING,DONE"),
        ("ThrowawayMonth", "2024-02", "PENDING,RUNNING,DONE"),
        ("ThrowawayMonth", "2024-03", "PENDING,RUNNING,DONE"),
        ("ThrowawayRange", None, "PENDING,RUNNING,DONE"),
    ]
    # Every parameter, insignificant ones too, as luigi serialises them.
    assert range_params == {"root": str(ops.root), "start": "2024-01", "stop": "2024-03", "gated": "False"}


def test_history_page_in_chromium(ops: Ops, tmp_path: Path) -> None:
    require_chromium()
    url = f"{ops.url}history"
    dom = chromium("--dump-dom", url, profile=tmp_path / "profile-dom")
    assert dom.returncode == 0, dom.stderr.decode()[-2000:]
    html = dom.stdout.decode()
    assert "Luigi Task History" in html
    # One row per run: a link to its record, the host, last action, status, parameters.
    runs = re.findall(
        r'<a href="/history/by_id/(\d+)">(\w+)</a></td>\s*<td>[^<]*</td>\s*<td>[^<]*</td>\s*<td>(\w+)</td>', html
    )
    assert sorted((name, status) for _, name, status in runs) == [
        ("OpsFailure", "FAILED"),
        *[("ThrowawayMonth", "DONE")] * 3,
        ("ThrowawayRange", "DONE"),
    ]
    assert html.count(f"<td>root</td><td>{ops.root}</td>") == 5

    # A run's own page, reached from the list, names its parameters and final status.
    failure_id = next(i for i, name, _ in runs if name == "OpsFailure")
    record = ops.get(f"history/by_id/{failure_id}")
    assert "OpsFailure" in record and "FAILED" in record

    ARTIFACTS.mkdir(exist_ok=True)
    png = ARTIFACTS / "luigid-history.png"
    png.unlink(missing_ok=True)
    shot = chromium(f"--screenshot={png}", url, profile=tmp_path / "profile-shot")
    assert shot.returncode == 0, shot.stderr.decode()[-2000:]
    width, height, rows = _png_pixels(png.read_bytes())
    assert (width, height) == (1400, 900)
    # Text was drawn: the top of the page (title and table) is not one flat colour.
    assert len({row for row in rows[:400]}) > 50


def _metrics(text: str) -> dict[tuple[str, str], float]:
    """Prometheus text exposition: {(metric, family label): value} for labelled samples."""
    samples = {}
    for line in text.splitlines():
        match = re.fullmatch(r'(\w+)\{family="(\w+)"\} (\S+)', line)
        if match:
            samples[match[1], match[2]] = float(match[3])
    return samples


def test_metrics_count_what_ran(ops: Ops) -> None:
    with urllib.request.urlopen(f"{ops.url}metrics", timeout=10) as resp:
        assert resp.headers["Content-Type"].startswith("text/plain; version=")
        samples = _metrics(resp.read().decode())
    counters = {k: v for k, v in samples.items() if k[0].endswith("_total")}
    assert counters == {
        ("luigi_task_started_total", "ThrowawayMonth"): 3,
        ("luigi_task_started_total", "ThrowawayRange"): 1,
        ("luigi_task_started_total", "OpsFailure"): 1,
        ("luigi_task_done_total", "ThrowawayMonth"): 3,
        ("luigi_task_done_total", "ThrowawayRange"): 1,
        ("luigi_task_failed_total", "OpsFailure"): 1,
    }
    # Each month's ThrowawayMonth works 0.4 s; the gauge keeps the last run's duration.
    assert 0.3 < samples["luigi_task_execution_time_seconds", "ThrowawayMonth"] < 30


def test_the_history_password_is_in_no_config_log_or_process_listing(ops: Ops) -> None:
    secret = (ops.stack_dir / "postgres" / "luigid.password").read_text().strip()
    assert len(secret) >= 24
    passfile = ops.stack_dir / "luigid" / "pgpass"
    assert passfile.stat().st_mode & 0o777 == 0o600
    assert secret in passfile.read_text()  # the one place it is meant to be
    config = (ops.stack_dir / "luigid" / "luigid.cfg").read_text()
    assert "db_connection = postgresql+psycopg2://luigid@127.0.0.1:" in config
    looked_at = [ops.stack_dir / "env", ops.stack_dir / "luigi-stack.cfg", ops.stack_dir / "luigid" / "luigid.cfg"]
    looked_at += [p for p in ops.stack_dir.rglob("*.log") if p.is_file()]
    assert len(looked_at) > 5
    for path in looked_at:
        assert secret not in path.read_text(errors="replace"), path
    for proc_file in ("cmdline", "environ"):
        raw = Path(f"/proc/{ops.luigid_pid}/{proc_file}").read_bytes()
        assert secret.encode() not in raw, proc_file
    environ = dict(
        item.split("=", 1) for item in Path(f"/proc/{ops.luigid_pid}/environ").read_text().split("\0") if "=" in item
    )
    assert "PGPASSWORD" not in environ
    assert environ["PGPASSFILE"] == str(passfile)


def test_a_restarted_postgres_restarts_luigid_onto_it(ops: Ops, monkeypatch: pytest.MonkeyPatch) -> None:
    """luigid is configured from PostgreSQL's port: `up` of PostgreSQL alone (after it died)
    must bring luigid along, or history would go to a port nobody listens on."""
    import signal

    from scripts.stack.base import pid_alive, wait_until

    state = ops.stack.dir.load_state()
    postmaster = state["postgres"]["pids"][0]
    os.killpg(postmaster, signal.SIGKILL)  # a crash of the server, not a clean `down`
    wait_until(lambda: not pid_alive(postmaster) or os.waitpid(postmaster, os.WNOHANG)[0] == postmaster, "kill")
    env = ops.stack.up(("postgres",))
    after = ops.stack.dir.load_state()
    assert after["luigid"]["pids"] != state["luigid"]["pids"], "luigid was not restarted"
    assert after["luigid"]["history"] is True
    assert f"127.0.0.1:{env['PGPORT']}/luigi_history" in Path(after["luigid"]["config"]).read_text()
    root = ops.root / "after-restart"
    assert _luigi(["OpsFailure", "--root", str(root)], env, ops.root / "after-restart.log") == TASK_FAILED
    monkeypatch.delenv("PGPASSWORD", raising=False)
    ops.env = env
    with ops.history_db() as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT count(*) FROM task_parameters WHERE name = 'root' AND value IN (%s, %s)", (str(ops.root), str(root))
        )
        assert cur.fetchone() == (6,)  # the five runs before the restart survived, and the new one
