"""DownloadCSV's fetch layer against a real loopback server that misbehaves on purpose."""

from __future__ import annotations

import base64
import gzip
import hashlib
from pathlib import Path

import pytest

from tests.sourceserver import SourceServer
from tlc.config import Retry
from tlc.errors import CorruptSource, InvalidInput, SourceError, SourceNotFound
from tlc.month import Month
from tlc.sources.csv_releases import GzipVerifier, url
from tlc.sources.http import _request, download, redact_url

MONTH = "/yellow/yellow_tripdata_2021-01.csv.gz"


@pytest.fixture
def published(source_dir: Path) -> bytes:
    """A real gzip month at the release path; large enough to span many read chunks."""
    rows = "".join(f"1,2021-01-01 00:{i % 60:02d}:00,{i}\n" for i in range(200_000))
    body = gzip.compress(("VendorID,tpep_pickup_datetime,n\n" + rows).encode())
    path = source_dir / MONTH.lstrip("/")
    path.parent.mkdir(parents=True)
    path.write_bytes(body)
    return body


def fetch(server: SourceServer, dest: Path, **kw: float) -> object:
    opts = {"timeout": 2.0, "attempts": 3, "backoff": 0.01} | kw
    return download(url(server.url, Month("yellow", 2021, 1)), dest, GzipVerifier, retry=Retry(**opts))


def leftovers(dest: Path) -> list[Path]:
    return sorted(dest.parent.iterdir()) if dest.parent.exists() else []


def test_download_records_size_hash_and_etag(source: SourceServer, published: bytes, tmp_path: Path) -> None:
    dest = tmp_path / "out" / "m.csv.gz"
    record = fetch(source, dest)
    assert dest.read_bytes() == published
    assert record.size == len(published)
    assert record.sha256 == hashlib.sha256(published).hexdigest()
    assert record.etag and record.attempts == 1
    assert leftovers(dest) == [dest]


def test_not_published_fails_at_once_without_retry(source: SourceServer, tmp_path: Path) -> None:
    dest = tmp_path / "out" / "m.csv.gz"
    with pytest.raises(SourceNotFound, match=r"HTTP 404 for http://127\.0\.0\.1:\d+/yellow/yellow_tripdata_2021-01"):
        fetch(source, dest)
    assert source.requests == [MONTH]
    assert leftovers(dest) == []


@pytest.mark.parametrize("code", ["403", "401"])
def test_refused_is_not_retried(source: SourceServer, published: bytes, tmp_path: Path, code: str) -> None:
    source.plans[MONTH] = [code]
    with pytest.raises(SourceError, match=f"HTTP {code}"):
        fetch(source, tmp_path / "m.csv.gz")
    assert len(source.requests) == 1


@pytest.mark.parametrize("fault", ["500", "503", "drop", "long_length", "stall"])
def test_transient_faults_are_retried_then_succeed(
    source: SourceServer, published: bytes, tmp_path: Path, fault: str
) -> None:
    source.stall_seconds = 1.5
    source.plans[MONTH] = [fault, fault, "ok"]
    dest = tmp_path / "out" / "m.csv.gz"
    record = fetch(source, dest, timeout=0.5)
    assert record.attempts == 3
    assert dest.read_bytes() == published
    assert leftovers(dest) == [dest]


def test_persistent_drop_gives_up_and_leaves_nothing(source: SourceServer, published: bytes, tmp_path: Path) -> None:
    source.plans[MONTH] = ["drop"] * 3
    dest = tmp_path / "out" / "m.csv.gz"
    with pytest.raises(SourceError, match=r"after 3 attempts: (connection lost|short body)"):
        fetch(source, dest)
    assert len(source.requests) == 3
    assert leftovers(dest) == []


def test_previous_good_file_survives_a_failed_refetch(source: SourceServer, published: bytes, tmp_path: Path) -> None:
    dest = tmp_path / "out" / "m.csv.gz"
    fetch(source, dest)
    source.plans[MONTH] = ["drop"] * 3
    with pytest.raises(SourceError):
        fetch(source, dest)
    assert dest.read_bytes() == published


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda b: b[: len(b) // 2], "truncated"),
        (lambda b: b[:5000] + bytes(500) + b[5500:], "not a valid gzip stream"),
        (lambda b: b"<html>not found</html>", "not a valid gzip stream"),
    ],
    ids=["truncated", "corrupt-middle", "not-gzip"],
)
def test_corrupt_archive_is_refused(source: SourceServer, source_dir: Path, tmp_path: Path, mutate, message) -> None:
    body = gzip.compress(b"".join(b"1,2,3,%d\n" % i for i in range(100_000)))
    path = source_dir / MONTH.lstrip("/")
    path.parent.mkdir(parents=True)
    path.write_bytes(mutate(body))
    dest = tmp_path / "out" / "m.csv.gz"
    with pytest.raises(CorruptSource, match=message):
        fetch(source, dest)
    assert leftovers(dest) == []


def test_html_page_with_status_200_is_refused(source: SourceServer, published: bytes, tmp_path: Path) -> None:
    source.plans[MONTH] = ["html200"]
    with pytest.raises(CorruptSource, match="not a valid gzip stream"):
        fetch(source, tmp_path / "m.csv.gz")


def test_dead_server_gives_clear_error_after_bounded_retries(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=r"unreachable after 2 attempts: .*refused"):
        download("http://127.0.0.1:9/yellow/x.csv.gz", tmp_path / "x", GzipVerifier, retry=Retry(1, 2, 0.01))


def test_credentials_never_reach_messages() -> None:
    assert redact_url("https://user:s3cret@example.org/a/b.csv.gz?token=abc") == "https://example.org/a/b.csv.gz"
    with pytest.raises(SourceError) as err:
        download(
            "http://user:s3cret@127.0.0.1:9/x.csv.gz", Path("/nonexistent/x"), GzipVerifier, retry=Retry(attempts=1)
        )
    assert "s3cret" not in str(err.value)


@pytest.mark.parametrize(
    "base", ["https://user:s3cr3t?x@host/x", "https://user:s3/cr3t@host", "https://user:12#s3cr3t@host", "ftp://host/x"]
)
def test_unreadable_source_url_is_refused_without_echoing_it(base: str) -> None:
    """An unencoded ?, / or # in the password would move it into the host, port or path."""
    with pytest.raises(InvalidInput, match="source URL is not valid") as refused:
        url(base, Month("yellow", 2021, 1))
    assert "s3cr3t" not in str(refused.value) and "12" not in str(refused.value)


def test_url_credentials_become_basic_auth_and_ipv6_hosts_keep_their_brackets() -> None:
    full = url("https://us%40er:p%2Fss@[::1]:8443/rel", Month("fhv", 2019, 2))
    request = _request(full, "GET")
    assert request.full_url == "https://[::1]:8443/rel/fhv/fhv_tripdata_2019-02.csv.gz"
    assert request.unredirected_hdrs["Authorization"] == "Basic " + base64.b64encode(b"us@er:p/ss").decode()
    assert "Authorization" not in request.headers  # so a redirect to another host does not carry it
    assert redact_url(full) == "https://[::1]:8443/rel/fhv/fhv_tripdata_2019-02.csv.gz"
