"""CSV.gz month -> typed Parquet, streamed in bounded memory, with a quality report.

The CSV is parsed by pyarrow's streaming reader block by block and every block is written
as one Parquet row group, so memory stays flat whatever the size of the month. Integer
columns are read as float64 first because pandas round-trips wrote IDs as ``1.0``; the
cast to int64 is *safe*, so ``1.5`` or text fails loudly instead of being truncated.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import queue
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from isal import igzip_threaded, isal_zlib

from tasks import rules as cleaning
from tasks import schema
from tasks.atomic import atomic_path
from tasks.errors import CorruptSource, DataError, SchemaMismatch, local_write_error
from tasks.months import month_bounds

# Measured on a 1.37M-row yellow month: 2 MB blocks parse fastest on two cores and keep peak
# memory flat as the month grows (16 MB blocks were 3x slower and grew 1.8x for a 5x month).
BLOCK_SIZE = 2 << 20
# jemalloc returns the blocks' memory to the system sooner than the default mimalloc pool:
# peak RSS 293 MB instead of 350 MB on the same month, at the same speed. It must be the
# process default: the compute kernels and table building allocate from the default pool.
_POOL = pa.jemalloc_memory_pool()
ROW_GROUP_ROWS = 64 * 1024  # blocks are gathered into row groups of this size for readers
Progress = Callable[[float, str], None]  # (fraction done, status line)

# How each kind is parsed from the text before its cast to the canonical type.
_READ_TYPES = {
    "int": pa.float64(),
    "float": pa.float64(),
    "string": pa.string(),
    "timestamp": pa.timestamp("us"),
    "date": pa.date32(),
}


def read_header(src: Path) -> list[str]:
    """The first line of the gzip CSV, BOM and CRLF tolerated."""
    try:
        with igzip_threaded.open(src, "rb") as raw:
            text = io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")
            header = next(csv.reader(text), None)
    except (OSError, EOFError, isal_zlib.error) as exc:
        raise CorruptSource(f"{src.name}: cannot read gzip: {exc}") from None
    except UnicodeDecodeError:
        raise SchemaMismatch(f"{src.name}: header is not UTF-8 text") from None
    if not header or not any(h.strip() for h in header):
        raise DataError(f"{src.name}: file is empty (no header line)")
    return header


class _Quality:
    """Counters accumulated batch by batch; the report is the evidence of what a month holds."""

    def __init__(self, names: list[str], money: list[str]) -> None:
        self.rows_read = 0
        self.rows_written = 0
        self.nulls = dict.fromkeys(names, 0)
        self.negative = dict.fromkeys(money, 0)
        self.negative_rows = 0
        self.out_of_month = 0
        self.pickup_min: dt.datetime | None = None
        self.pickup_max: dt.datetime | None = None
        self.dropped: dict[str, int] = {}

    def observe(self, batch: pa.RecordBatch, out_of_month: pa.Array) -> None:
        self.rows_read += batch.num_rows
        for name in self.nulls:
            self.nulls[name] += batch.column(name).null_count
        any_negative = None
        for name in self.negative:
            neg = pc.fill_null(pc.less(batch.column(name), 0.0), False)
            self.negative[name] += pc.sum(neg).as_py() or 0
            any_negative = neg if any_negative is None else pc.or_(any_negative, neg)
        if any_negative is not None:
            self.negative_rows += pc.sum(any_negative).as_py() or 0
        self.out_of_month += pc.sum(out_of_month).as_py() or 0
        bounds = pc.min_max(batch.column("pickup_datetime")).as_py()
        if bounds["min"] is not None:
            self.pickup_min = min(filter(None, (self.pickup_min, bounds["min"])))
            self.pickup_max = max(filter(None, (self.pickup_max, bounds["max"])))

    def report(self) -> dict[str, Any]:
        return {
            "rows_read": self.rows_read,
            "rows_written": self.rows_written,
            "rows_dropped": self.dropped,
            "nulls": self.nulls,
            "out_of_month_pickups": self.out_of_month,
            "negative_amounts": self.negative,
            "negative_amount_rows": self.negative_rows,
            "pickup_min": self.pickup_min.isoformat() if self.pickup_min else None,
            "pickup_max": self.pickup_max.isoformat() if self.pickup_max else None,
        }


def _canonical_batch(
    raw: pa.RecordBatch, header: schema.HeaderMap, columns: tuple[schema.Column, ...], month_start: dt.date
) -> pa.RecordBatch:
    arrays = []
    for col in columns:
        target = schema.ARROW_TYPES[col.kind]
        if col.name == schema.SOURCE_MONTH:
            arrays.append(pa.repeat(pa.scalar(month_start, target), raw.num_rows))
            continue
        source = header.source_of(col.name)
        if source is None:
            arrays.append(pa.nulls(raw.num_rows, target))
            continue
        arr = raw.column(source)
        if arr.type != target:
            try:
                arr = pc.cast(arr, target, safe=True)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise DataError(f"column {source!r} holds a value that is not {col.kind}: {exc}") from None
        arrays.append(arr)
    return pa.RecordBatch.from_arrays(arrays, names=[c.name for c in columns])


class _HashingFile(io.FileIO):
    """A file that hashes what is written to it, so the Parquet is never read back to hash it."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, "wb")
        self.md5 = hashlib.md5(usedforsecurity=False)
        self.sha256 = hashlib.sha256()

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        written = super().write(view)
        self.md5.update(view[:written])
        self.sha256.update(view[:written])
        return written


