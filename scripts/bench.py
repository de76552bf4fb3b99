"""`make bench`: our tasks against the seeds' pandas approach, measured in the same run.

Each contender runs in a child process of its own, timed with a monotonic clock; its peak
RSS comes from ``wait4`` for that child alone, so one contender's memory never counts
against another. Ratios, not absolute seconds, are the result: they hold across machines.

Cases: DownloadCSV+ParquetFile vs. pandas read_csv(url) + to_datetime + to_parquet on a
realistic yellow month (1,369,765 rows); GCSObject+BigQueryTable of that month against the
emulators; then DownloadCSV+ParquetFile on a month five times larger to show memory does
not grow with the file. First, the TLC's Parquet source (``scripts.bench_parquet``): a
3-million-row month converted by pandas, DuckDB and ``convert_month``, and a month 5x larger.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import textwrap
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from scripts import bench_parquet, bench_postgres
from scripts.make_sample_data import made_once, month_path, write_month
from scripts.stack import Stack
from tlc import layout
from tlc.month import Month

ROOT = Path(__file__).resolve().parents[1]

ROWS = 1_369_765  # yellow 2021-01, the month the course loads
BIG = (2021, 3)  # the 5x month is published as yellow 2021-03


@dataclass
class Result:
    name: str
    seconds: float
    peak_mb: float


# A process's ru_maxrss starts at the high-water mark of the memory it was forked with
# (vfork: the parent's own), so children of this grown benchmark process would all report
# at least its peak. A fresh small launcher forks the contender and reports its rusage.
_LAUNCHER = """
import os, sys
pid = os.fork()
if pid == 0:
    os.execvp(sys.argv[2], sys.argv[2:])
_, status, usage = os.wait4(pid, 0)
with open(sys.argv[1], "w") as out:
    out.write(str(usage.ru_maxrss))
sys.exit(os.waitstatus_to_exitcode(status))
"""


def measure(name: str, cmd: list[str], env: dict[str, str]) -> Result:
    """Run ``cmd`` to completion; wall time and the peak RSS of that child (and its largest descendant)."""
    peak = ROOT / f".bench-rss-{os.getpid()}"
    began = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-S", "-c", _LAUNCHER, str(peak), *cmd],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        check=False,
    )
    seconds = time.monotonic() - began
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout.decode(errors="replace")[-3000:])
        raise SystemExit(f"bench: {name} failed with exit code {proc.returncode}")
    kilobytes = int(peak.read_text())
    peak.unlink()
    return Result(name, seconds, kilobytes / 1024)


_BUCKETS: dict[Path, str] = {}


def luigi_month(task: str, year: int, month: int, data: Path, env: dict[str, str], keep: bool = False) -> list[str]:
    """The luigi CLI for one month; ``keep`` reuses earlier stages' outputs (the lake bucket named
    after ``data``, and ``data`` itself as this host's cache), else both start empty."""
    if not keep:
        shutil.rmtree(data, ignore_errors=True)
        _BUCKETS[data] = f"bench-{data.name}-{uuid.uuid4().hex[:8]}"
    if data not in _BUCKETS:
        raise SystemExit(f"bench: {data} has no lake yet: run a stage into it with keep=False first")
    env["TLC_GCS_BUCKET"] = _BUCKETS[data]  # each data directory's own lake, whatever ran since
    env["TLC_DATA_DIR"] = str(data)
    luigi = Path(sys.executable).with_name("luigi")
    return [
        str(luigi),
        "--module",
        "tasks",
        task,
        "--color",
        "yellow",
        "--year",
        str(year),
        "--month",
        str(month),
        "--local-scheduler",
        "--log-level",
        "WARNING",
    ]


SEEDS = textwrap.dedent("""
    # The course flow (seeds/000): fetch -> clean -> write_local, verbatim but for the paths.
    import sys
    import pandas as pd
    url, out = sys.argv[1], sys.argv[2]
    df = pd.read_csv(url)
    df.tpep_pickup_datetime = pd.to_datetime(df.tpep_pickup_datetime)
    df.tpep_dropoff_datetime = pd.to_datetime(df.tpep_dropoff_datetime)
    df.to_parquet(out, compression="gzip")
    print(len(df))
""")


