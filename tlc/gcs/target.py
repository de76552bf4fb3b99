"""When is a month published in the lake? ``GcsObject`` answers, for one month and for many at once.

The published object (``{prefix}/v{S}/{color}/{YYYY}/{stem}.parquet``) is the
month only when GCS's md5 of it (and its size) equal what the quality report recorded when
the Parquet was written: a deleted, truncated, replaced or foreign object is not the month,
and is published again. The generation of a matching object pins it: BigQuery's load
compares it before and after its job, and Postgres reads exactly that generation.
"""

from __future__ import annotations

from typing import Any

from google.cloud import storage

from tlc import layout
from tlc.gcs.lake import Lake
from tlc.lake.target import LakeParquet, holds
from tlc.month import Month
from tlc.quality import QualityReport
from tlc.sink import SinkState, SinkTarget


class GcsObject(SinkTarget[Lake]):
    stage = "gcs"

    def __init__(self, lake: Lake, month: Month, parquet: LakeParquet) -> None:
        super().__init__(lake, month, parquet)
        self.lake, self.key = lake, layout.lake_key(month)
        self.name, self.uri = lake.name(self.key), lake.uri(self.key)

    def _lookup_one(self) -> storage.Blob | None:
        return self.lake.get(self.key)

    @classmethod
    def _lookup(cls, targets: list[GcsObject]) -> list[storage.Blob | None]:
        listings: dict[tuple[tuple[str, str], str], dict[str, storage.Blob]] = {}
        found = []
        for t in targets:
            where = (t.lake.where, t.month.color)
            if where not in listings:
                listings[where] = t.lake.listing(layout.color_prefix(t.month.color))
            found.append(listings[where].get(t.key))
        return found

    def _state(self, blob: storage.Blob | None, report: QualityReport | None) -> SinkState:
        if blob is None:
            return SinkState(None, False)
        rows = int((blob.metadata or {}).get("rows", -1))
        if report is None:
            return SinkState(rows, False)
        if not holds(blob, report):
            return SinkState(rows, False, "GCS object differs from the Parquet (md5)")
        return self._judged(rows, True, report)

    def blob(self) -> storage.Blob | None:
        """The published object while it holds exactly the report's Parquet, else None."""
        report, blob = self.parquet.report(), self._lookup_one()
        return blob if report is not None and holds(blob, report) else None

    def generation(self) -> int | None:
        """The object's generation while it holds exactly the report's Parquet, else None."""
        blob = self.blob()
        return int(blob.generation) if blob is not None else None

    def facts(self) -> dict[str, Any]:
        """The ledger's ``gcs`` entry: where the object is, which generation, which Parquet it holds."""
        report = self.report()
        return {
            "uri": self.uri,
            "generation": self.generation(),
            "size": report.parquet.size,
            "md5": report.parquet.md5,
            "parquet_sha256": report.parquet.sha256,
        }
