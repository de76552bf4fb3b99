"""`make bench`, the TLC source: a month of the TLC's Parquet -> the canonical Parquet, three ways.

All three read the same local file (a yellow month in the TLC's 2023 layout: int32 IDs, int64
codes, ``large_string``, ``Airport_fee``) and write the canonical yellow schema with zstd, each
in a process of its own, measured by ``scripts.bench.measure`` (wall time, peak RSS by ``wait4``):

* pandas, the seeds' way: ``read_parquet`` + rename + ``astype`` + ``to_parquet``;
* DuckDB: ``COPY (SELECT CAST(...) AS ..., ...) TO ... (FORMAT parquet)``, the same mapping
  written as SQL (built from ``tlc.schema``, so it is the same columns and types);
* ours: ``tlc.lake.convert.convert_month``, as ``ParquetFile.run()`` calls it (quality report,
  out-of-month counts and the safe casts included), with the runtime's jemalloc pool;

then ours on a month five times larger, for memory. The whole ``DownloadTLCParquet +
ParquetFile`` through the luigi CLI over loopback is timed too.
"""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import pyarrow.parquet as pq

from scripts.make_sample_data import made_once
from scripts.sample_parquet import parquet_path, write_parquet_month
from tlc import schema

ROWS = 3_066_766  # yellow 2023-01 as the TLC published it
MONTH = (2023, 1)
BIG = (2023, 3)  # the 5x month

OURS = textwrap.dedent("""
    import sys
    import pyarrow as pa
    pa.set_memory_pool(pa.jemalloc_memory_pool())  # as tasks.runtime.install() does for every task
    from pathlib import Path
    from tlc.lake.convert import convert_month
    from tlc.month import Month
    src, out, year, month = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    print(convert_month(Path(src), Path(out), Month("yellow", year, month, "parquet")).rows_written)
""")

PANDAS = textwrap.dedent("""
    # The seeds' way with a Parquet source: read it whole, rename and cast (the Mage seed's dtypes),
    # write it (the Prefect seed's to_parquet, compression="gzip"; or the codec given).
    import sys, json
    import pandas as pd
    src, out, names, dtypes, day, codec = sys.argv[1], sys.argv[2], *map(json.loads, sys.argv[3:5]), *sys.argv[5:7]
    df = pd.read_parquet(src).rename(columns=names)
    for column, dtype in dtypes.items():
        df[column] = df[column].astype(dtype) if column in df else pd.Series(None, index=df.index, dtype=dtype)
    df["source_month"] = pd.Timestamp(day).date()
    df[list(dtypes) + ["source_month"]].to_parquet(out, compression=codec, index=False)
    print(len(df))
""")

DUCKDB = textwrap.dedent("""
    import sys, duckdb
    duckdb.connect().execute(sys.argv[1])
""")

# The Mage seed's taxi_dtypes: Int64 for IDs and codes, float, str; the times as datetimes.
_PANDAS_DTYPES = {"int": "Int64", "float": "float64", "string": "str", "timestamp": "datetime64[us]"}
_DUCKDB_TYPES = {"int": "BIGINT", "float": "DOUBLE", "string": "VARCHAR", "timestamp": "TIMESTAMP"}


def _mapping(src: Path) -> dict[str, str | None]:
    """canonical column -> the file's column (None when absent), by the pipeline's own header map."""
    header = schema.resolve_header("yellow", pq.read_schema(src).names)
    return {c.name: header.source_of(c.name) for c in schema.YELLOW}


def duckdb_sql(src: Path, dest: Path, year: int, month: int) -> str:
    kinds = {c.name: c.kind for c in schema.YELLOW}
    select = ", ".join(
        f"CAST({f'{chr(34)}{name}{chr(34)}' if name else 'NULL'} AS {_DUCKDB_TYPES[kinds[canonical]]}) AS {canonical}"
        for canonical, name in _mapping(src).items()
    )
    return (
        f"COPY (SELECT {select}, DATE '{year}-{month:02d}-01' AS source_month FROM read_parquet('{src}')) "  # noqa: S608 - the bench's own paths and the schema's names
        f"TO '{dest}' (FORMAT parquet, COMPRESSION zstd)"
    )


def pandas_args(src: Path, year: int, month: int, codec: str = "gzip") -> list[str]:
    mapping = _mapping(src)
    names = {name: canonical for canonical, name in mapping.items() if name}
    dtypes = {c.name: _PANDAS_DTYPES[c.kind] for c in schema.YELLOW}
    return [json.dumps(names), json.dumps(dtypes), f"{year}-{month:02d}-01", codec]


def publish(source: Path, rows: int, skip_big: bool) -> list[Path]:
    """The 1x (and 5x) months at the TLC layout of the bench's source directory, made once."""
    return [
        made_once(
            parquet_path(source, "yellow", year, month),
            n,
            lambda y=year, m=month, n=n: write_parquet_month(source, "yellow", y, m, rows=n, seed=1),
            f"yellow {year}-{month:02d} in the TLC's Parquet layout",
        )
        for (year, month), n in [(MONTH, rows)] + ([] if skip_big else [(BIG, 5 * rows)])
    ]


def run(env: dict[str, str], source: Path, out: Path, rows: int, skip_big: bool) -> None:
    from scripts.bench import luigi_month, measure, row  # here: scripts/bench.py imports this module

    months = publish(source, rows, skip_big)
    src = months[0]
    print(f"\nTLC Parquet -> canonical Parquet, yellow {MONTH[0]}-{MONTH[1]:02d}, {rows:,} rows "
          f"({src.stat().st_size / 1e6:.1f} MB), local file")  # fmt: skip
    py = sys.executable
    pandas_cmd = [py, "-c", PANDAS, str(src), str(out / "pandas.parquet"), *pandas_args(src, *MONTH)]
    pandas = measure("seeds: pandas read_parquet + astype + to_parquet", pandas_cmd, env)
    zstd_cmd = [py, "-c", PANDAS, str(src), str(out / "pandas-zstd.parquet"), *pandas_args(src, *MONTH, "zstd")]
    pandas_zstd = measure("the same, to_parquet with zstd like ours", zstd_cmd, env)
    duck = measure("DuckDB COPY (SELECT casts) TO parquet",
                   [py, "-c", DUCKDB, duckdb_sql(src, out / "duckdb.parquet", *MONTH)], env)  # fmt: skip
    ours = measure(
        "tlc-luigi convert_month", [py, "-c", OURS, str(src), str(out / "ours.parquet"), *map(str, MONTH)], env
    )
    print(row(pandas))
    print(row(pandas_zstd))
    print(row(duck))
    print(row(ours, pandas) + f"  {ours.seconds / duck.seconds:4.2f}x DuckDB's time")
    print(f"  {'':<44} vs pandas with zstd: {pandas_zstd.seconds / ours.seconds:.1f}x faster")
    if not skip_big:
        big = measure(f"tlc-luigi convert_month, 5x month ({5 * rows:,} rows)",
                      [py, "-c", OURS, str(months[1]), str(out / "ours-big.parquet"), *map(str, BIG)], env)  # fmt: skip
        print(row(big) + f"  memory {big.peak_mb / ours.peak_mb:.2f}x of the 1x month")
    task = measure("tlc-luigi: DownloadTLCParquet + ParquetFile (CLI, HTTP)",
                   luigi_month("ParquetFile", *MONTH, out / "data-tlc", env), env)  # fmt: skip
    print(row(task))
