"""Every command of README.md, run verbatim, in order, the way a newcomer would run them.

The repository is copied (code, config, Makefile, README; its ``.venv`` and ``.venv-emu``
are linked, not rebuilt) so that the README's relative paths (``.stack``, ``data``) are the
copy's and nothing of the developer's own stack or data is touched. Then each runnable block
of README.md (tests/readme.py: bash, console, cron; ``skip``/``exit`` directives) runs in
the copy, in order: ``make demo`` starts the copy's stack and publishes the sample months,
and every later bash block runs after ``. .venv/bin/activate`` and ``. .stack/env``.

The one thing the test adds: before the crontab block it publishes one yellow month inside
the catch-up window (last month, 200 rows) on the stack's source, so that the cron line has
a month to ingest besides the ones it must skip as not published. The cron command runs with
``/opt/tlc-luigi`` replaced by the copy and with the stack's environment (a crontab's
variables). Afterwards the effects are checked where they landed: PostgreSQL row counts per
month, luigid's record of the catch-up, the catch-up's log, and the report.
"""

from __future__ import annotations

import ast
import json
import os
import shlex
import shutil
import subprocess
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import psycopg2
import pytest

from tests.conftest import let_server_user_in
from tests.readme import Block, blocks, console_commands, cron_entries

REPO = Path(__file__).resolve().parents[1]
INSTALL = "/opt/tlc-luigi"
# Not copied: the developer's state, caches and environments (the venvs are linked instead).
IGNORED = {".git", ".stack", "data", "test-artifacts", "bench-out", "catchup.log", ".pytest_cache", ".ruff_cache"}
LINKED = (".venv", ".venv-emu")
# Variables of a shell that sourced the developer's own .stack/env, or of the make/pytest
# that runs this test: none of them may reach the README's commands.
INHERITED_PREFIXES = ("PG", "TLC_", "LUIGI_", "STORAGE_EMULATOR_HOST", "GCS_", "MAKE", "MFLAGS", "VIRTUAL_ENV")
BLOCK_TIMEOUT = 300
CATCHUP_ROWS = 200


@dataclass
class Step:
    block: Block
    command: str
    returncode: int
    output: str


@dataclass
class ReadmeRun:
    checkout: Path
    steps: list[Step] = field(default_factory=list)
    failure: str | None = None
    catchup_month: tuple[int, int] | None = None

    def stack_env(self) -> dict[str, str]:
        env = {}
        for line in (self.checkout / ".stack" / "env").read_text().splitlines():
            if line.startswith("export "):
                key, _, value = line[len("export ") :].partition("=")
                env[key] = shlex.split(value)[0] if value else ""
        return env


def _copy_repo(dest: Path) -> None:
    def ignore(directory: str, names: list[str]) -> set[str]:
        top = Path(directory) == REPO
        return {
            n for n in names if n == "__pycache__" or n.endswith(".egg-info") or (top and (n in IGNORED or n in LINKED))
        }

    shutil.copytree(REPO, dest, ignore=ignore, symlinks=True)  # copy2: mtimes kept, so make sees setup done
    for name in LINKED:
        if (REPO / name).exists():
            (dest / name).symlink_to(REPO / name)


def _base_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(INHERITED_PREFIXES)}


def _bash(script: str, cwd: Path, env: dict[str, str], strict: bool) -> tuple[int, str]:
    prelude = ". .venv/bin/activate\nif [ -f .stack/env ]; then . .stack/env; fi\n"
    proc = subprocess.run(
        ["bash", "-c", ("set -e\n" if strict else "") + prelude + script],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=BLOCK_TIMEOUT,
        check=False,
    )
    return proc.returncode, proc.stdout + proc.stderr


def _publish_catchup_month(run: ReadmeRun) -> None:
    """One yellow month inside IngestCatchUp's window, as the TLC publishes it, on the copy's stack source."""
    from scripts.sample_parquet import write_parquet_month
    from tlc.month import last_complete_month

    year, month = last_complete_month()
    write_parquet_month(run.checkout / ".stack" / "source", "yellow", year, month, rows=CATCHUP_ROWS, seed=7)
    run.catchup_month = (year, month)


