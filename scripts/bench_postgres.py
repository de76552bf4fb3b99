"""Postgres part of `make bench`: our PostgresTable load against the seeds' ``to_sql`` and a raw ``\\copy``.

Three ways to get the same month into PostgreSQL, each in a child process of its own, timed
and measured (peak RSS via ``wait4``) by ``scripts.bench.measure``:

(a) ``PostgresTable.run()``: binary COPY streamed from the Parquet, then the partition swap;
(b) the seeds' ``ingest_data.py``: pandas ``read_csv`` of the CSV.gz in 100k-row chunks and
    ``to_sql(chunksize=100000, if_exists="append")`` through SQLAlchemy's psycopg2 driver;
    slow (minutes for a real month), so it can run on the first N rows and be extrapolated;
(c) the floor: ``psql -c "\\copy ... CSV HEADER"`` of the gunzipped CSV into a plain table
    with the same column types; only the ``\\copy`` is timed.

(a) and (c) are fast and noisy (checkpoints, the page cache), so they run ``repeat`` times,
interleaved, and the fastest run counts. ``run()`` is called from ``scripts/bench.py``;
``python -m scripts.bench_postgres`` runs it alone on a generated month.
"""

from __future__ import annotations

import argparse
import gzip
import os
import shutil
import sys
import textwrap
from pathlib import Path

import psycopg2
import pyarrow.parquet as pq
from psycopg2 import sql

from tlc import layout, quality, schema
from tlc.config import PostgresConfig
from tlc.month import Month

ROOT = Path(__file__).resolve().parents[1]

BENCH_SCHEMA = "tlc_bench"  # (b) and (c) write here, never into the pipeline's schema
FLOOR_TABLE = "copy_floor"
SEEDS_TABLE = "seeds_to_sql"

# What PostgresTable costs in a fresh process: import, connect, ensure, COPY, swap (make(), which
# run() calls once it has checked the month is not loaded already).
OURS = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from tasks import PostgresTable
    color, year, month, timing = *sys.argv[1:4], Path(sys.argv[4])
    year, month = int(year), int(month)
    began = time.monotonic()
    task = PostgresTable(color=color, year=year, month=month)
    task.set_status_message = task.set_progress_percentage = lambda _: None  # no luigi worker to tell
    task.make()
    timing.write_text(f"{time.monotonic() - began:.3f}")
""")

# The seeds' ingest_data.py (week 1 of the course), but for the schema and the row limit.
SEEDS = textwrap.dedent("""
    import sys
    import pandas as pd
    import sqlalchemy
    csv, schema, table, limit = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    engine = sqlalchemy.create_engine("postgresql+psycopg2://")  # libpq reads PGHOST, PGPASSWORD, ...
    chunks = pd.read_csv(csv, iterator=True, chunksize=100_000, nrows=limit or None)
    rows = 0
    for i, df in enumerate(chunks):
        for name in [c for c in df.columns if c.lower().endswith("_datetime")]:
            df[name] = pd.to_datetime(df[name])
        if i == 0:
            df.head(n=0).to_sql(name=table, con=engine, schema=schema, if_exists="replace")
        df.to_sql(name=table, con=engine, schema=schema, if_exists="append", chunksize=100_000)
        rows += len(df)
    print(rows)
""")


def _month_of(parquet: Path) -> tuple[str, int, int]:
    """(color, year, month) from the Parquet itself: its schema metadata and ``source_month``."""
    pf = pq.ParquetFile(parquet)
    color = (pf.schema_arrow.metadata or {}).get(b"tlc.color", b"").decode()
    first = pf.read_row_group(0, columns=[schema.SOURCE_MONTH]).column(0)[0].as_py()
    if not color or first is None:
        raise SystemExit(f"bench: {parquet} is not a tlc-luigi Parquet (no color or source_month)")
    return color, first.year, first.month


def _root_of(parquet: Path, month: Month) -> Path:
    """The data directory a lake Parquet's path lies under (``<root>/lake/<key>``)."""
    return Path(str(parquet).removesuffix("/lake/" + layout.lake_key(month)))


def _stage_lake(parquet: Path, color: str, year: int, month: int, data: Path) -> None:
    """Put the Parquet and its quality report where PostgresTable looks for this host's copy under
    ``data`` (the month must be published in the lake bucket already: PostgresTable reads its report)."""
    unit = Month(color, year, month)
    dest = layout.lake_path(data, unit)
    if dest.resolve() == parquet.resolve():
        return
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.unlink(missing_ok=True)
    try:
        os.link(parquet, dest)
    except OSError:  # another filesystem
        shutil.copyfile(parquet, dest)
    report = quality.read(layout.quality_path(_root_of(parquet, unit), unit))
    if report is None:
        raise SystemExit(f"{parquet} has no quality report: convert it with the pipeline first")
    quality.write(layout.quality_path(data, unit), report)


