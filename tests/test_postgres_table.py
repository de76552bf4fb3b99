"""PostgresTable through luigi against the real throwaway PostgreSQL 15 of the local stack.

One server per module; every test starts from an empty ``tlc`` schema and its own data dir
and loopback source. Months are small (3,000 rows) and ``binary_copy.BATCH_ROWS`` is lowered so
that each load is several COPY chunks: the kill and concurrency tests act in the middle of
a COPY, not before or after it.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import multiprocessing
import time
from collections import Counter
from contextlib import closing
from pathlib import Path
from typing import Any

import psycopg2
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from scripts.make_sample_data import write_month
from scripts.stack.base import free_port
from tasks import (
    ParquetFile,
    PostgresTable,
)
from tests.luigirun import run
from tlc import layout, ledger, phases, schema
from tlc.config import PostgresConfig
from tlc.errors import InvalidInput, SinkError
from tlc.gcs.lake import Lake
from tlc.month import Month
from tlc.postgres import binary_copy
from tlc.postgres.connection import connect
from tlc.postgres.load import Load, load_month
from tlc.postgres.state import month_states
from tlc.postgres.tables import ensure_table
from tlc.postgres.target import PostgresMonth
from tlc.refresh import invalidate

ROWS = 3000
PG_TYPES = {"timestamp": "timestamp without time zone"}  # as information_schema spells it


@pytest.fixture
def pg(pg_server: dict[str, str], pipeline_env: Path, monkeypatch: pytest.MonkeyPatch, cfg: dict) -> dict[str, str]:
    """libpq's variables for this test, an empty ``tlc`` schema and small COPY chunks."""
    for key, value in pg_server.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(binary_copy, "BATCH_ROWS", 500)
    with closing(psycopg2.connect()) as conn, conn.cursor() as cur:
        cur.execute("DROP SCHEMA IF EXISTS tlc CASCADE")
        conn.commit()
    return pg_server


def query(sql: str, params: tuple = ()) -> list[tuple]:
    with closing(psycopg2.connect()) as conn, conn.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchall()


def marker(color: str, year: int, month: int) -> tuple | None:
    found = query(
        "SELECT rows, parquet_sha256, loaded_at FROM tlc.load_markers WHERE color = %s AND source_month = %s",
        (color, dt.date(year, month, 1)),
    )
    return found[0] if found else None


def parquet_of(data: Path, color: str, year: int, month: int) -> Path:
    return layout.lake_path(data, Month(color, year, month))


def parquet_rows(path: Path) -> Counter:
    table = pq.read_table(path)
    return Counter(zip(*(table.column(n).to_pylist() for n in table.column_names), strict=True))


def db_rows(color: str, year: int, month: int) -> Counter:
    names = ", ".join(name for name, _ in schema.postgres_columns(color))
    return Counter(
        query(f"SELECT {names} FROM tlc.{color}_tripdata WHERE source_month = %s", (dt.date(year, month, 1),))
    )


def leftover_staging() -> list[tuple]:
    return query("SELECT tablename FROM pg_tables WHERE schemaname = 'tlc' AND tablename LIKE %s", ("%\\_load",))


