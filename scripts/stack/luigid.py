"""luigi's central scheduler (luigid) and its web UI, so several CLI runs share one task graph.

With ``--local-scheduler`` every ``luigi`` invocation plans alone: two runs of overlapping
ranges would both convert the same month. Against luigid a task RUNNING in one worker is
skipped by the others, and the visualiser shows the graph, statuses and progress live.

luigid runs in the foreground under ``stack.spawn`` (not ``--background``, which forks and
would hide the pid the stack needs for ``down``). Its pickled state lives in
``<stack>/luigid/state.pickle`` (written on SIGTERM, reloaded on the next start) and its
log in ``<stack>/luigid/logs/luigi-server.log``. Task history (``record_task_history``)
stays off: luigi's history DB does not work with SQLAlchemy 2.

Clients are pointed at it with ``luigi ... --scheduler-url "$LUIGI_SCHEDULER_URL"``; luigi
itself reads no environment variable for this (only ``[core] default-scheduler-url`` in a
config file), which is why the URL is exported under a name of our own.
"""

from __future__ import annotations

import json
import sys
import urllib.request
from pathlib import Path

from scripts.stack.base import StackDir, StackError, free_port, wait_until

NAME = "luigid"
# The repo root: luigid reads ``luigi.cfg`` from its working directory, so it sees the
# project's [scheduler] settings however the stack was started.
REPO = Path(__file__).resolve().parents[2]


def _luigid() -> str:
    """The luigid console script beside the interpreter running the stack (the project venv),
    so the scheduler is the same luigi version as the workers that talk to it."""
    script = Path(sys.executable).with_name("luigid")
    if not script.is_file():
        raise StackError(f"{script} is missing: run the stack with the project venv's python (`make setup`)")
    return str(script)


def start(stack: StackDir) -> dict:
    state_path = stack.path("luigid", "state.pickle")
    logdir = stack.path("luigid", "logs", ".keep").parent  # --logdir must exist already
    port = free_port()
    pid = stack.spawn(
        NAME,
        [
            _luigid(),
            "--port",
            str(port),
            "--address",
            "127.0.0.1",
            "--state-path",
            str(state_path),
            "--logdir",
            str(logdir),
        ],
        cwd=REPO,
    )
    url = f"http://127.0.0.1:{port}/"
    state = {
        "pids": [pid],
        "port": port,
        "state_path": str(state_path),
        "log": str(logdir / "luigi-server.log"),
        "env": {
            "LUIGI_SCHEDULER_URL": url,
            "TLC_UI_URL": f"{url}static/visualiser/index.html",
        },
    }
    # Startup problems (bad config, port taken) land in luigi-server.log, not the spawn log.
    wait_until(lambda: healthy(state), "luigid", timeout=30, log=logdir / "luigi-server.log")
    return state


def healthy(state: dict) -> bool:
    """True when luigid answers an RPC call. ``is_paused`` is the cheapest one that neither
    registers a worker (``ping`` does) nor serialises the whole graph (``task_list``)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{state['port']}/api/is_paused", timeout=2) as resp:
            return resp.status == 200 and "paused" in json.load(resp)["response"]
    except (OSError, ValueError, KeyError, TypeError):
        return False
