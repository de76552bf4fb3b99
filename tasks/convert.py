"""CSV.gz month -> typed Parquet, streamed in bounded memory, with a quality report.

The CSV is parsed by pyarrow's streaming reader block by block and every block is written
as one Parquet row group, so memory stays flat whatever the size of the month. Integer
columns are read as float64 first because pandas round-trips wrote IDs as ``1.0``; the
cast to int64 is *safe*, so ``1.5`` or text fails loudly instead of being truncated.
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import hashlib
import io
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from tasks import rules as cleaning
from tasks import schema
from tasks.atomic import atomic_path
from tasks.errors import CorruptSource, DataError, SchemaMismatch
from tasks.months import month_bounds

BLOCK_SIZE = 16 << 20  # CSV bytes per block, so about 130k yellow rows per row group
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
        with gzip.open(src, "rb") as raw:
            text = io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")
            header = next(csv.reader(text), None)
    except (OSError, EOFError, zlib.error) as exc:
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

    with open(src, "rb") as compressed, atomic_path(dest) as tmp:
        stream = pa.CompressedInputStream(compressed, "gzip")
        try:
            reader = pacsv.open_csv(
                stream,
                read_options=pacsv.ReadOptions(column_names=header.source, skip_rows=1, block_size=BLOCK_SIZE),
                convert_options=pacsv.ConvertOptions(
                    column_types=read_types,
                    null_values=[""],
                    strings_can_be_null=True,
                    timestamp_parsers=["%Y-%m-%d %H:%M:%S", pacsv.ISO8601],
                ),
            )
            with pq.ParquetWriter(tmp, target_schema, compression="snappy") as writer:
                for raw in reader:
                    batch = _canonical_batch(raw, header, columns, start.date())
                    pickup = batch.column("pickup_datetime")
                    out_of_month = pc.fill_null(
                        pc.or_(pc.less(pickup, pa_start), pc.greater_equal(pickup, pa_end)), False
                    )
                    quality.observe(batch, out_of_month)
                    batch = cleaning.apply(batch, rules, out_of_month, quality.dropped)
                    writer.write_batch(batch)
                    quality.rows_written += batch.num_rows
                    if progress:
                        progress(compressed.tell() / total_bytes, f"{quality.rows_read:,} rows converted")
        except pa.ArrowInvalid as exc:
            raise DataError(f"{src.name}: {_first_line(exc)}") from None
        except (OSError, EOFError) as exc:
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
        parquet={"file": dest.name, "size": dest.stat().st_size, **file_digests(dest)},
        missing_optional_columns=header.missing_optional,
    )
    return report


def parquet_rows(path: Path) -> int:
    """Row count from the footer alone: cheap enough for every ``complete()`` check."""
    return pq.ParquetFile(path).metadata.num_rows


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
