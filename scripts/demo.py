"""`make demo`: the whole pipeline on the local stack, on generated months of real layout.

Starts the stack (idempotently), publishes sample months on the loopback sources (the
DataTalksClub CSV releases and the TLC's Parquet files), runs the ranges through luigi, then
says what landed where. A second run finds everything done.

The source also gets the months the README's examples name (yellow and green 2019-01 to
2021-07, small), so that every command of README.md works after `make demo` and
`. .stack/env` (tests/test_readme.py runs them); the demo itself ingests only RANGES.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

from scripts.make_sample_data import month_path, write_month
from scripts.sample_parquet import parquet_path, write_parquet_month
from scripts.stack import Stack
from tlc.month import Month

ROOT = Path(__file__).resolve().parents[1]

# From the CSV releases ([tlc.source] kind = auto takes them for 2019-01..2021-07): three yellow
# months and one each of green and fhv; from the TLC's Parquet files: 2024-01 of all four
# services. Each in the layout that month really had.
RANGES = [
    ("yellow", "2021-01", "2021-03"),
    ("green,fhv", "2021-01", "2021-01"),
    ("yellow,green,fhv,fhvhv", "2024-01", "2024-01"),
]
ROWS = 20_000
# What README.md's examples ingest: published, not ingested by the demo. Small, so the
# README's 62-month backfill takes seconds (about 22 s on 2 CPUs through all sinks).
README_RANGES = [("yellow,green", "2019-01", "2021-07")]
README_ROWS = 200


def months(start: str, stop: str) -> list[tuple[int, int]]:
    (y0, m0), (y1, m1) = (tuple(map(int, s.split("-"))) for s in (start, stop))
    return [(y, m) for y in range(y0, y1 + 1) for m in range(1, 13) if (y0, m0) <= (y, m) <= (y1, m1)]


def publish_samples(source: Path, rows: int = ROWS) -> list[Path]:
    """Generate the demo's and the README's months into the stack's source directory.

    Each month is written once, like a real release: an existing file is never replaced,
    so a rerun (or a larger --rows later) changes nothing the pipeline has already fetched.
    """
    written = []
    for ranges, size in ((RANGES, rows), (README_RANGES, README_ROWS)):
        for colors, start, stop in ranges:
            for color in colors.split(","):
                for year, month in months(start, stop):
                    tlc = Month(color, year, month).source == "parquet"  # as kind = auto resolves it
                    path = (parquet_path if tlc else month_path)(source, color, year, month)
                    if not path.exists():
                        write = write_parquet_month if tlc else write_month
                        written.append(write(source, color, year, month, rows=size, seed=2021))
    return written


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--stack", default=".stack", help="stack directory (default .stack)")
    parser.add_argument("--rows", type=int, default=ROWS, help=f"rows per generated month (default {ROWS})")
    args = parser.parse_args()

    stack = Stack(Path(args.stack))
    print(f"starting the local stack in {stack.dir.root} ...", flush=True)
    env = {**os.environ, **stack.up(), "TLC_DATA_DIR": str(ROOT / "data")}
    publish_samples(Path(stack.dir.load_state()["http"]["root"]), rows=args.rows)

    luigi = Path(sys.executable).with_name("luigi")
    print(f"central scheduler UI: {env['TLC_UI_URL']}", flush=True)
    began = time.monotonic()
    for colors, start, stop in RANGES:
        cmd = [
            str(luigi),
            "--module",
            "tasks",
            "IngestRange",
            "--colors",
            colors,
            "--start",
            start,
            "--stop",
            stop,
            "--workers",
            "2",
            "--scheduler-url",
            env["LUIGI_SCHEDULER_URL"],
        ]
        print("$", " ".join(cmd[1:]), flush=True)
        proc = subprocess.run(cmd, cwd=ROOT, env=env, check=False, capture_output=True, text=True)
        summary = proc.stderr[proc.stderr.find("===== Luigi Execution Summary") :]
        print(summary.strip() or proc.stderr[-2000:], flush=True)
        if proc.returncode != 0:
            print(f"demo: luigi exited {proc.returncode}", file=sys.stderr)
            return proc.returncode

    print(f"\ndone in {time.monotonic() - began:.1f}s. Every month, counted where it landed:\n", flush=True)
    report = ROOT / "data" / "report.html"
    proc = subprocess.run([sys.executable, "-m", "tlc.report", "--html", str(report)], cwd=ROOT, env=env, check=False)
    gcs = f"gs://{env.get('TLC_GCS_BUCKET', 'tlc-lake')}/lake/ at {env['STORAGE_EMULATOR_HOST']}"
    bq = f"{env['TLC_BIGQUERY_PROJECT']}.tlc.<color>_tripdata at {env['TLC_BIGQUERY_ENDPOINT']}"
    pg = f"tlc.<color>_tripdata at {env['PGHOST']}:{env['PGPORT']} (. {stack.dir.root / 'env'}; psql)"
    places = [
        ("the lake (the truth): raw files, Parquet, records", gcs),
        ("  published Parquet, alone under its prefix", "lake/v1/<color>/<YYYY>/<color>_tripdata_<YYYY-MM>.parquet"),
        ("  quality reports and manifests", "lake/_meta/v1/<color>/"),
        ("this host's cache of it", str(ROOT / "data")),
        ("BigQuery (bqemulator)", bq),
        ("PostgreSQL", pg),
        ("reconciliation page", str(report)),
        ("luigid UI", env["TLC_UI_URL"]),
    ]
    print("\nwhere things are:")
    for what, where in places:
        print(f"  {what:<40} {where}")
    print("run `make demo` again: nothing is fetched or loaded twice. Stop the services: make stack-down")
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main())
