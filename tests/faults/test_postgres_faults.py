"""PostgreSQL failing under a running load: server stopped, backend killed, rights and tables taken away.

The server is the fault suite's own (``fault_stack``), stopped for real by signalling its
postmaster (SIGINT: fast shutdown, SIGQUIT: immediate, i.e. a crash with recovery on the next
start). Each test starts from January v1 and February loaded and a new release of January
(v2) published; whatever happens, February stays exact, January is v1 or v2 exactly, and a
plain rerun lands v2. ``tests/test_postgres_table.py`` already covers a backend terminated
mid-COPY, a server down from the start, a wrong password and a hostile schema name.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any

import psycopg2
import pytest

from tasks import (
    PostgresTable,
)
from tests.faults.conftest import Sinks
from tests.faults.helpers import error_messages, poll
from tests.luigirun import run
from tests.sourceserver import SourceServer
from tlc import phases, refresh
from tlc.postgres.target import PostgresMonth

pytestmark = pytest.mark.faults

JAN, FEB = ("yellow", 2021, 1), ("yellow", 2021, 2)


def pgt(month: tuple[str, int, int]) -> PostgresTable:
    return PostgresTable(color=month[0], year=month[1], month=month[2])


class Loaded:
    """January v1 and February in Postgres, January v2 published and invalidated locally."""

    def __init__(self, data: Path, sinks: Sinks, publish: Callable[..., Path]) -> None:
        self.data, self.sinks = data, sinks
        self.jan, self.feb = publish(*JAN, seed=1), publish(*FEB, seed=2)
        assert run([pgt(JAN), pgt(FEB)]).ok
        self.jan_v1 = sinks.pg_rows(*JAN)
        self.markers_v1 = self.markers()
        publish(*JAN, seed=3)
        assert refresh.main(["--colors", "yellow", "--start", "2021-01", "--apply"]) == 0

    def markers(self) -> list[tuple]:
        return self.sinks.pg(f"SELECT * FROM {self.sinks.schema}.load_markers ORDER BY source_month")

    def assert_previous_intact(self) -> None:
        assert self.sinks.pg_rows(*JAN) == self.jan_v1
        assert self.markers() == self.markers_v1
        self.sinks.assert_exact(self.data, *FEB, self.feb, sinks=("pg",))

    def assert_rerun_exact(self) -> None:
        assert run([pgt(JAN), pgt(FEB)]).ok
        assert self.sinks.pg_counts("yellow") == {"2021-01": 2000, "2021-02": 2000}
        self.sinks.assert_exact(self.data, *JAN, self.jan, sinks=("pg",))
        self.sinks.assert_exact(self.data, *FEB, self.feb, sinks=("pg",))


@pytest.fixture
def loaded(pipeline_env: Path, source: SourceServer, sinks: Sinks, publish: Callable[..., Path]) -> Loaded:
    return Loaded(pipeline_env, sinks, publish)


def failing_load(caplog: pytest.LogCaptureFixture, *needles: str) -> str:
    with caplog.at_level(logging.ERROR, logger="luigi-interface"):
        result = run([pgt(JAN)])
    assert not result.ok and result.failed == {pgt(JAN).task_id}
    [line] = error_messages(caplog.records)
    assert "PostgresTable(color=yellow, year=2021, month=1)" in line and "\n" not in line
    assert all(n in line for n in needles), line
    return line


@pytest.mark.parametrize("mode", [signal.SIGINT, signal.SIGQUIT], ids=["fast-shutdown", "crash-immediate"])
def test_server_stopped_mid_copy(
    loaded: Loaded,
    sinks: Sinks,
    on_phase: Any,
    caplog: pytest.LogCaptureFixture,
    mode: signal.Signals,
) -> None:
    # The stack's throwaway server runs with synchronous_commit = off: a crash would also lose the
    # commits of the last few hundred ms (February's load, just made), which is the stack's trade,
    # not the pipeline's. A checkpoint first, so what this test sees is the pipeline's doing.
    as_admin(sinks, "CHECKPOINT")
    stopped: list[int] = []

    def at_half(rows: int, expected: int) -> None:
        if 0.5 <= rows / expected < 1 and not stopped:  # half the month is on the wire
            stopped.append(sinks.pg("SELECT count(*) FROM pg_stat_progress_copy")[0][0])
            sinks.stop("postgres", mode)

    on_phase("postgres.copying", at_half)
    failing_load(caplog, "PostgreSQL load of yellow 2021-01", "(connection lost")
    assert stopped == [1]  # our COPY was running when the server went away
    phases.clear()
    sinks.refresh()  # started again (after crash recovery for SIGQUIT)
    loaded.assert_previous_intact()
    loaded.assert_rerun_exact()


def test_backend_terminated_while_waiting_to_swap_the_month(
    loaded: Loaded, sinks: Sinks, caplog: pytest.LogCaptureFixture
) -> None:
    """A reader holds the table; the loader has COPYed everything and waits for its lock: killed there."""
    reader = psycopg2.connect()
    killed: list[int] = []
    try:
        with reader.cursor() as cur:
            cur.execute(f"LOCK TABLE {sinks.schema}.yellow_tripdata IN ACCESS SHARE MODE")

        def kill_the_waiting_loader() -> None:
            def waiting() -> list[tuple]:
                return sinks.pg(
                    "SELECT pid FROM pg_stat_activity WHERE application_name = 'tlc-luigi' AND wait_event_type = 'Lock'"
                )

            [(pid,)] = poll(waiting, "the loader to wait for the swap lock")
            killed.append(sinks.pg("SELECT pg_terminate_backend(%s, 5000)", (pid,))[0][0])

        killer = threading.Thread(target=kill_the_waiting_loader)
        killer.start()
        failing_load(caplog, "PostgreSQL load of yellow 2021-01", "(connection lost")
        killer.join()
    finally:
        reader.rollback()
        reader.close()
    assert killed == [True]
    loaded.assert_previous_intact()
    loaded.assert_rerun_exact()


ROLE = "tlc_fault_other"


def as_admin(sinks: Sinks, *statements: str) -> None:
    with closing(sinks.admin()) as conn, conn.cursor() as cur:
        for statement in statements:
            cur.execute(statement)


PERMISSIONS: dict[str, tuple[str, str, str]] = {
    # id: (taking the right away, message, giving it back)
    "insert-on-markers-revoked": (
        "REVOKE INSERT, UPDATE ON {s}.load_markers FROM tlc",
        "permission denied for table load_markers",
        "GRANT INSERT, UPDATE ON {s}.load_markers TO tlc",
    ),
    "create-in-schema-revoked": (
        "REVOKE CREATE ON SCHEMA {s} FROM tlc",
        "permission denied for schema",
        "GRANT CREATE ON SCHEMA {s} TO tlc",
    ),
    "schema-owned-by-another-role": (
        f"ALTER SCHEMA {{s}} OWNER TO {ROLE}; REVOKE ALL ON ALL TABLES IN SCHEMA {{s}} FROM tlc",
        "permission denied for",
        "ALTER SCHEMA {s} OWNER TO tlc; GRANT ALL ON ALL TABLES IN SCHEMA {s} TO tlc",
    ),
}


@pytest.mark.parametrize("fault", list(PERMISSIONS))
def test_permission_taken_away_fails_in_one_line_and_changes_nothing(
    loaded: Loaded, sinks: Sinks, caplog: pytest.LogCaptureFixture, fault: str
) -> None:
    take, message, give = (sql.format(s=sinks.schema) for sql in PERMISSIONS[fault])
    as_admin(sinks, f"DO $$ BEGIN CREATE ROLE {ROLE} NOLOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$")
    as_admin(sinks, take)
    try:
        failing_load(caplog, message)
    finally:
        as_admin(sinks, give)  # given back before checking: the check itself needs the rights
    loaded.assert_previous_intact()
    loaded.assert_rerun_exact()


def test_schema_created_by_another_role_refuses_the_first_load_clearly(
    pipeline_env: Path, source: SourceServer, sinks: Sinks, publish: Callable[..., Path], caplog
) -> None:
    jan = publish(*JAN, seed=1)
    as_admin(sinks, f"DO $$ BEGIN CREATE ROLE {ROLE} NOLOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$")
    as_admin(sinks, f"CREATE SCHEMA {sinks.schema} AUTHORIZATION {ROLE}")
    failing_load(caplog, f"cannot create {sinks.schema}.yellow_tripdata in PostgreSQL: permission denied for schema")
    assert sinks.pg("SELECT count(*) FROM pg_tables WHERE schemaname = %s", (sinks.schema,)) == [(0,)]
    as_admin(sinks, f"ALTER SCHEMA {sinks.schema} OWNER TO tlc")
    assert run([pgt(JAN)]).ok
    sinks.assert_exact(pipeline_env, *JAN, jan, sinks=("pg",))


DROPS = {
    "parent-cascade": ("DROP TABLE {s}.yellow_tripdata CASCADE", [JAN, FEB]),
    "month-partition": ("DROP TABLE {s}.yellow_tripdata_2021_02", [FEB]),
    "load-markers": ("DROP TABLE {s}.load_markers", [JAN, FEB]),
    "schema-cascade": ("DROP SCHEMA {s} CASCADE", [JAN, FEB]),
}


@pytest.mark.parametrize("drop", list(DROPS))
def test_table_dropped_behind_our_back_is_noticed_and_restored(loaded: Loaded, sinks: Sinks, drop: str) -> None:
    assert run([pgt(JAN)]).ok  # January v2 in place: both months done
    assert pgt(JAN).complete() and pgt(FEB).complete()
    statement, lost = DROPS[drop]
    sinks.pg(statement.format(s=sinks.schema))
    assert {m for m in (JAN, FEB) if not pgt(m).complete()} == set(lost)
    assert PostgresMonth.bulk_exists([pgt(JAN).output(), pgt(FEB).output()]) == [m not in lost for m in (JAN, FEB)]
    loaded.assert_rerun_exact()
