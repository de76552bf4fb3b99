"""Errors the pipeline raises on purpose, each a one-line message a user can act on.

Anything derived from ``PipelineError`` is an expected failure (bad input, a missing month,
a changed header): the CLI prints its message without a traceback. Anything else is a bug
and keeps its traceback.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterator


class PipelineError(Exception):
    """An expected failure whose message alone tells the user what went wrong."""


class InvalidInput(PipelineError, ValueError):
    """A parameter or setting outside what the pipeline accepts; raised before any work."""


class SourceNotFound(PipelineError):
    """The month is not published at the source (404/410): retrying cannot help."""


class SourceError(PipelineError):
    """The source refused, failed or kept failing after bounded retries."""


class TransientSourceError(SourceError):
    """A failure worth retrying: connection reset, timeout, 5xx, short body."""


class CorruptSource(PipelineError):
    """The bytes arrived but are not a complete gzip stream (truncated, corrupt, an HTML page)."""


class SchemaMismatch(PipelineError):
    """The CSV header is not one the pipeline knows for this color."""


class DataError(PipelineError):
    """A value in the CSV cannot be read as its column's type."""


class SinkError(PipelineError):
    """A warehouse or lake operation failed after bounded retries."""


class LocalDiskFull(PipelineError):
    """The local disk or quota filled up: the temporary was removed; free space and rerun."""


_DISK_FULL = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


def is_disk_full(exc: BaseException) -> bool:
    """Also recognises pyarrow's IO errors, which carry the errno only in their text."""
    if not isinstance(exc, OSError):
        return False
    return exc.errno in _DISK_FULL or any(os.strerror(code) in str(exc) for code in _DISK_FULL)


@contextlib.contextmanager
def local_writes(what: str) -> Iterator[None]:
    """Report a full disk as one line naming what was being written, not as a traceback."""
    try:
        yield
    except OSError as exc:
        if not is_disk_full(exc):
            raise
        reason = os.strerror(exc.errno) if exc.errno in _DISK_FULL else "No space left on device"
        raise LocalDiskFull(f"{what}: {reason}") from None
