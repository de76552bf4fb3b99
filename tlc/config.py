"""Settings read from ``luigi.cfg`` (sections ``[tlc.*]``), with environment overrides.

Precedence, everywhere: environment variable > ``luigi.cfg`` > the default here. Only
endpoints and paths have environment names (``TLC_SOURCE_URL``, ``TLC_DATA_DIR``, ...), so
the local stack's env file can point the same configuration at the emulators; secrets are
never read from ``luigi.cfg`` at all.

The classes are luigi ``Config`` objects (luigi parses and documents them) named for what
they configure; each keeps the short section name users already have in ``luigi.cfg``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import luigi

from tlc.errors import InvalidInput
from tlc.identifiers import gcp_project, gcs_bucket, gcs_prefix, identifier, positive
from tlc.month import resolve_source
from tlc.rules import Rules

DATATALKS_URL = "https://github.com/DataTalksClub/nyc-tlc-data/releases/download"
TLC_PARQUET_URL = "https://d37ci6vzurychx.cloudfront.net/trip-data"


def env_or(name: str, configured: str) -> str:
    """The one place where an environment variable overrides a configured value."""
    return os.environ.get(name) or configured


class ConfigSection(luigi.Config):
    """A ``[tlc.<section>]`` block of luigi.cfg, whatever the Python class is called."""

    section: ClassVar[str] = ""

    @classmethod
    def get_task_family(cls) -> str:
        return f"tlc.{cls.section}" if cls.section else super().get_task_family()


class PathsConfig(ConfigSection):
    section = "paths"
    data_dir = luigi.Parameter(default="data", description="root of raw/ and lake/ (env TLC_DATA_DIR)")

    def root(self) -> Path:
        return Path(env_or("TLC_DATA_DIR", self.data_dir))


@dataclass(frozen=True)
class Retry:
    """How hard and how long to try the source: per-read timeout, attempts, first backoff (doubled
    each time), and the bounds of one download, retries included (see ``tlc.sources.http``)."""

    timeout: float = 60.0
    attempts: int = 4
    backoff: float = 1.0
    max_seconds: float = 3600.0
    max_bytes: int = 2 << 30
    min_bytes_per_second: float = 50_000.0


class SourceConfig(ConfigSection):
    section = "source"
    kind = luigi.Parameter(
        default="auto",
        description="where months come from: csv (the DataTalksClub CSV.gz releases, yellow/green/fhv "
        "2019-01..2021-07), parquet (the TLC's monthly Parquet files, all services since 2009) or auto "
        "(the releases for their months, the TLC for the rest)",
    )
    csv_url = luigi.Parameter(default=DATATALKS_URL, description="base URL of the CSV releases (env TLC_SOURCE_URL)")
    parquet_url = luigi.Parameter(
        default=TLC_PARQUET_URL, description="base URL of the TLC's Parquet files (env TLC_PARQUET_URL)"
    )
    timeout_seconds = luigi.FloatParameter(default=60.0, description="per connect/read; a stall longer fails")
    attempts = luigi.IntParameter(default=4, description="tries per download, transient failures only")
    backoff_seconds = luigi.FloatParameter(default=1.0, description="first retry delay, doubled each time")
    max_seconds = luigi.FloatParameter(default=3600.0, description="longest one download may take, retries included")
    min_bytes_per_second = luigi.FloatParameter(
        default=50_000.0, description="slowest average a download of a published size may have (plus one timeout)"
    )
    max_bytes = luigi.IntParameter(default=2 << 30, description="largest file a download may be")
    max_inflation_ratio = luigi.FloatParameter(default=40.0, description="most a gzip download may inflate")
    max_out_of_month = luigi.FloatParameter(
        default=0.5, description="share of pickups outside the file's month above which it is refused"
    )

    def base_url(self, source: str) -> str:
        """The base URL of a source kind: ``csv`` (env TLC_SOURCE_URL) or ``parquet`` (env TLC_PARQUET_URL).

        The key was ``url`` before the TLC source; luigi ignores unknown keys, so an old
        luigi.cfg would silently fall back to the default releases: it is refused instead.
        """
        if luigi.configuration.get_config().has_option("tlc.source", "url"):
            raise InvalidInput("[tlc.source] url is now called csv_url (beside parquet_url): rename it in luigi.cfg")
        if source == "parquet":
            return env_or("TLC_PARQUET_URL", self.parquet_url)
        return env_or("TLC_SOURCE_URL", self.csv_url)

    def source_of(self, color: str, year: int, month: int) -> str:
        """The month's source kind under ``kind``: resolved here, once, where a month enters."""
        return resolve_source(self.kind, color, year, month)

    def retry(self) -> Retry:
        for key in ("timeout_seconds", "max_seconds", "min_bytes_per_second", "max_bytes"):
            positive(getattr(self, key), f"[tlc.source] {key}")
        return Retry(
            timeout=self.timeout_seconds,
            attempts=self.attempts,
            backoff=self.backoff_seconds,
            max_seconds=self.max_seconds,
            max_bytes=self.max_bytes,
            min_bytes_per_second=self.min_bytes_per_second,
        )

    def inflation_limit(self) -> float:
        return positive(self.max_inflation_ratio, "[tlc.source] max_inflation_ratio")

    def out_of_month_limit(self) -> float:
        if not 0 < self.max_out_of_month <= 1:
            raise InvalidInput(f"[tlc.source] max_out_of_month {self.max_out_of_month!r} is not valid: use 0-1")
        return self.max_out_of_month