def test_months_load_with_the_parquets_types_values_and_nulls(pg: dict, pipeline_env: Path, source_dir: Path) -> None:
    months = [("yellow", 2021, 1), ("fhv", 2021, 1)]
    for m in months:
        write_month(source_dir, *m, rows=ROWS, seed=7)
    result = run([PostgresTable(color=c, year=y, month=m) for c, y, m in months])
    assert result.ok and len(result.ran) == 4 * len(months)  # download, Parquet, publication, load

    for color, year, month in months:
        parquet = parquet_of(pipeline_env, color, year, month)
        table = pq.read_table(parquet)
        expected_types = [(n, PG_TYPES.get(t, t)) for n, t in schema.postgres_columns(color)]
        for name in (f"{color}_tripdata", f"{color}_tripdata_{year}_{month:02d}"):
            columns = query(
                "SELECT column_name, data_type FROM information_schema.columns"
                " WHERE table_schema = 'tlc' AND table_name = %s ORDER BY ordinal_position",
                (name,),
            )
            assert columns == expected_types, name
        bound = query(
            "SELECT pg_get_expr(c.relpartbound, c.oid) FROM pg_class c WHERE c.oid = %s::regclass",
            (f"tlc.{color}_tripdata_{year}_{month:02d}",),
        )
        assert bound == [(f"FOR VALUES IN ('{year}-{month:02d}-01')",)]

        nulls = ", ".join(f"count(*) - count({n})" for n in table.column_names)
        (db_nulls,) = query(
            f"SELECT {nulls} FROM tlc.{color}_tripdata WHERE source_month = %s", (dt.date(year, month, 1),)
        )
        assert list(db_nulls) == [table.column(n).null_count for n in table.column_names]
        assert db_rows(color, year, month) == parquet_rows(parquet)  # every value, as a multiset of rows

        report = ParquetFile(color=color, year=year, month=month).output().report()
        assert table.num_rows == ROWS
        assert marker(color, year, month)[:2] == (ROWS, report.parquet.sha256)
        assert ledger.read(Lake.from_config(), Month(color, year, month))["stages"]["postgres"]["rows"] == ROWS

    yellow = pq.read_table(parquet_of(pipeline_env, "yellow", 2021, 1))
    assert yellow.column("store_and_fwd_flag").null_count > 0  # the null tail really was exercised
    (flags,) = query("SELECT count(*) FILTER (WHERE store_and_fwd_flag = '') FROM tlc.yellow_tripdata")
    assert flags == (0,)  # NULL stayed NULL, not an empty string
    assert leftover_staging() == []


def _comparable(value: Any) -> Any:
    return "NaN" if isinstance(value, float) and math.isnan(value) else value


def test_load_month_round_trips_awkward_values(pg: dict, tmp_path: Path) -> None:
    """Empty string vs NULL, quotes/newlines/backslashes/UTF-8, sub-second and pre-2000
    timestamps, NaN/inf/-0.0 and int64 extremes come back exactly through binary COPY."""
    target = schema.arrow_schema("yellow")
    awkward = {
        "vendor_id": [2**63 - 1, -(2**63) + 1, None, 0, 1],
        "pickup_datetime": [
            dt.datetime(2021, 1, 1, 0, 0, 0, 123456),
            dt.datetime(1999, 12, 31, 23, 59, 59, 999999),
            dt.datetime(1900, 1, 1),
            None,
            dt.datetime(2021, 1, 31, 23, 59, 59),
        ],
        "store_and_fwd_flag": ["", None, 'a,"b"\n\\c\t', "Café ✓", "N"],
        "trip_distance": [float("nan"), float("inf"), -0.0, 1e-300, None],
    }
    repeat = 240  # 1,200 rows: several COPY chunks at the fixture's BATCH_ROWS
    columns = {}
    for field in target:
        values = awkward.get(field.name)
        if field.name == schema.SOURCE_MONTH:
            values = [dt.date(2021, 1, 1)] * 5
        elif values is None:
            values = [None, 1, 2, 3, 4] if pa.types.is_integer(field.type) else [None, 0.5, 1.25, -3.0, 4.0]
        columns[field.name] = pa.array(values * repeat, field.type)
    table = pa.table(columns, schema=target)
    path = tmp_path / "awkward.parquet"
    pq.write_table(table, path)

    conn = connect(PostgresConfig().dsn_parts())
    month = Month("yellow", 2021, 1)
    try:
        ensure_table(conn, "tlc", "yellow")
        assert load_month(conn, "tlc", Load(month, path, table.num_rows, "0" * 64)) == table.num_rows
        assert month_states(conn, "tlc", [month])[month] == (table.num_rows, "0" * 64, table.num_rows)
    finally:
        conn.close()
    expected = Counter(tuple(map(_comparable, row)) for row in parquet_rows(path).elements())
    assert Counter(tuple(map(_comparable, row)) for row in db_rows("yellow", 2021, 1).elements()) == expected
    (flags,) = query(
        "SELECT count(*) FILTER (WHERE store_and_fwd_flag = ''), count(*) - count(store_and_fwd_flag)"
        " FROM tlc.yellow_tripdata"
    )
    assert flags == (repeat, repeat)  # "" stayed "", NULL stayed NULL


