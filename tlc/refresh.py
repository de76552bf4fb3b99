"""Notice upstream files that changed after we ingested them, and re-ingest them on request.

``python -m tlc.refresh --colors yellow --start 2019-01 --stop 2021-07`` asks the source
for each ingested month's ETag, Last-Modified and size (a HEAD each) and compares them with
the ledger. Changed months are listed and the command exits 1; with ``--apply`` their raw
file and quality report are removed, so the next ``IngestRange`` downloads, converts and
reloads exactly those months (every later stage checks the Parquet's sha256). Nothing is
ever re-ingested silently.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tlc import layout, ledger
from tlc.config import PathsConfig, SourceConfig
from tlc.errors import PipelineError
from tlc.gcs.lake import Lake
from tlc.month import Month, parse_colors, parse_span
from tlc.sources import csv_releases
from tlc.sources.http import changed, redact_url, remote_validators


def invalidate(lake: Lake, root: Path, month: Month) -> None:
    """Drop the month's download and quality report, in the lake and in this host's cache: the next
    run downloads and converts it again, and every sink, checking the Parquet's sha256, reloads it."""
    for blob in (lake.get(layout.raw_key(month)), lake.get(layout.quality_key(month))):
        if blob is not None:
            lake.delete(blob)
    for path in (layout.raw_meta_path(layout.raw_path(root, month)), layout.quality_path(root, month)):
        path.unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tlc.refresh", description=__doc__)
    parser.add_argument("--colors", default="yellow,green,fhv")
    parser.add_argument("--start", required=True, help="first month, YYYY-MM")
    parser.add_argument("--stop", help="last month, YYYY-MM, inclusive (default: start)")
    parser.add_argument("--apply", action="store_true", help="invalidate changed months so the next run re-ingests")
    args = parser.parse_args(argv)
    try:
        span = parse_span(args.start, args.stop)
        months = [Month(c, y, m) for c in parse_colors(args.colors) for y, m in span]
        root, src, lake = PathsConfig().root(), SourceConfig(), Lake.from_config()
        stale = []
        for m in months:
            recorded = ledger.read(lake, m).get("stages", {}).get("source")
            if not recorded:
                continue  # never ingested: nothing to compare
            url = csv_releases.url(src.base_url(), m)
            diff = changed(recorded, remote_validators(url, src.retry()))
            if diff:
                stale.append(m)
                print(f"{m.label}: changed upstream ({', '.join(diff)}) at {redact_url(url)}")
        for m in stale if args.apply else []:
            invalidate(lake, root, m)
            print(f"{m.label}: invalidated; the next IngestRange re-ingests it")
    except (PipelineError, OSError) as exc:
        print(f"refresh: {exc}", file=sys.stderr)
        return 2
    if not stale:
        print(f"refresh: {len(months)} month(s) checked, none changed upstream")
    return 1 if stale and not args.apply else 0


if __name__ == "__main__":
    sys.exit(main())
