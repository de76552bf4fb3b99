"""The local PostgreSQL service against a real server: bulk COPY, rollback, stop, reuse.

Runs one throwaway cluster per module (initdb + start is about a second). The tests are
ordered: stopping and restarting come last. Passwords are compared, never printed.
"""

from __future__ import annotations

import csv
import io
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import pytest
import sqlalchemy as sa

from scripts.stack import Stack

ROWS = 100_000


@pytest.fixture(scope="module")
def stack(pg_stack_dir: Path) -> Iterator[Stack]:
    st = Stack(pg_stack_dir)
    try:
        st.up(("postgres",))
        yield st
    finally:
        st.down()


def _env(stack: Stack) -> dict[str, str]:
    return stack.up(("postgres",))  # a no-op while the service is healthy


def _engine(env: dict[str, str]) -> sa.Engine:
    url = sa.URL.create(
        "postgresql+psycopg2",
        username=env["PGUSER"],
        password=env["PGPASSWORD"],
        host=env["PGHOST"],
        port=int(env["PGPORT"]),
        database=env["PGDATABASE"],
    )
    return sa.create_engine(url, pool_pre_ping=True)


def _csv(rows: int) -> io.StringIO:
    """Rows with commas, quotes and NULLs so the CSV quoting is exercised too."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    for i in range(rows):
        note = "" if i % 10 == 0 else f'trip {i}, "quoted"'
        writer.writerow([i, f"2024-01-{i % 28 + 1:02d} {i % 24:02d}:{i % 60:02d}:00", f"{i % 997}.25", note])
    buf.seek(0)
    return buf


def test_env_and_copy_100k_rows(stack: Stack) -> None:
    env = _env(stack)
    assert env["PGHOST"] == "127.0.0.1"
    assert env["PGUSER"] == "tlc"
    assert env["PGDATABASE"] == "tlc"
    assert env["PGPORT"].isdigit()
    assert env["PGPASSWORD"]
    pw_file = Path(stack.dir.root, "postgres", "password")
    assert stat.S_IMODE(pw_file.stat().st_mode) == 0o600

    engine = _engine(env)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("DROP TABLE IF EXISTS trips"))
            conn.execute(
                sa.text(
                    "CREATE TABLE trips (id integer PRIMARY KEY, pickup timestamp NOT NULL,"
                    " fare numeric(8, 2) NOT NULL, note text)"
                )
            )
        raw = engine.raw_connection()
        try:
            with raw.cursor() as cur:
                cur.copy_expert("COPY trips (id, pickup, fare, note) FROM STDIN WITH (FORMAT csv)", _csv(ROWS))
            raw.commit()
        finally:
            raw.close()
        with engine.connect() as conn:
            count, ids, nulls = conn.execute(
                sa.text("SELECT count(*), sum(id), count(*) FILTER (WHERE note IS NULL) FROM trips")
            ).one()
            note = conn.execute(sa.text("SELECT note FROM trips WHERE id = 1")).scalar_one()
    finally:
        engine.dispose()
    assert count == ROWS
    assert ids == ROWS * (ROWS - 1) // 2
    assert nulls == ROWS // 10
    assert note == 'trip 1, "quoted"'


def test_terminated_backend_leaves_no_partial_rows(stack: Stack) -> None:
    engine = _engine(_env(stack))
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("DROP TABLE IF EXISTS partial"))
            conn.execute(sa.text("CREATE TABLE partial (id integer PRIMARY KEY)"))

        victim = engine.connect()
        victim.begin()
        victim.execute(sa.text("INSERT INTO partial SELECT generate_series(1, 5000)"))
        assert victim.execute(sa.text("SELECT count(*) FROM partial")).scalar_one() == 5000
        pid = victim.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()

        with engine.connect() as killer:  # waits up to 5 s for the backend to be gone
            assert killer.execute(sa.text("SELECT pg_terminate_backend(:pid, 5000)"), {"pid": pid}).scalar_one() is True
        with pytest.raises(sa.exc.OperationalError):
            victim.execute(sa.text("INSERT INTO partial VALUES (0)"))
        victim.invalidate()
        victim.close()

        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM partial")).scalar_one() == 0
            gone = conn.execute(
                sa.text("SELECT count(*) FROM pg_stat_activity WHERE pid = :pid"), {"pid": pid}
            ).scalar_one()
        assert gone == 0
    finally:
        engine.dispose()


def test_stopped_server_refuses_connections_quickly(stack: Stack) -> None:
    env = _env(stack)
    data = Path(stack.dir.load_state()["postgres"]["data"])
    stack.down()
    assert not (data / "postmaster.pid").exists()
    assert "database system is shut down" in stack.dir.log("postgres").read_text()

    started = time.monotonic()
    with pytest.raises(psycopg2.OperationalError):
        psycopg2.connect(
            host=env["PGHOST"],
            port=env["PGPORT"],
            user=env["PGUSER"],
            password=env["PGPASSWORD"],
            dbname=env["PGDATABASE"],
            connect_timeout=5,
        )
    elapsed = time.monotonic() - started
    assert elapsed < 1.0, f"refused connection took {elapsed:.2f}s"  # refused, not timed out


def test_up_again_reuses_cluster_and_data(stack: Stack) -> None:
    def identity(env: dict[str, str]) -> int:
        engine = _engine(env)
        try:
            with engine.connect() as conn:
                return conn.execute(sa.text("SELECT system_identifier FROM pg_control_system()")).scalar_one()
        finally:
            engine.dispose()

    before = _env(stack)
    cluster = identity(before)
    stack.down()

    started = time.monotonic()
    after = stack.up(("postgres",))
    restart = time.monotonic() - started
    assert restart < 10.0, f"restart took {restart:.2f}s"
    assert after["PGPASSWORD"] == before["PGPASSWORD"], "password changed"  # no values in the message
    assert identity(after) == cluster  # same cluster, not a fresh initdb

    engine = _engine(after)
    try:
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM trips")).scalar_one() == ROWS
            assert conn.execute(sa.text("SELECT count(*) FROM partial")).scalar_one() == 0
    finally:
        engine.dispose()
