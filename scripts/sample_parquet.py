"""Deterministic months in the TLC's own Parquet layouts, with each era's and service's drift.

The TLC republished every month since 2009 as Parquet, written by several pandas/pyarrow
versions, so the same column has different Arrow types across the years. The eras below
follow the two real files in ``shared/data/green/tlc-parquet`` (2022-01: pandas-written, gzip,
``VendorID`` int64, codes double, ``ehail_fee`` of type null; 2023-02: zstd, int32 IDs, int64
codes, ``large_string``) and the TLC's data dictionaries for the rest (yellow 2009 and 2010
in their own layouts with GPS coordinates and text codes, ``airport_fee``/``Airport_fee``,
``cbd_congestion_fee`` from 2025, fhv's ``PUlocationID`` as double, fhvhv's 24 columns).
Values come from the CSV generator's model (``scripts.make_sample_data``), chunk by chunk,
so memory stays that of one row group, and the same arguments give the same file.

    python -m scripts.make_sample_data --format parquet --out data/sample --colors fhvhv --months 2024-01
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from scripts import make_sample_data as csvgen
from scripts.sample_fhvhv import fhvhv_rows
from tlc.atomic import atomic_path
from tlc.month import COLORS, FIRST_MONTH, Month

ROW_GROUP_ROWS = 1 << 20  # chunks are gathered into row groups of about a million rows, like the TLC's
I32, I64, F64, STR, LSTR, NULL = pa.int32(), pa.int64(), pa.float64(), pa.string(), pa.large_string(), pa.null()
TS = pa.timestamp("us")
_MONEY = ("fare_amount", "extra", "mta_tax", "tip_amount", "tolls_amount")


@dataclass(frozen=True)
class Era:
    """One layout: each column as the TLC spells it, the generator's value key, its Arrow type."""

    name: str
    columns: tuple[tuple[str, str, pa.DataType], ...]
    compression: str = "zstd"


def _yellow(year: int) -> Era:
    if year == 2009:
        return Era("yellow-2009", _legacy(True), "snappy")
    if year == 2010:
        return Era("yellow-2010", _legacy(False), "snappy")
    new = year >= 2023
    vendor, codes, zone, text = (I32, I64, I32, LSTR) if new else (I64, F64, I64, STR)
    cols = [("VendorID", "vendorid", vendor), ("tpep_pickup_datetime", "pickup_datetime", TS),
            ("tpep_dropoff_datetime", "dropoff_datetime", TS), ("passenger_count", "passenger_count", codes),
            ("trip_distance", "trip_distance", F64), ("RatecodeID", "ratecodeid", codes),
            ("store_and_fwd_flag", "store_and_fwd_flag", text), ("PULocationID", "pulocationid", zone),
            ("DOLocationID", "dolocationid", zone), ("payment_type", "payment_type", I64),
            *((m, m, F64) for m in _MONEY), ("improvement_surcharge", "improvement_surcharge", F64),
            ("total_amount", "total_amount", F64), ("congestion_surcharge", "congestion_surcharge", F64),
            ("Airport_fee" if new else "airport_fee", "airport_fee", F64 if year >= 2021 else NULL)]  # fmt: skip
    if year >= 2025:
        cols.append(("cbd_congestion_fee", "cbd_congestion_fee", F64))
    return Era(f"yellow-{'2023' if new else '2011'}{'-cbd' if year >= 2025 else ''}", tuple(cols), "zstd")


def _legacy(first: bool) -> tuple[tuple[str, str, pa.DataType], ...]:
    """2009 (``vendor_name``, ``Trip_Pickup_DateTime``, ``Start_Lon``, ...) and 2010 (``vendor_id``, ...):
    text timestamps and codes, GPS points instead of zones."""
    names = (
        ("vendor_name", "Trip_Pickup_DateTime", "Trip_Dropoff_DateTime", "Passenger_Count", "Trip_Distance",
         "Start_Lon", "Start_Lat", "Rate_Code", "store_and_forward", "End_Lon", "End_Lat", "Payment_Type",
         "Fare_Amt", "surcharge", "mta_tax", "Tip_Amt", "Tolls_Amt", "Total_Amt")
        if first else
        ("vendor_id", "pickup_datetime", "dropoff_datetime", "passenger_count", "trip_distance",
         "pickup_longitude", "pickup_latitude", "rate_code", "store_and_fwd_flag", "dropoff_longitude",
         "dropoff_latitude", "payment_type", "fare_amount", "surcharge", "mta_tax", "tip_amount", "tolls_amount",
         "total_amount")
    )  # fmt: skip
    keys = ("vendor_name", "pickup_text", "dropoff_text", "passenger_count", "trip_distance", "start_lon",
            "start_lat", "ratecodeid", "store_and_forward", "end_lon", "end_lat", "payment_name", "fare_amount",
            "extra", "mta_tax", "tip_amount", "tolls_amount", "total_amount")  # fmt: skip
    types = (STR, STR, STR, I64, F64, F64, F64, F64 if first else I64, F64 if first else STR, F64, F64, STR,
             *(F64,) * 6)  # fmt: skip
    return tuple(zip(names, keys, types, strict=True))


