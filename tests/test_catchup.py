"""The cron command: IngestCatchUp through the real CLI, exit codes included."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import psycopg2

from scripts.make_sample_data import write_month
from tests.conftest import ROOT
from tests.sourceserver import SourceServer


def catch_up(env: dict[str, str], dataset: str) -> subprocess.CompletedProcess:
    luigi = Path(sys.executable).with_name("luigi")
    cmd = [str(luigi), "--module", "tasks", "IngestCatchUp", "--colors", "yellow", "--window", "4",
           "--until", "2021-04", "--local-scheduler", "--tlc.bigquery-dataset", dataset,
           "--tlc.source-backoff-seconds", "0.01", "--tlc.source-attempts", "2"]  # fmt: skip
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=240, check=False)


def test_catch_up_skips_unpublished_months_and_fails_loudly(
    pipeline_env: Path, gcp_env: dict, pg_server: dict, source: SourceServer, source_dir: Path, monkeypatch
) -> None:
    for key, value in pg_server.items():
        monkeypatch.setenv(key, value)
    with closing(psycopg2.connect()) as conn, conn.cursor() as cur:
        cur.execute("DROP SCHEMA IF EXISTS tlc CASCADE")
        conn.commit()
    for month in (1, 2):  # 2021-03 and 2021-04 are not published yet
        write_month(source_dir, "yellow", 2021, month, rows=800, seed=month)
    env = dict(os.environ)

    first = catch_up(env, gcp_env["dataset"])
    assert first.returncode == 0, first.stderr[-3000:]
    assert "not published yet, skipped: yellow 2021-03, yellow 2021-04" in first.stderr
    assert "- 2 IngestMonth(color=yellow, year=2021, month=1) and IngestMonth(color=yellow, year=2021, month=2)" in (
        first.stderr
    )
    with closing(psycopg2.connect()) as conn, conn.cursor() as cur:
        cur.execute("SELECT source_month, count(*) FROM tlc.yellow_tripdata GROUP BY 1 ORDER BY 1")
        assert [(d.month, n) for d, n in cur.fetchall()] == [(1, 800), (2, 800)]

    again = catch_up(env, gcp_env["dataset"])
    assert again.returncode == 0 and "ran successfully" not in again.stderr

    march = write_month(source_dir, "yellow", 2021, 3, rows=800, seed=3)  # published, but broken
    march.write_bytes(march.read_bytes()[: march.stat().st_size // 2])
    failed = catch_up(env, gcp_env["dataset"])
    assert failed.returncode == 30
    assert "CorruptSource: gzip stream is truncated" in failed.stderr
    assert "Traceback" not in failed.stderr

    write_month(source_dir, "yellow", 2021, 3, rows=800, seed=3)  # fixed upstream
    assert gzip.decompress(march.read_bytes())  # whole again
    fixed = catch_up(env, gcp_env["dataset"])
    assert fixed.returncode == 0, fixed.stderr[-3000:]
    assert "skipped: yellow 2021-04" in fixed.stderr
