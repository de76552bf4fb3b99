"""DownloadCSV: the month's CSV.gz from the source, verified, with its lineage record."""

from __future__ import annotations

import os
from pathlib import Path

import luigi

from tasks import layout
from tasks.atomic import read_json, write_json
from tasks.errors import local_writes
from tasks.fetch import download, record_dict, remote_validators, source_url, unchanged
from tasks.params import MonthTask
from tasks.settings import paths, source


class DownloadCSV(MonthTask):
    """Fetch ``{color}_tripdata_{YYYY}-{MM}.csv.gz``; done when the file matches its record."""

    def output(self) -> luigi.LocalTarget:
        return luigi.LocalTarget(str(layout.raw_path(paths().root(), self.color, self.year, self.month)))

    ledger_stage = "source"

    def ledger_facts(self) -> dict:
        return read_json(layout.raw_meta_path(layout.raw_path(paths().root(), self.color, self.year, self.month))) or {}

    def complete(self) -> bool:
        path = layout.raw_path(paths().root(), self.color, self.year, self.month)
        record = read_json(layout.raw_meta_path(path))
        return bool(record) and path.exists() and path.stat().st_size == record.get("size")

    def _restore_refused(self, url: str, path: Path) -> bool:
        """Bring back the kept copy of a refused download while the source vouches it is unchanged.

        A month refused for its content (see ParquetFile) is then retried without downloading it
        again on every run, and still lands by itself once the source or the pipeline is fixed.
        """
        root, cfg = paths().root(), source()
        refused = read_json(layout.rejected_record(root, self.color, self.year, self.month))
        kept = Path(refused["kept"]) if refused and refused.get("kept") else None
        if kept is None or not kept.exists() or kept.stat().st_size != refused.get("size"):
            return False
        remote = remote_validators(url, timeout=cfg.timeout_seconds, attempts=cfg.attempts, backoff=cfg.backoff_seconds)
        if not unchanged(refused, remote):
            return False
        os.replace(kept, path)
        record = {k: v for k, v in refused.items() if k not in ("kept", "reason", "rejected_at")}
        write_json(layout.raw_meta_path(path), record)
        return True

    def run(self) -> None:
        with local_writes(f"writing the download of {self.label} under {paths().root()}"):
            cfg = source()
            path = layout.raw_path(paths().root(), self.color, self.year, self.month)
            report = self.reporter()

            def progress(done: int, total: int | None) -> None:
                size = f"{done / 1e6:.1f}/{total / 1e6:.1f} MB" if total else f"{done / 1e6:.1f} MB"
                report(done / total if total else 0.0, f"downloading {size}")

            url = source_url(cfg.base_url(), self.color, self.year, self.month)
            if self._restore_refused(url, path):
                self.record_stage()
                report(1.0, "the source still serves the download refused earlier: converting it again")
                return
            record = download(
                url,
                path,
                timeout=cfg.timeout_seconds,
                attempts=cfg.attempts,
                backoff=cfg.backoff_seconds,
                progress=progress,
                log=lambda msg: self.set_status_message(f"{self.label}: {msg}"),
            )
            write_json(layout.raw_meta_path(path), record_dict(record))
            self.record_stage()
            report(1.0, f"downloaded {record.size / 1e6:.1f} MB, sha256 {record.sha256[:12]}")
