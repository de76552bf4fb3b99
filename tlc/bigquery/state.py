"""What BigQuery holds per month: row counts and load markers, for one month or a whole color."""

from __future__ import annotations

import datetime as dt
from typing import NamedTuple

from google.api_core import exceptions as gexc

from tlc import fingerprint
from tlc.bigquery.dataset import Dataset
from tlc.fingerprint import Fingerprint
from tlc.gcp import sink_errors
from tlc.month import Month


class Marker(NamedTuple):
    rows: int
    parquet_sha256: str


def month_state(ds: Dataset, month: Month) -> tuple[int, Marker | None]:
    """(rows in the color's table, the ``_loads`` marker or None) for one month."""
    sql = f"""
        SELECT
          (SELECT COUNT(*) FROM `{ds.table_id(month.color)}` WHERE source_month = @day) AS n,
          (SELECT MAX(`rows`) FROM `{ds.markers_id}` WHERE color = @color AND source_month = @day) AS marker_rows,
          (SELECT MAX(parquet_sha256) FROM `{ds.markers_id}` WHERE color = @color AND source_month = @day) AS sha
    """  # noqa: S608 - table ids are validated identifiers (Dataset.table_id); values are parameters
    with sink_errors(f"BigQuery state of {month.label}"):
        try:
            row = ds.query(sql, day=month.first_day, color=month.color)[0]
        except gexc.NotFound:
            return 0, None
    marker = Marker(int(row["marker_rows"]), row["sha"]) if row["marker_rows"] is not None else None
    return int(row["n"]), marker


def counts_by_month(ds: Dataset, color: str) -> dict[dt.date, int]:
    """Rows per source month of a color's table; empty when the table does not exist yet."""
    table = ds.table_id(color)
    with sink_errors(f"BigQuery count of {table}"):
        try:
            rows = ds.query(f"SELECT source_month, COUNT(*) AS n FROM `{table}` GROUP BY 1")  # noqa: S608 - validated id
        except gexc.NotFound:
            return {}
    return {r["source_month"]: int(r["n"]) for r in rows}


def markers(ds: Dataset, color: str) -> dict[dt.date, Marker]:
    """The ``_loads`` marker of every month of a color."""
    sql = f"SELECT source_month, `rows`, parquet_sha256 FROM `{ds.markers_id}` WHERE color = @color"  # noqa: S608 - validated id
    with sink_errors(f"BigQuery read of {ds.markers_id}"):
        try:
            rows = ds.query(sql, color=color)
        except gexc.NotFound:
            return {}
    return {r["source_month"]: Marker(int(r["rows"]), r["parquet_sha256"]) for r in rows}


def fingerprints(ds: Dataset, color: str) -> dict[dt.date, Fingerprint]:
    """The values of every month of a color, in one aggregate query (tlc.fingerprint)."""
    exprs, keys = fingerprint.select_list(color, "bigquery")
    table = ds.table_id(color)
    sql = f"SELECT source_month, {', '.join(exprs)} FROM `{table}` GROUP BY source_month"  # noqa: S608 - schema names
    with sink_errors(f"BigQuery fingerprint of {table}"):
        try:
            rows = ds.query(sql)
        except gexc.NotFound:
            return {}
    return {r[0]: fingerprint.from_row(list(r.values())[1:], keys) for r in rows}
