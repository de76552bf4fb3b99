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
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from google.api_core import exceptions as gexc

from tasks import BigQueryTable, DownloadCSV, GCSObject
from tests.faults.conftest import Sinks
from tests.faults.helpers import error_messages, row_counter
from tests.luigirun import run
from tests.sourceserver import SourceServer
from tlc import layout, phases, refresh
from tlc.bigquery import state
from tlc.bigquery.dataset import MARKERS
from tlc.bigquery.target import BigQueryMonth
from tlc.month import Month

pytestmark = pytest.mark.faults

JAN, FEB = ("yellow", 2021, 1), ("yellow", 2021, 2)


class Loaded:
    """January v1 and February in lake and warehouse, and January v2 published (not yet loaded)."""

    def __init__(self, data: Path, sinks: Sinks, publish: Callable[..., Path]) -> None:
        self.data, self.sinks = data, sinks
        self.jan, self.feb = publish(*JAN, seed=1), publish(*FEB, seed=2)
        assert run([bq(JAN), bq(FEB)]).ok
        self.jan_v1 = sinks.bq_rows(*JAN)
        self.jan_v1_parquet = layout.lake_path(data, Month(*JAN)).read_bytes()
        self.markers_v1 = state.markers(sinks.warehouse(), "yellow")
        publish(*JAN, seed=3)  # January v2: same row count, other rows
        assert refresh.main(["--colors", "yellow", "--start", "2021-01", "--apply"]) == 0

    def assert_previous_intact(self) -> None:
        """The failed load changed nothing in the warehouse."""
        assert self.sinks.bq_rows(*JAN) == self.jan_v1
        assert state.markers(self.sinks.warehouse(), "yellow") == self.markers_v1
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


def failing_run(caplog: pytest.LogCaptureFixture, task: Any, *needles: str, failing: Any = None) -> str:
    """Run ``task``; ``failing`` (default: the task itself) fails in one line holding ``needles``."""
    failing = failing or task
    with caplog.at_level(logging.ERROR, logger="luigi-interface"):
        result = run([task])
    assert not result.ok and failing.task_id in result.failed
    [line] = [m for m in error_messages(caplog.records) if failing.task_id.split("_")[0] in m]
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


# Where the lake goes away: uploading the new download to the raw zone, or publishing the Parquet.
GCS_PHASES = {
    "upload": ("gcs.uploading", DownloadCSV, "GCS upload to gs://"),
    "publish": ("gcs.publishing", GCSObject, "GCS publish of gs://"),
}


@pytest.mark.parametrize("step", list(GCS_PHASES))
@pytest.mark.parametrize("outage", ["shorter-than-deadline", "longer-than-deadline"])
def test_gcs_stopped_mid_upload(
    loaded: Loaded,
    sinks: Sinks,
    cfg: dict,
    on_phase: Any,
    caplog: pytest.LogCaptureFixture,
    outage: str,
    step: str,
) -> None:
    short = outage == "shorter-than-deadline"
    phase, failing, message = GCS_PHASES[step]
    cfg["tlc.gcs", "retry_seconds"] = "30" if short else "2"
    stop_once, restarted = service_outage(sinks, "gcs", back_soon=short)
    on_phase(phase, lambda name: stop_once())
    if short:
        assert run([bq(JAN)]).ok  # healed inside the run: nobody had to do anything
        restarted[0].join()
    else:
        failing_run(caplog, bq(JAN), message, "ConnectionError", failing=failing.of(Month(*JAN)))
        loaded.sinks.refresh()  # the service is back (elsewhere): a plain rerun
        loaded.assert_previous_intact()
    loaded.assert_rerun_exact()


