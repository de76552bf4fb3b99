"""Months that used to get stuck, and values nobody checked (issue 14).

A source file that makes conversion raise *anything* while it is read (a year-0 pickup, an
over-long or badly quoted header field, text in an integer column) must be refused in one line
with its download moved aside, so that once the publisher fixes it a plain rerun asks the
source and lands the fixed file; a failure of our own is one line naming the month and never
refuses a good download. Integer columns must be exact to int64 in every sink, and a file whose
pickups almost all lie outside its month (another month's file under this name) is refused.
The helpers and the month (yellow 2021-03, 2,000 rows, small blocks and row groups) are those
of ``test_data_faults``.
"""

from __future__ import annotations

import datetime as dt
import gzip
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from tasks import IngestMonth, ParquetFile
from tests.faults.helpers import assert_lake_exact, error_messages, temporaries
from tests.faults.test_data_faults import LATE, MONTH, Rows, col, refused_run, rewrite
from tests.luigirun import run
from tests.sourceserver import SourceServer
from tlc import layout, phases
from tlc.atomic import read_json
from tlc.lake import writer
from tlc.month import Month
from tlc.sources import csv_releases

pytestmark = pytest.mark.faults

PATH = f"/{MONTH[0]}/{Month(*MONTH).stem}.csv.gz"


@pytest.fixture
def month(pipeline_env: Path, source: SourceServer, publish: Any, monkeypatch: pytest.MonkeyPatch) -> Path:
    """As in test_data_faults: small blocks and row groups, so a late fault meets written row groups."""
    monkeypatch.setattr(csv_releases, "BLOCK_SIZE", 1 << 14)
    monkeypatch.setattr(writer, "ROW_GROUP_ROWS", 250)
    return publish(*MONTH, seed=5)


def republish_text(src: Path, edit: Callable[[str], str]) -> None:
    """Publish the month with its CSV text edited as text (for faults the csv module would quote away)."""
    src.write_bytes(gzip.compress(edit(gzip.decompress(src.read_bytes()).decode()).encode()))


def set_late(name: str, value: str) -> Callable[[Rows], Rows]:
    def edit(rows: Rows) -> Rows:
        rows[1 + LATE][col(rows, name)] = value
        return rows

    return edit


# id: (edit of the rows or of the text, the ERROR line's message)
STUCK: dict[str, tuple[Callable[[Any], Any], bool, str]] = {
    "pickup-in-year-0": (
        set_late("tpep_pickup_datetime", "0000-03-01 00:10:00"),
        False,
        "DataError: column 'tpep_pickup_datetime' holds a timestamp outside years 1-9999: 0000-03-01",
    ),
    "dropoff-in-year-0": (
        set_late("tpep_dropoff_datetime", "0000-03-01 00:30:00"),
        False,
        "DataError: column 'tpep_dropoff_datetime' holds a timestamp outside years 1-9999",
    ),
    "header-field-over-long": (
        lambda text: text.replace("VendorID", "VendorID" + "x" * 200_000, 1),
        True,
        "SchemaMismatch: yellow_tripdata_2021-03.csv.gz: header line is longer than 4096 bytes",
    ),
    "header-badly-quoted": (
        lambda text: '"' + text,
        True,
        "SchemaMismatch: yellow_tripdata_2021-03.csv.gz: header line is not valid CSV (unexpected end of data)",
    ),
    "text-in-an-int-column": (
        set_late("PULocationID", "JFK"),
        False,
        "DataError: column 'PULocationID' holds a value that is not int: Failed to parse string: 'JFK'",
    ),
    "int-above-int64": (
        set_late("VendorID", "9223372036854775808"),
        False,
        "DataError: column 'VendorID' holds a value that is not int",
    ),
}


@pytest.mark.parametrize("fault", list(STUCK))
def test_unreadable_month_is_refused_in_one_line_and_a_fixed_source_lands_on_a_plain_rerun(
    pipeline_env: Path, source: SourceServer, month: Path, caplog: pytest.LogCaptureFixture, fault: str
) -> None:
    edit, as_text, message = STUCK[fault]
    good = month.read_bytes()
    if as_text:
        republish_text(month, edit)
    else:
        rewrite(month, edit)
    refused_run(pipeline_env, caplog, message)
    assert all(r.exc_info is None for r in caplog.records), "a traceback was logged"
    refused = read_json(layout.rejected_record(pipeline_env, Month(*MONTH)))
    assert Path(refused["kept"]).read_bytes() == month.read_bytes() and message in refused["reason"]
    assert not layout.raw_path(pipeline_env, Month(*MONTH)).exists()  # moved out of the graph

    month.write_bytes(good)  # the publisher fixes the file
    source.requests.clear()
    assert run([ParquetFile(color=MONTH[0], year=MONTH[1], month=MONTH[2])]).ok
    assert source.requests == [f"HEAD {PATH}", PATH]  # asked the source, fetched the fixed file
    assert_lake_exact(pipeline_env, *MONTH, month)


