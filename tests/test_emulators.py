"""The local GCS and BigQuery emulators behave the way the pipeline relies on.

These run the real google-cloud-storage and google-cloud-bigquery clients against
fake-gcs-server and bqemulator started by ``scripts.stack``, and assert on data read back,
so a change of emulator version that breaks a load or the transactional month replace is
caught here rather than inside a Luigi task. The first run builds ``.venv-emu`` (~40 s).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import google_crc32c
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from google.api_core import exceptions as gexc
from google.auth.credentials import AnonymousCredentials
from google.cloud import bigquery, storage

from scripts.stack import Stack

SCHEMA = [
    bigquery.SchemaField("vendor_id", "INT64"),
    bigquery.SchemaField("fare_amount", "FLOAT64"),
    bigquery.SchemaField("store_and_fwd_flag", "STRING"),
    bigquery.SchemaField("pickup_datetime", "TIMESTAMP"),
    bigquery.SchemaField("source_month", "DATE"),
]
JAN, FEB = dt.date(2021, 1, 1), dt.date(2021, 2, 1)


@pytest.fixture(scope="module")
def stack_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    stack = Stack(tmp_path_factory.mktemp("stack"))
    try:
        yield stack.up(("gcs", "bigquery"))
    finally:
        stack.down()


@pytest.fixture(scope="module")
def gcs(stack_env: dict[str, str]) -> storage.Client:
    # client_options rather than STORAGE_EMULATOR_HOST so the test leaves os.environ alone.
    return storage.Client(
        project="local",
        credentials=AnonymousCredentials(),
        client_options={"api_endpoint": stack_env["STORAGE_EMULATOR_HOST"]},
    )


@pytest.fixture(scope="module")
def bq(stack_env: dict[str, str]) -> bigquery.Client:
    return bigquery.Client(
        project=stack_env["TLC_BIGQUERY_PROJECT"],
        credentials=AnonymousCredentials(),
        client_options={"api_endpoint": stack_env["TLC_BIGQUERY_ENDPOINT"]},
    )


@pytest.fixture(scope="module")
def bucket(gcs: storage.Client) -> storage.Bucket:
    return gcs.create_bucket(f"tlc-test-{uuid.uuid4().hex[:8]}")


@pytest.fixture(scope="module")
def dataset(bq: bigquery.Client) -> str:
    ds = bq.create_dataset(f"{bq.project}.tlc_test", exists_ok=True)
    return f"{ds.project}.{ds.dataset_id}"


def _b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode()


def _trips(month: dt.date, n: int, fare_base: float = 0.0) -> pa.Table:
    """Rows shaped like the pipeline's Parquet, columns in table order (loads are positional)."""
    return pa.table(
        {
            "vendor_id": pa.array([None if i % 3 == 0 else i for i in range(n)], pa.int64()),
            "fare_amount": pa.array([fare_base + i for i in range(n)], pa.float64()),
            "store_and_fwd_flag": pa.array([None if i % 2 else "N" for i in range(n)], pa.string()),
            "pickup_datetime": pa.array(
                [dt.datetime(month.year, month.month, 1, 0, 0, 1, 250) + dt.timedelta(hours=i) for i in range(n)],
                pa.timestamp("us", tz="UTC"),
            ),
            "source_month": pa.array([month] * n, pa.date32()),
        }
    )


def _stage(bucket: storage.Bucket, tmp_path: Path, name: str, table: pa.Table) -> str:
    local = tmp_path / name
    pq.write_table(table, local)
    bucket.blob(f"staged/{name}").upload_from_filename(str(local))
    return f"gs://{bucket.name}/staged/{name}"


def _load(bq: bigquery.Client, uri: str, table: str, disposition: str) -> None:
    config = bigquery.LoadJobConfig(
        source_format=bigquery.SourceFormat.PARQUET, write_disposition=disposition, schema=SCHEMA
    )
    bq.load_table_from_uri(uri, table, job_config=config).result(timeout=60)


def _counts(bq: bigquery.Client, table: str) -> dict[dt.date, int]:
    rows = bq.query(
        f"SELECT source_month, COUNT(*) AS n FROM `{table}` GROUP BY source_month ORDER BY source_month"
    ).result(timeout=60)
    return {r["source_month"]: r["n"] for r in rows}


def _partitioned_table(bq: bigquery.Client, table_id: str) -> bigquery.Table:
    table = bigquery.Table(table_id, schema=SCHEMA)
    table.time_partitioning = bigquery.TimePartitioning(type_=bigquery.TimePartitioningType.MONTH, field="source_month")
    table.clustering_fields = ["vendor_id"]
    return bq.create_table(table, exists_ok=True)


