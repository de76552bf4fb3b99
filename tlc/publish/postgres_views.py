"""Postgres views with the TLC column names, in their own schema, over the partitioned color tables.

``<schema>.<color>_tripdata`` selects from ``tlc.<color>_tripdata``, renamed, and only the months
whose ``load_markers`` row matches their rows (``tlc.publish.sql``). The TLC names are lower
case here: Postgres folds unquoted names, so the course's ``vendorid`` or ``VendorID`` written
unquoted both find ``vendorid``. Every view and ``<schema>.months`` are replaced in one
transaction, under an advisory lock, so two publishes never interleave.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg2

from tlc.config import PublishConfig
from tlc.errors import SinkError
from tlc.identifiers import table_name
from tlc.month import COLORS
from tlc.postgres.connection import Connection, first_line, lock_key, rollback_quietly
from tlc.postgres.tables import MARKERS
from tlc.postgres.target import Database
from tlc.publish import sql
from tlc.publish.held import Published


@dataclass(frozen=True)
class PostgresViews:
    db: Database
    schema: str

    @classmethod
    def from_config(cls) -> PostgresViews:
        """Names checked before any connection."""
        db = Database.from_config()
        return cls(db, sql.views_home("postgres_schema", PublishConfig().postgres_schema, db.schema))

    def ref(self, schema: str, name: str) -> str:
        return f"{sql.POSTGRES.quote(schema)}.{sql.POSTGRES.quote(name)}"

    def publish(self) -> Published:
        with self.db.connection() as conn:
            try:
                return self._publish(conn)
            except psycopg2.Error as exc:
                rollback_quietly(conn)
                raise SinkError(f"Postgres views in schema {self.schema}: {first_line(exc)}") from None

    def _publish(self, conn: Connection) -> Published:
        src = self.db.schema
        with conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (lock_key("publish", self.schema),))
            landed = [c for c in COLORS if _exists(cur, self.ref(src, table_name(c)))]
            if not landed or not _exists(cur, self.ref(src, MARKERS)):
                raise SinkError(f"no month is loaded in schema {src}: nothing to publish")
            cur.execute(f"CREATE SCHEMA IF NOT EXISTS {sql.POSTGRES.quote(self.schema)}")
            parts = {c: (self.ref(src, table_name(c)), self.ref(src, MARKERS)) for c in landed}
            for color, (table, markers) in parts.items():
                view = sql.warehouse_view(sql.POSTGRES, color, table, markers)
                cur.execute(sql.create_view(self.ref(self.schema, table_name(color)), view))
            months = self.ref(self.schema, sql.MONTHS_VIEW)
            cur.execute(sql.create_view(months, sql.warehouse_months(sql.POSTGRES, parts)))
            cur.execute(f"SELECT color, source_month, row_count FROM {months}")  # noqa: S608 - validated names
            rows = cur.fetchall()
        conn.commit()
        return Published.from_rows("postgres", self.schema, landed, rows)


def _exists(cur: psycopg2.extensions.cursor, ref: str) -> bool:
    cur.execute("SELECT to_regclass(%s) IS NOT NULL", (ref,))
    return bool(cur.fetchone()[0])
