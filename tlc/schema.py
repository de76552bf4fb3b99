"""The canonical, versioned schema of each color and the mapping from every real header.

The TLC files changed their headers over the years (``congestion_surcharge`` from 2019,
``airport_fee``/``Airport_fee`` from 2022, ``cbd_congestion_fee`` in 2025, two FHV layouts,
the 2009-2010 yellow layouts, which ``tlc.sources.legacy_yellow`` maps first).
Every one of them maps onto one schema per color, so the lake, BigQuery and Postgres each
hold one table per color whatever month it came from. Column names are lower snake case so
they work unquoted in both Postgres (which folds case) and BigQuery.

A column is described once, by ``kind``; Arrow, BigQuery and Postgres types derive from it.
Bump ``SCHEMA_VERSION`` whenever a column is added, removed or retyped: it is part of every
lake path, so files of two versions never mix.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pyarrow as pa

from tlc.errors import SchemaMismatch
from tlc.month import validate_color

SCHEMA_VERSION = 1

# Lineage column added by the pipeline: the month of the source file (its first day). Months
# are replaced by this key, never by pickup time, because every file holds stray pickups.
SOURCE_MONTH = "source_month"

ARROW_TYPES: dict[str, pa.DataType] = {
    "int": pa.int64(),
    "float": pa.float64(),
    "string": pa.string(),
    "timestamp": pa.timestamp("us"),
    "date": pa.date32(),
}
# TLC times are New York wall-clock with no zone: DATETIME in BigQuery, timestamp (without
# time zone) in Postgres; labelling them UTC would be a lie.
BIGQUERY_TYPES = {"int": "INT64", "float": "FLOAT64", "string": "STRING", "timestamp": "DATETIME", "date": "DATE"}
POSTGRES_TYPES = {
    "int": "bigint",
    "float": "double precision",
    "string": "text",
    "timestamp": "timestamp",
    "date": "date",
}


@dataclass(frozen=True)
class Column:
    name: str
    kind: str
    aliases: tuple[str, ...] = ()
    optional: bool = False  # absent from some years' headers; null where absent
    money: bool = False  # counted for negative amounts in the quality report

    def source_names(self) -> set[str]:
        """Header spellings that map here, compared case-insensitively."""
        return {n.lower() for n in (self.name, *self.aliases)}


def _money(name: str, optional: bool = False) -> Column:
    return Column(name, "float", optional=optional, money=True)


_TRIP_AMOUNTS = ("fare_amount", "extra", "mta_tax", "tip_amount", "tolls_amount")

YELLOW = (
    Column("vendor_id", "int", ("VendorID",)),
    Column("pickup_datetime", "timestamp", ("tpep_pickup_datetime",)),
    Column("dropoff_datetime", "timestamp", ("tpep_dropoff_datetime",)),
    Column("passenger_count", "int"),
    Column("trip_distance", "float"),
    Column("ratecode_id", "int", ("RatecodeID",)),
    Column("store_and_fwd_flag", "string"),
    Column("pu_location_id", "int", ("PULocationID",)),
    Column("do_location_id", "int", ("DOLocationID",)),
    Column("payment_type", "int"),
    *(_money(n) for n in _TRIP_AMOUNTS),
    _money("improvement_surcharge"),
    _money("total_amount"),
    _money("congestion_surcharge", optional=True),
    _money("airport_fee", optional=True),
    _money("cbd_congestion_fee", optional=True),
)

GREEN = (
    Column("vendor_id", "int", ("VendorID",)),
    Column("pickup_datetime", "timestamp", ("lpep_pickup_datetime",)),
    Column("dropoff_datetime", "timestamp", ("lpep_dropoff_datetime",)),
    Column("store_and_fwd_flag", "string"),
    Column("ratecode_id", "int", ("RatecodeID",)),
    Column("pu_location_id", "int", ("PULocationID",)),
    Column("do_location_id", "int", ("DOLocationID",)),
    Column("passenger_count", "int"),
    Column("trip_distance", "float"),
    *(_money(n) for n in _TRIP_AMOUNTS),
    _money("ehail_fee"),
    _money("improvement_surcharge"),
    _money("total_amount"),
    Column("payment_type", "int"),
    Column("trip_type", "int"),
    _money("congestion_surcharge", optional=True),
    _money("cbd_congestion_fee", optional=True),
)

# DataTalksClub republished FHV with 7 columns (dropOff_datetime, PUlocationID, ...); the TLC
# originals have 6 (no Affiliated_base_number). Case-insensitive matching covers both.
FHV = (
    Column("dispatching_base_num", "string"),
    Column("pickup_datetime", "timestamp"),
    Column("dropoff_datetime", "timestamp"),
    Column("pu_location_id", "int", ("PULocationID",)),
    Column("do_location_id", "int", ("DOLocationID",)),
    Column("sr_flag", "int", ("SR_Flag",)),
    Column("affiliated_base_number", "string", optional=True),
)

# High Volume FHV (Uber, Lyft, Via, Juno), published by the TLC only as Parquet, from 2019-02;
# the names of the TLC's data dictionary, the IDs and timestamps spelled as in the other colors.
FHVHV = (
    Column("hvfhs_license_num", "string"),
    Column("dispatching_base_num", "string"),
    Column("originating_base_num", "string"),
    Column("request_datetime", "timestamp"),
    Column("on_scene_datetime", "timestamp"),
    Column("pickup_datetime", "timestamp"),
    Column("dropoff_datetime", "timestamp"),
    Column("pu_location_id", "int", ("PULocationID",)),
    Column("do_location_id", "int", ("DOLocationID",)),
    Column("trip_miles", "float"),
    Column("trip_time", "int"),  # seconds
    *(_money(n) for n in ("base_passenger_fare", "tolls", "bcf", "sales_tax", "congestion_surcharge")),
    _money("airport_fee", optional=True),
    _money("tips"),
    _money("driver_pay"),
    *(
        Column(f"{n}_flag", "string")
        for n in ("shared_request", "shared_match", "access_a_ride", "wav_request", "wav_match")
    ),
    _money("cbd_congestion_fee", optional=True),
)

COLUMNS: dict[str, tuple[Column, ...]] = {"yellow": YELLOW, "green": GREEN, "fhv": FHV, "fhvhv": FHVHV}
LINEAGE = (Column(SOURCE_MONTH, "date"),)


def columns(color: str) -> tuple[Column, ...]:
    """Every column of a color's canonical table, lineage last."""
    return COLUMNS[validate_color(color)] + LINEAGE


