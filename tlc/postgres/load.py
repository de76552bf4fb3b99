"""One month into PostgreSQL: COPY into a staging table, then swap it in as the month's partition.

The new rows are COPYed into a fresh table outside the parent, counted, and only then
exchanged for the old partition, with the month's marker, all in one transaction. A crash or
a killed connection anywhere before COMMIT leaves the previous month and its marker exactly
as they were; readers never see a half-loaded or doubled month.

* The staging table is created in the loading transaction, so COPY ... FREEZE writes rows
  already frozen and all-visible: no later rewrite of every page for hint bits or freezing.
* A CHECK constraint on ``source_month`` lets ATTACH PARTITION skip its validation scan.
* The staging table has explicit columns, not ``LIKE parent``: LIKE holds a share lock on
  the parent until commit, and two loaders each holding one while waiting for the
  exclusive lock of the swap would deadlock.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import psycopg2
import psycopg2.errors
import pyarrow as pa
import pyarrow.parquet as pq
from psycopg2 import sql

from tlc import phases, schema
from tlc.errors import SinkError
from tlc.identifiers import identifier, month_table_name, table_name
from tlc.month import Month
from tlc.postgres import binary_copy
from tlc.postgres.connection import Connection, first_line, lock_key, rollback_quietly, server_errors
from tlc.postgres.tables import MARKERS, column_defs

Progress = Callable[[float, str], None]  # (fraction done, status line), as in tlc.lake.convert
# A local Parquet, or a factory of fresh readers of one in the lake (each read opens its own).
ParquetSource = Path | Callable[[], BinaryIO]


def open_parquet(source: ParquetSource) -> Path | BinaryIO:
    return source if isinstance(source, Path) else source()


def source_name(source: ParquetSource) -> str:
    return source.name if isinstance(source, Path) else "the lake's Parquet"


COPY_READ_SIZE = 1 << 20  # bytes psycopg2 asks for per read(): fewer Python calls than 8 KB
SWAP_LOCK_TIMEOUT = "60s"  # a long query on the table must not hold a finished load forever
# Another load of the same month (another host) holds the month's lock for as long as its COPY
# takes; a worker whose host vanished without closing its connection holds it until the server's
# keepalives give up. Either way, waiting longer than this is a failure, not patience.
MONTH_LOCK_TIMEOUT = "15min"


@dataclass(frozen=True)
class Load:
    """What to load (the month's canonical Parquet) and what it must turn out to be."""

    month: Month
    parquet: ParquetSource
    rows: int
    parquet_sha256: str


@dataclass(frozen=True)
class _Tables:
    """The month's table names, validated once: the color's parent, its partition, the staging table."""

    schema: str
    parent: str
    final: str
    staging: str

    @classmethod
    def of(cls, schema_name: str, month: Month) -> _Tables:
        schema_name = identifier(schema_name, "postgres schema")
        return cls(schema_name, table_name(month.color), month_table_name(month), month_table_name(month, "_load"))

    def ident(self, name: str) -> sql.Composed:
        return sql.SQL("{}.{}").format(sql.Identifier(self.schema), sql.Identifier(name))


def check_parquet(source: ParquetSource, color: str) -> int:
    """Row count of a Parquet in the color's canonical schema, or a SinkError saying why not.

    COPY takes the columns by position, so a file of another schema version must be
    refused here rather than loaded into the wrong columns.
    """
    name = source_name(source)
    try:
        with pq.ParquetFile(open_parquet(source)) as meta:
            if not meta.schema_arrow.equals(schema.arrow_schema(color), check_metadata=False):
                raise SinkError(f"{name} is not in the {color} schema v{schema.SCHEMA_VERSION}; rebuild it")
            return meta.metadata.num_rows
    except (OSError, pa.ArrowException) as exc:
        raise SinkError(f"cannot read {name}: {first_line(exc)}") from None


def load_month(conn: Connection, schema_name: str, load: Load, progress: Progress | None = None) -> int:
    """Replace the month's partition with the Parquet's rows in one transaction; return the rows."""
    tables = _Tables.of(schema_name, load.month)
    if check_parquet(load.parquet, load.month.color) != load.rows:
        raise SinkError(f"{source_name(load.parquet)} does not hold the {load.rows:,} rows its report says; rebuild it")
    if any(schema.POSTGRES_TYPES[k] != t for k, t in binary_copy.BINARY_TYPES.items()):
        raise SinkError("schema.POSTGRES_TYPES changed: teach the binary COPY encoder in tlc/postgres first")

    def on_rows(rows: int) -> None:
        phases.reached("postgres.copying", rows=rows, expected=load.rows)
        if progress:
            progress(rows / max(load.rows, 1), f"{rows:,} of {load.rows:,} rows copied")

    stream = binary_copy.CopyStream(open_parquet(load.parquet), on_rows)
    caught: list[psycopg2.Error] = []
    committing = False
    try:
        with conn.cursor() as cur:
            copied = _copy(cur, tables, load, stream, caught)
            if progress:
                progress(1.0, f"{copied:,} rows copied; replacing the month")
            _swap(cur, tables, load.month.first_day)
            _mark(cur, tables, load.month, copied, load.parquet_sha256)
        committing = True
        conn.commit()
    except BaseException as exc:
        rollback_quietly(conn)
        # psycopg2 turns an exception raised inside read() into a QueryCanceled "error in
        # .read() call"; the stream kept the original, which says what really went wrong.
        original = stream.error or (caught[-1] if caught else exc)
        error = _load_error(original, load, f"{tables.schema}.{tables.parent}", bool(conn.closed), committing)
        if error is exc:
            raise
        raise error from None
    finally:
        stream.close()
    return copied


def _copy(cur: Any, tables: _Tables, load: Load, stream: binary_copy.CopyStream, caught: list) -> int:
    """Create the staging table in this transaction and COPY the Parquet into it; check the count."""
    # Two loads of the same month (two schedulers) queue here instead of colliding.
    cur.execute(sql.SQL("SET LOCAL lock_timeout = {}").format(sql.Literal(MONTH_LOCK_TIMEOUT)))
    cur.execute(
        "SELECT pg_advisory_xact_lock(%s)", (lock_key("month", tables.schema, load.month.color, load.month.first_day),)
    )
    cur.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(tables.ident(tables.staging)))
    cur.execute(
        sql.SQL("CREATE TABLE {} ({}, CONSTRAINT {} CHECK ({} = %s))").format(
            tables.ident(tables.staging),
            column_defs(load.month.color),
            sql.Identifier(f"{tables.staging}_month"),
            sql.Identifier(schema.SOURCE_MONTH),
        ),
        (load.month.first_day,),
    )
    columns = sql.SQL(", ").join(sql.Identifier(name) for name, _ in schema.postgres_columns(load.month.color))
    statement = sql.SQL("COPY {} ({}) FROM STDIN WITH (FORMAT binary, FREEZE)").format(
        tables.ident(tables.staging), columns
    )
    with server_errors() as errors:
        try:
            cur.copy_expert(statement.as_string(cur), stream, size=COPY_READ_SIZE)
        finally:
            caught.extend(errors)
    copied = cur.rowcount
    if copied != load.rows:
        raise SinkError(f"{load.month.label}: COPY loaded {copied:,} rows, expected {load.rows:,}; nothing replaced")
    return copied


