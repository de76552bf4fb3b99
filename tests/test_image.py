"""Both container images, built with podman and run for real (scripts/image_test.py).

The Dockerfiles are built unchanged but for their BASE_IMAGE argument (a local Debian 12 base:
no registry is reachable); compose's gcs, bigquery and luigid services start from them with
compose's own commands and pass compose's own healthchecks; compose's pipeline entrypoint runs
one month through the whole graph; the report, run on the host, finds its rows in every sink.
A Dockerfile with one broken line must fail its build at that line, with a message naming it.

Skipped only where podman cannot run at all (not root, or podman neither installed nor
installable); in CI a missing podman fails instead, since `make test` installs it first.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from scripts import image_test
from scripts.podman import BuildFailed, Podman, ensure_base, pip_build_mounts, unusable_reason
from tests.browser import ARTIFACTS
from tests.conftest import let_server_user_in

ROOT = Path(__file__).resolve().parents[1]
IMAGE_UID = 10001  # the USER of both Dockerfiles


@pytest.fixture(scope="module")
def podman() -> Podman:
    """Podman, installed by scripts/install_podman.sh if missing (a no-op when it is there)."""
    install = subprocess.run(
        ["bash", str(ROOT / "scripts" / "install_podman.sh")], capture_output=True, text=True, check=False
    )
    reason = unusable_reason()
    if reason and os.geteuid() == 0 and shutil.which("apt-get") and os.environ.get("CI"):
        pytest.fail(f"{reason}; the install step failed: {install.stderr.strip()[-500:]}")
    if reason is None:
        reason = Podman().works()
    if reason:
        pytest.skip(f"podman cannot run here: {reason}")
    return Podman()


@pytest.mark.slow
@pytest.mark.timeout(1500)  # a first run builds the base and both images from nothing
def test_images_build_and_run_one_month_end_to_end(podman: Podman, tmp_path_factory: pytest.TempPathFactory) -> None:
    work = tmp_path_factory.mktemp("image-test")
    let_server_user_in(work, tmp_path_factory.getbasetemp().parent)  # the stack's PostgreSQL runs as tlcpg

    result = image_test.run_all(work, rows=3_000, podman=podman)

    assert "--colors" in result.help_text and "IngestRange" in result.help_text
    assert "This progress looks :) because there were no failed tasks" in result.month_log
    assert result.counts == dict.fromkeys(("source", "parquet", "gcs", "bigquery", "postgres"), "3,000")
    # The container's cache, written by its user into the bind-mounted volume (the report, on the
    # host, read everything from the lake).
    report = next((work / "volumes" / "tlc-data" / "lake").rglob("yellow_tripdata_2021-01.quality.json"))
    assert report.stat().st_uid == IMAGE_UID
    assert json.loads(report.read_text())["month"] == 1
    # The emulators shared compose's gcs-data volume: the object bqemulator loaded is fake-gcs-server's file.
    assert list((work / "volumes" / "gcs-data" / "tlc-lake").rglob("yellow_tripdata_2021-01.parquet"))
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "image-test-seconds.json").write_text(json.dumps(result.seconds, indent=2) + "\n")


BREAKS = {
    # A package directory renamed in the Dockerfile only: the COPY has no source.
    "copy of a missing directory": ("COPY tasks/ tasks/", "COPY taskz/ tasks/", "no such file or directory"),
    # A typo in a RUN line: the statically valid file fails only when built.
    "failing RUN": (
        "RUN pip install --only-binary=:all: -r requirements.txt",
        "RUN pip install --only-binary=:all: -r requirement.txt",
        "Could not open requirements file",
    ),
}


@pytest.mark.parametrize("case", sorted(BREAKS))
def test_a_broken_dockerfile_fails_its_build_at_the_broken_line(podman: Podman, tmp_path: Path, case: str) -> None:
    good, bad, reason = BREAKS[case]
    text = (ROOT / "Dockerfile").read_text()
    assert text.count(good) == 1, f"{good!r} is no longer a line of the Dockerfile: update this test"
    broken = tmp_path / "Dockerfile"
    broken.write_text(text.replace(good, bad))
    base, _ = ensure_base(podman, tmp_path / "debootstrap.log")

    with pytest.raises(BuildFailed) as failed:
        podman.build(
            broken,
            ROOT,
            tag="localhost/tlc-luigi:broken-test",
            build_args={"BASE_IMAGE": base},
            mounts=pip_build_mounts(tmp_path),
        )
    line = next(n for n, text in enumerate(broken.read_text().splitlines(), start=1) if text == bad)
    assert (failed.value.step, failed.value.line) == (bad, line)
    message = str(failed.value)
    assert message.splitlines()[0] == f"image build of {broken} failed at line {line}: {bad}"
    assert reason.lower() in message.lower()
    assert "Using cache" not in message  # only what the failing step printed
