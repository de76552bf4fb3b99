"""Fixtures of the fault suite: a service stack of its own (it gets killed), per-test sinks.

The session's ``gcp_stack`` is shared with the rest of the test suite, so these tests never
touch it: they run fake-gcs-server, bqemulator and PostgreSQL in a stack directory of their
own, stop them mid-run and start them again (``Sinks.restart``), and give every test its own
bucket, dataset and Postgres schema so no test can see another's rows.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import os
import signal
from collections import Counter
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psycopg2
import pyarrow.parquet as pq
import pytest

from scripts.make_sample_data import write_month
from scripts.stack import Stack
from scripts.stack.base import pid_alive
from tests.conftest import let_server_user_in
from tests.faults.helpers import ROWS, assert_lake_exact, row_counter, temporaries
from tests.sourceserver import SourceServer
from tlc import layout, schema
from tlc.bigquery import state
from tlc.bigquery.dataset import Dataset
from tlc.gcs.lake import Lake
from tlc.gcs.objects import md5_b64
from tlc.month import Month
from tlc.postgres import binary_copy

SINK_SERVICES = ("gcs", "bigquery", "postgres")
ENDPOINTS = (
    "STORAGE_EMULATOR_HOST",
    "TLC_BIGQUERY_ENDPOINT",
    "TLC_BIGQUERY_PROJECT",
    "PGHOST",
    "PGPORT",
    "PGUSER",
    "PGDATABASE",
    "PGPASSWORD",
)


@pytest.fixture(scope="session")
def fault_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("faults-stack")
    let_server_user_in(root, tmp_path_factory.getbasetemp().parent)
    stack = Stack(root)
    try:
        stack.up(SINK_SERVICES)
        yield stack
    finally:
        stack.down()


@dataclass
class Sinks:
    """The three sinks of one test, and the means to break and restore them."""

    stack: Stack
    monkeypatch: pytest.MonkeyPatch
    bucket_name: str
    dataset: str
    schema: str
    env: dict[str, str] = field(default_factory=dict)

    def refresh(self) -> dict[str, str]:
        """Start whatever is down (a no-op for healthy services) and export the current endpoints."""
        self.env = self.stack.up(SINK_SERVICES)
        for key in ENDPOINTS:
            self.monkeypatch.setenv(key, self.env[key])
        return self.env

    # --- breaking and restoring services ------------------------------------------------------

    def pids(self, service: str) -> list[int]:
        return list(self.stack.dir.load_state()[service]["pids"])

    def stop(self, service: str, sig: signal.Signals | None = None) -> None:
        """Stop a service's process for real; ``sig`` picks PostgreSQL's shutdown mode (SIGINT
        fast, SIGQUIT immediate/crash). The state file keeps the dead pid, so ``refresh`` restarts it."""
        from scripts.stack.base import stop_pid

        for pid in self.pids(service):
            if sig is not None:
                os.kill(pid, sig)
                _wait_dead(pid)
            stop_pid(pid)

    def restart_same_ports(self, service: str) -> None:
        """Start a stopped service again on the ports it had, so clients that keep retrying
        the old endpoint reach it: an outage, not a move."""
        import scripts.stack.bigquery as bq_mod
        import scripts.stack.gcs as gcs_mod

        state = self.stack.dir.load_state()[service]
        ports = iter([state["port"], state.get("grpc_port")])
        module = gcs_mod if service == "gcs" else bq_mod
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(module, "free_port", lambda: next(ports))
            self.stack.up((service,))

    # --- reading what landed ---------------------------------------------------------------------

    def bucket(self) -> Any:
        return Lake.from_config().bucket

    def warehouse(self) -> Dataset:
        return Dataset.from_config()

    def bq_rows(self, color: str, year: int, month: int) -> Counter:
        ds = self.warehouse()
        names = ", ".join(c.name for c in schema.columns(color))
        rows = ds.query(
            f"SELECT {names} FROM `{ds.table_id(color)}` WHERE source_month = @day", day=dt.date(year, month, 1)
        )
        return Counter(tuple(r.values()) for r in rows)

    def bq_counts(self, color: str) -> dict[str, int]:
        return {f"{d:%Y-%m}": n for d, n in state.counts_by_month(self.warehouse(), color).items()}

    def bq_tables(self) -> set[str]:
        ds = self.warehouse()
        return {t.table_id for t in ds.client.list_tables(ds.id)}

    def pg(self, sql: str, params: tuple = ()) -> list[tuple]:
        with closing(psycopg2.connect()) as conn, conn.cursor() as cur:
            cur.execute(sql, params)
            rows = cur.fetchall() if cur.description else []
            conn.commit()
            return rows

    def admin(self) -> Any:
        """A superuser session over the stack's private unix socket (autocommit)."""
        state = self.stack.dir.load_state()["postgres"]
        conn = psycopg2.connect(host=state["socket_dir"], port=state["port"], user="postgres", dbname="tlc")
        conn.autocommit = True
        return conn

    def pg_rows(self, color: str, year: int, month: int) -> Counter:
        names = ", ".join(name for name, _ in schema.postgres_columns(color))
        return Counter(
            self.pg(
                f"SELECT {names} FROM {self.schema}.{color}_tripdata WHERE source_month = %s",
                (dt.date(year, month, 1),),
            )
        )

    def pg_counts(self, color: str) -> dict[str, int]:
        rows = self.pg(f"SELECT source_month, count(*) FROM {self.schema}.{color}_tripdata GROUP BY 1")
        return {f"{d:%Y-%m}": n for d, n in rows}

    def pg_staging(self) -> list[str]:
        return [
            r[0]
            for r in self.pg(
                "SELECT tablename FROM pg_tables WHERE schemaname = %s AND tablename LIKE %s",
                (self.schema, "%\\_load"),
            )
        ]

    # --- the one check every recovery ends with ---------------------------------------------------

    def assert_exact(
        self,
        data: Path,
        color: str,
        year: int,
        month: int,
        src: Path,
        sinks: tuple[str, ...] = ("gcs", "bq", "pg"),
        staging_left: bool = False,
    ) -> None:
        """The month is exactly the published file in the lake and in every sink asked for.

        ``staging_left``: a failed load may leave its staging table behind (it is no final
        output, and the next load of the month replaces and drops it); after a rerun none may remain.
        """
        table = assert_lake_exact(data, color, year, month, src)
        expected = row_counter(table)
        parquet = layout.lake_path(data, Month(color, year, month))
        md5 = hashlib.md5(parquet.read_bytes(), usedforsecurity=False).hexdigest()
        sha = hashlib.sha256(parquet.read_bytes()).hexdigest()
        name = Lake.from_config().object_name(Month(color, year, month))
        if "gcs" in sinks:
            blob = self.bucket().get_blob(name)
            assert blob is not None and blob.md5_hash == md5_b64(md5), "lake object differs from the Parquet"
        if "bq" in sinks:
            assert self.bq_rows(color, year, month) == expected, "BigQuery month differs from the Parquet"
            marker = state.markers(self.warehouse(), color).get(dt.date(year, month, 1))
            assert marker == (table.num_rows, sha)
            assert staging_left or not [t for t in self.bq_tables() if "_staging_" in t], "staging table left"
        if "pg" in sinks:
            assert self.pg_rows(color, year, month) == expected, "Postgres month differs from the Parquet"
            found = self.pg(
                f"SELECT rows, parquet_sha256 FROM {self.schema}.load_markers WHERE color = %s AND source_month = %s",
                (color, dt.date(year, month, 1)),
            )
            assert found == [(table.num_rows, sha)]
            assert staging_left or self.pg_staging() == [], "Postgres staging table left"
        assert temporaries(data) == []


