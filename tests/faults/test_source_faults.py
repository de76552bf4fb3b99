"""Source faults through the task graph: DownloadCSV -> ParquetFile built by luigi.

``tests/test_fetch.py`` proves the fetch layer alone; here the same real faults (served by the
loopback source) go through ``luigi.build``, and each test checks what a user would see: the
run heals by itself within its retries, or it fails with one line naming the month and the
URL, leaves no file at any final path and no temporary, and, once the source behaves, a plain
rerun lands exactly the published rows.
"""

from __future__ import annotations

import base64
import gzip
import logging
import urllib.parse
from collections.abc import Callable
from pathlib import Path

import pytest

from tasks import DownloadCSV, ParquetFile
from tests.faults.helpers import assert_lake_exact, error_messages, files, temporaries
from tests.luigirun import run
from tests.sourceserver import SourceServer
from tlc import layout
from tlc.atomic import read_json
from tlc.month import Month

pytestmark = pytest.mark.faults

MONTH = ("yellow", 2021, 1)
PATH = "/yellow/yellow_tripdata_2021-01.csv.gz"
ATTEMPTS = 3


@pytest.fixture
def month(pipeline_env: Path, source: SourceServer, publish, cfg: dict) -> Path:
    """The published month, tight retries (3 attempts, 0.5 s per read) and a quick stall."""
    cfg["tlc.source", "attempts"] = str(ATTEMPTS)
    cfg["tlc.source", "timeout_seconds"] = "0.5"
    source.stall_seconds = 1.5
    return publish(*MONTH, seed=11)


def short_length(server: SourceServer) -> None:
    """Teach the loopback source one more lie: a Content-Length *smaller* than the file, so the
    client stops reading early with a body that looks complete to HTTP."""
    serve = server.serve

    def patched(handler, step: str) -> None:
        if step != "short_length":
            serve(handler, step)
            return
        body = (server.root / handler.path.lstrip("/")).read_bytes()
        server.send_file_headers(handler, server.root / handler.path.lstrip("/"), len(body) // 2)
        handler.wfile.write(body[: len(body) // 2])

    server.serve = patched


def parquet_task() -> ParquetFile:
    return ParquetFile(color=MONTH[0], year=MONTH[1], month=MONTH[2])


@pytest.mark.parametrize(
    "plan",
    [
        ["500", "500", "ok"],
        ["503", "ok"],
        ["429", "ok"],
        ["drop", "drop", "ok"],
        ["stall", "ok"],
        ["long_length", "ok"],
    ],
    ids=["500x2", "503", "429", "drop-mid-body-x2", "stall-past-timeout", "long-content-length"],
)
def test_transient_fault_heals_within_the_run(
    pipeline_env: Path, source: SourceServer, month: Path, plan: list[str]
) -> None:
    source.plans[PATH] = list(plan)
    result = run([parquet_task()])
    assert result.ok and len(result.ran) == 2
    assert_lake_exact(pipeline_env, *MONTH, month)
    record = read_json(layout.raw_meta_path(layout.raw_path(pipeline_env, Month(*MONTH))))
    assert record["attempts"] == len(plan)  # every failed attempt was retried, none more
    assert source.requests == [PATH] * len(plan)


def _truncate(body: bytes) -> bytes:
    return body[: len(body) // 2]


def _corrupt(body: bytes) -> bytes:
    middle = len(body) // 2
    return body[:middle] + bytes(512) + body[middle + 512 :]


FAILURES: dict[str, tuple[list[str] | None, Callable[[bytes], bytes] | None, str, int]] = {
    # id: (plan, how the published file is damaged, message, requests made)
    "drop-every-time": (["drop"] * ATTEMPTS, None, "source unreachable after 3 attempts: ", ATTEMPTS),
    "stall-every-time": (["stall"] * ATTEMPTS, None, "source unreachable after 3 attempts: ", ATTEMPTS),
    "500-every-time": (["500"] * ATTEMPTS, None, "source unreachable after 3 attempts: HTTP 500", ATTEMPTS),
    "long-length-every-time": (["long_length"] * ATTEMPTS, None, "source unreachable after 3 attempts: ", ATTEMPTS),
    "short-length": (["short_length"], None, "CorruptSource: gzip stream is truncated", 1),
    "404": (["404"], None, "SourceNotFound: not published: HTTP 404", 1),
    "403": (["403"], None, "SourceError: source refused the download: HTTP 403", 1),
    "html-page-200": (["html200"], None, "CorruptSource: not a valid gzip stream", 1),
    "gzip-truncated": (None, _truncate, "CorruptSource: gzip stream is truncated", 1),
    "gzip-corrupt-mid-file": (None, _corrupt, "CorruptSource: not a valid gzip stream", 1),
    "zero-bytes": (None, lambda _: b"", "CorruptSource: gzip stream is truncated", 1),
}


@pytest.mark.parametrize("fault", list(FAILURES))
def test_fault_fails_cleanly_then_a_plain_rerun_is_exact(
    pipeline_env: Path, source: SourceServer, month: Path, caplog: pytest.LogCaptureFixture, fault: str
) -> None:
    plan, damage, message, requests = FAILURES[fault]
    good = month.read_bytes()
    short_length(source)
    if plan:
        source.plans[PATH] = list(plan)
    if damage:
        month.write_bytes(damage(good))

    with caplog.at_level(logging.ERROR, logger="luigi-interface"):
        failed = run([parquet_task()])
    download = DownloadCSV(color=MONTH[0], year=MONTH[1], month=MONTH[2])
    assert not failed.ok and failed.failed == {download.task_id}  # ParquetFile never started
    [line] = error_messages(caplog.records)
    assert "DownloadCSV(color=yellow, year=2021, month=1)" in line and message in line
    assert f"{source.url}{PATH}" in line and "\n" not in line
    assert len(source.requests) == requests  # bounded: no retry of what a retry cannot fix
    assert files(pipeline_env) == [] and temporaries(pipeline_env) == []  # nothing at all was left
    assert not download.complete() and not parquet_task().complete()

    source.plans.clear()
    month.write_bytes(good)  # the publisher fixes the file / the network recovers
    healed = run([parquet_task()])
    assert healed.ok and len(healed.ran) == 2
    assert_lake_exact(pipeline_env, *MONTH, month)


def test_source_url_with_credentials_downloads_or_is_refused_clearly(
    pipeline_env: Path, source: SourceServer, month: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    parts = urllib.parse.urlsplit(source.url)
    monkeypatch.setenv("TLC_SOURCE_URL", f"http://reader:s3cretURLpw@{parts.netloc}")
    result = run([parquet_task()])
    assert result.ok, "the loopback source accepts any credentials: the download should work"
    assert_lake_exact(pipeline_env, *MONTH, month)
    assert gzip.decompress(layout.raw_path(pipeline_env, Month(*MONTH)).read_bytes())
    assert source.authorizations == ["Basic " + base64.b64encode(b"reader:s3cretURLpw").decode()]
    assert "s3cretURLpw" not in layout.raw_meta_path(layout.raw_path(pipeline_env, Month(*MONTH))).read_text()
