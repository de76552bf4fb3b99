"""SQL identifiers built from configuration and parameters, validated before any use.

Schema, dataset and table names come from ``luigi.cfg`` and from the color parameter, so a
hostile or mistyped value (``x; DROP TABLE``) must never reach a statement. Only lower-case
names that need no quoting in Postgres or BigQuery pass; everything else is refused with the
offending value named.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from tlc.errors import InvalidInput

if TYPE_CHECKING:
    from tlc.month import Month

_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
_PROJECT = re.compile(r"(?:[a-z][a-z0-9.-]{0,61}[a-z0-9]:)?[a-z][a-z0-9-]{4,28}[a-z0-9]")  # optional legacy "domain:"


def identifier(value: str, what: str = "identifier") -> str:
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise InvalidInput(
            f"{what} {value!r} is not valid: use 1-63 lower-case letters, digits or _, not starting with a digit"
        )
    return value


def gcp_project(value: str) -> str:
    if not _PROJECT.fullmatch(value or ""):
        raise InvalidInput(f"project {value!r} is not valid: use a GCP project id (6-30 of a-z, 0-9, -)")
    return value


def table_name(color: str, suffix: str = "") -> str:
    """``{color}_tripdata``: a color's table in every warehouse."""
    return identifier(f"{color}_tripdata{suffix}", "table name")


def month_table_name(month: Month, suffix: str = "") -> str:
    """A month's own table (a Postgres partition, a staging table): ``{color}_tripdata_2021_01{suffix}``."""
    return table_name(month.color, f"_{month.year}_{month.month:02d}{suffix}")