def _wait_dead(pid: int, timeout: float = 60.0) -> None:
    """Poll until ``pid`` has exited (reaping it if it is our child, so no zombie looks alive)."""
    from tests.faults.helpers import poll

    def gone() -> bool:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        return not pid_alive(pid)

    poll(gone, f"pid {pid} to exit", timeout=timeout)


@pytest.fixture
def sinks(
    fault_stack: Stack,
    pipeline_env: Path,
    monkeypatch: pytest.MonkeyPatch,
    cfg: dict[tuple[str, str], str],
    request: pytest.FixtureRequest,
) -> Sinks:
    """Lake, warehouse and database of this test alone, with short retry deadlines."""
    suffix = hashlib.sha1(request.node.nodeid.encode(), usedforsecurity=False).hexdigest()[:10]
    found = Sinks(fault_stack, monkeypatch, f"tlc-f-{suffix}", f"tlc_f_{suffix}", f"tlc_f_{suffix}")
    found.refresh()
    monkeypatch.setenv("TLC_GCS_BUCKET", found.bucket_name)
    cfg["tlc.bigquery", "dataset"] = found.dataset
    cfg["tlc.postgres", "schema"] = found.schema
    cfg["tlc.gcs", "retry_seconds"] = "3"
    cfg["tlc.bigquery", "retry_seconds"] = "3"
    cfg["tlc.postgres", "connect_timeout_seconds"] = "3"
    monkeypatch.setattr(binary_copy, "BATCH_ROWS", 250)  # several COPY chunks per month
    found.pg(f"DROP SCHEMA IF EXISTS {found.schema} CASCADE")
    return found


@pytest.fixture
def source(source_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SourceServer]:
    """The loopback source of tests/conftest.py, polling its shutdown flag every 20 ms instead of
    500 ms: with a hundred tests, stopping the server would otherwise cost most of a minute."""
    serve = ThreadingHTTPServer.serve_forever
    monkeypatch.setattr(ThreadingHTTPServer, "serve_forever", lambda self: serve(self, poll_interval=0.02))
    server = SourceServer(source_dir)
    yield server
    server.close()


@pytest.fixture
def publish(source_dir: Path) -> Any:
    """``publish(color, year, month, seed=...)`` writes a month at the source's release path."""

    def write(color: str, year: int, month: int, seed: int = 7, rows: int = ROWS) -> Path:
        return write_month(source_dir, color, year, month, rows=rows, seed=seed)

    return write


def parquet_table(data: Path, color: str, year: int, month: int) -> Any:
    return pq.read_table(layout.lake_path(data, Month(color, year, month)))
