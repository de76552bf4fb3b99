"""tlc-luigi: NYC TLC trip records into a data lake and two warehouses, one month per task.

``luigi --module tasks <Task> --color yellow --year 2021 --month 1`` loads this package,
which exposes every task of the graph. Modules that do the work (fetch, convert, schema,
months, rules) do not import luigi; the task modules only wire targets to them.
"""

from tasks import alerts, cli_errors
from tasks.bigquery import BigQueryTable
from tasks.download import DownloadCSV
from tasks.gcs import GCSObject
from tasks.parquet import ParquetFile
from tasks.postgres import PostgresTable
from tasks.wrappers import IngestCatchUp, IngestMonth, IngestRange

cli_errors.install()
alerts.install()

__all__ = [
    "BigQueryTable",
    "DownloadCSV",
    "GCSObject",
    "IngestCatchUp",
    "IngestMonth",
    "IngestRange",
    "ParquetFile",
    "PostgresTable",
]