def _green(year: int) -> Era:
    new = year >= 2023
    vendor, codes, zone, text = (I32, I64, I32, LSTR) if new else (I64, F64, I64, STR)
    cols = [("VendorID", "vendorid", vendor), ("lpep_pickup_datetime", "pickup_datetime", TS),
            ("lpep_dropoff_datetime", "dropoff_datetime", TS), ("store_and_fwd_flag", "store_and_fwd_flag", text),
            ("RatecodeID", "ratecodeid", codes), ("PULocationID", "pulocationid", zone),
            ("DOLocationID", "dolocationid", zone), ("passenger_count", "passenger_count", codes),
            ("trip_distance", "trip_distance", F64), *((m, m, F64) for m in _MONEY),
            ("ehail_fee", "ehail_fee", F64 if new else NULL), ("improvement_surcharge", "improvement_surcharge", F64),
            ("total_amount", "total_amount", F64), ("payment_type", "payment_type", codes),
            ("trip_type", "trip_type", codes), ("congestion_surcharge", "congestion_surcharge", F64)]  # fmt: skip
    if year >= 2025:
        cols.append(("cbd_congestion_fee", "cbd_congestion_fee", F64))
    return Era(f"green-{'2023' if new else '2013'}{'-cbd' if year >= 2025 else ''}", tuple(cols),
               "zstd" if new else "gzip")  # fmt: skip


def _fhv(year: int) -> Era:
    text = LSTR if year >= 2023 else STR
    cols = (("dispatching_base_num", "dispatching_base_num", text), ("pickup_datetime", "pickup_datetime", TS),
            ("dropOff_datetime", "dropoff_datetime", TS), ("PUlocationID", "pulocationid", F64),
            ("DOlocationID", "dolocationid", F64), ("SR_Flag", "sr_flag", NULL if year <= 2016 else F64),
            ("Affiliated_base_number", "affiliated_base_number", text))  # fmt: skip
    return Era(f"fhv-{'2023' if year >= 2023 else '2015'}", cols, "zstd" if year >= 2023 else "snappy")


def _fhvhv(year: int) -> Era:
    text = LSTR if year >= 2023 else STR
    strings = ("hvfhs_license_num", "dispatching_base_num", "originating_base_num")
    times = ("request_datetime", "on_scene_datetime", "pickup_datetime", "dropoff_datetime")
    money = ("base_passenger_fare", "tolls", "bcf", "sales_tax", "congestion_surcharge", "airport_fee", "tips",
             "driver_pay")  # fmt: skip
    flags = ("shared_request_flag", "shared_match_flag", "access_a_ride_flag", "wav_request_flag", "wav_match_flag")
    cols = [*((n, n, text) for n in strings), *((n, n, TS) for n in times), ("PULocationID", "pulocationid", I64),
            ("DOLocationID", "dolocationid", I64), ("trip_miles", "trip_miles", F64), ("trip_time", "trip_time", I64),
            *((n, n, F64) for n in money), *((n, n, text) for n in flags)]  # fmt: skip
    if year >= 2025:
        cols.append(("cbd_congestion_fee", "cbd_congestion_fee", F64))
    return Era(f"fhvhv-{'2023' if year >= 2023 else '2019'}{'-cbd' if year >= 2025 else ''}", tuple(cols))


ERAS = {"yellow": _yellow, "green": _green, "fhv": _fhv, "fhvhv": _fhvhv}


def era(color: str, year: int) -> Era:
    """The layout the TLC's file of that service and year has."""
    if color not in COLORS:
        raise ValueError(f"color {color!r} is not one of {', '.join(COLORS)}")
    return ERAS[color](year)


def parquet_path(out_dir: Path, color: str, year: int, month: int) -> Path:
    """The TLC URL layout under ``out_dir``: ``trip-data/{service}_tripdata_YYYY-MM.parquet``."""
    return Path(out_dir) / "trip-data" / f"{Month(color, year, month, 'parquet').stem}.parquet"


_VENDOR_NAMES = np.array(["CMT", "VTS", "DDS"])
_PAYMENT_NAMES = {  # code -> spellings of 2009 and 2010, with the case drift of the real files
    True: np.array(["", "Credit", "CASH", "No Charge", "Dispute", "Cash", "CREDIT"]),
    False: np.array(["", "CRD", "CAS", "NOC", "DIS", "Cas", "Cre"]),
}


