"""Bad parameters, bad configuration and secrets, as the user meets them: through the ``luigi`` CLI.

Every invalid value must stop the CLI before any work with exit 40 and one ``ERROR`` line; a
host that does not answer must fail the run in one line after bounded retries; identifiers
from configuration that try to smuggle SQL must be refused before any request leaves the
process; and no secret (PGPASSWORD, credentials in the source URL) may show up in anything
the pipeline prints, writes or tells luigid. ``tests/test_pipeline.py`` covers five bad
values of ParquetFile; every other task and parameter is covered here.
"""

from __future__ import annotations

import base64
import json
import secrets
import socket
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from scripts.stack.base import free_port
from tasks import BigQueryTable, ParquetFile, PostgresTable
from tests.faults.conftest import Sinks
from tests.faults.helpers import cli_env, files, luigi_args, one_clear_line, run_cli
from tests.luigirun import run
from tests.sourceserver import SourceServer
from tlc import layout
from tlc.errors import InvalidInput
from tlc.month import Month, last_complete_month

pytestmark = pytest.mark.faults

LAST = last_complete_month()
NEXT = (LAST[0] + 1, 1) if LAST[1] == 12 else (LAST[0], LAST[1] + 1)  # a month that has not ended
NEXT_TEXT = f"{NEXT[0]}-{NEXT[1]:02d}"
MONTH_TASKS = ("DownloadCSV", "ParquetFile", "GCSObject", "BigQueryTable", "PostgresTable", "IngestMonth")
GOOD = {"color": "yellow", "year": "2021", "month": "1"}
BAD_VALUES: dict[str, list[tuple[str, str]]] = {
    "color": [
        ("purple", "color 'purple' is not valid: use one of yellow, green, fhv"),
        ("YELLOW", "color 'YELLOW' is not valid"),
        ("yellow,green", "color 'yellow,green' is not valid"),
    ],
    "year": [
        ("2008", "year 2008 is not valid: use 2009-"),
        (str(LAST[0] + 1), f"year {LAST[0] + 1} is not valid"),
        ("x", "year 'x' is not valid: use a year such as 2021"),
        ("2021.0", "year '2021.0' is not valid"),
    ],
    "month": [
        ("0", "month 0 is not valid: use 1-12"),
        ("13", "month 13 is not valid: use 1-12"),
        ("-1", "month -1 is not valid"),
        ("x", "month 'x' is not valid: use 1-12"),
        ("1.5", "month '1.5' is not valid"),
    ],
}


def _month_task_cases() -> dict[str, tuple[list[str], str]]:
    """Every (task, parameter) pair with a bad value, and every bad value on some task.

    The six month tasks share one parameter implementation (tasks/params.py and tlc/month.py), so rotating the
    values across the tasks proves each value and each task without running 6 x 15 processes.
    """
    cases: dict[str, tuple[list[str], str]] = {}
    for i, task in enumerate(MONTH_TASKS):
        for param, values in BAD_VALUES.items():
            for j, (value, message) in enumerate(values):
                if j == i % len(values) or i == j % len(MONTH_TASKS):
                    args = {**GOOD, param: value}
                    cases[f"{task}-{param}={value or 'empty'}"] = (
                        [task, *(x for k, v in args.items() for x in (f"--{k}", v))],
                        message,
                    )
        year, month = NEXT
        not_ended = "has not ended yet" if year == LAST[0] else f"year {year} is not valid"
        cases[f"{task}-month-not-ended"] = (
            [task, "--color", "green", "--year", str(year), "--month", str(month)],
            not_ended,
        )
    return cases


