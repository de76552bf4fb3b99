"""One month into PostgreSQL: COPY into a staging table, then swap it in as the month's partition.

Each color is one table, ``{schema}.{color}_tripdata``, LIST-partitioned by ``source_month`` so
a month can be replaced as a whole: the new rows are COPYed into a fresh table outside the
parent, counted, and only then exchanged for the old partition, all in one transaction. A
crash or a killed connection anywhere before COMMIT leaves the previous month and its marker
row exactly as they were; readers never see a half-loaded or doubled month.

``load_markers`` records, per color and month, the row count and the sha256 of the Parquet
that was loaded, so ``complete()`` can tell "loaded from this very file" apart from "some rows
are there" in one query.

Why the data path looks the way it does (measured on a 1,369,765-row yellow month, 2 CPUs):

* COPY in binary format: the server parses it in about half the time of CSV (COPY 1.8 s
  against 3.1-3.4 s for the same rows; ``psql \\copy`` of the source CSV takes 2.6-3.0 s).
  Text format was no faster than CSV. The rows are encoded column by column with numpy and
  joined row-wise by one Arrow kernel (~0.9 s a month, on the producer thread), never
  formatted value by value in Python.
* Nulls: binary fields carry their length, -1 for NULL, so NULL and "" cannot be confused,
  timestamps and dates travel as integers (no formatting or parsing) and floats bit-exact.
* A producer thread decodes and encodes the next batch (Arrow's reader and kernels release
  the GIL) while the main thread hands the previous one to libpq, so the client's work overlaps the
  server's. A bounded queue keeps memory flat whatever the size of the month.
* The staging table is created in the loading transaction, so COPY ... FREEZE writes rows
  already frozen and all-visible: no later rewrite of every page for hint bits or freezing.
* A CHECK constraint on ``source_month`` lets ATTACH PARTITION skip its validation scan.

This module does not import luigi: ``tasks/postgres.py`` wires it to the task graph.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import io
import queue
import struct
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import psycopg2
import psycopg2.errors
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from psycopg2 import sql
from psycopg2.extensions import connection as Connection  # noqa: N812 - the type, by its role

from tasks import schema
from tasks.errors import SinkError
from tasks.identifiers import identifier, table_name

Progress = Callable[[float, str], None]  # (fraction done, status line), as in tasks/convert.py

MARKERS = "load_markers"
BATCH_ROWS = 32 * 1024  # rows per COPY chunk (~7 MB binary for yellow); 64k only raised peak RSS
QUEUE_DEPTH = 3  # rendered chunks waiting for libpq; bounds memory together with BATCH_ROWS
COPY_READ_SIZE = 1 << 20  # bytes psycopg2 asks for per read(): fewer Python calls than 8 KB
SWAP_LOCK_TIMEOUT = "60s"  # a long query on the table must not hold a finished load forever

# jemalloc hands freed batches back to the system sooner (as in tasks/convert.py): ~40 MB less
# peak RSS than the default mimalloc pool on a yellow month, at the same speed.
_POOL = pa.jemalloc_memory_pool()
_CANONICAL_TYPES = {"timestamp": "timestamp without time zone"}  # as format_type() spells them


class MonthState(NamedTuple):
    """What the database holds for one month: the marker (None when absent) and the row count."""

    rows: int | None
    parquet_sha256: str | None
    count: int | None  # None when there is no marker (not counted)


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0].strip()


def _where(dsn_parts: dict[str, Any]) -> str:
    return f"{dsn_parts.get('host')}:{dsn_parts.get('port')}/{dsn_parts.get('dbname')}"


def connect(dsn_parts: dict[str, Any]) -> Connection:
    """A psycopg2 connection from ``settings.postgres().dsn_parts()``.

    The password is never passed here: libpq reads PGPASSWORD or ~/.pgpass itself, so it
    cannot end up in a message, a log line or a task id. A refused or failed connection
    becomes a one-line SinkError naming host:port/db and libpq's reason.
    """
    try:
        conn = psycopg2.connect(**dsn_parts, application_name="tlc-luigi", client_encoding="UTF8")
    except psycopg2.OperationalError as exc:
        reason = _first_line(exc).split(" failed: ", 1)[-1].removeprefix("FATAL:").strip()
        hint = "; set PGPASSWORD or ~/.pgpass" if "no password supplied" in reason else ""
        where = f"{_where(dsn_parts)} as {dsn_parts.get('user')}"
        raise SinkError(f"cannot connect to PostgreSQL at {where}: {reason}{hint}") from None
    return conn


@contextlib.contextmanager
def _server_errors() -> Iterator[list[psycopg2.Error]]:
    """Collect the server's error that psycopg2 prints instead of raising during a COPY.

    When the session dies mid-COPY (pg_terminate_backend, a server shutting down), psycopg2
    hands the server's message to ``sys.excepthook`` (a multi-line print to stderr, data row
    included) and raises a bare "invalid socket" (psycopg/psycopg2#1689). Catching it here
    lets the SinkError say why, in one line; anything else goes to the previous hook.
    """
    caught: list[psycopg2.Error] = []
    previous = sys.excepthook

    def hook(kind: type[BaseException], value: BaseException, tb: Any) -> None:
        cause = getattr(value, "__cause__", None)
        if isinstance(cause, psycopg2.Error):
            caught.append(cause)
            return
        previous(kind, value, tb)

    sys.excepthook = hook
    try:
        yield caught
    finally:
        sys.excepthook = previous


def _lock_key(*parts: object) -> int:
    """A stable signed 64-bit advisory-lock key for a name (hash() is salted per process)."""
    digest = hashlib.sha256(":".join(["tlc-luigi", *map(str, parts)]).encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _column_defs(color: str) -> sql.Composed:
    """Explicit column definitions: the lineage column is the partition key, so never NULL."""
    defs = []
    for name, pg_type in schema.postgres_columns(color):
        not_null = " NOT NULL" if name == schema.SOURCE_MONTH else ""
        defs.append(sql.SQL("{} {}" + not_null).format(sql.Identifier(name), sql.SQL(pg_type)))
    return sql.SQL(", ").join(defs)


def _rollback_quietly(conn: Connection) -> None:
    """Roll back if the connection is still there; a dead one has rolled back on the server."""
    if conn.closed:
        return
    with contextlib.suppress(psycopg2.Error):
        conn.rollback()


def ensure_table(conn: Connection, schema_name: str, color: str) -> None:
    """Create the schema, the color's partitioned parent and the marker table when missing.

    Idempotent, and safe when several workers start at once: ``IF NOT EXISTS`` alone races
    (two CREATE SCHEMA IF NOT EXISTS can both try to insert and one fails on a unique
    index), so the DDL runs under a transaction-scoped advisory lock per schema. An existing
    parent whose columns differ from the schema version is refused rather than half-loaded.
    """
    schema_name = identifier(schema_name, "postgres schema")
    parent = table_name(color)
    markers = identifier(MARKERS, "table name")
    statements = [
        sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema_name)),
        sql.SQL("CREATE TABLE IF NOT EXISTS {}.{} ({}) PARTITION BY LIST ({})").format(
            sql.Identifier(schema_name),
            sql.Identifier(parent),
            _column_defs(color),
            sql.Identifier(schema.SOURCE_MONTH),
        ),
        sql.SQL(
            "CREATE TABLE IF NOT EXISTS {}.{} (color text NOT NULL, source_month date NOT NULL,"
            " rows bigint NOT NULL, parquet_sha256 text NOT NULL, loaded_at timestamptz NOT NULL,"
            " PRIMARY KEY (color, source_month))"
        ).format(sql.Identifier(schema_name), sql.Identifier(markers)),
    ]
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (_lock_key("ddl", schema_name),))
            for statement in statements:
                cur.execute(statement)
            cur.execute(
                "SELECT c.relkind, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull"
                " FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid"
                " WHERE c.oid = to_regclass(%s) AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
                (f"{schema_name}.{parent}",),
            )
            found = cur.fetchall()
        conn.commit()
    except psycopg2.Error as exc:
        _rollback_quietly(conn)
        raise SinkError(f"cannot create {schema_name}.{parent} in PostgreSQL: {_first_line(exc)}") from None
    except BaseException:
        _rollback_quietly(conn)
        raise
    expected = [(n, _CANONICAL_TYPES.get(t, t)) for n, t in schema.postgres_columns(color)]
    actual = [(name, pg_type) for _, name, pg_type, _ in found]
    if any(kind != "p" for kind, *_ in found) or actual != expected:
        raise SinkError(
            f"{schema_name}.{parent} exists but is not the partitioned table of schema v{schema.SCHEMA_VERSION} "
            f"(columns {[n for n, _ in actual]}); drop it or set another [tlc.postgres] schema"
        )


class _CopyStream(io.RawIOBase):
    """The Parquet rendered as binary COPY rows, as a read-only file for ``copy_expert``.

    A producer thread reads one batch at a time and renders it; ``readinto`` (called by
    psycopg2 on the loading thread) hands the chunks to libpq in order. Only QUEUE_DEPTH
    chunks exist at once, so memory does not grow with the month. ``on_rows`` is called on
    the loading thread with the rows handed over so far, which keeps luigi's progress
    calls on the task's own thread.
    """

    def __init__(self, path: Path, on_rows: Callable[[int], None] | None = None) -> None:
        super().__init__()
        self._path = path
        self._on_rows = on_rows
        self._queue: queue.Queue[tuple[pa.Buffer | bytes, int] | BaseException | None] = queue.Queue(QUEUE_DEPTH)
        self._stop = threading.Event()
        self._chunk = memoryview(b"")
        self._finished = False
        self.rows = 0
        self.error: BaseException | None = None  # what made readinto fail, kept for the caller
        self._thread = threading.Thread(target=self._produce, name="pgload-copy", daemon=True)
        self._thread.start()

    def readable(self) -> bool:
        return True

    def _produce(self) -> None:
        try:
            if not self._put((_BINARY_HEAD, 0)):
                return
            # One decoding thread and no pre-buffering: the server is the bottleneck anyway, and
            # Arrow's reader threads and buffers cost ~50 MB of peak RSS for nothing.
            reader = pq.ParquetFile(self._path, pre_buffer=False)
            for batch in reader.iter_batches(batch_size=BATCH_ROWS, use_threads=False):
                if not self._put((_render_binary(batch), batch.num_rows)):
                    return
            if not self._put((_BINARY_TAIL, 0)):
                return
            self._put(None)
        except BaseException as exc:  # noqa: BLE001 - handed to the loading thread, raised there
            self._put(exc)

    def _put(self, item: tuple[pa.Buffer | bytes, int] | BaseException | None) -> bool:
        """Queue ``item`` unless the reader has gone away (then the producer just stops)."""
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
            except queue.Full:
                continue
            return True
        return False

    def readinto(self, buffer: Any) -> int:
        try:
            return self._readinto(buffer)
        except BaseException as exc:
            self.error = exc
            raise

    def _readinto(self, buffer: Any) -> int:
        while not len(self._chunk):
            if self._finished:
                return 0
            item = self._queue.get()
            if item is None:
                self._finished = True
                return 0
            if isinstance(item, BaseException):
                self._finished = True
                raise item
            data, rows = item
            self._chunk = memoryview(data)
            self.rows += rows
            if self._on_rows:
                self._on_rows(self.rows)
        n = min(len(buffer), len(self._chunk))
        buffer[:n] = self._chunk[:n]
        self._chunk = self._chunk[n:]
        return n

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self._chunk = memoryview(b"")
        super().close()


# PostgreSQL's binary COPY: a signature, flags and header-extension length, then per row a
# 16-bit field count and per field a 32-bit length (-1 for NULL) and the value in network
# byte order; a field count of -1 ends the data.
_BINARY_HEAD = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
_BINARY_TAIL = struct.pack(">h", -1)
# Built from buffers: pa.scalar() would import pandas (0.2 s of every run's start-up).
_NULL_FIELD = pa.Array.from_buffers(
    pa.binary(), 1, [None, pa.py_buffer(struct.pack("<ii", 0, 4)), pa.py_buffer(struct.pack(">i", -1))]
)[0]
_PG_EPOCH_US = 946_684_800_000_000  # timestamps and dates count from 2000-01-01
_PG_EPOCH_DAYS = 10_957
# The server types the binary encoder writes for each kind; binary COPY does not convert, so
# a retyped column in schema.POSTGRES_TYPES must be taught here first (load_month checks).
_BINARY_TYPES = {
    "int": "bigint",
    "float": "double precision",
    "string": "text",
    "timestamp": "timestamp",
    "date": "date",
}


def _fixed_fields(values: Any, big_endian: str, valid: pa.Array | None) -> pa.Array:
    """Length-prefixed fixed-width fields, one binary value per row, built as one numpy record array."""
    records = np.empty(len(values), dtype=[("length", ">i4"), ("value", big_endian)])
    records["length"] = records.dtype["value"].itemsize
    records["value"] = values
    width = records.dtype.itemsize
    fields = pa.FixedSizeBinaryArray.from_buffers(pa.binary(width), len(values), [None, pa.py_buffer(records)])
    fields = fields.cast(pa.binary())
    return fields if valid is None else pc.if_else(valid, fields, _NULL_FIELD)


def _binary_fields(column: pa.Array) -> pa.Array:
    """One column as binary COPY fields; nulls become length -1, so NULL and "" stay distinct."""
    kind = column.type
    valid = None if column.null_count == 0 else pc.is_valid(column)
    if pa.types.is_string(kind):
        lengths = pc.binary_length(column).fill_null(0).to_numpy().astype(">i4")
        prefix = pa.FixedSizeBinaryArray.from_buffers(pa.binary(4), len(column), [None, pa.py_buffer(lengths)])
        fields = pc.binary_join_element_wise(prefix.cast(pa.binary()), column.cast(pa.binary()).fill_null(b""), b"")
        return fields if valid is None else pc.if_else(valid, fields, _NULL_FIELD)
    if pa.types.is_timestamp(kind) and kind.tz is None:
        micros = column.cast(pa.timestamp("us")).cast(pa.int64()).fill_null(0).to_numpy() - _PG_EPOCH_US
        return _fixed_fields(micros, ">i8", valid)
    if pa.types.is_date32(kind):
        return _fixed_fields(column.cast(pa.int32()).fill_null(0).to_numpy() - _PG_EPOCH_DAYS, ">i4", valid)
    if pa.types.is_int64(kind):
        return _fixed_fields(column.fill_null(0).to_numpy(), ">i8", valid)
    if pa.types.is_float64(kind):
        return _fixed_fields(column.fill_null(0.0).to_numpy(), ">f8", valid)
    raise SinkError(f"binary COPY has no encoding for Arrow type {kind}")


def _render_binary(batch: pa.RecordBatch) -> pa.Buffer:
    """A batch as binary COPY rows: every column's fields joined row by row by one Arrow kernel."""
    count = pa.repeat(pa.scalar(struct.pack(">h", batch.num_columns), pa.binary()), batch.num_rows)
    rows = pc.binary_join_element_wise(count, *map(_binary_fields, batch.columns), b"")
    offsets = np.frombuffer(rows.buffers()[1], np.int32, count=len(rows) + 1, offset=rows.offset * 4)
    return rows.buffers()[2][int(offsets[0]) : int(offsets[-1])]


def check_parquet(path: Path, color: str) -> int:
    """Row count of a Parquet in the color's canonical schema, or a SinkError saying why not.

    COPY takes the columns by position, so a file of another schema version must be
    refused here rather than loaded into the wrong columns.
    """
    try:
        meta = pq.ParquetFile(path)
    except (OSError, pa.ArrowException) as exc:
        raise SinkError(f"cannot read {path.name}: {_first_line(exc)}") from None
    if not meta.schema_arrow.equals(schema.arrow_schema(color), check_metadata=False):
        raise SinkError(f"{path.name} is not in the {color} schema v{schema.SCHEMA_VERSION}; rebuild it")
    return meta.metadata.num_rows


def load_month(
    conn: Connection,
    schema_name: str,
    color: str,
    year: int,
    month: int,
    parquet_path: Path,
    expected_rows: int,
    parquet_sha256: str,
    progress: Progress | None = None,
) -> int:
    """Replace the month's partition with the Parquet's rows in one transaction; return the rows.

    Order inside the transaction: COPY into a fresh staging table (no lock on the parent
    yet, so loads of other months run in parallel), check the count, then lock the parent,
    detach and drop the old partition, rename the staging table, attach it and upsert the
    marker. The staging table is created with explicit columns, not ``LIKE parent``: LIKE
    holds a share lock on the parent until commit, and two loaders each holding one while
    waiting for the exclusive lock of the swap would deadlock.
    """
    schema_name = identifier(schema_name, "postgres schema")
    parent, final, staging = table_name(color), table_name(color, year, month), table_name(color, year, month, "_load")
    first_day = dt.date(year, month, 1)
    label = f"{color} {year}-{month:02d}"
    columns = [name for name, _ in schema.postgres_columns(color)]
    if check_parquet(parquet_path, color) != expected_rows:
        raise SinkError(f"{parquet_path.name} does not hold the {expected_rows:,} rows its report says; rebuild it")

    def ident(name: str) -> sql.Composed:
        return sql.SQL("{}.{}").format(sql.Identifier(schema_name), sql.Identifier(name))

    def on_rows(rows: int) -> None:
        if progress:
            progress(rows / max(expected_rows, 1), f"{rows:,} of {expected_rows:,} rows copied")

    if any(schema.POSTGRES_TYPES[k] != t for k, t in _BINARY_TYPES.items()):
        raise SinkError("schema.POSTGRES_TYPES changed: teach the binary COPY encoder in tasks/pgload.py first")
    pa.set_memory_pool(_POOL)  # the process default: the kernels allocate from it
    stream = _CopyStream(parquet_path, on_rows)
    server_errors: list[psycopg2.Error] = []
    committing = False
    try:
        with conn.cursor() as cur:
            # Two loads of the same month (two schedulers) queue here instead of colliding.
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (_lock_key("month", schema_name, color, first_day),))
            cur.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(ident(staging)))
            cur.execute(
                sql.SQL("CREATE TABLE {} ({}, CONSTRAINT {} CHECK ({} = %s))").format(
                    ident(staging),
                    _column_defs(color),
                    sql.Identifier(f"{staging}_month"),
                    sql.Identifier(schema.SOURCE_MONTH),
                ),
                (first_day,),
            )
            with _server_errors() as server_errors:
                cur.copy_expert(
                    sql.SQL("COPY {} ({}) FROM STDIN WITH (FORMAT binary, FREEZE)")
                    .format(ident(staging), sql.SQL(", ").join(map(sql.Identifier, columns)))
                    .as_string(conn),
                    stream,
                    size=COPY_READ_SIZE,
                )
            copied = cur.rowcount
            if copied != expected_rows:
                raise SinkError(f"{label}: COPY loaded {copied:,} rows, expected {expected_rows:,}; nothing replaced")
            if progress:
                progress(1.0, f"{copied:,} rows copied; replacing the month")
            _swap(cur, ident, parent, final, staging, first_day)
            cur.execute(
                sql.SQL(
                    "INSERT INTO {} (color, source_month, rows, parquet_sha256, loaded_at)"
                    " VALUES (%s, %s, %s, %s, now()) ON CONFLICT (color, source_month) DO UPDATE"
                    " SET rows = EXCLUDED.rows, parquet_sha256 = EXCLUDED.parquet_sha256,"
                    " loaded_at = EXCLUDED.loaded_at"
                ).format(ident(MARKERS)),
                (color, first_day, copied, parquet_sha256),
            )
        committing = True
        conn.commit()
    except BaseException as exc:
        _rollback_quietly(conn)
        # psycopg2 turns an exception raised inside read() into a QueryCanceled "error in
        # .read() call"; the stream kept the original, which says what really went wrong.
        original = stream.error or (server_errors[-1] if server_errors else exc)
        lost = bool(conn.closed)
        error = _load_error(original, label, f"{schema_name}.{parent}", parquet_path, lost, committing)
        if error is exc:
            raise
        raise error from None
    finally:
        stream.close()
    return copied


