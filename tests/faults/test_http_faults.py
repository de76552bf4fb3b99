"""A hostile or broken HTTP source, beyond status codes (issue 14).

The loopback source learns more ways to misbehave here, each written as raw bytes on the
socket: malformed status lines and headers, broken chunked encoding, a reset in the middle of
the headers, redirects to schemes that are not HTTP, bodies that trickle or never end, a gzip
bomb and a file of one row repeated. Every one must either heal within the run's retries or
fail in one line naming the month and URL, within its bounds of time, bytes and memory, with
nothing left behind; and once the source behaves, a plain rerun lands the month exactly.
"""

from __future__ import annotations

import base64
import gzip
import logging
import socket
import struct
import time
import tracemalloc
import urllib.parse
import zlib
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from tasks import DownloadCSV, ParquetFile
from tests.faults.helpers import assert_lake_exact, error_messages, files, temporaries
from tests.faults.test_params_config import Recorder
from tests.luigirun import run
from tests.sourceserver import SourceServer
from tlc import layout
from tlc.atomic import read_json
from tlc.month import Month

pytestmark = pytest.mark.faults

MONTH = ("yellow", 2021, 1)
PATH = "/yellow/yellow_tripdata_2021-01.csv.gz"
ATTEMPTS = 3
STATUS = b"HTTP/1.1 200 OK\r\n"


def raw(h: BaseHTTPRequestHandler, data: bytes) -> None:
    """Send bytes as they are and end the exchange: nothing of http.server's own framing."""
    h.wfile.write(data)
    h.wfile.flush()
    h.close_connection = True


def reset(h: BaseHTTPRequestHandler, data: bytes) -> None:
    """Send ``data``, then abort the connection with a TCP reset (SO_LINGER 0), not a clean close."""
    h.wfile.write(data)
    h.wfile.flush()
    h.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    h.connection.close()
    h.close_connection = True


def chunked(h: BaseHTTPRequestHandler, chunks: Iterator[bytes], extra_headers: str = "") -> None:
    head = f"Content-Type: application/gzip\r\nTransfer-Encoding: chunked\r\n{extra_headers}\r\n"
    h.wfile.write(STATUS + head.encode())
    try:
        for chunk in chunks:
            h.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            h.wfile.flush()
    except OSError:  # the client hung up: what a bounded client does
        pass
    h.close_connection = True


