"""When is a month in BigQuery? ``BigQueryMonth`` answers, for one month and for many at once.

Done means: the ``_loads`` marker names this very Parquet (its rows and sha256, from the
quality report) and the color's table holds that many rows of the month. A rebuilt Parquet
(new rules, a new source file) therefore reloads the month, and rows deleted by hand are
noticed.
"""

from __future__ import annotations

from typing import Any

from tlc.bigquery import state
from tlc.bigquery.dataset import Dataset
from tlc.lake.target import LakeParquet
from tlc.month import Month
from tlc.sink import SinkState, SinkTarget


class BigQueryMonth(SinkTarget[Dataset]):
    stage = "bigquery"

    def __init__(self, ds: Dataset, month: Month, parquet: LakeParquet) -> None:
        super().__init__(ds, month, parquet)
        self.ds, self.table = ds, ds.table_id(month.color)

    def _state(self, rows: int | None, marker: state.Marker | None) -> SinkState:
        held = rows or 0
        shown = held if held or marker else None  # no rows and no marker: nothing was loaded
        report = self.parquet.report()
        if report is None:
            return SinkState(shown, False, "no quality report to check against")
        expected = state.Marker(report.rows_written, report.parquet.sha256)
        if marker != expected:
            return SinkState(shown, False)
        return SinkState(shown, held == report.rows_written)

    def observe(self) -> SinkState:
        rows, marker = state.month_state(self.ds, self.month)
        return self._state(rows, marker)

    @classmethod
    def observe_all(cls, targets: list[BigQueryMonth]) -> list[SinkState]:
        """Two queries per color instead of one per month."""
        seen: dict[tuple[str, str], tuple[dict, dict]] = {}
        states = []
        for t in targets:
            key = (t.ds.id, t.month.color)
            if key not in seen:
                seen[key] = (state.counts_by_month(t.ds, t.month.color), state.markers(t.ds, t.month.color))
            counts, markers = seen[key]
            day = t.month.first_day
            states.append(t._state(counts.get(day), markers.get(day)))
        return states

    def facts(self) -> dict[str, Any]:
        """The ledger's ``bigquery`` entry (written once the month is done, so the report's values hold)."""
        report = self.report()
        return {"table": self.table, "rows": report.rows_written, "parquet_sha256": report.parquet.sha256}
