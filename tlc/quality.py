"""The quality report of a month's Parquet: counted while converting, written and read here only.

The report is the evidence of what a month holds (rows read and written, rows dropped per
rule, nulls, out-of-month pickups, negative amounts) and the record every later stage checks
itself against (the Parquet's size and checksums, the source's). It is a typed value, so a
missing or malformed report is ``None`` at the one place it is read, never a ``KeyError``
deep inside a sink.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from tlc.atomic import read_json, write_json
from tlc.month import Month


@dataclass(frozen=True)
class ParquetFacts:
    """The canonical Parquet as written: what GCS (md5) and lineage (sha256) check against."""

    file: str
    size: int
    md5: str
    sha256: str


@dataclass(frozen=True)
class SourceFacts:
    """The downloaded source file the Parquet was made from (the download record's subset)."""

    url: str | None = None
    kind: str | None = None  # the source kind: csv (the DataTalksClub releases) or parquet (the TLC)
    size: int | None = None
    sha256: str | None = None
    etag: str | None = None
    last_modified: str | None = None


@dataclass(frozen=True)
class QualityReport:
    color: str
    year: int
    month: int
    schema_version: int
    rules: dict[str, Any]
    rows_read: int
    rows_written: int
    rows_dropped: dict[str, int]
    nulls: dict[str, int]
    out_of_month_pickups: int
    negative_amounts: dict[str, int]
    negative_amount_rows: int
    pickup_min: str | None
    pickup_max: str | None
    parquet: ParquetFacts
    source: SourceFacts = field(default_factory=SourceFacts)
    missing_optional_columns: list[str] = field(default_factory=list)
    # Per column: non-null count and exact sums / cents / lengths / min-max (tlc.fingerprint);
    # the warehouses are checked against it value by value. Empty in reports made before it existed.
    fingerprint: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def source_rows(self) -> int:
        """Rows of the source the Parquet should hold: read, less those a cleaning rule dropped."""
        return self.rows_read - sum(self.rows_dropped.values())

    def with_source(self, source: SourceFacts) -> QualityReport:
        return replace(self, source=source)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> QualityReport:
        """Raises (KeyError, TypeError, ValueError) on a malformed document; ``read`` turns that into None."""
        fields = dict(doc)
        parquet = ParquetFacts(**fields.pop("parquet"))
        source = SourceFacts(**(fields.pop("source", None) or {}))
        report = cls(parquet=parquet, source=source, **fields)
        if not isinstance(report.rows_written, int) or not isinstance(parquet.size, int):
            raise TypeError("rows_written and parquet.size must be integers")
        return report


def parse(doc: dict[str, Any] | None) -> QualityReport | None:
    """A report from its JSON document; None when it is missing or not a whole report."""
    if not doc:
        return None
    try:
        return QualityReport.from_dict(doc)
    except (KeyError, TypeError, ValueError):
        return None


def read(path: Path) -> QualityReport | None:
    """The report at ``path`` (a local copy); None when it is missing, unreadable or not a whole report."""
    return parse(read_json(path))


def write(path: Path, report: QualityReport) -> None:
    write_json(path, report.to_dict())


class QualityCounter:
    """Counters accumulated batch by batch while a month is converted."""

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

    def report(
        self,
        month: Month,
        schema_version: int,
        rules: dict[str, Any],
        parquet: ParquetFacts,
        missing: list[str],
        fingerprint: dict[str, dict[str, Any]],
    ) -> QualityReport:
        return QualityReport(
            color=month.color,
            year=month.year,
            month=month.month,
            schema_version=schema_version,
            rules=rules,
            rows_read=self.rows_read,
            rows_written=self.rows_written,
            rows_dropped=dict(self.dropped),
            nulls=dict(self.nulls),
            out_of_month_pickups=self.out_of_month,
            negative_amounts=dict(self.negative),
            negative_amount_rows=self.negative_rows,
            pickup_min=self.pickup_min.isoformat() if self.pickup_min else None,
            pickup_max=self.pickup_max.isoformat() if self.pickup_max else None,
            parquet=parquet,
            missing_optional_columns=missing,
            fingerprint=fingerprint,
        )
