"""Google clients, built the same way for real GCP and for the local emulators.

Real GCP: Application Default Credentials, nothing else. Emulators: selected by endpoint
settings alone (``STORAGE_EMULATOR_HOST``, ``TLC_BIGQUERY_ENDPOINT``), with anonymous
credentials. Every call gets a bounded retry deadline so a dead endpoint fails in seconds
or minutes as configured, not after the libraries' ten-minute default, and every failure
becomes one ``SinkError`` line that names the operation but carries no credential.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from google.api_core import exceptions as gexc
from google.api_core.retry import Retry
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage
from google.cloud.storage import retry as _storage_retry  # noqa: F401 - makes storage.retry importable
from google.resumable_media.common import DataCorruption  # a download whose bytes fail their checksum
from requests import exceptions as rexc

from tlc.errors import SinkError

if TYPE_CHECKING:  # the BigQuery client imports pandas (0.2 s): only processes that use it pay
    from google.cloud import bigquery


def storage_client(project: str) -> storage.Client:
    return _storage_client(project, os.environ.get("STORAGE_EMULATOR_HOST") or "", os.getpid())


@functools.lru_cache(maxsize=8)
def _storage_client(project: str, emulator: str, pid: int) -> storage.Client:
    """One client (and connection pool) per process and endpoint: luigi forks workers."""
    if emulator:
        return storage.Client(
            project=project, credentials=AnonymousCredentials(), client_options={"api_endpoint": emulator}
        )
    return storage.Client(project=project)


def bigquery_client(project: str, endpoint: str, location: str) -> bigquery.Client:
    return _bigquery_client(project, endpoint, location, os.getpid())


@functools.lru_cache(maxsize=8)
def _bigquery_client(project: str, endpoint: str, location: str, pid: int) -> bigquery.Client:
    from google.cloud import bigquery

    if endpoint:
        return bigquery.Client(
            project=project,
            location=location,
            credentials=AnonymousCredentials(),
            client_options={"api_endpoint": endpoint},
        )
    return bigquery.Client(project=project, location=location)


def storage_retry(seconds: float) -> Retry:
    return storage.retry.DEFAULT_RETRY.with_timeout(seconds)


def bigquery_retry(seconds: float) -> Retry:
    from google.cloud import bigquery

    return bigquery.DEFAULT_RETRY.with_timeout(seconds)


@contextmanager
def sink_errors(what: str) -> Iterator[None]:
    """Turn client failures into one line: the operation, the error class, its first line."""
    try:
        yield
    except SinkError:
        raise
    except (gexc.GoogleAPIError, rexc.RequestException, TimeoutError, ConnectionError, DataCorruption) as exc:
        cause = exc
        if isinstance(exc, gexc.RetryError) and exc.cause is not None:
            cause = exc.cause
        text = (getattr(cause, "message", None) or str(cause)).strip().splitlines()
        detail = text[0][:300] if text else ""
        raise SinkError(f"{what} failed: {type(cause).__name__}: {detail}") from None
