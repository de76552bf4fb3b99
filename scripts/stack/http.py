"""The sources' stand-in: a static HTTP server over a directory laid out like both publishers.

``<stack>/source/{color}/{color}_tripdata_{YYYY}-{MM}.csv.gz`` is served at
``http://127.0.0.1:<port>/{color}/...``, the shape of the DataTalksClub release URLs, and
``<stack>/source/trip-data/{service}_tripdata_{YYYY}-{MM}.parquet`` at ``.../trip-data/...``,
the shape of the TLC's, so ``TLC_SOURCE_URL`` and ``TLC_PARQUET_URL`` are the only things that
change between here and the real publishers.
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
    state = {
        "pids": [pid],
        "port": port,
        "root": str(root),
        "env": {"TLC_SOURCE_URL": f"http://127.0.0.1:{port}", "TLC_PARQUET_URL": f"http://127.0.0.1:{port}/trip-data"},
    }
    wait_until(lambda: healthy(state), "HTTP source server", log=stack.log(NAME))
    return state


def healthy(state: dict) -> bool:
    """Answers, and serves both layouts (a stack started before the Parquet source restarts it)."""
    if "TLC_PARQUET_URL" not in state.get("env", {}):
        return False
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{state['port']}/", timeout=2) as resp:
            return resp.status == 200
    except OSError:
        return False
