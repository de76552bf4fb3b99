"""GCSObject and BigQueryTable with the real Google clients against fake-gcs-server and bqemulator."""

from __future__ import annotations

import datetime as dt
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import requests

from scripts.make_sample_data import write_month
from tasks import BigQueryTable, GCSObject, ParquetFile
from tasks import gcs as gcs_task
from tests.luigirun import run
from tests.sourceserver import SourceServer
from tlc import layout
from tlc.bigquery import load as bq_load
from tlc.bigquery import state
from tlc.bigquery.load import Load, load_month
from tlc.bigquery.target import BigQueryMonth
from tlc.config import BigQueryConfig
from tlc.errors import SinkError
from tlc.gcs.lake import Lake
from tlc.gcs.objects import md5_b64
from tlc.gcs.target import GcsObject
from tlc.month import Month

MONTHS = [("yellow", 2021, 1), ("yellow", 2021, 2), ("green", 2021, 1)]


@pytest.fixture
def published(source_dir: Path) -> None:
    for color, year, month in MONTHS:
        write_month(source_dir, color, year, month, rows=2500, seed=3)


def bucket():
    return Lake.from_config().bucket


def counts(task: BigQueryTable) -> dict:
    ds = task.output().ds
    rows = ds.query(f"SELECT source_month, COUNT(*) AS n FROM `{ds.table_id(task.color)}` GROUP BY 1")
    return {r["source_month"].strftime("%Y-%m"): r["n"] for r in rows}


