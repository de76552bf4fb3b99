"""The TLC spelling of every canonical column, derived from ``tlc.schema``, never listed by hand.

The course's dbt models name columns as the TLC files do (``VendorID``, ``tpep_pickup_datetime``,
``PULocationID``): each canonical ``Column`` lists those spellings as its aliases, the first
being the one the TLC writes, so the mapping follows the schema when a color or a column is
added. A column without an alias (``fare_amount``, fhv's ``pickup_datetime``) keeps its name,
and so does the lineage column ``source_month``, which tells which month a row came from.
"""

from __future__ import annotations

import re

from tlc import schema
from tlc.errors import InvalidInput

_PLAIN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")  # quoting such a name needs no escaping in any engine


def tlc_name(column: schema.Column) -> str:
    return column.aliases[0] if column.aliases else column.name


def renamed(color: str, fold_case: bool = False) -> list[tuple[str, str]]:
    """``(canonical, TLC name)`` of every column of the color, in table order, lineage last.

    ``fold_case`` lower-cases the TLC names: Postgres folds unquoted names to lower case, so
    only lower-case columns match the course's unquoted ``vendorid``. Two columns that would
    share a name, or a name that would need escaping, are a schema bug, refused here.
    """
    pairs = [(c.name, tlc_name(c).lower() if fold_case else tlc_name(c)) for c in schema.columns(color)]
    names = [published.lower() for _, published in pairs]
    clash = sorted({n for n in names if names.count(n) > 1})
    odd = [p for _, p in pairs if not _PLAIN.fullmatch(p)]
    if clash or odd:
        raise InvalidInput(f"{color}: TLC column names {clash or odd} cannot be published (check tlc/schema.py)")
    return pairs
