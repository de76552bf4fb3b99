"""``python -m tlc.report`` (``make report``): reconcile every ingested month; exit 1 on any mismatch.

Prints one table of rows per month and stage, writes a self-contained HTML page (rows per
month per color, a months x colors coverage grid), and exits 1 when any stage disagrees.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tlc.config import PathsConfig
from tlc.errors import PipelineError
from tlc.report.html import html_page, table
from tlc.report.reconcile import reconcile, stale_note


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tlc.report", description=__doc__)
    parser.add_argument("--html", default="report.html", help="where to write the page (default report.html)")
    parser.add_argument("--skip", default="", help="comma-separated sinks not to query: gcs,bigquery,postgres")
    args = parser.parse_args(argv)
    skip = {s for s in args.skip.split(",") if s}
    try:
        rows, strays = reconcile(PathsConfig().root(), skip)
    except PipelineError as exc:
        print(f"report: {exc}", file=sys.stderr)
        return 2
    print(table(rows, skip))
    for stray in strays:
        print(f"manifest of no month: {stray}")
    Path(args.html).write_text(html_page(rows, skip))
    bad = [r for r in rows if r.status == "mismatch"]
    rebuilt = stale_note(rows)
    print(f"\n{len(rows)} month(s); {len(bad) + len(strays)} mismatch(es){rebuilt}; page: {Path(args.html).resolve()}")
    return 1 if bad or strays else 0


if __name__ == "__main__":
    sys.exit(main())
