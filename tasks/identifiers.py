"""SQL identifiers built from configuration and parameters, validated before any use.

Schema, dataset and table names come from ``luigi.cfg`` and from the color parameter, so a
hostile or mistyped value (``x; DROP TABLE``) must never reach a statement. Only lower-case
names that need no quoting in Postgres or BigQuery pass; everything else is refused with the
offending value named.
"""

from __future__ import annotations

import re

from tasks.errors import InvalidInput

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


def table_name(color: str, year: int | None = None, month: int | None = None, suffix: str = "") -> str:
    """``{color}_tripdata``, or a month's own table: ``{color}_tripdata_2021_01{suffix}``."""
    name = f"{color}_tripdata"
    if year is not None and month is not None:
        name += f"_{year}_{month:02d}"
    return identifier(name + suffix, "table name")
