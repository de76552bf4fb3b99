"""Workers on several hosts: one luigid, one lake and two warehouses, every month done once.

Each "host" is a luigi CLI run with a data directory and a worker name of its own, so the
only state the hosts share is what real hosts share: luigid, the lake bucket, BigQuery and
PostgreSQL. What is asserted is counted where it happens: GET requests at the source server
(each month's file fetched once), the manifests' histories in the bucket (each stage of each
month recorded once), rows in every sink (exact), ERROR lines in the hosts' output (none).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import psycopg2
import pytest

from scripts.make_sample_data import write_month
from scripts.stack import Stack
from scripts.stack.luigid import OVERRIDES
from tests.conftest import ROOT, let_server_user_in
from tests.faults.helpers import poll
from tests.sourceserver import SourceServer
from tlc import gcp, ledger
from tlc.bigquery.dataset import Dataset
from tlc.config import BigQueryConfig
from tlc.gcs.lake import Lake
from tlc.month import Month

LUIGI = Path(sys.executable).with_name("luigi")
ROWS = 300
COLORS = ("yellow", "green")

# luigid for this module: hosts that vanish are noticed within seconds, not minutes.
SCHEDULER = """
[scheduler]
worker_disconnect_delay = 3
retry_delay = 2
prune_on_get_work = true
"""


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    root = tmp_path_factory.mktemp("multihost-stack")
    let_server_user_in(root, tmp_path_factory.getbasetemp().parent)
    (root / OVERRIDES).write_text(SCHEDULER)
    stack = Stack(root)
    try:
        yield stack.up(("gcs", "bigquery", "postgres", "luigid"))
    finally:
        stack.down()


class Hosts:
    """Hosts of one test: their data directories, configuration and environment, and the source."""

    def __init__(self, stack: dict[str, str], tmp_path: Path, source: SourceServer, name: str) -> None:
        self.tmp, self.source = tmp_path, source
        config = tmp_path / "host.cfg"
        config.write_text(
            f"[core]\nscheduler_url = {stack['LUIGI_SCHEDULER_URL']}\n"
            "[worker]\nkeep_alive = true\nwait_interval = 0.2\nwait_jitter = 0.3\n"
            "[tlc.source]\nbackoff_seconds = 0.01\n"
            f"[tlc.bigquery]\ndataset = {name}\n[tlc.postgres]\nschema = {name}\n"
        )
        self.env = {
            **os.environ,
            **stack,
            "LUIGI_CONFIG_PATH": str(config),
            "TLC_SOURCE_URL": source.url,
            "TLC_GCS_BUCKET": f"tlc-{name.replace('_', '-')}",
            "PYTHONPATH": str(ROOT),  # for --module tests.faults.hooks
        }

    def start(self, name: str, *args: str, module: str = "tasks", **extra: str) -> subprocess.Popen:
        env = {**self.env, "TLC_DATA_DIR": str(self.tmp / name / "data"), "TLC_WORKER_NAME": name, **extra}
        log = self.tmp / f"{name}.log"
        (self.tmp / name / "locks").mkdir(parents=True, exist_ok=True)
        cmd = [str(LUIGI), "--module", module, *args, "--lock-pid-dir", str(self.tmp / name / "locks")]
        with open(log, "wb") as out:
            return subprocess.Popen(
                cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )

    def finish(self, name: str, proc: subprocess.Popen, timeout: float = 240) -> tuple[int, str]:
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            raise AssertionError(f"{name} did not finish:\n{self.log(name)[-3000:]}") from None
        return code, self.log(name)

    def log(self, name: str) -> str:
        return (self.tmp / f"{name}.log").read_text(errors="replace")


def publish(source_dir: Path, months: list[Month]) -> None:
    for m in months:
        write_month(source_dir, m.color, m.year, m.month, rows=ROWS, seed=m.month)


def stage_records(months: list[Month]) -> Counter:
    """(month, stage) -> how many times a stage was recorded for it, from the manifests' histories."""
    lake = Lake.from_config()
    return Counter((m, entry["stage"]) for m in months for entry in ledger.read(lake, m).get("history", []))


def source_gets(source: SourceServer) -> Counter:
    return Counter(r for r in source.requests if not r.startswith("HEAD "))


def report(hosts: Hosts, name: str) -> subprocess.CompletedProcess:
    env = {**hosts.env, "TLC_DATA_DIR": str(hosts.tmp / name / "data")}
    cmd = [sys.executable, "-m", "tlc.report", "--html", str(hosts.tmp / "report.html")]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False)


def leftover_tables(name: str) -> list[str]:
    """Staging tables left in the test's BigQuery dataset and Postgres schema. A load killed
    mid-way leaves none in Postgres (its transaction) and none in BigQuery once the month is
    loaded again; one killed between its BigQuery commit and its drop may leave its table until
    the next BigQuery load of any month on this host (``_drop_leftovers``)."""
    cfg = BigQueryConfig()
    ds = Dataset(gcp.bigquery_client(cfg.project_id(), cfg.api_endpoint(), cfg.location), name, 30, 60)
    found = [t.table_id for t in ds.client.list_tables(ds.id) if "_staging_" in t.table_id]
    with closing(psycopg2.connect()) as conn, conn.cursor() as cur:
        cur.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = %s", (name,))
        found += [t for (t,) in cur.fetchall() if t.endswith("_load")]
    return found


