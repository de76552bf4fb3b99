"""luigid, the central scheduler, against real ``luigi`` CLI runs and a real headless browser.

One luigid is started per module through the stack (``Stack.up(("luigid",))``, about 0.5 s).
The tasks below are throwaway stand-ins for the pipeline (a month task writing a LocalTarget
and a range wrapper over months) so the tests exercise the scheduler itself, not the sinks:
they are imported by the ``luigi`` subprocesses with ``--module tests.test_luigid``. Every
test uses its own ``root`` parameter, hence its own task ids in the shared scheduler.

The visualiser test needs Debian's Chromium at /usr/bin/chromium (``scripts/install_chromium.sh``,
which ``make test`` runs first) and leaves its screenshot in ``test-artifacts/``.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import luigi
import pytest

from tests.browser import ARTIFACTS, chromium, require_chromium

REPO = Path(__file__).resolve().parents[1]
LUIGI = Path(sys.executable).with_name("luigi")
RANGE = ("2024-01", "2024-06")  # six months
MONTHS = [f"2024-{m:02d}" for m in range(1, 7)]


def _wait_for(path: Path, timeout: float = 30.0) -> None:
    """Poll for a file the test creates; a task must never hang the suite if the test dies."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} never appeared")
        time.sleep(0.05)


# --- throwaway tasks, run by the luigi CLI subprocesses -------------------------------------


class ThrowawayMonth(luigi.Task):
    """One month of fake work. Every run appends a line to ``runs/<month>.log`` before writing
    its output, so a task run twice (by two workers) leaves two lines there."""

    root = luigi.Parameter()
    month = luigi.MonthParameter()
    # Long enough that the two workers of one CLI run overlap; not part of the task id.
    work_seconds = luigi.FloatParameter(default=0.4, significant=False)
    # When set, run() waits for ``<root>/go`` before working: the concurrency test holds the
    # first tasks RUNNING until both CLI runs have registered with luigid.
    gated = luigi.BoolParameter(default=False, significant=False)

    def output(self) -> luigi.LocalTarget:
        return luigi.LocalTarget(str(Path(self.root) / "out" / f"{self.month:%Y-%m}.txt"))

    def run(self) -> None:
        runs = Path(self.root) / "runs"
        runs.mkdir(parents=True, exist_ok=True)
        with open(runs / f"{self.month:%Y-%m}.log", "a") as log:
            # With --workers > 1 a task runs in a child forked by the CLI process: ppid names the run.
            log.write(f"{os.getppid()}\n")
        self.set_status_message(f"working on {self.month:%Y-%m}")
        if self.gated:
            _wait_for(Path(self.root) / "go")
        time.sleep(self.work_seconds)  # simulated work, not a wait for anything
        with self.output().open("w") as out:
            out.write(f"{self.month:%Y-%m}\n")


