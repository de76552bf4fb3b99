"""`make bench-e2e`: the whole pipeline against the seeds' whole flow, in the same run.

N months of realistic size (default three yellow months of 1,369,765 rows) are served over
loopback; then (a) ``IngestRange --workers 2`` lands them in the lake, BigQuery and Postgres,
and (b) the course's flow does the same for the same months: pandas ``read_csv``,
``to_parquet``, upload, a BigQuery load from the DataFrame, ``to_sql`` in 100k-row chunks.
Both run as child processes measured by ``scripts.bench.measure`` (wall time, peak RSS).
Then the same months are ingested again into a fresh lake and warehouse by two "hosts" at once
(two CLI runs, each with its own data directory, through one luigid): the work they did in
total, counted in the manifests' histories, must be one host's. Last, 36 small months are
ingested and a no-op rerun of the whole 36-month range is timed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path

from scripts.bench import ROWS, Result, measure
from scripts.make_sample_data import made_once, month_path, write_month
from scripts.sample_parquet import parquet_path, write_parquet_month
from scripts.stack import Stack
from tlc.month import resolve_source

ROOT = Path(__file__).resolve().parents[1]

SEEDS = textwrap.dedent("""
    # The course's flows (seeds 000-004), end to end, for each month given.
    import os, sys
    import pandas as pd
    import sqlalchemy
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import bigquery, storage

    base, out, *months = sys.argv[1:]
    gcs = storage.Client(project="tlc-local", credentials=AnonymousCredentials(),
                         client_options={"api_endpoint": os.environ["STORAGE_EMULATOR_HOST"]})
    bucket = gcs.lookup_bucket("seeds-lake") or gcs.create_bucket("seeds-lake")
    bq = bigquery.Client(project=os.environ["TLC_BIGQUERY_PROJECT"], credentials=AnonymousCredentials(),
                         client_options={"api_endpoint": os.environ["TLC_BIGQUERY_ENDPOINT"]})
    bq.create_dataset("seeds", exists_ok=True)
    url = sqlalchemy.URL.create("postgresql+psycopg2", username=os.environ["PGUSER"],
                                password=os.environ["PGPASSWORD"], host=os.environ["PGHOST"],
                                port=int(os.environ["PGPORT"]), database=os.environ["PGDATABASE"])
    engine = sqlalchemy.create_engine(url)
    rows = 0
    for ym in months:
        name = f"yellow_tripdata_{ym}.csv.gz"
        df = pd.read_csv(f"{base}/yellow/{name}")
        df.tpep_pickup_datetime = pd.to_datetime(df.tpep_pickup_datetime)
        df.tpep_dropoff_datetime = pd.to_datetime(df.tpep_dropoff_datetime)
        path = f"{out}/{name}.parquet"
        df.to_parquet(path, compression="gzip")
        bucket.blob(f"data/yellow/{name}.parquet").upload_from_filename(path)
        # to_gbq(chunksize=50_000): rows pushed from the DataFrame in 50k-row chunks. (pandas-gbq
        # is not installed and bqemulator refuses the client's multipart load upload; the
        # client's own chunked insert from a DataFrame is the same anti-pattern.)
        kinds = {"i": "INT64", "f": "FLOAT64", "M": "DATETIME"}
        fields = [bigquery.SchemaField(c, kinds.get(t.kind, "STRING")) for c, t in df.dtypes.items()]
        table = bq.create_table(bigquery.Table(f"{bq.project}.seeds.yellow_trips", schema=fields), exists_ok=True)
        failed = bq.insert_rows_from_dataframe(table, df, chunk_size=50_000)
        assert not any(failed), "rows were refused"
        df.to_sql("yellow_taxi_data", engine, schema="public", if_exists="append", chunksize=100_000, index=False)
        rows += len(df)
    print(rows)
