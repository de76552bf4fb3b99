"""HTTP for the sources: streaming downloads verified before they may exist, HEAD probes, retries.

The body is hashed and fed to the source kind's verifier while it streams to a temporary
file, so a truncated transfer, a corrupt archive or an HTML error page served with status
200 is caught without a second pass, and the file is renamed into place only when the
verifier accepted the whole body. Transient failures are retried with exponential backoff;
a 404 is not.

Every response is the source's to get wrong, so every way a response can be malformed (a bad
status line, too many or too long headers, broken chunked encoding, any ``http.client``
exception, a reset in the middle of the headers) is a transient source fault, retried and
reported in one line at the end. Redirects are followed only to http and https URLs, and
never with the credentials. A download is bounded as a whole, not only per read: in time
(``max_seconds``, shortened to the published size at ``min_bytes_per_second`` plus one
timeout per attempt when the source publishes a Content-Length) and in size (the published size exactly,
``max_bytes`` when none is published), so a server trickling bytes or streaming forever
cannot hold a worker or fill the disk.
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
from tlc.sources.limits import DownloadLimits, DownloadTooLarge, DownloadTooSlow
from tlc.sources.responses import OPENER, RESPONSE_ERRORS, describe

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


def _redirect_refused(exc: urllib.error.HTTPError, request: urllib.request.Request) -> str:
    """Why a 3xx ended the request, naming its target without credentials or query string."""
    target = exc.filename or ""
    if str(exc.reason).startswith(urllib.request.HTTPRedirectHandler.inf_msg):
        return f"source redirects in a loop or too often (HTTP {exc.code}, last to {redact_url(target)})"
    if target == request.full_url:
        return f"source answered HTTP {exc.code} without a redirect to follow"
    return f"source redirected to {redact_url(target)}, which is not followed (only http and https are)"


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
        return OPENER.open(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        exc.close()
        if exc.code in (404, 410):
            raise SourceNotFound(f"not published: HTTP {exc.code} for {redact_url(url)}") from None
        if exc.code >= 500 or exc.code in (408, 429):
            raise TransientSourceError(describe(exc)) from None
        if 300 <= exc.code < 400:
            raise SourceError(f"{_redirect_refused(exc, request)} for {redact_url(url)}") from None
        raise SourceError(f"source refused the download: {describe(exc)} for {redact_url(url)}") from None
    except RESPONSE_ERRORS as exc:  # URLError is an OSError
        raise TransientSourceError(describe(exc)) from None


def _fetch_once(
    url: str, dest: Path, limits: DownloadLimits, verifier: Verifier, progress: Progress | None
) -> DownloadRecord:
    with _open(url, limits.timeout()) as resp, atomic_path(dest) as tmp:
        expected = resp.headers.get("Content-Length")
        total = int(expected) if expected and expected.isdigit() else None
        allowed = limits.published(total)
        digest, md5 = hashlib.sha256(), hashlib.md5(usedforsecurity=False)
        size = 0
        with open(tmp, "wb") as out:
            while True:
                try:
                    chunk = resp.read1(CHUNK)  # one receive at a time, so the bounds are checked as bytes come
                except RESPONSE_ERRORS as exc:
                    raise TransientSourceError(f"connection lost after {size} bytes: {describe(exc)}") from None
                if not chunk:
                    break
                size += len(chunk)
                limits.check(size, allowed, total is not None)
                out.write(chunk)
                digest.update(chunk)
                md5.update(chunk)
                verifier.feed(chunk)
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
    action: Callable[[], T],
    url: str,
    retry: Retry,
    log: Callable[[str], None] | None,
    limits: DownloadLimits | None = None,
) -> tuple[T, int]:
    """Run ``action`` until it succeeds, retrying transient failures with exponential backoff
    (and, for a download, only while its time bound leaves room for the wait)."""
    last, attempts = "", retry.attempts
    for attempt in range(1, attempts + 1):
        try:
            return action(), attempt
        except TransientSourceError as exc:
            last = str(exc)
            delay = retry.backoff * 2 ** (attempt - 1)
            if attempt < attempts:
                if limits is not None and limits.seconds_left() <= delay:
                    msg = f"no time left to retry ({limits.bound}) after {attempt} attempts: {last}"
                    raise DownloadTooSlow(msg) from None
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
    """Fetch ``url`` into ``dest`` atomically; retry only what a retry can fix, within the download's bounds.

    ``verifier`` makes a fresh verifier for each attempt: a retried transfer starts over.
    """
    check_base_url(url)
    limits = DownloadLimits(retry)
    try:
        record, used = _retrying(lambda: _fetch_once(url, dest, limits, verifier(), progress), url, retry, log, limits)
    except (CorruptSource, DownloadTooLarge, DownloadTooSlow) as exc:
        raise type(exc)(f"{exc}: {redact_url(url)}") from None
    record.attempts = used
    return record


def head(url: str, retry: Retry = DEFAULT_RETRY) -> dict[str, str]:
    """The month's response headers (ETag, Last-Modified, Content-Length), with retries."""
    check_base_url(url)

    def once() -> dict[str, str]:
        with _open(url, retry.timeout, method="HEAD") as resp:
            return dict(resp.headers)

    return _retrying(once, url, retry, None)[0]


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
