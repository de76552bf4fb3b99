"""The DataTalksClub CSV releases: their URL layout, how a download is proven whole, how it is read.

``{base}/{color}/{color}_tripdata_{YYYY}-{MM}.csv.gz``, 2019-01 to 2021-07: the files the
course's flows read. A download is a gzip stream, checked member by member as it arrives;
reading it streams the CSV in blocks through pyarrow, so memory stays flat whatever the
month's size.

Reading is one side of the conversion's failures: whatever goes wrong while the file is read
(a gzip error, a value pyarrow cannot parse, a header the csv module chokes on, bytes that
are not UTF-8, a timestamp in year 0) leaves here as a ``SourceRefused``, so the month's
download is moved aside and a rerun asks the source again; nothing the reader raises can
leave a month stuck on the same bytes. Only an exhausted machine (``MemoryError``) passes
through as itself.

Integer columns are read as text and parsed by pyarrow's integer parser, never through
float64, so IDs above 2**53 stay exact; the ``1.0`` that pandas round-trips write is
accepted as 1, and ``1.5`` is refused naming the column.
"""

from __future__ import annotations

import csv
import datetime as dt
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from isal import igzip_threaded, isal_zlib

from tlc import layout, schema
from tlc.config import SourceConfig
from tlc.errors import CorruptSource, DataError, SchemaMismatch, first_line
from tlc.month import Month
from tlc.sources.http import check_base_url
from tlc.sources.reading import read_errors

# Measured on a 1.37M-row yellow month: 2 MB blocks parse fastest on two cores and keep peak
# memory flat as the month grows (16 MB blocks were 3x slower and grew 1.8x for a 5x month).
BLOCK_SIZE = 2 << 20

# A header line longer than this is not a TLC header (theirs are about 300 bytes): refused
# before the csv module or an error message has to hold it.
MAX_HEADER_BYTES = 4096

# How each kind is parsed from the text before its cast to the canonical type; integers
# are text here and parsed exactly by ``_integers``.
_READ_TYPES = {
    "int": pa.string(),
    "float": pa.float64(),
    "string": pa.string(),
    "timestamp": pa.timestamp("us"),
    "date": pa.date32(),
}


def url(base_url: str, month: Month) -> str:
    """The release URL layout: ``{base}/{color}/{color}_tripdata_{YYYY}-{MM}.csv.gz``."""
    check_base_url(base_url)
    return f"{base_url.rstrip('/')}/{month.color}/{layout.raw_name(month)}"


# The gzip check inflates at most this much per step, whatever one chunk of input holds, so its
# memory is flat for a gzip bomb as for a month. The inflation ratio is judged from this much
# output on: a small file of few distinct rows may compress very well and be harmless.
INFLATE_STEP = 1 << 20
RATIO_FROM_BYTES = 16 << 20


class GzipVerifier:
    """Decodes a gzip stream incrementally only to prove it is whole; output is counted and discarded.

    A stream that inflates more than ``max_ratio`` times its compressed size (``[tlc.source]
    max_inflation_ratio``; TLC months inflate 4-6x) is refused as it streams: a gzip bomb,
    or a file of one row repeated millions of times, is not a month of trips.
    """

    def __init__(self, max_ratio: float | None = None) -> None:
        self._d = isal_zlib.decompressobj(isal_zlib.MAX_WBITS | 16)
        self._inside_member = False
        self.max_ratio = SourceConfig().inflation_limit() if max_ratio is None else max_ratio
        self.members = 0
        self.compressed = 0
        self.uncompressed = 0

    def feed(self, data: bytes) -> None:
        self.compressed += len(data)
        more = bool(data)
        while more:
            self._inside_member = True
            try:
                out = len(self._d.decompress(data, INFLATE_STEP))
            except isal_zlib.error as exc:
                raise CorruptSource(f"not a valid gzip stream ({exc})") from None
            self._count(out)
            if self._d.eof:  # a multi-member gzip: the rest starts the next member
                self.members += 1
                self._inside_member = False
                data = self._d.unused_data
                self._d = isal_zlib.decompressobj(isal_zlib.MAX_WBITS | 16)
                more = bool(data)
            else:  # input left over, or a full step that may have more output pending
                data = self._d.unconsumed_tail
                more = bool(data) or out == INFLATE_STEP

    def _count(self, inflated: int) -> None:
        self.uncompressed += inflated
        if self.uncompressed > RATIO_FROM_BYTES and self.uncompressed > self.max_ratio * self.compressed:
            raise CorruptSource(
                f"gzip stream inflates more than [tlc.source] max_inflation_ratio = {self.max_ratio:g} times "
                f"({self.compressed:,} bytes became {self.uncompressed:,} so far): a gzip bomb, not a month's CSV"
            )

    def finish(self) -> None:
        if self.members == 0 or self._inside_member:
            raise CorruptSource("gzip stream is truncated (ends before its last block)")


def read_header(src: Path) -> list[str]:
    """The first line of the gzip CSV, BOM and CRLF tolerated; anything unreadable is refused."""
    try:
        with igzip_threaded.open(src, "rb") as raw:
            line = raw.readline(MAX_HEADER_BYTES + 1)
    except (OSError, EOFError, isal_zlib.error) as exc:
        raise CorruptSource(f"{src.name}: cannot read gzip: {exc}") from None
    if len(line) > MAX_HEADER_BYTES:
        raise SchemaMismatch(f"{src.name}: header line is longer than {MAX_HEADER_BYTES} bytes")
    try:
        header = next(csv.reader([line.decode("utf-8-sig").rstrip("\r\n")], strict=True), None)
    except UnicodeDecodeError:
        raise SchemaMismatch(f"{src.name}: header is not UTF-8 text") from None
    except csv.Error as exc:
        raise SchemaMismatch(f"{src.name}: header line is not valid CSV ({exc})") from None
    if not header or not any(h.strip() for h in header):
        raise DataError(f"{src.name}: file is empty (no header line)")
    return header


