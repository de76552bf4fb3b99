"""PostgresTable: the month as its color's partition in PostgreSQL, bulk-loaded from the lake's Parquet."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tasks.gcs import GCSObject
from tasks.params import MonthTask
from tlc.errors import SinkError
from tlc.postgres.load import Load, load_month
from tlc.postgres.tables import ensure_table
from tlc.postgres.target import Database, PostgresMonth

if TYPE_CHECKING:
    from tlc.postgres.load import ParquetSource


class PostgresTable(MonthTask):
    """Load the month's published Parquet with COPY and swap it in as the month's partition atomically;
    done when the database holds exactly this Parquet (see ``tlc.postgres.target.PostgresMonth``)."""

    ledger_stage = "postgres"
    upstream = GCSObject
    load_resource = "postgres_load"

    def output(self) -> PostgresMonth:
        return PostgresMonth(Database.from_config(), self.unit, self.requires().output().parquet)

    def _parquet(self) -> ParquetSource:
        """The local copy when this host made it, else the published object, streamed by ranges."""
        lake_object = self.requires().output()
        report = lake_object.report()
        local = lake_object.parquet.cached(report)
        if local is not None:
            return local
        blob = lake_object.blob()
        if blob is None:
            raise SinkError(f"{self.unit.label}: {lake_object.uri} no longer holds the Parquet; rerun GCSObject")
        return lambda: lake_object.lake.reader(blob)

    def make(self) -> None:
        out = self.output()
        report = out.report()
        with out.db.connection() as conn:
            ensure_table(conn, out.db.schema, self.unit.color)
            load = Load(self.unit, self._parquet(), report.rows_written, report.parquet.sha256)
            loaded = load_month(conn, out.db.schema, load, progress=self.reporter())
        self.record_stage()
        self.set_status_message(f"{self.unit.label}: {loaded:,} rows in {out.db.table(self.unit.color)}")
