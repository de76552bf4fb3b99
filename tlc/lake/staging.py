"""Clean-up of staged Parquet in the lake: what a publication may delete, and what it must keep.

A staged copy is how a converted month waits for ``GCSObject``, on any host; ``ParquetFile``
counts as done while it is there. So age alone never makes a copy an orphan: a month staged
yesterday and not yet published (the lake was away, the run was killed) is exactly what the
next run publishes. A copy is dropped only when nothing will publish it: its month's quality
report names another Parquet (superseded), or the published object already holds it.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from tlc import layout
from tlc.lake.target import holds, lake_report

if TYPE_CHECKING:
    from google.cloud import storage

    from tlc.gcs.lake import Lake


def sweep(lake: Lake, color: str, published_from: storage.Blob, grace: dt.timedelta) -> list[str]:
    """Delete the copy just published from, and the color's copies older than ``grace`` that
    nothing will publish; return the keys deleted. Another run's fresh copy is never touched."""
    cutoff = dt.datetime.now(dt.UTC) - grace
    dropped = []
    for key, blob in lake.listing(layout.staged_color_prefix(color)).items():
        old = blob.time_created is not None and blob.time_created < cutoff
        if blob.name == published_from.name or (old and not _pending(lake, key)):
            lake.delete(blob)
            dropped.append(key)
    return dropped


def _pending(lake: Lake, key: str) -> bool:
    """The copy is the Parquet its month's report names, and no published object holds it yet."""
    staged = layout.staged_month(key)
    if staged is None:  # no valid month: nothing will ever publish it
        return False
    month, sha12 = staged
    report = lake_report(lake, month)
    if report is None or not report.parquet.sha256.startswith(sha12):
        return False
    return not holds(lake.get(layout.lake_key(month)), report)
