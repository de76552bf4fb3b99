"""PostgresTable: the month as its color's partition in PostgreSQL, bulk-loaded from the Parquet."""

from __future__ import annotations

from tasks.params import MonthTask
from tasks.parquet import ParquetFile
from tlc.postgres.load import Load, load_month
from tlc.postgres.tables import ensure_table
from tlc.postgres.target import Database, PostgresMonth


class PostgresTable(MonthTask):
    """Load the month's Parquet with COPY and swap it in as the month's partition atomically;
    done when the database holds exactly this Parquet (see ``tlc.postgres.target.PostgresMonth``)."""

    ledger_stage = "postgres"
    upstream = ParquetFile

    def output(self) -> PostgresMonth:
        return PostgresMonth(Database.from_config(), self.unit, self.requires().output())

    def run(self) -> None:
        out = self.output()
        report = out.report()
        with out.db.connection() as conn:
            ensure_table(conn, out.db.schema, self.unit.color)
            load = Load(self.unit, out.parquet.path, report.rows_written, report.parquet.sha256)
            loaded = load_month(conn, out.db.schema, load, progress=self.reporter())
        self.record_stage()
        self.set_status_message(f"{self.unit.label}: {loaded:,} rows in {out.db.table(self.unit.color)}")
