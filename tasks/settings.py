"""Settings read from ``luigi.cfg`` (sections ``[tlc.*]``), with environment overrides.

Precedence, everywhere: environment variable > ``luigi.cfg`` > the default here. Only
endpoints and paths have environment names (``TLC_SOURCE_URL``, ``TLC_DATA_DIR``, ...), so
the local stack's env file can point the same configuration at the emulators; secrets are
never read from ``luigi.cfg`` at all.
"""

from __future__ import annotations

import os
from pathlib import Path

import luigi

from tasks.rules import Rules

DATATALKS_URL = "https://github.com/DataTalksClub/nyc-tlc-data/releases/download"


def env_or(name: str, configured: str) -> str:
    """The one place where an environment variable overrides a configured value."""
    return os.environ.get(name) or configured


class paths(luigi.Config):  # noqa: N801 - luigi names the cfg section after the class
    task_namespace = "tlc"
    data_dir = luigi.Parameter(default="data", description="root of raw/ and lake/ (env TLC_DATA_DIR)")

    def root(self) -> Path:
        return Path(env_or("TLC_DATA_DIR", self.data_dir))


class source(luigi.Config):  # noqa: N801
    task_namespace = "tlc"
    url = luigi.Parameter(default=DATATALKS_URL, description="base URL of the releases (env TLC_SOURCE_URL)")
    timeout_seconds = luigi.FloatParameter(default=60.0, description="per connect/read; a stall longer fails")
    attempts = luigi.IntParameter(default=4, description="tries per download, transient failures only")
    backoff_seconds = luigi.FloatParameter(default=1.0, description="first retry delay, doubled each time")

    def base_url(self) -> str:
        return env_or("TLC_SOURCE_URL", self.url)


class cleaning(luigi.Config):  # noqa: N801
    task_namespace = "tlc"
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
