"""The lake (fake-gcs-server) and the warehouse (bqemulator) failing under a running load.

The services are this suite's own (``fault_stack``) and are stopped for real, by their pid,
in the middle of a stage; they come back either on the same ports while the client is still
retrying (an outage: the run must heal by itself) or only after the retry deadline (the run
must fail in one line, and a plain rerun must land the month). Objects and tables are also
changed behind the pipeline's back. Every test starts from a warehouse holding January v1 and
February, then ingests a new release of January (v2): whatever happens, February must stay
exact, January must be v1 or v2 exactly (never a mix, never empty), and a rerun gives v2.

``tests/test_sinks_gcp.py`` already covers a damaged object found by ``complete()``, a load
from a wrong-shaped file called directly, and endpoints that are down from the start.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from google.api_core import exceptions as gexc
from google.cloud import storage

from tasks import BigQueryTable, GCSObject, layout, refresh, warehouse
from tests.faults.conftest import Sinks
from tests.faults.helpers import error_messages, row_counter
from tests.luigirun import run
from tests.sourceserver import SourceServer

pytestmark = pytest.mark.faults

JAN, FEB = ("yellow", 2021, 1), ("yellow", 2021, 2)


class Loaded:
    """January v1 and February in lake and warehouse, and January v2 published (not yet loaded)."""

    def __init__(self, data: Path, sinks: Sinks, publish: Callable[..., Path]) -> None:
        self.data, self.sinks = data, sinks
        self.jan, self.feb = publish(*JAN, seed=1), publish(*FEB, seed=2)
        assert run([bq(JAN), bq(FEB)]).ok
        self.jan_v1 = sinks.bq_rows(*JAN)
        self.jan_v1_parquet = layout.lake_path(data, *JAN).read_bytes()
        self.markers_v1 = sinks.warehouse().markers("yellow")
        publish(*JAN, seed=3)  # January v2: same row count, other rows
        assert refresh.main(["--colors", "yellow", "--start", "2021-01", "--apply"]) == 0

    def assert_previous_intact(self) -> None:
        """The failed load changed nothing in the warehouse."""
        assert self.sinks.bq_rows(*JAN) == self.jan_v1
        assert self.sinks.warehouse().markers("yellow") == self.markers_v1
        self.sinks.assert_exact(self.data, *FEB, self.feb, sinks=("gcs", "bq"), staging_left=True)

    def assert_rerun_exact(self) -> None:
        rerun = run([bq(JAN), bq(FEB)])
        assert rerun.ok
        assert self.sinks.bq_counts("yellow") == {"2021-01": 2000, "2021-02": 2000}
        self.sinks.assert_exact(self.data, *JAN, self.jan, sinks=("gcs", "bq"))
        self.sinks.assert_exact(self.data, *FEB, self.feb, sinks=("gcs", "bq"))


def bq(month: tuple[str, int, int]) -> BigQueryTable:
    return BigQueryTable(color=month[0], year=month[1], month=month[2])


@pytest.fixture
def loaded(pipeline_env: Path, source: SourceServer, sinks: Sinks, publish: Callable[..., Path]) -> Loaded:
    return Loaded(pipeline_env, sinks, publish)


def failing_run(caplog: pytest.LogCaptureFixture, task: Any, *needles: str) -> str:
    with caplog.at_level(logging.ERROR, logger="luigi-interface"):
        result = run([task])
    assert not result.ok and task.task_id in result.failed
    [line] = [m for m in error_messages(caplog.records) if task.task_id.split("_")[0] in m]
    assert "\n" not in line and all(n in line for n in needles), line
    return line


def once(action: Callable[[], None]) -> Callable[[], None]:
    done: list[bool] = []

    def call() -> None:
        if not done:
            done.append(True)
            action()

    return call


def service_outage(sinks: Sinks, service: str, back_soon: bool) -> tuple[Callable[[], None], list[threading.Thread]]:
    """A one-shot stop of ``service``; with ``back_soon`` it restarts on the same ports in the
    background while the client is still retrying (the thread lands in the returned list)."""
    restarted: list[threading.Thread] = []

    def stop() -> None:
        sinks.stop(service)
        if back_soon:
            restarted.append(threading.Thread(target=sinks.restart_same_ports, args=(service,)))
            restarted[0].start()

    return once(stop), restarted


@pytest.mark.parametrize("outage", ["shorter-than-deadline", "longer-than-deadline"])
def test_gcs_stopped_mid_upload(
    loaded: Loaded,
    sinks: Sinks,
    cfg: dict,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    outage: str,
) -> None:
    short = outage == "shorter-than-deadline"
    cfg["tlc.gcs", "retry_seconds"] = "30" if short else "2"
    stop_once, restarted = service_outage(sinks, "gcs", back_soon=short)
    upload = storage.Blob.upload_from_filename

    def upload_into_outage(self: storage.Blob, *args: Any, **kwargs: Any) -> Any:
        stop_once()
        return upload(self, *args, **kwargs)

    monkeypatch.setattr(storage.Blob, "upload_from_filename", upload_into_outage)
    if short:
        assert run([bq(JAN)]).ok  # healed inside the run: nobody had to do anything
        restarted[0].join()
    else:
        failing_run(caplog, GCSObject(color="yellow", year=2021, month=1), "GCS upload to gs://", "ConnectionError")
        loaded.sinks.refresh()  # the service is back (elsewhere): a plain rerun
        loaded.assert_previous_intact()
    loaded.assert_rerun_exact()


@pytest.mark.parametrize("outage", ["shorter-than-deadline", "longer-than-deadline"])
def test_bigquery_stopped_between_staging_and_swap(
    loaded: Loaded,
    sinks: Sinks,
    cfg: dict,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    outage: str,
) -> None:
    short = outage == "shorter-than-deadline"
    cfg["tlc.bigquery", "retry_seconds"] = "60" if short else "2"
    stop_once, restarted = service_outage(sinks, "bigquery", back_soon=short)
    query = warehouse.Warehouse._query

    def query_into_outage(self: warehouse.Warehouse, sql: str) -> Any:
        if "BEGIN TRANSACTION" in sql:  # the staging table is loaded and counted: mid-load
            stop_once()
        return query(self, sql)

    monkeypatch.setattr(warehouse.Warehouse, "_query", query_into_outage)
    if short:
        assert run([bq(JAN)]).ok
        restarted[0].join()
    else:
        failing_run(caplog, bq(JAN), "BigQuery load of yellow 2021-01 from gs://", "ConnectionError")
        sinks.refresh()
        monkeypatch.setattr(warehouse.Warehouse, "_query", query)
        loaded.assert_previous_intact()
    monkeypatch.setattr(warehouse.Warehouse, "_query", query)
    loaded.assert_rerun_exact()


def _wrong_types(path: Path) -> bytes:
    """The month's Parquet with every column turned to text: what a stray writer might upload."""
    table = pq.read_table(path)
    as_text = pa.table({n: pa.array([str(v) for v in table.column(n).to_pylist()]) for n in table.column_names})
    sink = pa.BufferOutputStream()
    pq.write_table(as_text, sink)
    return sink.getvalue().to_pybytes()