class _RowGroupWriter:
    """Gathers blocks into row groups and encodes them on a thread of its own.

    Parquet encoding (zstd) releases the GIL, so it overlaps the parsing of the next CSV
    blocks; the queue holds at most two row groups, which bounds memory. An error on either
    side stops both.
    """

    def __init__(self, path: Path, target: pa.Schema) -> None:
        self._path = path
        try:
            self._file = _HashingFile(path)
            self._writer = pq.ParquetWriter(self._file, target, compression="zstd", compression_level=1)
        except OSError as exc:
            raise self._failed(exc) from None
        self._schema = target
        self._pending: list[pa.RecordBatch] = []
        self._rows = 0
        self._queue: queue.Queue[pa.Table | None] = queue.Queue(maxsize=1)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._drain, name="parquet-writer", daemon=True)
        self._thread.start()

    def _drain(self) -> None:
        while (table := self._queue.get()) is not None:
            if self._error is None:
                try:
                    self._writer.write_table(table)
                except BaseException as exc:  # noqa: BLE001 - handed to the producer thread
                    self._error = self._failed(exc)

    def _failed(self, exc: BaseException) -> BaseException:
        """An OSError of our own output is a local write failure, never the source's fault:
        convert_month reads every OSError that reaches it as a corrupt source."""
        return local_write_error(exc, f"writing {self._path.name}") if isinstance(exc, OSError) else exc

    def _put(self, item: pa.Table | None) -> None:
        if self._error is not None:
            raise self._error
        self._queue.put(item)

    def add(self, batch: pa.RecordBatch) -> None:
        self._pending.append(batch)
        self._rows += batch.num_rows
        if self._rows >= ROW_GROUP_ROWS:
            self._put(pa.Table.from_batches(self._pending, self._schema))
            self._pending, self._rows = [], 0

    def __enter__(self) -> _RowGroupWriter:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        try:
            if exc is None and self._pending:
                self._put(pa.Table.from_batches(self._pending, self._schema))
        finally:
            self._queue.put(None)
            self._thread.join()
            try:
                try:
                    self._writer.close()
                finally:
                    self._file.close()
            except OSError as close_error:
                self._error = self._error or self._failed(close_error)
        if exc is None and self._error is not None:
            raise self._error

    def digests(self) -> dict[str, str]:
        """md5 (what GCS reports) and sha256 (lineage) of the bytes written."""
        return {"md5": self._file.md5.hexdigest(), "sha256": self._file.sha256.hexdigest()}