def test_unexpected_failure_is_one_line_naming_the_month_and_keeps_the_download(
    pipeline_env: Path, source: SourceServer, month: Path, on_phase: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """A bug of ours (raised here in the Parquet writer's thread) is neither the source's fault
    nor a local write: the download stays in place, unrefused, and the rerun needs no GET."""

    def bug(**_: Any) -> None:
        raise RuntimeError("injected bug in the writer")

    on_phase("parquet.row_group_written", bug)
    task = ParquetFile(color=MONTH[0], year=MONTH[1], month=MONTH[2])
    with caplog.at_level(logging.ERROR, logger="luigi-interface"):
        result = run([task])
    assert not result.ok and result.failed == {task.task_id}
    [line] = error_messages(caplog.records)
    assert "ParquetFile(color=yellow, year=2021, month=3)" in line and "\n" not in line
    assert "ConversionFailed: converting yellow 2021-03 failed unexpectedly: RuntimeError: injected bug" in line
    assert all(r.exc_info is None for r in caplog.records), "a traceback was logged"
    raw = layout.raw_path(pipeline_env, Month(*MONTH))
    assert raw.read_bytes() == month.read_bytes() and not (pipeline_env / "rejected").exists()
    assert not layout.lake_path(pipeline_env, Month(*MONTH)).exists() and temporaries(pipeline_env) == []

    phases.clear()  # the bug is fixed
    source.requests.clear()
    assert run([task]).ok
    assert source.requests == []  # the kept download was converted as it was
    assert_lake_exact(pipeline_env, *MONTH, month)


BIG = {  # canonical column: the text written in the CSV, the exact value expected everywhere
    "vendor_id": ("9007199254740993", 9007199254740993),  # 2**53 + 1: float64 would make it 2**53
    "pu_location_id": ("9223372036854775807", 9223372036854775807),  # int64's largest
    "do_location_id": ("-9007199254740995.0", -9007199254740995),  # pandas' 1.0 style, negative
    "passenger_count": ("3.00", 3),
}
SOURCE_NAMES = {"vendor_id": "VendorID", "pu_location_id": "PULocationID", "do_location_id": "DOLocationID"}


def test_integers_above_2_to_the_53_land_exactly_in_every_sink(
    pipeline_env: Path, source: SourceServer, month: Path, sinks: Any
) -> None:
    def edit(rows: Rows) -> Rows:
        for name, (text, _) in BIG.items():
            rows[1 + LATE][col(rows, SOURCE_NAMES.get(name, name))] = text
        return rows

    rewrite(month, edit)
    assert run([IngestMonth(color=MONTH[0], year=MONTH[1], month=MONTH[2])]).ok
    sinks.assert_exact(pipeline_env, *MONTH, month)
    expected = {name: value for name, (_, value) in BIG.items()}
    row = pq.read_table(layout.lake_path(pipeline_env, Month(*MONTH))).slice(LATE, 1).to_pylist()[0]
    assert {k: row[k] for k in expected} == expected  # the lake
    names = list(pq.read_schema(layout.lake_path(pipeline_env, Month(*MONTH))).names)

    def found(rows: Any) -> bool:
        return any(all(r[names.index(k)] == v for k, v in expected.items()) for r in rows)

    assert found(sinks.bq_rows(*MONTH)), "BigQuery lost the exact integers"
    assert found(sinks.pg_rows(*MONTH)), "Postgres lost the exact integers"


def test_another_months_file_under_this_name_is_refused(
    pipeline_env: Path, source: SourceServer, month: Path, publish: Any, caplog: pytest.LogCaptureFixture
) -> None:
    good = month.read_bytes()
    february = publish(MONTH[0], MONTH[1], MONTH[2] - 1, seed=9)
    month.write_bytes(february.read_bytes())  # the publisher put February's file at March's URL
    refused_run(pipeline_env, caplog, "pickups (")
    [line] = error_messages(caplog.records)
    assert "lie outside 2021-03, more than [tlc.source] max_out_of_month = 0.5 allows" in line
    assert "probably another month's file" in line
    month.write_bytes(good)
    assert run([ParquetFile(color=MONTH[0], year=MONTH[1], month=MONTH[2])]).ok
    assert_lake_exact(pipeline_env, *MONTH, month)
    report = read_json(layout.quality_path(pipeline_env, Month(*MONTH)))
    assert report["out_of_month_pickups"] < 0.01 * report["rows_read"]  # a real month: a few strays


def test_out_of_month_threshold_is_configurable(
    pipeline_env: Path, source: SourceServer, month: Path, publish: Any, cfg: dict
) -> None:
    february = publish(MONTH[0], MONTH[1], MONTH[2] - 1, seed=9)
    month.write_bytes(february.read_bytes())
    cfg["tlc.source", "max_out_of_month"] = "1"  # an operator who knows the file is right
    assert run([ParquetFile(color=MONTH[0], year=MONTH[1], month=MONTH[2])]).ok
    table = pq.read_table(layout.lake_path(pipeline_env, Month(*MONTH)))
    assert table.num_rows == 2000 and set(table.column("source_month").to_pylist()) == {dt.date(2021, 3, 1)}
