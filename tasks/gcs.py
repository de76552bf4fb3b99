"""GCSObject: the month published in the lake, under its glob-able key, with its lineage as metadata."""

from __future__ import annotations

import datetime as dt
import logging
from typing import TYPE_CHECKING

from tasks.params import MonthTask
from tasks.parquet import ParquetFile
from tlc import phases
from tlc.errors import SinkError

if TYPE_CHECKING:
    from google.cloud import storage

    from tlc.gcs.lake import Lake
    from tlc.gcs.target import GcsObject

STAGING_GRACE = dt.timedelta(days=1)  # a staged copy younger than this is never cleaned up: a run may be at it
logger = logging.getLogger("luigi-interface")

# The Google clients are imported where a stage runs, not with the module: every luigi CLI
# run imports every task module, and the clients would add ~0.3 s to each start.


class GCSObject(MonthTask):
    """Publish ``{prefix}/v{schema}/{color}/{YYYY}/{color}_tripdata_YYYY-MM.parquet``
    (a copy inside GCS of the staged Parquet); done when that object is byte for byte the Parquet
    its quality report describes (see ``tlc.gcs.target.GcsObject``)."""

    ledger_stage = "gcs"
    upstream = ParquetFile

    def output(self) -> GcsObject:
        from tlc.gcs.lake import Lake
        from tlc.gcs.target import GcsObject

        return GcsObject(Lake.from_config(), self.unit, self.requires().output())

    @staticmethod
    def _published_meanwhile(out: GcsObject) -> bool:
        try:
            return out.blob() is not None
        except SinkError:  # the lake is still away: the publication's own error says more
            return False

    def _drop_staging(self, lake: Lake, published_from: storage.Blob) -> None:
        """The staged copy this run published from, and copies of any month of the color that
        nothing will publish (``tlc.lake.staging``): any month's, since a month once published is
        rarely published again. Housekeeping: a failure is a warning, never a failed publication."""
        from tlc.lake import staging

        try:
            staging.sweep(lake, self.unit.color, published_from, STAGING_GRACE)
        except SinkError as exc:
            logger.warning(
                "%s: staged copies left in the lake (%s); the next publication tries again", self.unit.label, exc
            )

    def make(self) -> None:
        out = self.output()
        # Read before the report: whatever is published after this (a newer report always comes
        # first) fails our rewrite's generation precondition, so no older Parquet replaces it.
        before = out.lake.get(out.key)
        report, lake = out.report(), out.lake
        # A concurrent writer may publish the month (and drop the staged copy) between our lookups.
        staged = out.parquet.stored(report) or out.blob()
        if staged is None:
            raise SinkError(f"{self.unit.label}: the staged Parquet is gone from the lake; rerun ParquetFile")
        self.set_status_message(f"{self.unit.label}: publishing {report.parquet.size / 1e6:.1f} MB at {out.uri}")
        metadata = {
            "rows": str(report.rows_written),
            "schema_version": str(report.schema_version),
            "source_sha256": str(report.source.sha256),
            "parquet_sha256": report.parquet.sha256,
            "source_month": self.unit.key,
        }
        phases.reached("gcs.publishing", name=out.name)
        if staged.name != out.name:
            try:
                lake.publish(staged, out.key, report.parquet.md5, metadata, before.generation if before else 0)
            except SinkError as failed:
                if not self._published_meanwhile(out):  # another writer's identical publication is no failure
                    raise failed from None
        self._drop_staging(lake, staged)
        self.record_stage()
        self.set_progress_percentage(100)
        self.set_status_message(f"{self.unit.label}: {out.uri} verified (md5)")
