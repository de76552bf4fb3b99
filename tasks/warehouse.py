"""BigQuery: one table per color, a month replaced as a unit, by load jobs only.

Mechanism (works on real BigQuery and on bqemulator, which rejects ``table$YYYYMM``
decorators and ``MERGE ... INSERT ROW``):
1. a load job takes the month's Parquet from its ``gs://`` URI into a staging table of its
   own (WRITE_TRUNCATE, explicit schema; named by the Parquet's sha256, so concurrent loads
   of one Parquet share identical rows and a killed load's leftover is reused): rows never
   stream through this process;
2. the object's generation is read before and after the job and must be the one whose md5
   equals the local Parquet's, so the job read the verified bytes and not a replacement;
   the staging rows must all carry this source month and their count equal the Parquet's;
   if a concurrent load of the same Parquet swapped first, the month already holds it: done;
3. one multi-statement transaction deletes the month (``WHERE source_month = ...``), inserts
   the staging rows and records the load in ``_loads``; it commits whole or not at all, so
   readers never see a half-loaded month and a failed load leaves the previous one intact;
4. the staging table is dropped, with any that killed loads of other versions left.
The table is partitioned by month on ``source_month`` (the source file's month, not the
pickup time, which strays across months), so step 3 touches one partition.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable

from google.api_core import exceptions as gexc
from google.cloud import bigquery

from tasks import schema
from tasks.errors import SinkError
from tasks.gcp import bigquery_retry, sink_errors
from tasks.identifiers import gcp_project, identifier, table_name
from tasks.months import validate_color

MARKERS = "_loads"
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
                 WHERE color = '{color}' AND source_month = DATE '{day}') AS marker_sha
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
        # Named by the Parquet: a killed load's leftover is overwritten and dropped by the rerun,
        # and concurrent loads of the same Parquet share identical staging rows.
        staging_prefix = table_name(validate_color(color), year, month, suffix="_staging_")
        staging = f"{self.dataset}.{staging_prefix}{parquet_sha256[:16]}"
        day = dt.date(year, month, 1).isoformat()
        where = f"BigQuery load of {color} {year}-{month:02d} from {uri}"
        swap = f"""
            BEGIN TRANSACTION;
            DELETE FROM `{self.table_id(color)}` WHERE source_month = DATE '{day}';
            INSERT INTO `{self.table_id(color)}` SELECT * FROM `{staging}`;
            DELETE FROM `{self.dataset}.{MARKERS}` WHERE color = '{color}' AND source_month = DATE '{day}';
            INSERT INTO `{self.dataset}.{MARKERS}` (color, source_month, rows, parquet_sha256, loaded_at)
              VALUES ('{color}', DATE '{day}', {int(expected_rows)}, '{parquet_sha256}', CURRENT_TIMESTAMP());
            COMMIT TRANSACTION;
        """
        replaced = f"{where}: the object no longer matches the local Parquet (replaced or deleted); a rerun uploads it"
        with sink_errors(where):
            try:
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
                try:
                    row = self._query(
                        f"SELECT COUNT(*) AS n, COUNTIF(source_month IS NULL OR source_month != DATE '{day}') "
                        f"AS strays FROM `{staging}`"
                    )[0]
                    staged, strays = int(row["n"]), int(row["strays"])
                    if strays:
                        raise SinkError(f"{where}: {strays} staged rows belong to another source month")
                    if staged != expected_rows:
                        raise SinkError(f"{where}: staged {staged} rows, the Parquet has {expected_rows}")
                    self._query(swap)
                except gexc.NotFound:
                    # A concurrent load of the same Parquet swapped first and dropped the shared
                    # staging table: done, if the month now holds exactly these rows.
                    if self.month_state(color, year, month) != (expected_rows, expected_rows, parquet_sha256):
                        raise
                    staged = expected_rows
            finally:
                self.client.delete_table(staging, not_found_ok=True, retry=self.retry)
            self._drop_leftovers(staging_prefix)
        return staged

    def _drop_leftovers(self, staging_prefix: str) -> None:
        """Drop staging tables of other Parquet versions of the month, left by killed loads."""
        for item in self.client.list_tables(self.dataset, retry=self.retry):
            if item.table_id.startswith(staging_prefix):
                self.client.delete_table(f"{self.dataset}.{item.table_id}", not_found_ok=True, retry=self.retry)
