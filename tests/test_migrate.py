"""``python -m tlc.migrate`` turns a lake of the first layout into the shared one without redoing work."""

from __future__ import annotations

import json
from pathlib import Path

from scripts.make_sample_data import write_month
from tasks import GCSObject, ParquetFile
from tests.luigirun import run
from tests.sourceserver import SourceServer
from tlc import layout, ledger
from tlc.gcs.lake import Lake
from tlc.migrate import main as migrate
from tlc.month import Month

MONTH = Month("yellow", 2021, 1)


def to_old_layout(lake: Lake, data: Path) -> None:
    """Put the month's records where the first layout kept them: the manifest beside the Parquet in
    the bucket, the quality report only on this disk, the download only on this disk."""
    old_manifest = layout.lake_key(MONTH).removesuffix(".parquet") + ".manifest.json"
    manifest, _ = lake.read_json(layout.manifest_key(MONTH))
    lake.write_json(old_manifest, manifest)
    for key in (layout.manifest_key(MONTH), layout.quality_key(MONTH), layout.raw_key(MONTH)):
        lake.delete(lake.get(key))
    local_report = layout.quality_path(data, MONTH)
    doc = json.loads(local_report.read_text())
    del doc["fingerprint"], doc["source"]["kind"]  # the first layout's reports had neither
    layout.lake_path(data, MONTH).with_name(f"{MONTH.stem}.quality.json").write_text(json.dumps(doc))
    local_report.unlink()


def test_migration_keeps_every_stage_done_and_is_idempotent(
    pipeline_env: Path, source: SourceServer, source_dir: Path, capsys
) -> None:
    write_month(source_dir, "yellow", 2021, 1, rows=500, seed=1)
    task = GCSObject.of(MONTH)
    assert run([task]).ok
    lake = Lake.from_config()
    recorded = ledger.read(lake, MONTH)["stages"]
    to_old_layout(lake, pipeline_env)
    assert not ParquetFile.of(MONTH).complete()  # unmigrated, the month would be converted again

    assert migrate(["--dry-run"]) == 0
    assert "quality report to _meta/" in capsys.readouterr().out
    assert not ParquetFile.of(MONTH).complete()  # a dry run changes nothing
    assert migrate([]) == 0
    out = capsys.readouterr().out
    assert "manifest to _meta/" in out and "download to the raw zone" in out and "1 month(s)" in out
    assert ledger.read(lake, MONTH)["stages"] == recorded
    gets = list(source.requests)
    again = run([task])
    assert again.ok and again.ran == set() and source.requests == gets  # nothing fetched, converted or published
    assert not any(key.endswith(".manifest.json") for key in lake.listing(layout.color_prefix("yellow")))
    assert migrate([]) == 0 and "0 month(s) of the old layout" in capsys.readouterr().out
    migrated = json.loads(layout.quality_path(pipeline_env, MONTH).read_text())
    assert migrated["rows_written"] == 500 and migrated["fingerprint"] == {}
