"""BigQueryTable: the month in the warehouse table of its color, loaded from the lake."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tasks.gcs import GCSObject
from tasks.params import MonthTask
from tasks.parquet import ParquetFile
from tlc.config import BigQueryConfig

if TYPE_CHECKING:
    from tlc.bigquery.target import BigQueryMonth


class BigQueryTable(MonthTask):
    """Load the month from its ``gs://`` object; done when BigQuery holds exactly the Parquet's rows
    (see ``tlc.bigquery.target.BigQueryMonth``)."""

    ledger_stage = "bigquery"
    upstream = GCSObject
    load_resource = "bigquery_load"

    def output(self) -> BigQueryMonth:
        from tlc.bigquery.dataset import Dataset  # the client loads only when the sink is used (see tasks.gcs)
        from tlc.bigquery.target import BigQueryMonth

        return BigQueryMonth(Dataset.from_config(), self.unit, ParquetFile.of(self.unit).output())

    def make(self) -> None:
        from tlc.bigquery.load import Load, load_month

        out, lake_object = self.output(), self.requires().output()
        report = out.report()
        self.set_status_message(f"{self.unit.label}: loading {report.rows_written:,} rows from {lake_object.uri}")
        out.ds.ensure(self.unit.color, BigQueryConfig().location)
        load = Load(self.unit, lake_object.uri, report.rows_written, report.parquet.sha256, lake_object.generation)
        loaded = load_month(out.ds, load)
        self.record_stage()
        self.set_progress_percentage(100)
        self.set_status_message(f"{self.unit.label}: {loaded:,} rows in {out.table}")
