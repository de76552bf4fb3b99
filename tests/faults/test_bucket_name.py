"""The GCS bucket name, the one identifier that used to go unchecked (issue 14).

A bucket name from ``luigi.cfg`` or ``TLC_GCS_BUCKET`` reaches request URLs; a hostile or
mistyped one must be refused by name, in one line, before any request leaves the process,
like the dataset and schema names in ``test_params_config``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tasks import GCSObject, ParquetFile
from tests.faults.helpers import cli_env, luigi_args, run_cli
from tests.faults.test_params_config import Recorder
from tests.luigirun import run
from tests.sourceserver import SourceServer
from tlc.errors import InvalidInput

pytestmark = pytest.mark.faults

HOSTILE_BUCKETS = [
    "ab",  # too short
    "a" * 64,  # too long without dots
    "Tlc-Lake",  # upper case
    "-tlc-lake",  # starts with a dash
    "tlc-lake.",  # ends with a dot
    "tlc..lake",  # an empty dotted part
    "goog-lake",  # Google's prefix
    "my-google-lake",  # Google's name
    "192.168.1.10",  # an IP address
    "tlc lake",
    "tlc/lake",
    "tlc?x=1",
    "tlc-lake\n",
    "../tlc",
]


@pytest.fixture
def parquet_done(pipeline_env: Path, source: SourceServer, publish: Callable[..., Path]) -> Path:
    publish("yellow", 2021, 1)
    assert run([ParquetFile(color="yellow", year=2021, month=1)]).ok  # so complete() would really ask GCS
    return pipeline_env


@pytest.mark.parametrize("bucket", HOSTILE_BUCKETS, ids=lambda v: repr(v)[:24])
def test_hostile_bucket_is_refused_before_any_request(
    parquet_done: Path, monkeypatch: pytest.MonkeyPatch, bucket: str
) -> None:
    recorder = Recorder()
    try:
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", recorder.url)
        monkeypatch.setenv("TLC_GCS_BUCKET", bucket)
        task = GCSObject(color="yellow", year=2021, month=1)
        with pytest.raises(InvalidInput) as refused:
            task.complete()
        assert str(refused.value).startswith(f"bucket {bucket!r} is not valid: use a GCS bucket name")
        with pytest.raises(InvalidInput):
            task.run()
        assert recorder.connections == 0
    finally:
        recorder.close()


@pytest.mark.parametrize("bucket", ["tlc-lake", "tlc_lake.backup-2", "a" * 63, "x" * 40 + "." + "y" * 60])
def test_valid_bucket_names_pass(monkeypatch: pytest.MonkeyPatch, bucket: str) -> None:
    from tlc.config import GcsConfig

    monkeypatch.setenv("TLC_GCS_BUCKET", bucket)
    assert GcsConfig().bucket_name() == bucket


def test_hostile_bucket_through_the_cli_is_one_line_and_no_request(
    parquet_done: Path, cfg: dict, tmp_path: Path
) -> None:
    """As for a hostile dataset name, the refusal comes from the sink's complete(): luigi's
    scheduling-error exit code (35), one line, and no request."""
    recorder = Recorder()
    try:
        env = cli_env(cfg, tmp_path, STORAGE_EMULATOR_HOST=recorder.url, TLC_GCS_BUCKET="tlc;rm -rf")
        args = ("IngestMonth", "--color", "yellow", "--year", "2021", "--month", "1")
        proc = run_cli(luigi_args(*args, lock_dir=tmp_path, module="tasks"), env)
        output = proc.stdout + proc.stderr
        assert proc.returncode == 35, output[-3000:]
        assert "Traceback" not in output, output[-3000:]
        [line] = [x for x in output.splitlines() if "error in complete() method" in x]
        assert "InvalidInput: bucket 'tlc;rm -rf' is not valid" in line
        assert recorder.connections == 0
    finally:
        recorder.close()


HOSTILE_PREFIXES = [
    "",
    "/",
    "lake//v1",
    "../lake",
    "lake/..",
    ".hidden",
    "la ke",
    "lake?x=1",
    "lake#1",
    "lake%2F",
    "x" * 101,
]


@pytest.mark.parametrize("prefix", HOSTILE_PREFIXES, ids=lambda v: repr(v)[:24])
def test_hostile_prefix_is_refused_by_name(prefix: str) -> None:
    """The ``[gcs] prefix`` names every object the lake writes: an empty or odd segment would put
    months where no listing finds them, so it is refused like the bucket."""
    from tlc.config import GcsConfig

    with pytest.raises(InvalidInput) as refused:
        GcsConfig(prefix=prefix).lake_prefix()
    assert str(refused.value).startswith(f"prefix {prefix!r} is not valid: use one or more /-separated segments")


@pytest.mark.parametrize(("prefix", "kept"), [("lake", "lake"), ("/team/lake-2/", "team/lake-2"), ("a.b_c", "a.b_c")])
def test_valid_prefixes_pass_without_outer_slashes(prefix: str, kept: str) -> None:
    from tlc.config import GcsConfig

    assert GcsConfig(prefix=prefix).lake_prefix() == kept
