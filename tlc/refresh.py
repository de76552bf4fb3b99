"""Notice months whose source changed after we ingested them, and re-ingest them on request.

``python -m tlc.refresh --colors yellow --start 2019-01 --stop 2021-07`` lists two kinds of
change, and exits 1 if it found any:

* changed upstream: the source's ETag, Last-Modified or size (a HEAD each) differ from what
  the ledger recorded when the month was downloaded;
* another source: the month was ingested from one source kind (the ledger's ``source`` entry
  names it: the CSV releases or the TLC's Parquet) and ``[tlc.source] kind`` now gives the
  other. The pipeline keeps the month as it is (its Parquet is complete whatever its source),
  so a month never switches source by itself.

With ``--apply`` those months' download record and quality report are removed, so the next
``IngestRange`` downloads, converts and reloads exactly those months, from the source now
configured (every later stage checks the Parquet's sha256). Nothing is re-ingested silently.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from tlc import layout, ledger
from tlc.config import PathsConfig, SourceConfig
from tlc.errors import PipelineError
from tlc.gcs.lake import Lake
from tlc.lake.target import lake_report
from tlc.month import COLORS, Month, month_units, parse_colors, parse_span
from tlc.sources.http import changed, redact_url, remote_validators
from tlc.sources.kinds import NAMES, month_url


def made_from(lake: Lake, month: Month, recorded: dict) -> str:
    """The source kind the month's Parquet was made from (its quality report says), else the one the
    ledger's ``source`` entry names; records older than the TLC source are the CSV releases'."""
    report = lake_report(lake, month)
    return (report.source.kind if report else recorded.get("kind")) or "csv"


def _check(lake: Lake, month: Month, recorded: dict, src: SourceConfig) -> Month | None:
    """The month as it was ingested, when it must be re-ingested (and says why), else None."""
    was = made_from(lake, month, recorded)
    if was != month.source:
        print(f"{month.label}: ingested from {NAMES[was]}, [tlc.source] kind now gives {NAMES[month.source]}")
        return dataclasses.replace(month, source=was)
    url = month_url(month, src)
    diff = changed(recorded, remote_validators(url, src.retry()))
    if diff:
        print(f"{month.label}: changed upstream ({', '.join(diff)}) at {redact_url(url)}")
        return month
    return None


def invalidate(lake: Lake, root: Path, *months: Month) -> None:
    """Drop the months' downloads and quality report, in the lake and in this host's cache: the next
    run downloads and converts them again, and every sink, checking the Parquet's sha256, reloads.
    (Two Months of one month when its source changes: each source's download has its own name.)"""
    keys = {layout.quality_key(m) for m in months} | {layout.raw_key(m) for m in months}
    for blob in (lake.get(key) for key in sorted(keys)):
        if blob is not None:
            lake.delete(blob)
    for m in months:
        for path in (layout.raw_meta_path(layout.raw_path(root, m)), layout.quality_path(root, m)):
            path.unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tlc.refresh", description=__doc__)
    parser.add_argument("--colors", default=",".join(COLORS))
    parser.add_argument("--start", required=True, help="first month, YYYY-MM")
    parser.add_argument("--stop", help="last month, YYYY-MM, inclusive (default: start)")
    parser.add_argument("--apply", action="store_true", help="invalidate those months so the next run re-ingests")
    args = parser.parse_args(argv)
    try:
        src = SourceConfig()
        months, _ = month_units(parse_colors(args.colors), parse_span(args.start, args.stop), src.kind)
        root, lake = PathsConfig().root(), Lake.from_config()
        stale = []
        for m in months:
            recorded = ledger.read(lake, m).get("stages", {}).get("source")
            if recorded:  # never ingested: nothing to compare
                ingested = _check(lake, m, recorded, src)
                stale += [ingested] if ingested else []
        for m in stale if args.apply else []:
            invalidate(lake, root, m, dataclasses.replace(m, source=src.source_of(m.color, m.year, m.month)))
            print(f"{m.label}: invalidated; the next IngestRange re-ingests it")
    except (PipelineError, OSError) as exc:
        print(f"refresh: {exc}", file=sys.stderr)
        return 2
    if not stale:
        print(f"refresh: {len(months)} month(s) checked, none changed upstream or source")
    return 1 if stale and not args.apply else 0


if __name__ == "__main__":
    sys.exit(main())
