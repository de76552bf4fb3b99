"""HTTP for the sources: streaming downloads verified before they may exist, HEAD probes, retries.

The body is hashed and fed to the source kind's verifier while it streams to a temporary
file, so a truncated transfer, a corrupt archive or an HTML error page served with status
200 is caught without a second pass, and the file is renamed into place only when the
verifier accepted the whole body. Transient failures are retried with exponential backoff;
a 404 is not.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import http.client
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol, TypeVar

from tlc.atomic import atomic_path
from tlc.config import Retry
from tlc.errors import CorruptSource, InvalidInput, SourceError, SourceNotFound, TransientSourceError

CHUNK = 1 << 20
DEFAULT_RETRY = Retry()
T = TypeVar("T")
Progress = Callable[[int, int | None], None]  # (bytes so far, total bytes or None)


class Verifier(Protocol):
    """Proves, while the bytes stream, that the body is a whole file of the source's format."""

    def feed(self, data: bytes) -> None: ...

    def finish(self) -> None: ...


def check_base_url(url: str) -> None:
    """Refuse a URL that is not http(s) or whose host cannot be read, without echoing it: it may hold a password.

    An unencoded ``/``, ``?`` or ``#`` in ``user:password@`` moves the password into the host,
    port or path, where it would reach a DNS error, a traceback or a log line.
    """
    parts = urllib.parse.urlsplit(url)
    try:
        readable = parts.scheme in ("http", "https") and bool(parts.hostname) and (parts.port or 0) >= 0
    except ValueError:
        readable = False
    if not readable or (parts.username is None and "@" in url):
        raise InvalidInput(
            "source URL is not valid: use http(s)://[user:password@]host[:port]/path, "
            "with special characters of user and password percent-encoded"
        )


def _netloc(parts: urllib.parse.SplitResult) -> str:
    """Host and port without credentials; IPv6 literals keep their brackets."""
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    return f"{host}:{parts.port}" if parts.port else host


def redact_url(url: str) -> str:
    """The URL without credentials or query string, fit for logs and error messages."""
    parts = urllib.parse.urlsplit(url)
    try:
        netloc = _netloc(parts)
    except ValueError:  # an unreadable port may be a misplaced password: say nothing of it
        netloc = "<unreadable host>"
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, "", ""))


@dataclass
class DownloadRecord:
    """What we fetched, kept beside the file: the lineage every later stage refers to."""

    url: str
    size: int
    sha256: str
    md5: str  # what GCS reports for the raw zone's copy
    etag: str | None
    last_modified: str | None
    downloaded_at: str
    attempts: int