def test_rerun_is_a_noop_and_a_forced_reload_has_no_duplicates(pg: dict, pipeline_env: Path, source_dir: Path) -> None:
    write_month(source_dir, "green", 2021, 1, rows=ROWS, seed=7)
    task = PostgresTable(color="green", year=2021, month=1)
    assert run([task]).ok
    first = marker("green", 2021, 1)

    again = run([task])
    assert again.ok and again.ran == set() and task.task_id in again.done_before
    assert marker("green", 2021, 1) == first  # loaded_at too: nothing was written

    query_commit("DELETE FROM tlc.load_markers")
    assert not task.complete()
    forced = run([task])
    assert forced.ok and forced.ran == {task.task_id}
    assert marker("green", 2021, 1)[:2] == first[:2] and marker("green", 2021, 1)[2] > first[2]
    assert db_rows("green", 2021, 1) == parquet_rows(parquet_of(pipeline_env, "green", 2021, 1))
    assert query("SELECT count(*) FROM tlc.green_tripdata") == [(ROWS,)]

    query_commit("DELETE FROM tlc.green_tripdata WHERE ctid IN (SELECT ctid FROM tlc.green_tripdata LIMIT 1)")
    assert not task.complete()  # a row missing from the partition is noticed


def query_commit(sql: str) -> None:
    with closing(psycopg2.connect()) as conn, conn.cursor() as cur:
        cur.execute(sql)
        conn.commit()


def test_connection_killed_mid_copy_keeps_the_previous_month(
    pg: dict, pipeline_env: Path, source_dir: Path, on_phase: Any, caplog: pytest.LogCaptureFixture
) -> None:
    write_month(source_dir, "yellow", 2021, 1, rows=ROWS, seed=7)
    task = PostgresTable(color="yellow", year=2021, month=1)
    assert run([task]).ok
    before, before_rows = marker("yellow", 2021, 1), db_rows("yellow", 2021, 1)

    # A new release of the month: the Parquet changes, so the month must be replaced.
    write_month(source_dir, "yellow", 2021, 1, rows=ROWS + 1000, seed=8)
    invalidate(Lake.from_config(), pipeline_env, Month("yellow", 2021, 1))  # what `tlc.refresh --apply` does
    killed: list[tuple] = []

    def kill_at_half(rows: int, expected: int) -> None:
        if rows / expected >= 0.5 and not killed:
            with closing(psycopg2.connect()) as other, other.cursor() as cur:
                cur.execute(
                    "SELECT p.pid, p.tuples_processed FROM pg_stat_progress_copy p"
                    " JOIN pg_stat_activity a USING (pid) WHERE a.application_name = 'tlc-luigi'"
                )
                pid, copying = cur.fetchone()
                cur.execute("SELECT pg_terminate_backend(%s, 5000)", (pid,))
                killed.append((rows / expected, (copying,), cur.fetchone()[0]))

    on_phase("postgres.copying", kill_at_half)
    with caplog.at_level(logging.ERROR, logger="luigi-interface"):
        failed = run([task])
    assert not failed.ok and failed.failed == {task.task_id}
    (fraction, copying, terminated) = killed[0]
    assert 0.5 <= fraction < 1 and copying is not None and copying[0] > 0 and terminated is True
    errors = [r.getMessage() for r in caplog.records if "PostgreSQL load of yellow 2021-01" in r.getMessage()]
    assert errors and "terminating connection" in errors[0] and "\n" not in errors[0]
    assert pg["PGPASSWORD"] not in caplog.text

    assert marker("yellow", 2021, 1) == before  # marker and rows exactly as before the attempt
    assert db_rows("yellow", 2021, 1) == before_rows
    assert leftover_staging() == []

    phases.clear()
    recovered = run([task])
    assert recovered.ok and recovered.ran == {task.task_id}
    report = ParquetFile(color="yellow", year=2021, month=1).output().report()
    assert marker("yellow", 2021, 1)[:2] == (ROWS + 1000, report.parquet.sha256) != before[:2]
    assert db_rows("yellow", 2021, 1) == parquet_rows(parquet_of(pipeline_env, "yellow", 2021, 1))


