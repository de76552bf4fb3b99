"""Errors the pipeline raises on purpose, each a one-line message a user can act on.

Anything derived from ``PipelineError`` is an expected failure (bad input, a missing month,
a changed header): the CLI prints its message without a traceback. Anything else is a bug
and keeps its traceback.
"""

from __future__ import annotations


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
