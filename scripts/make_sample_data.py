"""Deterministic NYC TLC trip months in the exact DataTalksClub CSV.gz layouts.

Fixtures and benchmarks need files that break a loader the way the real releases do (blank line
after the 2018 header, empty-ID rows at the end of a month, refunds, stray 2008 pickups, ``.20``
distances, ``1.0`` integers) without shipping gigabytes of real data. Everything is generated
with numpy and formatted with pyarrow string kernels in fixed-size chunks appended to one gzip
stream, so a 7.7M-row month costs the memory of one chunk and the same arguments always give
byte-identical files (gzip mtime 0, no file name in the header; same numpy version).

    python -m scripts.make_sample_data --out data/sample --colors yellow --months 2021-01 --rows 1369765

The traits below were checked against the real excerpts in ``shared/data`` (yellow 2019-01 and
2021-01, green 2019-01, fhv 2019-01/06); their sizes are module constants so a test can tune them.
"""

from __future__ import annotations

import argparse
import gzip
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from tlc.atomic import atomic_path
from tlc.errors import InvalidInput
from tlc.layout import raw_name
from tlc.month import COLORS, Month, parse_colors, parse_span, parse_year_month

DEFAULT_ROWS = 5_000
CHUNK_ROWS = 100_000  # bounds memory: one chunk of columns and text is alive at a time
# Measured on 2 CPUs for 1.37M yellow rows: levels 1-5 all take ~3 s because a thread compresses one
# chunk while the next is generated; 6 doubles that. 5 gives 28 MB (the real month is ~21 MB).
GZIP_LEVEL = 5

# Pickups outside the month (real files: 2020-12-31 rows in 2021-01, 2018-11 in 2019-01, 2008/2009).
PREV_MONTH_FRACTION = 0.0007
NEXT_MONTH_FRACTION = 0.00025
ANCIENT_FRACTION = 0.00005  # 2008-12-31 / 2009-01-01, the classic bad-clock rows
REFUND_FRACTION = 0.01  # negative fare/extra/mta/surcharges/total (0.9% in the 2021-01 head)
NULL_TAIL_FROM = (2019, 7)  # months from here end with rows whose IDs/flags are all empty
NULL_TAIL_FRACTION = 0.05  # real 2020 months: 0.5-15%
ZERO_PASSENGER_FRACTION = 0.02  # 2.1% in the 2021-01 head
STORE_AND_FWD_Y_FRACTION = 0.017  # only vendor 1 sends Y, as in the real data
LONG_TRIP_FRACTION = 0.0005  # 12-24 h "trips" (meter left running)
CONGESTION_FROM = (2019, 2)  # the surcharge started 2019-02-01; 2019-01 has the column but empty
# Number style: the yellow/green CSVs up to 2021 are the TLC's own exports (plain ints, ``.20``,
# ``8``); a CSV of 2022+ can only come from the parquet releases through pandas, which writes the
# nullable integer columns as ``1.0``, money as ``8.0`` and distances as ``0.2``.
PANDAS_STYLE_FROM = (2022, 1)
FHV_EMPTY_PU_FRACTION = 0.25
FHV_EMPTY_DO_FRACTION = 0.10
FHV_SR_FLAG_FRACTION = 0.02
FHV_EMPTY_AFFILIATED_FRACTION = 0.05
FHV_OTHER_AFFILIATED_FRACTION = 0.10
FHV_MINUTE_ONLY_FRACTION = 0.40  # many bases report whole minutes (``00:30:00``)
FHV_NEXT_DAY_FRACTION = 0.02  # dropoff one day late, a real base-reporting glitch

STYLES = ("auto", "tlc", "pandas")

_TAXI_MONEY = (
    "fare_amount",
    "extra",
    "mta_tax",
    "tip_amount",
    "tolls_amount",
    "improvement_surcharge",
    "total_amount",
    "congestion_surcharge",
    "airport_fee",
    "cbd_congestion_fee",
    "ehail_fee",
)


@dataclass(frozen=True)
class Layout:
    """One real header variant; ``columns`` is the header line, verbatim."""

    name: str
    color: str
    columns: tuple[str, ...]
    blank_after_header: bool = False
    eol: str = "\n"

    @property
    def header(self) -> str:
        return ",".join(self.columns)


def _split(header: str) -> tuple[str, ...]:
    return tuple(header.split(","))


