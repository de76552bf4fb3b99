"""GCSObject: the month's Parquet in the lake bucket, with its lineage as object metadata."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tasks.params import MonthTask
from tasks.parquet import ParquetFile
from tlc import layout
from tlc.config import PathsConfig

if TYPE_CHECKING:
    from tlc.gcs.target import GcsObject

# The Google clients are imported where a sink is used, not with the module: every luigi
# CLI run imports every task module, and the clients would add ~0.3 s to each start.


class GCSObject(MonthTask):
    """Upload ``{prefix}/v{schema}/{color}/{YYYY}/{color}_tripdata_{YYYY}-{MM}.parquet``; done when
    the object is byte for byte the local Parquet (see ``tlc.gcs.target.GcsObject``)."""

    ledger_stage = "gcs"
    upstream = ParquetFile

    def output(self) -> GcsObject:
        from tlc.gcs.target import GcsObject, Lake

        return GcsObject(Lake.from_config(), self.unit, self.requires().output())

    def publish_manifest(self) -> None:
        """Copy the month's ledger next to its object, so the bucket audits itself."""
        self.output().lake.publish_manifest(layout.manifest_path(PathsConfig().root(), self.unit), self.unit)

    def run(self) -> None:
        from tlc.gcs import objects

        out = self.output()
        parquet, report = out.parquet, out.report()
        self.set_status_message(f"{self.unit.label}: uploading {report.parquet.size / 1e6:.1f} MB to {out.uri}")
        bucket = out.lake.ensure_bucket()
        metadata = {
            "rows": str(report.rows_written),
            "schema_version": str(report.schema_version),
            "source_sha256": str(report.source.sha256),
            "parquet_sha256": report.parquet.sha256,
            "source_month": self.unit.key,
        }
        objects.upload(bucket, out.name, parquet.path, report.parquet.md5, metadata, out.lake.retry_seconds)
        self.record_stage()
        self.publish_manifest()
        self.set_progress_percentage(100)
        self.set_status_message(f"{self.unit.label}: {out.uri} verified (md5)")