# The malformed responses: each one request's worth of raw bytes.
MALFORMED: dict[str, Callable[[BaseHTTPRequestHandler, bytes], None]] = {
    "garbage-status-line": lambda h, body: raw(h, b"SSH-2.0-OpenSSH_9.2p1\r\n\r\n"),
    "bad-status-code": lambda h, body: raw(h, b"HTTP/1.1 2OO OK\r\nContent-Length: 0\r\n\r\n"),
    "too-many-headers": lambda h, body: raw(h, STATUS + b"X-Noise: 1\r\n" * 101 + b"\r\n"),
    "header-line-too-long": lambda h, body: raw(h, STATUS + b"X-Long: " + b"a" * 70_000 + b"\r\n\r\n"),
    "reset-mid-headers": lambda h, body: reset(h, STATUS + b"Content-Type: applic"),
    "chunk-size-not-hex": lambda h, body: raw(h, STATUS + b"Transfer-Encoding: chunked\r\n\r\nzz\r\n"),
    "chunk-size-line-too-long": lambda h, body: raw(h, STATUS + b"Transfer-Encoding: chunked\r\n\r\n" + b"1" * 70_000),
    "chunked-body-cut": lambda h, body: chunked(h, iter([body[: len(body) // 2]])),  # no final 0-chunk
}


class Misbehaving:
    """The loopback source plus raw steps: ``source.plans[PATH] = ["garbage-status-line", "ok"]``."""

    def __init__(self, server: SourceServer) -> None:
        self.server = server
        self.steps: dict[str, Callable[[BaseHTTPRequestHandler, bytes], None]] = dict(MALFORMED)
        serve = server.serve

        def patched(h: BaseHTTPRequestHandler, step: str) -> None:
            if step not in self.steps:
                serve(h, step)
                return
            h.close_connection = True
            self.steps[step](h, (server.root / h.path.lstrip("/")).read_bytes())

        server.serve = patched  # type: ignore[method-assign]


@pytest.fixture
def month(pipeline_env: Path, source: SourceServer, publish: Callable[..., Path], cfg: dict) -> Path:
    cfg["tlc.source", "attempts"] = str(ATTEMPTS)
    cfg["tlc.source", "timeout_seconds"] = "0.5"
    return publish(*MONTH, seed=11)


@pytest.fixture
def bad(source: SourceServer) -> Misbehaving:
    return Misbehaving(source)


def parquet_task() -> ParquetFile:
    return ParquetFile(color=MONTH[0], year=MONTH[1], month=MONTH[2])


def download_task() -> DownloadCSV:
    return DownloadCSV(color=MONTH[0], year=MONTH[1], month=MONTH[2])


def failed_download(caplog: pytest.LogCaptureFixture, data: Path, *needles: str) -> str:
    """The run failed at the download in one line holding ``needles``, and left nothing at all."""
    with caplog.at_level(logging.ERROR, logger="luigi-interface"):
        result = run([parquet_task()])
    assert not result.ok and result.failed == {download_task().task_id}
    [line] = error_messages(caplog.records)
    assert "DownloadCSV(color=yellow, year=2021, month=1)" in line and "\n" not in line
    for needle in needles:
        assert needle in line, line
    assert all(r.exc_info is None for r in caplog.records), "a traceback was logged"
    assert files(data) == [] and temporaries(data) == []
    return line


@pytest.mark.parametrize("fault", list(MALFORMED))
def test_malformed_response_is_retried_and_heals_within_the_run(
    pipeline_env: Path, source: SourceServer, bad: Misbehaving, month: Path, fault: str
) -> None:
    source.plans[PATH] = [fault, "ok"]
    assert run([parquet_task()]).ok
    assert_lake_exact(pipeline_env, *MONTH, month)
    record = read_json(layout.raw_meta_path(layout.raw_path(pipeline_env, Month(*MONTH))))
    assert record["attempts"] == 2 and source.requests == [PATH, PATH]


MALFORMED_LINES = {
    "garbage-status-line": "BadStatusLine",
    "bad-status-code": "BadStatusLine",
    "too-many-headers": "got more than 100 headers",
    "header-line-too-long": "LineTooLong",
    "reset-mid-headers": "Connection reset by peer",
    "chunk-size-not-hex": "IncompleteRead",
    "chunk-size-line-too-long": "LineTooLong",
    "chunked-body-cut": "IncompleteRead",
}


@pytest.mark.parametrize("fault", list(MALFORMED))
def test_persistently_malformed_response_fails_in_one_line_after_the_retries(
    pipeline_env: Path,
    source: SourceServer,
    bad: Misbehaving,
    month: Path,
    caplog: pytest.LogCaptureFixture,
    fault: str,
) -> None:
    source.plans[PATH] = [fault] * ATTEMPTS
    line = failed_download(caplog, pipeline_env, "source unreachable after 3 attempts: ", MALFORMED_LINES[fault])
    assert f"{source.url}{PATH}" in line and len(line) < 600
    assert source.requests == [PATH] * ATTEMPTS
    source.plans.clear()
    assert run([parquet_task()]).ok
    assert_lake_exact(pipeline_env, *MONTH, month)


# --- redirects ----------------------------------------------------------------------------------------


def redirect(location: str) -> Callable[[BaseHTTPRequestHandler, bytes], None]:
    return lambda h, body: raw(h, f"HTTP/1.1 302 Found\r\nLocation: {location}\r\nContent-Length: 0\r\n\r\n".encode())


@pytest.mark.parametrize("scheme", ["file", "ftp", "data", "gopher"])
def test_redirect_to_a_scheme_other_than_http_is_refused_and_never_followed(
    pipeline_env: Path,
    source: SourceServer,
    bad: Misbehaving,
    month: Path,
    caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
    scheme: str,
) -> None:
    recorder = Recorder()  # where an ftp: or gopher: redirect would connect
    secret = tmp_path / "secret.txt"
    secret.write_text("local file")
    try:
        target = {
            "file": f"file://{secret}",
            "ftp": f"ftp://user:pw@127.0.0.1:{recorder.port}/x.csv.gz?token=abc",
            "data": "data:application/gzip;base64," + base64.b64encode(month.read_bytes()[:64]).decode(),
            "gopher": f"gopher://127.0.0.1:{recorder.port}/1",
        }[scheme]
        bad.steps["redirect"] = redirect(target)
        source.plans[PATH] = ["redirect"]
        line = failed_download(caplog, pipeline_env, f"source redirected to {scheme}:", "which is not followed")
        assert "pw" not in line and "token" not in line  # credentials and query strings stay out of messages
        assert source.requests == [PATH]  # refused, not retried
        assert recorder.connections == 0  # and never followed
    finally:
        recorder.close()


@pytest.mark.parametrize(
    ("step", "message"),
    [
        ("loop", "source redirects in a loop or too often (HTTP 302, last to http://127.0.0.1:"),
        ("no-location", "source answered HTTP 300 without a redirect to follow"),
    ],
)
def test_a_redirect_that_leads_nowhere_fails_in_one_line(
    pipeline_env: Path,
    source: SourceServer,
    bad: Misbehaving,
    month: Path,
    caplog: pytest.LogCaptureFixture,
    step: str,
    message: str,
) -> None:
    bad.steps["loop"] = redirect(PATH)  # to itself, every time
    bad.steps["no-location"] = lambda h, body: raw(h, b"HTTP/1.1 300 Multiple Choices\r\nContent-Length: 0\r\n\r\n")
    source.plans[PATH] = [step] * 10
    failed_download(caplog, pipeline_env, message)
    assert len(source.requests) <= 5  # urllib's own loop limit, and no retry on top of it


def test_http_redirect_is_followed_without_the_credentials(
    pipeline_env: Path, source: SourceServer, bad: Misbehaving, month: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    moved = month.with_name("moved.csv.gz")
    moved.write_bytes(month.read_bytes())
    bad.steps["redirect"] = redirect(f"{source.url}/yellow/moved.csv.gz")
    source.plans[PATH] = ["redirect"]
    parts = urllib.parse.urlsplit(source.url)
    monkeypatch.setenv("TLC_SOURCE_URL", f"http://reader:s3cret@{parts.netloc}")
    assert run([parquet_task()]).ok
    assert_lake_exact(pipeline_env, *MONTH, month)
    assert source.requests == [PATH, "/yellow/moved.csv.gz"]
    assert source.authorizations[0] is not None and source.authorizations[1] is None  # not to the redirect


# --- bounds: time, bytes, inflation -------------------------------------------------------------------


def trickle(piece: int, every: float, published: bool) -> Callable[[BaseHTTPRequestHandler, bytes], None]:
    """The body in small pieces, each well inside the read timeout: no single read ever times out."""

    def pieces(body: bytes) -> Iterator[bytes]:
        for i in range(0, len(body), piece):
            time.sleep(every)
            yield body[i : i + piece]

    def serve(h: BaseHTTPRequestHandler, body: bytes) -> None:
        if not published:
            chunked(h, pieces(body))
            return
        h.wfile.write(STATUS + f"Content-Type: application/gzip\r\nContent-Length: {len(body)}\r\n\r\n".encode())
        try:
            for part in pieces(body):
                h.wfile.write(part)
                h.wfile.flush()
        except OSError:
            pass
        h.close_connection = True

    return serve


@pytest.mark.parametrize("published", [True, False], ids=["content-length", "chunked"])
def test_a_trickling_source_is_cut_off_at_the_time_bound(
    pipeline_env: Path,
    source: SourceServer,
    bad: Misbehaving,
    month: Path,
    cfg: dict,
    caplog: pytest.LogCaptureFixture,
    published: bool,
) -> None:
    """512 bytes every 0.1 s: each read answers within the 0.5 s timeout, the whole would take ~9 s."""
    size = month.stat().st_size
    if published:  # the bound comes from the published size: 3 x 0.5 s + size / 40 KB/s
        cfg["tlc.source", "min_bytes_per_second"] = "40000"
        bound = ATTEMPTS * 0.5 + size / 40_000
        needle = "min_bytes_per_second = 40000"
    else:  # no size published: max_seconds
        cfg["tlc.source", "max_seconds"] = "2"
        bound, needle = 2.0, "[tlc.source] max_seconds = 2"
    assert size / 512 * 0.1 > 2 * bound, "the trickle must take much longer than the bound"
    bad.steps["trickle"] = trickle(512, 0.1, published)
    source.plans[PATH] = ["trickle"]
    began = time.monotonic()
    failed_download(caplog, pipeline_env, "DownloadTooSlow: download took longer than", needle, f"{source.url}{PATH}")
    assert bound <= time.monotonic() - began < bound + 2
    assert source.requests == [PATH]  # the bound covers the retries: not tried again
    source.plans.clear()
    assert run([parquet_task()]).ok
    assert_lake_exact(pipeline_env, *MONTH, month)


def test_an_endless_body_is_cut_off_at_max_bytes(
    pipeline_env: Path, source: SourceServer, bad: Misbehaving, month: Path, cfg: dict, caplog: pytest.LogCaptureFixture
) -> None:
    """A chunked body of whole gzip members without end (valid gzip all along): only max_bytes stops it.
    The server gives up after 64 MB so that a client without the bound fails instead of hanging."""
    cfg["tlc.source", "max_bytes"] = str(2 << 20)
    member = month.read_bytes()
    sent = [0]

    def endless(body: bytes) -> Iterator[bytes]:
        while sent[0] < 64 << 20:
            sent[0] += len(member)
            yield member

    bad.steps["endless"] = lambda h, body: chunked(h, endless(body))
    source.plans[PATH] = ["endless"]
    failed_download(caplog, pipeline_env, "DownloadTooLarge: body exceeds [tlc.source] max_bytes = 2,097,152 bytes")
    assert source.requests == [PATH] and sent[0] < 16 << 20  # stopped early, not retried
    source.plans.clear()
    assert run([parquet_task()]).ok
    assert_lake_exact(pipeline_env, *MONTH, month)


def test_a_published_size_above_max_bytes_is_refused_before_reading(
    pipeline_env: Path, source: SourceServer, month: Path, cfg: dict, caplog: pytest.LogCaptureFixture
) -> None:
    cfg["tlc.source", "max_bytes"] = str(month.stat().st_size - 1)
    failed_download(
        caplog, pipeline_env, f"the source publishes {month.stat().st_size:,} bytes, more than [tlc.source] max_bytes"
    )
    assert source.requests == [PATH]


def bomb(inflated: int) -> bytes:
    """A valid gzip of ``inflated`` zero bytes: about 1,000 times smaller."""
    z = zlib.compressobj(9, zlib.DEFLATED, 31)
    return b"".join(z.compress(bytes(1 << 20)) for _ in range(inflated >> 20)) + z.flush()


def one_row_repeated(month: Path, rows: int) -> bytes:
    """The month's header and first row, the row repeated ``rows`` times: a real-looking CSV."""
    header, first = gzip.decompress(month.read_bytes()).split(b"\n", 2)[:2]
    z = zlib.compressobj(6, zlib.DEFLATED, 31)
    block = (first + b"\n") * 10_000
    return z.compress(header + b"\n") + b"".join(z.compress(block) for _ in range(rows // 10_000)) + z.flush()


@pytest.mark.parametrize("kind", ["gzip-bomb", "one-row-repeated"])
def test_an_inflating_file_is_refused_at_the_download_with_memory_flat(
    pipeline_env: Path, source: SourceServer, month: Path, caplog: pytest.LogCaptureFixture, kind: str
) -> None:
    good = month.read_bytes()
    month.write_bytes(bomb(256 << 20) if kind == "gzip-bomb" else one_row_repeated(month, 1_000_000))
    tracemalloc.start()
    try:
        failed_download(caplog, pipeline_env, "CorruptSource: gzip stream inflates more than", "ratio = 40")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 32 << 20, f"the gzip check held {peak / 1e6:.0f} MB"
    assert source.requests == [PATH]
    month.write_bytes(good)
    assert run([parquet_task()]).ok
    assert_lake_exact(pipeline_env, *MONTH, month)
