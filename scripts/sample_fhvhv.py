"""High Volume FHV trips (Uber, Lyft, Via) for the Parquet sample months: one chunk as numbers.

The shape follows the TLC's data dictionary for fhvhv (2019-02 on): the licensee, the base that
dispatched and the one the request came from, request / on-scene / pickup / dropoff times,
zones, miles and seconds, the rider's fare and its parts (tolls, black car fund, sales tax,
congestion surcharge, airport fee, tips), the driver's pay and five Y/N flags. Amounts are in
cents, miles in hundredths, like the yellow and green model in ``scripts.make_sample_data``.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from scripts import make_sample_data as csvgen

# HV0002 Juno, HV0003 Uber, HV0004 Via, HV0005 Lyft, and the bases each dispatches from.
_LICENSES = np.array(["HV0003", "HV0005", "HV0004", "HV0002"])
_SHARES = (0.72, 0.26, 0.015, 0.005)
_BASES = np.array(["B03404", "B03406", "B02800", "B02907"])
_REFUND_FRACTION = 0.001
_SHARED_FRACTION = 0.02
_WAV_FRACTION = 0.005


def fhvhv_rows(rng: np.random.Generator, plan: csvgen.MonthPlan, idx: np.ndarray) -> csvgen.Rows:
    n = len(idx)
    company = csvgen._pick(rng, np.arange(4), csvgen._cdf(_SHARES), n)
    lyft = company == 1
    pickup = csvgen._pickups(rng, plan, idx)
    trip_time = np.clip(rng.lognormal(np.log(16 * 60), 0.6, n), 60, 5 * 3600).astype(np.int64)
    miles = np.clip(rng.lognormal(np.log(3.5), 0.8, n), 0.1, 60.0)
    fare = np.round((250 + 150 * miles + 50 * trip_time / 60) * rng.uniform(0.8, 1.6, n)).astype(np.int64)
    fare = np.where(rng.random(n) < _REFUND_FRACTION, -fare, fare)
    pu_cdf, do_cdf = csvgen._zone_cdfs("fhv")
    pu = csvgen._pick(rng, np.arange(1, 266), pu_cdf, n)
    do = csvgen._pick(rng, np.arange(1, 266), do_cdf, n)
    airport = np.isin(pu, [132, 138]) | np.isin(do, [132, 138])
    values = {
        "request_datetime": pickup - rng.integers(60, 900, n),
        "on_scene_datetime": pickup - rng.integers(0, 240, n),
        "pickup_datetime": pickup,
        "dropoff_datetime": pickup + trip_time,
        "pulocationid": pu,
        "dolocationid": do,
        "trip_miles": np.round(miles * 100).astype(np.int64),
        "trip_time": trip_time,
        "base_passenger_fare": fare,
        "tolls": np.where(rng.random(n) < 0.05, 694, 0),
        "bcf": np.round(fare * 0.025).astype(np.int64),
        "sales_tax": np.round(fare * 0.08875).astype(np.int64),
        "congestion_surcharge": np.where(rng.random(n) < 0.6, 275, 0),
        "airport_fee": np.where(airport, 250, 0),
        "tips": np.where(rng.random(n) < 0.12, np.round(fare * 0.15), 0).astype(np.int64),
        "driver_pay": np.round(np.abs(fare) * rng.uniform(0.6, 0.85, n)).astype(np.int64),
        "shared_request_flag": (rng.random(n) < _SHARED_FRACTION).astype(np.int64),
        "shared_match_flag": (rng.random(n) < _SHARED_FRACTION / 2).astype(np.int64),
        "wav_request_flag": (rng.random(n) < _WAV_FRACTION).astype(np.int64),
        "wav_match_flag": (rng.random(n) < _WAV_FRACTION).astype(np.int64),
        "cbd_congestion_fee": np.where(rng.random(n) < 0.5, 150, 0),
    }
    originating = np.where(rng.random(n) < 0.75, _BASES[company], "")
    text = {
        "hvfhs_license_num": pa.array(_LICENSES[company]),
        "dispatching_base_num": pa.array(_BASES[company]),
        "originating_base_num": pa.array(originating),
        # Lyft leaves the access-a-ride flag blank (a space), the others write N
        "access_a_ride_flag": pa.array(np.where(lyft, " ", "N")),
    }
    nulls = {"on_scene_datetime": lyft}
    return csvgen.Rows(values, nulls, text)