REPLACEMENTS: dict[str, Callable[[Loaded], bytes | None]] = {
    "deleted": lambda loaded: None,
    "junk": lambda loaded: b"not a parquet file at all",
    "wrong-types": lambda loaded: _wrong_types(layout.lake_path(loaded.data, *JAN)),
    "another-month": lambda loaded: layout.lake_path(loaded.data, *FEB).read_bytes(),
    "older-release": lambda loaded: loaded.jan_v1_parquet,
}


@pytest.mark.parametrize(
    "replacement",
    [
        "deleted",
        "junk",
        "wrong-types",
        "another-month",
        "older-release",
    ],
)
def test_lake_object_replaced_behind_our_back_before_the_load(
    loaded: Loaded, sinks: Sinks, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, replacement: str
) -> None:
    load = warehouse.Warehouse.load_month
    assert run([GCSObject(color="yellow", year=2021, month=1)]).ok  # v2 verified in the lake

    def replace_then_load(self: warehouse.Warehouse, color: str, year: int, month: int, uri: str, *a: Any) -> int:
        blob = sinks.bucket().blob(GCSObject(color=color, year=year, month=month).object_name())
        content = REPLACEMENTS[replacement](loaded)
        if content is None:
            blob.delete()
        else:
            blob.upload_from_string(content)
        return load(self, color, year, month, uri, *a)

    monkeypatch.setattr(warehouse.Warehouse, "load_month", replace_then_load)
    with caplog.at_level(logging.ERROR, logger="luigi-interface"):
        result = run([bq(JAN)])
    monkeypatch.setattr(warehouse.Warehouse, "load_month", load)
    if result.ok:  # loaded: then it must be exactly the new release
        assert sinks.bq_rows(*JAN) == row_counter(pq.read_table(layout.lake_path(loaded.data, *JAN)))
        loaded.sinks.assert_exact(loaded.data, *FEB, loaded.feb, sinks=("gcs", "bq"))
    else:
        [line] = error_messages(caplog.records)
        assert "BigQuery load of yellow 2021-01 from gs://" in line and "\n" not in line
        loaded.assert_previous_intact()
    loaded.assert_rerun_exact()