_YELLOW_2018 = _split(
    "VendorID,tpep_pickup_datetime,tpep_dropoff_datetime,passenger_count,trip_distance,RatecodeID,"
    "store_and_fwd_flag,PULocationID,DOLocationID,payment_type,fare_amount,extra,mta_tax,tip_amount,"
    "tolls_amount,improvement_surcharge,total_amount"
)
_GREEN_2018 = _split(
    "VendorID,lpep_pickup_datetime,lpep_dropoff_datetime,store_and_fwd_flag,RatecodeID,PULocationID,"
    "DOLocationID,passenger_count,trip_distance,fare_amount,extra,mta_tax,tip_amount,tolls_amount,"
    "ehail_fee,improvement_surcharge,total_amount,payment_type,trip_type"
)
_CS = "congestion_surcharge"

LAYOUTS: dict[str, Layout] = {
    lay.name: lay
    for lay in (
        Layout("yellow-2018", "yellow", (*_YELLOW_2018,), blank_after_header=True),
        Layout("yellow-2019", "yellow", (*_YELLOW_2018, _CS)),
        Layout("yellow-2022", "yellow", (*_YELLOW_2018, _CS, "airport_fee")),
        Layout("yellow-2023", "yellow", (*_YELLOW_2018, _CS, "Airport_fee")),
        Layout("yellow-2025", "yellow", (*_YELLOW_2018, _CS, "Airport_fee", "cbd_congestion_fee")),
        # Green 2018 mirrors yellow 2018 (no congestion column, blank line): an assumption, no sample.
        Layout("green-2018", "green", (*_GREEN_2018,), blank_after_header=True),
        Layout("green-2019", "green", (*_GREEN_2018, _CS)),
        Layout("green-2025", "green", (*_GREEN_2018, _CS, "cbd_congestion_fee")),
        Layout(
            "fhv-dtc",
            "fhv",
            (
                "dispatching_base_num",
                "pickup_datetime",
                "dropOff_datetime",
                "PUlocationID",
                "DOlocationID",
                "SR_Flag",
                "Affiliated_base_number",
            ),
        ),
        Layout(
            "fhv-tlc",
            "fhv",
            ("dispatching_base_num", "pickup_datetime", "dropoff_datetime", "PULocationID", "DOLocationID", "SR_Flag"),
            eol="\r\n",
        ),
    )
}


def auto_layout(color: str, year: int) -> Layout:
    """The header the real release of that month carries."""
    if color == "yellow":
        name = (
            "yellow-2018"
            if year <= 2018
            else "yellow-2019"
            if year <= 2021
            else "yellow-2022"
            if year == 2022
            else "yellow-2023"
            if year <= 2024
            else "yellow-2025"
        )
    elif color == "green":
        name = "green-2018" if year <= 2018 else "green-2019" if year <= 2024 else "green-2025"
    elif color == "fhv":
        name = "fhv-dtc"
    else:
        raise ValueError(f"color {color!r} is not one of {', '.join(COLORS)}")
    return LAYOUTS[name]


def resolve_layout(color: str, year: int, layout: str | None) -> Layout:
    if layout in (None, "", "auto"):
        return auto_layout(color, year)
    if layout not in LAYOUTS:
        raise ValueError(f"layout {layout!r} is not one of auto, {', '.join(LAYOUTS)}")
    chosen = LAYOUTS[layout]
    if chosen.color != color:
        raise ValueError(f"layout {layout!r} is a {chosen.color} layout, not {color}")
    return chosen


def _column_key(header_name: str) -> str:
    """Fold the spellings of one field (``PUlocationID``/``PULocationID``, ``tpep_``/``lpep_``)."""
    return header_name.lower().removeprefix("tpep_").removeprefix("lpep_")


# ---------------------------------------------------------------- sampling tables

# Dense tables read better as tables.
# fmt: off
_HOUR_WEIGHTS = np.array([0.55, 0.4, 0.3, 0.2, 0.15, 0.2, 0.45, 0.75, 0.9, 0.9, 0.9, 0.95,
                          1.0, 1.0, 1.05, 1.05, 1.0, 1.1, 1.2, 1.15, 1.0, 0.95, 0.9, 0.75])
_DOW_WEIGHTS = np.array([0.9, 0.95, 1.0, 1.05, 1.1, 1.05, 0.85])  # Monday first

