"""The Postgres tables: one LIST-partitioned table per color and the load markers, made idempotently.

Each color is one table, ``{schema}.{color}_tripdata``, partitioned by ``source_month`` so a
month can be replaced as a whole. ``load_markers`` records, per color and month, the row
count and the sha256 of the Parquet that was loaded, so "loaded from this very file" can be
told apart from "some rows are there" in one query.
"""

from __future__ import annotations

import psycopg2
from psycopg2 import sql

from tlc import schema
from tlc.errors import SinkError
from tlc.identifiers import identifier, table_name
from tlc.postgres.connection import Connection, first_line, lock_key, rollback_quietly

MARKERS = "load_markers"
_CANONICAL_TYPES = {"timestamp": "timestamp without time zone"}  # as format_type() spells them


def column_defs(color: str) -> sql.Composed:
    """Explicit column definitions: the lineage column is the partition key, so never NULL."""
    defs = []
    for name, pg_type in schema.postgres_columns(color):
        not_null = " NOT NULL" if name == schema.SOURCE_MONTH else ""
        defs.append(sql.SQL("{} {}" + not_null).format(sql.Identifier(name), sql.SQL(pg_type)))
    return sql.SQL(", ").join(defs)


def _ddl(schema_name: str, color: str) -> list[sql.Composed]:
    """The statements that make the schema, the color's partitioned parent and the marker table."""
    return [
        sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema_name)),
        sql.SQL("CREATE TABLE IF NOT EXISTS {}.{} ({}) PARTITION BY LIST ({})").format(
            sql.Identifier(schema_name),
            sql.Identifier(table_name(color)),
            column_defs(color),
            sql.Identifier(schema.SOURCE_MONTH),
        ),
        sql.SQL(
            "CREATE TABLE IF NOT EXISTS {}.{} (color text NOT NULL, source_month date NOT NULL,"
            " rows bigint NOT NULL, parquet_sha256 text NOT NULL, loaded_at timestamptz NOT NULL,"
            " PRIMARY KEY (color, source_month))"
        ).format(sql.Identifier(schema_name), sql.Identifier(identifier(MARKERS, "table name"))),
    ]


def ensure_table(conn: Connection, schema_name: str, color: str) -> None:
    """Create the schema, the color's partitioned parent and the marker table when missing.

    Idempotent, and safe when several workers start at once: ``IF NOT EXISTS`` alone races
    (two CREATE SCHEMA IF NOT EXISTS can both try to insert and one fails on a unique
    index), so the DDL runs under a transaction-scoped advisory lock per schema. An existing
    parent whose columns differ from the schema version is refused rather than half-loaded.
    """
    schema_name = identifier(schema_name, "postgres schema")
    parent = table_name(color)
    statements = _ddl(schema_name, color)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (lock_key("ddl", schema_name),))
            for statement in statements:
                cur.execute(statement)
            cur.execute(
                "SELECT c.relkind, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull"
                " FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid"
                " WHERE c.oid = to_regclass(%s) AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
                (f"{schema_name}.{parent}",),
            )
            found = cur.fetchall()
        conn.commit()
    except psycopg2.Error as exc:
        rollback_quietly(conn)
        raise SinkError(f"cannot create {schema_name}.{parent} in PostgreSQL: {first_line(exc)}") from None
    except BaseException:
        rollback_quietly(conn)
        raise
    expected = [(n, _CANONICAL_TYPES.get(t, t)) for n, t in schema.postgres_columns(color)]
    actual = [(name, pg_type) for _, name, pg_type, _ in found]
    if any(kind != "p" for kind, *_ in found) or actual != expected:
        raise SinkError(
            f"{schema_name}.{parent} exists but is not the partitioned table of schema v{schema.SCHEMA_VERSION} "
            f"(columns {[n for n, _ in actual]}); drop it or set another [tlc.postgres] schema"
        )