def test_two_workers_load_two_months_of_one_table_at_once(
    pg: dict, pipeline_env: Path, source_dir: Path, on_phase: Any
) -> None:
    months = [("yellow", 2021, 2), ("yellow", 2021, 3)]
    for m in months:
        write_month(source_dir, *m, rows=ROWS, seed=7)
    # Both loads wait for each other half-way through their COPY, so the two transactions
    # really overlap, then swap their partitions into the same parent one after the other.
    both_copying = multiprocessing.Barrier(2, timeout=30)
    met: list[int] = []  # per worker process (forked): each meets the other once

    def meet_at_half(rows: int, expected: int) -> None:
        if rows / expected >= 0.5 and not met:
            met.append(both_copying.wait())

    on_phase("postgres.copying", meet_at_half)
    tasks = [PostgresTable(color=c, year=y, month=m) for c, y, m in months]
    targets = [t.output() for t in tasks]
    assert PostgresMonth.bulk_exists(targets) == [False, False]  # no schema yet: not done, no error
    result = run(tasks, workers=2)
    assert result.ok, result.failed
    assert query("SELECT count(*) FROM pg_inherits WHERE inhparent = 'tlc.yellow_tripdata'::regclass") == [(2,)]
    for color, year, month in months:
        assert db_rows(color, year, month) == parquet_rows(parquet_of(pipeline_env, color, year, month))
        assert marker(color, year, month)[0] == ROWS
    assert leftover_staging() == []
    assert PostgresMonth.bulk_exists(targets) == [True, True]  # one query for the color
    query_commit("DELETE FROM tlc.load_markers WHERE source_month = '2021-03-01'")
    assert PostgresMonth.bulk_exists(targets) == [True, False]


def test_a_server_that_is_down_fails_fast_with_one_clear_line(
    pg: dict, pipeline_env: Path, source_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_month(source_dir, "yellow", 2021, 1, rows=ROWS, seed=7)
    assert run([ParquetFile(color="yellow", year=2021, month=1)]).ok
    task = PostgresTable(color="yellow", year=2021, month=1)

    port = free_port()  # nothing listens there
    monkeypatch.setenv("PGPORT", str(port))
    started = time.monotonic()
    with pytest.raises(SinkError) as down:
        task.complete()
    assert time.monotonic() - started < 2.0
    message = str(down.value)
    assert message.startswith(f"cannot connect to PostgreSQL at 127.0.0.1:{port}/tlc as tlc: ")
    assert "refused" in message and "\n" not in message and pg["PGPASSWORD"] not in message
    result = run([task])
    assert not result.ok and result.ran == set()

    monkeypatch.setenv("PGPORT", pg["PGPORT"])
    monkeypatch.setenv("PGPASSWORD", "not-the-password")
    with pytest.raises(SinkError, match='password authentication failed for user "tlc"') as refused:
        task.complete()
    assert "not-the-password" not in str(refused.value) and pg["PGPASSWORD"] not in str(refused.value)


def test_both_ends_of_a_session_notice_a_vanished_peer_within_a_minute(pg: dict) -> None:
    """A host lost mid-COPY must not hold its month's lock for the OS's two hours: the server's
    side of each session probes it (and libpq's side probes the server)."""
    import socket

    with closing(connect(PostgresConfig().dsn_parts())) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT current_setting('tcp_keepalives_idle'), current_setting('tcp_keepalives_interval'),"
            " current_setting('tcp_keepalives_count'), current_setting('tcp_user_timeout'), inet_server_addr()"
        )
        idle, interval, count, user_timeout, server = cur.fetchone()
        client = socket.socket(fileno=conn.fileno())
        try:
            probing = client.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE)
            client_idle = client.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE)
        finally:
            client.detach()  # the socket is libpq's
    assert server is not None  # over TCP, where keepalives apply
    assert (idle, interval, count, user_timeout) == ("30", "10", "3", "60000")
    assert probing and client_idle == 30


