"""GCSObject: the month's Parquet in the lake bucket, with its lineage as object metadata."""

from __future__ import annotations

from tasks import layout, ledger
from tasks.params import MonthTask
from tasks.parquet import ParquetFile
from tasks.settings import gcs, paths


class GCSObject(MonthTask):
    """Upload ``{prefix}/v{schema}/{color}/{YYYY}/{color}_tripdata_{YYYY}-{MM}.parquet``.

    Done only when the remote object's md5 equals the local Parquet's recorded md5, so a
    deleted, truncated or overwritten object is noticed and uploaded again.
    """

    def requires(self) -> ParquetFile:
        return ParquetFile(color=self.color, year=self.year, month=self.month)

    def object_name(self) -> str:
        return f"{gcs().prefix.strip('/')}/{layout.lake_key(self.color, self.year, self.month)}"

    def uri(self) -> str:
        return f"gs://{gcs().bucket_name()}/{self.object_name()}"

    def publish_manifest(self) -> None:
        """Copy the month's ledger next to its object, so the bucket audits itself."""
        from tasks import gcp, lake

        local = ledger.manifest_path(paths().root(), self.color, self.year, self.month)
        name = self.object_name().removesuffix(".parquet") + ".manifest.json"
        lake.put_small(gcp.lake_bucket(), name, local, gcs().retry_seconds)

    ledger_stage = "gcs"

    def ledger_facts(self) -> dict:
        parquet = (self.requires().report() or {})["parquet"]
        return {
            "uri": self.uri(),
            "generation": self.lake_generation(),
            "size": parquet["size"],
            "md5": parquet["md5"],
            "parquet_sha256": parquet["sha256"],
        }

    def lake_generation(self) -> int | None:
        """The object's generation while it holds exactly the local Parquet, else None.

        Complete means it is not None; BigQueryTable asks again before and after its load job.
        """
        report = self.requires().report()
        if not report:
            return None
        from tasks import gcp, lake  # google clients load only when a sink is used

        parquet = report["parquet"]
        return lake.matching_generation(
            gcp.lake_bucket(), self.object_name(), parquet["md5"], parquet["size"], gcs().retry_seconds
        )

    def complete(self) -> bool:
        return self.requires().complete() and self.lake_generation() is not None

    @classmethod
    def completed_among(cls, tasks: list[GCSObject]) -> set[str]:
        """Task ids done, from one object listing per color instead of one lookup per month."""
        from google.api_core.exceptions import NotFound

        from tasks import gcp, lake

        cfg, bucket = gcs(), gcp.lake_bucket()
        done = set()
        for color in {t.color for t in tasks}:
            prefix = f"{cfg.prefix.strip('/')}/{layout.lake_prefix(color)}"
            retry = gcp.storage_retry(cfg.retry_seconds)
            with gcp.sink_errors(f"GCS listing of gs://{bucket.name}/{prefix}"):
                try:
                    blobs = {b.name: b for b in bucket.list_blobs(prefix=prefix, retry=retry)}
                except NotFound:  # no bucket yet: nothing uploaded
                    blobs = {}
            for t in (t for t in tasks if t.color == color):
                report, blob = t.requires().report(), blobs.get(t.object_name())
                if report and blob and t.requires().complete():
                    parquet = report["parquet"]
                    if blob.md5_hash == lake.md5_b64(parquet["md5"]) and blob.size == parquet["size"]:
                        done.add(t.task_id)
        return done

    def run(self) -> None:
        from tasks import gcp, lake

        cfg = gcs()
        report = self.requires().report() or {}
        path = layout.lake_path(paths().root(), self.color, self.year, self.month)
        self.set_status_message(f"{self.label}: uploading {path.stat().st_size / 1e6:.1f} MB to {self.uri()}")
        bucket = lake.ensure_bucket(
            gcp.storage_client(cfg.project_id()), cfg.bucket_name(), cfg.location, cfg.retry_seconds
        )
        metadata = {
            "rows": str(report["rows_written"]),
            "schema_version": str(report["schema_version"]),
            "source_sha256": str(report.get("source", {}).get("sha256")),
            "parquet_sha256": report["parquet"]["sha256"],
            "source_month": f"{self.year}-{self.month:02d}",
        }
        lake.upload(bucket, self.object_name(), path, report["parquet"]["md5"], metadata, cfg.retry_seconds)
        self.record_stage()
        self.publish_manifest()
        self.set_progress_percentage(100)
        self.set_status_message(f"{self.label}: {self.uri()} verified (md5)")
