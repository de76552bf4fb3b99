"""The per-month ledger, and re-ingesting a month whose upstream file changed."""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
import requests

from scripts.make_sample_data import write_month
from tasks import ParquetFile
from tests.luigirun import run
from tests.sourceserver import SourceServer
from tlc import layout, ledger
from tlc.errors import SinkError
from tlc.gcs.lake import Lake
from tlc.month import Month
from tlc.refresh import main as refresh


def test_stages_record_lineage_and_a_changed_upstream_is_reingested_on_request(
    pipeline_env: Path, source: SourceServer, source_dir: Path, capsys
) -> None:
    src = write_month(source_dir, "green", 2020, 6, rows=1500, seed=1)
    task = ParquetFile(color="green", year=2020, month=6)
    assert run([task]).ok
    manifest = ledger.read(Lake.from_config(), Month("green", 2020, 6))
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
    stages = ledger.read(Lake.from_config(), Month("green", 2020, 6))["stages"]
    assert stages["parquet"]["sha256"] == report.parquet.sha256
    assert stages["source"]["sha256"] == hashlib.sha256(src.read_bytes()).hexdigest()
    assert layout.raw_path(pipeline_env, Month("green", 2020, 6)).read_bytes() == src.read_bytes()


def test_a_new_parquet_marks_later_stages_stale(pipeline_env: Path) -> None:
    lake, month = Lake.from_config(), Month("yellow", 2021, 1)
    ledger.record(lake, month, "gcs", {"parquet_sha256": "a" * 64})
    ledger.record(lake, month, "postgres", {"parquet_sha256": "b" * 64})
    ledger.record(lake, month, "parquet", {"sha256": "a" * 64, "source_sha256": "c" * 64})
    stages = ledger.read(lake, month)["stages"]
    assert "stale" not in stages["gcs"] and stages["postgres"]["stale"] is True


def test_a_manifest_of_another_shape_is_rewritten_not_a_failure_forever(pipeline_env: Path) -> None:
    """An edited manifest (stages a list, an entry a string, history a dict) must not make every
    later ``record`` of the month raise: the odd parts are dropped and the stage is recorded."""
    lake, month = Lake.from_config(), Month("yellow", 2021, 2)
    key = layout.manifest_key(month)
    for odd in (
        {"stages": ["gcs"], "history": {"x": 1}},
        {"stages": {"gcs": "done", "bigquery": {"parquet_sha256": "a" * 64}}, "history": ["edited", {"stage": "gcs"}]},
    ):
        assert lake.write_json(key, odd)
        manifest = ledger.record(lake, month, "postgres", {"parquet_sha256": "a" * 64})
        assert manifest == ledger.read(lake, month)
        assert isinstance(manifest["stages"]["postgres"], dict) and "gcs" not in manifest["stages"]
        assert all(isinstance(h, dict) for h in manifest["history"]) and manifest["history"][-1]["stage"] == "postgres"
    assert set(manifest["stages"]) == {"bigquery", "postgres"} and len(manifest["history"]) == 2


def test_records_of_many_writers_at_once_are_all_kept(pipeline_env: Path) -> None:
    """Stages of one month finish at once on several hosts: each update is guarded by the manifest's
    generation, so a writer that lost the race reads again and none of the entries is lost."""
    lake, month = Lake.from_config(), Month("green", 2021, 1)
    writers = [("source", {"sha256": "c" * 64})] + [
        (stage, {"parquet_sha256": "a" * 64}) for stage in ledger.STAGES[2:]
    ]
    writers = writers * 4
    barrier = threading.Barrier(len(writers))

    def write(stage: str, facts: dict) -> None:
        barrier.wait()
        ledger.record(lake, month, stage, facts)

    threads = [threading.Thread(target=write, args=w) for w in writers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    manifest = ledger.read(lake, month)
    assert set(manifest["stages"]) == {"source", "gcs", "bigquery", "postgres"}
    assert sorted(h["stage"] for h in manifest["history"]) == sorted(stage for stage, _ in writers)


def test_a_record_read_whose_bytes_fail_their_checksum_is_read_again_then_one_line(pipeline_env: Path) -> None:
    """fake-gcs-server can serve a record being replaced with bytes its checksum does not match
    (and a network can): the read is tried again; if it never matches, one line names the object."""
    lake, month = Lake.from_config(), Month("green", 2021, 1)
    ledger.record(lake, month, "source", {"sha256": "c" * 64})
    real, spoiled = requests.Session.request, []

    def spoiling(times: int) -> Callable[..., requests.Response]:
        def request(self: requests.Session, verb: str, url: str, *args: object, **kwargs: object) -> requests.Response:
            response = real(self, verb, url, *args, **kwargs)
            if verb == "GET" and "alt=media" in url and len(spoiled) < times:
                spoiled.append(url)
                response.headers["X-Goog-Hash"] = "crc32c=AAAAAA==,md5=AAAAAAAAAAAAAAAAAAAAAA=="
            return response

        return request

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(requests.Session, "request", spoiling(times=1))
        assert ledger.read(lake, month)["stages"]["source"]["sha256"] == "c" * 64
        assert len(spoiled) == 1  # the first read was refused, the second kept
        spoiled.clear()
        mp.setattr(requests.Session, "request", spoiling(times=99))
        with pytest.raises(SinkError, match=r"^GCS read of gs://\S+manifest\.json failed: DataCorruption: ") as err:
            ledger.read(lake, month)
    assert "\n" not in str(err.value) and len(spoiled) == 3
