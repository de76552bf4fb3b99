"""Headless Chromium for tests that look at a page the way a person would (Debian's chromium)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"


def require_chromium() -> None:
    if not CHROMIUM.exists():
        reason = f"{CHROMIUM} is missing: run scripts/install_chromium.sh (make test does)"
        if os.environ.get("CI"):
            pytest.fail(reason)  # in CI the install step must have run: a skip would hide it
        pytest.skip(reason)


def chromium(*args: str, profile: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            str(CHROMIUM),
            "--headless",
            "--no-sandbox",  # we run as root in CI
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            "--window-size=1400,900",
            "--virtual-time-budget=5000",  # lets the page's scripts finish drawing
            *args,
        ],
        capture_output=True,
        timeout=60,
        check=False,
    )
