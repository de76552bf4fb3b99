"""tlc-luigi's luigi tasks: ``luigi --module tasks <Task> --color yellow --year 2021 --month 1``.

This package is luigi's entry point: it registers every task of the graph and then calls
``tasks.runtime.install()``, the one place where the pipeline changes the luigi process
(one-line errors, alerts, Arrow's memory pool). The work itself lives in the ``tlc``
library, which changes nothing when imported:

    tlc/month.py, schema.py, quality.py, ledger.py, layout.py   the month, its schema, its records
    tlc/sources/     the publishers' files: HTTP, CSV releases, TLC Parquet  (RawFile)
    tlc/lake/        conversion to the canonical Parquet                     (LakeParquet)
    tlc/gcs/         the lake bucket                                         (GcsObject)
    tlc/bigquery/    the BigQuery warehouse                                  (BigQueryMonth)
    tlc/postgres/    the PostgreSQL warehouse                                (PostgresMonth)
    tlc/report/, tlc/refresh.py, tlc/alerts.py   operating it

Each sink's Target (in parentheses) is the one class that says when a month is done there.
"""

from tasks import runtime
from tasks.bigquery import BigQueryTable
from tasks.download import DownloadCSV, DownloadTLCParquet
from tasks.gcs import GCSObject
from tasks.parquet import ParquetFile
from tasks.postgres import PostgresTable
from tasks.wrappers import IngestCatchUp, IngestMonth, IngestRange

runtime.install()

__all__ = [
    "BigQueryTable",
    "DownloadCSV",
    "DownloadTLCParquet",
    "GCSObject",
    "IngestCatchUp",
    "IngestMonth",
    "IngestRange",
    "ParquetFile",
    "PostgresTable",
]
