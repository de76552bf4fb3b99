"""The warehouse dataset: its tables, created idempotently, and queries with bounded retries.

One table per color, ``{dataset}.{color}_tripdata``, partitioned by month on ``source_month``
(the source file's month, not the pickup time, which strays across months), and one marker
table, ``_loads``, recording which Parquet (rows, sha256) each month was loaded from.
"""

from __future__ import annotations

from typing import Any

from google.cloud import bigquery

from tlc import gcp, schema
from tlc.config import BigQueryConfig
from tlc.identifiers import gcp_project, identifier, table_name
from tlc.month import validate_color

MARKERS = "_loads"
# What queries filter by, first match first: the pickup zone, then the company of the trip.
CLUSTER_BY = ("pu_location_id", "vendor_id", "hvfhs_license_num", "dispatching_base_num")

_PARAM_TYPES = {int: "INT64", str: "STRING", float: "FLOAT64"}


def table_schema(color: str) -> list[bigquery.SchemaField]:
    return [bigquery.SchemaField(name, kind) for name, kind in schema.bigquery_fields(color)]


def clustering(color: str) -> list[str]:
    """The color's clustering columns: BigQuery sorts each month's blocks by them, so a query for
    one zone (or one vendor) reads a fraction of the month."""
    names = {c.name for c in schema.columns(color)}
    return [c for c in CLUSTER_BY if c in names][:2]


def marker_schema() -> list[bigquery.SchemaField]:
    """``rows`` is a reserved word of BigQuery's SQL: every statement quotes it (`rows`)."""
    return [
        bigquery.SchemaField("color", "STRING"),
        bigquery.SchemaField("source_month", "DATE"),
        bigquery.SchemaField("rows", "INT64"),
        bigquery.SchemaField("parquet_sha256", "STRING"),
        bigquery.SchemaField("loaded_at", "TIMESTAMP"),
    ]


def _parameter(name: str, value: Any) -> bigquery.ScalarQueryParameter:
    kind = "DATE" if hasattr(value, "isoformat") else _PARAM_TYPES[type(value)]
    return bigquery.ScalarQueryParameter(name, kind, value)


class Dataset:
    """One dataset of the warehouse, its names validated once, with bounded retries on every call."""

    def __init__(self, client: bigquery.Client, dataset: str, retry_seconds: float, job_timeout: float) -> None:
        self.client = client
        self.id = f"{gcp_project(client.project)}.{identifier(dataset, 'dataset')}"
        self.retry = gcp.bigquery_retry(retry_seconds)
        self.job_timeout = job_timeout

    @classmethod
    def from_config(cls) -> Dataset:
        cfg = BigQueryConfig()
        client = gcp.bigquery_client(cfg.project_id(), cfg.api_endpoint(), cfg.location)
        return cls(client, cfg.dataset_name(), cfg.retry_seconds, cfg.job_timeout_seconds)

    def table_id(self, color: str, suffix: str = "") -> str:
        return f"{self.id}.{table_name(validate_color(color), suffix=suffix)}"

    @property
    def markers_id(self) -> str:
        return f"{self.id}.{MARKERS}"

    def ensure(self, color: str, location: str) -> None:
        """Dataset, the color's table and the marker table: created if missing, idempotently."""
        with gcp.sink_errors(f"BigQuery set-up of {self.id}"):
            ds = bigquery.Dataset(self.id)
            ds.location = location
            self.client.create_dataset(ds, exists_ok=True, retry=self.retry)
            table = bigquery.Table(self.table_id(color), schema=table_schema(color))
            table.time_partitioning = bigquery.TimePartitioning(
                type_=bigquery.TimePartitioningType.MONTH, field=schema.SOURCE_MONTH
            )
            table.clustering_fields = clustering(color)
            table = self.client.create_table(table, exists_ok=True, retry=self.retry)
            if table.clustering_fields != clustering(color):  # made before tables were clustered
                table.clustering_fields = clustering(color)
                self.client.update_table(table, ["clustering_fields"], retry=self.retry)
            markers = bigquery.Table(self.markers_id, schema=marker_schema())
            self.client.create_table(markers, exists_ok=True, retry=self.retry)

    def query(self, sql: str, **params: Any) -> list[bigquery.Row]:
        """Run one statement; values travel as query parameters (``@name``), never spliced in."""
        config = bigquery.QueryJobConfig(query_parameters=[_parameter(k, v) for k, v in params.items()])
        job = self.client.query(sql, job_config=config, retry=self.retry, job_retry=None)
        return list(job.result(retry=self.retry, timeout=self.job_timeout))
