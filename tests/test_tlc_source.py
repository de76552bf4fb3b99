"""The TLC's Parquet source through the whole pipeline: every sink, the catch-up, and one source per month.

The real TLC green months are served by the loopback source at the TLC's URL layout
(``/trip-data/green_tripdata_2022-01.parquet``) and land in the lake, GCS, BigQuery and
PostgreSQL with their exact row counts; the other services' months are generated in their
era's layout. Every count is read back from where the rows landed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import luigi.configuration
import psycopg2
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from luigi.task_register import Register

from scripts.make_sample_data import write_month
from scripts.sample_parquet import parquet_path, write_parquet_month
from tasks import BigQueryTable, DownloadCSV, GCSObject, IngestMonth, IngestRange, ParquetFile
from tests.conftest import ROOT, SHARED
from tests.luigirun import run
from tests.sourceserver import SourceServer
from tlc import ledger
from tlc.errors import InvalidInput
from tlc.gcs.target import Lake
from tlc.month import Month
from tlc.refresh import main as refresh
from tlc.report.__main__ import main as report

REAL = {("green", 2022, 1): 62_495, ("green", 2023, 2): 64_809}
GENERATED = {("yellow", 2024, 1): 3000, ("yellow", 2009, 1): 2000, ("fhv", 2024, 1): 2500, ("fhvhv", 2024, 1): 4000}


@pytest.fixture
def sinks(pipeline_env: Path, gcp_env: dict, pg_server: dict, monkeypatch) -> Path:
    for key, value in pg_server.items():
        monkeypatch.setenv(key, value)
    with closing(psycopg2.connect()) as conn, conn.cursor() as cur:
        cur.execute("DROP SCHEMA IF EXISTS tlc CASCADE")
        conn.commit()
    return pipeline_env


def pg_months(color: str) -> dict[str, int]:
    with closing(psycopg2.connect()) as conn, conn.cursor() as cur:
        cur.execute(f"SELECT to_char(source_month, 'YYYY-MM'), count(*) FROM tlc.{color}_tripdata GROUP BY 1")
        return dict(cur.fetchall())


def bq_months(color: str) -> dict[str, int]:
    ds = BigQueryTable(color=color, year=2024, month=1).output().ds
    rows = ds.query(f"SELECT source_month, COUNT(*) AS n FROM `{ds.table_id(color)}` GROUP BY 1")
    return {r["source_month"].strftime("%Y-%m"): r["n"] for r in rows}


def publish_real(source_dir: Path, color: str, year: int, month: int) -> Path:
    dest = parquet_path(source_dir, color, year, month)
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(SHARED / "green" / "tlc-parquet" / dest.name, dest)
    return dest


def test_tlc_months_of_every_service_land_in_every_sink_and_reconcile(
    sinks: Path, source: SourceServer, source_dir: Path, tmp_path: Path, capsys
) -> None:
    for month in REAL:
        publish_real(source_dir, *month)
    for (color, year, month), rows in GENERATED.items():
        write_parquet_month(source_dir, color, year, month, rows=rows, seed=5)
    expected = {**REAL, **GENERATED}
    assert run([IngestMonth(color=c, year=y, month=m) for c, y, m in expected], workers=2).ok
    assert all(r.startswith("/trip-data/") for r in source.requests)

    for color in ("yellow", "green", "fhv", "fhvhv"):
        mine = {f"{y}-{m:02d}": n for (c, y, m), n in expected.items() if c == color}
        assert pg_months(color) == mine == bq_months(color)
    for (color, year, month), rows in expected.items():
        unit = Month(color, year, month)
        parquet = ParquetFile.of(unit).output()
        blob = Lake.from_config().bucket.get_blob(GCSObject.of(unit).output().name)
        assert parquet.rows() == rows and blob.metadata["rows"] == str(rows)
        source_stage = ledger.read(Lake.from_config(), unit)["stages"]["source"]
        assert source_stage["kind"] == parquet.report().source.kind == "parquet"
        assert source_stage["url"].endswith(f"/trip-data/{color}_tripdata_{year}-{month:02d}.parquet")

    assert report(["--html", str(tmp_path / "report.html")]) == 0
    out = capsys.readouterr().out
    assert f"{len(expected)} month(s); 0 mismatch(es)" in out
    lines = {tuple(line.split()[:2]): line.split()[2:7] for line in out.splitlines() if line[:1].isalpha()}
    assert lines["green", "2022-01"] == ["62,495"] * 5 and lines["green", "2023-02"] == ["64,809"] * 5
    assert lines["fhvhv", "2024-01"] == ["4,000"] * 5


def catch_up(*args: str) -> subprocess.CompletedProcess:
    luigi = Path(sys.executable).with_name("luigi")
    cmd = [str(luigi), "--module", "tasks", "IngestCatchUp", *args, "--local-scheduler",
           "--tlc.source-backoff-seconds", "0.01", "--tlc.source-attempts", "2"]  # fmt: skip
    return subprocess.run(cmd, cwd=ROOT, env=dict(os.environ), capture_output=True, text=True, timeout=300, check=False)


def test_catch_up_on_the_tlc_source_lands_exactly_what_is_published(
    sinks: Path, gcp_env: dict, source: SourceServer, source_dir: Path
) -> None:
    window = ("--colors", "green,fhvhv", "--window", "3", "--until", "2024-03", "--tlc.bigquery-dataset")
    write_parquet_month(source_dir, "green", 2024, 2, rows=700, seed=1)
    write_parquet_month(source_dir, "fhvhv", 2024, 3, rows=900, seed=1)
    first = catch_up(*window, gcp_env["dataset"])
    assert first.returncode == 0, first.stderr[-3000:]
    assert first.stderr.count("catch-up: not published yet, skipped:") == 1
    assert "skipped: green 2024-01, green 2024-03, fhvhv 2024-01, fhvhv 2024-02" in first.stderr
    assert pg_months("green") == {"2024-02": 700} and pg_months("fhvhv") == {"2024-03": 900}

    write_parquet_month(source_dir, "green", 2024, 3, rows=800, seed=2)  # the TLC publishes another month
    second = catch_up(*window, gcp_env["dataset"])
    assert second.returncode == 0, second.stderr[-3000:]
    assert "IngestMonth(color=green, year=2024, month=3)" in second.stderr
    assert pg_months("green") == {"2024-02": 700, "2024-03": 800} and bq_months("green") == pg_months("green")
    assert pg_months("fhvhv") == {"2024-03": 900}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--tlc.source-kind", "csv", "--until", "2024-03"],
            "the CSV source publishes no new months: its releases end with 2021-07, the catch-up window is "
            "2024-01 to 2024-03; set [tlc.source] kind = auto or parquet",
        ),
        (["--tlc.source-kind", "tlc"], "[tlc.source] kind 'tlc' is not valid: use one of auto, csv, parquet"),
        (["--tlc.source-kind", "csv", "--colors", "fhvhv"], "fhvhv is published only as the TLC's Parquet"),
    ],
)
def test_catch_up_refuses_a_source_with_nothing_to_catch_up_in_one_line(
    pipeline_env: Path, source: SourceServer, args: list[str], message: str
) -> None:
    proc = catch_up(*args)
    assert proc.returncode == 40, proc.stderr[-2000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("ERROR")]
    assert len(errors) == 1 and message in errors[0], proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr and not source.requests


def test_a_month_keeps_its_source_until_a_refresh_is_applied(
    pipeline_env: Path, source: SourceServer, source_dir: Path, cfg: dict, capsys
) -> None:
    write_month(source_dir, "yellow", 2021, 1, rows=1000, seed=1)  # the course's release
    write_parquet_month(source_dir, "yellow", 2021, 1, rows=1500, seed=1)  # the TLC's file of the month
    task = ParquetFile(color="yellow", year=2021, month=1)
    assert task.unit.source == "csv" and run([task]).ok
    assert task.output().rows() == 1000
    assert ledger.read(Lake.from_config(), task.unit)["stages"]["source"]["kind"] == "csv"

    cfg["tlc.source", "kind"] = "parquet"
    Register.clear_instance_cache()  # luigi would hand back the task made under the old setting
    switched = ParquetFile(color="yellow", year=2021, month=1)
    assert switched.unit.source == "parquet" and switched.complete()  # kept as it is
    assert run([switched]).ran == set()
    with pytest.raises(InvalidInput, match=r"comes from the parquet source .* run DownloadTLCParquet"):
        DownloadCSV(color="yellow", year=2021, month=1)

    cfg["tlc.cleaning", "drop_zero_passengers"] = "true"  # a rebuild must not switch the source by itself
    Register.clear_instance_cache()
    rebuilt = ParquetFile(color="yellow", year=2021, month=1)
    result = run([rebuilt])
    assert not result.ok and rebuilt.task_id in result.failed
    assert task.output().report().source.kind == "csv"
    cfg["tlc.cleaning", "drop_zero_passengers"] = "false"
    Register.clear_instance_cache()

    assert refresh(["--colors", "yellow", "--start", "2021-01"]) == 1
    out = capsys.readouterr().out
    assert "yellow 2021-01: ingested from the DataTalksClub CSV releases, [tlc.source] kind now gives" in out
    assert refresh(["--colors", "yellow", "--start", "2021-01", "--apply"]) == 0
    assert run([ParquetFile(color="yellow", year=2021, month=1)]).ok
    report_now = switched.output().report()
    assert report_now.rows_written == 1500 and report_now.source.kind == "parquet"
    assert ledger.read(Lake.from_config(), task.unit)["stages"]["source"]["kind"] == "parquet"
    assert refresh(["--colors", "yellow", "--start", "2021-01"]) == 0


def test_ranges_leave_out_months_a_service_or_source_does_not_have(pipeline_env: Path, cfg: dict) -> None:
    both = IngestRange(colors="green,fhvhv", start="2019-01", stop="2019-02")
    assert [(u.label, u.source) for u in both.units()] == [
        ("green 2019-01", "csv"),
        ("green 2019-02", "csv"),
        ("fhvhv 2019-02", "parquet"),
    ]
    with pytest.raises(InvalidInput, match="fhvhv 2018-12 is not valid: the TLC's fhvhv records start 2019-02"):
        IngestRange(colors="fhvhv", start="2018-12", stop="2019-01")
    with pytest.raises(InvalidInput, match="green 2013-07 is not valid: the TLC's green records start 2013-08"):
        Month("green", 2013, 7)
    assert [u.source for u in IngestRange(colors="yellow", start="2021-07", stop="2021-08").units()] == [
        "csv",
        "parquet",
    ]
    cfg["tlc.source", "kind"] = "parquet"
    assert {u.source for u in IngestRange(colors="yellow,fhv", start="2020-01", stop="2020-02").units()} == {"parquet"}


def test_a_refused_tlc_month_is_kept_aside_and_lands_once_the_tlc_fixes_it(
    pipeline_env: Path, source: SourceServer, source_dir: Path
) -> None:
    src = write_parquet_month(source_dir, "fhvhv", 2023, 5, rows=1200, seed=4)
    good = src.read_bytes()
    table = pq.read_table(src)
    pq.write_table(table.append_column("surge_multiplier", pa.array([1.0] * table.num_rows)), src)
    task = ParquetFile(color="fhvhv", year=2023, month=5)
    result = run([task])
    assert not result.ok and task.task_id in result.failed
    kept = sorted((pipeline_env / "rejected" / "fhvhv").glob("fhvhv_tripdata_2023-05.*.parquet"))
    assert len(kept) == 1 and kept[0].read_bytes() == src.read_bytes()
    assert not task.output().path.exists()

    src.write_bytes(good)  # the TLC republishes the month without the new column
    os.utime(src, (1_700_000_000, 1_700_000_000))
    assert run([task]).ok
    assert task.output().rows() == 1200 and task.output().report().source.kind == "parquet"


def test_the_old_source_url_key_is_refused_not_ignored(pipeline_env: Path, source: SourceServer) -> None:
    config = luigi.configuration.get_config()
    config.set("tlc.source", "url", source.url)  # an old luigi.cfg's key
    try:
        with pytest.raises(InvalidInput, match=r"\[tlc.source\] url is now called csv_url"):
            DownloadCSV(color="yellow", year=2021, month=1).run()
    finally:
        config.remove_option("tlc.source", "url")
    assert not source.requests
