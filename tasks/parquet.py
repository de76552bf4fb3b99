"""ParquetFile: the month in the canonical schema, with its quality report beside it."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
from pathlib import Path

from tasks.download import DownloadCSV
from tasks.params import MonthTask
from tlc import layout, quality
from tlc.atomic import read_json, write_json
from tlc.config import CleaningConfig, PathsConfig
from tlc.errors import PipelineError, SourceRefused, local_writes
from tlc.lake.convert import convert_month
from tlc.lake.target import LakeParquet
from tlc.quality import SourceFacts


class ParquetFile(MonthTask):
    """Convert the downloaded month; done when Parquet and report agree and match the config in force."""

    ledger_stage = "parquet"
    upstream = DownloadCSV

    def output(self) -> LakeParquet:
        return LakeParquet(PathsConfig().root(), self.unit, CleaningConfig().rules().active())

    def _reject(self, raw: Path, reason: PipelineError) -> Path:
        """Move a refused download out of the graph, so a fix at the source is fetched by a plain rerun.

        DownloadCSV asks the source first: while it still serves the same file, the kept copy
        comes back instead of a new download, and is converted again (by a fixed pipeline, say).
        """
        root = PathsConfig().root()
        meta = layout.raw_meta_path(raw)
        record = read_json(meta) or {}
        kept = layout.rejected_copy(root, self.unit, record.get("sha256") or "unrecorded")
        kept.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):  # a concurrent run refused it first
            os.replace(raw, kept)
        meta.unlink(missing_ok=True)
        now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        rejected = {**record, "kept": str(kept), "reason": f"{type(reason).__name__}: {reason}", "rejected_at": now}
        write_json(layout.rejected_record(root, self.unit), rejected)
        return kept

    def run(self) -> None:
        raw, out = self.requires().output(), self.output()
        with local_writes(f"writing the Parquet of {self.unit.label} under {PathsConfig().root()}"):
            try:
                report = convert_month(
                    raw.path, out.path, self.unit, rules=CleaningConfig().rules(), progress=self.reporter()
                )
            except SourceRefused as exc:  # the reading side's, whatever failed: never a local write or a bug
                kept = self._reject(raw.path, exc)
                hint = "a rerun retries it, and fetches the month again once the source changes"
                raise type(exc)(f"{exc} (download kept at {kept}; {hint})") from None
            record = raw.record() or {}
            report = report.with_source(SourceFacts(**{k: record.get(k) for k in SourceFacts.__dataclass_fields__}))
            quality.write(out.report_path, report)
            self.record_stage()
            self.set_status_message(f"{self.unit.label}: {report.rows_written:,} rows written to {out.path.name}")
