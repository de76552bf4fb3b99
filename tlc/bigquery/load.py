"""One month into BigQuery: a load job from the lake into staging, then one transaction swaps it in.

Mechanism (works on real BigQuery and on bqemulator, which rejects ``table$YYYYMM``
decorators and ``MERGE ... INSERT ROW``):
1. a load job takes the month's Parquet from its ``gs://`` URI into a staging table of this
   attempt's own (explicit schema; the name carries host, pid, thread and a token, so
   concurrent loads never share one): rows never stream through this process;
2. the object's generation is read before and after the job and must be the one whose md5
   equals the local Parquet's, so the job read the verified bytes and not a replacement;
   the staging rows must all carry this source month and their count equal the Parquet's;
3. one multi-statement transaction deletes the month (``WHERE source_month = ...``), inserts
   the staging rows and records the load in ``_loads``; it commits whole or not at all, so
   readers never see a half-loaded month and a failed load leaves the previous one intact;
   a transaction BigQuery cancels for a concurrent one is retried;
4. the staging table is dropped; staging tables of loads that died are dropped by the next.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import os
import re
import secrets
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from google.api_core import exceptions as gexc
from google.cloud import bigquery

from tlc import phases
from tlc.atomic import pid_alive
from tlc.bigquery.dataset import Dataset, table_schema
from tlc.errors import SinkError
from tlc.gcp import sink_errors
from tlc.identifiers import month_table_name
from tlc.month import Month

_CONCURRENT_UPDATE = "due to concurrent update"  # BigQuery's text when it cancels a conflicting transaction
# A live load takes at most its load job, its check query, the swap's retry window and a last
# query, each bounded by the job timeout: another host's staging table older than this many
# job timeouts is no live load's.
_LIVE_LOAD_TIMEOUTS = 6


def _host_id() -> str:
    """Who this host is, for staging names: the hostname, and the boot and process-id namespace,
    so containers sharing a hostname never take each other's live loads for dead ones."""
    parts = [socket.gethostname()]
    with contextlib.suppress(OSError):
        parts.append(Path("/proc/sys/kernel/random/boot_id").read_text().strip())
        parts.append(str(os.stat("/proc/self/ns/pid").st_ino))
    return hashlib.sha256("/".join(parts).encode()).hexdigest()[:8]


_HOST = _host_id()  # staging names say who wrote them
_SHA256 = re.compile(r"[0-9a-f]{64}")
# Any month's staging table, exactly as load_month names it: a user's table is never matched.
_STAGING = re.compile(
    r"[a-z]+_tripdata_\d{4}_\d{2}_staging_(?P<host>[0-9a-f]{8})_(?P<pid>\d+)_(?P<tid>\d+)_[0-9a-f]{6}"
)


@dataclass(frozen=True)
class Load:
    """What to load and what it must turn out to be."""

    month: Month
    uri: str
    rows: int
    parquet_sha256: str
    verified_generation: Callable[[], int | None]  # the object's generation while it matches, else None

    @property
    def where(self) -> str:
        return f"BigQuery load of {self.month.label} from {self.uri}"


def load_month(ds: Dataset, load: Load) -> int:
    """Replace the month with the rows of ``load.uri``; return the rows loaded."""
    if not _SHA256.fullmatch(load.parquet_sha256):
        raise SinkError(f"refusing to load {load.uri}: recorded sha256 {load.parquet_sha256!r} is malformed")
    prefix = month_table_name(load.month, "_staging_")
    writer = f"{_HOST}_{os.getpid()}_{threading.get_native_id()}"
    staging = f"{ds.id}.{prefix}{writer}_{secrets.token_hex(3)}"
    phases.reached("bigquery.loading", month=load.month, uri=load.uri)
    with sink_errors(load.where):
        _drop_leftovers(ds)
        try:
            _stage(ds, load, staging)
            staged = _verify(ds, load, staging)
            _swap(ds, load, staging)
        finally:
            ds.client.delete_table(staging, not_found_ok=True, retry=ds.retry)
    return staged


def _stage(ds: Dataset, load: Load, staging: str) -> None:
    """Load job into this attempt's own staging table, proving it read the verified object."""
    replaced = f"{load.where}: the object no longer matches the local Parquet (replaced or deleted); a rerun uploads it"
    generation = load.verified_generation()
    if generation is None:
        raise SinkError(replaced)
    config = bigquery.LoadJobConfig(
        source_format=bigquery.SourceFormat.PARQUET,
        write_disposition=bigquery.WriteDisposition.WRITE_TRUNCATE,
        schema=table_schema(load.month.color),
    )
    job = ds.client.load_table_from_uri(load.uri, staging, job_config=config, retry=ds.retry)
    job.result(retry=ds.retry, timeout=ds.job_timeout)
    if load.verified_generation() != generation:
        raise SinkError(replaced)


