"""The TLC's own monthly Parquet files: their URL layout, how a download is proven whole, how it is read.

``{base}/{service}_tripdata_{YYYY}-{MM}.parquet`` for yellow, green, fhv and fhvhv, every month
since 2009, about two months after it ends. The files drift across the years in names
(``airport_fee``/``Airport_fee``), in types (IDs int32, int64 or double; codes double or
int64; ``string`` or ``large_string``; ``ehail_fee`` of type null) and, for yellow 2009-2010,
in layout (``tlc.sources.legacy_yellow``). Every source column is checked against what its
canonical kind can be read from before anything is written, so an unknown column or type
fails in one line naming it; the values are then cast *safely* by the conversion, so a code
of ``1.5`` fails loudly rather than becoming 1.

Reading streams page by page (no pre-buffering of whole column chunks), so memory stays flat
whatever the size of the month or of its row groups: an fhvhv month is 20 million rows.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from tlc import layout, schema
from tlc.errors import CorruptSource, SchemaMismatch, first_line
from tlc.month import Month
from tlc.sources import legacy_yellow
from tlc.sources.http import check_base_url
from tlc.sources.reading import read_errors

MAGIC = b"PAR1"
# The footer is verified from the end of the stream kept in memory: real footers are tens of KB.
TAIL_LIMIT = 16 << 20
BATCH_ROWS = 64 * 1024  # one row group of the canonical Parquet per batch
READ_BUFFER = 1 << 20  # per column: pages are read through a buffer this size, never whole chunks


def url(base_url: str, month: Month) -> str:
    """The TLC layout: ``{base}/{service}_tripdata_{YYYY}-{MM}.parquet``."""
    check_base_url(base_url)
    return f"{base_url.rstrip('/')}/{layout.raw_name(month)}"


class ParquetVerifier:
    """Proves, as the bytes stream, that the body is a whole Parquet file.

    The first bytes must be the magic ``PAR1`` (an HTML error page is refused at once), the
    last must be the footer's length and the magic again, the footer must parse, its row
    count must be the sum of its row groups', and every column chunk it points to must lie
    inside the bytes received: a file cut anywhere fails one of these.
    """

    def __init__(self) -> None:
        self._head = b""
        self._tail: deque[bytes] = deque()
        self._tail_bytes = 0
        self.size = 0
        self.rows: int | None = None

    def feed(self, data: bytes) -> None:
        if len(self._head) < len(MAGIC):
            self._head += bytes(data[: len(MAGIC) - len(self._head)])
            if not MAGIC.startswith(self._head):
                hint = ", an HTML page" if self._head.lstrip().startswith(b"<") else ""
                raise CorruptSource(f"not a Parquet file (it starts with {self._head!r}{hint})")
        self.size += len(data)
        self._tail.append(bytes(data))
        self._tail_bytes += len(data)
        while self._tail_bytes - len(self._tail[0]) >= TAIL_LIMIT:
            self._tail_bytes -= len(self._tail.popleft())

    def finish(self) -> None:
        tail = b"".join(self._tail)
        if self.size < 12 or self._head != MAGIC or not tail.endswith(MAGIC):
            raise CorruptSource("Parquet file is truncated (it does not end with its footer)")
        footer_len = int.from_bytes(tail[-8:-4], "little")
        footer_start = self.size - 8 - footer_len
        if footer_start < len(MAGIC):
            raise CorruptSource("Parquet file is truncated (its footer is longer than the file)")
        if footer_len + 8 > len(tail):
            raise CorruptSource(f"Parquet footer of {footer_len:,} bytes is over the {TAIL_LIMIT:,} verified")
        footer = MAGIC + tail[len(tail) - 8 - footer_len :]
        try:
            meta = pq.read_metadata(pa.BufferReader(footer))
            meta.schema.to_arrow_schema()
        except (pa.ArrowException, OSError) as exc:
            raise CorruptSource(f"Parquet footer does not read ({first_line(exc)})") from None
        self.rows = _check_footer(meta, footer_start)


def _check_footer(meta: pq.FileMetaData, footer_start: int) -> int:
    """The footer's row count, once it agrees with its row groups and its chunks lie before it."""
    groups = [meta.row_group(i) for i in range(meta.num_row_groups)]
    if sum(g.num_rows for g in groups) != meta.num_rows:
        raise CorruptSource(f"Parquet footer says {meta.num_rows:,} rows, its row groups hold another count")
    for group in groups:
        for j in range(group.num_columns):
            chunk = group.column(j)
            first = chunk.dictionary_page_offset if chunk.has_dictionary_page else chunk.data_page_offset
            if first is None or first < len(MAGIC) or first + chunk.total_compressed_size > footer_start:
                raise CorruptSource(f"Parquet column chunk {chunk.path_in_schema!r} lies outside the file")
    return meta.num_rows


