"""What Postgres holds per month: the load marker and the partition's row count, in one round trip."""

from __future__ import annotations

import datetime as dt
from typing import NamedTuple

import psycopg2
import psycopg2.errors
from psycopg2 import sql

from tlc import fingerprint, schema
from tlc.errors import SinkError
from tlc.fingerprint import Fingerprint
from tlc.identifiers import identifier, table_name
from tlc.month import Month
from tlc.postgres.connection import Connection, first_line, rollback_quietly
from tlc.postgres.tables import MARKERS


class MonthState(NamedTuple):
    """What the database holds for one month: the marker (None when absent) and the row count."""

    rows: int | None
    parquet_sha256: str | None
    count: int | None  # None when there is no marker (not counted)


def month_states(conn: Connection, schema_name: str, months: list[Month]) -> dict[Month, MonthState] | None:
    """The markers of several months of a color and their row counts, in one round trip.

    Each month's rows are counted through the parent (partition pruning reads only that
    month), and only when it has a marker. None when the schema or the tables do not exist
    yet (nothing was ever loaded there). The transaction is rolled back at once so the
    parent's share lock is not kept while luigi goes on scheduling. All months are of one color.
    """
    schema_name = identifier(schema_name, "postgres schema")
    (color,) = {m.color for m in months}
    days = [m.first_day for m in months]
    query = sql.SQL(
        "SELECT d.day, m.rows, m.parquet_sha256,"
        " CASE WHEN m.rows IS NOT NULL THEN (SELECT count(*) FROM {}.{} AS t WHERE t.{} = d.day) END"
        " FROM unnest(%s::date[]) AS d(day) LEFT JOIN {}.{} AS m ON m.color = %s AND m.source_month = d.day"
    ).format(
        sql.Identifier(schema_name),
        sql.Identifier(table_name(color)),
        sql.Identifier(schema.SOURCE_MONTH),
        sql.Identifier(schema_name),
        sql.Identifier(MARKERS),
    )
    try:
        with conn.cursor() as cur:
            cur.execute(query, (days, color))
            found = cur.fetchall()
    except (psycopg2.errors.UndefinedTable, psycopg2.errors.InvalidSchemaName):
        return None
    except psycopg2.Error as exc:
        raise SinkError(f"cannot read the {color} load markers in PostgreSQL: {first_line(exc)}") from None
    finally:
        rollback_quietly(conn)
    by_day = {day: MonthState(rows, sha, count) for day, rows, sha, count in found}
    return {m: by_day[m.first_day] for m in months}


def fingerprints(conn: Connection, schema_name: str, color: str) -> dict[dt.date, Fingerprint]:
    """The values of every month of a color, in one aggregate query (tlc.fingerprint)."""
    exprs, keys = fingerprint.select_list(color, "postgres")
    query = sql.SQL("SELECT source_month, {} FROM {}.{} GROUP BY source_month").format(
        sql.SQL(", ").join(map(sql.SQL, exprs)),
        sql.Identifier(identifier(schema_name, "postgres schema")),
        sql.Identifier(table_name(color)),
    )
    try:
        with conn.cursor() as cur:
            cur.execute(query)
            found = cur.fetchall()
    except (psycopg2.errors.UndefinedTable, psycopg2.errors.InvalidSchemaName):
        return {}
    except psycopg2.Error as exc:
        raise SinkError(f"cannot read the {color} values in PostgreSQL: {first_line(exc)}") from None
    finally:
        rollback_quietly(conn)
    return {row[0]: fingerprint.from_row(list(row[1:]), keys) for row in found}
