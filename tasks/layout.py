"""Where each stage's output lives, locally and in the bucket: one function per artefact.

The lake key carries the schema version, so Parquet files of two schema versions never
overwrite or mix with each other; the same key is used on disk and as the GCS object name.
"""

from __future__ import annotations

from pathlib import Path

from tasks.fetch import month_file_name
from tasks.schema import SCHEMA_VERSION


def raw_path(root: Path, color: str, year: int, month: int) -> Path:
    return root / "raw" / color / month_file_name(color, year, month)


def raw_meta_path(raw: Path) -> Path:
    return raw.with_name(raw.name + ".meta.json")


def rejected_record(root: Path, color: str, year: int, month: int) -> Path:
    """The record of the month's last refused download: its download record, why, and where it is kept."""
    return root / "rejected" / color / (month_file_name(color, year, month) + ".meta.json")


def rejected_copy(root: Path, color: str, year: int, month: int, sha256: str) -> Path:
    """A refused download, kept out of the task graph; named by content, so none overwrites another."""
    name = month_file_name(color, year, month).removesuffix(".csv.gz")
    return root / "rejected" / color / f"{name}.{sha256[:12]}.csv.gz"


def lake_prefix(color: str) -> str:
    return f"v{SCHEMA_VERSION}/{color}/"


def lake_key(color: str, year: int, month: int) -> str:
    return f"{lake_prefix(color)}{year}/{color}_tripdata_{year}-{month:02d}.parquet"


def lake_path(root: Path, color: str, year: int, month: int) -> Path:
    return root / "lake" / lake_key(color, year, month)


def quality_path(parquet: Path) -> Path:
    return parquet.with_name(parquet.name.removesuffix(".parquet") + ".quality.json")
