"""What one download may cost: how long it may take and how many bytes it may bring.

The per-read timeout alone let a server trickle a byte just inside it for as long as it
liked, and a chunked body without end filled the disk. ``DownloadLimits`` bounds the whole
download, retries and backoff included:

* time: ``[tlc.source] max_seconds``; once the source publishes a Content-Length, at most
  that size at ``min_bytes_per_second`` plus one timeout per attempt (the stall each may
  have before it is retried);
* bytes: the published Content-Length exactly (a body that goes on past it is as wrong as
  one that stops short, and is retried the same way), ``max_bytes`` when none is published,
  and a published size above ``max_bytes`` is refused before a byte is read.

A read can still block for one timeout, so the time bound is kept to within that.
"""

from __future__ import annotations

import time

from tlc.config import Retry
from tlc.errors import SourceError, TransientSourceError


class DownloadTooSlow(SourceError):
    """The download's time bound passed: a source this slow is not retried, it is given up."""


class DownloadTooLarge(SourceError):
    """More bytes than the download may bring: refused before they reach the disk."""


class DownloadLimits:
    """The bounds of one download; made when it starts, shared by its attempts."""

    def __init__(self, retry: Retry) -> None:
        self.retry = retry
        self.started = time.monotonic()
        self.deadline = self.started + retry.max_seconds
        self.bound = f"[tlc.source] max_seconds = {retry.max_seconds:g}"

    def seconds_left(self) -> float:
        return self.deadline - time.monotonic()

    def timeout(self) -> float:
        """The socket timeout for the next connection: never past the deadline."""
        return max(min(self.retry.timeout, self.seconds_left()), 0.001)

    def published(self, size: int | None) -> int:
        """How many bytes a response that announced ``size`` may bring; a size shortens the time bound."""
        if size is None:
            return self.retry.max_bytes
        if size > self.retry.max_bytes:
            raise DownloadTooLarge(
                f"the source publishes {size:,} bytes, more than [tlc.source] max_bytes = {self.retry.max_bytes:,}"
            )
        slack = self.retry.attempts * self.retry.timeout
        by_size = self.started + slack + size / self.retry.min_bytes_per_second
        if by_size < self.deadline:
            self.deadline = by_size
            self.bound = (
                f"{size:,} published bytes at [tlc.source] min_bytes_per_second = "
                f"{self.retry.min_bytes_per_second:g}, plus timeout_seconds per attempt"
            )
        return size

    def check(self, got: int, allowed: int, published: bool) -> None:
        """Called as the body streams: ``got`` bytes so far, ``allowed`` from ``published()``."""
        if got > allowed:
            if published:
                raise TransientSourceError(f"body longer than the published {allowed:,} bytes")
            raise DownloadTooLarge(f"body exceeds [tlc.source] max_bytes = {allowed:,} bytes with no end announced")
        if time.monotonic() > self.deadline:
            raise DownloadTooSlow(
                f"download took longer than {self.deadline - self.started:.1f} s ({self.bound}); got {got:,} bytes"
            )
