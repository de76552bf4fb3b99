"""A downloaded month -> the canonical typed Parquet, streamed in bounded memory, with its quality report.

The month's source kind yields its rows block by block (``tlc.sources``: the CSV releases or
the TLC's Parquet, by ``month.source``); every block is cast into the color's canonical schema,
counted, filtered by the cleaning rules in force and handed to a writer that gathers blocks
into row groups, so memory stays flat whatever the size of the month.

Failures keep to three kinds, so a month can neither get stuck nor be refused for our own
fault: what the reader raises (``tlc.sources``) and what the checks of the rows find is a
``SourceRefused`` (the task moves the download aside); a failed write of our own is a
``LocalWriteError`` (``tlc.lake.writer``) or an ``OSError`` the task names as one; anything
else is a ``ConversionFailed`` naming the month in one line.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from tlc import rules as cleaning
from tlc import schema
from tlc.atomic import atomic_path
from tlc.config import SourceConfig
from tlc.errors import ConversionFailed, DataError, PipelineError, first_line
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
        if col.kind == "float" and pc.any(pc.invert(pc.is_finite(arr))).as_py():
            # No trip has an amount or distance of NaN or infinity: a file that says so is corrupt,
            # and it would make the month's fingerprint (its sums in cents) meaningless.
            raise DataError(f"column {source!r} holds NaN or an infinite value, which no amount or distance can be")
        arrays.append(arr)
    return pa.RecordBatch.from_arrays(arrays, names=[c.name for c in columns])


def convert_month(
    src: Path,
    dest: Path,
    month: Month,
    rules: cleaning.Rules | None = None,
    progress: Progress | None = None,
    max_out_of_month: float | None = None,
) -> QualityReport:
    """Write the month's canonical Parquet to ``dest`` atomically; return its quality report.

    ``max_out_of_month`` defaults to ``[tlc.source] max_out_of_month`` (see ``check_pickups``).
    """
    limit = SourceConfig().out_of_month_limit() if max_out_of_month is None else max_out_of_month
    try:
        return _convert(src, dest, month, rules or cleaning.Rules(), progress, limit)
    except (PipelineError, OSError):  # refused, or a local write the task reports as one
        raise
    except Exception as exc:  # the third kind: one line naming the month, the cause chained
        raise ConversionFailed(
            f"converting {month.label} failed unexpectedly: {type(exc).__name__}: {first_line(exc)}"
        ) from exc


def _convert(
    src: Path, dest: Path, month: Month, rules: cleaning.Rules, progress: Progress | None, max_out_of_month: float
) -> QualityReport:
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
        check_pickups(src.name, month, quality.rows_read, quality.out_of_month, max_out_of_month)
    parquet = ParquetFacts(file=dest.name, size=dest.stat().st_size, **writer.digests())
    return quality.report(
        month, schema.SCHEMA_VERSION, rules.active(), parquet, header.missing_optional, values.result()
    )


# A handful of stray rows in a tiny file proves nothing: the share is judged from this many on.
OUT_OF_MONTH_MIN_ROWS = 100


def check_pickups(name: str, month: Month, rows: int, out_of_month: int, limit: float) -> None:
    """Refuse a file whose pickups mostly lie outside its month: it is probably another month's file.

    Real months hold a few per mille of strays (late-closed trips, clock errors); a file
    published under the wrong name holds almost nothing else. Refused rather than flagged:
    loaded, it would sit in every sink under the wrong ``source_month``.
    """
    if out_of_month >= OUT_OF_MONTH_MIN_ROWS and out_of_month > limit * rows:
        raise DataError(
            f"{name}: {out_of_month:,} of {rows:,} pickups ({out_of_month / rows:.1%}) lie outside {month.key}, "
            f"more than [tlc.source] max_out_of_month = {limit:g} allows: probably another month's file"
        )