@contextmanager
def batches(src: Path, color: str) -> Iterator[tuple[schema.HeaderMap, Iterator[pa.RecordBatch], Callable[[], float]]]:
    """The file's header map, its rows as record batches in source columns, and the fraction read.

    ISA-L inflates in its own thread (no GIL), overlapping pyarrow's parsing of the last block.
    Every failure of reading surfaces while iterating as a ``SourceRefused``: ``CorruptSource``
    for the gzip, ``DataError`` for values (see the module's docstring).
    """
    header = schema.resolve_header(color, read_header(src))
    kinds = {c.name: c.kind for c in schema.columns(color)}
    source_kinds = {name: kinds[canonical] for name, canonical in zip(header.source, header.canonical, strict=True)}
    total = src.stat().st_size
    with open(src, "rb") as compressed, igzip_threaded.open(compressed, "rb") as text:
        stream = pa.PythonFile(text, mode="r")

        def rows() -> Iterator[pa.RecordBatch]:
            with read_errors(src):
                reader = pacsv.open_csv(
                    stream,
                    read_options=pacsv.ReadOptions(column_names=header.source, skip_rows=1, block_size=BLOCK_SIZE),
                    # the default ISO-8601 parser reads "2021-01-01 00:30:10" natively; strptime is slower
                    convert_options=pacsv.ConvertOptions(
                        column_types={name: _READ_TYPES[kind] for name, kind in source_kinds.items()},
                        null_values=[""],
                        strings_can_be_null=True,
                    ),
                )
                for batch in reader:
                    yield _typed(batch, source_kinds)

        yield header, rows(), lambda: compressed.tell() / total


# The range every sink can hold: BigQuery's DATETIME and Python's datetime stop at years 1 and
# 9999, and pyarrow's parser accepts year 0, which a quality report could not even print.
# In microseconds since 1970, computed in Python: a pa.scalar of a datetime imports pandas (0.14 s
# of every process that converts a month).
_EPOCH, _MICROSECOND = dt.datetime(1970, 1, 1), dt.timedelta(microseconds=1)
_EARLIEST = (dt.datetime(1, 1, 1) - _EPOCH) // _MICROSECOND
_LATEST = (dt.datetime(9999, 12, 31, 23, 59, 59, 999999) - _EPOCH) // _MICROSECOND


def _typed(batch: pa.RecordBatch, kinds: dict[str, str]) -> pa.RecordBatch:
    """The block with its integer text parsed and its timestamps checked against the sinks' range."""
    arrays = list(batch.columns)
    for i, name in enumerate(batch.schema.names):
        if kinds[name] == "int":
            arrays[i] = _integers(arrays[i], name)
        elif kinds[name] == "timestamp":
            bounds = pc.min_max(arrays[i])
            low, high = bounds["min"].value, bounds["max"].value
            if low is not None and (low < _EARLIEST or high > _LATEST):
                bad = bounds["min"] if low < _EARLIEST else bounds["max"]
                raise DataError(f"column {name!r} holds a timestamp outside years 1-9999: {bad.cast(pa.string())}")
    return pa.RecordBatch.from_arrays(arrays, names=batch.schema.names)


def _integers(text: pa.Array, name: str) -> pa.Array:
    """Integer text as int64, exactly, never rounded: ``1.0`` (pandas round-trips) is 1, ``1.5`` is refused.

    The common cases never fail a cast (a failed one costs milliseconds in pyarrow): text
    without a dot is parsed as integers; text with one goes through ``_integral_decimals``.
    Only ``+1``, ``1.00`` above 2**53 and bad values reach the regex.
    """
    buffers = text.buffers()  # the character data: a superset of the values, one memchr per check
    chars = buffers[2].to_pybytes() if len(buffers) > 2 and buffers[2] is not None else b""
    try:
        return _integral_decimals(text, chars) if b"." in chars else pc.cast(text, pa.int64())
    except pa.ArrowInvalid:
        text = pc.replace_substring_regex(text, r"^(?:\+|(-))?([0-9]+)(?:\.0+)?$", r"\1\2")
    try:
        return pc.cast(text, pa.int64())
    except pa.ArrowInvalid as exc:
        raise DataError(f"column {name!r} holds a value that is not int: {first_line(exc)}") from None


def _integral_decimals(text: pa.Array, chars: bytes) -> pa.Array:
    """``3.0`` as 3: through float64 where that is exact (below 2**53; the safe cast refuses ``3.5``),
    by cutting the ``.0`` off above it, or where the text has letters float64 would read (``1e3``)."""
    if not (b"e" in chars or b"E" in chars or b"n" in chars or b"N" in chars):
        as_float = pc.cast(text, pa.float64())
        if (pc.max(pc.abs(as_float)).as_py() or 0) < 2.0**53:
            return pc.cast(as_float, pa.int64())
    return pc.cast(pc.if_else(pc.ends_with(text, ".0"), pc.utf8_slice_codeunits(text, 0, -2), text), pa.int64())
