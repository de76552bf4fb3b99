"""ParquetFile: the month in the canonical schema, staged in the lake bucket with its quality report."""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
from typing import TYPE_CHECKING

from tasks.download import SourceDownload, download_task
from tasks.params import MonthTask
from tlc import layout
from tlc.atomic import write_json
from tlc.config import CleaningConfig, PathsConfig
from tlc.errors import PipelineError, SourceKindChanged, SourceRefused, local_writes
from tlc.lake.convert import convert_month
from tlc.quality import SourceFacts

logger = logging.getLogger("luigi-interface")

if TYPE_CHECKING:
    from pathlib import Path

    from tlc.lake.target import LakeParquet
    from tlc.sources.target import RawFile


class ParquetFile(MonthTask):
    """Convert the downloaded month; done when the bucket holds the Parquet its report describes and
    the report matches the configuration in force (see ``tlc.lake.target.LakeParquet``)."""

    ledger_stage = "parquet"

    def requires(self) -> SourceDownload:
        """The download of the month's source kind: DownloadCSV or DownloadTLCParquet."""
        return download_task(self.unit)

    def output(self) -> LakeParquet:
        from tlc.gcs.lake import Lake  # the Google client loads only when a stage runs
        from tlc.lake.target import LakeParquet

        return LakeParquet(Lake.from_config(), PathsConfig().root(), self.unit, CleaningConfig().rules().active())

    def _reject(self, raw: RawFile, record: dict, reason: PipelineError) -> Path:
        """Move a refused download out of the graph, so a fix at the source is fetched by a plain rerun.

        The download task asks the source first: while it still serves the same file, the kept copy
        comes back instead of a new download, and is converted again (by a fixed pipeline, say).
        """
        root = PathsConfig().root()
        kept = layout.rejected_copy(root, self.unit, record.get("sha256") or "unrecorded")
        kept.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):  # a concurrent run refused it first
            os.replace(raw.path, kept)
        raw.drop()
        now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        rejected = {**record, "kept": str(kept), "reason": f"{type(reason).__name__}: {reason}", "rejected_at": now}
        write_json(layout.rejected_record(root, self.unit), rejected)
        return kept

    def _check_same_source(self, out: LakeParquet) -> None:
        """A month never switches source by itself (say, when new cleaning rules rebuild it):
        ``python -m tlc.refresh --apply`` does it on request. Reports before the TLC source are the CSV's.

        A rebuild under other cleaning rules is said aloud: hosts whose luigi.cfg differ would
        otherwise rebuild and reload each other's months in silence, forever."""
        previous = out.report()
        if previous is not None and previous.rules != out.rules:
            logger.warning(
                "%s: rebuilding a month made under cleaning rules %s, now %s (every host must have the same luigi.cfg)",
                self.unit.label,
                previous.rules or "none",
                out.rules or "none",
            )
        was = (previous.source.kind or "csv") if previous else self.unit.source
        if was != self.unit.source:
            raise SourceKindChanged(
                f"{self.unit.label} was made from the {was} source and [tlc.source] kind now gives "
                f"{self.unit.source}: `python -m tlc.refresh --start {self.unit.key} --apply` re-ingests it"
            )

    def make(self) -> None:
        raw, out = self.requires().output(), self.output()
        self._check_same_source(out)
        with local_writes(f"writing the Parquet of {self.unit.label} under {PathsConfig().root()}"):
            source = raw.local()
            record = raw.record() or {}
            # the Parquet about to be replaced loses its report first: a crash between the two never
            # leaves this host a cached report that vouches for other bytes
            out.report_path.unlink(missing_ok=True)
            try:
                report = convert_month(
                    source, out.path, self.unit, rules=CleaningConfig().rules(), progress=self.reporter()
                )
            except SourceRefused as exc:  # the reading side's, whatever failed: never a local write or a bug
                kept = self._reject(raw, record, exc)
                hint = "a rerun retries it, and fetches the month again once the source changes"
                raise type(exc)(f"{exc} (download kept at {kept}; {hint})") from None
            report = report.with_source(SourceFacts(**{k: record.get(k) for k in SourceFacts.__dataclass_fields__}))
            self.set_status_message(f"{self.unit.label}: staging {report.parquet.size / 1e6:.1f} MB in the lake")
            out.keep(report)
        self.record_stage()
        self.set_status_message(f"{self.unit.label}: {report.rows_written:,} rows written to {out.path.name}")
