"""BigQuery: one table per color, a month replaced as a unit, by load jobs only.

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
The table is partitioned by month on ``source_month`` (the source file's month, not the
pickup time, which strays across months), so step 3 touches one partition.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import re
import secrets
import socket
import threading
import time
from collections.abc import Callable

from google.api_core import exceptions as gexc
from google.cloud import bigquery

from tasks import schema
from tasks.atomic import pid_alive
from tasks.errors import SinkError
from tasks.gcp import bigquery_retry, sink_errors
from tasks.identifiers import gcp_project, identifier, table_name
from tasks.months import validate_color

MARKERS = "_loads"
_CONCURRENT_UPDATE = "due to concurrent update"  # BigQuery's text when it cancels a conflicting transaction
_HOST = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]  # staging names say who wrote them
_SHA256 = re.compile(r"[0-9a-f]{64}")


def table_schema(color: str) -> list[bigquery.SchemaField]:
    return [bigquery.SchemaField(name, kind) for name, kind in schema.bigquery_fields(color)]


def _marker_schema() -> list[bigquery.SchemaField]:
    return [
        bigquery.SchemaField("color", "STRING"),
        bigquery.SchemaField("source_month", "DATE"),
        bigquery.SchemaField("rows", "INT64"),
        bigquery.SchemaField("parquet_sha256", "STRING"),
        bigquery.SchemaField("loaded_at", "TIMESTAMP"),
    ]


class Warehouse:
    """One dataset of the warehouse, with bounded retries on every call."""

    def __init__(self, client: bigquery.Client, dataset: str, retry_seconds: float, job_timeout: float) -> None:
        self.client = client
        self.dataset = f"{gcp_project(client.project)}.{identifier(dataset, 'dataset')}"
        self.retry = bigquery_retry(retry_seconds)
        self.job_timeout = job_timeout

    def table_id(self, color: str, suffix: str = "") -> str:
        return f"{self.dataset}.{table_name(validate_color(color), suffix=suffix)}"

    def ensure(self, color: str, location: str) -> None:
        """Dataset, the color's table and the marker table: created if missing, idempotently."""
        with sink_errors(f"BigQuery set-up of {self.dataset}"):
            ds = bigquery.Dataset(self.dataset)
            ds.location = location
            self.client.create_dataset(ds, exists_ok=True, retry=self.retry)
            table = bigquery.Table(self.table_id(color), schema=table_schema(color))
            table.time_partitioning = bigquery.TimePartitioning(
                type_=bigquery.TimePartitioningType.MONTH, field=schema.SOURCE_MONTH
            )
            self.client.create_table(table, exists_ok=True, retry=self.retry)
            markers = bigquery.Table(f"{self.dataset}.{MARKERS}", schema=_marker_schema())
            self.client.create_table(markers, exists_ok=True, retry=self.retry)

    def _query(self, sql: str) -> list[bigquery.Row]:
        job = self.client.query(sql, retry=self.retry, job_retry=None)
        return list(job.result(retry=self.retry, timeout=self.job_timeout))

    def month_state(self, color: str, year: int, month: int) -> tuple[int, int | None, str | None]:
        """(rows in the table, rows in the marker, Parquet sha256 in the marker) for a month."""
        day = dt.date(year, month, 1).isoformat()
        sql = f"""
            SELECT
              (SELECT COUNT(*) FROM `{self.table_id(color)}` WHERE source_month = DATE '{day}') AS n,
              (SELECT MAX(rows) FROM `{self.dataset}.{MARKERS}`
                 WHERE color = '{validate_color(color)}' AND source_month = DATE '{day}') AS marker_rows,
              (SELECT MAX(parquet_sha256) FROM `{self.dataset}.{MARKERS}`
                 WHERE color = '{validate_color(color)}' AND source_month = DATE '{day}') AS marker_sha
        """
        with sink_errors(f"BigQuery state of {color} {year}-{month:02d}"):
            try:
                row = self._query(sql)[0]
            except gexc.NotFound:
                return 0, None, None
        return int(row["n"]), row["marker_rows"], row["marker_sha"]

    def counts_by_month(self, color: str) -> dict[dt.date, int]:
        """Rows per source month of a color's table; empty when the table does not exist yet."""
        with sink_errors(f"BigQuery count of {self.table_id(color)}"):
            try:
                rows = self._query(f"SELECT source_month, COUNT(*) AS n FROM `{self.table_id(color)}` GROUP BY 1")
            except gexc.NotFound:
                return {}
        return {r["source_month"]: int(r["n"]) for r in rows}

    def markers(self, color: str) -> dict[dt.date, tuple[int, str]]:
        """(rows, Parquet sha256) of every month of a color recorded in ``_loads``."""
        with sink_errors(f"BigQuery read of {self.dataset}.{MARKERS}"):
            try:
                rows = self._query(
                    f"SELECT source_month, rows, parquet_sha256 FROM `{self.dataset}.{MARKERS}` "
                    f"WHERE color = '{validate_color(color)}'"
                )
            except gexc.NotFound:
                return {}
        return {r["source_month"]: (int(r["rows"]), r["parquet_sha256"]) for r in rows}

    def load_month(
        self,
        color: str,
        year: int,
        month: int,
        uri: str,
        expected_rows: int,
        parquet_sha256: str,
        verified_generation: Callable[[], int | None],
    ) -> int:
        """Replace the month with the rows of ``uri``; ``verified_generation`` pins the object.

        It returns the object's generation when the object still matches the local Parquet,
        else None; it is asked before and after the load job.
        """
        if not _SHA256.fullmatch(parquet_sha256):
            raise SinkError(f"refusing to load {uri}: recorded sha256 {parquet_sha256!r} is malformed")
        prefix = table_name(validate_color(color), year, month, suffix="_staging_")
        writer = f"{_HOST}_{os.getpid()}_{threading.get_native_id()}"
        staging = f"{self.dataset}.{prefix}{writer}_{secrets.token_hex(3)}"
        where = f"BigQuery load of {color} {year}-{month:02d} from {uri}"
        with sink_errors(where):
            self._drop_leftovers(prefix)
            try:
                self._stage(uri, staging, color, where, verified_generation)
                staged = self._verify(staging, dt.date(year, month, 1), expected_rows, where)
                self._swap(color, dt.date(year, month, 1), staging, expected_rows, parquet_sha256)
            finally:
                self.client.delete_table(staging, not_found_ok=True, retry=self.retry)
        return staged

    def _stage(
        self, uri: str, staging: str, color: str, where: str, verified_generation: Callable[[], int | None]
    ) -> None:
        """Load job into this attempt's own staging table, proving it read the verified object."""
        replaced = f"{where}: the object no longer matches the local Parquet (replaced or deleted); a rerun uploads it"
        generation = verified_generation()
        if generation is None:
            raise SinkError(replaced)
        config = bigquery.LoadJobConfig(
            source_format=bigquery.SourceFormat.PARQUET,
            write_disposition=bigquery.WriteDisposition.WRITE_TRUNCATE,
            schema=table_schema(color),
        )
        job = self.client.load_table_from_uri(uri, staging, job_config=config, retry=self.retry)
        job.result(retry=self.retry, timeout=self.job_timeout)
        if verified_generation() != generation:
            raise SinkError(replaced)

    def _verify(self, staging: str, day: dt.date, expected_rows: int, where: str) -> int:
        """Every staged row is of this source month, and there are as many as in the Parquet."""
        row = self._query(
            f"SELECT COUNT(*) AS n, COUNTIF(source_month IS NULL OR source_month != DATE '{day.isoformat()}') "
            f"AS strays FROM `{staging}`"
        )[0]
        staged, strays = int(row["n"]), int(row["strays"])
        if strays:
            raise SinkError(f"{where}: {strays} staged rows belong to another source month")
        if staged != expected_rows:
            raise SinkError(f"{where}: staged {staged} rows, the Parquet has {expected_rows}")
        return staged

    def _swap(self, color: str, day: dt.date, staging: str, rows: int, parquet_sha256: str) -> None:
        """One transaction replaces the month and its marker.

        Real BigQuery cancels one of two transactions that change the same table at once
        ("... due to concurrent update"): another month of the color under ``--workers 2``, or
        any load, through the shared ``_loads`` table. The cancelled one changed nothing, so it
        is retried with backoff for as long as a job may take: the other one is running one.
        """
        color, first = validate_color(color), day.isoformat()
        sql = f"""
            BEGIN TRANSACTION;
            DELETE FROM `{self.table_id(color)}` WHERE source_month = DATE '{first}';
            INSERT INTO `{self.table_id(color)}` SELECT * FROM `{staging}`;
            DELETE FROM `{self.dataset}.{MARKERS}` WHERE color = '{color}' AND source_month = DATE '{first}';
            INSERT INTO `{self.dataset}.{MARKERS}` (color, source_month, rows, parquet_sha256, loaded_at)
              VALUES ('{color}', DATE '{first}', {int(rows)}, '{parquet_sha256}', CURRENT_TIMESTAMP());
            COMMIT TRANSACTION;
        """
        deadline, delay = time.monotonic() + self.job_timeout, 1.0
        while True:
            try:
                self._query(sql)
                return
            except gexc.BadRequest as exc:
                if _CONCURRENT_UPDATE not in str(exc) or time.monotonic() + delay > deadline:
                    raise
            time.sleep(delay)  # backoff before retrying a cancelled transaction
            delay = min(delay * 2, 30.0)

    def _drop_leftovers(self, prefix: str) -> None:
        """Drop the month's staging tables of loads that ended without dropping their own.

        A name carries its writer's host, pid and thread: one of this host whose process or
        thread is gone (SIGKILL, or a load that failed while BigQuery was unreachable) is
        dropped at once; one from elsewhere once older than twice the job timeout. Live loads
        are never touched, so concurrent loads of one month each keep their own table.
        """
        cutoff = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=2 * self.job_timeout)
        for item in self.client.list_tables(self.dataset, retry=self.retry):
            name = item.table_id
            if not name.startswith(prefix):
                continue
            host, pid, tid, *_ = [*name[len(prefix) :].split("_"), "", "", ""]
            gone = host == _HOST and pid.isdigit() and tid.isdigit() and _writer_gone(int(pid), int(tid))
            if gone or (item.created is not None and item.created < cutoff):
                self.client.delete_table(f"{self.dataset}.{name}", not_found_ok=True, retry=self.retry)


def _writer_gone(pid: int, tid: int) -> bool:
    """A writer on this host is gone when its process is, or, in this process, its thread is
    (or is the caller: that load has ended, and this is the next attempt)."""
    if pid != os.getpid():
        return not pid_alive(pid)
    return tid == threading.get_native_id() or tid not in {t.native_id for t in threading.enumerate()}
