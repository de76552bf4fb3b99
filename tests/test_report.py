"""tlc.report reconciles every month across the real sinks, and turns red when one is tampered with."""

from __future__ import annotations

import struct
from contextlib import closing
from pathlib import Path

import psycopg2
import pytest

from scripts.make_sample_data import write_month
from tasks import GCSObject, IngestRange, ParquetFile
from tests.browser import ARTIFACTS, chromium, require_chromium
from tests.luigirun import run
from tests.sourceserver import SourceServer
from tlc.gcs.lake import Lake
from tlc.month import Month
from tlc.report.__main__ import main as report


@pytest.fixture
def landed(
    pipeline_env: Path, gcp_env: dict, pg_server: dict, source: SourceServer, source_dir: Path, monkeypatch
) -> Path:
    """Three months of two colors, ingested into every sink by the real pipeline."""
    for key, value in pg_server.items():
        monkeypatch.setenv(key, value)
    with closing(psycopg2.connect()) as conn, conn.cursor() as cur:
        cur.execute("DROP SCHEMA IF EXISTS tlc CASCADE")
        conn.commit()
    for color, month in (("yellow", 1), ("yellow", 2), ("green", 1)):
        write_month(source_dir, color, 2021, month, rows=1200, seed=month)
    assert run([IngestRange(colors="yellow,green", start="2021-01", stop="2021-02")], workers=2).ok is False
    # green 2021-02 is not published: the range fails for it, and the report shows it as missing
    return pipeline_env


def test_report_reconciles_then_turns_red_on_tampering(landed: Path, tmp_path: Path, capsys) -> None:
    page = tmp_path / "report.html"
    assert report(["--html", str(page)]) == 0
    out = capsys.readouterr().out
    assert out.count(" ok") == 3 and "3 month(s); 0 mismatch(es)" in out
    for line in out.splitlines():
        if line.startswith("yellow 2021-01"):
            assert line.split()[2:7] == ["1,200"] * 5

    with closing(psycopg2.connect()) as conn, conn.cursor() as cur:  # one row vanishes from Postgres
        cur.execute(
            "DELETE FROM tlc.yellow_tripdata_2021_01 WHERE ctid = (SELECT min(ctid) FROM tlc.yellow_tripdata_2021_01)"
        )
        conn.commit()
    bucket = Lake.from_config().bucket
    name = GCSObject(color="yellow", year=2021, month=2).output().name
    blob = bucket.get_blob(name)
    data = blob.download_as_bytes()
    replaced = bucket.blob(name)
    replaced.metadata = blob.metadata  # same lineage claims, other bytes
    replaced.upload_from_string(data[:-1] + bytes([data[-1] ^ 1]))

    assert report(["--html", str(page)]) == 1
    out = capsys.readouterr().out
    rows = {line[:14]: line for line in out.splitlines() if line[:6] in ("yellow", "green ")}
    assert "1,199" in rows["yellow 2021-01"] and " mismatch  " in rows["yellow 2021-01"]
    assert "postgres values differ: " in rows["yellow 2021-01"]  # the row is gone: its values with it
    assert "GCS object differs from the Parquet (md5)" in rows["yellow 2021-02"]
    assert rows["yellow 2021-02"].split()[2:7] == ["1,200"] * 5  # its Postgres partition is untouched
    assert rows["green  2021-01"].rstrip().endswith("ok")
    assert "2 month(s) do not reconcile" in page.read_text()

    with closing(psycopg2.connect()) as conn, conn.cursor() as cur:  # every row there, another Parquet's marker
        cur.execute("UPDATE tlc.load_markers SET parquet_sha256 = repeat('0', 64) WHERE color = 'green'")
        conn.commit()
    assert report(["--html", str(tmp_path / "again.html")]) == 1
    green = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("green  2021-01"))
    assert green.split()[2:7] == ["1,200"] * 5 and "postgres holds 1,200 rows that are not this Parquet's" in green

    require_chromium()
    dom = chromium("--dump-dom", page.as_uri(), profile=tmp_path / "p1")
    assert "mismatch" in dom.stdout.decode() and "2021-02" in dom.stdout.decode()
    ARTIFACTS.mkdir(exist_ok=True)
    png = ARTIFACTS / "report.png"
    png.unlink(missing_ok=True)
    chromium(f"--screenshot={png}", page.as_uri(), profile=tmp_path / "p2")
    header = png.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n" and struct.unpack(">II", header[16:24]) == (1400, 900)

    # The quality view: each month's quality report, as the browser renders it.
    text = dom.stdout.decode()
    assert "Quality: what each month holds" in text
    for color, month in (("yellow", 1), ("yellow", 2), ("green", 1)):
        q = ParquetFile.of(Month(color, 2021, month)).output().report()
        cells = (
            f"<th>2021-{month:02d}</th><td>{q.rows_read:,}</td><td>{q.rows_written:,}</td><td>none</td>"
            f"<td>{q.out_of_month_pickups:,}</td><td>{q.negative_amount_rows:,}</td>"
        )
        assert cells in text, (color, month)
        assert q.out_of_month_pickups > 0 and q.negative_amount_rows > 0  # the charts have something to show
    assert text.count('aria-label="yellow: share of rows flagged per month"') == 1
    tall = ARTIFACTS / "report-quality.png"
    tall.unlink(missing_ok=True)
    chromium(f"--screenshot={tall}", "--window-size=1400,2400", page.as_uri(), profile=tmp_path / "p3")
    assert struct.unpack(">II", tall.read_bytes()[16:24]) == (1400, 2400)
    assert png.stat().st_size > 10_000