def arrow_schema(color: str) -> pa.Schema:
    meta = {b"tlc.schema_version": str(SCHEMA_VERSION).encode(), b"tlc.color": color.encode()}
    return pa.schema([pa.field(c.name, ARROW_TYPES[c.kind]) for c in columns(color)], metadata=meta)


def bigquery_fields(color: str) -> list[tuple[str, str]]:
    return [(c.name, BIGQUERY_TYPES[c.kind]) for c in columns(color)]


def postgres_columns(color: str) -> list[tuple[str, str]]:
    return [(c.name, POSTGRES_TYPES[c.kind]) for c in columns(color)]


@dataclass
class HeaderMap:
    """How one file's header maps onto the canonical columns."""

    color: str
    source: list[str]  # the header as written
    canonical: list[str]  # canonical name of each source column, same order
    missing_optional: list[str] = field(default_factory=list)  # filled with nulls

    def source_of(self, name: str) -> str | None:
        try:
            return self.source[self.canonical.index(name)]
        except ValueError:
            return None


def resolve_header(color: str, header: list[str]) -> HeaderMap:
    """Map a CSV header onto the color's canonical columns, or say exactly what differs."""
    data_columns = COLUMNS[validate_color(color)]
    by_source = {alias: col for col in data_columns for alias in col.source_names()}
    canonical: list[str] = []
    unexpected: list[str] = []
    for raw in header:
        col = by_source.get(raw.strip().lower())
        if col is None:
            unexpected.append(raw)
        else:
            canonical.append(col.name)
    duplicated = sorted({n for n in canonical if canonical.count(n) > 1})
    missing = [c.name for c in data_columns if not c.optional and c.name not in canonical]
    if unexpected or missing or duplicated:
        parts = []
        if unexpected:
            parts.append(f"unexpected columns {unexpected}")
        if missing:
            parts.append(f"missing columns {missing}")
        if duplicated:
            parts.append(f"duplicated columns {duplicated}")
        raise SchemaMismatch(f"{color} header not recognised: {'; '.join(parts)} (schema v{SCHEMA_VERSION})")
    absent = [c.name for c in data_columns if c.optional and c.name not in canonical]
    return HeaderMap(color, list(header), canonical, absent)
