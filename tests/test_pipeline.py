"""DownloadCSV -> ParquetFile through luigi against a real loopback source."""

from __future__ import annotations

import gzip
import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from scripts.make_sample_data import write_month
from tasks import DownloadCSV, ParquetFile
from tests.conftest import ROOT
from tests.luigirun import run
from tests.sourceserver import SourceServer
from tlc import layout, schema
from tlc.atomic import read_json
from tlc.gcs.lake import Lake
from tlc.month import Month

MONTHS = [("yellow", 2021, 1), ("yellow", 2021, 2), ("yellow", 2021, 3), ("green", 2021, 1), ("fhv", 2021, 1)]


def data_rows(path: Path) -> int:
    with gzip.open(path, "rt", newline="") as fh:
        return sum(1 for line in fh if line.strip()) - 1


@pytest.fixture
def published(source_dir: Path) -> dict[tuple[str, int, int], Path]:
    return {m: write_month(source_dir, *m, rows=3000, seed=7) for m in MONTHS}


def test_months_land_as_typed_parquet_then_rerun_does_nothing(
    pipeline_env: Path, source: SourceServer, published: dict
) -> None:
    tasks = [ParquetFile(color=c, year=y, month=m) for c, y, m in MONTHS]
    first = run(tasks, workers=2)
    assert first.ok and len(first.ran) == 2 * len(MONTHS)
    for (color, year, month), src in published.items():
        parquet = layout.lake_path(pipeline_env, Month(color, year, month))
        table = pq.read_table(parquet)
        report = read_json(layout.quality_path(pipeline_env, Month(color, year, month)))
        assert table.num_rows == data_rows(src) == report["rows_read"] == report["rows_written"]
        assert table.schema.equals(schema.arrow_schema(color), check_metadata=False)
        assert report["source"]["sha256"] == hashlib.sha256(src.read_bytes()).hexdigest()
        assert report["parquet"]["sha256"] == hashlib.sha256(parquet.read_bytes()).hexdigest()
        raw = layout.raw_path(pipeline_env, Month(color, year, month))
        assert raw.read_bytes() == src.read_bytes()
        if color != "fhv":
            assert report["negative_amount_rows"] > 0 and report["out_of_month_pickups"] > 0
    requests = len(source.requests)
    mtimes = {p: p.stat().st_mtime_ns for p in pipeline_env.rglob("*")}

    second = run(tasks)
    assert second.ok and second.ran == set() and len(second.done_before) == len(MONTHS)
    assert len(source.requests) == requests
    assert {p: p.stat().st_mtime_ns for p in pipeline_env.rglob("*")} == mtimes


def test_half_written_outputs_are_not_done(pipeline_env: Path, source: SourceServer, published: dict) -> None:
    """Done is decided from the lake: a torn object or a missing record there is not done; this
    host's cache being damaged changes nothing but what has to be fetched again."""
    task, month = ParquetFile(color="yellow", year=2021, month=1), Month("yellow", 2021, 1)
    assert run([task]).ok
    lake, report = Lake.from_config(), task.output().report()
    staged = lake.get(layout.staged_key(month, report.parquet.sha256))
    good = staged.download_as_bytes()
    lake.bucket.blob(staged.name).upload_from_string(good[: len(good) // 2])  # a torn write from some other tool
    assert not task.complete()
    assert run([task]).ok and lake.get(layout.staged_key(month, report.parquet.sha256)).download_as_bytes() == good
    lake.delete(lake.get(layout.quality_key(month)))  # killed between the Parquet and its report
    assert not task.complete()
    assert run([task]).ok and task.complete()
    local = layout.lake_path(pipeline_env, month)
    local.write_bytes(b"junk")  # the cache is no truth: still done
    assert task.complete()
    lake.delete(lake.get(layout.raw_key(month)))
    assert not DownloadCSV(color="yellow", year=2021, month=1).complete()


def test_unpublished_month_fails_and_leaves_nothing(pipeline_env: Path, source: SourceServer, published: dict) -> None:
    result = run([ParquetFile(color="green", year=2021, month=2)])
    assert not result.ok and len(result.failed) == 1
    assert not any(p.is_file() for p in pipeline_env.rglob("*")) if pipeline_env.exists() else True


def test_rerun_after_a_fault_succeeds(pipeline_env: Path, source: SourceServer, published: dict) -> None:
    month = "/yellow/yellow_tripdata_2021-02.csv.gz"
    source.plans[month] = ["drop"] * 10
    task = ParquetFile(color="yellow", year=2021, month=2)
    assert not run([task]).ok
    assert not layout.raw_path(pipeline_env, Month("yellow", 2021, 2)).exists()
    source.plans[month] = []
    assert run([task]).ok and task.complete()


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    luigi = Path(sys.executable).with_name("luigi")
    return subprocess.run(
        [str(luigi), "--module", "tasks", *args, "--local-scheduler"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--color", "purple", "--year", "2021", "--month", "1"],
            "color 'purple' is not valid: use one of yellow, green, fhv",
        ),
        (["--color", "yellow", "--year", "2021", "--month", "13"], "month 13 is not valid: use 1-12"),
        (["--color", "yellow", "--year", "2008", "--month", "1"], "year 2008 is not valid"),
        (["--color", "yellow", "--year", "2099", "--month", "1"], "year 2099 is not valid"),
        (["--color", "yellow", "--year", "2021", "--month", "x"], "month 'x' is not valid: use 1-12"),
    ],
)
def test_cli_refuses_bad_parameters_in_one_line(
    pipeline_env: Path, source: SourceServer, args: list[str], message: str
) -> None:
    proc = cli("ParquetFile", *args, env=dict(os.environ))
    assert proc.returncode == 40, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("ERROR")]
    assert len(errors) == 1 and message in errors[0]
    assert "Traceback" not in proc.stderr
    assert not source.requests and not pipeline_env.exists()


def test_cli_names_color_month_and_url_of_a_missing_month(pipeline_env: Path, source: SourceServer) -> None:
    proc = cli("ParquetFile", "--color", "green", "--year", "2020", "--month", "5", env=dict(os.environ))
    assert proc.returncode == 30
    line = next(x for x in proc.stderr.splitlines() if "SourceNotFound" in x)
    assert "DownloadCSV(color=green, year=2020, month=5)" in line
    assert f"HTTP 404 for {source.url}/green/green_tripdata_2020-05.csv.gz" in line
    assert "Traceback" not in proc.stderr


def test_starting_the_cli_imports_neither_pandas_nor_the_bigquery_client() -> None:
    """Every ``luigi --module tasks`` start imports ``tasks``: pandas and the BigQuery client
    (0.2 s, which it imports pandas for) must wait until a BigQuery task runs."""
    code = "import sys, tasks; print(sorted(m for m in ('pandas', 'google.cloud.bigquery') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
