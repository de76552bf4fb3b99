"""BigQuery views with the TLC column names, in their own dataset (the course's ``nytaxi``).

``nytaxi.<color>_tripdata`` selects from the pipeline's month-partitioned table, renamed, and
only the months whose ``_loads`` marker matches their rows (``tlc.publish.sql``), so a month
loaded later appears by itself and a half-loaded one never does. ``nytaxi.months`` lists them.
The views' dataset is created in the pipeline's location (BigQuery requires a view and its
tables to share one); a reader of the views needs read access to the pipeline's dataset too,
unless the views are authorised on it.
"""

from __future__ import annotations

from dataclasses import dataclass

from google.api_core import exceptions as gexc
from google.auth import exceptions as auth_exceptions
from google.cloud import bigquery

from tlc.bigquery.dataset import Dataset
from tlc.config import BigQueryConfig, PublishConfig
from tlc.errors import SinkError
from tlc.gcp import sink_errors
from tlc.month import COLORS
from tlc.publish import sql
from tlc.publish.held import Published


def _ref(table_id: str) -> str:
    return f"`{table_id}`"


@dataclass(frozen=True)
class BigQueryViews:
    dataset: str

    @classmethod
    def from_config(cls) -> BigQueryViews:
        """Names (and the project id) checked before any client is made."""
        cfg = BigQueryConfig()
        cfg.project_id()
        return cls(sql.views_home("bigquery_dataset", PublishConfig().bigquery_dataset, cfg.dataset_name()))

    def publish(self) -> Published:
        try:
            source = Dataset.from_config()
        except auth_exceptions.GoogleAuthError as exc:
            raise SinkError(f"no BigQuery credentials ({type(exc).__name__}): see README, real GCP") from None
        views = Dataset(source.client, self.dataset, BigQueryConfig().retry_seconds, source.job_timeout)
        with sink_errors(f"BigQuery views in {views.id}"):
            return self._publish(source, views)

    def _publish(self, source: Dataset, views: Dataset) -> Published:
        client = source.client
        landed = [c for c in COLORS if _exists(client, source.table_id(c), source)]
        if not landed or not _exists(client, source.markers_id, source):
            raise SinkError(f"no month is loaded in {source.id}: nothing to publish")
        dataset = bigquery.Dataset(views.id)
        dataset.location = client.location
        client.create_dataset(dataset, exists_ok=True, retry=source.retry)
        parts = {c: (_ref(source.table_id(c)), _ref(source.markers_id)) for c in landed}
        for color, (table, markers) in parts.items():
            view = sql.warehouse_view(sql.BIGQUERY, color, table, markers)
            source.query(sql.create_view(_ref(views.table_id(color)), view))
        months = _ref(f"{views.id}.{sql.MONTHS_VIEW}")
        source.query(sql.create_view(months, sql.warehouse_months(sql.BIGQUERY, parts)))
        rows = source.query(f"SELECT color, source_month, row_count FROM {months}")  # noqa: S608 - validated names
        return Published.from_rows("bigquery", views.id, landed, [tuple(r.values()) for r in rows])


def _exists(client: bigquery.Client, table_id: str, ds: Dataset) -> bool:
    try:
        client.get_table(table_id, retry=ds.retry)
    except gexc.NotFound:
        return False
    return True
