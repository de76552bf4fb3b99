"""The first stage: the month's source file, verified, kept in the lake's raw zone with its lineage record.

``DownloadCSV`` fetches the DataTalksClub CSV.gz releases, ``DownloadTLCParquet`` the TLC's
own Parquet files; which one a month needs is its source kind (``[tlc.source] kind``, resolved
into ``self.unit.source``), and ``download_task`` picks it. Each is done when its ``RawFile``
(the raw zone's object) holds the file whole; the record names the source kind, so the ledger
says where a month came from.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from tasks.params import MonthTask
from tlc import layout
from tlc.atomic import read_json
from tlc.config import PathsConfig, SourceConfig
from tlc.errors import InvalidInput, local_writes
from tlc.month import Month
from tlc.sources import kinds
from tlc.sources.http import download, record_dict, remote_validators, unchanged

if TYPE_CHECKING:
    from tlc.sources.target import RawFile


class SourceDownload(MonthTask):
    """Fetch the month's file from its source kind; done when the raw zone holds it whole."""

    ledger_stage = "source"
    kind: ClassVar[str] = ""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.unit.source != self.kind:  # one month, one source: never a second file beside the first
            raise InvalidInput(
                f"{self.unit.label} comes from the {self.unit.source} source under [tlc.source] kind = "
                f"{SourceConfig().kind}, not from {self.kind}: run {DOWNLOADS[self.unit.source].__name__}"
            )

    def output(self) -> RawFile:
        from tlc.gcs.lake import Lake  # the Google client loads only when a stage runs
        from tlc.sources.target import RawFile

        return RawFile(Lake.from_config(), PathsConfig().root(), self.unit)

    def _restore_refused(self, url: str, out: RawFile) -> dict | None:
        """The record of the kept copy of a refused download, back in place, while the source vouches
        it is unchanged.

        A month refused for its content (see ParquetFile) is then retried without downloading it
        again on every run, and still lands by itself once the source or the pipeline is fixed.
        """
        refused = read_json(layout.rejected_record(PathsConfig().root(), self.unit))
        kept = Path(refused["kept"]) if refused and refused.get("kept") else None
        if kept is None or not kept.exists() or kept.stat().st_size != refused.get("size"):
            return None
        if not unchanged(refused, remote_validators(url, SourceConfig().retry())):
            return None
        out.path.parent.mkdir(parents=True, exist_ok=True)
        os.replace(kept, out.path)
        return {k: v for k, v in refused.items() if k not in ("kept", "reason", "rejected_at")}

    def make(self) -> None:
        out = self.output()
        with local_writes(f"writing the download of {self.unit.label} under {PathsConfig().root()}"):
            cfg = SourceConfig()
            report = self.reporter()

            def progress(done: int, total: int | None) -> None:
                size = f"{done / 1e6:.1f}/{total / 1e6:.1f} MB" if total else f"{done / 1e6:.1f} MB"
                report(done / total if total else 0.0, f"downloading {size}")

            url = kinds.month_url(self.unit, cfg)
            record = self._restore_refused(url, out)
            if record is not None:
                message = "the source still serves the download refused earlier: converting it again"
            else:
                fetched = download(
                    url,
                    out.path,
                    kinds.VERIFIERS[self.kind],
                    retry=cfg.retry(),
                    progress=progress,
                    log=lambda msg: self.set_status_message(f"{self.unit.label}: {msg}"),
                )
                record = {**record_dict(fetched), "kind": self.kind}
                message = f"downloaded {fetched.size / 1e6:.1f} MB, sha256 {fetched.sha256[:12]}"
            out.keep(record)
        self.record_stage()
        report(1.0, message)


class DownloadCSV(SourceDownload):
    """Fetch ``{color}_tripdata_{YYYY}-{MM}.csv.gz`` from the DataTalksClub releases (gzip verified)."""

    kind = "csv"


class DownloadTLCParquet(SourceDownload):
    """Fetch ``{service}_tripdata_{YYYY}-{MM}.parquet`` from the TLC (magic, footer and row count verified)."""

    kind = "parquet"


DOWNLOADS: dict[str, type[SourceDownload]] = {"csv": DownloadCSV, "parquet": DownloadTLCParquet}


def download_task(month: Month) -> SourceDownload:
    """The download task of the month's source kind."""
    return DOWNLOADS[month.source].of(month)