def publish(parquet: Path, report: quality.QualityReport, month: Month) -> None:
    """Stage and publish a converted month in the lake bucket, as ParquetFile and GCSObject do."""
    from tlc.gcs.lake import Lake
    from tlc.lake.target import LakeParquet

    lake = Lake.from_config()
    target = LakeParquet(lake, _root_of(parquet, month), month, report.rules)
    target.keep(report)
    metadata = {"rows": str(report.rows_written), "parquet_sha256": report.parquet.sha256}
    before = lake.get(layout.lake_key(month))
    lake.publish(
        target.stored(report), layout.lake_key(month), report.parquet.md5, metadata, before.generation if before else 0
    )


def _execute(statements: list[sql.Composable | str]) -> None:
    with psycopg2.connect() as conn, conn.cursor() as cur:  # libpq's PG* variables (os.environ)
        for statement in statements:
            cur.execute(statement)
    conn.close()


def _forget_month(pg_schema: str, color: str, year: int, month: int) -> None:
    """Drop the month's partition and marker, so each run of (a) is a first load, like (c)."""
    partition = sql.Identifier(pg_schema, f"{color}_tripdata_{year}_{month:02d}")
    markers = sql.Identifier(pg_schema, "load_markers")
    with psycopg2.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT to_regclass(%s) IS NOT NULL", (f"{pg_schema}.load_markers",))
        if cur.fetchone()[0]:
            cur.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(partition))
            cur.execute(
                sql.SQL("DELETE FROM {} WHERE color = %s AND source_month = %s").format(markers),
                (color, f"{year}-{month:02d}-01"),
            )
    conn.close()


def _gunzip(csv_gz: Path, dest: Path) -> tuple[list[str], int]:
    """Decompress once (not timed); return the header and the number of data rows."""
    with gzip.open(csv_gz, "rb") as src, open(dest, "wb") as out:
        shutil.copyfileobj(src, out, 4 << 20)
    with open(dest, "rb") as fh:
        header = fh.readline().decode("utf-8-sig").strip().split(",")
        rows = sum(1 for line in fh if line.strip())
    return header, rows


def _floor_columns(color: str, header: list[str], csv: Path) -> sql.Composed:
    """The CSV's own columns, typed as our table types them (int columns written ``1.0`` as double)."""
    mapping = schema.resolve_header(color, header)
    kinds = {c.name: c.kind for c in schema.columns(color)}
    with open(csv, encoding="utf-8-sig") as fh:
        sample = [line.rstrip("\n").split(",") for _, line in zip(range(2000), fh, strict=False)][1:]
    defs = []
    for i, (source, name) in enumerate(zip(mapping.source, mapping.canonical, strict=True)):
        pg_type = schema.POSTGRES_TYPES[kinds[name]]
        if kinds[name] == "int" and any("." in row[i] for row in sample if i < len(row)):
            pg_type = "double precision"
        defs.append(sql.SQL("{} {}").format(sql.Identifier(source.lower()), sql.SQL(pg_type)))
    return sql.SQL(", ").join(defs)


