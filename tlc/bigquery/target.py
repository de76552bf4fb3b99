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
from tlc.fingerprint import Fingerprint
from tlc.lake.target import LakeParquet
from tlc.month import Month
from tlc.quality import QualityReport
from tlc.sink import SinkState, SinkTarget


class BigQueryMonth(SinkTarget[Dataset]):
    stage = "bigquery"

    def __init__(self, ds: Dataset, month: Month, parquet: LakeParquet) -> None:
        super().__init__(ds, month, parquet)
        self.ds, self.table = ds, ds.table_id(month.color)

    def _lookup_one(self) -> tuple[int, state.Marker | None]:
        return state.month_state(self.ds, self.month)

    @classmethod
    def _lookup(cls, targets: list[BigQueryMonth]) -> list[tuple[int | None, state.Marker | None]]:
        """Two queries per color instead of one per month."""
        seen: dict[tuple[str, str], tuple[dict, dict]] = {}
        found = []
        for t in targets:
            where = (t.ds.id, t.month.color)
            if where not in seen:
                seen[where] = (state.counts_by_month(t.ds, t.month.color), state.markers(t.ds, t.month.color))
            counts, markers = seen[where]
            found.append((counts.get(t.month.first_day), markers.get(t.month.first_day)))
        return found

    def _state(self, found: tuple[int | None, state.Marker | None], report: QualityReport | None) -> SinkState:
        rows, marker = found
        held = rows or 0
        shown = held if held or marker else None  # no rows and no marker: nothing was loaded
        if report is None:
            return SinkState(shown, False)
        expected = state.Marker(report.rows_written, report.parquet.sha256)
        return self._judged(shown, marker == expected and held == report.rows_written, report)

    def facts(self) -> dict[str, Any]:
        """The ledger's ``bigquery`` entry (written once the month is done, so the report's values hold)."""
        report = self.report()
        return {"table": self.table, "rows": report.rows_written, "parquet_sha256": report.parquet.sha256}

    @classmethod
    def fingerprints(cls, targets: list[BigQueryMonth]) -> list[Fingerprint | None]:
        """The values each month holds (tlc.fingerprint): one aggregate query per color."""
        by_color: dict[tuple[str, str], dict] = {}
        found = []
        for t in targets:
            where = (t.ds.id, t.month.color)
            if where not in by_color:
                by_color[where] = state.fingerprints(t.ds, t.month.color)
            found.append(by_color[where].get(t.month.first_day))
        return found
