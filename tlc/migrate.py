"""``python -m tlc.migrate``: bring a lake of the first layout to the shared one, without redoing any work.

Until 2026-12 a month's quality report lived only on the disk of the host that converted it,
its manifest lay beside its Parquet (in the bucket and on disk), and the downloaded file only
on disk. Now the bucket holds them all (see ``tlc.layout``), so that any host sees a month as
done. The published Parquet keeps its key, so the warehouses' load markers stay valid. For
every month this host has, or the bucket has a manifest of, this command:

* writes the local quality report to ``_meta/`` in the bucket (and the local cache's new place);
* moves the manifest from beside the Parquet to ``_meta/`` (merging a local one if the bucket has none);
* uploads the local download, with its record, to the raw zone.

It never overwrites what the new layout already holds, so it can be rerun; ``--dry-run`` only
says what it would do. Run it on every host that converted months (each kept its reports on its
own disk). A month nobody migrates is downloaded, converted and loaded again by the next run: the
Parquet writer changed since, so its sha256 differs and every sink reloads it.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from tlc import layout, quality
from tlc.atomic import read_json
from tlc.config import PathsConfig
from tlc.errors import PipelineError
from tlc.gcs.lake import Lake
from tlc.lake.writer import file_digests
from tlc.month import Month
from tlc.schema import SCHEMA_VERSION
from tlc.sources.target import RawFile

_OLD = re.compile(
    rf"v{SCHEMA_VERSION}/(?P<color>[a-z]+)/\d{{4}}/(?P=color)_tripdata_(?P<month>\d{{4}}-\d{{2}})\.manifest\.json$"
)


def old_months(lake: Lake, root: Path) -> list[Month]:
    """Months with a manifest in the old place, in the bucket or on this disk."""
    keys = list(lake.listing(f"v{SCHEMA_VERSION}/"))
    local = root / "lake"
    keys += [str(p.relative_to(local)) for p in local.glob(f"v{SCHEMA_VERSION}/*/*/*.manifest.json")]
    return sorted({Month.parse(m["color"], m["month"]) for k in keys if (m := _OLD.search(k))})


def _old_local(root: Path, month: Month, suffix: str) -> Path:
    return layout.lake_path(root, month).with_name(f"{month.stem}.{suffix}.json")


def migrate_month(lake: Lake, root: Path, month: Month, dry_run: bool) -> list[str]:
    """What was (or would be) done for one month."""
    done = []
    report = quality.read(_old_local(root, month, "quality"))
    if report is not None and lake.get(layout.quality_key(month)) is None:
        done.append("quality report to _meta/")
        if not dry_run:
            quality.write(layout.quality_path(root, month), report)
            lake.write_json(layout.quality_key(month), report.to_dict(), if_generation_match=0)
    old_key = layout.lake_key(month).removesuffix(".parquet") + ".manifest.json"
    old_blob = lake.get(old_key)
    manifest = (lake.read_json(old_key)[0] if old_blob else None) or read_json(_old_local(root, month, "manifest"))
    if manifest and lake.get(layout.manifest_key(month)) is None:
        done.append("manifest to _meta/")
        if not dry_run:
            lake.write_json(layout.manifest_key(month), manifest, if_generation_match=0)
    if old_blob is not None:
        done.append("old manifest removed from beside the Parquet")
        if not dry_run:
            lake.delete(old_blob)
    raw = RawFile(lake, root, month)
    record = read_json(raw.record_path)
    if record and raw.path.exists() and not raw.exists():
        done.append("download to the raw zone")
        if not dry_run:
            raw.keep({**record, "md5": record.get("md5") or file_digests(raw.path)["md5"]})
    if not dry_run:
        for suffix in ("quality", "manifest"):
            _old_local(root, month, suffix).unlink(missing_ok=True)
    return done


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tlc.migrate", description=__doc__)
    parser.add_argument("--dry-run", action="store_true", help="say what would change, change nothing")
    args = parser.parse_args(argv)
    try:
        lake, root = Lake.from_config(), PathsConfig().root()
        months = old_months(lake, root)
        for month in months:
            done = migrate_month(lake, root, month, args.dry_run)
            print(f"{month.label}: {'; '.join(done) if done else 'nothing to do'}")
    except PipelineError as exc:
        print(f"migrate: {exc}", file=sys.stderr)
        return 2
    print(f"migrate: {len(months)} month(s) of the old layout{' (dry run)' if args.dry_run else ''}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