def _verify(ds: Dataset, load: Load, staging: str) -> int:
    """Every staged row is of this source month, and there are as many as in the Parquet."""
    row = ds.query(
        f"SELECT COUNT(*) AS n, COUNTIF(source_month IS NULL OR source_month != @day) AS strays FROM `{staging}`",  # noqa: S608 - staging id from validated names
        day=load.month.first_day,
    )[0]
    staged, strays = int(row["n"]), int(row["strays"])
    if strays:
        raise SinkError(f"{load.where}: {strays} staged rows belong to another source month")
    if staged != load.rows:
        raise SinkError(f"{load.where}: staged {staged} rows, the Parquet has {load.rows}")
    return staged


def _swap(ds: Dataset, load: Load, staging: str) -> None:
    """One transaction replaces the month and its marker.

    Values are literals here, not parameters: bqemulator refuses parameters in a
    multi-statement script. Each is safe by construction: the date comes from a validated
    ``Month``, the row count is an int, the sha256 matched ``[0-9a-f]{64}`` in load_month.

    Real BigQuery cancels one of two transactions that change the same table at once
    ("... due to concurrent update"): another month of the color under ``--workers 2``, or
    any load, through the shared ``_loads`` table. The cancelled one changed nothing, so it
    is retried with backoff for as long as a job may take: the other one is running one.
    """
    color, day, table = load.month.color, load.month.first_day.isoformat(), ds.table_id(load.month.color)
    sql = f"""
        BEGIN TRANSACTION;
        DELETE FROM `{table}` WHERE source_month = DATE '{day}';
        INSERT INTO `{table}` SELECT * FROM `{staging}`;
        DELETE FROM `{ds.markers_id}` WHERE color = '{color}' AND source_month = DATE '{day}';
        INSERT INTO `{ds.markers_id}` (color, source_month, `rows`, parquet_sha256, loaded_at)
          VALUES ('{color}', DATE '{day}', {int(load.rows)}, '{load.parquet_sha256}', CURRENT_TIMESTAMP());
        COMMIT TRANSACTION;
    """  # noqa: S608 - validated identifiers and values (see the docstring)
    deadline, delay = time.monotonic() + ds.job_timeout, 1.0
    while True:
        try:
            phases.reached("bigquery.swapping", staging=staging)
            ds.query(sql)
            return
        except gexc.BadRequest as exc:
            if _CONCURRENT_UPDATE not in str(exc) or time.monotonic() + delay > deadline:
                raise
        time.sleep(delay)  # backoff before retrying a cancelled transaction
        delay = min(delay * 2, 30.0)


def _drop_leftovers(ds: Dataset) -> None:
    """Drop the staging tables, of any month, of loads that ended without dropping their own.

    Any month's, not only this one's: a worker killed between its month's commit and its drop
    leaves a month that is done and never loaded again. A name carries its writer's host, pid
    and thread: one of this host whose process or thread is gone (SIGKILL, or a load that
    failed while BigQuery was unreachable) is dropped at once; one from elsewhere once older
    than a live load can be (``_LIVE_LOAD_TIMEOUTS``). Live loads are never touched, so concurrent loads of one month
    each keep their own table.
    """
    cutoff = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=_LIVE_LOAD_TIMEOUTS * ds.job_timeout)
    for item in ds.client.list_tables(ds.id, retry=ds.retry):
        name = item.table_id
        staging = _STAGING.fullmatch(name)
        if staging is None:
            continue
        gone = staging["host"] == _HOST and _writer_gone(int(staging["pid"]), int(staging["tid"]))
        if gone or (item.created is not None and item.created < cutoff):
            ds.client.delete_table(f"{ds.id}.{name}", not_found_ok=True, retry=ds.retry)


def _writer_gone(pid: int, tid: int) -> bool:
    """A writer on this host is gone when its process is, or, in this process, its thread is
    (or is the caller: that load has ended, and this is the next attempt)."""
    if pid != os.getpid():
        return not pid_alive(pid)
    return tid == threading.get_native_id() or tid not in {t.native_id for t in threading.enumerate()}
