"""The GCS stand-in: fake-gcs-server (v1.54.0) over a plain directory.

The filesystem backend keeps every object as ``<stack>/gcs-data/<bucket>/<object name>``;
bqemulator reads that same directory to resolve ``gs://`` URIs in load jobs, which is why
the root is exported as ``GCS_FILESYSTEM_ROOT``. google-cloud-storage talks to it through
``STORAGE_EMULATOR_HOST`` with anonymous credentials.

Known gap of this fake-gcs-server version: ``ifGenerationMatch`` is enforced only on
single-request (multipart, <= 8 MiB) uploads; resumable uploads, copy, rewrite and compose
ignore it (fsouza/fake-gcs-server#1967, fixed upstream after v1.54.0).
"""

from __future__ import annotations

import urllib.request
from pathlib import Path

from scripts.stack import emuenv
from scripts.stack.base import StackDir, free_port, wait_until

NAME = "gcs"


def data_root(stack: StackDir) -> Path:
    """The filesystem root shared with bqemulator (it must not hold stray files: each
    directory in it is a bucket)."""
    return stack.root / "gcs-data"


def start(stack: StackDir) -> dict:
    env = emuenv.ensure_installed()
    root = data_root(stack)
    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    pid = stack.spawn(
        NAME,
        [
            str(env.fake_gcs_server),
            "-scheme",
            "http",
            "-host",
            "127.0.0.1",
            "-port",
            str(port),
            "-backend",
            "filesystem",
            "-filesystem-root",
            str(root),
            # Resumable uploads are sent back to the Location header's host: make it ours.
            "-external-url",
            url,
            "-public-host",
            f"127.0.0.1:{port}",
        ],
    )
    state = {
        "pids": [pid],
        "port": port,
        "root": str(root),
        "env": {"STORAGE_EMULATOR_HOST": url, "GCS_FILESYSTEM_ROOT": str(root)},
    }
    wait_until(lambda: healthy(state), "fake-gcs-server", timeout=30, log=stack.log(NAME))
    return state


def healthy(state: dict) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{state['port']}/storage/v1/b", timeout=2) as resp:
            return resp.status == 200
    except OSError:
        return False
