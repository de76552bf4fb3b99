"""``python -m tlc.publish`` (``make publish``): the course's dbt sources, as views over what landed.

Every setting of every chosen engine is checked first (exit 2, one line, nothing created);
then each engine's views are replaced, and the months each view holds are printed. An engine
that fails says why in one line and the command exits 1; the others are still published.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Protocol

from tlc.errors import InvalidInput, PipelineError
from tlc.publish.bigquery_views import BigQueryViews
from tlc.publish.held import Published
from tlc.publish.lake_views import LakeViews
from tlc.publish.postgres_views import PostgresViews


class Views(Protocol):
    def publish(self) -> Published: ...


ENGINES: dict[str, Callable[[], Views]] = {
    "duckdb": LakeViews.from_config,
    "bigquery": BigQueryViews.from_config,
    "postgres": PostgresViews.from_config,
}


def parse_engines(text: str) -> list[str]:
    engines = list(dict.fromkeys(e.strip() for e in text.split(",") if e.strip()))
    unknown = [e for e in engines if e not in ENGINES]
    if unknown or not engines:
        raise InvalidInput(f"targets {text!r} are not valid: use some of {', '.join(ENGINES)}")
    return engines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tlc.publish", description=__doc__)
    parser.add_argument("--targets", default=",".join(ENGINES), help=f"comma-separated, of {','.join(ENGINES)}")
    args = parser.parse_args(argv)
    try:
        plans = {engine: ENGINES[engine]() for engine in parse_engines(args.targets)}
    except PipelineError as exc:
        print(f"publish: {exc}", file=sys.stderr)
        return 2
    failed = []
    for engine, plan in plans.items():
        try:
            held = plan.publish()
        except PipelineError as exc:
            print(f"publish: {engine}: {exc}", file=sys.stderr)
            failed.append(engine)
            continue
        print("\n".join(held.lines()), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
