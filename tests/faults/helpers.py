"""Checks shared by the fault tests: what "nothing partial" and "exactly the right rows" mean.

"Exact" is always judged against an independent reference: the published CSV converted
afresh by ``convert_month`` into a scratch directory, then compared value by value (the
Parquet table must be equal; every sink must hold the same multiset of rows). Nothing here
trusts a task's own ``complete()``.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pyarrow as pa
import pyarrow.parquet as pq

from tests.conftest import ROOT
from tlc import layout
from tlc.gcs.lake import Lake
from tlc.lake.convert import convert_month
from tlc.lake.target import LakeParquet
from tlc.month import Month

T = TypeVar("T")
LUIGI = Path(sys.executable).with_name("luigi")
ROWS = 2000  # rows per published month: small, but several COPY chunks and row groups


def poll(check: Callable[[], T], what: str, timeout: float = 30.0, interval: float = 0.05) -> T:
    """Poll ``check()`` until it returns something truthy; an AssertionError (never a hang) after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def temporaries(root: Path) -> list[Path]:
    """Temporary files of atomic writers (``.<name>.tmp-<host>-<pid>-<hex>``) anywhere under ``root``."""
    return sorted(p for p in root.rglob(".*.tmp-*")) if root.exists() else []


def files(root: Path) -> list[Path]:
    """Every regular file under ``root`` (lock files of the ledger included)."""
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


@functools.lru_cache(maxsize=32)
def _reference(sha256: str, src: str, color: str, year: int, month: int) -> pa.Table:
    with tempfile.TemporaryDirectory() as scratch:
        dest = Path(scratch) / "reference.parquet"
        convert_month(Path(src), dest, Month(color, year, month))
        return pq.read_table(dest)


def reference(src: Path, color: str, year: int, month: int) -> pa.Table:
    """The month as an independent conversion of the published file sees it (cached by content)."""
    return _reference(hashlib.sha256(src.read_bytes()).hexdigest(), str(src), color, year, month)


def row_counter(table: pa.Table) -> Counter:
    """A table as a multiset of row tuples: equal counters mean no row lost, added or changed."""
    return Counter(zip(*(table.column(n).to_pylist() for n in table.column_names), strict=True))


def assert_lake_exact(data: Path, color: str, year: int, month: int, src: Path) -> pa.Table:
    """The lake holds exactly the published file: its raw zone the source's bytes, its Parquet (staged
    or published) an independent conversion of them, its report their counts and checksums; this
    host's cache, where present, the same bytes."""
    unit, lake = Month(color, year, month), Lake.from_config()
    raw = lake.get(layout.raw_key(unit))
    assert raw is not None and raw.download_as_bytes() == src.read_bytes(), "raw zone differs from the published file"
    report = LakeParquet(lake, data, unit, {}).report()
    assert report is not None, "no quality report in the lake"
    stored = LakeParquet(lake, data, unit, report.rules).stored(report)
    assert stored is not None, "the Parquet the report describes is not in the lake"
    body = stored.download_as_bytes()
    table = pq.read_table(pa.BufferReader(body))
    expected = reference(src, color, year, month)
    assert table.equals(expected), "Parquet differs from an independent conversion of the source"
    assert report.rows_written == report.rows_read == expected.num_rows
    assert report.source.sha256 == hashlib.sha256(src.read_bytes()).hexdigest()
    assert report.parquet.sha256 == hashlib.sha256(body).hexdigest()
    for cached, truth in ((layout.raw_path(data, unit), src.read_bytes()), (layout.lake_path(data, unit), body)):
        assert not cached.exists() or cached.read_bytes() == truth, f"cache {cached} differs from the lake"
    assert temporaries(data) == [], f"stale temporaries left: {temporaries(data)}"
    return table


def cli_env(cfg: dict[tuple[str, str], str], workdir: Path, **extra: str) -> dict[str, str]:
    """Environment for a ``luigi`` subprocess that sees the same settings as the in-process tasks.

    The ``cfg`` fixture's overrides are written to a config file passed as LUIGI_CONFIG_PATH
    (read after ./luigi.cfg, so it wins); endpoints already exported by the fixtures are inherited.
    """
    sections: dict[str, list[str]] = {}
    for (section, key), value in cfg.items():
        sections.setdefault(section, []).append(f"{key} = {value}")
    text = "".join(f"[{s}]\n" + "\n".join(lines) + "\n\n" for s, lines in sections.items())
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "faults-luigi.cfg"
    path.write_text(text)
    env = {**os.environ, "LUIGI_CONFIG_PATH": str(path), "PYTHONPATH": str(ROOT)}
    env.update(extra)
    return env


def luigi_args(*args: str, lock_dir: Path, module: str = "tests.faults.hooks", local: bool = True) -> list[str]:
    cmd = [str(LUIGI), "--module", module, *args, "--lock-pid-dir", str(lock_dir)]
    return [*cmd, "--local-scheduler"] if local else cmd


def run_cli(cmd: list[str], env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env, timeout=timeout, check=False)


def start_cli(cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    """A CLI run in a session of its own, so SIGKILL reaches its forked workers too."""
    with open(log, "wb") as out:
        return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def kill_hard(proc: subprocess.Popen) -> None:
    """SIGKILL the run and every process of its session: no cleanup code of ours gets to run."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


def finish(proc: subprocess.Popen, log: Path, timeout: float = 120) -> int:
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_hard(proc)
        raise AssertionError(f"luigi CLI did not finish in {timeout}s:\n{log.read_text()[-3000:]}") from None


def error_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("ERROR")]


def one_clear_line(output: str, *needles: str) -> str:
    """The run said what went wrong in exactly one ERROR line holding ``needles``, with no traceback."""
    errors = error_lines(output)
    assert "Traceback" not in output, output[-3000:]
    assert len(errors) == 1, f"expected one ERROR line, got {errors}\n{output[-3000:]}"
    for needle in needles:
        assert needle in errors[0], f"{needle!r} not in {errors[0]!r}"
    return errors[0]


def error_messages(records: list[Any]) -> list[str]:
    """ERROR messages luigi logged in-process (after the project's one-line filter ran)."""
    return [r.getMessage() for r in records if r.levelname == "ERROR" and r.name == "luigi-interface"]
