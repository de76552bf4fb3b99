"""The source kinds side by side: where a month's file is published, how its download is proven
whole, how it is read. ``Month.source`` picks the row; nothing else branches on the kind."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tlc.month import Month
from tlc.sources import csv_releases, tlc_parquet

if TYPE_CHECKING:  # not imported at run time: the conversion process needs no luigi
    from tlc.config import SourceConfig

URLS = {"csv": csv_releases.url, "parquet": tlc_parquet.url}
VERIFIERS = {"csv": csv_releases.GzipVerifier, "parquet": tlc_parquet.ParquetVerifier}
READERS = {"csv": csv_releases.batches, "parquet": tlc_parquet.batches}
NAMES = {"csv": "the DataTalksClub CSV releases", "parquet": "the TLC's Parquet files"}


def month_url(month: Month, cfg: SourceConfig) -> str:
    """The URL of the month's file at its source kind's configured base URL."""
    return URLS[month.source](cfg.base_url(month.source), month)
