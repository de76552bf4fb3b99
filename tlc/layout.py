"""Where each stage's output lives, locally and in the bucket: one function per artefact.

The lake key carries the schema version, so Parquet files of two schema versions never
overwrite or mix with each other; the same key is used on disk and as the GCS object name.
"""

from __future__ import annotations

from pathlib import Path

from tlc.month import Month
from tlc.schema import SCHEMA_VERSION

RAW_SUFFIXES = {"csv": ".csv.gz", "parquet": ".parquet"}  # per source kind (Month.source)


def raw_suffix(month: Month) -> str:
    return RAW_SUFFIXES[month.source]


def raw_name(month: Month) -> str:
    """The source file's own name, as the publisher spells it."""
    return month.stem + raw_suffix(month)


def raw_path(root: Path, month: Month) -> Path:
    return root / "raw" / month.color / raw_name(month)


def raw_meta_path(raw: Path) -> Path:
    return raw.with_name(raw.name + ".meta.json")


def rejected_record(root: Path, month: Month) -> Path:
    """The record of the month's last refused download: its download record, why, and where it is kept."""
    return root / "rejected" / month.color / (raw_name(month) + ".meta.json")


def rejected_copy(root: Path, month: Month, sha256: str) -> Path:
    """A refused download, kept out of the task graph; named by content, so none overwrites another."""
    return root / "rejected" / month.color / f"{month.stem}.{sha256[:12]}{raw_suffix(month)}"


def lake_prefix(color: str) -> str:
    return f"v{SCHEMA_VERSION}/{color}/"


def lake_key(month: Month) -> str:
    return f"{lake_prefix(month.color)}{month.year}/{month.stem}.parquet"


def lake_path(root: Path, month: Month) -> Path:
    return root / "lake" / lake_key(month)


def quality_path(parquet: Path) -> Path:
    return parquet.with_name(parquet.name.removesuffix(".parquet") + ".quality.json")


def manifest_path(root: Path, month: Month) -> Path:
    parquet = lake_path(root, month)
    return parquet.with_name(parquet.name.removesuffix(".parquet") + ".manifest.json")


def manifest_name(object_name: str) -> str:
    """The manifest's object name beside the month's lake object."""
    return object_name.removesuffix(".parquet") + ".manifest.json"
