"""PostgresTable: the month as one partition of ``{schema}.{color}_tripdata`` in PostgreSQL.

The work is in ``tasks/pgload.py`` (no luigi there); this module only decides when the month
is done and wires the settings, the ledger and progress reporting to it.
"""

from __future__ import annotations

from typing import Any

from tasks import layout, pgload
from tasks.errors import SinkError
from tasks.identifiers import identifier
from tasks.params import MonthTask
from tasks.parquet import ParquetFile
from tasks.settings import paths, postgres


def _settings() -> tuple[str, dict[str, Any]]:
    """The validated schema and the connection parts: a bad schema name stops here, before any SQL."""
    config = postgres()
    return identifier(config.schema, "postgres schema"), config.dsn_parts()


class PostgresTable(MonthTask):
    """Load the month's Parquet with COPY and swap it in as the month's partition atomically.

    Done only when the database says it holds exactly this Parquet: a marker row whose row
    count and sha256 match the Parquet's quality report, and as many rows in the month's
    partition. A rebuilt Parquet (new rules, new source file) therefore reloads the month,
    and rows deleted or a partition dropped by hand are noticed too.
    """

    def requires(self) -> ParquetFile:
        return ParquetFile(color=self.color, year=self.year, month=self.month)

    def _expected(self) -> tuple[int, str] | None:
        """(rows, sha256) of the Parquet from its quality report; None while there is none."""
        report = self.requires().report() or {}
        rows, sha256 = report.get("rows_written"), (report.get("parquet") or {}).get("sha256")
        return (rows, sha256) if isinstance(rows, int) and sha256 else None

    def _done(self, state: pgload.MonthState | None) -> bool:
        expected = self._expected()
        if expected is None or state is None:
            return False
        rows, sha256 = expected
        return state.rows == rows and state.parquet_sha256 == sha256 and state.count == rows

    ledger_stage = "postgres"

    def ledger_facts(self) -> dict:
        """Complete means the partition holds exactly the Parquet's rows (see complete())."""
        schema_name, _ = _settings()
        rows, sha256 = self._expected() or (None, None)
        table = f"{schema_name}.{self.color}_tripdata"
        return {
            "table": table,
            "partition": f"{table}_{self.year}_{self.month:02d}",
            "rows": rows,
            "parquet_sha256": sha256,
        }

    def complete(self) -> bool:
        schema_name, dsn = _settings()
        if self._expected() is None:  # no Parquet report yet: nothing can have been loaded from it
            return False
        conn = pgload.connect(dsn)  # a server that is down raises a SinkError: better than "not done"
        try:
            return self._done(pgload.month_state(conn, schema_name, self.color, self.year, self.month))
        finally:
            conn.close()

    @classmethod
    def completed_among(cls, tasks: list[PostgresTable]) -> set[str]:
        """Task ids done, with one connection and one query per color instead of one per month."""
        schema_name, dsn = _settings()
        conn = pgload.connect(dsn)
        done = set()
        try:
            for color in sorted({t.color for t in tasks}):
                mine = [t for t in tasks if t.color == color]
                states = pgload.month_states(conn, schema_name, color, [(t.year, t.month) for t in mine]) or {}
                done.update(t.task_id for t in mine if t._done(states.get((t.year, t.month))))
        finally:
            conn.close()
        return done

    def run(self) -> None:
        schema_name, dsn = _settings()
        expected = self._expected()
        if expected is None:
            raise SinkError(f"{self.label}: the Parquet has no quality report; rerun ParquetFile")
        rows, sha256 = expected
        root = paths().root()
        parquet = layout.lake_path(root, self.color, self.year, self.month)
        conn = pgload.connect(dsn)
        try:
            pgload.ensure_table(conn, schema_name, self.color)
            loaded = pgload.load_month(
                conn,
                schema_name,
                self.color,
                self.year,
                self.month,
                parquet,
                expected_rows=rows,
                parquet_sha256=sha256,
                progress=self.reporter(),
            )
        finally:
            conn.close()
        self.record_stage()
        self.set_status_message(f"{self.label}: {loaded:,} rows in {schema_name}.{self.color}_tripdata")