def _legacy_values(rng: np.random.Generator, rows: csvgen.Rows, first: bool) -> None:
    """Text vendors and payments, text timestamps and GPS points, as 2009-2010 had them."""
    n = len(rows.values["vendorid"])
    dds = (rows.values["vendorid"] == 2) & (rng.random(n) < 0.1)
    rows.text["vendor_name"] = pa.array(_VENDOR_NAMES[np.where(dds, 2, rows.values["vendorid"] - 1)])
    code, other = rows.values["payment_type"], rng.random(n) < 0.1  # other spelling: Cash/CASH, Cas/CAS, ...
    spelling = np.where(other & (code == 2), 5, np.where(other & (code == 1), 6, code))
    rows.text["payment_name"] = pa.array(_PAYMENT_NAMES[first][spelling])
    rows.text["pickup_text"] = csvgen._fmt_timestamp(rows.values["pickup_datetime"])
    rows.text["dropoff_text"] = csvgen._fmt_timestamp(rows.values["dropoff_datetime"])
    zero = rng.random(n) < 0.01  # meters without a GPS fix wrote 0, 0
    for key, centre in (("start_lon", -73.98), ("start_lat", 40.75), ("end_lon", -73.97), ("end_lat", 40.76)):
        rows.values[key] = np.where(zero, 0.0, centre + rng.normal(0, 0.03, n))
    rows.nulls["ratecodeid"] = rng.random(n) < 0.97  # Rate_Code is nearly always empty
    forwarded = (rng.random(n) < 0.01).astype(np.int64)
    rows.values["store_and_forward"] = forwarded
    if not first:  # 2010 writes the flag as text
        rows.text["store_and_forward"] = pa.array(np.where(forwarded == 1, "1", "0"))
    rows.nulls["store_and_forward"] = rng.random(n) < 0.9
    rows.nulls["vendorid"] = rows.nulls["payment_type"] = np.zeros(n, dtype=bool)  # no empty-ID tail yet
    rows.nulls.pop("passenger_count", None)


# Values the model keeps in cents or hundredths of a mile.
_CENTS = frozenset({*csvgen._TAXI_MONEY, "trip_distance", "trip_miles", "base_passenger_fare", "tolls", "bcf",
                    "sales_tax", "tips", "driver_pay"})  # fmt: skip


def _array(rows: csvgen.Rows, key: str, t: pa.DataType, n: int) -> pa.Array:
    """One column of a chunk in its era's type, nulls where the model left the value out."""
    null = rows.nulls.get(key)
    if pa.types.is_null(t) or (null is not None and null.all()):
        return pa.nulls(n, t)
    if key in rows.text:
        arr = rows.text[key]
        arr = pc.if_else(pc.equal(arr, ""), pa.scalar(None, arr.type), arr)  # Parquet has nulls, not ""
    elif t == TS:
        arr = pa.array(rows.values[key] * 1_000_000, pa.int64()).cast(TS)
    elif pa.types.is_string(t) or pa.types.is_large_string(t):
        arr = pa.array(np.where(rows.values[key] == 1, "Y", "N"))
    elif key in _CENTS:
        arr = pa.array(rows.values[key] / 100.0)
    else:
        arr = pa.array(rows.values[key])
    if null is not None and null.any():
        arr = pc.if_else(pa.array(null), pa.scalar(None, arr.type), arr)
    return arr.cast(t)


def iter_tables(color: str, year: int, month: int, rows: int, seed: int = 0) -> Iterator[pa.Table]:
    """The month as tables of ``csvgen.CHUNK_ROWS`` rows in its era's layout; deterministic."""
    lay = era(color, year)
    if (year, month) < FIRST_MONTH[color]:
        raise ValueError(f"{color} has no records before {FIRST_MONTH[color][0]}-{FIRST_MONTH[color][1]:02d}")
    key = [seed, COLORS.index(color), year, month, 7]
    plan = csvgen._plan(np.random.default_rng(key), "fhv" if color == "fhvhv" else color, year, month, rows)
    keys = frozenset(k for _, k, _ in lay.columns)
    schema = pa.schema([(name, t) for name, _, t in lay.columns])
    for number, first in enumerate(range(0, rows, csvgen.CHUNK_ROWS)):
        rng = np.random.default_rng([*key, number + 1])
        idx = np.arange(first, min(first + csvgen.CHUNK_ROWS, rows), dtype=np.int64)
        if color == "fhvhv":
            chunk = fhvhv_rows(rng, plan, idx)
        elif color == "fhv":
            chunk = csvgen._fhv_rows(rng, plan, idx)
        else:
            chunk = csvgen._taxi_rows(rng, color, plan, idx, keys)
            if year <= 2010:
                _legacy_values(rng, chunk, year == 2009)
        n = len(idx)
        yield pa.table([_array(chunk, k, t, n) for _, k, t in lay.columns], schema=schema)


def write_parquet_month(out_dir: Path, color: str, year: int, month: int, rows: int, seed: int = 0) -> Path:
    """Write one month atomically at the TLC layout's path; memory is one row group's."""
    lay = era(color, year)
    path = parquet_path(out_dir, color, year, month)
    with atomic_path(path) as tmp:
        writer = pq.ParquetWriter(tmp, pa.schema([(n, t) for n, _, t in lay.columns]), compression=lay.compression)
        with writer:
            pending: list[pa.Table] = []
            for table in iter_tables(color, year, month, rows, seed):
                pending.append(table)
                if sum(t.num_rows for t in pending) >= ROW_GROUP_ROWS:
                    writer.write_table(pa.concat_tables(pending), row_group_size=ROW_GROUP_ROWS)
                    pending = []
            if pending or rows == 0:
                writer.write_table(pa.concat_tables(pending) if pending else writer.schema.empty_table())
    return path