@pytest.mark.parametrize("outage", ["shorter-than-deadline", "longer-than-deadline"])
def test_bigquery_stopped_between_staging_and_swap(
    loaded: Loaded, sinks: Sinks, cfg: dict, on_phase: Any, caplog: pytest.LogCaptureFixture, outage: str
) -> None:
    short = outage == "shorter-than-deadline"
    cfg["tlc.bigquery", "retry_seconds"] = "60" if short else "2"
    stop_once, restarted = service_outage(sinks, "bigquery", back_soon=short)
    on_phase("bigquery.swapping", lambda staging: stop_once())  # staged and counted: mid-load
    if short:
        assert run([bq(JAN)]).ok
        restarted[0].join()
    else:
        failing_run(caplog, bq(JAN), "BigQuery load of yellow 2021-01 from gs://", "ConnectionError")
        sinks.refresh()
        phases.clear()
        loaded.assert_previous_intact()
    phases.clear()
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
    "wrong-types": lambda loaded: _wrong_types(layout.lake_path(loaded.data, Month(*JAN))),
    "another-month": lambda loaded: layout.lake_path(loaded.data, Month(*FEB)).read_bytes(),
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
    loaded: Loaded, sinks: Sinks, on_phase: Any, caplog: pytest.LogCaptureFixture, replacement: str
) -> None:
    assert run([GCSObject(color="yellow", year=2021, month=1)]).ok  # v2 verified in the lake

    def replace(month: Month, uri: str) -> None:
        blob = sinks.bucket().blob(GCSObject.of(month).output().name)
        content = REPLACEMENTS[replacement](loaded)
        if content is None:
            blob.delete()
        else:
            blob.upload_from_string(content)

    on_phase("bigquery.loading", replace)
    with caplog.at_level(logging.ERROR, logger="luigi-interface"):
        result = run([bq(JAN)])
    phases.clear()
    if result.ok:  # loaded: then it must be exactly the new release
        assert sinks.bq_rows(*JAN) == row_counter(pq.read_table(layout.lake_path(loaded.data, Month(*JAN))))
        loaded.sinks.assert_exact(loaded.data, *FEB, loaded.feb, sinks=("gcs", "bq"))
    else:
        [line] = error_messages(caplog.records)
        assert "BigQuery load of yellow 2021-01 from gs://" in line and "\n" not in line
        loaded.assert_previous_intact()
    loaded.assert_rerun_exact()


def test_swap_cancelled_for_a_concurrent_transaction_is_retried(loaded: Loaded, on_phase: Any) -> None:
    """Real BigQuery cancels one of two transactions that change one table at once (another month
    under --workers 2, or the shared _loads table); bqemulator serialises them instead, so the
    cancellation is raised here in BigQuery's words, before the transaction reaches the emulator."""
    swaps: list[str] = []

    def cancel_twice(staging: str) -> None:
        swaps.append(staging)
        if len(swaps) <= 2:
            raise gexc.BadRequest(
                "Query error: Transaction is aborted due to concurrent update against table "
                "tlc-local:tlc.yellow_tripdata. Transaction ID: 61e30eea-0000-2dab-8e60-94eb2c1b1a92"
            )

    on_phase("bigquery.swapping", cancel_twice)
    assert run([bq(JAN)]).ok
    phases.clear()
    assert len(swaps) == 3
    loaded.assert_rerun_exact()


@pytest.mark.parametrize("damage", ["dropped", "replaced-by-wrong-columns"])
def test_staging_table_damaged_mid_load_keeps_the_previous_month(
    loaded: Loaded, sinks: Sinks, on_phase: Any, caplog: pytest.LogCaptureFixture, damage: str
) -> None:
    """The transaction itself fails half-way (its DELETE may already have run): all or nothing."""
    ds = sinks.warehouse()

    def spoil(staging: str) -> None:
        if damage == "dropped":
            ds.client.delete_table(staging)
        else:
            ds.query(f"CREATE OR REPLACE TABLE `{staging}` AS SELECT 'x' AS vendor_id")

    on_phase("bigquery.swapping", spoil)
    failing_run(caplog, bq(JAN), "BigQuery load of yellow 2021-01 from gs://")
    phases.clear()
    loaded.assert_previous_intact()
    loaded.assert_rerun_exact()


@pytest.mark.parametrize("dropped", ["month-table", "load-markers", "dataset"])
def test_warehouse_dropped_behind_our_back_is_noticed_and_restored(loaded: Loaded, sinks: Sinks, dropped: str) -> None:
    ds = sinks.warehouse()
    if dropped == "month-table":
        ds.client.delete_table(ds.table_id("yellow"))
    elif dropped == "load-markers":
        ds.client.delete_table(f"{ds.id}.{MARKERS}")
    else:
        ds.client.delete_dataset(ds.id, delete_contents=True)
    assert not bq(FEB).complete()
    assert BigQueryMonth.bulk_exists([bq(JAN).output(), bq(FEB).output()]) == [False, False]
    loaded.assert_rerun_exact()
