"""Shared fixtures: the repo on sys.path, a real loopback source, and isolated data dirs."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import luigi.configuration
import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.sourceserver import SourceServer  # noqa: E402


@pytest.fixture
def source_dir(tmp_path: Path) -> Path:
    d = tmp_path / "source"
    d.mkdir()
    return d


@pytest.fixture
def source(source_dir: Path) -> Iterator[SourceServer]:
    server = SourceServer(source_dir)
    yield server
    server.close()


@pytest.fixture
def pipeline_env(tmp_path: Path, source: SourceServer, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point the pipeline at the loopback source and a fresh data dir; fast retries."""
    data = tmp_path / "data"
    monkeypatch.setenv("TLC_SOURCE_URL", source.url)
    monkeypatch.setenv("TLC_DATA_DIR", str(data))
    config = luigi.configuration.get_config()
    monkeypatch.setattr(config, "get", _overriding(config.get, {("tlc.source", "backoff_seconds"): "0.01"}))
    return data


def _overriding(get, values: dict[tuple[str, str], str]):
    """luigi.cfg lookups with a few keys replaced, for fast retries in tests."""

    def lookup(section: str, option: str, *args, **kwargs):
        return values.get((section, option)) or get(section, option, *args, **kwargs)

    return lookup
