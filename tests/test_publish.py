"""``python -m tlc.publish``: the course's dbt sources, as views over what the real pipeline landed.

The real pipeline lands a few small months in the lake, fake-gcs-server, bqemulator and
PostgreSQL; the publish command makes the views; our dbt project (tests/dbt_project, whose
sources are the course's names) builds on DuckDB and on Postgres, and its monthly revenue must
equal, to the cent, what the lake's Parquet holds (read with pyarrow). BigQuery's views are
queried on bqemulator. Then a month lands after publishing (it must appear without a rerun),
and two months are made incomplete (they must disappear).
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from collections import Counter
from contextlib import closing
from decimal import Decimal
from pathlib import Path

import duckdb
import psycopg2
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import yaml

from scripts.make_sample_data import write_month
from tasks import GCSObject, IngestMonth
from tests.conftest import ROOT, SHARED
from tests.luigirun import run
from tlc import layout
from tlc.bigquery.dataset import Dataset
from tlc.publish.__main__ import main as publish
from tlc.publish.columns import renamed

DBT_PROJECT = ROOT / "tests" / "dbt_project"
ROWS = 600
LANDED = [("yellow", 1), ("yellow", 2), ("green", 1), ("fhv", 1)]  # 2021; green 2021-02 is never landed
DAY = {m: dt.date(2021, m, 1) for m in (1, 2, 3)}

Sums = dict[tuple[str, str], tuple[int, int, int]]  # (service or color, month) -> (rows, fare cents, total cents)


# --- what the lake holds, read with pyarrow ---------------------------------------------------


def lake_table(data: Path, color: str, months: set[dt.date]) -> pa.Table:
    files = sorted((data / "lake").glob(layout.lake_glob(color)))
    table = pa.concat_tables(pq.read_table(f) for f in files)
    return table.filter(pc.is_in(table["source_month"], pa.array(sorted(months), pa.date32())))


def _cents(column: pa.ChunkedArray) -> pa.Array:
    return pc.cast(pc.round(pc.multiply(column, 100)), pa.int64())


def sums_by(table: pa.Table, label: str, key: pa.Array) -> Sums:
    """(rows, fare cents, total cents) per value of ``key``."""
    t = pa.table({"k": key, "fare": _cents(table["fare_amount"]), "total": _cents(table["total_amount"])})
    agg = t.group_by("k").aggregate([("k", "count"), ("fare", "sum"), ("total", "sum")]).to_pylist()
    return {(label, r["k"]): (r["k_count"], r["fare_sum"] or 0, r["total_sum"] or 0) for r in agg}


def expected_revenue(data: Path, held: dict[str, set[dt.date]]) -> Sums:
    """The dbt mart from the Parquet: rows with a vendor, per service and pickup month."""
    out: Sums = {}
    for color, service in (("green", "Green"), ("yellow", "Yellow")):
        table = lake_table(data, color, held[color])
        table = table.filter(pc.is_valid(table["vendor_id"]))
        out |= sums_by(table, service, pc.strftime(table["pickup_datetime"], "%Y-%m"))
    return out


def expected_months(data: Path, held: dict[str, set[dt.date]]) -> Counter:
    out: Counter = Counter()
    for color, months in held.items():
        for day, rows in Counter(lake_table(data, color, months)["source_month"].to_pylist()).items():
            out[color, day] = rows
    return out


def revenue_rows(rows: list[tuple]) -> Sums:
    """The mart's rows ``(service, 'YYYY-MM', trips, fare, total)`` as Sums, amounts in exact cents."""
    return {(s, m): (int(n), int(Decimal(fare) * 100), int(Decimal(total) * 100)) for s, m, n, fare, total in rows}


# --- the engines ------------------------------------------------------------------------------


def dbt(target: str, tmp: Path, **env: str) -> None:
    """``dbt build`` of our project, offline: profiles, target and logs in the test's directory."""
    profiles = tmp / f"profiles-{target}"
    if not profiles.exists():
        profiles.mkdir()
        (profiles / "profiles.yml").write_text((DBT_PROJECT / "profiles.yml").read_text())
    cmd = [str(Path(sys.executable).with_name("dbt")), "build", "--target", target]
    cmd += ["--project-dir", str(DBT_PROJECT), "--profiles-dir", str(profiles)]
    cmd += ["--target-path", str(tmp / f"dbt-target-{target}"), "--log-path", str(tmp / "dbt-logs")]
    env = {**os.environ, "DBT_SEND_ANONYMOUS_USAGE_STATS": "false", **env}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240, check=False)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "Completed successfully" in proc.stdout and "ERROR=0" in proc.stdout, proc.stdout[-2000:]