RANGE = "IngestRange"
WRAPPER_CASES: dict[str, tuple[list[str], str]] = {
    "range-start=2021-1": ([RANGE, "--start", "2021-1"], "month '2021-1' is not valid: use YYYY-MM"),
    "range-start=2021/01": ([RANGE, "--start", "2021/01"], "month '2021/01' is not valid"),
    "range-start=abc": ([RANGE, "--start", "abc"], "month 'abc' is not valid"),
    "range-start=2008-12": ([RANGE, "--start", "2008-12"], "year 2008 is not valid"),
    "range-start-not-ended": ([RANGE, "--start", NEXT_TEXT], "is not valid"),
    "range-stop-before-start": ([RANGE, "--start", "2021-03", "--stop", "2021-02"], "stop 2021-02 is before start"),
    "range-stop=2021-13": ([RANGE, "--start", "2021-01", "--stop", "2021-13"], "month 13 is not valid"),
    "range-stop=xx": ([RANGE, "--start", "2021-01", "--stop", "xx"], "month 'xx' is not valid"),
    "range-neither": ([RANGE], "give either --start YYYY-MM [--stop YYYY-MM] or --year YYYY --months 1,2,3"),
    "range-both": ([RANGE, "--start", "2021-01", "--year", "2021", "--months", "1"], "give either"),
    "range-stop-only": ([RANGE, "--stop", "2021-02"], "give either"),
    "range-months-only": ([RANGE, "--months", "1,2"], "give either"),
    "range-year-without-months": ([RANGE, "--year", "2021"], "--year needs --months"),
    "range-months=13": ([RANGE, "--year", "2021", "--months", "1,13"], "month 13 is not valid"),
    "range-months=0": ([RANGE, "--year", "2021", "--months", "0"], "month 0 is not valid"),
    "range-months=a,b": ([RANGE, "--year", "2021", "--months", "a,b"], "months 'a,b' is not valid"),
    "range-year=2008": ([RANGE, "--year", "2008", "--months", "1"], "year 2008 is not valid"),
    "range-year-month-not-ended": ([RANGE, "--year", str(NEXT[0]), "--months", str(NEXT[1])], "is not valid"),
    "catchup-window=0": (["IngestCatchUp", "--window", "0"], "window 0 is not valid: use 1-240 months"),
    "catchup-window=-1": (["IngestCatchUp", "--window", "-1"], "window -1 is not valid"),
    "catchup-window=241": (["IngestCatchUp", "--window", "241"], "window 241 is not valid"),
    "catchup-until=2021-13": (["IngestCatchUp", "--until", "2021-13"], "month 13 is not valid"),
    "catchup-until=xx": (["IngestCatchUp", "--until", "xx"], "month 'xx' is not valid"),
    "catchup-until-not-ended": (["IngestCatchUp", "--until", NEXT_TEXT], "is not valid"),
}
PARSE_CASES: dict[str, tuple[list[str], str]] = {
    "range-colors=purple": ([RANGE, "--colors", "purple", "--start", "2021-01"], "color 'purple'"),
    "range-colors=Yellow": ([RANGE, "--colors", "Yellow", "--start", "2021-01"], "color 'Yellow'"),
    "range-colors=,": ([RANGE, "--colors", ",", "--start", "2021-01"], "colors ',' is not valid"),
    "range-colors=yellow,purple": (
        [RANGE, "--colors", "yellow,purple", "--start", "2021-01"],
        "color 'purple'",
    ),
    "catchup-colors=purple": (["IngestCatchUp", "--colors", "purple"], "color 'purple'"),
    "range-year=x": ([RANGE, "--year", "x", "--months", "1"], "year 'x' is not valid"),
    "catchup-window=x": (["IngestCatchUp", "--window", "x"], "window 'x' is not valid"),
    "parquet-without-month": (["ParquetFile", "--color", "yellow", "--year", "2021"], "month"),
    # luigi's parser takes an empty value for an absent one
    "gcs-color=empty": (["GCSObject", "--color", "", "--year", "2021", "--month", "1"], "color"),
    "postgres-year=empty": (
        ["PostgresTable", "--color", "yellow", "--year", "", "--month", "1"],
        "year",
    ),
    "month-month=empty": (
        ["IngestMonth", "--color", "yellow", "--year", "2021", "--month", ""],
        "month",
    ),
}
CASES = {**_month_task_cases(), **WRAPPER_CASES, **PARSE_CASES}


