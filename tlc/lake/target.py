"""When is a month's canonical Parquet made? ``LakeParquet`` answers, from the lake bucket alone.

Made means: the month's quality report (``_meta/.../{stem}.quality.json``) was written under the
configuration in force (schema version, cleaning rules) and the Parquet it describes is in
the bucket, staged for publication or already published, byte for byte (GCS's md5 and size
equal the report's). The report is written after the Parquet is in place, so a report always
describes a whole object; changing a rule makes the report stale, which rebuilds the Parquet
and, through its new sha256, every load after it. The local file is a cache.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import luigi
import pyarrow.parquet as pq
from google.cloud import storage

from tlc import layout, quality, schema
from tlc.gcs import objects
from tlc.gcs.lake import Lake
from tlc.lake.writer import parquet_rows
from tlc.month import Month
from tlc.quality import QualityReport


def holds(blob: storage.Blob | None, report: QualityReport) -> bool:
    """The object is exactly the Parquet the report describes."""
    return (
        blob is not None and blob.md5_hash == objects.md5_b64(report.parquet.md5) and blob.size == report.parquet.size
    )


def lake_report(lake: Lake, month: Month) -> QualityReport | None:
    """The month's quality report as the lake holds it, typed; None while there is no whole one."""
    doc, _ = lake.read_json(layout.quality_key(month))
    return quality.parse(doc)


class LakeParquet(luigi.Target):
    def __init__(self, lake: Lake, root: Path, month: Month, rules: dict[str, Any]) -> None:
        self.lake, self.month, self.rules = lake, month, rules
        self.path = layout.lake_path(root, month)
        self.report_path = layout.quality_path(root, month)
        self.report_key = layout.quality_key(month)

    def report(self) -> QualityReport | None:
        """The month's quality report, typed; None while there is no whole one."""
        return lake_report(self.lake, self.month)

    @classmethod
    def reports(cls, targets: list[LakeParquet]) -> list[QualityReport | None]:
        """The reports of many months: one listing per color, then only the reports that exist."""
        listed: dict[tuple[tuple[str, str], str], set[str]] = {}
        found = []
        for t in targets:
            where = (t.lake.where, t.month.color)
            if where not in listed:
                listed[where] = set(t.lake.listing(layout.meta_prefix(t.month.color)))
            found.append(t.report() if t.report_key in listed[where] else None)
        return found

    def current(self, report: QualityReport | None) -> bool:
        """Made under the configuration in force: another schema version or other rules are stale."""
        return report is not None and report.schema_version == schema.SCHEMA_VERSION and report.rules == self.rules

    def staged_key(self, report: QualityReport) -> str:
        return layout.staged_key(self.month, report.parquet.sha256)

    def stored(self, report: QualityReport) -> storage.Blob | None:
        """The object holding the report's Parquet: the published one, else the staged one, else None."""
        for key in (layout.lake_key(self.month), self.staged_key(report)):
            blob = self.lake.get(key)
            if holds(blob, report):
                return blob
        return None

    def exists(self) -> bool:
        report = self.report()
        return self.current(report) and self.stored(report) is not None

    @classmethod
    def bulk_exists(cls, targets: list[LakeParquet]) -> list[bool]:
        """Many months from one listing per color of the reports and one of the published objects;
        a month not published yet is asked about its staged object alone."""
        published: dict[tuple[tuple[str, str], str], dict[str, storage.Blob]] = {}
        done = []
        for t, report in zip(targets, cls.reports(targets), strict=True):
            where = (t.lake.where, t.month.color)
            if where not in published:
                published[where] = t.lake.listing(layout.color_prefix(t.month.color))
            if not t.current(report):
                done.append(False)
            elif holds(published[where].get(layout.lake_key(t.month)), report):
                done.append(True)
            else:
                done.append(holds(t.lake.get(t.staged_key(report)), report))
        return done

    def cached(self, report: QualityReport) -> Path | None:
        """The local copy, when this host has exactly the report's Parquet (size and the cached report agree)."""
        local = quality.read(self.report_path)
        if local is None or local.parquet.sha256 != report.parquet.sha256 or not self.path.exists():
            return None
        return self.path if self.path.stat().st_size == report.parquet.size else None

    def rows(self, report: QualityReport | None = None) -> int | None:
        """Rows in the Parquet's own footer (this host's copy, else the object in the lake, read by
        range); None when the Parquet the report describes is nowhere."""
        report = report or self.report()
        if report is None:
            return None
        local = self.cached(report)
        if local is not None:
            return parquet_rows(local)
        blob = self.stored(report)
        if blob is None:
            return None
        with self.lake.reader(blob) as fh:
            return pq.ParquetFile(fh).metadata.num_rows

    def keep(self, report: QualityReport) -> None:
        """Stage the Parquet written at ``self.path`` in the bucket, then its report: the report is the commit."""
        metadata = {"rows": str(report.rows_written), "parquet_sha256": report.parquet.sha256}
        self.lake.put(self.staged_key(report), self.path, report.parquet.md5, metadata, objects.PARQUET)
        quality.write(self.report_path, report)
        self.lake.write_json(self.report_key, report.to_dict())

    def facts(self) -> dict[str, Any]:
        """The ledger's ``parquet`` entry."""
        report = self.report()
        if report is None:
            raise ValueError(f"{self.month.label}: no quality report")
        return {
            "file": layout.lake_key(self.month),
            "rows_read": report.rows_read,
            "rows_written": report.rows_written,
            "rows_dropped": report.rows_dropped,
            "rules": report.rules,
            "size": report.parquet.size,
            "sha256": report.parquet.sha256,
            "md5": report.parquet.md5,
            "source_sha256": report.source.sha256,
            "source_etag": report.source.etag,
        }
