"""Reliability round two: values nobody counted, manifests nobody checked, months half-landed, rules changed.

Two months are ingested into every sink by the real pipeline; then one thing is changed behind the
pipeline's back (a fare updated in a warehouse, a row swapped for a copy of another, a manifest
edited or cut short, a stray manifest, a partition dropped, a cleaning rule changed) and the
reconciliation report (``python -m tlc.report``, run in-process) must say exactly which month,
sink and column, exit 1, and, where the pipeline can heal it, a plain rerun must make it exact.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tasks import IngestMonth, ParquetFile
from tests.faults.conftest import Sinks
from tests.faults.helpers import error_messages
from tests.luigirun import run
from tests.sourceserver import SourceServer
from tlc import layout, ledger
from tlc.gcs.lake import Lake
from tlc.month import Month
from tlc.report.__main__ import main as report

pytestmark = pytest.mark.faults

JAN, FEB = Month("yellow", 2021, 1), Month("yellow", 2021, 2)


@pytest.fixture
def landed(pipeline_env: Path, source: SourceServer, sinks: Sinks, publish: Callable[..., Path]) -> Sinks:
    for m in (JAN, FEB):
        publish(m.color, m.year, m.month, seed=m.month)
    assert run([IngestMonth.of(JAN), IngestMonth.of(FEB)]).ok
    return sinks


def reconciled(tmp_path: Path, capsys: pytest.CaptureFixture) -> tuple[int, dict[str, str]]:
    """The report's exit code and its line per month."""
    code = report(["--html", str(tmp_path / "report.html")])
    out = capsys.readouterr().out
    return code, {line[:14].strip(): line for line in out.splitlines() if line.startswith("yellow ")}


def test_untouched_months_reconcile_value_by_value(landed: Sinks, tmp_path: Path, capsys) -> None:
    code, lines = reconciled(tmp_path, capsys)
    assert code == 0, lines
    assert all(line.rstrip().endswith("ok") for line in lines.values()) and len(lines) == 2


TAMPERING: dict[str, tuple[Callable[[Sinks], None], str]] = {
    "postgres-fare-updated": (
        lambda s: s.pg(
            f"UPDATE {s.schema}.yellow_tripdata_2021_01 SET fare_amount = fare_amount + 0.01 "
            f"WHERE ctid = (SELECT min(ctid) FROM {s.schema}.yellow_tripdata_2021_01)"
        ),
        "postgres values differ: fare_amount cents",
    ),
    "postgres-row-swapped-for-a-copy": (
        lambda s: s.pg(
            f"WITH gone AS (DELETE FROM {s.schema}.yellow_tripdata_2021_01 WHERE ctid = "
            f"(SELECT min(ctid) FROM {s.schema}.yellow_tripdata_2021_01) RETURNING 1) "
            f"INSERT INTO {s.schema}.yellow_tripdata_2021_01 SELECT * FROM {s.schema}.yellow_tripdata_2021_01 "
            f"WHERE ctid = (SELECT max(ctid) FROM {s.schema}.yellow_tripdata_2021_01)"
        ),
        "postgres values differ:",
    ),
    "bigquery-fare-updated": (
        lambda s: s.warehouse().query(
            f"UPDATE `{s.warehouse().table_id('yellow')}` SET fare_amount = fare_amount + 1 "
            "WHERE source_month = DATE '2021-01-01' AND vendor_id = 2"
        ),
        "bigquery values differ: fare_amount cents",
    ),
}


@pytest.mark.parametrize("case", list(TAMPERING))
def test_a_changed_value_in_a_warehouse_is_a_mismatch_naming_month_sink_and_column(
    landed: Sinks, tmp_path: Path, capsys, case: str
) -> None:
    tamper, needle = TAMPERING[case]
    tamper(landed)
    code, lines = reconciled(tmp_path, capsys)
    assert code == 1
    assert needle in lines["yellow 2021-01"] and "mismatch" in lines["yellow 2021-01"], lines
    assert lines["yellow 2021-02"].rstrip().endswith("ok")  # the other month is untouched


def _edit(lake: Lake, month: Month, change: Callable[[dict], Any]) -> None:
    doc, _ = lake.read_json(layout.manifest_key(month))
    change(doc)
    lake.write_json(layout.manifest_key(month), doc)


MANIFESTS: dict[str, tuple[Callable[[Lake], None], str]] = {
    "rows-edited": (
        lambda lake: _edit(lake, JAN, lambda d: d["stages"]["postgres"].update(rows=1)),
        "manifest postgres: says other rows than the lake",
    ),
    "parquet-sha-edited": (
        lambda lake: _edit(lake, JAN, lambda d: d["stages"]["parquet"].update(sha256="0" * 64)),
        "manifest parquet: says other sha256 than the lake",
    ),
    "truncated": (
        lambda lake: lake.bucket.blob(lake.name(layout.manifest_key(JAN))).upload_from_string(b'{"color": "yel'),
        "manifest unreadable",
    ),
    "stage-removed": (
        lambda lake: _edit(lake, JAN, lambda d: d["stages"].pop("bigquery")),
        "manifest bigquery: no entry",
    ),
}