""")


def luigi_range(start: str, stop: str, env: dict[str, str]) -> list[str]:
    luigi = Path(sys.executable).with_name("luigi")
    return [
        str(luigi),
        "--module",
        "tasks",
        "IngestRange",
        "--colors",
        "yellow",
        "--start",
        start,
        "--stop",
        stop,
        "--workers",
        "2",
        "--local-scheduler",
        "--log-level",
        "WARNING",
    ]


def work_done(env: dict[str, str], months: list[tuple[int, int]]) -> Counter:
    """Stage records per stage over the months, from the manifests in the lake ``env`` points at."""
    from tlc import ledger
    from tlc.gcs.lake import Lake
    from tlc.month import Month

    os.environ.update({k: env[k] for k in ("STORAGE_EMULATOR_HOST", "TLC_GCS_BUCKET") if k in env})
    lake = Lake.from_config()
    return Counter(e["stage"] for y, m in months for e in ledger.read(lake, Month("yellow", y, m)).get("history", []))


def two_hosts(env: dict[str, str], start: str, stop: str, out: Path) -> tuple[float, list[int]]:
    """The range run by two hosts at once through the stack's luigid, into a lake and warehouse of their own."""
    config = out / "hosts.cfg"
    config.write_text(
        f"[core]\nscheduler_url = {env['LUIGI_SCHEDULER_URL']}\n[worker]\nkeep_alive = true\nwait_jitter = 0.5\n"
        "[tlc.bigquery]\ndataset = split\n[tlc.postgres]\nschema = split\n"
    )
    shared = {**env, "LUIGI_CONFIG_PATH": str(config), "TLC_GCS_BUCKET": "tlc-bench-split"}
    cmd = [arg for arg in luigi_range(start, stop, env) if arg != "--local-scheduler"]
    began = time.monotonic()
    procs = [
        subprocess.Popen(
            cmd,
            env={**shared, "TLC_DATA_DIR": str(out / name), "TLC_WORKER_NAME": name},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for name in ("host-1", "host-2")
    ]
    codes = [p.wait() for p in procs]
    return time.monotonic() - began, codes


def split_line(env: dict[str, str], months: list[tuple[int, int]], out: Path, rows: int) -> None:
    """Print the two-host run of ``months``, and whether its total work is one host's."""
    first, last = (f"{y}-{m:02d}" for y, m in (months[0], months[-1]))
    one = work_done(env, months)
    seconds, codes = two_hosts(env, first, last, out)
    split = work_done({**env, "TLC_GCS_BUCKET": "tlc-bench-split"}, months)
    verdict = "equal to one host's" if split == one else f"NOT one host's ({dict(one)})"
    print(f"  {'the same range split across two hosts':<40} {seconds:8.1f} s {rows / seconds:>10,.0f} rows/s")
    print(f"    work in total (stage records): {dict(sorted(split.items()))}: {verdict}; exit codes {codes}")


def months_from(first: tuple[int, int], count: int) -> list[tuple[int, int]]:
    year, month = first
    out = []
    for _ in range(count):
        out.append((year, month))
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return out


def line(r: Result, rows: int, base: Result | None = None) -> str:
    ratio = f"  {base.seconds / r.seconds:5.1f}x faster, {base.peak_mb / r.peak_mb:4.1f}x less memory" if base else ""
    return f"  {r.name:<40} {r.seconds:8.1f} s {rows / r.seconds:>10,.0f} rows/s {r.peak_mb:7.0f} MB{ratio}"


def noop_line(env: dict[str, str], source: Path, small: list[tuple[int, int]]) -> None:
    """Ingest many small months, then time a rerun that has nothing to do."""
    print(f"\nno-op rerun of {len(small)} months (small months, the check does not depend on size)")
    for year, month in small:  # each where the default source kind (auto) looks for it
        if resolve_source("auto", "yellow", year, month) == "parquet":
            if not parquet_path(source, "yellow", year, month).exists():
                write_parquet_month(source, "yellow", year, month, rows=1000, seed=7)
        elif not month_path(source, "yellow", year, month).exists():
            write_month(source, "yellow", year, month, rows=1000, seed=7)
    s_first, s_last = (f"{y}-{m:02d}" for y, m in (small[0], small[-1]))
    fill = measure(f"tlc-luigi: ingest {len(small)} months", luigi_range(s_first, s_last, env), env)
    print(f"  {fill.name:<40} {fill.seconds:8.1f} s")
    noop = measure(f"tlc-luigi: no-op rerun, {len(small)} months", luigi_range(s_first, s_last, env), env)
    print(f"  {noop.name:<40} {noop.seconds:8.2f} s  (target: under 5 s)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--months", type=int, default=3, help="realistic months to ingest (default 3)")
    parser.add_argument("--rows", type=int, default=ROWS, help=f"rows per month (default {ROWS:,})")
    parser.add_argument("--noop-months", type=int, default=36, help="months in the no-op rerun (default 36)")
    parser.add_argument("--out", default="bench-out/e2e", help="work directory")
    parser.add_argument("--skip-seeds", action="store_true", help="only our pipeline (the seeds take minutes)")
    args = parser.parse_args()
    out = (ROOT / args.out).resolve()
    shutil.rmtree(out / "data", ignore_errors=True)
    (out / "seeds").mkdir(parents=True, exist_ok=True)

    stack = Stack(out / "stack")
    stack.down()  # a fresh warehouse each run: nothing left over from the last one
    for sub in ("bigquery-data", "gcs-data", "postgres"):
        shutil.rmtree(out / "stack" / sub, ignore_errors=True)
    env = {**os.environ, **stack.up(), "TLC_DATA_DIR": str(out / "data")}
    env.pop("LUIGI_CONFIG_PATH", None)  # the single-host runs use --local-scheduler
    source = Path(stack.dir.load_state()["http"]["root"])
    big = months_from((2021, 1), args.months)
    small = months_from((2018, 1), args.noop_months)
    try:
        for year, month in big:
            made_once(
                month_path(source, "yellow", year, month),
                args.rows,
                lambda y=year, m=month: write_month(source, "yellow", y, m, rows=args.rows, seed=y * 100 + m),
                f"yellow {year}-{month:02d}",
            )
        total = args.rows * len(big)
        first, last = (f"{y}-{m:02d}" for y, m in (big[0], big[-1]))
        print(f"\nend to end: {len(big)} yellow months, {total:,} rows: source -> lake -> BigQuery + Postgres")
        ours = measure("tlc-luigi: IngestRange --workers 2", luigi_range(first, last, env), env)
        seeds = None
        if not args.skip_seeds:
            labels = [f"{y}-{m:02d}" for y, m in big]
            cmd = [sys.executable, "-c", SEEDS, env["TLC_SOURCE_URL"], str(out / "seeds"), *labels]
            seeds = measure("seeds: pandas + to_gbq-style load + to_sql", cmd, env)
            print(line(seeds, total))
        print(line(ours, total, seeds))
        rerun = measure("tlc-luigi: no-op rerun of the same range", luigi_range(first, last, env), env)
        print(line(rerun, total))
        split_line(env, big, out, total)

        noop_line(env, source, small)
    finally:
        stack.down()
    return 0


if __name__ == "__main__":
    sys.exit(main())
