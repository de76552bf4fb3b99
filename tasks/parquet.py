"""ParquetFile: the month in the canonical schema, with its quality report beside it."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
from pathlib import Path

import luigi

from tasks import layout, schema
from tasks.atomic import read_json, write_json
from tasks.convert import convert_month, parquet_rows
from tasks.download import DownloadCSV
from tasks.errors import CorruptSource, DataError, PipelineError, SchemaMismatch, local_writes
from tasks.params import MonthTask
from tasks.settings import cleaning, paths


class ParquetFile(MonthTask):
    """Convert the downloaded month; done when Parquet and report agree and match the config.

    The report is written after the Parquet is in place, so a report always describes a
    whole file; a Parquet without a report (a killed run) is rebuilt.
    """

    def requires(self) -> DownloadCSV:
        return DownloadCSV(color=self.color, year=self.year, month=self.month)

    def output(self) -> luigi.LocalTarget:
        return luigi.LocalTarget(str(layout.lake_path(paths().root(), self.color, self.year, self.month)))

    def report(self) -> dict | None:
        return read_json(layout.quality_path(layout.lake_path(paths().root(), self.color, self.year, self.month)))

    ledger_stage = "parquet"

    def ledger_facts(self) -> dict:
        report = self.report() or {}
        return {
            "file": layout.lake_key(self.color, self.year, self.month),
            "rows_read": report["rows_read"],
            "rows_written": report["rows_written"],
            "rows_dropped": report["rows_dropped"],
            "rules": report["rules"],
            "size": report["parquet"]["size"],
            "sha256": report["parquet"]["sha256"],
            "md5": report["parquet"]["md5"],
            "source_sha256": report["source"]["sha256"],
            "source_etag": report["source"]["etag"],
        }

    def complete(self) -> bool:
        path = layout.lake_path(paths().root(), self.color, self.year, self.month)
        report = self.report()
        if not report or not path.exists():
            return False
        return (
            report.get("schema_version") == schema.SCHEMA_VERSION
            and report.get("rules") == cleaning().rules().active()
            and report.get("parquet", {}).get("size") == path.stat().st_size
            and parquet_rows(path) == report.get("rows_written")
        )

    def _reject(self, raw: Path, reason: PipelineError) -> Path:
        """Move a refused download out of the graph, so a fix at the source is fetched by a plain rerun.

        DownloadCSV asks the source first: while it still serves the same file, the kept copy
        comes back instead of a new download, and is converted again (by a fixed pipeline, say).
        """
        root = paths().root()
        meta = layout.raw_meta_path(raw)
        record = read_json(meta) or {}
        kept = layout.rejected_copy(root, self.color, self.year, self.month, record.get("sha256") or "unrecorded")
        kept.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):  # a concurrent run refused it first
            os.replace(raw, kept)
        meta.unlink(missing_ok=True)
        now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        rejected = {**record, "kept": str(kept), "reason": f"{type(reason).__name__}: {reason}", "rejected_at": now}
        write_json(layout.rejected_record(root, self.color, self.year, self.month), rejected)
        return kept

    def run(self) -> None:
        with local_writes(f"writing the Parquet of {self.label} under {paths().root()}"):
            root = paths().root()
            src = layout.raw_path(root, self.color, self.year, self.month)
            dest = layout.lake_path(root, self.color, self.year, self.month)
            try:
                report = convert_month(
                    src, dest, self.color, self.year, self.month, rules=cleaning().rules(), progress=self.reporter()
                )
            except (SchemaMismatch, DataError, CorruptSource) as exc:
                kept = self._reject(src, exc)
                hint = "a rerun retries it, and fetches the month again once the source changes"
                raise type(exc)(f"{exc} (download kept at {kept}; {hint})") from None
            record = read_json(layout.raw_meta_path(src)) or {}
            report["source"] = {k: record.get(k) for k in ("url", "size", "sha256", "etag", "last_modified")}
            write_json(layout.quality_path(dest), report)
            self.record_stage()
            self.set_status_message(f"{self.label}: {report['rows_written']:,} rows written to {dest.name}")