def _describe(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    if isinstance(exc, urllib.error.URLError):
        return f"{exc.reason}"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _request(url: str, method: str) -> urllib.request.Request:
    """``user:pass@`` in the URL becomes HTTP Basic auth, which urllib would not send by itself.

    The header is unredirected: a release URL redirects to another host (GitHub's object
    store), which must not receive the credentials.
    """
    parts = urllib.parse.urlsplit(url)
    headers = {"User-Agent": "tlc-luigi", "Accept-Encoding": "identity"}
    if parts.username is None:
        return urllib.request.Request(url, headers=headers, method=method)  # noqa: S310 - scheme checked
    bare = urllib.parse.urlunsplit((parts.scheme, _netloc(parts), parts.path, parts.query, parts.fragment))
    request = urllib.request.Request(bare, headers=headers, method=method)  # noqa: S310 - scheme checked
    userinfo = f"{urllib.parse.unquote(parts.username)}:{urllib.parse.unquote(parts.password or '')}"
    request.add_unredirected_header("Authorization", "Basic " + base64.b64encode(userinfo.encode()).decode())
    return request


def _open(url: str, timeout: float, method: str = "GET") -> http.client.HTTPResponse:
    request = _request(url, method)
    try:
        return urllib.request.urlopen(request, timeout=timeout)  # noqa: S310 - scheme checked in check_base_url()
    except urllib.error.HTTPError as exc:
        exc.close()
        if exc.code in (404, 410):
            raise SourceNotFound(f"not published: HTTP {exc.code} for {redact_url(url)}") from None
        if exc.code >= 500 or exc.code in (408, 429):
            raise TransientSourceError(_describe(exc)) from None
        raise SourceError(f"source refused the download: {_describe(exc)} for {redact_url(url)}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise TransientSourceError(_describe(exc)) from None


def _fetch_once(url: str, dest: Path, timeout: float, verifier: Verifier, progress: Progress | None) -> DownloadRecord:
    with _open(url, timeout) as resp, atomic_path(dest) as tmp:
        expected = resp.headers.get("Content-Length")
        total = int(expected) if expected and expected.isdigit() else None
        digest, md5 = hashlib.sha256(), hashlib.md5(usedforsecurity=False)
        size = 0
        with open(tmp, "wb") as out:
            while True:
                try:
                    chunk = resp.read(CHUNK)
                except (http.client.IncompleteRead, OSError) as exc:
                    raise TransientSourceError(f"connection lost after {size} bytes: {_describe(exc)}") from None
                if not chunk:
                    break
                out.write(chunk)
                digest.update(chunk)
                md5.update(chunk)
                verifier.feed(chunk)
                size += len(chunk)
                if progress:
                    progress(size, total)
        if total is not None and size != total:
            raise TransientSourceError(f"short body: got {size} of {total} bytes")
        verifier.finish()
        return DownloadRecord(
            url=redact_url(url),
            size=size,
            sha256=digest.hexdigest(),
            md5=md5.hexdigest(),
            etag=resp.headers.get("ETag"),
            last_modified=resp.headers.get("Last-Modified"),
            downloaded_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            attempts=0,
        )


def _retrying(
    action: Callable[[], T], url: str, attempts: int, backoff: float, log: Callable[[str], None] | None
) -> tuple[T, int]:
    """Run ``action`` until it succeeds, retrying transient failures with exponential backoff."""
    last = ""
    for attempt in range(1, attempts + 1):
        try:
            return action(), attempt
        except TransientSourceError as exc:
            last = str(exc)
            if attempt < attempts:
                delay = backoff * 2 ** (attempt - 1)
                if log:
                    log(f"attempt {attempt}/{attempts} failed ({last}); retrying in {delay:.1f}s")
                time.sleep(delay)
    raise SourceError(f"source unreachable after {attempts} attempts: {last} for {redact_url(url)}")


def download(
    url: str,
    dest: Path,
    verifier: Callable[[], Verifier],
    *,
    retry: Retry = DEFAULT_RETRY,
    progress: Progress | None = None,
    log: Callable[[str], None] | None = None,
) -> DownloadRecord:
    """Fetch ``url`` into ``dest`` atomically; retry only what a retry can fix.

    ``verifier`` makes a fresh verifier for each attempt: a retried transfer starts over.
    """
    check_base_url(url)
    try:
        record, used = _retrying(
            lambda: _fetch_once(url, dest, retry.timeout, verifier(), progress), url, retry.attempts, retry.backoff, log
        )
    except CorruptSource as exc:
        raise CorruptSource(f"{exc}: {redact_url(url)}") from None
    record.attempts = used
    return record


def head(url: str, retry: Retry = DEFAULT_RETRY) -> dict[str, str]:
    """The month's response headers (ETag, Last-Modified, Content-Length), with retries."""
    check_base_url(url)

    def once() -> dict[str, str]:
        with _open(url, retry.timeout, method="HEAD") as resp:
            return dict(resp.headers)

    return _retrying(once, url, retry.attempts, retry.backoff, None)[0]


VALIDATORS = ("etag", "last_modified", "size")


def remote_validators(url: str, retry: Retry = DEFAULT_RETRY) -> dict:
    """What the source says of the file now (a HEAD): ETag, Last-Modified and size."""
    headers = head(url, retry)
    length = headers.get("Content-Length")
    return {
        "etag": headers.get("ETag"),
        "last_modified": headers.get("Last-Modified"),
        "size": int(length) if length and length.isdigit() else None,
    }


def changed(recorded: dict, remote: dict) -> list[str]:
    """Which of the validators the source reports differ from what we downloaded."""
    return [k for k in VALIDATORS if remote.get(k) is not None and remote[k] != recorded.get(k)]


def unchanged(recorded: dict, remote: dict) -> bool:
    """The source vouches that it still serves the recorded file: some validator, none differing."""
    return any(remote.get(k) is not None for k in VALIDATORS) and not changed(recorded, remote)


def is_published(url: str, retry: Retry = DEFAULT_RETRY) -> bool:
    """False on 404/410, True on 200; anything else is an error, not a 'no'."""
    try:
        head(url, retry)
    except SourceNotFound:
        return False
    return True


def record_dict(record: DownloadRecord) -> dict:
    return asdict(record)
