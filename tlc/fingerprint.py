"""A month's values in a few numbers per column, computed the same way in the Parquet, BigQuery and Postgres.

Row counts prove that no row was lost; they say nothing of a fare changed by an ``UPDATE``, or a
deleted row replaced by a copy of another. The fingerprint does: per column its non-null count
and, by kind, the exact sum of integers, the sum of amounts in whole cents, the min and max of
timestamps and dates, the total length of strings. It is computed while the Parquet is written
(into the quality report) and again inside each warehouse by one aggregate query, and any
difference names the month, the sink and the column.

Amounts are compared in whole cents, rounded by the same double operations in every engine;
integer sums are exact (never through float). NaN and infinities never reach it: the
conversion refuses them.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from tlc import schema

Fingerprint = dict[str, dict[str, Any]]  # column -> {"n": count, "sum"/"cents"/"chars"/"min","max": ...}
_EXACT_INT = 1 << 40  # below this, a 64k-row batch's int64 sum cannot overflow


def measures(kind: str) -> tuple[str, ...]:
    return {"int": ("n", "sum"), "float": ("n", "cents"), "string": ("n", "chars")}.get(kind, ("n", "min", "max"))


def _text(value: Any) -> str | None:
    """Timestamps and dates as ISO text: every engine's value compares as the same string."""
    if value is None:
        return None
    return value.isoformat(sep=" ") if isinstance(value, dt.datetime) else value.isoformat()


class FingerprintCounter:
    """Accumulates the fingerprint batch by batch, over exactly the rows written."""

    def __init__(self, color: str) -> None:
        self.kinds = {c.name: c.kind for c in schema.columns(color)}
        self.values: Fingerprint = {name: dict.fromkeys(measures(kind)) for name, kind in self.kinds.items()}

    def add(self, batch: pa.RecordBatch | pa.Table) -> None:
        for name, kind in self.kinds.items():
            col, acc = batch.column(name), self.values[name]
            acc["n"] = (acc["n"] or 0) + len(col) - col.null_count
            if kind == "int":
                acc["sum"] = (acc["sum"] or 0) + _int_sum(col)
            elif kind == "float":
                acc["cents"] = (acc["cents"] or 0) + _cents(col)
            elif kind == "string":
                acc["chars"] = (acc["chars"] or 0) + (pc.sum(pc.utf8_length(col)).as_py() or 0)
            else:
                bounds = pc.min_max(col).as_py()
                if bounds["min"] is not None:
                    low, high = _text(bounds["min"]), _text(bounds["max"])
                    acc["min"] = low if acc["min"] is None else min(acc["min"], low)
                    acc["max"] = high if acc["max"] is None else max(acc["max"], high)

    def result(self) -> Fingerprint:
        return {name: dict(acc) for name, acc in self.values.items()}


def _cents(col: pa.Array | pa.ChunkedArray) -> int:
    """The sum of the values in whole cents: sign(v) * floor(|v| + 0.5) of v = x * 100, the very
    same IEEE operations the warehouses' SQL does (see _SQL), so every engine rounds alike."""
    v = pc.multiply(col, 100.0)
    rounded = pc.multiply(pc.sign(v), pc.floor(pc.add(pc.abs(v), 0.5)))
    return int(pc.sum(rounded).as_py() or 0)


def _int_sum(col: pa.Array | pa.ChunkedArray) -> int:
    bounds = pc.min_max(col).as_py()
    if bounds["min"] is None:
        return 0
    if max(abs(bounds["min"]), abs(bounds["max"])) < _EXACT_INT:
        return int(pc.sum(col).as_py())
    return int(pc.sum(col.cast(pa.decimal128(38, 0))).as_py())  # large IDs: exact, never wrapped


# Each measure's aggregate in each warehouse's SQL ({c}: the quoted column). Cents are rounded
# by the same IEEE double operations everywhere (sign(v) * floor(|v| + 0.5), v = x * 100), not
# by each engine's ROUND: Postgres's ROUND of a double rounds halves to even, of a numeric (made
# from 15 significant digits) away from zero, and either can differ from Arrow's on a value like
# 0.285. The per-row results are whole numbers, so their sum is exact in a double while a month
# totals under 2**53 cents (about $90 trillion; real months total millions). A corrupt amount
# beyond that makes each engine's sum depend on its order: a reported difference, never a pass.
# Integer sums are exact: BIGNUMERIC in BigQuery, numeric (sum of bigint) in Postgres.
_SQL = {
    "bigquery": {
        "n": "COUNT({c})",
        "sum": "SUM(CAST({c} AS BIGNUMERIC))",
        "cents": "SUM(SIGN({c} * 100) * FLOOR(ABS({c} * 100) + 0.5))",
        "chars": "SUM(LENGTH({c}))",
        "min": "MIN({c})",
        "max": "MAX({c})",
    },
    "postgres": {
        "n": "count({c})",
        "sum": "sum({c})",
        "cents": "sum(sign({c} * 100) * floor(abs({c} * 100) + 0.5))",
        "chars": "sum(length({c}))",
        "min": "min({c})",
        "max": "max({c})",
    },
}


def select_list(color: str, engine: str) -> tuple[list[str], list[tuple[str, str]]]:
    """The aggregate expressions of a warehouse's fingerprint query, and the (column, measure) each is.

    Column names come from the canonical schema (lower snake case, validated by the schema's
    own tests), so they are spelled into SQL as they are.
    """
    quote = "`" if engine == "bigquery" else '"'
    exprs, keys = [], []
    for c in schema.columns(color):
        for measure in measures(c.kind):
            exprs.append(_SQL[engine][measure].format(c=f"{quote}{c.name}{quote}"))
            keys.append((c.name, measure))
    return exprs, keys


def from_row(values: list[Any], keys: list[tuple[str, str]]) -> Fingerprint:
    """A warehouse's answer (one row, in the order of ``select_list``) as a fingerprint."""
    found: Fingerprint = {}
    for (name, measure), value in zip(keys, values, strict=True):
        if measure in ("min", "max"):
            found.setdefault(name, {})[measure] = _text(value)
        else:
            found.setdefault(name, {})[measure] = None if value is None else int(value)
    return found


def differences(expected: Fingerprint, found: Fingerprint) -> list[str]:
    """``column measure: expected X, found Y`` for every value that differs."""
    out = []
    for name, acc in expected.items():
        for measure, value in acc.items():
            got = found.get(name, {}).get(measure)
            if _norm(got) != _norm(value):
                out.append(f"{name} {measure}: expected {value}, found {got}")
    return out


def _norm(value: Any) -> Any:
    """An empty column's sum is NULL in SQL and 0 here: the same thing."""
    return 0 if value is None else value