# What each canonical kind can be read from; anything else is refused by name before any work.
def _readable(kind: str, t: pa.DataType) -> bool:
    if pa.types.is_null(t):
        return True
    if pa.types.is_dictionary(t):
        return kind == "string" and _readable(kind, t.value_type)
    text = pa.types.is_string(t) or pa.types.is_large_string(t)
    number = pa.types.is_integer(t) or pa.types.is_floating(t)
    return {
        "int": number,
        "float": number,
        "string": text,
        "timestamp": text or (pa.types.is_timestamp(t) and t.tz is None),
    }[kind]


def check_types(src: Path, color: str, header: schema.HeaderMap, arrow: pa.Schema, skip: set[str]) -> None:
    """Refuse a source column whose Arrow type cannot hold its canonical column's values."""
    kinds = {c.name: c.kind for c in schema.columns(color)}
    for name, canonical in zip(header.source, header.canonical, strict=True):
        t = arrow.field(name).type
        if name not in skip and not _readable(kinds[canonical], t):
            raise SchemaMismatch(
                f"{src.name}: column {name!r} is of type {t}, which is not read as {kinds[canonical]} "
                f"({color} {canonical}, schema v{schema.SCHEMA_VERSION})"
            )


def _open(src: Path) -> pq.ParquetFile:
    try:
        return pq.ParquetFile(src, pre_buffer=False, buffer_size=READ_BUFFER)
    except (pa.ArrowException, OSError) as exc:
        raise CorruptSource(f"{src.name}: not a readable Parquet file ({first_line(exc)})") from None


@contextmanager
def batches(src: Path, color: str) -> Iterator[tuple[schema.HeaderMap, Iterator[pa.RecordBatch], Callable[[], float]]]:
    """The file's header map, its rows as record batches in source columns, and the fraction read.

    Only the mapped columns are read (the 2009-2010 coordinates are never decoded). Reading
    fewer rows than the footer promised is a corrupt file, not a short month.
    """
    parquet = _open(src)
    names = parquet.schema_arrow.names
    if len(set(names)) != len(names):
        raise SchemaMismatch(f"{src.name}: duplicated column names {sorted({n for n in names if names.count(n) > 1})}")
    legacy = legacy_yellow.layout_of(src, color, names)
    header = legacy.header if legacy else schema.resolve_header(color, names)
    check_types(src, color, header, parquet.schema_arrow, legacy.coded() if legacy else set())
    if legacy:
        legacy.check_types(parquet.schema_arrow)
    total = parquet.metadata.num_rows
    done = [0]

    def rows() -> Iterator[pa.RecordBatch]:
        with read_errors(src):
            for batch in parquet.iter_batches(batch_size=BATCH_ROWS, columns=header.source, use_threads=True):
                done[0] += batch.num_rows
                yield legacy.decode(batch) if legacy else batch
        if done[0] != total:
            raise CorruptSource(f"{src.name}: read {done[0]:,} rows, its footer says {total:,}")

    try:
        yield header, rows(), lambda: done[0] / total if total else 1.0
    finally:
        parquet.close()