def test_resumable_upload_keeps_checksums_and_metadata(bucket: storage.Bucket, tmp_path: Path) -> None:
    data = os.urandom(9 * 1024 * 1024)  # > 8 MiB: the client switches to a resumable upload
    local = tmp_path / "big.csv.gz"
    local.write_bytes(data)
    blob = bucket.blob("raw/yellow/yellow_tripdata_2021-01.csv.gz")
    blob.metadata = {"sha256": hashlib.sha256(data).hexdigest()}
    blob.upload_from_filename(str(local), if_generation_match=0, checksum="crc32c")

    stored = bucket.get_blob(blob.name)
    assert stored.size == len(data)
    assert stored.crc32c == _b64(google_crc32c.Checksum(data).digest())
    assert stored.md5_hash == _b64(hashlib.md5(data).digest())  # noqa: S324 - GCS's own hash
    assert stored.metadata == {"sha256": hashlib.sha256(data).hexdigest()}
    assert stored.download_as_bytes(checksum="crc32c") == data


def test_create_only_upload_preconditions(bucket: storage.Bucket, tmp_path: Path) -> None:
    """Multipart (<= 8 MiB) uploads honour ifGenerationMatch=0; resumable ones do not here.

    fake-gcs-server v1.54.0 drops preconditions on resumable uploads (fixed upstream later),
    so code that must not overwrite a large object has to check existence itself locally.
    This test pins that gap so an emulator upgrade that fixes it is noticed.
    """
    small = bucket.blob("markers/_SUCCESS")
    small.upload_from_string(b"1", if_generation_match=0)
    with pytest.raises(gexc.PreconditionFailed):
        bucket.blob(small.name).upload_from_string(b"2", if_generation_match=0)
    assert bucket.blob(small.name).download_as_bytes() == b"1"

    big = tmp_path / "big.bin"
    big.write_bytes(b"x" * (9 * 1024 * 1024))
    bucket.blob("raw/big.bin").upload_from_filename(str(big), if_generation_match=0)
    bucket.blob("raw/big.bin").upload_from_filename(str(big), if_generation_match=0)  # no 412


def test_parquet_load_from_gcs_into_partitioned_table(
    bq: bigquery.Client, dataset: str, bucket: storage.Bucket, tmp_path: Path
) -> None:
    table_id = f"{dataset}.trips_load"
    bq.delete_table(table_id, not_found_ok=True)
    created = _partitioned_table(bq, table_id)
    assert created.time_partitioning.type_ == "MONTH"
    assert created.time_partitioning.field == "source_month"

    _load(bq, _stage(bucket, tmp_path, "jan.parquet", _trips(JAN, 5)), table_id, "WRITE_APPEND")
    _load(bq, _stage(bucket, tmp_path, "feb.parquet", _trips(FEB, 3)), table_id, "WRITE_APPEND")

    assert _counts(bq, table_id) == {JAN: 5, FEB: 3}
    first = next(iter(bq.query(f"SELECT * FROM `{table_id}` ORDER BY pickup_datetime LIMIT 1").result()))
    assert first["vendor_id"] is None
    assert first["store_and_fwd_flag"] == "N"
    assert first["pickup_datetime"] == dt.datetime(2021, 1, 1, 0, 0, 1, 250, tzinfo=dt.UTC)
    assert first["source_month"] == JAN
    assert bq.get_table(table_id).num_rows == 8


def test_transactional_month_replace(bq: bigquery.Client, dataset: str, bucket: storage.Bucket, tmp_path: Path) -> None:
    table_id, staging_id = f"{dataset}.trips_replace", f"{dataset}.trips_replace_staging"
    bq.delete_table(table_id, not_found_ok=True)
    _partitioned_table(bq, table_id)
    _load(bq, _stage(bucket, tmp_path, "r-jan.parquet", _trips(JAN, 4)), table_id, "WRITE_APPEND")
    _load(bq, _stage(bucket, tmp_path, "r-feb.parquet", _trips(FEB, 2)), table_id, "WRITE_APPEND")
    # A revised January arrives: 6 rows that replace the 4 already loaded.
    _load(bq, _stage(bucket, tmp_path, "r-jan2.parquet", _trips(JAN, 6, fare_base=100)), staging_id, "WRITE_TRUNCATE")

    def replace(source: str) -> None:
        bq.query(f"""BEGIN TRANSACTION;
            DELETE FROM `{table_id}` WHERE source_month = DATE '{JAN.isoformat()}';
            INSERT INTO `{table_id}` SELECT * FROM `{source}`;
            COMMIT TRANSACTION;""").result(timeout=60)

    replace(staging_id)
    replace(staging_id)  # a retried task must not duplicate the month
    assert _counts(bq, table_id) == {JAN: 6, FEB: 2}
    fares = [
        r["fare_amount"]
        for r in bq.query(f"SELECT fare_amount FROM `{table_id}` WHERE source_month = DATE '2021-01-01'").result()
    ]
    assert min(fares) == 100.0

    # The INSERT fails after the DELETE ran: the whole transaction is rolled back.
    with pytest.raises(gexc.NotFound):
        replace(f"{dataset}.no_such_staging")
    assert _counts(bq, table_id) == {JAN: 6, FEB: 2}

    bq.delete_table(staging_id, not_found_ok=True)
    bq.delete_table(staging_id, not_found_ok=True)
    with pytest.raises(gexc.NotFound):
        bq.get_table(staging_id)
