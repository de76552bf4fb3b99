"""Command line of the local stack: ``python -m scripts.stack up|down|status [--dir DIR]``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from scripts.stack import SERVICES, Stack, StackError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.stack", description=__doc__)
    parser.add_argument("action", choices=("up", "down", "status"))
    parser.add_argument("--dir", default=".stack", help="stack directory (default: .stack)")
    parser.add_argument(
        "--services", default=",".join(SERVICES), help=f"comma-separated subset of {','.join(SERVICES)}"
    )
    args = parser.parse_args(argv)
    stack = Stack(Path(args.dir))
    try:
        if args.action == "up":
            wanted = tuple(s for s in args.services.split(",") if s)
            unknown = sorted(set(wanted) - set(SERVICES))
            if unknown:
                parser.error(f"unknown service(s) {unknown}; known: {', '.join(SERVICES)}")
            env = stack.up(wanted)
            print(f"stack up in {stack.dir.root}; endpoints in {stack.dir.root / 'env'}:")
            for key, value in sorted(env.items()):
                if "PASSWORD" not in key:
                    print(f"  {key}={value}")
        elif args.action == "down":
            stack.down()
            print(f"stack in {stack.dir.root} stopped")
        else:
            for name, ok in stack.status().items():
                print(f"{name}: {'up' if ok else 'DOWN'}")
    except StackError as exc:
        print(f"stack: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
