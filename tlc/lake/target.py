"""When is a month's canonical Parquet in the lake? ``LakeParquet`` answers.

The report is written after the Parquet is in place, so a report always describes a whole
file; a Parquet without a report (a killed run) is not done. Done also means "made under the
configuration in force": a report of another schema version or other cleaning rules is stale,
so changing a rule rebuilds the Parquet, and through its new sha256 every load after it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import luigi

from tlc import layout, quality, schema
from tlc.lake.writer import parquet_rows
from tlc.month import Month
from tlc.quality import QualityReport


class LakeParquet(luigi.Target):
    def __init__(self, root: Path, month: Month, rules: dict[str, Any]) -> None:
        self.month, self.rules = month, rules
        self.path = layout.lake_path(root, month)
        self.report_path = layout.quality_path(self.path)

    def report(self) -> QualityReport | None:
        """The quality report beside the Parquet, typed; None while there is no whole one."""
        return quality.read(self.report_path)

    def rows(self) -> int | None:
        """Rows in the Parquet's footer: cheap enough for every check."""
        return parquet_rows(self.path) if self.path.exists() else None

    def exists(self) -> bool:
        report = self.report()
        if report is None or not self.path.exists():
            return False
        return (
            report.schema_version == schema.SCHEMA_VERSION
            and report.rules == self.rules
            and report.parquet.size == self.path.stat().st_size
            and self.rows() == report.rows_written
        )

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
