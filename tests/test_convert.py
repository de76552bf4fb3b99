"""Schema mapping and conversion on the real TLC samples and on every known layout."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.conftest import SHARED
from tlc import quality, schema
from tlc.errors import CorruptSource, DataError, SchemaMismatch
from tlc.lake.convert import convert_month
from tlc.month import Month
from tlc.quality import QualityReport
from tlc.rules import Rules


def gz(tmp_path: Path, text: bytes | str, name: str = "m.csv.gz") -> Path:
    path = tmp_path / name
    path.write_bytes(gzip.compress(text.encode() if isinstance(text, str) else text))
    return path


def convert(tmp_path: Path, src: Path, color: str, year: int, month: int, **kw) -> tuple[pa.Table, QualityReport]:
    dest = tmp_path / "out.parquet"
    report = convert_month(src, dest, Month(color, year, month, "csv"), **kw)
    table = pq.read_table(dest)
    assert table.schema.equals(schema.arrow_schema(color), check_metadata=False)
    assert report.rows_written == table.num_rows
    return table, report


def sample(tmp_path: Path, rel: str) -> Path:
    return gz(tmp_path, (SHARED / rel).read_bytes(), Path(rel).name + ".gz")


def test_yellow_2021_real_sample(tmp_path: Path) -> None:
    table, report = convert(tmp_path, sample(tmp_path, "yellow/yellow_tripdata_2021-01_head.csv"), "yellow", 2021, 1)
    assert table.num_rows == report.rows_read == 22792
    assert report.negative_amounts["total_amount"] == 199
    assert report.out_of_month_pickups > 0
    assert report.pickup_min.startswith("2020-12")
    first = table.slice(0, 1).to_pylist()[0]
    assert first["vendor_id"] == 1 and first["pu_location_id"] == 142 and first["total_amount"] == 11.8
    assert str(first["pickup_datetime"]) == "2021-01-01 00:30:10"
    assert set(table.column("source_month").to_pylist()) == {__import__("datetime").date(2021, 1, 1)}
    assert table.column("airport_fee").null_count == table.num_rows


def test_yellow_2019_real_sample_without_congestion_values(tmp_path: Path) -> None:
    table, report = convert(tmp_path, sample(tmp_path, "yellow/yellow_tripdata_2019-01_head100.csv"), "yellow", 2019, 1)
    assert table.num_rows == 99
    assert report.nulls["congestion_surcharge"] == 99
    assert report.out_of_month_pickups >= 1  # 2018-11 / 2018-12 pickups in the real head


def test_green_real_sample(tmp_path: Path) -> None:
    table, report = convert(tmp_path, sample(tmp_path, "green/green_tripdata_2019-01_head100.csv"), "green", 2019, 1)
    assert table.num_rows == 99
    assert report.nulls["ehail_fee"] == 99
    assert 2 in table.column("trip_type").to_pylist()


def test_fhv_tlc_six_column_layout_with_crlf(tmp_path: Path) -> None:
    src = sample(tmp_path, "fhv/fhv_tripdata_2019-01.csv")
    raw_rows = (SHARED / "fhv/fhv_tripdata_2019-01.csv").read_text().count("\n") - 1
    table, report = convert(tmp_path, src, "fhv", 2019, 1)
    assert table.num_rows == raw_rows
    assert report.missing_optional_columns == ["affiliated_base_number"]
    assert table.column("dispatching_base_num")[0].as_py() == "B00001"
    assert report.nulls["pu_location_id"] > 0


def test_fhv_datatalksclub_seven_column_layout(tmp_path: Path) -> None:
    text = (
        "dispatching_base_num,pickup_datetime,dropOff_datetime,PUlocationID,DOlocationID,SR_Flag,Affiliated_base_number\n"
        "B00009,2021-01-01 00:27:00,2021-01-01 00:44:00,,,,B00009\n"
        "B00013,2021-01-01 00:50:00,2021-01-01 01:07:00,265,17,1,\n"
    )
    table, _ = convert(tmp_path, gz(tmp_path, text), "fhv", 2021, 1)
    rows = table.to_pylist()
    assert rows[0]["affiliated_base_number"] == "B00009" and rows[0]["pu_location_id"] is None
    assert rows[1]["do_location_id"] == 17 and rows[1]["sr_flag"] == 1 and rows[1]["affiliated_base_number"] is None


YELLOW_2019 = (SHARED / "yellow/yellow_tripdata_2019-01_head100.csv").read_text().splitlines()[0]
ROW_2021 = "1.0,2021-03-01 00:10:00,2021-03-01 00:20:00,1.0,1.50,1.0,N,142,43,2.0,8,3,0.5,0,0,0.3,11.8,2.5"


@pytest.mark.parametrize(
    ("extra_header", "extra_value", "column"),
    [
        ("airport_fee", "1.25", "airport_fee"),
        ("Airport_fee", "1.25", "airport_fee"),
        ("Airport_fee,cbd_congestion_fee", "1.25,0.75", "cbd_congestion_fee"),
    ],
)
def test_yellow_later_layouts(tmp_path: Path, extra_header: str, extra_value: str, column: str) -> None:
    text = f"{YELLOW_2019},{extra_header}\n{ROW_2021},{extra_value}\n"
    table, _ = convert(tmp_path, gz(tmp_path, text), "yellow", 2021, 3)
    row = table.to_pylist()[0]
    assert row["airport_fee"] == 1.25 and row[column] in (1.25, 0.75)
    assert row["vendor_id"] == 1 and row["payment_type"] == 2  # written as 1.0 / 2.0


def test_2018_layout_without_congestion_and_blank_line_after_header(tmp_path: Path) -> None:
    header = YELLOW_2019.removesuffix(",congestion_surcharge")
    row = ROW_2021.rsplit(",", 1)[0].replace("2021-03", "2018-03")
    table, report = convert(tmp_path, gz(tmp_path, f"{header}\n\n{row}\n{row}\n"), "yellow", 2018, 3)
    assert table.num_rows == 2
    assert report.missing_optional_columns == ["congestion_surcharge", "airport_fee", "cbd_congestion_fee"]


def test_bom_and_crlf(tmp_path: Path) -> None:
    text = ("\ufeff" + YELLOW_2019 + "\r\n" + ROW_2021 + "\r\n").encode("utf-8")
    table, _ = convert(tmp_path, gz(tmp_path, text), "yellow", 2021, 3)
    assert table.column("vendor_id").to_pylist() == [1]
    assert table.column("congestion_surcharge").to_pylist() == [2.5]


def test_trailing_rows_with_empty_ids_are_kept_as_nulls(tmp_path: Path) -> None:
    empty = ",2021-03-31 23:10:00,2021-03-31 23:30:00,,4.2,,,132,265,,30,0,0.5,0,6.12,0.3,36.92,2.5"
    table, report = convert(tmp_path, gz(tmp_path, f"{YELLOW_2019}\n{ROW_2021}\n{empty}\n"), "yellow", 2021, 3)
    assert table.num_rows == 2
    assert report.nulls["vendor_id"] == 1 and report.nulls["store_and_fwd_flag"] == 1


def test_cleaning_rules_are_counted(tmp_path: Path) -> None:
    zero = ROW_2021.replace(",1.0,1.50,", ",0,1.50,", 1)
    empty = ",2021-03-31 23:10:00,2021-03-31 23:30:00,,4.2,,,132,265,,30,0,0.5,0,6.12,0.3,36.92,2.5"
    stray = ROW_2021.replace("2021-03-01 00:10:00", "2009-01-01 00:10:00")
    text = "\n".join([YELLOW_2019, ROW_2021, zero, empty, stray, stray]) + "\n"
    src = gz(tmp_path, text)
    _, lossless = convert(tmp_path, src, "yellow", 2021, 3)
    assert lossless.rows_written == 5 and lossless.rows_dropped == {} and lossless.out_of_month_pickups == 2
    rules = Rules(drop_zero_passengers=True, drop_missing_vendor=True, drop_out_of_month=True)
    table, report = convert(tmp_path, src, "yellow", 2021, 3, rules=rules)
    assert report.rows_dropped == {"drop_missing_vendor": 1, "drop_zero_passengers": 1, "drop_out_of_month": 2}
    assert table.num_rows == 1 and report.rows_read == 5
    filled, report = convert(tmp_path, src, "yellow", 2021, 3, rules=Rules(fill_null_passenger_count=0))
    assert filled.column("passenger_count").null_count == 0 and report.rules == {"fill_null_passenger_count": 0}


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (
            YELLOW_2019.replace("trip_distance", "trip_miles"),
            r"unexpected columns \['trip_miles'\]; missing columns \['trip_distance'\]",
        ),
        (YELLOW_2019.replace(",fare_amount", ""), r"missing columns \['fare_amount'\]"),
        (YELLOW_2019 + ",tip_percent", r"unexpected columns \['tip_percent'\]"),
    ],
    ids=["renamed", "missing", "extra"],
)
def test_changed_header_is_refused_and_nothing_written(tmp_path: Path, header: str, message: str) -> None:
    dest = tmp_path / "out.parquet"
    with pytest.raises(SchemaMismatch, match=message):
        convert_month(gz(tmp_path, f"{header}\n{ROW_2021}\n"), dest, Month("yellow", 2021, 3))
    assert list(tmp_path.iterdir()) == [tmp_path / "m.csv.gz"]


@pytest.mark.parametrize(
    ("row", "message"),
    [
        (ROW_2021.replace(",1.50,", ",abc,"), "invalid value 'abc'"),
        (ROW_2021.replace("1.0,2021", "1.5,2021", 1), "not int"),
        (ROW_2021.replace("2021-03-01 00:10:00", "yesterday"), "invalid value 'yesterday'"),
        (ROW_2021.replace(",1.50,", ",inf,"), "NaN or an infinite value"),
        (ROW_2021.replace(",1.50,", ",-1e999,"), "NaN or an infinite value"),
    ],
    ids=["text-in-number", "fraction-in-id", "bad-timestamp", "infinite-amount", "overflowing-amount"],
)
def test_bad_values_fail_loudly(tmp_path: Path, row: str, message: str) -> None:
    dest = tmp_path / "out.parquet"
    with pytest.raises(DataError, match=message):
        convert_month(gz(tmp_path, f"{YELLOW_2019}\n{ROW_2021}\n{row}\n"), dest, Month("yellow", 2021, 3))
    assert not dest.exists() and list(tmp_path.iterdir()) == [tmp_path / "m.csv.gz"]


def test_far_future_timestamp_is_kept_and_counted(tmp_path: Path) -> None:
    row = ROW_2021.replace("2021-03-01 00:10:00", "3019-03-01 00:10:00")
    _, report = convert(tmp_path, gz(tmp_path, f"{YELLOW_2019}\n{row}\n"), "yellow", 2021, 3)
    assert report.out_of_month_pickups == 1 and report.pickup_max.startswith("3019")


@pytest.mark.parametrize(
    ("body", "error", "message"),
    [(b"", DataError, "empty"), (YELLOW_2019 + "\n", DataError, "no data rows")],
    ids=["empty", "header-only"],
)
def test_empty_inputs(tmp_path: Path, body: bytes | str, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        convert_month(gz(tmp_path, body), tmp_path / "out.parquet", Month("yellow", 2021, 3))
    assert not (tmp_path / "out.parquet").exists()


def test_truncated_gzip_is_corrupt(tmp_path: Path) -> None:
    body = gzip.compress((YELLOW_2019 + "\n" + (ROW_2021 + "\n") * 50_000).encode())
    src = tmp_path / "m.csv.gz"
    src.write_bytes(body[: len(body) // 2])
    with pytest.raises(CorruptSource):
        convert_month(src, tmp_path / "out.parquet", Month("yellow", 2021, 3))
    assert not (tmp_path / "out.parquet").exists()


def test_report_round_trips_through_json(tmp_path: Path) -> None:
    _, report = convert(tmp_path, sample(tmp_path, "green/green_tripdata_2019-01_head100.csv"), "green", 2019, 1)
    path = tmp_path / "report.json"
    quality.write(path, report)
    assert json.loads(path.read_text())["parquet"]["md5"] == report.parquet.md5
    assert quality.read(path) == report
    path.write_text(path.read_text().replace('"rows_written"', '"rows_lost"'))
    assert quality.read(path) is None  # a report missing a field is no report, never a KeyError later


def test_fingerprint_sums_are_exact_and_rounding_is_half_away_from_zero() -> None:
    """The warehouses' SQL rounds cents by sign(v) * floor(|v| + 0.5) (halves away from zero) and
    sums integers exactly; so must we."""
    from tlc.fingerprint import FingerprintCounter

    counter = FingerprintCounter("yellow")
    columns = schema.arrow_schema("yellow")
    big = 2**62  # two of these overflow int64: the sum must still be exact
    values = {
        "vendor_id": [big, big, None],
        "fare_amount": [0.005, -0.005, 0.285],  # x 100: 0.5, -0.5 and 28.499999999999996
        "store_and_fwd_flag": ["N", "é", None],
    }
    arrays = [pa.array(values.get(f.name, [None] * 3), f.type) for f in columns]
    counter.add(pa.RecordBatch.from_arrays(arrays, schema=columns))
    found = counter.result()
    assert found["vendor_id"] == {"n": 2, "sum": 2 * big}
    assert found["fare_amount"] == {"n": 3, "cents": 28}  # 0.5 -> 1, -0.5 -> -1, 28.49... -> 28
    assert found["store_and_fwd_flag"] == {"n": 2, "chars": 2}