class Recorder:
    """A TCP listener that only counts who knocked: stands in for every endpoint that must not be used."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.connections = 0
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self.sock.close()


@dataclass
class CliRuns:
    results: dict[str, Any]
    data: Path
    recorder: Recorder


@pytest.fixture(scope="module")
def bad_input_runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CliRuns]:
    """All bad-input CLI runs at once (three at a time): each is a separate ``luigi`` process."""
    recorder = Recorder()
    work = tmp_path_factory.mktemp("bad-input")
    data = work / "data"
    env = cli_env(
        {},
        work,
        TLC_DATA_DIR=str(data),
        TLC_SOURCE_URL=recorder.url,
        STORAGE_EMULATOR_HOST=recorder.url,
        TLC_BIGQUERY_ENDPOINT=recorder.url,
        PGHOST="127.0.0.1",
        PGPORT=str(recorder.port),
    )

    def one(args: list[str]) -> Any:
        return run_cli(luigi_args(*args, lock_dir=work / "locks", module="tasks"), env)

    with ThreadPoolExecutor(max_workers=3) as pool:
        futures = {name: pool.submit(one, args) for name, (args, _) in CASES.items()}
        results = {name: f.result() for name, f in futures.items()}
    try:
        yield CliRuns(results, data, recorder)
    finally:
        recorder.close()


@pytest.mark.parametrize(
    "case",
    [*_month_task_cases(), *WRAPPER_CASES, *PARSE_CASES],
)
def test_bad_input_exits_40_with_one_error_line_before_any_work(bad_input_runs: CliRuns, case: str) -> None:
    proc, message = bad_input_runs.results[case], CASES[case][1]
    output = proc.stdout + proc.stderr
    assert proc.returncode == 40, output[-3000:]
    one_clear_line(output, "ERROR: invalid input: ", message)
    assert bad_input_runs.recorder.connections == 0  # no source, lake, warehouse or database was contacted
    assert not bad_input_runs.data.exists()  # nothing written


# --- unreachable services -----------------------------------------------------------------------

UNREACHABLE: dict[str, tuple[str, str]] = {
    # service: (the environment variable pointed at a dead port, what the ERROR line says)
    "source": ("TLC_SOURCE_URL", "SourceError: source unreachable after 2 attempts: [Errno 111] Connection refused"),
    "postgres": ("PGPORT", "SinkError: cannot connect to PostgreSQL at 127.0.0.1:"),
}


@pytest.fixture
def quick_retries(cfg: dict) -> dict:
    cfg["tlc.source", "attempts"] = "2"
    cfg["tlc.source", "timeout_seconds"] = "2"
    cfg["tlc.gcs", "retry_seconds"] = "2"
    cfg["tlc.bigquery", "retry_seconds"] = "2"
    cfg["tlc.postgres", "connect_timeout_seconds"] = "2"
    return cfg


def _unreachable_run(service_env: str, dead: str, cfg: dict, tmp_path: Path) -> tuple[Any, float]:
    env = cli_env(cfg, tmp_path, **{service_env: dead})
    began = time.monotonic()
    proc = run_cli(
        luigi_args("IngestMonth", "--color", "yellow", "--year", "2021", "--month", "1", lock_dir=tmp_path), env
    )
    return proc, time.monotonic() - began


@pytest.mark.parametrize("service", list(UNREACHABLE))
def test_unreachable_service_fails_in_one_line_after_bounded_retries(
    pipeline_env: Path,
    source: SourceServer,
    sinks: Sinks,
    publish: Callable[..., Path],
    quick_retries: dict,
    tmp_path: Path,
    service: str,
) -> None:
    publish("yellow", 2021, 1)
    variable, message = UNREACHABLE[service]
    port = free_port()
    dead = str(port) if variable == "PGPORT" else f"http://127.0.0.1:{port}"
    proc, took = _unreachable_run(variable, dead, quick_retries, tmp_path)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 30, output[-3000:]
    line = one_clear_line(output, message)
    assert service == "gcs" or f"127.0.0.1:{port}" in line  # names where it tried
    assert took < 60, f"bounded retries took {took:.0f}s"


CHECK_FAILURES = {
    # the lake holds every stage's record, so a dead lake is met by the very first check
    "gcs-unreachable": "SinkError: GCS read of gs://",
    "bigquery-unreachable": "SinkError: BigQuery state of yellow 2021-01 failed: ConnectionError",
    "postgres-unreachable-parquet-done": "SinkError: cannot connect to PostgreSQL at 127.0.0.1:",
    "dataset-injection": "InvalidInput: dataset 'tlc; DROP TABLE x' is not valid",
}


@pytest.mark.parametrize("case", list(CHECK_FAILURES))
def test_failure_while_checking_completeness_is_one_clear_line(
    pipeline_env: Path,
    source: SourceServer,
    sinks: Sinks,
    publish: Callable[..., Path],
    quick_retries: dict,
    tmp_path: Path,
    case: str,
) -> None:
    publish("yellow", 2021, 1)
    extra: dict[str, str] = {}
    if case == "gcs-unreachable":
        extra["STORAGE_EMULATOR_HOST"] = f"http://127.0.0.1:{free_port()}"
    elif case == "bigquery-unreachable":
        extra["TLC_BIGQUERY_ENDPOINT"] = f"http://127.0.0.1:{free_port()}"
    elif case == "postgres-unreachable-parquet-done":
        assert run([ParquetFile(color="yellow", year=2021, month=1)]).ok  # the cron's second run
        extra["PGPORT"] = str(free_port())
    else:
        quick_retries["tlc.bigquery", "dataset"] = "tlc; DROP TABLE x"
    proc = run_cli(
        luigi_args("IngestMonth", "--color", "yellow", "--year", "2021", "--month", "1", lock_dir=tmp_path),
        cli_env(quick_retries, tmp_path, **extra),
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 35, output[-3000:]  # luigi's "scheduling error": the month never started
    assert "Traceback" not in output, output[-3000:]
    [line] = [x for x in output.splitlines() if x.startswith("ERROR") or "error in complete() method" in x]
    assert CHECK_FAILURES[case] in line, line


# --- identifiers from configuration ---------------------------------------------------------------

HOSTILE = ["tlc; DROP TABLE x", "tlc--", "Tlc", "a" * 64, "tlc`x", "tlc x", "1tlc", "", "tlc\nx", "t\u0131c"]


@pytest.mark.parametrize("value", HOSTILE, ids=lambda v: repr(v)[:20])
@pytest.mark.parametrize("sink", ["bigquery-dataset", "postgres-schema"])
def test_hostile_identifier_is_refused_before_any_request(
    pipeline_env: Path,
    source: SourceServer,
    publish: Callable[..., Path],
    cfg: dict,
    monkeypatch,
    sink: str,
    value: str,
) -> None:
    publish("yellow", 2021, 1)
    assert run([ParquetFile(color="yellow", year=2021, month=1)]).ok  # so complete() would really ask the sink
    recorder = Recorder()
    try:
        if sink == "bigquery-dataset":
            monkeypatch.setenv("TLC_BIGQUERY_ENDPOINT", recorder.url)
            cfg["tlc.bigquery", "dataset"] = value
            task: Any = BigQueryTable(color="yellow", year=2021, month=1)
        else:
            monkeypatch.setenv("PGHOST", "127.0.0.1")
            monkeypatch.setenv("PGPORT", str(recorder.port))
            cfg["tlc.postgres", "schema"] = value
            task = PostgresTable(color="yellow", year=2021, month=1)
        with pytest.raises(InvalidInput) as refused:
            task.complete()
        assert repr(value) in str(refused.value) and "is not valid" in str(refused.value)
        with pytest.raises(InvalidInput):
            task.run()
        assert recorder.connections == 0
    finally:
        recorder.close()


def test_hostile_bigquery_project_is_refused_before_any_request(
    pipeline_env: Path, source: SourceServer, publish: Callable[..., Path], cfg: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    publish("yellow", 2021, 1)
    assert run([ParquetFile(color="yellow", year=2021, month=1)]).ok
    recorder = Recorder()
    cfg["tlc.bigquery", "retry_seconds"] = "1"  # the recorder hangs up on every request: fail fast
    try:
        monkeypatch.setenv("TLC_BIGQUERY_ENDPOINT", recorder.url)
        monkeypatch.setenv("TLC_BIGQUERY_PROJECT", "tlc-local`; DROP TABLE `x")
        with pytest.raises(InvalidInput, match="project"):
            BigQueryTable(color="yellow", year=2021, month=1).complete()
        assert recorder.connections == 0
    finally:
        recorder.close()


# --- secrets ------------------------------------------------------------------------------------------


def _luigid_api(url: str, method: str, **params: Any) -> str:
    query = urllib.parse.urlencode({"data": json.dumps(params)})
    with urllib.request.urlopen(f"{url}api/{method}?{query}", timeout=10) as resp:
        return resp.read().decode()


def test_secrets_never_reach_output_files_task_ids_or_luigid(
    pipeline_env: Path,
    source: SourceServer,
    sinks: Sinks,
    publish: Callable[..., Path],
    quick_retries: dict,
    tmp_path: Path,
) -> None:
    """A wrong PGPASSWORD (Postgres refuses it) and a source URL with user:password, through luigid."""
    scheduler = sinks.stack.up(("luigid",))["LUIGI_SCHEDULER_URL"]
    pg_secret, url_secret = f"s3cretPW-{secrets.token_hex(8)}", f"s3cretURL-{secrets.token_hex(8)}"
    publish("yellow", 2021, 1)
    publish("yellow", 2021, 2)
    remote = ("--scheduler-url", scheduler, "--workers", "2")
    first = run_cli(
        luigi_args(
            "IngestMonth",
            "--color",
            "yellow",
            "--year",
            "2021",
            "--month",
            "1",
            *remote,
            lock_dir=tmp_path,
            local=False,
        ),
        cli_env(quick_retries, tmp_path, PGPASSWORD=pg_secret),
    )
    parts = urllib.parse.urlsplit(source.url)
    second = run_cli(
        luigi_args(
            "IngestRange",
            "--colors",
            "yellow",
            "--start",
            "2021-01",
            "--stop",
            "2021-02",
            *remote,
            lock_dir=tmp_path,
            local=False,
        ),
        cli_env(
            quick_retries, tmp_path, PGPASSWORD=pg_secret, TLC_SOURCE_URL=f"http://reader:{url_secret}@{parts.netloc}"
        ),
    )
    assert first.returncode == 30 and second.returncode in (30, 35), (first.stderr + second.stderr)[-3000:]
    assert 'password authentication failed for user "tlc"' in first.stderr  # the secret was really used
    basic = "Basic " + base64.b64encode(f"reader:{url_secret}".encode()).decode()
    assert basic in source.authorizations and layout.raw_path(pipeline_env, Month("yellow", 2021, 2)).exists()  # used

    listed = _luigid_api(scheduler, "task_list", status="", upstream_status="", search=None, limit=False)
    task_ids = list(json.loads(listed)["response"])
    assert task_ids and any("PostgresTable" in t for t in task_ids)
    errors = [_luigid_api(scheduler, "fetch_error", task_id=t) for t in task_ids]
    assert any("password authentication failed" in e for e in errors)  # luigid holds the errors: check them
    written = [p.read_text(errors="replace") for p in files(pipeline_env) if p.suffix == ".json"]
    assert any(p.name.endswith(".meta.json") for p in files(pipeline_env))
    manifests = [b.download_as_text() for b in sinks.bucket().list_blobs() if b.name.endswith(".manifest.json")]
    assert manifests and written
    server_log = Path(sinks.stack.dir.load_state()["luigid"]["log"])
    haystacks = {
        "CLI output": first.stdout + first.stderr + second.stdout + second.stderr,
        "task ids": " ".join(task_ids),
        "luigid task_list": listed,
        "luigid errors": " ".join(errors),
        "luigid log": server_log.read_text(errors="replace") if server_log.exists() else "",
        "meta/quality/manifest files": " ".join(written),
        "manifests in the bucket": " ".join(manifests),
    }
    for where, text in haystacks.items():
        for secret in (pg_secret, url_secret):
            assert secret not in text, f"a secret leaked into the {where}"
    assert layout.raw_path(pipeline_env, Month("yellow", 2021, 1)).exists()