class ThrowawayRange(luigi.WrapperTask):
    """The range wrapper, shaped like IngestRange: complete when every month is."""

    root = luigi.Parameter()
    start = luigi.MonthParameter()
    stop = luigi.MonthParameter()  # inclusive
    gated = luigi.BoolParameter(default=False, significant=False)

    def requires(self) -> list[ThrowawayMonth]:
        first = self.start.year * 12 + self.start.month - 1
        last = self.stop.year * 12 + self.stop.month - 1
        return [
            ThrowawayMonth(root=self.root, month=date(n // 12, n % 12 + 1, 1), gated=self.gated)
            for n in range(first, last + 1)
        ]


class ThrowawayProgress(luigi.Task):
    """Reports progress and a status message, then holds RUNNING until the test releases it
    (by creating ``release``), so the test can read the values from luigid while it runs."""

    root = luigi.Parameter()

    def output(self) -> luigi.LocalTarget:
        return luigi.LocalTarget(str(Path(self.root) / "progress.done"))

    def run(self) -> None:
        self.set_status_message("rows 3000/6000 loaded")
        self.set_progress_percentage(50)
        _wait_for(Path(self.root) / "release")
        self.set_progress_percentage(100)
        with self.output().open("w") as out:
            out.write("done\n")


# --- helpers ---------------------------------------------------------------------------------

# The project's exit codes ([retcode] in luigi.cfg), in a config of the tests' own so that the
# runs do not depend on the repo's luigi.cfg. rpc-retry-wait: fail in seconds, not minutes,
# should luigid be unreachable.
CLIENT_CFG = """\
[core]
autoload_range = false
rpc-retry-wait = 1
[retcode]
already_running = 10
missing_data = 20
not_run = 25
task_failed = 30
scheduling_error = 35
unhandled_exception = 40
"""
ALREADY_RUNNING, NOT_RUN = 10, 25


@dataclass
class Luigid:
    url: str  # LUIGI_SCHEDULER_URL
    ui: str  # TLC_UI_URL
    workdir: Path  # cwd of the CLI runs, holding CLIENT_CFG as luigi.cfg
    startup_seconds: float

    def api(self, method: str, **params: Any) -> Any:
        """One call of luigid's JSON API (GET /api/<method>?data=<json>), unwrapped."""
        query = urllib.parse.urlencode({"data": json.dumps(params)})
        with urllib.request.urlopen(f"{self.url}api/{method}?{query}", timeout=10) as resp:
            return json.load(resp)["response"]

    def tasks(self, root: Path, status: str = "") -> dict[str, dict]:
        """The tasks of one test (by their ``root`` parameter), optionally of one status."""
        listed = self.api("task_list", status=status, search=None, limit=False)
        return {tid: t for tid, t in listed.items() if t["params"].get("root") == str(root)}

    def cli(self, *args: str, workers: int = 1, extra: tuple[str, ...] = ()) -> list[str]:
        """A ``luigi`` command line against this luigid: --scheduler-url, hence no local scheduler."""
        return [
            str(LUIGI),
            "--module",
            "tests.test_luigid",
            *args,
            "--workers",
            str(workers),
            "--scheduler-url",
            self.url,
            "--lock-pid-dir",
            str(self.workdir / "locks"),
            "--log-level",
            "INFO",
            *extra,
        ]

    def popen(self, cmd: list[str], log: Path) -> subprocess.Popen:
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        env.pop("LUIGI_CONFIG_PATH", None)
        with open(log, "wb") as out:
            return subprocess.Popen(cmd, cwd=self.workdir, env=env, stdout=out, stderr=subprocess.STDOUT)


def _poll(check: Any, what: str, timeout: float = 30.0) -> Any:
    """Poll ``check()`` until it returns something truthy; AssertionError (not a hang) otherwise.
    Unlike scripts.stack.base.wait_until it lets exceptions through, so a check can fail fast."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def _finish(proc: subprocess.Popen, log: Path, timeout: float = 60) -> int:
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise AssertionError(f"luigi CLI did not finish in {timeout}s:\n{log.read_text()[-3000:]}") from None


def _range_ids(root: Path) -> tuple[str, list[str]]:
    """Task ids as the CLI computes them (family + significant params), computed in-process."""
    wrapper = ThrowawayRange(root=str(root), start=date(2024, 1, 1), stop=date(2024, 6, 1))
    return wrapper.task_id, [t.task_id for t in wrapper.requires()]


def _max_overlap(intervals: list[tuple[float, float]]) -> int:
    """How many of the (start, end) intervals ran at the same time, at most."""
    events = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals])
    best = current = 0
    for _, step in events:
        current += step
        best = max(best, current)
    return best


def _png_pixels(data: bytes) -> tuple[int, int, list[bytes]]:
    """Decode an 8-bit, non-interlaced RGB/RGBA PNG (what Chromium writes) into rows of
    RGB(A) bytes: enough to look at the screenshot's colours without an imaging library."""
    import zlib

    import numpy as np

    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, header = 8, b"", None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        body = data[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
    assert header is not None, "PNG without IHDR"
    width, height, depth, colour, _, _, interlace = header
    assert depth == 8 and colour in (2, 6) and interlace == 0, f"unexpected PNG format {header}"
    bpp = 3 if colour == 2 else 4
    stride = width * bpp
    raw = zlib.decompress(idat)
    prev = np.zeros(stride, dtype=np.uint8)
    rows: list[bytes] = []
    for r in range(height):
        kind = raw[r * (stride + 1)]
        line = np.frombuffer(raw, dtype=np.uint8, count=stride, offset=r * (stride + 1) + 1)
        if kind == 0:
            cur = line.copy()
        elif kind == 1:  # Sub: a running sum per channel
            cur = np.cumsum(line.reshape(width, bpp), axis=0, dtype=np.uint8).reshape(-1)
        elif kind == 2:  # Up
            cur = line + prev
        else:  # Average (3) and Paeth (4) depend on the byte just decoded: a plain loop
            out = bytearray(stride)
            up = prev.tobytes()
            for i, x in enumerate(line.tobytes()):
                a = out[i - bpp] if i >= bpp else 0
                b = up[i]
                if kind == 3:
                    out[i] = (x + (a + b) // 2) & 0xFF
                    continue
                c = up[i - bpp] if i >= bpp else 0
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                out[i] = (x + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
            cur = np.frombuffer(bytes(out), dtype=np.uint8)
        rows.append(cur.tobytes())
        prev = cur
    return width, height, rows


def _blobs(width: int, rows: list[bytes], rgb: bytes) -> list[tuple[int, int, int]]:
    """Connected areas of exactly one colour, as (x, y, pixel count): the graph's nodes."""
    bpp = len(rows[0]) // width
    points = {(i // bpp, y) for y, row in enumerate(rows) for i in range(0, len(row), bpp) if row[i : i + 3] == rgb}
    blobs = []
    while points:
        stack = [points.pop()]
        members = []
        while stack:
            x, y = stack.pop()
            members.append((x, y))
            for n in ((x + 1, y), (x - 1, y), (x, y + 1), (x, y - 1)):
                if n in points:
                    points.remove(n)
                    stack.append(n)
        xs, ys = zip(*members, strict=True)
        blobs.append((sum(xs) // len(xs), sum(ys) // len(ys), len(members)))
    return blobs


# --- fixtures --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def luigid(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Luigid]:
    from scripts.stack import Stack

    stack = Stack(tmp_path_factory.mktemp("luigid-stack"))
    workdir = tmp_path_factory.mktemp("luigid-cli")
    (workdir / "luigi.cfg").write_text(CLIENT_CFG)
    try:
        began = time.monotonic()
        env = stack.up(("luigid",))
        yield Luigid(env["LUIGI_SCHEDULER_URL"], env["TLC_UI_URL"], workdir, time.monotonic() - began)
    finally:
        stack.down()


@dataclass
class RangeRun:
    root: Path
    wrapper_id: str
    month_ids: list[str]
    pid: int
    returncode: int
    log: Path


@pytest.fixture(scope="module")
def range_run(luigid: Luigid, tmp_path_factory: pytest.TempPathFactory) -> RangeRun:
    """The six-month range run once through luigid by one CLI with two worker processes."""
    root = tmp_path_factory.mktemp("range")
    log = root.parent / f"{root.name}.log"
    cmd = luigid.cli("ThrowawayRange", "--root", str(root), "--start", RANGE[0], "--stop", RANGE[1], workers=2)
    proc = luigid.popen(cmd, log)
    rc = _finish(proc, log)
    return RangeRun(root, *_range_ids(root), proc.pid, rc, log)


# --- tests -----------------------------------------------------------------------------------


def test_luigid_starts_quickly_and_serves_the_ui(luigid: Luigid) -> None:
    assert luigid.startup_seconds < 10, f"luigid took {luigid.startup_seconds:.1f}s to answer"
    assert luigid.api("is_paused") == {"paused": False}
    with urllib.request.urlopen(luigid.ui, timeout=10) as resp:
        assert resp.status == 200
        assert b"visualiserApp" in resp.read()


def test_range_runs_through_luigid_with_two_workers(luigid: Luigid, range_run: RangeRun) -> None:
    assert range_run.returncode == 0, range_run.log.read_text()[-3000:]
    done = luigid.tasks(range_run.root, status="DONE")
    assert set(done) == {range_run.wrapper_id, *range_run.month_ids}
    assert done[range_run.wrapper_id]["name"] == "ThrowawayRange"
    assert sorted(done[t]["params"]["month"] for t in range_run.month_ids) == MONTHS
    assert not luigid.tasks(range_run.root, status="PENDING")

    # Really run (once each, outputs written), and by this CLI's worker with 2 processes.
    for month in MONTHS:
        assert (range_run.root / "out" / f"{month}.txt").read_text() == f"{month}\n"
        assert (range_run.root / "runs" / f"{month}.log").read_text() == f"{range_run.pid}\n"
    workers = [w for w in luigid.api("worker_list") if w["first_task"] == range_run.wrapper_id]
    assert [(w["pid"], w["workers"]) for w in workers] == [(range_run.pid, 2)]
    assert {done[t]["worker_running"] for t in range_run.month_ids} == {workers[0]["name"]}
    # luigid saw two months RUNNING at once, never more: the two worker processes.
    spans = [(done[t]["time_running"], done[t]["last_updated"]) for t in range_run.month_ids]
    assert _max_overlap(spans) == 2


def test_two_concurrent_runs_process_each_task_once(luigid: Luigid, tmp_path: Path) -> None:
    root = tmp_path / "range"
    args = ("ThrowawayRange", "--root", str(root), "--start", RANGE[0], "--stop", RANGE[1], "--gated")
    # --no-lock: luigi's pid lock would otherwise turn the second identical command line away
    # at once (exit 10) and the scheduler would never see it.
    cmd = luigid.cli(*args, workers=2, extra=("--no-lock",))
    logs = [tmp_path / "run1.log", tmp_path / "run2.log"]
    procs = [luigid.popen(cmd, log) for log in logs]
    try:
        # The gated months hold RUNNING until both runs own some: 2 worker processes each.
        def both_running() -> bool:
            for proc, log in zip(procs, logs, strict=True):
                assert proc.poll() is None, f"a run ended early:\n{log.read_text()[-3000:]}"
            running = luigid.tasks(root, status="RUNNING").values()
            return len({t["worker_running"] for t in running}) == 2 and len(running) == 4

        _poll(both_running, "both CLI runs to hold two running months each")
        (root / "go").touch()
        codes = [_finish(proc, log) for proc, log in zip(procs, logs, strict=True)]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()

    wrapper_id, month_ids = _range_ids(root)
    assert set(luigid.tasks(root, status="DONE")) == {wrapper_id, *month_ids}
    runners = []
    for month in MONTHS:
        lines = (root / "runs" / f"{month}.log").read_text().splitlines()
        assert len(lines) == 1, f"{month} ran {len(lines)} times: {lines}"
        runners.append(int(lines[0]))
    assert set(runners) == {p.pid for p in procs}, "both runs should have done part of the range"
    # Neither run did the whole range itself, which luigi reports as "not granted run
    # permission" (not_run) or "run by another worker" (already_running), never as success.
    for code, log in zip(codes, logs, strict=True):
        assert code in (ALREADY_RUNNING, NOT_RUN), f"exit {code}:\n{log.read_text()[-3000:]}"


def test_progress_and_status_message_reach_luigid(luigid: Luigid, tmp_path: Path) -> None:
    task_id = ThrowawayProgress(root=str(tmp_path)).task_id
    log = tmp_path / "progress.log"
    proc = luigid.popen(luigid.cli("ThrowawayProgress", "--root", str(tmp_path)), log)
    try:

        def at_half() -> dict | None:
            task = luigid.tasks(tmp_path, status="RUNNING").get(task_id)
            return task if task and task["progress_percentage"] == 50 else None

        running = _poll(at_half, "ThrowawayProgress to report 50% while RUNNING")
        assert running["status_message"] == "rows 3000/6000 loaded"
        # The dedicated getters the visualiser polls use camelCase keys.
        assert luigid.api("get_task_status_message", task_id=task_id) == {
            "taskId": task_id,
            "statusMessage": "rows 3000/6000 loaded",
        }
        assert luigid.api("get_task_progress_percentage", task_id=task_id) == {
            "taskId": task_id,
            "progressPercentage": 50,
        }
        (tmp_path / "release").touch()
        assert _finish(proc, log) == 0, log.read_text()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    done = luigid.tasks(tmp_path, status="DONE")[task_id]
    assert (done["progress_percentage"], done["status_message"]) == (100, "rows 3000/6000 loaded")


def test_visualiser_shows_the_range_graph(luigid: Luigid, range_run: RangeRun, tmp_path: Path) -> None:
    require_chromium()
    assert range_run.returncode == 0
    url = f"{luigid.ui}#tab=graph&taskId={urllib.parse.quote(range_run.wrapper_id, safe='')}"

    dom = chromium("--dump-dom", url, profile=tmp_path / "profile-dom")
    html = dom.stdout.decode()
    assert dom.returncode == 0, dom.stderr.decode()[-2000:]
    title = html.split('id="dependencyTitle"', 1)[1].split(">", 1)[1].split("</", 1)[0]
    assert title == luigid.tasks(range_run.root)[range_run.wrapper_id]["display_name"]
    assert f"root={range_run.root}, start=2024-01, stop=2024-06" in title
    assert html.count(">ThrowawayMonth</text>") == 6, "one graph node per month"
    assert html.count(">ThrowawayRange</text>") == 1

    ARTIFACTS.mkdir(exist_ok=True)
    png = ARTIFACTS / "luigid-graph.png"
    png.unlink(missing_ok=True)
    shot = chromium(f"--screenshot={png}", url, profile=tmp_path / "profile-shot")
    assert shot.returncode == 0, shot.stderr.decode()[-2000:]
    data = png.read_bytes()
    assert len(data) > 10_000
    width, height, rows = _png_pixels(data)
    assert (width, height) == (1400, 900)
    # Every task is DONE, drawn as a #00DD00 dot: 7 nodes plus the legend's "Done" dot.
    dots = _blobs(width, rows, bytes.fromhex("00dd00"))
    assert len(dots) == 8, dots