def _run_block(run: ReadmeRun, block: Block) -> str | None:
    """Run one block; None when it did what it should, else why not."""
    env = _base_env()
    where = f"README.md:{block.line} ({block.lang})"
    if block.lang == "bash":
        code, out = _bash(block.text, run.checkout, env, strict=True)
        run.steps.append(Step(block, block.text, code, out))
        if code != block.exit_code:
            return f"{where} exited {code}, expected {block.exit_code}:\n{block.text}\n{out[-4000:]}"
    elif block.lang == "console":
        for command, expected in console_commands(block):
            code, out = _bash(command, run.checkout, env, strict=False)
            run.steps.append(Step(block, command, code, out))
            if code != block.exit_code:
                return f"{where} `{command}` exited {code}, expected {block.exit_code}:\n{out[-4000:]}"
            missing = [line for line in expected if line not in out.splitlines()]
            if missing:
                return f"{where} `{command}` did not print {missing}:\n{out[-4000:]}"
    elif block.lang == "cron":
        _publish_catchup_month(run)
        for entry in cron_entries(block):
            command = entry.command.replace(INSTALL, str(run.checkout))
            proc = subprocess.run(
                ["/bin/sh", "-c", command],
                cwd="/",
                env={**env, **run.stack_env()},
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=BLOCK_TIMEOUT,
                check=False,
            )
            run.steps.append(Step(block, command, proc.returncode, proc.stdout + proc.stderr))
            if proc.returncode != block.exit_code:
                log = run.checkout / "catchup.log"
                tail = log.read_text()[-4000:] if log.exists() else proc.stdout + proc.stderr
                return f"{where} cron command exited {proc.returncode}:\n{command}\n{tail}"
    return None


@pytest.fixture(scope="module")
def readme_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReadmeRun]:
    from scripts.stack import Stack

    base = tmp_path_factory.mktemp("readme")
    checkout = base / "tlc"
    _copy_repo(checkout)
    let_server_user_in(checkout, tmp_path_factory.getbasetemp().parent)
    # The copy's `make demo` must not rebuild the (linked) venv: that would repoint its
    # editable install at the copy. `make setup` first, as `make test` does.
    fresh = subprocess.run(["make", "-q", "setup"], cwd=checkout, env=_base_env(), capture_output=True, check=False)
    if fresh.returncode != 0:
        pytest.fail(".venv is out of date with the requirements: run `make setup` first (make test does)")
    run = ReadmeRun(checkout)
    try:
        for block in blocks():
            if block.runs:
                run.failure = _run_block(run, block)
                if run.failure:
                    break
        yield run
    finally:
        Stack(checkout / ".stack").down()


def test_every_readme_command_runs(readme_run: ReadmeRun) -> None:
    assert readme_run.failure is None, readme_run.failure
    ran = {s.block.line for s in readme_run.steps}
    assert ran == {b.line for b in blocks() if b.runs}
    skipped = [b for b in blocks() if b.lang in ("bash", "console", "cron") and b.skip]
    assert [b.text.split()[0:2] for b in skipped] == [
        ["make", "test"],
        ["useradd", "--system"],
        ["bq", "mk"],
        ["export", "TLC_GCS_HMAC_KEY_ID=GOOG1E..."],
    ]


def _months(run: ReadmeRun, color: str) -> dict[str, int]:
    return dict(_pg(run, f"SELECT to_char(source_month, 'YYYY-MM'), count(*) FROM tlc.{color}_tripdata GROUP BY 1"))


def _pg(run: ReadmeRun, sql: str) -> list[tuple]:
    env = run.stack_env()
    conn = psycopg2.connect(
        host=env["PGHOST"],
        port=env["PGPORT"],
        user=env["PGUSER"],
        password=env["PGPASSWORD"],
        dbname=env["PGDATABASE"],
        connect_timeout=5,
    )
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
            return cur.fetchall()
    finally:
        conn.close()