def file_digests(path: Path) -> dict[str, str]:
    """md5 (what GCS reports) and sha256 (lineage) of a file in one pass."""
    md5, sha = hashlib.md5(usedforsecurity=False), hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            md5.update(chunk)
            sha.update(chunk)
    return {"md5": md5.hexdigest(), "sha256": sha.hexdigest()}


def convert_month(
    src: Path,
    dest: Path,
    color: str,
    year: int,
    month: int,
    rules: cleaning.Rules | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Write the month's canonical Parquet to ``dest`` atomically; return its quality report."""
    pa.set_memory_pool(_POOL)
    rules = rules or cleaning.Rules()
    header = schema.resolve_header(color, read_header(src))
    columns = schema.columns(color)
    rules.check([c.name for c in columns])
    target_schema = schema.arrow_schema(color)
    kinds = {c.name: c.kind for c in columns}
    pairs = zip(header.source, header.canonical, strict=True)
    read_types = {src_name: _READ_TYPES[kinds[name]] for src_name, name in pairs}
    start, end = month_bounds(year, month)
    pa_start, pa_end = pa.scalar(start, pa.timestamp("us")), pa.scalar(end, pa.timestamp("us"))
    quality = _Quality([c.name for c in columns if c.name != schema.SOURCE_MONTH], [c.name for c in columns if c.money])
    total_bytes = src.stat().st_size

    # ISA-L inflates in its own thread (no GIL), overlapping pyarrow's parsing of the last block.
    with open(src, "rb") as compressed, igzip_threaded.open(compressed, "rb") as text, atomic_path(dest) as tmp:
        stream = pa.PythonFile(text, mode="r")
        try:
            reader = pacsv.open_csv(
                stream,
                read_options=pacsv.ReadOptions(column_names=header.source, skip_rows=1, block_size=BLOCK_SIZE),
                convert_options=pacsv.ConvertOptions(
                    column_types=read_types,
                    null_values=[""],
                    strings_can_be_null=True,
                ),  # the default ISO-8601 parser reads "2021-01-01 00:30:10" natively, strptime is slower
            )
            with _RowGroupWriter(tmp, target_schema) as writer:
                for raw in reader:
                    batch = _canonical_batch(raw, header, columns, start.date())
                    pickup = batch.column("pickup_datetime")
                    out_of_month = pc.fill_null(
                        pc.or_(pc.less(pickup, pa_start), pc.greater_equal(pickup, pa_end)), False
                    )
                    quality.observe(batch, out_of_month)
                    batch = cleaning.apply(batch, rules, out_of_month, quality.dropped)
                    writer.add(batch)
                    quality.rows_written += batch.num_rows
                    if progress:
                        progress(compressed.tell() / total_bytes, f"{quality.rows_read:,} rows converted")
        except pa.ArrowInvalid as exc:
            raise DataError(f"{src.name}: {_first_line(exc)}") from None
        except (OSError, EOFError, isal_zlib.error) as exc:  # reading: the writer raises LocalWriteError
            raise CorruptSource(f"{src.name}: {_first_line(exc)}") from None
        if quality.rows_read == 0:
            raise DataError(f"{src.name}: no data rows after the header")
    report = quality.report()
    report.update(
        color=color,
        year=year,
        month=month,
        schema_version=schema.SCHEMA_VERSION,
        rules=rules.active(),
        parquet={"file": dest.name, "size": dest.stat().st_size, **writer.digests()},
        missing_optional_columns=header.missing_optional,
    )
    return report


def parquet_rows(path: Path) -> int:
    """Row count from the footer alone: cheap enough for every ``complete()`` check."""
    return pq.ParquetFile(path).metadata.num_rows


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