def errors(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("ERROR") or "Traceback" in line]


def test_three_hosts_split_one_range_and_do_every_month_once(
    stack: dict[str, str], tmp_path: Path, source_dir: Path, source: SourceServer, monkeypatch
) -> None:
    months = [Month(c, 2020, m) for c in COLORS for m in range(1, 13)]
    publish(source_dir, months)
    hosts = Hosts(stack, tmp_path, source, "mh_split")
    args = ("IngestRange", "--colors", ",".join(COLORS), "--start", "2020-01", "--stop", "2020-12", "--workers", "2")
    names = ["host-a", "host-b", "host-c"]
    procs = {name: hosts.start(name, *args) for name in names}
    results = {name: hosts.finish(name, proc) for name, proc in procs.items()}
    for name, (code, output) in results.items():
        assert errors(output) == [], f"{name}:\n{output[-3000:]}"
        assert code in (0, 10, 25), f"{name} exited {code}:\n{output[-3000:]}"  # why not only 0: README
    ran = [name for name, (_, output) in results.items() if "ran successfully" in output]
    assert len(ran) >= 2, "the hosts did not share the work"

    for key, value in hosts.env.items():
        monkeypatch.setenv(key, value)
    gets = source_gets(source)
    assert set(gets.values()) == {1} and len(gets) == len(months), gets  # each month's file fetched once
    records = stage_records(months)
    for m in months:
        for stage in ledger.STAGES:
            assert records[m, stage] == 1, f"{m.label} {stage} recorded {records[m, stage]} times"
    workers = {e["worker"].split(":")[0] for m in months for e in ledger.read(Lake.from_config(), m)["history"]}
    assert len(workers & set(names)) >= 2
    checked = report(hosts, "host-d")  # a host that ran nothing reconciles every month from the lake
    assert checked.returncode == 0, checked.stdout[-3000:] + checked.stderr[-2000:]
    assert f"{len(months)} month(s); 0 mismatch(es)" in checked.stdout

    # A fourth host reruns the range: everything is done, from the shared state alone.
    again = hosts.start("host-d", *args)
    code, output = hosts.finish("host-d", again)
    assert code == 0 and "Did not run any tasks" in output, output[-3000:]
    assert source_gets(source) == gets and stage_records(months) == records
    assert not (tmp_path / "host-d" / "data").exists() or not any((tmp_path / "host-d" / "data").rglob("*.parquet"))


def test_a_host_killed_mid_range_leaves_nothing_partial_and_the_others_finish(
    stack: dict[str, str], tmp_path: Path, source_dir: Path, source: SourceServer, monkeypatch
) -> None:
    months = [Month("yellow", 2019, m) for m in range(1, 7)]
    publish(source_dir, months)
    hosts = Hosts(stack, tmp_path, source, "mh_kill")
    args = ("IngestRange", "--colors", "yellow", "--start", "2019-01", "--stop", "2019-06", "--workers", "2")
    held = tmp_path / "held"
    doomed = hosts.start(
        "host-a", *args, module="tests.faults.hooks", TLC_FAULT_HOLD="postgres", TLC_FAULT_HELD=str(held)
    )
    poll(held.exists, "host-a to be half-way through a Postgres COPY", timeout=120)
    survivors = {name: hosts.start(name, *args) for name in ("host-b", "host-c")}
    os.killpg(doomed.pid, signal.SIGKILL)  # the host dies, and its worker with it, mid-COPY
    doomed.wait(timeout=30)
    for name, proc in survivors.items():
        code, output = hosts.finish(name, proc)
        assert errors(output) == [], f"{name}:\n{output[-3000:]}"
        assert code in (0, 10, 25), f"{name} exited {code}:\n{output[-3000:]}"  # why not only 0: README
    for key, value in hosts.env.items():
        monkeypatch.setenv(key, value)
    checked = report(hosts, "host-b")
    assert checked.returncode == 0, checked.stdout[-3000:] + checked.stderr[-2000:]
    assert f"{len(months)} month(s); 0 mismatch(es)" in checked.stdout
    gets = source_gets(source)
    assert set(gets.values()) == {1} and len(gets) == len(months), gets  # nothing the dead host did was redone
    records = stage_records(months)
    for m in months:
        for stage in ledger.STAGES:  # the killed COPY is recorded once, by the host that finished it
            assert records[m, stage] == 1, f"{m.label} {stage} recorded {records[m, stage]} times"
    left = leftover_tables("mh_kill")
    assert not [t for t in left if t.endswith("_load")], left
    assert len(left) <= 1, left  # at most the one load of the killed host that was past its commit