def lake_requests(action: Callable[[], object], method: str, needle: str) -> list[str]:
    """The URLs of the requests to the lake ``action`` made with ``method`` and ``needle`` in them."""
    seen: list[str] = []
    real = requests.Session.request

    def counting(self: requests.Session, verb: str, url: str, *args: object, **kwargs: object) -> object:
        if verb == method and needle in url:
            seen.append(url)
        return real(self, verb, url, *args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(requests.Session, "request", counting)
        action()
    return seen


def parquet_of(data: Path, color: str, year: int, month: int) -> pa.Table:
    return pq.read_table(layout.lake_path(data, Month(color, year, month)))


def test_months_land_in_lake_and_warehouse_then_rerun_is_noop(
    pipeline_env: Path, gcp_env: dict, source: SourceServer, published: None
) -> None:
    tasks = [BigQueryTable(color=c, year=y, month=m) for c, y, m in MONTHS]
    assert run(tasks, workers=2).ok
    for color, year, month in MONTHS:
        report = ParquetFile(color=color, year=year, month=month).output().report()
        blob = bucket().get_blob(GCSObject(color=color, year=year, month=month).output().name)
        assert blob.md5_hash == md5_b64(report.parquet.md5) and blob.size == report.parquet.size
        assert blob.metadata["rows"] == str(report.rows_written)
        assert blob.metadata["parquet_sha256"] == report.parquet.sha256
    yellow = BigQueryTable(color="yellow", year=2021, month=1)
    assert counts(yellow) == {"2021-01": 2500, "2021-02": 2500}
    assert counts(BigQueryTable(color="green", year=2021, month=1)) == {"2021-01": 2500}

    ds = yellow.output().ds
    table = ds.client.get_table(ds.table_id("yellow"))
    types = {f.name: f.field_type for f in table.schema}
    assert types["pickup_datetime"] == "DATETIME" and types["vendor_id"] in ("INTEGER", "INT64")
    assert types["source_month"] == "DATE" and types["total_amount"] in ("FLOAT", "FLOAT64")
    assert table.time_partitioning.field == "source_month"
    assert table.clustering_fields == ["pu_location_id", "vendor_id"]
    local = parquet_of(pipeline_env, "yellow", 2021, 1)
    [row] = ds.query(
        f"SELECT SUM(total_amount) AS total, COUNTIF(vendor_id IS NULL) AS null_vendor, MIN(pickup_datetime) AS first "
        f"FROM `{ds.table_id('yellow')}` WHERE source_month = DATE '2021-01-01'"
    )
    assert row["total"] == pytest.approx(pc.sum(local.column("total_amount")).as_py())
    assert row["null_vendor"] == local.column("vendor_id").null_count
    assert row["first"] == pc.min(local.column("pickup_datetime")).as_py()

    markers = ds.query(f"SELECT color, source_month, loaded_at FROM `{ds.markers_id}`")
    again = run(tasks)
    assert again.ok and again.ran == set()
    assert ds.query(f"SELECT color, source_month, loaded_at FROM `{ds.markers_id}`") == markers


@pytest.mark.parametrize("damage", ["overwrite", "delete", "truncate"])
def test_damaged_remote_object_is_uploaded_again(
    pipeline_env: Path, gcp_env: dict, source: SourceServer, published: None, damage: str
) -> None:
    task = GCSObject(color="yellow", year=2021, month=1)
    assert run([task]).ok
    blob = bucket().blob(task.output().name)
    good = blob.download_as_bytes()
    if damage == "delete":
        blob.delete()
    else:
        blob.upload_from_string(b"junk" if damage == "overwrite" else good[: len(good) // 2])
    assert not task.complete()
    result = run([task])
    assert result.ok and task.task_id in result.ran
    assert bucket().blob(task.output().name).download_as_bytes() == good


def test_publishing_drops_its_staged_copy_and_orphans_of_the_color_but_never_a_month_still_to_publish(
    pipeline_env: Path, gcp_env: dict, source: SourceServer, published: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    jan, feb = (GCSObject(color="yellow", year=2021, month=m) for m in (1, 2))
    assert run([ParquetFile(color="yellow", year=2021, month=1)]).ok  # staged, still to publish
    lake = Lake.from_config()
    pending = lake.listing(layout.staged_prefix(Month("yellow", 2021, 1)))
    assert len(pending) == 1
    orphan = layout.staged_key(Month("yellow", 2021, 3), "ab" * 32)  # no report names it
    other_color = layout.staged_key(Month("green", 2021, 3), "ab" * 32)
    for key in (orphan, other_color):
        lake.bucket.blob(lake.name(key)).upload_from_string(b"PAR1")
    assert run([feb]).ok
    assert lake.listing(layout.staged_prefix(Month("yellow", 2021, 2))) == {}  # published: its copy is gone
    assert lake.get(orphan) is not None  # younger than a day: perhaps another run about to publish it
    monkeypatch.setattr(gcs_task, "STAGING_GRACE", dt.timedelta(0))  # now every copy is old enough
    lake.delete(lake.get(layout.lake_key(Month("yellow", 2021, 2))))
    assert run([feb]).ok
    assert lake.get(orphan) is None and lake.get(other_color) is not None
    assert lake.listing(layout.staged_prefix(Month("yellow", 2021, 1))).keys() == pending.keys()  # kept
    assert ParquetFile(color="yellow", year=2021, month=1).complete()
    result = run([jan])
    assert (
        result.ok
        and jan.task_id in result.ran
        and ParquetFile(color="yellow", year=2021, month=1).task_id not in result.ran
    )
    assert lake.listing(layout.staged_color_prefix("yellow")) == {}


def test_a_read_of_an_object_gone_meanwhile_is_one_sink_line_naming_it(
    pipeline_env: Path, gcp_env: dict, source: SourceServer, published: None
) -> None:
    """Postgres and the report read the published Parquet by ranges; an object replaced or
    deleted after it was checked must fail as the sink's one line, not as a client traceback."""
    task = GCSObject(color="yellow", year=2021, month=1)
    assert run([task]).ok
    lake = Lake.from_config()
    blob = lake.bucket.get_blob(task.output().name)
    with lake.reader(blob) as fh:
        head = fh.read(4)
        lake.bucket.blob(blob.name).delete()
        with pytest.raises(SinkError) as failed:
            fh.seek(-8, 2)  # what pyarrow does first: the footer, beyond the first chunk read
            fh.read(8)
    assert head == b"PAR1"
    assert str(failed.value).startswith(f"GCS read of gs://{lake.bucket.name}/{blob.name} failed: NotFound")


def test_forced_reload_of_one_month_leaves_both_months_exact(
    pipeline_env: Path, gcp_env: dict, source: SourceServer, published: None
) -> None:
    jan, feb = (BigQueryTable(color="yellow", year=2021, month=m) for m in (1, 2))
    assert run([jan, feb]).ok
    ds = jan.output().ds
    ds.query(f"DELETE FROM `{ds.markers_id}` WHERE source_month = DATE '2021-01-01'")
    assert not jan.complete() and feb.complete()
    # Another month's staging tables: one of a writer of this host that died after its commit
    # (nobody loads that month again), one of a live writer elsewhere; only the first may go.
    dead = subprocess.Popen(["true"])
    dead.wait()
    orphan = f"yellow_tripdata_2021_02_staging_{bq_load._HOST}_{dead.pid}_{dead.pid}_0a0b0c"
    elsewhere = "yellow_tripdata_2021_02_staging_0f0f0f0f_1_1_0a0b0c"
    for name in (orphan, elsewhere):
        ds.query(f"CREATE TABLE `{ds.id}.{name}` AS SELECT 1 AS x")
    result = run([jan, feb])
    assert result.ok and result.ran == {jan.task_id}
    assert counts(jan) == {"2021-01": 2500, "2021-02": 2500}
    assert {t.table_id for t in ds.client.list_tables(ds.id)} == {"yellow_tripdata", "_loads", elsewhere}


def test_failing_load_leaves_the_previous_month_intact(
    pipeline_env: Path, gcp_env: dict, source: SourceServer, published: None, tmp_path: Path
) -> None:
    jan = BigQueryTable(color="yellow", year=2021, month=1)
    assert run([jan]).ok
    ds, month = jan.output().ds, Month("yellow", 2021, 1)
    before = state.month_state(ds, month)
    sha = before[1].parquet_sha256
    # A Parquet of the wrong shape: the load job itself fails.
    bad = tmp_path / "bad.parquet"
    pq.write_table(pa.table({"x": [1, 2, 3]}), bad)
    bucket().blob("bad/bad.parquet").upload_from_filename(str(bad))
    with pytest.raises(SinkError, match="BigQuery load of yellow 2021-01"):
        load_month(ds, Load(month, f"gs://{gcp_env['bucket']}/bad/bad.parquet", 3, sha, lambda: 1))
    # The right file, but fewer rows than the Parquet promised: refused before the swap.
    with pytest.raises(SinkError, match="staged 2500 rows, the Parquet has 2501"):
        load_month(ds, Load(month, GCSObject(color="yellow", year=2021, month=1).output().uri, 2501, sha, lambda: 1))
    assert state.month_state(ds, month) == before
    assert jan.complete()
    tables = {t.table_id for t in ds.client.list_tables(ds.id)}
    assert tables == {"yellow_tripdata", "_loads"}  # no staging table left behind


@pytest.mark.parametrize("service", ["gcs", "bigquery"])
def test_emulator_down_gives_a_clear_error_after_bounded_retries(
    pipeline_env: Path, gcp_env: dict, source: SourceServer, published: None, monkeypatch, cfg, service: str
) -> None:
    assert run([ParquetFile(color="yellow", year=2021, month=1)]).ok
    if service == "gcs":
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", "http://127.0.0.1:9")
        task, message = GCSObject(color="yellow", year=2021, month=1), "GCS read of gs://"
    else:
        monkeypatch.setenv("TLC_BIGQUERY_ENDPOINT", "http://127.0.0.1:9")
        task, message = BigQueryTable(color="yellow", year=2021, month=1), "BigQuery state of yellow 2021-01"
    cfg["tlc.gcs", "retry_seconds"] = cfg["tlc.bigquery", "retry_seconds"] = "2"
    began = time.monotonic()
    with pytest.raises(SinkError, match=f"{message}.* failed: ConnectionError") as err:
        task.complete()
    assert time.monotonic() - began < 15
    assert "\n" not in str(err.value)
    assert BigQueryConfig().retry_seconds == 2.0


def test_range_completeness_is_checked_in_bulk_and_notices_one_damaged_month(
    pipeline_env: Path, gcp_env: dict, source: SourceServer, published: None
) -> None:
    from tasks import IngestRange
    from tasks.wrappers import all_complete

    months = [BigQueryTable(color=c, year=y, month=m) for c, y, m in MONTHS]
    lake = [GCSObject(color=c, year=y, month=m) for c, y, m in MONTHS]
    assert not all_complete(months)
    assert run(months).ok
    assert all_complete(months + lake)
    assert BigQueryMonth.bulk_exists([t.output() for t in months]) == [t.complete() for t in months] == [True] * 3
    listings = lake_requests(lambda: GcsObject.bulk_exists([t.output() for t in lake]), "GET", "prefix=")
    assert len(listings) == 4  # per color one listing of the published objects and one of the reports: not per month
    bucket().blob(lake[1].output().name).delete()  # yellow 2021-02 vanishes from the lake
    assert GcsObject.bulk_exists([t.output() for t in lake]) == [True, False, True]
    assert not all_complete(months + lake)
    ds = months[0].output().ds
    ds.query(f"DELETE FROM `{ds.table_id('green')}` WHERE TRUE")
    assert BigQueryMonth.bulk_exists([t.output() for t in months]) == [True, True, False]
    assert IngestRange(colors="yellow", start="2021-01", stop="2021-02").requires()[0].requires()[1] == lake[0]