def _load_error(
    exc: BaseException, label: str, table: str, parquet_path: Path, lost: bool, committing: bool
) -> BaseException:
    """The one-line error to raise for a failed load; unexpected exceptions pass unchanged."""
    if isinstance(exc, psycopg2.errors.LockNotAvailable):
        return SinkError(
            f"{label}: timed out after {SWAP_LOCK_TIMEOUT} waiting for {table} (a long query holds it); "
            "the month was not replaced"
        )
    if isinstance(exc, psycopg2.Error):
        note = ""
        if lost:  # a COMMIT cut off may or may not have landed; the next complete() will tell
            note = (
                " (connection lost during COMMIT; rerun to check)" if committing else " (connection lost; not replaced)"
            )
        return SinkError(f"PostgreSQL load of {label} into {table} failed: {_first_line(exc)}{note}")
    if isinstance(exc, (OSError, pa.ArrowException)):  # from the producer: the Parquet became unreadable
        return SinkError(f"cannot read {parquet_path.name} while loading {label}: {_first_line(exc)}")
    return exc


def _swap(
    cur: Any,
    ident: Callable[[str], sql.Composed],
    parent: str,
    final: str,
    staging: str,
    first_day: dt.date,
) -> None:
    """Exchange the month's partition for the staging table (inside the caller's transaction).

    The parent's exclusive lock is taken first and explicitly, so every loader acquires its
    locks in the same order (parent, then the old partition) and waits rather than deadlocks.
    """
    cur.execute(sql.SQL("SET LOCAL lock_timeout = {}").format(sql.Literal(SWAP_LOCK_TIMEOUT)))
    cur.execute(sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(ident(parent)))
    cur.execute(
        "SELECT EXISTS (SELECT 1 FROM pg_inherits WHERE inhrelid = c.oid)"
        " FROM pg_class c WHERE c.oid = to_regclass(%s)",
        (ident(final).as_string(cur),),
    )
    old = cur.fetchone()
    if old is not None:
        if old[0]:
            cur.execute(sql.SQL("ALTER TABLE {} DETACH PARTITION {}").format(ident(parent), ident(final)))
        cur.execute(sql.SQL("DROP TABLE {}").format(ident(final)))
    cur.execute(sql.SQL("ALTER TABLE {} RENAME TO {}").format(ident(staging), sql.Identifier(final)))
    cur.execute(
        sql.SQL("ALTER TABLE {} ATTACH PARTITION {} FOR VALUES IN (%s)").format(ident(parent), ident(final)),
        (first_day,),
    )
    # Redundant once attached (the partition bound says the same); PostgreSQL's docs advise dropping it.
    cur.execute(sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(ident(final), sql.Identifier(f"{staging}_month")))