def test_a_hostile_schema_name_is_refused_before_any_sql(
    pg: dict, pipeline_env: Path, source_dir: Path, monkeypatch: pytest.MonkeyPatch, cfg: dict
) -> None:
    write_month(source_dir, "yellow", 2021, 1, rows=ROWS, seed=7)
    query_commit("CREATE TABLE IF NOT EXISTS public.x (id int)")
    cfg["tlc.postgres", "schema"] = "tlc; drop table x"
    connections = []
    real_connect = psycopg2.connect
    monkeypatch.setattr(psycopg2, "connect", lambda *a, **k: connections.append(k))
    task = PostgresTable(color="yellow", year=2021, month=1)

    with pytest.raises(InvalidInput, match="postgres schema 'tlc; drop table x' is not valid"):
        task.complete()
    assert not run([task]).ok

    class NoSQL:
        def cursor(self) -> None:
            raise AssertionError("SQL was about to run")

    for call in (
        lambda: ensure_table(NoSQL(), "tlc; drop table x", "yellow"),
        lambda: month_states(NoSQL(), "tlc; drop table x", [Month("yellow", 2021, 1)]),
        lambda: load_month(
            NoSQL(), "tlc; drop table x", Load(Month("yellow", 2021, 1), Path("x.parquet"), 1, "0" * 64)
        ),
    ):
        with pytest.raises(InvalidInput):
            call()
    assert connections == []
    monkeypatch.setattr(psycopg2, "connect", real_connect)
    assert query("SELECT to_regclass('public.x') IS NOT NULL") == [(True,)]


def test_the_fingerprint_postgres_computes_equals_ours_on_half_cent_values(pg: dict, tmp_path: Path) -> None:
    """0.285 x 100 is 28.499999999999996 in a double: every engine must round it the same way (down),
    and halves (0.005, 2.675 x 100 = 267.5) away from zero, or clean months would not reconcile."""
    from tlc.fingerprint import FingerprintCounter, differences
    from tlc.postgres.state import fingerprints

    target = schema.arrow_schema("yellow")
    tricky = [0.285, 2.675, -0.005, 0.005, 1e-300, -1234.565, None]
    columns = {}
    for field in target:
        if field.name == schema.SOURCE_MONTH:
            values = [dt.date(2021, 1, 1)] * len(tricky)
        elif pa.types.is_floating(field.type):
            values = tricky
        elif pa.types.is_integer(field.type):
            values = [2**62, 2**62, -1, 0, 1, None, 7]  # their sum overflows int64: exact anyway
        else:
            values = [None] * len(tricky)
        columns[field.name] = pa.array(values, field.type)
    table = pa.table(columns, schema=target)
    path = tmp_path / "tricky.parquet"
    pq.write_table(table, path)
    month = Month("yellow", 2021, 1)
    conn = connect(PostgresConfig().dsn_parts())
    try:
        ensure_table(conn, "tlc", "yellow")
        load_month(conn, "tlc", Load(month, path, table.num_rows, "0" * 64))
        found = fingerprints(conn, "tlc", "yellow")[month.first_day]
    finally:
        conn.close()
    ours = FingerprintCounter("yellow")
    ours.add(table)
    assert differences(ours.result(), found) == []
    assert ours.result()["fare_amount"]["cents"] == 28 + 268 - 1 + 1 + 0 - 123457
