"""The views' SQL, written once for DuckDB, BigQuery and Postgres.

Every name spliced in here is either a validated identifier (``tlc.identifiers``), a table
reference built from validated identifiers by the caller, a color of ``tlc.month.COLORS``, or
a TLC column name checked by ``tlc.publish.columns``; each is quoted as its engine quotes
identifiers. A view is a SELECT with the columns renamed, so it is as cheap as the table.

In the warehouses a month is visible only when it is complete: its load marker exists (the
pipeline writes it in the same transaction as the month's rows) and the month holds exactly
the marker's rows. Months being loaded, loaded by hand or damaged since are hidden, never
served silently. The months view lists what each color's view holds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from tlc import schema
from tlc.errors import InvalidInput
from tlc.identifiers import identifier
from tlc.month import validate_color
from tlc.publish.columns import renamed

MONTHS_VIEW = "months"


@dataclass(frozen=True)
class Dialect:
    quote: Callable[[str], str]  # one plain name, quoted
    fold_case: bool = False  # Postgres: lower-case TLC names, so unquoted references match


DUCKDB = Dialect(lambda name: f'"{name}"')
BIGQUERY = Dialect(lambda name: f"`{name}`")
POSTGRES = Dialect(lambda name: f'"{name}"', fold_case=True)


def views_home(key: str, value: str, tables_home: str) -> str:
    """The configured schema or dataset of the views: a valid name, and never the one holding the
    pipeline's tables, whose names the views take."""
    name = identifier(value, f"[tlc.publish] {key}")
    if name == tables_home:
        raise InvalidInput(f"[tlc.publish] {key} {name!r} holds the pipeline's tables: use another")
    return name


def _literal(color: str) -> str:
    return f"'{validate_color(color)}'"


def create_view(ref: str, select: str) -> str:
    """Idempotent: a rerun replaces the view (same columns) and never copies data."""
    return f"CREATE OR REPLACE VIEW {ref} AS\n{select}"


def renamed_select(d: Dialect, color: str, source: str) -> str:
    """The color's columns under their TLC names, from ``source`` (aliased ``t``)."""
    q = d.quote
    columns = ",\n  ".join(f"t.{q(canonical)} AS {q(tlc)}" for canonical, tlc in renamed(color, d.fold_case))
    return f"SELECT\n  {columns}\nFROM {source} AS t"


def complete_months(d: Dialect, color: str, table: str, markers: str) -> str:
    """``(source_month, row_count)`` of the color's months whose marker matches their rows."""
    q, month = d.quote, d.quote(schema.SOURCE_MONTH)
    return (
        f"SELECT m.{month}, m.{q('rows')} AS {q('row_count')}\n"  # noqa: S608 - validated names (module docstring)
        f"FROM {markers} AS m\n"
        f"JOIN (SELECT {month}, COUNT(*) AS {q('n')} FROM {table} GROUP BY {month}) AS c\n"
        f"  ON c.{month} = m.{month} AND c.{q('n')} = m.{q('rows')}\n"
        f"WHERE m.{q('color')} = {_literal(color)}"
    )


def warehouse_view(d: Dialect, color: str, table: str, markers: str) -> str:
    """The color's table renamed, restricted to its complete months."""
    month = d.quote(schema.SOURCE_MONTH)
    ok = complete_months(d, color, table, markers).replace("\n", "\n  ")
    return f"{renamed_select(d, color, table)}\nJOIN (\n  {ok}\n) AS ok ON ok.{month} = t.{month}"


def warehouse_months(d: Dialect, parts: dict[str, tuple[str, str]]) -> str:
    """The months view: ``color, source_month, row_count`` of every published color.

    ``parts`` maps each color to its (table, markers) references.
    """
    month = d.quote(schema.SOURCE_MONTH)
    selects = [
        f"SELECT {_literal(color)} AS {d.quote('color')}, ok.{month}, ok.{d.quote('row_count')}\n"
        f"FROM ({complete_months(d, color, table, markers)}) AS ok"
        for color, (table, markers) in parts.items()
    ]
    return "\nUNION ALL\n".join(selects)


def lake_months(views: dict[str, str]) -> str:
    """DuckDB's months view, counted from each color's view (``views``: color -> view reference)."""
    month = DUCKDB.quote(schema.SOURCE_MONTH)
    return "\nUNION ALL\n".join(
        f'SELECT {_literal(color)} AS "color", {month}, COUNT(*) AS "row_count" FROM {view} GROUP BY {month}'  # noqa: S608 - validated names
        for color, view in views.items()
    )


def string_literal(text: str) -> str:
    """A configured path as a SQL string literal (quotes doubled): views and INSTALL take no parameters."""
    return "'{}'".format(text.replace("'", "''"))


def read_parquet(glob: str) -> str:
    """DuckDB's scan of a lake glob."""
    return f"read_parquet({string_literal(glob)})"
