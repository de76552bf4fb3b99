"""Notice upstream files that changed after we ingested them, and re-ingest them on request.

``python -m tasks.refresh --colors yellow --start 2019-01 --stop 2021-07`` asks the source
for each ingested month's ETag, Last-Modified and size (a HEAD each) and compares them with
the ledger. Changed months are listed and the command exits 1; with ``--apply`` their raw
file and quality report are removed, so the next ``IngestRange`` downloads, converts and
reloads exactly those months (every later stage checks the Parquet's sha256). Nothing is
ever re-ingested silently.
"""

from __future__ import annotations

import argparse
import sys

from tasks import layout, ledger
from tasks.errors import PipelineError
from tasks.fetch import changed, redact_url, remote_validators, source_url
from tasks.settings import paths, source
from tasks.wrappers import IngestRange


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tasks.refresh", description=__doc__)
    parser.add_argument("--colors", default="yellow,green,fhv")
    parser.add_argument("--start", required=True, help="first month, YYYY-MM")
    parser.add_argument("--stop", help="last month, YYYY-MM, inclusive (default: start)")
    parser.add_argument("--apply", action="store_true", help="invalidate changed months so the next run re-ingests")
    args = parser.parse_args(argv)
    try:
        months = IngestRange(colors=args.colors, start=args.start, stop=args.stop).requires()
        root, src = paths().root(), source()
        stale = []
        for m in months:
            recorded = ledger.read(root, m.color, m.year, m.month).get("stages", {}).get("source")
            if not recorded:
                continue  # never ingested: nothing to compare
            url = source_url(src.base_url(), m.color, m.year, m.month)
            remote = remote_validators(
                url, timeout=src.timeout_seconds, attempts=src.attempts, backoff=src.backoff_seconds
            )
            diff = changed(recorded, remote)
            if diff:
                stale.append(m)
                print(f"{m.label}: changed upstream ({', '.join(diff)}) at {redact_url(url)}")
        for m in stale if args.apply else []:
            raw = layout.raw_path(root, m.color, m.year, m.month)
            parquet = layout.lake_path(root, m.color, m.year, m.month)
            for path in (layout.raw_meta_path(raw), layout.quality_path(parquet)):
                path.unlink(missing_ok=True)
            print(f"{m.label}: invalidated; the next IngestRange re-ingests it")
    except (PipelineError, OSError) as exc:
        print(f"refresh: {exc}", file=sys.stderr)
        return 2
    if not stale:
        print(f"refresh: {len(months)} month(s) checked, none changed upstream")
    return 1 if stale and not args.apply else 0


if __name__ == "__main__":
    sys.exit(main())