def test_the_examples_landed_every_month_they_name(readme_run: ReadmeRun) -> None:
    assert readme_run.failure is None, readme_run.failure
    backfill = [f"{y}-{m:02d}" for y in (2019, 2020, 2021) for m in range(1, 13) if (y, m) <= (2021, 7)]
    assert len(backfill) == 31
    demo = {"2021-01", "2021-02", "2021-03"}  # make demo's 20,000-row months; the rest are 200 rows
    tlc = {"2024-01": 20_000}  # make demo's month of each service from the TLC's Parquet files
    assert readme_run.catchup_month is not None
    catchup = "{}-{:02d}".format(*readme_run.catchup_month)
    yellow = {month: (20_000 if month in demo else 200) for month in backfill} | {catchup: CATCHUP_ROWS} | tlc
    green = {month: (20_000 if month == "2021-01" else 200) for month in backfill} | tlc
    assert _months(readme_run, "yellow") == yellow
    assert _months(readme_run, "green") == green
    assert _months(readme_run, "fhv") == {"2021-01": 20_000} | tlc
    assert _months(readme_run, "fhvhv") == tlc


def test_the_cron_line_ran_through_the_stacks_luigid(readme_run: ReadmeRun) -> None:
    assert readme_run.failure is None, readme_run.failure
    log = (readme_run.checkout / "catchup.log").read_text()
    year, month = readme_run.catchup_month  # type: ignore[misc]
    assert "===== Luigi Execution Summary =====" in log
    assert f"IngestMonth(color=yellow, year={year}, month={month})" in log
    assert "catch-up: not published yet, skipped:" in log
    url = readme_run.stack_env()["LUIGI_SCHEDULER_URL"]
    query = urllib.parse.urlencode({"data": json.dumps({"status": "DONE", "search": "IngestCatchUp"})})
    with urllib.request.urlopen(f"{url}api/task_list?{query}", timeout=10) as resp:
        done = json.load(resp)["response"]
    assert [t["name"] for t in done.values()] == ["IngestCatchUp"]


def test_report_and_pandas_examples_read_what_landed(readme_run: ReadmeRun) -> None:
    assert readme_run.failure is None, readme_run.failure
    report = next(s for s in readme_run.steps if s.command.startswith("make report"))
    assert "0 mismatch(es)" in report.output, report.output[-2000:]
    assert (readme_run.checkout / "data" / "report.html").stat().st_size > 1000
    pandas = next(s for s in readme_run.steps if "import pandas" in s.command)
    assert pandas.output.startswith("20000 rows;"), pandas.output
    landed = _months(readme_run, "yellow")
    psql = next(s for s in readme_run.steps if s.command.startswith("psql -At"))
    assert dict(line.split("|") for line in psql.output.split()) == {m: str(n) for m, n in landed.items()}
    duck = next(s for s in readme_run.steps if "import duckdb" in s.command)
    assert {m: n for m, n, _ in ast.literal_eval(duck.output.strip())} == landed
    bq = next(s for s in readme_run.steps if "Dataset.from_config()" in s.command)
    trips = ast.literal_eval(bq.output.strip())
    assert trips and all(n > 0 for _, n in trips) and len(trips) <= len(landed)
    metrics = next(s for s in readme_run.steps if "metrics" in s.command)
    done = [line for line in metrics.output.splitlines() if line.startswith("luigi_task_done_total")]
    assert done and float(done[0].split()[-1]) >= 1  # at least green 2020-07 ran through luigid


def test_dbt_builds_on_the_published_views_of_every_landed_month(readme_run: ReadmeRun) -> None:
    assert readme_run.failure is None, readme_run.failure
    publish = next(s for s in readme_run.steps if s.command.startswith("make publish"))
    for view in ("taxi_rides_ny.prod.yellow_tripdata", "nytaxi.green_tripdata", "prod.fhv_tripdata"):
        assert view in publish.output, publish.output
    build = next(s for s in readme_run.steps if s.command.startswith("dbt build"))
    assert build.output.count("Completed successfully") == 2, build.output[-3000:]
    # the DuckDB views over the lake and the Postgres views hold every month Postgres holds
    with closing(duckdb.connect(str(readme_run.checkout / "data" / "taxi_rides_ny.duckdb"), read_only=True)) as con:
        duck = con.execute("SELECT color, strftime(source_month, '%Y-%m'), row_count FROM prod.months").fetchall()
    views = _pg(readme_run, "SELECT color, to_char(source_month, 'YYYY-MM'), row_count FROM prod.months")
    for color in ("yellow", "green", "fhv"):
        landed = _months(readme_run, color)
        assert len(landed) >= 1
        assert {m: n for c, m, n in duck if c == color} == landed
        assert {m: n for c, m, n in views if c == color} == landed
