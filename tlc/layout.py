"""Where every artefact of a month lives: one function per artefact, in the bucket and on local disk.

The lake bucket is the truth, so that workers on several hosts see one another's work; the
local data directory is a cache of it, laid out the same way. Under the ``[tlc.gcs] prefix``:

    raw/{color}/{color}_tripdata_YYYY-MM.csv.gz          the source file as published
    _staging/v{S}/{color}/{stem}.{sha12}.parquet         a converted month, not yet published
    v{S}/{color}/YYYY/{stem}.parquet                     the published month: Parquet alone under
                                                         its prefix, so outside tools can glob it
    _meta/v{S}/{color}/{stem}.quality.json               the month's quality report
    _meta/v{S}/{color}/{stem}.manifest.json              the month's ledger

``S`` is the schema version: Parquet files of two schema versions never overwrite or mix.
Why not hive-style ``year=YYYY/month=MM`` keys: DuckDB (and so bqemulator's load jobs) reads
such directory names as extra columns, and a load into the month's table then fails; every
row carries ``source_month`` anyway, which readers filter on (row-group statistics prune).
"""

from __future__ import annotations

import re
from pathlib import Path

from tlc.errors import PipelineError
from tlc.month import Month
from tlc.schema import SCHEMA_VERSION

_V = f"v{SCHEMA_VERSION}"
_STAGED = re.compile(
    rf"_staging/{_V}/(?P<color>[a-z]+)/(?P=color)_tripdata_(?P<year>\d{{4}})-(?P<month>\d{{2}})\.(?P<sha12>[0-9a-f]{{12}})\.parquet"
)
RAW_SUFFIXES = {"csv": ".csv.gz", "parquet": ".parquet"}  # per source kind (Month.source)


def raw_suffix(month: Month) -> str:
    return RAW_SUFFIXES[month.source]


def raw_name(month: Month) -> str:
    """The source file's own name, as the publisher spells it."""
    return month.stem + raw_suffix(month)


# --- keys in the bucket, relative to the lake prefix ------------------------------------------


def raw_key(month: Month) -> str:
    return f"raw/{month.color}/{raw_name(month)}"


def staged_key(month: Month, sha256: str) -> str:
    """A converted month awaiting publication, named by content so two conversions never collide."""
    return f"{staged_prefix(month)}{sha256[:12]}.parquet"


def staged_month(key: str) -> tuple[Month, str] | None:
    """The month and sha256 prefix a staged key names (``staged_key`` read back); None for any
    other key, or one naming no valid month."""
    found = _STAGED.fullmatch(key)
    if found is None:
        return None
    try:
        return Month(found["color"], int(found["year"]), int(found["month"])), found["sha12"]
    except PipelineError:
        return None


def staged_prefix(month: Month) -> str:
    return f"{staged_color_prefix(month.color)}{month.stem}."


def staged_color_prefix(color: str) -> str:
    """Every staged month of a color: unpublished ones only, so a listing of it stays short."""
    return f"_staging/{_V}/{color}/"


def lake_key(month: Month) -> str:
    return f"{color_prefix(month.color)}{month.year}/{month.stem}.parquet"


def color_prefix(color: str) -> str:
    """Every published month of a color, and nothing else, lies under this prefix."""
    return f"{_V}/{color}/"


def lake_glob(color: str) -> str:
    """The published months of a color as a glob (DuckDB, BigQuery external tables)."""
    return f"{color_prefix(color)}*/*.parquet"


def meta_prefix(color: str | None = None) -> str:
    return f"_meta/{_V}/" + (f"{color}/" if color else "")


def quality_key(month: Month) -> str:
    return f"{meta_prefix(month.color)}{month.stem}.quality.json"


def manifest_key(month: Month) -> str:
    return f"{meta_prefix(month.color)}{month.stem}.manifest.json"


# --- the local cache: the same layout under the data directory ---------------------------------


def raw_path(root: Path, month: Month) -> Path:
    return root / "raw" / month.color / raw_name(month)


def raw_meta_path(raw: Path) -> Path:
    return raw.with_name(raw.name + ".meta.json")


def lake_path(root: Path, month: Month) -> Path:
    return root / "lake" / lake_key(month)


def quality_path(root: Path, month: Month) -> Path:
    return root / "lake" / quality_key(month)


def rejected_record(root: Path, month: Month) -> Path:
    """The record of the month's last refused download: its download record, why, and where it is kept."""
    return root / "rejected" / month.color / (raw_name(month) + ".meta.json")


def rejected_copy(root: Path, month: Month, sha256: str) -> Path:
    """A refused download, kept out of the task graph; named by content, so none overwrites another."""
    return root / "rejected" / month.color / f"{month.stem}.{sha256[:12]}{raw_suffix(month)}"
