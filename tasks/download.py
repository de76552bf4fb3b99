"""DownloadCSV: the month's CSV.gz from the source, verified, with its lineage record."""

from __future__ import annotations

import luigi

from tasks import layout
from tasks.atomic import read_json, write_json
from tasks.errors import local_writes
from tasks.fetch import download, record_dict, source_url
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

    def run(self) -> None:
        with local_writes(f"writing the download of {self.label} under {paths().root()}"):
            cfg = source()
            path = layout.raw_path(paths().root(), self.color, self.year, self.month)
            report = self.reporter()

            def progress(done: int, total: int | None) -> None:
                size = f"{done / 1e6:.1f}/{total / 1e6:.1f} MB" if total else f"{done / 1e6:.1f} MB"
                report(done / total if total else 0.0, f"downloading {size}")

            record = download(
                source_url(cfg.base_url(), self.color, self.year, self.month),
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