def _swap(cur: Any, tables: _Tables, first_day: Any) -> None:
    """Exchange the month's partition for the staging table (inside the caller's transaction).

    The parent's exclusive lock is taken first and explicitly, so every loader acquires its
    locks in the same order (parent, then the old partition) and waits rather than deadlocks.
    """
    ident = tables.ident
    cur.execute(sql.SQL("SET LOCAL lock_timeout = {}").format(sql.Literal(SWAP_LOCK_TIMEOUT)))
    cur.execute(sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(ident(tables.parent)))
    cur.execute(
        "SELECT EXISTS (SELECT 1 FROM pg_inherits WHERE inhrelid = c.oid)"
        " FROM pg_class c WHERE c.oid = to_regclass(%s)",
        (ident(tables.final).as_string(cur),),
    )
    old = cur.fetchone()
    if old is not None:
        if old[0]:
            cur.execute(sql.SQL("ALTER TABLE {} DETACH PARTITION {}").format(ident(tables.parent), ident(tables.final)))
        cur.execute(sql.SQL("DROP TABLE {}").format(ident(tables.final)))
    cur.execute(sql.SQL("ALTER TABLE {} RENAME TO {}").format(ident(tables.staging), sql.Identifier(tables.final)))
    cur.execute(
        sql.SQL("ALTER TABLE {} ATTACH PARTITION {} FOR VALUES IN (%s)").format(
            ident(tables.parent), ident(tables.final)
        ),
        (first_day,),
    )
    # Redundant once attached (the partition bound says the same); PostgreSQL's docs advise dropping it.
    cur.execute(
        sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(
            ident(tables.final), sql.Identifier(f"{tables.staging}_month")
        )
    )


def _mark(cur: Any, tables: _Tables, month: Month, rows: int, parquet_sha256: str) -> None:
    """Record which Parquet the month now holds, in the swap's transaction."""
    cur.execute(
        sql.SQL(
            "INSERT INTO {} (color, source_month, rows, parquet_sha256, loaded_at)"
            " VALUES (%s, %s, %s, %s, now()) ON CONFLICT (color, source_month) DO UPDATE"
            " SET rows = EXCLUDED.rows, parquet_sha256 = EXCLUDED.parquet_sha256,"
            " loaded_at = EXCLUDED.loaded_at"
        ).format(tables.ident(MARKERS)),
        (month.color, month.first_day, rows, parquet_sha256),
    )


def _load_error(exc: BaseException, load: Load, table: str, lost: bool, committing: bool) -> BaseException:
    """The one-line error to raise for a failed load; unexpected exceptions pass unchanged."""
    label = load.month.label
    if isinstance(exc, psycopg2.errors.LockNotAvailable):
        return SinkError(
            f"{label}: timed out waiting for a lock on {table} (another load of the month, or a long query, "
            "holds it); the month was not replaced"
        )
    if isinstance(exc, psycopg2.Error):
        note = ""
        if lost:  # a COMMIT cut off may or may not have landed; the next complete() will tell
            note = (
                " (connection lost during COMMIT; rerun to check)" if committing else " (connection lost; not replaced)"
            )
        return SinkError(f"PostgreSQL load of {label} into {table} failed: {first_line(exc)}{note}")
    if isinstance(exc, (OSError, pa.ArrowException)):  # from the producer: the Parquet became unreadable
        return SinkError(f"cannot read {source_name(load.parquet)} while loading {label}: {first_line(exc)}")
    return exc
