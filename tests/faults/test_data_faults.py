"""Dirty data through the task graph: a published month whose content is wrong in one way.

``tests/test_convert.py`` proves ``convert_month`` on tiny files; here the faults sit in a real
2,000-row month served by the loopback source and go through ``luigi.build``. Blocks and row
groups are made small so that a bad value near the end is met after several row groups have
already been written to the temporary Parquet: what must vanish is real, not an empty file.
Refused months must leave nothing at the lake's final paths; accepted quirks (CRLF, BOM, a
year-3019 pickup) must land every row exactly.
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import io
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from tasks import (
    IngestMonth,
    ParquetFile,
)
from tests.faults.helpers import assert_lake_exact, error_messages, reference, temporaries
from tests.luigirun import run
from tests.sourceserver import SourceServer
from tlc import layout
from tlc.atomic import read_json
from tlc.gcs.lake import Lake
from tlc.lake import writer
from tlc.month import Month
from tlc.sources import csv_releases

pytestmark = pytest.mark.faults

MONTH = ("yellow", 2021, 3)
LATE = 1900  # the data row that carries the fault: after several row groups were written
Rows = list[list[str]]


@pytest.fixture
def month(pipeline_env: Path, source: SourceServer, publish, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(csv_releases, "BLOCK_SIZE", 1 << 14)
    monkeypatch.setattr(writer, "ROW_GROUP_ROWS", 250)
    return publish(*MONTH, seed=5)


@pytest.fixture
def parquet_bytes(on_phase: Any) -> list[int]:
    """Bytes the converter had written to its temporary Parquet, to prove a late failure had written some."""
    written: list[int] = []
    on_phase("parquet.row_group_written", lambda rows, bytes: written.append(bytes))
    return written


def rewrite(src: Path, edit: Callable[[Rows], Rows] | None = None, *, newline: str = "\n", bom: bool = False) -> None:
    """Publish a changed copy of the month: rows edited, line endings or a BOM changed."""
    rows = list(csv.reader(io.StringIO(gzip.decompress(src.read_bytes()).decode())))
    rows = edit(rows) if edit else rows
    out = io.StringIO()
    csv.writer(out, lineterminator=newline).writerows(rows)
    src.write_bytes(gzip.compress((("\ufeff" if bom else "") + out.getvalue()).encode()))


def col(rows: Rows, name: str) -> int:
    return rows[0].index(name)


def set_value(name: str, value: str) -> Callable[[Rows], Rows]:
    def edit(rows: Rows) -> Rows:
        rows[1 + LATE][col(rows, name)] = value
        return rows

    return edit


def rename(old: str, new: str) -> Callable[[Rows], Rows]:
    def edit(rows: Rows) -> Rows:
        rows[0][col(rows, old)] = new
        return rows

    return edit


def drop_column(name: str) -> Callable[[Rows], Rows]:
    def edit(rows: Rows) -> Rows:
        i = col(rows, name)
        return [r[:i] + r[i + 1 :] for r in rows]

    return edit


def add_column(rows: Rows) -> Rows:
    return [rows[0] + ["tip_percent"]] + [[*r, "12"] for r in rows[1:]]


REFUSED: dict[str, tuple[Callable[[Rows], Rows], str, bool]] = {
    # id: (edit, message, fails only after row groups were written)
    "header-renamed": (
        rename("trip_distance", "trip_miles"),
        "SchemaMismatch: yellow header not recognised: unexpected columns ['trip_miles']; "
        "missing columns ['trip_distance']",
        False,
    ),
    "column-missing": (drop_column("fare_amount"), "missing columns ['fare_amount']", False),
    "column-extra": (add_column, "unexpected columns ['tip_percent']", False),
    "column-duplicated": (rename("extra", "fare_amount"), "duplicated columns ['fare_amount']", False),
    "text-in-numeric": (set_value("trip_distance", "abc"), "DataError: yellow_tripdata_2021-03.csv.gz: ", True),
    "fraction-in-id": (
        set_value("VendorID", "1.5"),
        "DataError: column 'VendorID' holds a value that is not int",
        True,
    ),
    "unparseable-timestamp": (set_value("tpep_pickup_datetime", "yesterday"), "invalid value 'yesterday'", True),
    "empty-file": (lambda rows: [], "DataError: yellow_tripdata_2021-03.csv.gz: file is empty", False),
    "header-only": (lambda rows: rows[:1], "DataError: yellow_tripdata_2021-03.csv.gz: no data rows", False),
}


def refused_run(data: Path, caplog: pytest.LogCaptureFixture, message: str) -> None:
    """The month is refused in one line and no lake output exists; the raw copy is the source's."""
    task = ParquetFile(color=MONTH[0], year=MONTH[1], month=MONTH[2])
    with caplog.at_level(logging.ERROR, logger="luigi-interface"):
        result = run([task])
    assert not result.ok and result.failed == {task.task_id}
    [line] = error_messages(caplog.records)
    assert "ParquetFile(color=yellow, year=2021, month=3)" in line and message in line and "\n" not in line
    month, lake = Month(*MONTH), Lake.from_config()
    assert not layout.lake_path(data, month).exists() and not layout.quality_path(data, month).exists()
    assert lake.get(layout.quality_key(month)) is None and lake.listing(layout.staged_prefix(month)) == {}
    assert lake.get(layout.raw_key(month)) is None  # refused: out of the raw zone too, so a rerun asks the source
    assert temporaries(data) == [] and not task.complete()


