"""When is a month in PostgreSQL? ``PostgresMonth`` answers, for one month and for many at once.

Done only when the database says it holds exactly this Parquet: a marker row whose row count
and sha256 match the Parquet's quality report, and as many rows in the month's partition. A
rebuilt Parquet (new rules, new source file) therefore reloads the month, and rows deleted
or a partition dropped by hand are noticed too.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from tlc.config import PostgresConfig
from tlc.fingerprint import Fingerprint
from tlc.lake.target import LakeParquet
from tlc.month import Month
from tlc.postgres.connection import Connection, connect
from tlc.postgres.state import MonthState, fingerprints, month_states
from tlc.quality import QualityReport
from tlc.sink import SinkState, SinkTarget


@dataclass(frozen=True)
class Database:
    """Where the color tables live: the validated schema and libpq's connection parts (no password)."""

    schema: str
    dsn: dict[str, Any]

    @classmethod
    def from_config(cls) -> Database:
        cfg = PostgresConfig()
        return cls(cfg.schema_name(), cfg.dsn_parts())

    @contextmanager
    def connection(self) -> Iterator[Connection]:
        """A server that is down raises a SinkError: better than "not done"."""
        conn = connect(self.dsn)
        try:
            yield conn
        finally:
            conn.close()

    def table(self, color: str) -> str:
        return f"{self.schema}.{color}_tripdata"


class PostgresMonth(SinkTarget[Database]):
    stage = "postgres"

    def __init__(self, db: Database, month: Month, parquet: LakeParquet) -> None:
        super().__init__(db, month, parquet)
        self.db = db

    @classmethod
    def _lookup(cls, targets: list[PostgresMonth]) -> list[MonthState | None]:
        """One connection per database and one query per color instead of one per month."""
        found: dict[tuple[int, Month], MonthState] = {}
        databases: list[Database] = []
        for t in targets:
            if t.db not in databases:
                databases.append(t.db)
        for i, db in enumerate(databases):
            mine = [t.month for t in targets if t.db == db]
            with db.connection() as conn:
                for color in sorted({m.color for m in mine}):
                    states = month_states(conn, db.schema, [m for m in mine if m.color == color]) or {}
                    found.update({(i, m): s for m, s in states.items()})
        return [found.get((databases.index(t.db), t.month)) for t in targets]

    def _state(self, found: MonthState | None, report: QualityReport | None) -> SinkState:
        rows = found.count if found else None
        if report is None or found is None:
            return SinkState(rows, False)
        expected = report.rows_written
        matches = found.rows == expected and found.parquet_sha256 == report.parquet.sha256 and rows == expected
        return self._judged(rows, matches, report)

    def exists(self) -> bool:
        report = self.parquet.report()
        if report is None:  # nothing can have been loaded from a Parquet without a report
            return False
        return self._state(self._lookup_one(), report).done

    def facts(self) -> dict[str, Any]:
        """The ledger's ``postgres`` entry (written once the month is done)."""
        report = self.report()
        table = self.db.table(self.month.color)
        return {
            "table": table,
            "partition": f"{table}_{self.month.year}_{self.month.month:02d}",
            "rows": report.rows_written,
            "parquet_sha256": report.parquet.sha256,
        }

    @classmethod
    def fingerprints(cls, targets: list[PostgresMonth]) -> list[Fingerprint | None]:
        """The values each month holds (tlc.fingerprint): one aggregate query per color."""
        by_color: dict[str, dict] = {}
        if targets:
            db = targets[0].db
            with db.connection() as conn:
                for color in {t.month.color for t in targets}:
                    by_color[color] = fingerprints(conn, db.schema, color)
        return [by_color[t.month.color].get(t.month.first_day) for t in targets]