def month_states(
    conn: Connection, schema_name: str, color: str, months: list[tuple[int, int]]
) -> dict[tuple[int, int], MonthState] | None:
    """The markers of several months of a color and their row counts, in one round trip.

    Each month's rows are counted through the parent (partition pruning reads only that
    month), and only when it has a marker. None when the schema or the tables do not exist
    yet (nothing was ever loaded there). The transaction is rolled back at once so the
    parent's share lock is not kept while luigi goes on scheduling.
    """
    schema_name = identifier(schema_name, "postgres schema")
    days = [dt.date(year, month, 1) for year, month in months]
    query = sql.SQL(
        "SELECT d.day, m.rows, m.parquet_sha256,"
        " CASE WHEN m.rows IS NOT NULL THEN (SELECT count(*) FROM {}.{} AS t WHERE t.{} = d.day) END"
        " FROM unnest(%s::date[]) AS d(day) LEFT JOIN {}.{} AS m ON m.color = %s AND m.source_month = d.day"
    ).format(
        sql.Identifier(schema_name),
        sql.Identifier(table_name(color)),
        sql.Identifier(schema.SOURCE_MONTH),
        sql.Identifier(schema_name),
        sql.Identifier(MARKERS),
    )
    try:
        with conn.cursor() as cur:
            cur.execute(query, (days, color))
            found = cur.fetchall()
    except (psycopg2.errors.UndefinedTable, psycopg2.errors.InvalidSchemaName):
        return None
    except psycopg2.Error as exc:
        raise SinkError(f"cannot read the {color} load markers in PostgreSQL: {_first_line(exc)}") from None
    finally:
        _rollback_quietly(conn)
    return {(day.year, day.month): MonthState(rows, sha, count) for day, rows, sha, count in found}


def month_state(conn: Connection, schema_name: str, color: str, year: int, month: int) -> MonthState | None:
    """One month's marker (rows, Parquet sha256) and its actual row count; None before any load."""
    states = month_states(conn, schema_name, color, [(year, month)])
    return None if states is None else states[(year, month)]
