"""A downloaded month -> the canonical typed Parquet, streamed in bounded memory, with its quality report.

The month's source kind yields its rows block by block (``tlc.sources``: the CSV releases or
the TLC's Parquet, by ``month.source``); every block is cast into the color's canonical schema,
counted, filtered by the cleaning rules in force and handed to a writer that gathers blocks
into row groups, so memory stays flat whatever the size of the month.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from tlc import rules as cleaning
from tlc import schema
from tlc.atomic import atomic_path
from tlc.errors import DataError
from tlc.fingerprint import FingerprintCounter
from tlc.lake.writer import RowGroupWriter
from tlc.month import Month
from tlc.quality import ParquetFacts, QualityCounter, QualityReport
from tlc.sources.kinds import READERS

Progress = Callable[[float, str], None]  # (fraction done, status line)


def canonical_batch(raw: pa.RecordBatch, header: schema.HeaderMap, month: Month) -> pa.RecordBatch:
    """One block of source columns as the canonical columns, lineage included; safe casts only."""
    columns = schema.columns(month.color)
    arrays = []
    for col in columns:
        target = schema.ARROW_TYPES[col.kind]
        if col.name == schema.SOURCE_MONTH:
            arrays.append(pa.repeat(pa.scalar(month.first_day, target), raw.num_rows))
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
        if col.kind == "string" and pc.any(pc.match_substring(arr, "\x00")).as_py():
            # PostgreSQL's text cannot hold NUL: refused here, before any sink, not half-landed after.
            raise DataError(f"column {source!r} holds a NUL character, which PostgreSQL text cannot store")
        arrays.append(arr)
    return pa.RecordBatch.from_arrays(arrays, names=[c.name for c in columns])


def convert_month(
    src: Path, dest: Path, month: Month, rules: cleaning.Rules | None = None, progress: Progress | None = None
) -> QualityReport:
    """Write the month's canonical Parquet to ``dest`` atomically; return its quality report."""
    rules = rules or cleaning.Rules()
    columns = schema.columns(month.color)
    rules.check([c.name for c in columns])
    start, end = (pa.scalar(t, pa.timestamp("us")) for t in month.bounds())
    quality = QualityCounter(
        [c.name for c in columns if c.name != schema.SOURCE_MONTH], [c.name for c in columns if c.money]
    )
    values = FingerprintCounter(month.color)
    with READERS[month.source](src, month.color) as (header, rows, fraction), atomic_path(dest) as tmp:
        # The fingerprint is taken on the encoding thread, a row group at a time, off the parsing's path.
        with RowGroupWriter(tmp, schema.arrow_schema(month.color), observe=values.add) as writer:
            for raw in rows:
                batch = canonical_batch(raw, header, month)
                pickup = batch.column("pickup_datetime")
                out_of_month = pc.fill_null(pc.or_(pc.less(pickup, start), pc.greater_equal(pickup, end)), False)
                quality.observe(batch, out_of_month)
                batch = cleaning.apply(batch, rules, out_of_month, quality.dropped)
                writer.add(batch)
                quality.rows_written += batch.num_rows
                if progress:
                    progress(fraction(), f"{quality.rows_read:,} rows converted")
        if quality.rows_read == 0:
            raise DataError(f"{src.name}: no data rows after the header")
    parquet = ParquetFacts(file=dest.name, size=dest.stat().st_size, **writer.digests())
    return quality.report(
        month, schema.SCHEMA_VERSION, rules.active(), parquet, header.missing_optional, values.result()
    )