def run(
    env: dict[str, str],
    parquet: Path,
    csv_gz: Path,
    out: Path,
    to_sql_rows: int | None = None,
    repeat: int = 3,
) -> list[tuple[str, float, float]]:
    """(name, seconds, peak MB) for (a) ours, (b) the seeds' to_sql, (c) psql \\copy, same month.

    ``env`` must carry the PG* variables of a running server (``Stack.up(("postgres",))``).
    ``to_sql_rows`` runs (b) on the first N rows only and scales its time linearly.
    """
    from scripts.bench import Result, measure  # here, not at the top: scripts/bench.py imports this module

    env = {**os.environ, **env}
    saved = {k: os.environ.get(k) for k in env if k.startswith("PG")}
    os.environ.update({k: v for k, v in env.items() if k.startswith("PG")})  # for our own set-up queries
    try:
        out.mkdir(parents=True, exist_ok=True)
        color, year, month = _month_of(parquet)
        data = out / "pg-data"
        _stage_lake(parquet, color, year, month, data)
        env["TLC_DATA_DIR"] = str(data)
        csv = out / f"{color}_{year}_{month:02d}.csv"
        header, csv_rows = _gunzip(csv_gz, csv)
        floor = sql.Identifier(BENCH_SCHEMA, FLOOR_TABLE)
        _execute([sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(BENCH_SCHEMA))])

        pg_schema = PostgresConfig().schema_name()
        timing = out / "ours-run-seconds"
        copy_cmd = [
            "psql",
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            f"\\copy {BENCH_SCHEMA}.{FLOOR_TABLE} FROM '{csv}' CSV HEADER",
        ]
        runs: list[tuple[Result, float]] = []
        floor_runs: list[Result] = []
        for _ in range(max(repeat, 1)):
            _forget_month(pg_schema, color, year, month)
            cmd = [sys.executable, "-c", OURS, color, str(year), str(month), str(timing)]
            runs.append((measure("ours", cmd, env), float(timing.read_text())))
            _execute(
                [
                    sql.SQL("DROP TABLE IF EXISTS {}").format(floor),
                    sql.SQL("CREATE TABLE {} ({})").format(floor, _floor_columns(color, header, csv)),
                ]
            )
            floor_runs.append(measure("floor", copy_cmd, env))

        limit = to_sql_rows if to_sql_rows and to_sql_rows < csv_rows else 0
        seeds = measure("seeds", [sys.executable, "-c", SEEDS, str(csv_gz), BENCH_SCHEMA, SEEDS_TABLE, str(limit)], env)
        seeds_name = "seeds: read_csv chunks + to_sql(chunksize=100000)"
        if limit:
            seeds.seconds *= csv_rows / limit
            seeds_name += f" [extrapolated from {limit:,} rows]"
            print(f"  to_sql ran on the first {limit:,} of {csv_rows:,} rows; its time is scaled linearly", flush=True)

        n = max(repeat, 1)
        best = min(runs, key=lambda r: r[0].seconds)[0]
        peak = max(r.peak_mb for r, _ in runs)
        rows = [
            (f"tlc-luigi: PostgresTable.run() (best of {n})", best.seconds, peak),
            ("  of which inside run() (no interpreter start/imports)", min(t for _, t in runs), peak),
        ]
        best_floor = min(floor_runs, key=lambda r: r.seconds)
        return [
            *rows,
            (seeds_name, seeds.seconds, seeds.peak_mb),
            (f"floor: psql \\copy of the CSV (best of {n})", best_floor.seconds, max(r.peak_mb for r in floor_runs)),
        ]
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def main() -> int:
    """Generate and convert a month, start a throwaway PostgreSQL, run the three loads, print them."""
    from scripts.bench import ROWS
    from scripts.make_sample_data import made_once, month_path, write_month
    from scripts.stack import Stack
    from tlc.lake.convert import convert_month

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=ROWS, help=f"rows of the month (default {ROWS:,})")
    parser.add_argument("--out", default="bench-out/postgres", help="work directory (default bench-out/postgres)")
    parser.add_argument("--to-sql-rows", type=int, default=None, help="run to_sql on the first N rows, extrapolate")
    parser.add_argument("--repeat", type=int, default=3, help="runs of (a) and (c), the fastest counts (default 3)")
    args = parser.parse_args()
    out = (ROOT / args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)

    csv_gz = made_once(
        month_path(out / "src", "yellow", 2021, 1),
        args.rows,
        lambda: write_month(out / "src", "yellow", 2021, 1, rows=args.rows, seed=1),
        "yellow 2021-01",
    )
    month = Month("yellow", 2021, 1)
    parquet = layout.lake_path(out / "lake-src", month)
    report = convert_month(csv_gz, parquet, month)

    stack = Stack(out / "stack")
    try:
        env = stack.up(("gcs", "postgres"))
        os.environ.update({k: v for k, v in env.items() if k == "STORAGE_EMULATOR_HOST"})
        publish(parquet, report, month)
        rows = run(env, parquet, csv_gz, out, args.to_sql_rows, args.repeat)
    finally:
        stack.down()
    floor = rows[-1][1]
    print(f"\nCSV.gz/Parquet -> PostgreSQL, yellow 2021-01, {args.rows:,} rows")
    for name, seconds, peak in rows:
        print(f"  {name:<62} {seconds:8.2f} s  {peak:6.0f} MB  {seconds / floor:5.2f}x the \\copy floor")
    return 0


if __name__ == "__main__":
    sys.exit(main())
