"""DownloadCSV: the month's CSV.gz from the DataTalksClub releases, verified, with its lineage record."""

from __future__ import annotations

import os
from pathlib import Path

from tasks.params import MonthTask
from tlc import layout
from tlc.atomic import read_json, write_json
from tlc.config import PathsConfig, SourceConfig
from tlc.errors import local_writes
from tlc.sources import csv_releases
from tlc.sources.http import download, record_dict, remote_validators, unchanged
from tlc.sources.target import RawFile


class DownloadCSV(MonthTask):
    """Fetch ``{color}_tripdata_{YYYY}-{MM}.csv.gz``; done when the file matches its record."""

    ledger_stage = "source"

    def output(self) -> RawFile:
        return RawFile(PathsConfig().root(), self.unit)

    def _restore_refused(self, url: str, path: Path) -> bool:
        """Bring back the kept copy of a refused download while the source vouches it is unchanged.

        A month refused for its content (see ParquetFile) is then retried without downloading it
        again on every run, and still lands by itself once the source or the pipeline is fixed.
        """
        refused = read_json(layout.rejected_record(PathsConfig().root(), self.unit))
        kept = Path(refused["kept"]) if refused and refused.get("kept") else None
        if kept is None or not kept.exists() or kept.stat().st_size != refused.get("size"):
            return False
        if not unchanged(refused, remote_validators(url, SourceConfig().retry())):
            return False
        os.replace(kept, path)
        record = {k: v for k, v in refused.items() if k not in ("kept", "reason", "rejected_at")}
        write_json(layout.raw_meta_path(path), record)
        return True

    def run(self) -> None:
        out = self.output()
        with local_writes(f"writing the download of {self.unit.label} under {PathsConfig().root()}"):
            cfg = SourceConfig()
            report = self.reporter()

            def progress(done: int, total: int | None) -> None:
                size = f"{done / 1e6:.1f}/{total / 1e6:.1f} MB" if total else f"{done / 1e6:.1f} MB"
                report(done / total if total else 0.0, f"downloading {size}")

            url = csv_releases.url(cfg.base_url(), self.unit)
            if self._restore_refused(url, out.path):
                self.record_stage()
                report(1.0, "the source still serves the download refused earlier: converting it again")
                return
            record = download(
                url,
                out.path,
                csv_releases.GzipVerifier,
                retry=cfg.retry(),
                progress=progress,
                log=lambda msg: self.set_status_message(f"{self.unit.label}: {msg}"),
            )
            write_json(out.record_path, record_dict(record))
            self.record_stage()
            report(1.0, f"downloaded {record.size / 1e6:.1f} MB, sha256 {record.sha256[:12]}")
