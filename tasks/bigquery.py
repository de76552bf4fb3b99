"""BigQueryTable: the month in the warehouse table of its color, loaded from the lake."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from tasks.gcs import GCSObject
from tasks.params import MonthTask
from tasks.parquet import ParquetFile
from tasks.settings import bigquery

if TYPE_CHECKING:
    from tasks.warehouse import Warehouse


class BigQueryTable(MonthTask):
    """Load the month from its ``gs://`` object; done when BigQuery holds exactly its rows.

    Complete means: the month's row count in BigQuery equals the Parquet's, and the load
    marker names the same Parquet (sha256), so a rebuilt Parquet is loaded again.
    """

    def requires(self) -> GCSObject:
        return GCSObject(color=self.color, year=self.year, month=self.month)

    def _parquet_report(self) -> dict | None:
        return ParquetFile(color=self.color, year=self.year, month=self.month).report()

    def warehouse(self) -> Warehouse:
        from tasks import gcp, warehouse

        cfg = bigquery()
        client = gcp.bigquery_client(cfg.project_id(), cfg.api_endpoint(), cfg.location)
        return warehouse.Warehouse(client, cfg.dataset, cfg.retry_seconds, cfg.job_timeout_seconds)

    def _done(self, rows: int | None, marker: tuple[int | None, str | None]) -> bool:
        report = self._parquet_report()
        if not report:
            return False
        expected = report["rows_written"]
        return rows == expected and marker == (expected, report["parquet"]["sha256"])

    ledger_stage = "bigquery"

    def ledger_facts(self) -> dict:
        """Complete means the table holds exactly the Parquet's rows (see complete())."""
        report = self._parquet_report() or {}
        table = self.warehouse().table_id(self.color)
        return {"table": table, "rows": report["rows_written"], "parquet_sha256": report["parquet"]["sha256"]}

    def complete(self) -> bool:
        rows, marker_rows, marker_sha = self.warehouse().month_state(self.color, self.year, self.month)
        return self._done(rows, (marker_rows, marker_sha))

    @classmethod
    def completed_among(cls, tasks: list[BigQueryTable]) -> set[str]:
        """Task ids done, with two queries per color instead of one per month."""
        done = set()
        for color in {t.color for t in tasks}:
            mine = [t for t in tasks if t.color == color]
            wh = mine[0].warehouse()
            counts, markers = wh.counts_by_month(color), wh.markers(color)
            for t in mine:
                day = dt.date(t.year, t.month, 1)
                if t._done(counts.get(day), markers.get(day, (None, None))):
                    done.add(t.task_id)
        return done

    def run(self) -> None:
        report = self._parquet_report() or {}
        wh = self.warehouse()
        self.set_status_message(f"{self.label}: loading {report['rows_written']:,} rows from {self.requires().uri()}")
        wh.ensure(self.color, bigquery().location)
        loaded = wh.load_month(
            self.color,
            self.year,
            self.month,
            self.requires().uri(),
            report["rows_written"],
            report["parquet"]["sha256"],
            self.requires().lake_generation,
        )
        self.record_stage()
        self.requires().publish_manifest()
        self.set_progress_percentage(100)
        self.set_status_message(f"{self.label}: {loaded:,} rows in {wh.table_id(self.color)}")
