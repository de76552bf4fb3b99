"""The per-month ledger, and re-ingesting a month whose upstream file changed."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from scripts.make_sample_data import write_month
from tasks import ParquetFile
from tests.luigirun import run
from tests.sourceserver import SourceServer
from tlc import layout, ledger
from tlc.month import Month
from tlc.refresh import main as refresh


def test_stages_record_lineage_and_a_changed_upstream_is_reingested_on_request(
    pipeline_env: Path, source: SourceServer, source_dir: Path, capsys
) -> None:
    src = write_month(source_dir, "green", 2020, 6, rows=1500, seed=1)
    task = ParquetFile(color="green", year=2020, month=6)
    assert run([task]).ok
    manifest = ledger.read(pipeline_env, Month("green", 2020, 6))
    stages = manifest["stages"]
    assert manifest["month"] == "2020-06" and manifest["schema_version"] == 1
    assert stages["source"]["sha256"] == hashlib.sha256(src.read_bytes()).hexdigest()
    assert stages["source"]["etag"] and stages["source"]["size"] == src.stat().st_size
    assert stages["parquet"]["rows_written"] == stages["parquet"]["rows_read"] == 1500
    assert stages["parquet"]["source_sha256"] == stages["source"]["sha256"]

    assert refresh(["--colors", "green", "--start", "2020-06"]) == 0
    assert "none changed upstream" in capsys.readouterr().out

    write_month(source_dir, "green", 2020, 6, rows=1700, seed=2)  # the TLC republished the month
    assert refresh(["--colors", "green", "--start", "2020-05", "--stop", "2020-07"]) == 1
    out = capsys.readouterr().out
    assert re.search(r"green 2020-06: changed upstream \(etag, (last_modified, )?size\)", out)  # same second or not
    assert task.complete()  # noticed, but nothing is re-ingested silently

    assert refresh(["--colors", "green", "--start", "2020-06", "--apply"]) == 0
    assert not task.complete()
    assert run([task]).ok
    report = task.output().report()
    assert report.rows_written == 1700
    stages = ledger.read(pipeline_env, Month("green", 2020, 6))["stages"]
    assert stages["parquet"]["sha256"] == report.parquet.sha256
    assert stages["source"]["sha256"] == hashlib.sha256(src.read_bytes()).hexdigest()
    assert layout.raw_path(pipeline_env, Month("green", 2020, 6)).read_bytes() == src.read_bytes()


def test_a_new_parquet_marks_later_stages_stale(tmp_path: Path) -> None:
    ledger.record(tmp_path, Month("yellow", 2021, 1), "gcs", {"parquet_sha256": "a" * 64})
    ledger.record(tmp_path, Month("yellow", 2021, 1), "postgres", {"parquet_sha256": "b" * 64})
    ledger.record(tmp_path, Month("yellow", 2021, 1), "parquet", {"sha256": "a" * 64, "source_sha256": "c" * 64})
    stages = ledger.read(tmp_path, Month("yellow", 2021, 1))["stages"]
    assert "stale" not in stages["gcs"] and stages["postgres"]["stale"] is True