@pytest.mark.parametrize("fault", list(REFUSED))
def test_refused_month_leaves_no_lake_output_and_lands_exactly_once_fixed(
    pipeline_env: Path,
    source: SourceServer,
    month: Path,
    parquet_bytes: list[int],
    caplog: pytest.LogCaptureFixture,
    fault: str,
) -> None:
    edit, message, late = REFUSED[fault]
    good = month.read_bytes()
    rewrite(month, edit)
    refused_run(pipeline_env, caplog, message)
    if late:
        assert max(parquet_bytes, default=0) > 0, "the fault should have been met after row groups were written"
    refused = read_json(layout.rejected_record(pipeline_env, Month(*MONTH)))
    assert Path(refused["kept"]).read_bytes() == month.read_bytes() and message in refused["reason"]  # to inspect
    assert not layout.raw_path(pipeline_env, Month(*MONTH)).exists()

    month.write_bytes(good)  # the publisher fixes the month: a plain rerun fetches it again
    healed = run([ParquetFile(color=MONTH[0], year=MONTH[1], month=MONTH[2])])
    assert healed.ok
    assert_lake_exact(pipeline_env, *MONTH, month)


@pytest.mark.parametrize("fault", ["header-renamed", "text-in-numeric"])
def test_rerun_while_the_source_is_unchanged_converts_the_kept_copy_without_downloading(
    pipeline_env: Path, source: SourceServer, month: Path, caplog: pytest.LogCaptureFixture, fault: str
) -> None:
    edit, message, _ = REFUSED[fault]
    rewrite(month, edit)
    refused_run(pipeline_env, caplog, message)
    gets = [r for r in source.requests if not r.startswith("HEAD ")]
    caplog.clear()
    refused_run(pipeline_env, caplog, message)  # refused again, in one line
    assert [r for r in source.requests if not r.startswith("HEAD ")] == gets  # from the kept copy: no GET
    assert any(r.startswith("HEAD ") for r in source.requests)  # the source was asked whether it changed
    refused = read_json(layout.rejected_record(pipeline_env, Month(*MONTH)))
    assert Path(refused["kept"]).read_bytes() == month.read_bytes()
    assert [p.name for p in Path(refused["kept"]).parent.glob("*.csv.gz")] == [Path(refused["kept"]).name]


@pytest.mark.parametrize("fault", ["header-renamed", "text-in-numeric", "empty-file"])
def test_plain_rerun_after_the_source_is_fixed_lands_the_month(
    pipeline_env: Path, source: SourceServer, month: Path, caplog: pytest.LogCaptureFixture, fault: str
) -> None:
    edit, message, _ = REFUSED[fault]
    good = month.read_bytes()
    rewrite(month, edit)
    refused_run(pipeline_env, caplog, message)
    month.write_bytes(good)
    assert run([ParquetFile(color=MONTH[0], year=MONTH[1], month=MONTH[2])]).ok
    assert_lake_exact(pipeline_env, *MONTH, month)


@pytest.mark.parametrize(
    ("newline", "bom"), [("\r\n", False), ("\n", True), ("\r\n", True)], ids=["crlf", "bom", "bom-crlf"]
)
def test_crlf_and_bom_land_exactly_the_same_rows(
    pipeline_env: Path, source: SourceServer, month: Path, newline: str, bom: bool
) -> None:
    expected = reference(month, *MONTH)
    rewrite(month, newline=newline, bom=bom)
    assert run([ParquetFile(color=MONTH[0], year=MONTH[1], month=MONTH[2])]).ok
    assert pq.read_table(layout.lake_path(pipeline_env, Month(*MONTH))).equals(expected)
    assert_lake_exact(pipeline_env, *MONTH, month)


def test_year_3019_pickup_is_kept_and_counted_in_every_sink(
    pipeline_env: Path, source: SourceServer, month: Path, sinks
) -> None:
    good = reference(month, *MONTH)
    rewrite(month, set_value("tpep_pickup_datetime", "3019-03-01 00:10:00"))
    assert run([IngestMonth(color=MONTH[0], year=MONTH[1], month=MONTH[2])]).ok
    sinks.assert_exact(pipeline_env, *MONTH, month)
    table = pq.read_table(layout.lake_path(pipeline_env, Month(*MONTH)))
    changed = [i for i, (a, b) in enumerate(zip(table.to_pylist(), good.to_pylist(), strict=True)) if a != b]
    assert changed == [LATE] and table.slice(LATE, 1).to_pylist()[0]["pickup_datetime"].year == 3019
    report = read_json(layout.quality_path(pipeline_env, Month(*MONTH)))
    assert report["pickup_max"].startswith("3019-03-01") and report["rows_dropped"] == {}
    assert report["out_of_month_pickups"] == out_of_month(table) == out_of_month(good) + 1


def out_of_month(table: Any) -> int:
    start, end = dt.datetime(2021, 3, 1), dt.datetime(2021, 4, 1)
    return sum(1 for p in table.column("pickup_datetime").to_pylist() if p is not None and not start <= p < end)