# Relative pickup popularity of the busiest zones (from the 2021-01 yellow and 2019-01 green heads).
_YELLOW_HOT = {132: 4.2, 186: 4.1, 48: 3.9, 239: 3.8, 237: 3.7, 142: 3.4, 236: 3.3, 238: 3.1, 263: 3.1,
               141: 3.0, 230: 2.6, 138: 2.6, 161: 2.5, 162: 2.4, 170: 2.4, 234: 2.3, 68: 2.2, 79: 2.1,
               249: 2.0, 107: 1.9, 164: 1.8, 140: 1.8, 229: 1.6, 100: 1.6, 43: 1.5, 113: 1.5, 90: 1.5,
               233: 1.4, 246: 1.4, 151: 1.3, 137: 1.3, 75: 1.3, 74: 1.2, 163: 1.2, 264: 1.0, 231: 1.0,
               143: 1.0, 166: 1.0, 114: 0.9, 144: 0.9, 50: 0.9, 262: 0.9, 24: 0.8, 41: 0.8, 158: 0.8,
               125: 0.8, 148: 0.8, 211: 0.7, 87: 0.7, 261: 0.7, 13: 0.7, 209: 0.5, 4: 0.5, 88: 0.5,
               45: 0.4, 42: 0.4, 7: 0.3, 152: 0.3, 116: 0.3, 244: 0.3, 255: 0.3, 265: 0.2, 1: 0.15}
_GREEN_HOT = {74: 5.0, 75: 4.5, 41: 4.0, 42: 3.0, 166: 2.5, 82: 2.5, 7: 2.2, 95: 2.2, 97: 1.8, 129: 1.8,
              244: 1.7, 43: 1.5, 65: 1.5, 25: 1.4, 255: 1.4, 260: 1.3, 181: 1.2, 116: 1.2, 152: 1.1,
              49: 1.0, 61: 1.0, 33: 1.0, 56: 0.9, 134: 0.8, 223: 0.8, 226: 0.8, 17: 0.8, 256: 0.8,
              92: 0.7, 69: 0.7, 168: 0.7, 189: 0.6, 247: 0.6, 159: 0.6, 146: 0.6, 235: 0.5, 264: 0.5}
_FHV_HOT = {264: 8.0, 61: 1.5, 76: 1.3, 39: 1.2, 37: 1.1, 89: 1.1, 188: 1.0, 17: 1.0, 225: 1.0, 36: 0.9,
            35: 0.9, 7: 0.8, 42: 0.8, 72: 0.8, 26: 0.8, 71: 0.7, 177: 0.7, 91: 0.7, 155: 0.6, 63: 0.6,
            132: 0.6, 138: 0.6, 79: 0.5, 48: 0.5, 230: 0.5, 161: 0.5, 170: 0.5, 265: 0.5}
# fmt: on
_HOT = {"yellow": (_YELLOW_HOT, 0.03), "green": (_GREEN_HOT, 0.05), "fhv": (_FHV_HOT, 0.25)}


def _cdf(weights: Sequence[float] | np.ndarray) -> np.ndarray:
    w = np.asarray(weights, dtype=np.float64)
    c = np.cumsum(w)
    return c / c[-1]


def _pick(rng: np.random.Generator, values: Sequence[int] | np.ndarray, cdf: np.ndarray, n: int) -> np.ndarray:
    """Weighted draw; searchsorted on a cached CDF is several times faster than rng.choice(p=)."""
    return np.asarray(values)[np.searchsorted(cdf, rng.random(n), side="right").clip(max=len(cdf) - 1)]


@cache
def _zone_cdfs(color: str) -> tuple[np.ndarray, np.ndarray]:
    """Pickup and dropoff CDFs over zones 1..265 (fixed, so every month has the same hot spots)."""
    hot, base = _HOT[color]
    w = base * np.random.default_rng(265).gamma(2.0, 0.5, 265)
    for zone, weight in hot.items():
        w[zone - 1] = weight
    return _cdf(w), _cdf(w**0.8 + base)


@cache
def _base_numbers() -> tuple[np.ndarray, np.ndarray]:
    """~700 active FHV bases out of B00001..B03000 with a long-tailed trip share."""
    rng = np.random.default_rng(3000)
    bases = np.sort(rng.choice(np.arange(1, 3001), 700, replace=False))
    names = np.array([f"B{b:05d}" for b in bases])
    return names, _cdf(rng.pareto(1.2, len(bases)) + 0.01)


