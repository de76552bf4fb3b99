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


class SourceRefused(PipelineError):
    """The source file's content cannot become the month, whatever the exception that said so.

    Raised only by the reading side (``tlc.sources``) and by checks of what was read: the
    conversion moves the download aside, so a plain rerun asks the source again instead of
    converting the same bytes forever.
    """


class CorruptSource(SourceRefused):
    """The bytes arrived but are not a complete gzip stream (truncated, corrupt, an HTML page)."""


class SourceKindChanged(PipelineError):
    """The month was made from one source kind and the configuration now gives the other."""


class SchemaMismatch(SourceRefused):
    """The CSV header is not one the pipeline knows for this color."""


class DataError(SourceRefused):
    """A value in the CSV cannot be read as its column's type."""


class ConversionFailed(PipelineError):
    """Converting a month failed for a reason that is neither the source's content nor a local write.

    A bug or a resource limit: the message names the month and the exception in one line, the
    download stays where it is (it may be fine), and the cause is chained for the traceback
    luigi sends to the scheduler.
    """


class SinkError(PipelineError):
    """A warehouse or lake operation failed after bounded retries."""


class LocalWriteError(PipelineError):
    """A local output could not be written (permissions, read-only filesystem, full disk).

    Never the source's fault: the download is kept, and a rerun after the fix completes.
    """


class LocalDiskFull(LocalWriteError):
    """The local disk or quota filled up: the temporary was removed; free space and rerun."""


_DISK_FULL = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


def is_disk_full(exc: BaseException) -> bool:
    """Also recognises pyarrow's IO errors, which carry the errno only in their text."""
    if not isinstance(exc, OSError):
        return False
    return exc.errno in _DISK_FULL or any(os.strerror(code) in str(exc) for code in _DISK_FULL)


def local_write_error(exc: OSError, what: str) -> LocalWriteError:
    """One line naming what was being written and why it failed."""
    if is_disk_full(exc):
        reason = os.strerror(exc.errno) if exc.errno in _DISK_FULL else "No space left on device"
        return LocalDiskFull(f"{what}: {reason}")
    reason = exc.strerror or next(iter(str(exc).splitlines()), type(exc).__name__)
    return LocalWriteError(f"{what}: {reason}" + (f": {exc.filename}" if exc.filename else ""))


@contextlib.contextmanager
def local_writes(what: str) -> Iterator[None]:
    """Report a failed local write as one line naming what was being written, not as a traceback.

    Network and source errors are already ours (SourceError, SinkError) by the time they get
    here, so an OSError left is the local filesystem's.
    """
    try:
        yield
    except OSError as exc:
        raise local_write_error(exc, what) from None


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (pyarrow's run over several), or its type's name."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0].strip()