class CleaningConfig(ConfigSection):
    section = "cleaning"
    drop_zero_passengers = luigi.BoolParameter(default=False)
    drop_missing_vendor = luigi.BoolParameter(default=False)
    drop_out_of_month = luigi.BoolParameter(default=False)
    fill_null_passenger_count = luigi.OptionalIntParameter(default=None)

    def rules(self) -> Rules:
        return Rules(
            drop_zero_passengers=self.drop_zero_passengers,
            drop_missing_vendor=self.drop_missing_vendor,
            drop_out_of_month=self.drop_out_of_month,
            fill_null_passenger_count=self.fill_null_passenger_count,
        )


class PostgresConfig(ConfigSection):
    """Connection settings; libpq's own variables (PGHOST, PGPORT, ...) override them.

    The password is deliberately not a setting: libpq reads PGPASSWORD or ~/.pgpass itself.
    """

    section = "postgres"
    host = luigi.Parameter(default="localhost")
    port = luigi.IntParameter(default=5432)
    user = luigi.Parameter(default="tlc")
    database = luigi.Parameter(default="tlc")
    schema = luigi.Parameter(default="tlc", description="schema holding one table per color")
    connect_timeout_seconds = luigi.IntParameter(default=10)

    def schema_name(self) -> str:
        """Validated here, before any connection or SQL: a bad name never reaches the server."""
        return identifier(self.schema, "postgres schema")

    def dsn_parts(self) -> dict[str, str | int]:
        return {
            "host": env_or("PGHOST", self.host),
            "port": int(env_or("PGPORT", str(self.port))),
            "user": env_or("PGUSER", self.user),
            "dbname": env_or("PGDATABASE", self.database),
            "connect_timeout": self.connect_timeout_seconds,
        }


class GcsConfig(ConfigSection):
    """The lake bucket. STORAGE_EMULATOR_HOST (read by google-cloud-storage) selects an emulator."""

    section = "gcs"
    project = luigi.Parameter(default="tlc-local", description="GCP project (env TLC_GCP_PROJECT)")
    bucket = luigi.Parameter(default="tlc-lake", description="bucket name (env TLC_GCS_BUCKET)")
    prefix = luigi.Parameter(default="lake", description="object prefix of the lake layout")
    location = luigi.Parameter(default="US", description="bucket location when it has to be created")
    retry_seconds = luigi.FloatParameter(default=120.0, description="deadline for retrying one call")

    def project_id(self) -> str:
        return gcp_project(env_or("TLC_GCP_PROJECT", self.project))

    def bucket_name(self) -> str:
        """Validated here, before any request: a bad name never reaches a URL or an error message unquoted."""
        return gcs_bucket(env_or("TLC_GCS_BUCKET", self.bucket))

    def lake_prefix(self) -> str:
        """Validated like the bucket: the prefix is part of every object name and of the views over them."""
        return gcs_prefix(self.prefix)


class BigQueryConfig(ConfigSection):
    """The warehouse. TLC_BIGQUERY_ENDPOINT selects an emulator; unset means real BigQuery."""

    section = "bigquery"
    project = luigi.Parameter(default="", description="project of the dataset (env TLC_BIGQUERY_PROJECT)")
    dataset = luigi.Parameter(default="tlc", description="dataset holding one table per color")
    location = luigi.Parameter(default="US")
    endpoint = luigi.Parameter(default="", description="API endpoint (env TLC_BIGQUERY_ENDPOINT)")
    retry_seconds = luigi.FloatParameter(default=120.0, description="deadline for retrying one call")
    job_timeout_seconds = luigi.FloatParameter(default=600.0, description="longest a load or query may take")

    def project_id(self) -> str:
        return gcp_project(env_or("TLC_BIGQUERY_PROJECT", self.project) or GcsConfig().project_id())

    def dataset_name(self) -> str:
        return identifier(self.dataset, "dataset")

    def api_endpoint(self) -> str:
        return env_or("TLC_BIGQUERY_ENDPOINT", self.endpoint)


class ScheduleConfig(ConfigSection):
    section = "schedule"
    window_months = luigi.IntParameter(default=3, description="how many months back the catch-up looks")
    colors = luigi.Parameter(default="yellow,green,fhv,fhvhv", description="colors the catch-up ingests")
    luigid_recoveries = luigi.IntParameter(
        default=3, description="times a run adds its tasks again when a restarted luigid forgot them"
    )


class PublishConfig(ConfigSection):
    """Where ``python -m tlc.publish`` puts the course-compatible views (tlc/publish/)."""

    section = "publish"
    duckdb_path = luigi.Parameter(
        default="taxi_rides_ny.duckdb", description="DuckDB file of the views; relative to [tlc.paths] data_dir"
    )
    duckdb_schema = luigi.Parameter(default="prod", description="DuckDB schema of the views")
    duckdb_lake = luigi.Parameter(default="local", description="what the DuckDB views read: local (data_dir) or gcs")
    bigquery_dataset = luigi.Parameter(default="nytaxi", description="BigQuery dataset of the views")
    postgres_schema = luigi.Parameter(default="prod", description="Postgres schema of the views")