@cache
def _time_table() -> pa.Array:
    """``HH:MM:SS`` for every second of a day: formatting becomes one take() per column."""
    return pa.array([f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}" for s in range(86400)])


@cache
def _fraction_table(style: str, distance: bool) -> pa.Array:
    """Text after the integer part for 0..99 hundredths, in the TLC or the pandas spelling."""
    if distance and style == "tlc":
        return pa.array([f".{f:02d}" for f in range(100)])  # TLC distances: always two decimals
    out = []
    for f in range(100):
        digits = f"{f:02d}".rstrip("0")
        out.append(f".{digits}" if digits else (".0" if style == "pandas" else ""))
    return pa.array(out)


@cache
def _month_cdf(year: int, month: int) -> np.ndarray:
    """Cumulative pickup intensity per minute of the month (rush hours, quiet nights, busy Fridays)."""
    start, end = _month_start(year, month, "m"), _month_start(year + month // 12, month % 12 + 1, "m")
    minutes = np.arange(start, end).astype(np.int64)
    dow = (minutes // 1440 + 3) % 7  # 1970-01-01 was a Thursday
    w = _HOUR_WEIGHTS[minutes // 60 % 24] * _DOW_WEIGHTS[dow]
    return np.concatenate([[0.0], _cdf(w)])


def _month_start(year: int, month: int, unit: str = "s") -> np.datetime64:
    return np.datetime64(f"{year:04d}-{month:02d}", unit)


# ---------------------------------------------------------------- month plan and row generation


@dataclass(frozen=True)
class MonthPlan:
    """Decisions that depend on a row's place in the whole month, not on its chunk."""

    year: int
    month: int
    rows: int
    start_s: int
    end_s: int
    odd_idx: np.ndarray  # sorted global row numbers whose pickup is outside the month
    odd_kind: np.ndarray  # 0 previous month, 1 next month, 2 2008-12-31/2009-01-01
    tail_start: int  # rows from here on have empty IDs (== rows when the month has no such tail)


def _plan(rng: np.random.Generator, color: str, year: int, month: int, rows: int) -> MonthPlan:
    counts = [
        int(np.ceil(rows * f)) if rows >= 100 else 0
        for f in (PREV_MONTH_FRACTION, NEXT_MONTH_FRACTION, ANCIENT_FRACTION)
    ]
    has_tail = color != "fhv" and (year, month) >= NULL_TAIL_FROM
    tail_start = rows - round(rows * NULL_TAIL_FRACTION) if has_tail else rows
    idx = rng.choice(max(tail_start, 1), size=min(sum(counts), tail_start), replace=False)
    kind = np.repeat(np.arange(3, dtype=np.int8), counts)[: len(idx)]
    order = np.argsort(idx)
    start = int(_month_start(year, month).astype(np.int64))
    end = int(_month_start(year + month // 12, month % 12 + 1).astype(np.int64))
    return MonthPlan(year, month, rows, start, end, idx[order], kind[order], tail_start)


def _pickups(rng: np.random.Generator, plan: MonthPlan, idx: np.ndarray) -> np.ndarray:
    """Epoch seconds, roughly in file order like the real exports, tail rows anywhere in the month."""
    n = len(idx)
    in_tail = idx >= plan.tail_start
    u = np.where(in_tail, rng.random(n), (idx + rng.random(n)) / max(plan.tail_start, 1))
    cdf = _month_cdf(plan.year, plan.month)
    sec = np.interp(u, cdf, np.arange(len(cdf), dtype=np.float64)) * 60 + rng.normal(0, 300, n)
    span = plan.end_s - plan.start_s
    sec = np.abs(sec)  # reflect the jitter at the month edges instead of piling rows on 00:00:00
    sec = plan.start_s + np.clip(np.where(sec >= span, 2 * span - 1 - sec, sec), 0, span - 1).astype(np.int64)
    lo, hi = np.searchsorted(plan.odd_idx, [idx[0], idx[-1] + 1])
    where, kind = plan.odd_idx[lo:hi] - idx[0], plan.odd_kind[lo:hi]
    m = len(where)
    back = np.where(rng.random(m) < 0.9, rng.exponential(4 * 3600, m), rng.uniform(0, 28 * 86400, m))
    odd = np.select(
        [kind == 0, kind == 1],
        [plan.start_s - 1 - back.astype(np.int64), plan.end_s + rng.exponential(6 * 3600, m).astype(np.int64)],
        int(_month_start(2008, 12).astype(np.int64)) + 30 * 86400 + rng.integers(0, 2 * 86400, m),
    )
    sec[where] = odd
    return sec


def _trip_shape(
    rng: np.random.Generator, n: int, median_miles: float, rate: np.ndarray, vendor1: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Distance in hundredths of a mile and duration in seconds, tied to each other and the rate."""
    miles = np.clip(rng.lognormal(np.log(median_miles), 0.85, n), 0.01, 80.0)
    miles = np.where(rate == 2, rng.uniform(15, 22, n), miles)  # JFK flat fare
    miles = np.where(rate == 3, rng.uniform(14, 25, n), miles)  # Newark
    miles = np.where(rng.random(n) < 0.015, 0.0, miles)
    hundredths = np.where(vendor1, np.round(miles * 10) * 10, np.round(miles * 100)).astype(np.int64)
    mph = np.clip(rng.lognormal(np.log(11.0), 0.35, n), 3, 45)
    dur = miles / mph * 3600 + rng.uniform(30, 240, n)
    dur = np.where(miles == 0, rng.uniform(5, 900, n), dur)
    dur = np.where(rng.random(n) < LONG_TRIP_FRACTION, dur + rng.uniform(12 * 3600, 24 * 3600, n), dur)
    return hundredths, np.maximum(dur, 1).astype(np.int64)


def _toll_cents(year: int, month: int) -> int:
    ym = (year, month)
    return 576 if ym < (2019, 4) else 612 if ym < (2021, 4) else 655 if ym < (2023, 8) else 694


@dataclass
class Rows:
    """One chunk as numbers (ints, cents, hundredths, epoch seconds) plus per-column null masks."""

    values: dict[str, np.ndarray]
    nulls: dict[str, np.ndarray]
    text: dict[str, pa.Array]


def _taxi_rows(rng: np.random.Generator, color: str, plan: MonthPlan, idx: np.ndarray, keys: frozenset[str]) -> Rows:
    n, green = len(idx), color == "green"
    tail = idx >= plan.tail_start
    refund = (rng.random(n) < REFUND_FRACTION) & ~tail  # real refunds come from vendor 2
    vendor = np.where((rng.random(n) < (0.15 if green else 0.31)) & ~refund, 1, 2)
    rate = _pick(
        rng,
        [1, 5, 2, 3, 4, 99],
        _cdf([0.965, 0.03, 0.002, 0.001, 0.001, 0.0001] if green else [0.965, 0.009, 0.021, 0.0013, 0.0009, 0.0001]),
        n,
    )
    dist, dur = _trip_shape(rng, n, 2.3 if green else 1.8, rate, vendor == 1)
    payment = _pick(rng, [1, 2, 3, 4], _cdf([0.55, 0.43, 0.012, 0.008] if green else [0.67, 0.31, 0.011, 0.009]), n)
    payment = np.where(refund, _pick(rng, [4, 3, 2], _cdf([0.45, 0.35, 0.2]), n), payment)
    pu_cdf, do_cdf = _zone_cdfs(color)
    pickup = _pickups(rng, plan, idx)
    values = {
        "vendorid": vendor,
        "pickup_datetime": pickup,
        "dropoff_datetime": pickup + dur,
        "trip_distance": dist,
        "passenger_count": _pick(
            rng,
            [1, 2, 3, 4, 5, 6, 0, 7, 8, 9],
            _cdf([0.70, 0.157, 0.049, 0.02, 0.027, 0.025, ZERO_PASSENGER_FRACTION, 1e-4, 1e-4, 5e-5]),
            n,
        ),
        "ratecodeid": rate,
        "payment_type": payment,
        "trip_type": np.where(rate == 5, 2, 1),
        "pulocationid": _pick(rng, np.arange(1, 266), pu_cdf, n),
        "dolocationid": _pick(rng, np.arange(1, 266), do_cdf, n),
    }
    values.update(_taxi_money(rng, color, plan, values, dur, refund, tail, keys))
    nulls = {
        k: tail
        for k in (
            "vendorid",
            "passenger_count",
            "ratecodeid",
            "store_and_fwd_flag",
            "payment_type",
            "trip_type",
            "airport_fee",
        )
    }
    nulls["ehail_fee"] = np.ones(n, dtype=bool)
    if (plan.year, plan.month) < CONGESTION_FROM:
        nulls["congestion_surcharge"] = np.ones(n, dtype=bool)
    p_y = min(1.0, STORE_AND_FWD_Y_FRACTION / 0.31)
    flag = pa.array(np.where((vendor == 1) & (rng.random(n) < p_y), "Y", "N"))
    return Rows(values, nulls, {"store_and_fwd_flag": flag})


def _taxi_money(
    rng: np.random.Generator,
    color: str,
    plan: MonthPlan,
    trip: dict[str, np.ndarray],
    dur: np.ndarray,
    refund: np.ndarray,
    tail: np.ndarray,
    keys: frozenset[str],
) -> dict[str, np.ndarray]:
    """Amounts in cents that add up like a meter receipt; refunds are the same receipt negated."""
    n, green, year = len(dur), color == "green", plan.year
    rate, pickup, payment = trip["ratecodeid"], trip["pickup_datetime"], trip["payment_type"]
    new_tariff = year >= 2023
    units = np.round(trip["trip_distance"] / 100 * 5 + dur / 60 * 0.25).astype(np.int64)
    metered = (300 + 70 * units) if new_tariff else (250 + 50 * units)
    fare = np.select(
        [rate == 2, rate == 3, rate == 4, rate == 5],
        [7000 if new_tariff else 5200, metered + 1750, metered * 2, rng.integers(10, 121, n) * 100],
        metered,
    )
    hour = pickup // 3600 % 24
    weekday = (pickup // 86400 + 3) % 7 < 5
    night, rush = (100, 250) if new_tariff else (50, 100)
    extra = np.where(rate == 5, 0, np.select([(hour >= 20) | (hour < 6), weekday & (hour >= 16)], [night, rush], 0))
    mta = np.where(rate == 5, 0, 50)
    improvement = np.where(green & (rate == 5), 0, 100 if new_tariff else 30)
    congestion = np.where(rng.random(n) < (0.12 if green else 0.85), 275 if green else 250, 0)
    if (year, plan.month) < CONGESTION_FROM or "congestion_surcharge" not in keys:
        congestion[:] = 0
    fees = {}
    if "airport_fee" in keys:
        fees["airport_fee"] = np.where(np.isin(trip["pulocationid"], [132, 138]), 175 if new_tariff else 125, 0)
    if "cbd_congestion_fee" in keys:
        fees["cbd_congestion_fee"] = np.where(rng.random(n) < (0.15 if green else 0.65), 75, 0)
    tolls = np.where(rng.random(n) < 0.045, _toll_cents(year, plan.month), 0)
    odd_toll = _pick(rng, [280, 1175, 1375, 229], _cdf([4, 3, 2, 1]), n)
    tolls = np.where(refund, 0, np.where((tolls > 0) & (rng.random(n) < 0.05), odd_toll, tolls))
    # Vendor 1 folds the congestion surcharge into ``extra`` (2021-01: ``8,3,0.5,...,11.8,2.5``).
    fold = (trip["vendorid"] == 1) & ~tail & (color == "yellow")
    extra = extra + np.where(fold, congestion, 0)
    tip_rate = np.where(rng.random(n) < 0.85, rng.uniform(0.12, 0.30, n), 0.0)
    tip = np.where((payment == 1) & ~refund, np.round((fare + extra + mta + improvement) * tip_rate), 0)
    tip = tip.astype(np.int64)
    total = fare + extra + mta + tip + tolls + improvement + np.where(fold, 0, congestion) + sum(fees.values())
    sign = np.where(refund, -1, 1)
    signed = {
        "fare_amount": fare,
        "extra": extra,
        "mta_tax": mta,
        "improvement_surcharge": improvement,
        "total_amount": total,
        "congestion_surcharge": congestion,
        **fees,
    }
    return {"tip_amount": tip, "tolls_amount": tolls, **{k: v * sign for k, v in signed.items()}}


def _fhv_rows(rng: np.random.Generator, plan: MonthPlan, idx: np.ndarray) -> Rows:
    n = len(idx)
    pickup = _pickups(rng, plan, idx)
    pickup = np.where(rng.random(n) < FHV_MINUTE_ONLY_FRACTION, pickup // 60 * 60, pickup)
    dur = np.clip(rng.lognormal(np.log(15 * 60), 0.7, n), 30, 6 * 3600).astype(np.int64)
    dur = np.where(rng.random(n) < FHV_NEXT_DAY_FRACTION, dur + 86400, dur)
    names, base_cdf = _base_numbers()
    base = _pick(rng, names, base_cdf, n)
    other = _pick(rng, names, base_cdf, n)
    r = rng.random(n)
    affiliated = np.where(
        r < FHV_EMPTY_AFFILIATED_FRACTION,
        "",
        np.where(r < FHV_EMPTY_AFFILIATED_FRACTION + FHV_OTHER_AFFILIATED_FRACTION, other, base),
    )
    pu_cdf, do_cdf = _zone_cdfs("fhv")
    values = {
        "pickup_datetime": pickup,
        "dropoff_datetime": pickup + dur,
        "pulocationid": _pick(rng, np.arange(1, 266), pu_cdf, n),
        "dolocationid": _pick(rng, np.arange(1, 266), do_cdf, n),
        "sr_flag": np.ones(n, dtype=np.int64),
    }
    nulls = {
        "pulocationid": rng.random(n) < FHV_EMPTY_PU_FRACTION,
        "dolocationid": rng.random(n) < FHV_EMPTY_DO_FRACTION,
        "sr_flag": rng.random(n) >= FHV_SR_FLAG_FRACTION,
    }
    text = {"dispatching_base_num": pa.array(base), "affiliated_base_number": pa.array(affiliated)}
    return Rows(values, nulls, text)


# ---------------------------------------------------------------- formatting


def _fmt_int(v: np.ndarray, style: str) -> pa.Array:
    s = pa.array(v).cast(pa.string())
    return pc.binary_join_element_wise(s, "0", ".") if style == "pandas" else s


def _fmt_decimal(v: np.ndarray, style: str, distance: bool) -> pa.Array:
    """Hundredths as text: ``8``/``0.5``/``-2.5`` and ``.20`` (TLC) or ``8.0``/``0.2`` (pandas)."""
    a = np.abs(v)
    whole = pa.array(a // 100).cast(pa.string())
    if distance and style == "tlc":
        whole = pc.if_else(pa.array(a < 100), "", whole)  # ``.20``: TLC drops the leading zero
    frac = _fraction_table(style, distance).take(pa.array(a % 100))
    sign = pc.if_else(pa.array(v < 0), "-", "")
    return pc.binary_join_element_wise(sign, whole, frac, "")


def _fmt_timestamp(sec: np.ndarray) -> pa.Array:
    days = sec // 86400
    first = int(days.min())
    dates = pa.array(np.datetime_as_string(np.arange(first, int(days.max()) + 1).astype("datetime64[D]")))
    return pc.binary_join_element_wise(
        dates.take(pa.array(days - first)), _time_table().take(pa.array(sec % 86400)), " "
    )


def _format(rows: Rows, key: str, style: str, pandas_ints: bool) -> pa.Array | str:
    null = rows.nulls.get(key)
    if null is not None and null.all():
        return ""
    if key in rows.text:
        out = rows.text[key]
    elif key.endswith("datetime"):
        out = _fmt_timestamp(rows.values[key])
    elif key in _TAXI_MONEY or key == "trip_distance":
        out = _fmt_decimal(rows.values[key], style, distance=key == "trip_distance")
    else:  # pandas turns an int column holding nulls into float64, hence ``1.0``
        out = _fmt_int(rows.values[key], "pandas" if pandas_ints and null is not None else "tlc")
    return out if null is None or not null.any() else pc.if_else(pa.array(null), "", out)


def _lines(rows: Rows, layout: Layout, style: str) -> pa.Buffer:
    """One chunk as CSV text, joined by pyarrow so no Python code runs per row."""
    pandas_ints = style == "pandas" or layout.name == "fhv-dtc"  # DTC's FHV copies went through pandas
    cols = [_format(rows, _column_key(c), style, pandas_ints) for c in layout.columns]
    text = pc.binary_join_element_wise(pc.binary_join_element_wise(*cols, ","), layout.eol, "")
    offsets = np.frombuffer(text.buffers()[1], dtype=np.int32, count=len(text) + 1, offset=4 * text.offset)
    return text.buffers()[2].slice(int(offsets[0]), int(offsets[-1] - offsets[0]))


def resolve_style(style: str | None, color: str, year: int, month: int) -> str:
    if style in (None, "auto"):
        return "pandas" if color != "fhv" and (year, month) >= PANDAS_STYLE_FROM else "tlc"
    if style not in STYLES:
        raise ValueError(f"style {style!r} is not one of {', '.join(STYLES)}")
    return style


def _checked(
    color: str, year: int, month: int, rows: int, seed: int, layout: str | None, style: str | None
) -> tuple[Layout, str]:
    if seed < 0 or rows < 0 or not 1 <= month <= 12:
        raise ValueError(f"need seed >= 0, rows >= 0 and month 1-12, got {seed}, {rows}, {month}")
    return resolve_layout(color, year, layout), resolve_style(style, color, year, month)


def iter_chunks(
    color: str, year: int, month: int, rows: int, seed: int = 0, layout: str | None = None, style: str | None = None
) -> Iterator[bytes | pa.Buffer]:
    """The file's text (header first) in chunks; deterministic per (seed, color, year, month, rows)."""
    lay, sty = _checked(color, year, month, rows, seed, layout, style)
    key = [seed, COLORS.index(color), year, month]
    plan = _plan(np.random.default_rng(key), color, year, month, rows)
    keys = frozenset(_column_key(c) for c in lay.columns)
    yield (lay.header + lay.eol + (lay.eol if lay.blank_after_header else "")).encode()
    for number, first in enumerate(range(0, rows, CHUNK_ROWS)):
        rng = np.random.default_rng([*key, number + 1])
        idx = np.arange(first, min(first + CHUNK_ROWS, rows), dtype=np.int64)
        chunk = _fhv_rows(rng, plan, idx) if color == "fhv" else _taxi_rows(rng, color, plan, idx, keys)
        yield _lines(chunk, lay, sty)


def month_path(out_dir: Path, color: str, year: int, month: int) -> Path:
    """The release URL layout: ``{color}/{color}_tripdata_YYYY-MM.csv.gz``."""
    return Path(out_dir) / color / raw_name(Month(color, year, month, "csv"))


def write_month(
    out_dir: Path,
    color: str,
    year: int,
    month: int,
    rows: int,
    seed: int = 0,
    layout: str | None = None,
    *,
    style: str | None = None,
    compresslevel: int = GZIP_LEVEL,
) -> Path:
    """Write one month atomically; compression of a chunk overlaps generation of the next."""
    _checked(color, year, month, rows, seed, layout, style)  # refuse bad arguments before touching the disk
    chunks = iter_chunks(color, year, month, rows, seed, layout, style)
    path = month_path(out_dir, color, year, month)
    with (
        atomic_path(path) as tmp,
        tmp.open("wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=compresslevel, mtime=0) as gz,
        ThreadPoolExecutor(max_workers=1) as pool,
    ):
        pending: Future[int] | None = None
        for data in chunks:
            if pending is not None:
                pending.result()
            pending = pool.submit(gz.write, data)
        if pending is not None:
            pending.result()
    return path


def made_once(path: Path, rows: int, write: Callable[[], object], what: str) -> Path:
    """A benchmark's month at ``path``, generated only when it is not there at this size: making it
    takes longer than what is measured. A ``.rows-N`` marker, touched once the atomic write is
    done, says the file is whole and of N rows."""
    marker = path.with_name(path.name + f".rows-{rows}")
    if not marker.exists():
        print(f"generating {what}, {rows:,} rows ...", flush=True)
        write()
        marker.touch()
    return path


# ---------------------------------------------------------------- command line


def _months(args: argparse.Namespace) -> list[tuple[int, int]]:
    if args.months:
        return [parse_year_month(m.strip()) for m in args.months.split(",") if m.strip()]
    return parse_span(args.start or "2021-01", args.stop)


def main(argv: Sequence[str] | None = None) -> int:
    from scripts.sample_parquet import write_parquet_month  # it builds on this module's model

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out",
        type=Path,
        required=True,
        help="writes OUT/{color}/{color}_tripdata_YYYY-MM.csv.gz or OUT/trip-data/{color}_tripdata_YYYY-MM.parquet",
    )
    parser.add_argument(
        "--format",
        default="csv",
        choices=["csv", "parquet"],
        help="csv: the DataTalksClub CSV.gz releases; parquet: the TLC's Parquet files, each era's layout",
    )
    parser.add_argument("--colors", default="yellow,green,fhv", help="comma list of yellow,green,fhv(,fhvhv: parquet)")
    parser.add_argument("--months", help="comma list of YYYY-MM (default 2021-01)")
    parser.add_argument("--start", help="first month YYYY-MM (with --stop)")
    parser.add_argument("--stop", help="last month YYYY-MM, inclusive")
    parser.add_argument("--rows", type=int, default=DEFAULT_ROWS, help=f"rows per month (default {DEFAULT_ROWS})")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--layout",
        default="auto",
        choices=["auto", *LAYOUTS],
        help="force a header variant for the colors it belongs to; others stay auto",
    )
    parser.add_argument(
        "--style",
        default="auto",
        choices=STYLES,
        help="number spelling: tlc (1, .20, 8) or pandas (1.0, 0.2, 8.0); auto by month",
    )
    parser.add_argument("--compresslevel", type=int, default=GZIP_LEVEL, choices=range(1, 10))
    args = parser.parse_args(argv)
    if args.months and (args.start or args.stop):
        parser.error("use either --months or --start/--stop")
    try:
        colors, months = parse_colors(args.colors), _months(args)
    except InvalidInput as exc:
        parser.error(str(exc))
    forced = LAYOUTS.get(args.layout)
    if forced and forced.color not in colors:
        parser.error(f"layout {args.layout} is for {forced.color}, which is not in --colors")
    if args.rows < 0 or args.seed < 0:
        parser.error("--rows and --seed must be >= 0")
    if args.format == "csv" and "fhvhv" in colors:
        parser.error("fhvhv is published only as the TLC's Parquet: use --format parquet")
    for year, month in months:
        for color in colors:
            if args.format == "parquet":
                began = time.perf_counter()
                path = write_parquet_month(args.out, color, year, month, args.rows, args.seed)
                print(f"{path}\t{args.rows} rows\t{path.stat().st_size} bytes\t{time.perf_counter() - began:.1f}s")
                continue
            layout = args.layout if forced and forced.color == color else None
            began = time.perf_counter()
            path = write_month(
                args.out,
                color,
                year,
                month,
                args.rows,
                args.seed,
                layout,
                style=args.style,
                compresslevel=args.compresslevel,
            )
            print(f"{path}\t{args.rows} rows\t{path.stat().st_size} bytes\t{time.perf_counter() - began:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
