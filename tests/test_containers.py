"""The container files stay consistent with the repository, checked without a Docker engine.

No Docker engine exists on the development machines or in CI (tests/test_image.py builds and
runs the images with podman, on the host network); scripts/check_containers.py checks what can be
checked statically, compose's own wiring included. These tests run it on the
real files (which must be clean) and on a scratch copy with one deliberate break each, so a
check that silently stopped detecting its problem fails too.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from scripts import check_containers as cc

REPO = Path(__file__).resolve().parents[1]
# Everything the checks read; copied into a scratch repository for the mutation tests.
CHECKED_PATHS = (
    "Dockerfile",
    "docker",
    "docker-compose.yml",
    ".dockerignore",
    ".env.example",
    "requirements.txt",
    "pyproject.toml",
    "luigi.cfg",
    "config",
    "tasks",
    "tlc",
    "scripts",
)


def _errors(report: cc.Report) -> list[str]:
    return [str(f) for f in report.errors]


def test_repository_container_files_pass() -> None:
    report = cc.run_checks(REPO, tools=False)
    assert _errors(report) == []


def test_optional_tools_pass_when_installed() -> None:
    """docker compose config and hadolint, where this machine has them (a note says when not)."""
    if cc.compose_command() is None and shutil.which("hadolint") is None:
        pytest.skip("neither docker compose nor hadolint is installed")
    report = cc.run_checks(REPO, tools=True)
    assert _errors(report) == []


def test_cli_json_output() -> None:
    assert cc.main(["--repo", str(REPO), "--no-tools", "--json"]) == 0


@pytest.mark.parametrize(
    ("path", "patterns", "ignored"),
    [
        ("tasks/", [".git", "data"], False),
        ("data/raw", ["data"], True),
        (".venv-emu", [".venv*"], True),
        ("tasks/__pycache__/x.pyc", ["**/__pycache__"], True),
        ("scripts", ["scripts", "!scripts"], False),
    ],
)
def test_dockerignore_matching(path: str, patterns: list[str], ignored: bool) -> None:
    assert cc.is_ignored(path, patterns) is ignored


# --- mutation tests: one break per case, on a scratch copy --------------------------------------


@pytest.fixture
def scratch(tmp_path: Path) -> Path:
    """A copy of the files the checks read, not a git work tree (so git-based checks only note)."""
    for rel in CHECKED_PATHS:
        src = REPO / rel
        if src.is_dir():
            shutil.copytree(src, tmp_path / rel, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(src, tmp_path / rel)
    return tmp_path


def _replace(rel: str, old: str, new: str) -> Callable[[Path], None]:
    def mutate(root: Path) -> None:
        path = root / rel
        text = path.read_text()
        assert old in text, f"mutation target {old!r} not in {rel}: update this test"
        path.write_text(text.replace(old, new, 1))

    return mutate


def _chain(*steps: Callable[[Path], None]) -> Callable[[Path], None]:
    def mutate(root: Path) -> None:
        for step in steps:
            step(root)

    return mutate


def _delete(rel: str) -> Callable[[Path], None]:
    def mutate(root: Path) -> None:
        target = root / rel
        if target.is_dir():
            shutil.rmtree(target)
        else:
            target.unlink()

    return mutate


def test_scratch_copy_is_clean(scratch: Path) -> None:
    """The baseline for the mutations below: without a break there is no error."""
    assert _errors(cc.run_checks(scratch, tools=False)) == []


MUTATIONS = {
    # Dockerfiles
    "copy source removed (file)": (_delete("config/emulators.txt"), "'config/emulators.txt' does not exist"),
    "copy source removed (dir)": (_delete("scripts"), "source 'scripts/' does not exist"),
    "copy source dockerignored": (
        _replace(".dockerignore", ".git\n", ".git\nluigi.cfg\n"),
        "'luigi.cfg' is excluded by .dockerignore",
    ),
    "unpinned base": (
        _replace("Dockerfile", "ARG BASE_IMAGE=python:3.11.13-slim-bookworm", "ARG BASE_IMAGE=python"),
        "no tag",
    ),
    "latest base": (
        _replace(
            "docker/emulators.Dockerfile", "ARG BASE_IMAGE=python:3.11.13-slim-bookworm", "ARG BASE_IMAGE=python:latest"
        ),
        "uses :latest",
    ),
    "base arg without default": (
        _replace("Dockerfile", "ARG BASE_IMAGE=python:3.11.13-slim-bookworm", "ARG BASE_IMAGE"),
        "uses ARG BASE_IMAGE with no default",
    ),
    "base from an undeclared arg": (
        _replace("docker/emulators.Dockerfile", "FROM ${BASE_IMAGE}\n", "FROM ${RUNTIME_IMAGE}\n"),
        "uses ARG RUNTIME_IMAGE with no default",
    ),
    "new package not copied": (
        _chain(
            _replace("pyproject.toml", 'packages = ["tasks", ', 'packages = ["tasks", "extra", '),
            lambda root: (root / "extra").mkdir(),
        ),
        "package 'extra' (pyproject.toml [tool.setuptools] packages) is never copied",
    ),
    "package copy removed": (
        _replace("Dockerfile", "COPY tasks/ tasks/\n", ""),
        "package 'tasks' (pyproject.toml [tool.setuptools] packages) is never copied",
    ),
    "root user": (_replace("Dockerfile", "USER 10001:10001", "USER root"), "non-root USER"),
    "user after entrypoint": (
        _chain(
            _replace("Dockerfile", "USER 10001:10001\n", ""),
            _replace(
                "Dockerfile", 'CMD ["IngestRange", "--help"]\n', 'CMD ["IngestRange", "--help"]\nUSER 10001:10001\n'
            ),
        ),
        "USER comes after ENTRYPOINT",
    ),
    "requirements not copied": (
        _replace("Dockerfile", "COPY requirements.txt ./\n", ""),
        "'requirements.txt' is installed but no earlier COPY",
    ),
    "requirement unpinned": (_replace("requirements.txt", "luigi==3.8.1", "luigi>=3.8"), "is not pinned"),
    "secret in ENV": (_replace("Dockerfile", "TLC_DATA_DIR=/data", "TLC_DATA_DIR=/data PGPASSWORD=x"), "bake a secret"),
    # docker-compose.yml
    "dangling depends_on": (
        _replace("docker-compose.yml", "      luigid:\n        condition", "      luigi-d:\n        condition"),
        "unknown service 'luigi-d'",
    ),
    "missing dockerfile": (_delete("docker/emulators.Dockerfile"), "'docker/emulators.Dockerfile' does not exist"),
    "env name typo": (
        _replace("docker-compose.yml", "TLC_BIGQUERY_ENDPOINT:", "TLC_BIGQUERY_ENDPIONT:"),
        "TLC_BIGQUERY_ENDPIONT is read by nothing",
    ),
    "literal password": (
        _replace(
            "docker-compose.yml", "POSTGRES_PASSWORD_FILE: /run/secrets/pg_password", "POSTGRES_PASSWORD: hunter2"
        ),
        "literal secret",
    ),
    "password default": (
        _replace("docker-compose.yml", "PGUSER: tlc", "PGUSER: tlc\n      PGPASSWORD: ${PG_PASSWORD:-hunter2}"),
        "literal default",
    ),
    "url to no service": (
        _replace("docker-compose.yml", "http://gcs:4443\n", "http://gcs2:4443\n"),
        "points at 'gcs2'",
    ),
    "scheduler host": (
        _replace("docker-compose.yml", '"--scheduler-host", "luigid"', '"--scheduler-host", "ld"'),
        "'ld'",
    ),
    "secret var undocumented": (_replace(".env.example", "POSTGRES_PASSWORD=", "PG_PASSWORD="), "not listed in"),
    "port on all interfaces": (
        _replace("docker-compose.yml", '"127.0.0.1:8082:8082"', '"8082:8082"'),
        "every interface",
    ),
    "undeclared volume": (_replace("docker-compose.yml", "  tlc-data:\n", ""), "undeclared named volume 'tlc-data'"),
    "gcs root not shared": (
        _replace("docker-compose.yml", "BQEMU_GCS_LOCAL_ROOT: /data/gcs", "BQEMU_GCS_LOCAL_ROOT: /data/objects"),
        "is not a mount of the volume gcs serves objects from",
    ),
    "cfg section renamed": (_replace("luigi.cfg", "[tlc.bigquery]", "[tlc.bq]"), "[tlc.bigquery]"),
}


@pytest.mark.parametrize("case", sorted(MUTATIONS))
def test_each_break_is_detected(scratch: Path, case: str) -> None:
    mutate, expected = MUTATIONS[case]
    mutate(scratch)
    errors = _errors(cc.run_checks(scratch, tools=False))
    assert errors, f"{case}: no error reported"
    assert any(expected in e for e in errors), f"{case}: expected {expected!r} in {errors}"


def test_missing_healthcheck_is_detected(scratch: Path) -> None:
    compose = scratch / cc.COMPOSE_FILE
    doc_text = compose.read_text()
    start = doc_text.index("    healthcheck:\n      # bqemulator's /readyz")
    end = doc_text.index("  luigid:\n")
    compose.write_text(doc_text[:start] + "\n" + doc_text[end:])
    errors = _errors(cc.run_checks(scratch, tools=False))
    assert any("services.bigquery has no healthcheck" in e for e in errors), errors
    assert any("waits for 'bigquery' to be healthy" in e for e in errors), errors


def test_json_lists_findings(scratch: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _delete("config/emulators.txt")(scratch)
    assert cc.main(["--repo", str(scratch), "--no-tools", "--json"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert any(f["severity"] == "error" and "emulators.txt" in f["message"] for f in out["findings"])
