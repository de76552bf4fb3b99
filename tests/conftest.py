"""Shared fixtures: the repo on sys.path, a real loopback source, and isolated data dirs."""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import luigi.configuration
import pytest
from luigi.task_register import Register

ROOT = Path(__file__).resolve().parents[1]
# The real TLC samples (see its README): beside the clone, as on the build machines and in CI;
# TLC_SHARED_DATA points elsewhere.
SHARED = Path(os.environ.get("TLC_SHARED_DATA") or ROOT.parent / "shared" / "data")
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.sourceserver import SourceServer  # noqa: E402
from tlc import phases  # noqa: E402


def pytest_configure(config: pytest.Config) -> None:
    """Without the real samples, one line before collection, not a traceback from a test module."""
    if not (SHARED / "README.md").is_file():
        raise pytest.UsageError(
            f"the real TLC samples are not at {SHARED}: clone next to shared/data, or set TLC_SHARED_DATA"
        )


@pytest.fixture(autouse=True)
def fresh_tasks() -> None:
    """luigi hands back one instance per task parameters, made under the configuration of its
    first test; a task's Month carries config (its source kind), so each test starts afresh."""
    Register.clear_instance_cache()


@pytest.fixture
def on_phase() -> Iterator[Callable[..., None]]:
    """``on_phase("postgres.copying", hook)``: step into a stage at a named phase (``tlc.phases``)."""
    yield phases.on
    phases.clear()


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
def cfg(monkeypatch: pytest.MonkeyPatch) -> dict[tuple[str, str], str]:
    """luigi.cfg as the tasks see it, with keys replaced per test: ``cfg[section, key] = value``."""
    values: dict[tuple[str, str], str] = {("tlc.source", "backoff_seconds"): "0.01"}
    config = luigi.configuration.get_config()
    original = config.get

    def lookup(section: str, option: str, *args, **kwargs):
        value = values.get((section, option))
        return value if value is not None else original(section, option, *args, **kwargs)

    monkeypatch.setattr(config, "get", lookup)
    return values


def _suffix(request: pytest.FixtureRequest) -> str:
    return f"{abs(hash(request.node.nodeid)) % 10**8:08d}"


@pytest.fixture
def pipeline_env(
    tmp_path: Path,
    source: SourceServer,
    monkeypatch: pytest.MonkeyPatch,
    cfg: dict[tuple[str, str], str],
    gcp_stack: dict[str, str],
    request: pytest.FixtureRequest,
) -> Path:
    """Point the pipeline at the loopback source (both layouts), a lake bucket of this test's own (the
    lake is the truth of every stage) and a fresh data dir (this host's cache); fast retries."""
    data = tmp_path / "data"
    monkeypatch.setenv("TLC_SOURCE_URL", source.url)
    monkeypatch.setenv("TLC_PARQUET_URL", f"{source.url}/trip-data")
    monkeypatch.setenv("TLC_DATA_DIR", str(data))
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcp_stack["STORAGE_EMULATOR_HOST"])
    monkeypatch.setenv("TLC_GCS_BUCKET", f"tlc-test-{_suffix(request)}")
    cfg["tlc.gcs", "retry_seconds"] = "5"
    return data


@pytest.fixture(scope="session")
def gcp_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """fake-gcs-server and bqemulator, started once for the session (about 3 s)."""
    from scripts.stack import Stack

    stack = Stack(tmp_path_factory.mktemp("gcp-stack"))
    try:
        yield stack.up(("gcs", "bigquery"))
    finally:
        stack.down()


@pytest.fixture
def gcp_env(
    gcp_stack: dict[str, str], monkeypatch: pytest.MonkeyPatch, cfg: dict[tuple[str, str], str], request
) -> dict[str, str]:
    """The emulators' endpoints, and a bucket and dataset of this test's own."""
    for key, value in gcp_stack.items():
        monkeypatch.setenv(key, value)
    suffix = _suffix(request)
    monkeypatch.setenv("TLC_GCS_BUCKET", f"tlc-test-{suffix}")
    cfg["tlc.bigquery", "dataset"] = f"tlc_test_{suffix}"
    cfg["tlc.gcs", "retry_seconds"] = "5"
    cfg["tlc.bigquery", "retry_seconds"] = "5"
    return {"bucket": f"tlc-test-{suffix}", "dataset": f"tlc_test_{suffix}"}


def let_server_user_in(path: Path, base: Path) -> None:
    """As root the stack's PostgreSQL runs as ``tlcpg``, which must pass through pytest's 0700 temp dirs.

    Only the search bit is added (no listing), only on ``path`` and its parents up to ``base``
    (pytest's own directories); pytest tightens its ``pytest-of-<user>`` directory again on the
    next run. A non-root server runs as the caller and needs nothing.
    """
    if os.geteuid() != 0:
        return
    for directory in (path, *path.parents):
        mode = directory.stat().st_mode
        if not mode & stat.S_IXOTH:
            directory.chmod(mode | stat.S_IXOTH)
        if directory == base:
            break


@pytest.fixture(scope="module")
def pg_stack_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh stack directory the throwaway PostgreSQL can use, also when the tests run as root."""
    root = tmp_path_factory.mktemp("pgstack")
    let_server_user_in(root, tmp_path_factory.getbasetemp().parent)
    return root


@pytest.fixture(scope="module")
def pg_server(pg_stack_dir: Path) -> Iterator[dict[str, str]]:
    """A throwaway PostgreSQL for the module; its libpq variables."""
    from scripts.stack import Stack

    stack = Stack(pg_stack_dir)
    try:
        yield stack.up(("postgres",))
    finally:
        stack.down()