def row(r: Result, base: Result | None = None) -> str:
    ratio = f"{base.seconds / r.seconds:6.1f}x faster  {base.peak_mb / r.peak_mb:5.1f}x less memory" if base else ""
    return f"  {r.name:<44} {r.seconds:8.2f} s  {r.peak_mb:8.0f} MB  {ratio}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=ROWS, help=f"rows of the 1x month (default {ROWS:,})")
    parser.add_argument("--out", default="bench-out", help="work directory (default bench-out)")
    parser.add_argument("--skip-big", action="store_true", help="skip the 5x month")
    parser.add_argument("--to-sql-rows", type=int, default=None, help="run the seeds' to_sql on N rows, extrapolate")
    parser.add_argument(
        "--tlc-rows",
        type=int,
        default=bench_parquet.ROWS,
        help=f"rows of the TLC Parquet month ({bench_parquet.ROWS:,})",
    )
    parser.add_argument("--only-tlc", action="store_true", help="only the TLC Parquet source's cases")
    args = parser.parse_args()
    out = (ROOT / args.out).resolve()

    stack = Stack(out / "stack")
    # The lake bucket holds every stage's output, so fake-gcs-server runs from the start; BigQuery
    # and PostgreSQL start later: they would compete for the CPU.
    env = {**os.environ, **stack.up(("http", "gcs"))}
    source = Path(stack.dir.load_state()["http"]["root"])
    months = [((2021, 1), args.rows)] + ([] if args.skip_big else [(BIG, 5 * args.rows)])
    for (year, month), rows in months:
        made_once(
            month_path(source, "yellow", year, month),
            rows,
            lambda y=year, m=month, n=rows: write_month(source, "yellow", y, m, rows=n, seed=1),
            f"yellow {year}-{month:02d}",
        )
    size_mb = month_path(source, "yellow", 2021, 1).stat().st_size / 1e6
    url = f"{env['TLC_SOURCE_URL']}/yellow/yellow_tripdata_2021-01.csv.gz"

    try:
        bench_parquet.run(env, source, out, args.tlc_rows, args.skip_big)
        if args.only_tlc:
            return 0
        print(f"\nCSV.gz -> Parquet, yellow 2021-01, {args.rows:,} rows ({size_mb:.1f} MB gzip), over loopback HTTP")
        seeds = measure(
            "seeds: pandas read_csv + to_parquet", [sys.executable, "-c", SEEDS, url, str(out / "seeds.parquet")], env
        )
        ours = measure(
            "tlc-luigi: DownloadCSV + ParquetFile (+ lake)", luigi_month("ParquetFile", 2021, 1, out / "data", env), env
        )
        print(row(seeds))
        print(row(ours, seeds))
        if not args.skip_big:
            big = measure(
                f"tlc-luigi, 5x month ({5 * args.rows:,} rows)",
                luigi_month("ParquetFile", *BIG, out / "data-big", env),
                env,
            )
            print(row(big))
            print(
                f"  memory 5x month / 1x month: {big.peak_mb / ours.peak_mb:.2f}x "
                f"(time {big.seconds / ours.seconds:.1f}x for 5x the rows)"
            )
        print("\nParquet -> GCS -> BigQuery, same month, against fake-gcs-server and bqemulator")
        env.update(stack.up(("http", "gcs", "bigquery")))
        lake_cmd = luigi_month("BigQueryTable", 2021, 1, out / "data", env, keep=True)
        lake = measure("tlc-luigi: GCSObject + BigQueryTable", lake_cmd, env)
        print(row(lake) + f"  {args.rows / lake.seconds:,.0f} rows/s (publication, load job, month swap)")

        print("\nParquet -> PostgreSQL, same month: ours vs the seeds' to_sql vs a raw psql \\copy floor")
        env.update(stack.up(("http", "gcs", "bigquery", "postgres")))
        parquet = layout.lake_path(out / "data", Month("yellow", 2021, 1))
        csv_gz = month_path(source, "yellow", 2021, 1)
        loads = bench_postgres.run(env, parquet, csv_gz, out / "postgres", args.to_sql_rows, repeat=3)
        floor, to_sql = loads[-1][1], loads[-2][1]
        for name, seconds, peak in loads:
            print(
                f"  {name:<62} {seconds:8.2f} s  {peak:6.0f} MB  {seconds / floor:5.2f}x floor  "
                f"{to_sql / seconds:5.1f}x faster than to_sql"
            )
    finally:
        stack.down()
    return 0


if __name__ == "__main__":
    sys.exit(main())