def duck(path: Path, sql: str) -> list[tuple]:
    with closing(duckdb.connect(str(path), read_only=True)) as con:
        return con.execute(sql).fetchall()


def pg(sql: str) -> list[tuple]:
    with closing(psycopg2.connect()) as conn, conn.cursor() as cur:
        cur.execute(sql)
        rows = cur.fetchall() if cur.description else []
        conn.commit()
        return rows


def bq(sql: str) -> list[tuple]:
    return [tuple(r.values()) for r in Dataset.from_config().query(sql)]


def months_view(rows: list[tuple]) -> Counter:
    return Counter({(color, month): int(n) for color, month, n in rows})


def land(months: list[tuple[str, int]], source_dir: Path) -> None:
    for color, month in months:
        write_month(source_dir, color, 2021, month, rows=ROWS, seed=month)
    assert run([IngestMonth(color=c, year=2021, month=m) for c, m in months], workers=2).ok


@pytest.fixture
def gcp_home(pipeline_env: Path, gcp_env: dict, monkeypatch, tmp_path: Path) -> Path:
    """The emulators, and a HOME of the test's own: DuckDB installs extensions under it."""
    (tmp_path / "home").mkdir()
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    return pipeline_env


@pytest.fixture
def stack_env(gcp_home: Path, pg_server: dict, monkeypatch) -> Path:
    for key, value in pg_server.items():
        monkeypatch.setenv(key, value)
    pg("DROP SCHEMA IF EXISTS tlc CASCADE; DROP SCHEMA IF EXISTS prod CASCADE; DROP SCHEMA IF EXISTS dev CASCADE")
    return gcp_home


# --- the tests --------------------------------------------------------------------------------


