"""The TLC source stand-in: a static HTTP server over a directory laid out like the releases.

``<stack>/source/{color}/{color}_tripdata_{YYYY}-{MM}.csv.gz`` is served at
``http://127.0.0.1:<port>/{color}/...``, which is exactly the shape of the DataTalksClub
release URLs, so ``TLC_SOURCE_URL`` is the only thing that changes between here and GitHub.
"""

from __future__ import annotations

import sys
import urllib.request

from scripts.stack.base import StackDir, free_port, wait_until

NAME = "http"


def start(stack: StackDir) -> dict:
    root = stack.path("source", ".keep").parent
    port = free_port()
    pid = stack.spawn(
        NAME, [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory", str(root)]
    )
    state = {"pids": [pid], "port": port, "root": str(root), "env": {"TLC_SOURCE_URL": f"http://127.0.0.1:{port}"}}
    wait_until(lambda: healthy(state), "HTTP source server", log=stack.log(NAME))
    return state


def healthy(state: dict) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{state['port']}/", timeout=2) as resp:
            return resp.status == 200
    except OSError:
        return False