@pytest.mark.parametrize("case", list(MANIFESTS))
def test_a_manifest_edited_or_cut_short_is_noticed_then_rewritten_from_the_lake(
    landed: Sinks, tmp_path: Path, capsys, case: str
) -> None:
    lake = Lake.from_config()
    before = ledger.read(lake, JAN)["stages"]
    damage, needle = MANIFESTS[case]
    damage(lake)
    code, lines = reconciled(tmp_path, capsys)
    assert code == 1 and needle in lines["yellow 2021-01"], lines
    assert not IngestMonth.of(JAN).complete()
    healed = run([IngestMonth.of(JAN)])
    assert healed.ok and healed.ran == {IngestMonth.of(JAN).task_id}  # only the ledger is rewritten
    stages = ledger.read(lake, JAN)["stages"]
    for stage, entry in before.items():
        assert {k: v for k, v in stages[stage].items() if k not in ("recorded_at", "worker", "generation")} == {
            k: v for k, v in entry.items() if k not in ("recorded_at", "worker", "generation")
        }
    assert reconciled(tmp_path, capsys)[0] == 0


def test_a_manifest_of_no_valid_month_is_named_and_the_others_still_reported(
    landed: Sinks, tmp_path: Path, capsys
) -> None:
    lake = Lake.from_config()
    stray = layout.meta_prefix("yellow") + "yellow_tripdata_2021-13.manifest.json"
    lake.write_json(stray, {"color": "yellow", "month": "2021-13"})
    code = report(["--html", str(tmp_path / "report.html")])
    out = capsys.readouterr().out
    assert code == 1
    assert f"manifest of no month: {lake.uri(stray)}: month 13 is not valid" in out
    assert "yellow 2021-01" in out and "yellow 2021-02" in out


def test_a_month_missing_from_one_sink_is_a_mismatch(landed: Sinks, tmp_path: Path, capsys) -> None:
    """Half-landed (here, its Postgres partition dropped) is never "missing, exit 0"."""
    landed.pg(f"DROP TABLE {landed.schema}.yellow_tripdata_2021_02")
    code, lines = reconciled(tmp_path, capsys)
    assert code == 1 and "mismatch" in lines["yellow 2021-02"], lines
    assert run([IngestMonth.of(FEB)]).ok
    assert reconciled(tmp_path, capsys)[0] == 0


def test_a_nul_byte_postgres_cannot_store_is_refused_before_any_sink(
    pipeline_env: Path, source: SourceServer, sinks: Sinks, publish: Callable[..., Path], caplog, tmp_path: Path
) -> None:
    src = publish("yellow", 2021, 3, seed=4)
    text = __import__("gzip").decompress(src.read_bytes()).decode().splitlines()
    text[5] = text[5].replace(",N,", ",N\x00,", 1) if ",N," in text[5] else text[5] + "\x00"
    src.write_bytes(__import__("gzip").compress(("\n".join(text) + "\n").encode()))
    month = Month("yellow", 2021, 3)
    with caplog.at_level("ERROR", logger="luigi-interface"):
        result = run([IngestMonth.of(month)])
    assert not result.ok and ParquetFile.of(month).task_id in result.failed
    [line] = error_messages(caplog.records)
    assert "NUL character" in line and "\n" not in line
    lake = Lake.from_config()
    assert lake.get(layout.lake_key(month)) is None and lake.get(layout.quality_key(month)) is None
    assert sinks.pg(f"SELECT to_regclass('{sinks.schema}.yellow_tripdata_2021_03')") == [(None,)]


def test_a_changed_cleaning_rule_reloads_every_sink_in_one_run(
    landed: Sinks, cfg: dict, tmp_path: Path, capsys
) -> None:
    lake = Lake.from_config()
    before = ledger.read(lake, JAN)
    cfg["tlc.cleaning", "drop_zero_passengers"] = "true"
    assert not IngestMonth.of(JAN).complete()
    once = run([IngestMonth.of(JAN)])
    assert once.ok  # one run: no "unfulfilled dependencies", no second run needed
    report_now = ParquetFile.of(JAN).output().report()
    assert report_now.rules == {"drop_zero_passengers": True} and report_now.rows_dropped["drop_zero_passengers"] > 0
    stages = ledger.read(lake, JAN)["stages"]
    for sink in ("bigquery", "postgres"):
        assert stages[sink]["rows"] == report_now.rows_written and not stages[sink].get("stale")
    assert landed.pg_counts("yellow")["2021-01"] == report_now.rows_written
    assert landed.bq_counts("yellow")["2021-01"] == report_now.rows_written
    history = [e["stage"] for e in ledger.read(lake, JAN)["history"]]
    assert history.count("parquet") == 2 and history.count("source") == 1  # rebuilt, not downloaded again
    code, lines = reconciled(tmp_path, capsys)
    assert code == 0, lines  # February is stale, not wrong: every sink still equals its Parquet
    assert lines["yellow 2021-01"].rstrip().endswith("ok"), lines
    assert "  stale  made under other cleaning rules" in lines["yellow 2021-02"], lines
    assert json.dumps(before["stages"]["source"], sort_keys=True) == json.dumps(stages["source"], sort_keys=True)
