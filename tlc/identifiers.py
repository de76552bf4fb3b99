"""Identifiers built from configuration and parameters, validated before any use.

Schema, dataset and table names come from ``luigi.cfg`` and from the color parameter, so a
hostile or mistyped value (``x; DROP TABLE``) must never reach a statement. Only lower-case
names that need no quoting in Postgres or BigQuery pass; everything else is refused with the
offending value named. Project ids and the bucket name go into request URLs, so they are
held to GCP's own naming rules the same way.
"""

from __future__ import annotations

import ipaddress
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


# GCS: 3-63 of a-z 0-9 - _ . starting and ending with a letter or digit (up to 222 when dotted,
# each dot-separated part at most 63); no "goog" prefix, no "google" inside, no IP address.
_BUCKET = re.compile(r"[a-z0-9](?:[a-z0-9._-]{1,220})[a-z0-9]")


def gcs_bucket(value: str) -> str:
    """A GCS bucket name by Google's rules, refused before it reaches a URL."""
    text = value if isinstance(value, str) else ""
    parts = text.split(".")
    valid = (
        _BUCKET.fullmatch(text) is not None
        and (len(text) <= 63 or len(parts) > 1)
        and all(0 < len(p) <= 63 for p in parts)
        and not text.startswith("goog")
        and "google" not in text
        and not _is_ip_address(text)
    )
    if not valid:
        raise InvalidInput(
            f"bucket {value!r} is not valid: use a GCS bucket name (3-63 of a-z, 0-9, -, _ and ., starting and "
            "ending with a letter or digit; not an IP address; no goog prefix, no google)"
        )
    return text


# Object-name segments the lake writes under: no empty segment, nothing a shell, URL or the
# emulators' filesystem roots would read differently ("..", spaces, "%", "#", "?").
_PREFIX_SEGMENT = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,99}")


def gcs_prefix(value: str) -> str:
    """The lake's object prefix, without its outer slashes, refused before it names any object."""
    text = (value if isinstance(value, str) else "").strip("/")
    if not text or not all(_PREFIX_SEGMENT.fullmatch(part) for part in text.split("/")):
        raise InvalidInput(
            f"prefix {value!r} is not valid: use one or more /-separated segments of letters, digits, ., _ and - "
            "(not starting with ., at most 100 characters each)"
        )
    return text


def _is_ip_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def positive(value: float, what: str) -> float:
    """A bound from the configuration: a number above zero (0 or less would make every run fail or none)."""
    if not isinstance(value, (int, float)) or not value > 0:
        raise InvalidInput(f"{what} {value!r} is not valid: use a number above 0")
    return value


def table_name(color: str, suffix: str = "") -> str:
    """``{color}_tripdata``: a color's table in every warehouse."""
    return identifier(f"{color}_tripdata{suffix}", "table name")


def month_table_name(month: Month, suffix: str = "") -> str:
    """A month's own table (a Postgres partition, a staging table): ``{color}_tripdata_2021_01{suffix}``."""
    return table_name(month.color, f"_{month.year}_{month.month:02d}{suffix}")
