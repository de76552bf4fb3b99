"""When is a month in the lake bucket? ``GcsObject`` answers, for one month and for many at once.

The object is the month's Parquet only when GCS's md5 of it (and its size) equal what the
quality report recorded when the Parquet was written: a deleted, truncated, replaced or
foreign object is not the month, and is uploaded again. The generation of a matching
object pins it: BigQuery's load compares it before and after its job.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from google.api_core.exceptions import NotFound
from google.cloud import storage

from tlc import gcp, layout
from tlc.config import GcsConfig
from tlc.gcs import objects
from tlc.lake.target import LakeParquet
from tlc.month import Month
from tlc.sink import SinkState, SinkTarget


@dataclass(frozen=True)
class Lake:
    """The lake bucket (a handle: no request is made until used) and where months live in it."""

    bucket: storage.Bucket
    prefix: str
    location: str
    retry_seconds: float

    @classmethod
    def from_config(cls) -> Lake:
        cfg = GcsConfig()
        bucket = gcp.storage_client(cfg.project_id()).bucket(cfg.bucket_name())
        return cls(bucket, cfg.prefix.strip("/"), cfg.location, cfg.retry_seconds)

    def object_name(self, month: Month) -> str:
        return f"{self.prefix}/{layout.lake_key(month)}"

    def uri(self, month: Month) -> str:
        return f"gs://{self.bucket.name}/{self.object_name(month)}"

    def color_prefix(self, color: str) -> str:
        return f"{self.prefix}/{layout.lake_prefix(color)}"

    def ensure_bucket(self) -> storage.Bucket:
        return objects.ensure_bucket(self.bucket.client, self.bucket.name, self.location, self.retry_seconds)

    def publish_manifest(self, local: Path, month: Month) -> None:
        """Copy the month's ledger next to its object, so the bucket audits itself."""
        objects.put_small(self.bucket, layout.manifest_name(self.object_name(month)), local, self.retry_seconds)

    def blobs(self, color: str) -> dict[str, storage.Blob]:
        """Every object of a color, by name, from one listing; empty when there is no bucket yet."""
        prefix = self.color_prefix(color)
        with gcp.sink_errors(f"GCS listing of gs://{self.bucket.name}/{prefix}"):
            try:
                blobs = self.bucket.list_blobs(prefix=prefix, retry=gcp.storage_retry(self.retry_seconds))
                return {b.name: b for b in blobs}
            except NotFound:
                return {}


class GcsObject(SinkTarget[Lake]):
    """The month's Parquet as an object of the lake bucket, exactly as written locally."""

    stage = "gcs"

    def __init__(self, lake: Lake, month: Month, parquet: LakeParquet) -> None:
        super().__init__(lake, month, parquet)
        self.lake, self.name, self.uri = lake, lake.object_name(month), lake.uri(month)

    def _state(self, blob: storage.Blob | None) -> SinkState:
        report = self.parquet.report()
        if blob is None:
            return SinkState(None, False)
        rows = int((blob.metadata or {}).get("rows", -1))
        if report is None:
            return SinkState(rows, False)
        if blob.md5_hash != objects.md5_b64(report.parquet.md5) or blob.size != report.parquet.size:
            return SinkState(rows, False, "GCS object differs from the Parquet (md5)")
        return SinkState(rows, self.parquet.exists())

    def generation(self) -> int | None:
        """The object's generation while it holds exactly the local Parquet, else None."""
        report = self.parquet.report()
        if report is None:
            return None
        return objects.matching_generation(
            self.lake.bucket, self.name, report.parquet.md5, report.parquet.size, self.lake.retry_seconds
        )

    def exists(self) -> bool:
        """Asks the bucket only once the local Parquet is done: until then the object cannot be."""
        return self.parquet.exists() and self.observe().done

    def observe(self) -> SinkState:
        """One object lookup: cheaper than a listing for a single month."""
        with gcp.sink_errors(f"GCS read of {self.uri}"):
            blob = self.lake.bucket.get_blob(self.name, retry=gcp.storage_retry(self.lake.retry_seconds))
        return self._state(blob)

    @classmethod
    def observe_all(cls, targets: list[GcsObject]) -> list[SinkState]:
        """One object listing per color instead of one lookup per month."""
        listings: dict[tuple[int, str], dict[str, storage.Blob]] = {}
        states = []
        for t in targets:
            key = (id(t.lake), t.month.color)
            if key not in listings:
                listings[key] = t.lake.blobs(t.month.color)
            states.append(t._state(listings[key].get(t.name)))
        return states

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