def test_published_names_are_the_tlc_headers() -> None:
    """The views' columns are the real files' header names (the samples in ../shared/data)."""

    def header(rel: str) -> list[str]:
        return (SHARED / rel).read_text().splitlines()[0].replace('"', "").split(",")

    def names(color: str) -> list[str]:
        return [tlc for _, tlc in renamed(color)]

    yellow = header("yellow/yellow_tripdata_2021-01_head.csv")  # 2021: no airport_fee, cbd_congestion_fee yet
    assert names("yellow") == [*yellow, "airport_fee", "cbd_congestion_fee", "source_month"]
    assert names("green") == [*header("green/green_tripdata_2019-01_head100.csv"), "cbd_congestion_fee", "source_month"]
    assert names("fhv")[:6] == header("fhv/fhv_tripdata_2019-01.csv")
    assert [n for _, n in renamed("green", fold_case=True)][:2] == ["vendorid", "lpep_pickup_datetime"]


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("duckdb_schema", "prod; drop table x", "[tlc.publish] duckdb_schema 'prod; drop table x' is not valid"),
        ("duckdb_path", "taxi-rides.duckdb", "(the file name of [tlc.publish] duckdb_path) 'taxi-rides' is not valid"),
        ("duckdb_lake", "s3", "duckdb_lake 's3' is not valid: use one of local, gcs"),
        ("bigquery_dataset", "tlc", "[tlc.publish] bigquery_dataset 'tlc' holds the pipeline's tables: use another"),
        ("postgres_schema", "Prod", "[tlc.publish] postgres_schema 'Prod' is not valid"),
    ],
)
def test_bad_settings_are_refused_before_anything_is_made(
    pipeline_env: Path, cfg: dict, capsys, key: str, value: str, message: str
) -> None:
    cfg["tlc.publish", key] = value
    assert publish([]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err
    assert not pipeline_env.exists()  # not even the DuckDB file's directory


def test_gcs_lake_without_a_key_and_unknown_targets_are_refused(pipeline_env: Path, cfg: dict, monkeypatch, capsys):
    monkeypatch.delenv("STORAGE_EMULATOR_HOST", raising=False)
    monkeypatch.delenv("TLC_GCS_HMAC_SECRET", raising=False)
    cfg["tlc.publish", "duckdb_lake"] = "gcs"
    assert publish(["--targets", "duckdb"]) == 2
    assert "needs a GCS HMAC key: set TLC_GCS_HMAC_KEY_ID and TLC_GCS_HMAC_SECRET" in capsys.readouterr().err
    assert publish(["--targets", "duckdb,snowflake"]) == 2
    assert "targets 'duckdb,snowflake' are not valid: use some of duckdb, bigquery, postgres" in capsys.readouterr().err
    assert not pipeline_env.exists()


def test_dbt_builds_on_the_views_to_the_cent_and_only_complete_months_show(
    stack_env: Path, source_dir: Path, tmp_path: Path, capsys
) -> None:
    data = stack_env
    land(LANDED, source_dir)
    assert publish([]) == 0
    out = capsys.readouterr().out
    assert "taxi_rides_ny.prod.yellow_tripdata" in out and "prod.fhv_tripdata" in out, out
    db = data / "taxi_rides_ny.duckdb"
    held = {"yellow": {DAY[1], DAY[2]}, "green": {DAY[1]}, "fhv": {DAY[1]}}
    months = expected_months(data, held)
    assert months[("yellow", DAY[1])] == ROWS  # the sample months are whole

    # every engine's months view lists exactly what landed; the views carry the TLC names
    assert months_view(duck(db, "SELECT * FROM prod.months")) == months
    assert months_view(pg("SELECT * FROM prod.months")) == months
    assert months_view(bq("SELECT * FROM `tlc-local.nytaxi.months`")) == months
    described = [r[0] for r in duck(db, "DESCRIBE prod.yellow_tripdata")]
    assert described == [tlc for _, tlc in renamed("yellow")]
    pg_columns = pg(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = 'prod'"
        " AND table_name = 'green_tripdata' ORDER BY ordinal_position"
    )
    assert [r[0] for r in pg_columns] == [tlc for _, tlc in renamed("green", fold_case=True)]
    bq_row = Dataset.from_config().query("SELECT * FROM `tlc-local.nytaxi.yellow_tripdata` LIMIT 1")[0]
    assert list(bq_row.keys()) == [tlc for _, tlc in renamed("yellow")]

    # the course-shaped dbt project builds on DuckDB and Postgres, to the cent
    revenue = expected_revenue(data, held)
    assert len(revenue) > 3 and sum(v[0] for v in revenue.values()) > 2 * ROWS
    dbt("duckdb", tmp_path, TLC_DUCKDB_PATH=str(db))
    mart = "SELECT service_type, strftime(revenue_month, '%Y-%m'), total_trips, revenue_monthly_fare,"
    mart += " revenue_monthly_total_amount FROM dev.fct_monthly_revenue"
    assert revenue_rows(duck(db, mart)) == revenue
    dbt("postgres", tmp_path)
    assert (
        revenue_rows(pg(mart.replace("strftime(revenue_month, '%Y-%m')", "to_char(revenue_month, 'YYYY-MM')")))
        == revenue
    )

    # BigQuery's views hold the same rows and amounts per source month
    per_month = "SELECT source_month, COUNT(*), SUM(CAST(ROUND(fare_amount * 100) AS INT64)),"
    per_month += " SUM(CAST(ROUND(total_amount * 100) AS INT64)) FROM `tlc-local.nytaxi.{}_tripdata` GROUP BY 1"
    for color in ("yellow", "green"):
        table = lake_table(data, color, held[color])
        assert {(color, d): v for d, *v in bq(per_month.format(color))} == {
            k: list(v) for k, v in sums_by(table, color, table["source_month"]).items()
        }

    # a month landed after publishing is in every view at once, without a rerun
    land([("yellow", 3)], source_dir)
    held["yellow"].add(DAY[3])
    months = expected_months(data, held)
    assert months[("yellow", DAY[3])] == ROWS
    assert months_view(duck(db, "SELECT * FROM prod.months")) == months
    assert months_view(pg("SELECT * FROM prod.months")) == months
    assert months_view(bq("SELECT * FROM `tlc-local.nytaxi.months`")) == months

    # months that are not whole disappear: a row lost in Postgres, a marker missing in BigQuery
    pg("DELETE FROM tlc.yellow_tripdata_2021_02 WHERE ctid = (SELECT min(ctid) FROM tlc.yellow_tripdata_2021_02)")
    bq(f"DELETE FROM `{Dataset.from_config().markers_id}` WHERE color = 'yellow' AND source_month = DATE '2021-02-01'")
    gone = months - Counter({("yellow", DAY[2]): months[("yellow", DAY[2])]})
    assert months_view(pg("SELECT * FROM prod.months")) == gone
    assert pg("SELECT count(*) FROM prod.yellow_tripdata WHERE source_month = '2021-02-01'") == [(0,)]
    assert months_view(bq("SELECT * FROM `tlc-local.nytaxi.months`")) == gone
    assert bq("SELECT COUNT(*) FROM `tlc-local.nytaxi.yellow_tripdata` WHERE source_month = DATE '2021-02-01'") == [
        (0,)
    ]

    # publishing again is idempotent: the same views, nothing copied, dbt's models untouched
    views = duck(db, "SELECT view_name, sql FROM duckdb_views() WHERE schema_name = 'prod' ORDER BY 1")
    assert publish([]) == 0
    assert duck(db, "SELECT view_name, sql FROM duckdb_views() WHERE schema_name = 'prod' ORDER BY 1") == views
    assert [r[0] for r in views] == ["fhv_tripdata", "green_tripdata", "months", "yellow_tripdata"]
    assert duck(db, "SELECT count(*) FROM duckdb_tables() WHERE schema_name = 'prod'") == [(0,)]
    assert revenue_rows(duck(db, mart)) == revenue


def test_duckdb_views_read_the_bucket_over_gs(
    gcp_home: Path, gcp_env: dict, source_dir: Path, tmp_path: Path, cfg: dict, capsys
) -> None:
    """The lake in the bucket (fake-gcs-server through DuckDB's S3-compatible GCS access), offline."""
    for color in ("yellow", "green"):
        write_month(source_dir, color, 2021, 1, rows=ROWS, seed=5)
    assert run([GCSObject(color=c, year=2021, month=1) for c in ("yellow", "green")], workers=2).ok
    db = tmp_path / "gcs" / "taxi_rides_ny.duckdb"
    cfg["tlc.publish", "duckdb_path"] = str(db)
    cfg["tlc.publish", "duckdb_lake"] = "gcs"
    assert publish(["--targets", "duckdb"]) == 0, capsys.readouterr().err
    glob = f"gs://{gcp_env['bucket']}/lake/{layout.lake_glob('yellow')}"
    (definition,) = duck(db, "SELECT sql FROM duckdb_views() WHERE view_name = 'yellow_tripdata'")[0]
    assert f"read_parquet('{glob}')" in definition
    with pytest.raises(duckdb.Error):  # the file holds no key: a reader brings its own
        duck(db, "SELECT count(*) FROM prod.yellow_tripdata")

    profile = yaml.safe_load((DBT_PROJECT / "profiles.yml").read_text())
    secret = profile["taxi_rides_ny"]["outputs"]["duckdb_gcs"]["secrets"][0]
    secret |= {"endpoint": os.environ["STORAGE_EMULATOR_HOST"].removeprefix("http://"), "url_style": "path"}
    secret["use_ssl"] = "false"
    (tmp_path / "profiles-duckdb_gcs").mkdir()
    (tmp_path / "profiles-duckdb_gcs" / "profiles.yml").write_text(yaml.safe_dump(profile))
    dbt("duckdb_gcs", tmp_path, TLC_DUCKDB_PATH=str(db), TLC_GCS_HMAC_KEY_ID="k", TLC_GCS_HMAC_SECRET="s")  # noqa: S106 - the emulator takes any key
    held = {"yellow": {DAY[1]}, "green": {DAY[1]}}
    mart = "SELECT service_type, strftime(revenue_month, '%Y-%m'), total_trips, revenue_monthly_fare,"
    mart += " revenue_monthly_total_amount FROM dev.fct_monthly_revenue"
    assert revenue_rows(duck(db, mart)) == expected_revenue(gcp_home, held)