def test_swap_cancelled_for_a_concurrent_transaction_is_retried(
    loaded: Loaded, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Real BigQuery cancels one of two transactions that change one table at once (another month
    under --workers 2, or the shared _loads table); bqemulator serialises them instead, so the
    cancellation is raised here in BigQuery's words, before the transaction reaches the emulator."""
    query, swaps = warehouse.Warehouse._query, []

    def cancel_twice(self: warehouse.Warehouse, sql: str) -> Any:
        if "BEGIN TRANSACTION" in sql:
            swaps.append(sql)
            if len(swaps) <= 2:
                raise gexc.BadRequest(
                    "Query error: Transaction is aborted due to concurrent update against table "
                    "tlc-local:tlc.yellow_tripdata. Transaction ID: 61e30eea-0000-2dab-8e60-94eb2c1b1a92"
                )
        return query(self, sql)

    monkeypatch.setattr(warehouse.Warehouse, "_query", cancel_twice)
    assert run([bq(JAN)]).ok
    monkeypatch.setattr(warehouse.Warehouse, "_query", query)
    assert len(swaps) == 3
    loaded.assert_rerun_exact()


@pytest.mark.parametrize("damage", ["dropped", "replaced-by-wrong-columns"])
def test_staging_table_damaged_mid_load_keeps_the_previous_month(
    loaded: Loaded, sinks: Sinks, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, damage: str
) -> None:
    """The transaction itself fails half-way (its DELETE may already have run): all or nothing."""
    query = warehouse.Warehouse._query

    def damage_then_query(self: warehouse.Warehouse, sql: str) -> Any:
        if "BEGIN TRANSACTION" in sql:
            [staging] = re.findall(r"SELECT \* FROM `([^`]+_staging_[0-9a-f_]+)`", sql)
            if damage == "dropped":
                self.client.delete_table(staging)
            else:
                query(self, f"CREATE OR REPLACE TABLE `{staging}` AS SELECT 'x' AS vendor_id")
        return query(self, sql)

    monkeypatch.setattr(warehouse.Warehouse, "_query", damage_then_query)
    failing_run(caplog, bq(JAN), "BigQuery load of yellow 2021-01 from gs://")
    monkeypatch.setattr(warehouse.Warehouse, "_query", query)
    loaded.assert_previous_intact()
    loaded.assert_rerun_exact()


@pytest.mark.parametrize("dropped", ["month-table", "load-markers", "dataset"])
def test_warehouse_dropped_behind_our_back_is_noticed_and_restored(loaded: Loaded, sinks: Sinks, dropped: str) -> None:
    wh = sinks.warehouse()
    if dropped == "month-table":
        wh.client.delete_table(wh.table_id("yellow"))
    elif dropped == "load-markers":
        wh.client.delete_table(f"{wh.dataset}.{warehouse.MARKERS}")
    else:
        wh.client.delete_dataset(wh.dataset, delete_contents=True)
    assert not bq(FEB).complete()
    assert not BigQueryTable.completed_among([bq(JAN), bq(FEB)])
    loaded.assert_rerun_exact()
