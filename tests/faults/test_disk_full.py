"""A full disk, for real: a small tmpfs under the data directory or under a Postgres tablespace.

Mounting needs CAP_SYS_ADMIN (root in this VM and in CI's container); where it is missing the
tests skip and say so. The filesystem is sized from the month's real file sizes so that the
stage under test is the one that hits ENOSPC; then it is grown (remount) and a plain rerun must
land the month exactly.
"""

from __future__ import annotations

import logging
import math
import subprocess
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import pytest

from tasks import DownloadCSV, ParquetFile, PostgresTable
from tests.conftest import let_server_user_in
from tests.faults.conftest import Sinks
from tests.faults.helpers import assert_lake_exact, error_messages, reference, temporaries
from tests.luigirun import run
from tests.sourceserver import SourceServer
from tlc import layout, refresh
from tlc.month import Month

pytestmark = pytest.mark.faults

MONTH = ("yellow", 2021, 1)
PAGE = 4096


@contextmanager
def tmpfs(path: Path, size: int, options: str = "") -> Iterator[Callable[[int], None]]:
    """Mount a tmpfs of ``size`` bytes at ``path``; yields ``grow(size)``; always unmounted."""
    path.mkdir(parents=True, exist_ok=True)
    mount = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}{options}", "tmpfs", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mount.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs CAP_SYS_ADMIN): {mount.stderr.strip()}")

    def grow(new_size: int) -> None:
        subprocess.run(["mount", "-o", f"remount,size={new_size}", str(path)], check=True)

    try:
        yield grow
    finally:
        subprocess.run(["umount", "--lazy", str(path)], check=False)


def pages(size: int) -> int:
    return math.ceil(size / PAGE) * PAGE


@pytest.fixture
def month(source: SourceServer, publish: Callable[..., Path]) -> Path:
    return publish(*MONTH, seed=21)


def _room(stage: str, src: Path, tmp_path: Path) -> int:
    """Bytes of filesystem that let every earlier stage finish and ``stage`` run out."""
    parquet = len(_parquet_bytes(src, tmp_path))
    before_parquet = pages(src.stat().st_size) + 2 * PAGE  # raw + its record + the manifest
    return {"download": PAGE * 4, "parquet": before_parquet + pages(parquet) // 2}[stage]


def _parquet_bytes(src: Path, tmp_path: Path) -> bytes:
    import pyarrow.parquet as pq

    out = tmp_path / "sizing.parquet"
    pq.write_table(reference(src, *MONTH), out, compression="zstd", compression_level=1)
    return out.read_bytes()


@pytest.mark.parametrize("stage", ["download", "parquet"])
def test_local_disk_full_leaves_nothing_done_and_rerun_is_exact(
    pipeline_env: Path, month: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture, stage: str
) -> None:
    with tmpfs(pipeline_env, _room(stage, month, tmp_path)) as grow:
        with caplog.at_level(logging.ERROR, logger="luigi-interface"):
            result = run([ParquetFile(color=MONTH[0], year=MONTH[1], month=MONTH[2])])
        assert not result.ok
        assert "No space left on device" in caplog.text
        if stage == "download":
            assert not DownloadCSV(color=MONTH[0], year=MONTH[1], month=MONTH[2]).complete()
        else:  # our disk, not the source's fault: the download stays, nothing is rejected
            assert DownloadCSV(color=MONTH[0], year=MONTH[1], month=MONTH[2]).complete()
            assert not (pipeline_env / "rejected").exists()
        assert not ParquetFile(color=MONTH[0], year=MONTH[1], month=MONTH[2]).complete()
        assert not layout.lake_path(pipeline_env, Month(*MONTH)).exists() and temporaries(pipeline_env) == []
        grow(64 << 20)  # space freed: a plain rerun
        assert run([ParquetFile(color=MONTH[0], year=MONTH[1], month=MONTH[2])]).ok
        assert_lake_exact(pipeline_env, *MONTH, month)


@pytest.mark.parametrize("stage", ["download", "parquet"])
def test_local_disk_full_is_reported_in_one_line_as_a_full_disk(
    pipeline_env: Path, month: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture, stage: str
) -> None:
    with tmpfs(pipeline_env, _room(stage, month, tmp_path)), caplog.at_level(logging.ERROR, logger="luigi-interface"):
        assert not run([ParquetFile(color=MONTH[0], year=MONTH[1], month=MONTH[2])]).ok
    [line] = error_messages(caplog.records)
    assert "No space left on device" in line and "\n" not in line
    assert "CorruptSource" not in line and "Traceback" not in caplog.text


def test_database_disk_full_mid_copy_keeps_the_previous_month(
    pipeline_env: Path,
    source: SourceServer,
    sinks: Sinks,
    publish: Callable[..., Path],
    tmp_path_factory: pytest.TempPathFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """New tables of the role go to a 128 KB tablespace: the COPY of a new release runs out of disk."""
    jan = publish(*MONTH, seed=1)
    task = PostgresTable(color=MONTH[0], year=MONTH[1], month=MONTH[2])
    assert run([task]).ok
    before = sinks.pg_rows(*MONTH)
    publish(*MONTH, seed=2)
    assert refresh.main(["--colors", "yellow", "--start", "2021-01", "--apply"]) == 0

    space = tmp_path_factory.mktemp("pgspace")
    let_server_user_in(space, tmp_path_factory.getbasetemp().parent)
    uid, gid = sinks.stack.dir.load_state()["postgres"]["run_as"] or (0, 0)
    with (
        tmpfs(space, 128 << 10, f",uid={uid},gid={gid},mode=0700"),
        closing(sinks.admin()) as admin,
        admin.cursor() as cur,
    ):
        cur.execute(f"CREATE TABLESPACE tlc_full LOCATION '{space}'")
        cur.execute("GRANT CREATE ON TABLESPACE tlc_full TO tlc")
        cur.execute("ALTER ROLE tlc SET default_tablespace = 'tlc_full'")
        try:
            with caplog.at_level(logging.ERROR, logger="luigi-interface"):
                assert not run([task]).ok
        finally:
            cur.execute("ALTER ROLE tlc RESET default_tablespace")
        [line] = error_messages(caplog.records)
        assert "PostgreSQL load of yellow 2021-01" in line and "No space left on device" in line
        assert "\n" not in line
        assert sinks.pg_rows(*MONTH) == before  # the previous release, untouched
        cur.execute("DROP TABLESPACE tlc_full")  # only possible when empty: the failed staging table is gone
    assert run([task]).ok
    sinks.assert_exact(pipeline_env, *MONTH, jan, sinks=("pg",))
