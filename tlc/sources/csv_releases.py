"""The DataTalksClub CSV releases: their URL layout, how a download is proven whole, how it is read.

``{base}/{color}/{color}_tripdata_{YYYY}-{MM}.csv.gz``, 2019-01 to 2021-07: the files the
course's flows read. A download is a gzip stream, checked member by member as it arrives;
reading it streams the CSV in blocks through pyarrow, so memory stays flat whatever the
month's size. Integer columns are parsed as float64 first because pandas round-trips wrote
IDs as ``1.0``; the cast to int64 that follows is *safe*, so ``1.5`` fails loudly.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
from isal import igzip_threaded, isal_zlib

from tlc import layout, schema
from tlc.errors import CorruptSource, DataError, SchemaMismatch
from tlc.month import Month
from tlc.sources.http import check_base_url

# Measured on a 1.37M-row yellow month: 2 MB blocks parse fastest on two cores and keep peak
# memory flat as the month grows (16 MB blocks were 3x slower and grew 1.8x for a 5x month).
BLOCK_SIZE = 2 << 20

# How each kind is parsed from the text before its cast to the canonical type.
_READ_TYPES = {
    "int": pa.float64(),
    "float": pa.float64(),
    "string": pa.string(),
    "timestamp": pa.timestamp("us"),
    "date": pa.date32(),
}


def url(base_url: str, month: Month) -> str:
    """The release URL layout: ``{base}/{color}/{color}_tripdata_{YYYY}-{MM}.csv.gz``."""
    check_base_url(base_url)
    return f"{base_url.rstrip('/')}/{month.color}/{layout.raw_name(month)}"


class GzipVerifier:
    """Decodes a gzip stream incrementally only to prove it is whole; output is discarded."""

    def __init__(self) -> None:
        self._d = isal_zlib.decompressobj(isal_zlib.MAX_WBITS | 16)
        self._inside_member = False
        self.members = 0
        self.uncompressed = 0

    def feed(self, data: bytes) -> None:
        while data:
            self._inside_member = True
            try:
                self.uncompressed += len(self._d.decompress(data))
            except isal_zlib.error as exc:
                raise CorruptSource(f"not a valid gzip stream ({exc})") from None
            if not self._d.eof:
                return
            self.members += 1  # a multi-member gzip: the rest starts the next member
            self._inside_member = False
            data = self._d.unused_data
            self._d = isal_zlib.decompressobj(isal_zlib.MAX_WBITS | 16)

    def finish(self) -> None:
        if self.members == 0 or self._inside_member:
            raise CorruptSource("gzip stream is truncated (ends before its last block)")


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


@contextmanager
def batches(src: Path, color: str) -> Iterator[tuple[schema.HeaderMap, Iterator[pa.RecordBatch], Callable[[], float]]]:
    """The file's header map, its rows as record batches in source columns, and the fraction read.

    ISA-L inflates in its own thread (no GIL), overlapping pyarrow's parsing of the last block.
    Read errors surface while iterating: ``CorruptSource`` for the gzip, ``DataError`` for values.
    """
    header = schema.resolve_header(color, read_header(src))
    kinds = {c.name: c.kind for c in schema.columns(color)}
    read_types = {
        name: _READ_TYPES[kinds[canonical]] for name, canonical in zip(header.source, header.canonical, strict=True)
    }
    total = src.stat().st_size
    with open(src, "rb") as compressed, igzip_threaded.open(compressed, "rb") as text:
        stream = pa.PythonFile(text, mode="r")

        def rows() -> Iterator[pa.RecordBatch]:
            with _read_errors(src):
                yield from pacsv.open_csv(
                    stream,
                    read_options=pacsv.ReadOptions(column_names=header.source, skip_rows=1, block_size=BLOCK_SIZE),
                    # the default ISO-8601 parser reads "2021-01-01 00:30:10" natively; strptime is slower
                    convert_options=pacsv.ConvertOptions(
                        column_types=read_types, null_values=[""], strings_can_be_null=True
                    ),
                )

        yield header, rows(), lambda: compressed.tell() / total


@contextmanager
def _read_errors(src: Path) -> Iterator[None]:
    """A value pyarrow cannot parse is the data's fault; an unreadable stream is the file's."""
    try:
        yield
    except pa.ArrowInvalid as exc:
        raise DataError(f"{src.name}: {_first_line(exc)}") from None
    except (OSError, EOFError, isal_zlib.error) as exc:
        raise CorruptSource(f"{src.name}: {_first_line(exc)}") from None


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
