"""luigi's central scheduler (luigid) and its web UI, so several CLI runs share one task graph.

With ``--local-scheduler`` every ``luigi`` invocation plans alone: two runs of overlapping
ranges would both convert the same month. Against luigid a task RUNNING in one worker is
skipped by the others, and the visualiser shows the graph, statuses and progress live.

luigid runs in the foreground under ``stack.spawn`` (not ``--background``, which forks and
would hide the pid the stack needs for ``down``). Its pickled state lives in
``<stack>/luigid/state.pickle`` (written on SIGTERM, reloaded on the next start) and its
log in ``<stack>/luigid/logs/luigi-server.log``.

Server settings come from ``deploy/luigid.cfg``, the file production's luigid.service uses:
task history and Prometheus metrics. The stack writes a copy to ``<stack>/luigid/luigid.cfg``
whose ``[task_history] db_connection`` names the stack's PostgreSQL (role ``luigid``,
database ``luigi_history``, no password in the URL); luigid finds the password through
libpq's ``PGPASSFILE``, a 0600 file of its own, so it is in no config, command line, log or
environment. Without the stack's PostgreSQL luigid runs with task history off.

Clients need no flag: the stack writes ``<stack>/luigi-stack.cfg`` with ``[core]
scheduler_url`` and exports ``LUIGI_CONFIG_PATH`` pointing at it. luigi reads that file after
``./luigi.cfg`` (luigi/configuration/core.py appends it to the search path), so both apply
and the stack's key wins. The key is the ``core`` config class's own parameter name rather
than the documented alias ``default-scheduler-url``, which luigi 3.8.1 honours but then
reports on every run as an UnconsumedParameterWarning (the alias is missing from
``core.ignore_unconsumed``). ``LUIGI_SCHEDULER_URL`` is exported too, for scripts.
"""

from __future__ import annotations

import configparser
import io
import json
import os
import sys
import urllib.request
from pathlib import Path

from scripts.stack.base import StackDir, StackError, free_port, pid_alive, wait_until

NAME = "luigid"
AFTER = ("postgres",)  # its task history lives there; restarted when PostgreSQL is
# The repo root: luigid reads ``luigi.cfg`` from its working directory.
REPO = Path(__file__).resolve().parents[2]
SERVER_CONFIG = REPO / "deploy" / "luigid.cfg"
CLIENT_CONFIG = "luigi-stack.cfg"
OVERRIDES = "luigid-overrides.cfg"  # optional, in the stack dir: merged over deploy/luigid.cfg
# libpq variables of the caller's shell (a sourced .stack/env holds the pipeline's role and
# password) must not reach luigid: PGPASSWORD would win over its passfile.
LIBPQ_VARS = ("PGHOST", "PGHOSTADDR", "PGPORT", "PGUSER", "PGDATABASE", "PGPASSWORD", "PGPASSFILE", "PGSERVICE")


def _luigid() -> str:
    """The luigid console script beside the interpreter running the stack (the project venv),
    so the scheduler is the same luigi version as the workers that talk to it."""
    script = Path(sys.executable).with_name("luigid")
    if not script.is_file():
        raise StackError(f"{script} is missing: run the stack with the project venv's python (`make setup`)")
    return str(script)


def _write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read (0600 from creation on), atomically."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    tmp.replace(path)


def _postgres(stack: StackDir) -> dict | None:
    """The stack's PostgreSQL state when it runs and is healthy, else None (no history)."""
    from scripts.stack import postgres

    state = stack.load_state().get(postgres.NAME)
    if state and "history" in state and postgres.healthy(state):
        return state
    return None


def _pgpass_field(value: str) -> str:
    return value.replace("\\", "\\\\").replace(":", "\\:")


def server_config(pg: dict | None, passfile: Path, overrides: Path | None = None) -> tuple[str, dict[str, str]]:
    """luigid's config (deploy/luigid.cfg with the stack's history database, then ``overrides``
    when it exists: a test's faster retry settings, say) and the extra environment luigid needs;
    writes the passfile when history is on."""
    cfg = configparser.ConfigParser(interpolation=None)
    cfg.optionxform = str  # type: ignore[assignment, method-assign]  # keep luigi's key spelling
    cfg.read([SERVER_CONFIG, *([overrides] if overrides and overrides.exists() else [])])
    env: dict[str, str] = {}
    if pg is None:
        cfg["scheduler"]["record_task_history"] = "false"
        cfg.remove_section("task_history")
    else:
        history = pg["history"]
        host, port = pg["env"]["PGHOST"], pg["port"]
        password = Path(history["password_file"]).read_text().strip()
        fields = (host, str(port), history["database"], history["role"], password)
        _write_private(passfile, ":".join(_pgpass_field(f) for f in fields) + "\n")
        cfg["task_history"]["db_connection"] = (
            f"postgresql+psycopg2://{history['role']}@{host}:{port}/{history['database']}"
        )
        env["PGPASSFILE"] = str(passfile)
    out = io.StringIO()
    out.write(
        f"# Written by scripts/stack/luigid.py from {SERVER_CONFIG.relative_to(REPO)}; luigid's LUIGI_CONFIG_PATH\n"
    )
    cfg.write(out)
    return out.getvalue(), env


def start(stack: StackDir) -> dict:
    state_path = stack.path("luigid", "state.pickle")
    logdir = stack.path("luigid", "logs", ".keep").parent  # --logdir must exist already
    pg = _postgres(stack)
    config_text, env = server_config(pg, stack.path("luigid", "pgpass"), stack.root / OVERRIDES)
    config = stack.path("luigid", "luigid.cfg")
    _write_private(config, config_text)
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
        env={**env, "LUIGI_CONFIG_PATH": str(config)},
        unset=LIBPQ_VARS,
        cwd=REPO,
    )
    url = f"http://127.0.0.1:{port}/"
    client = stack.root / CLIENT_CONFIG
    _write_private(
        client,
        "# Written by scripts/stack/luigid.py. `. .stack/env` exports LUIGI_CONFIG_PATH=this file:\n"
        "# luigi reads it after ./luigi.cfg, so plain `luigi --module tasks ...` uses the stack's luigid.\n"
        f"[core]\nscheduler_url = {url}\n",
    )
    state = {
        "pids": [pid],
        "port": port,
        "state_path": str(state_path),
        "config": str(config),
        "history": pg is not None,
        "log": str(logdir / "luigi-server.log"),
        "env": {
            "LUIGI_CONFIG_PATH": str(client),
            "LUIGI_SCHEDULER_URL": url,
            "TLC_UI_URL": f"{url}static/visualiser/index.html",
        },
    }
    # Startup problems (bad config, port taken, history DB refused) land in luigi-server.log,
    # a crash before logging is set up (a missing module) in the spawn log.
    wait_until(lambda: not pid_alive(pid) or healthy(state), "luigid", timeout=30, log=logdir / "luigi-server.log")
    if not pid_alive(pid):
        logs = (logdir / "luigi-server.log", stack.log(NAME))
        tail = " / ".join(
            line for log in logs if log.exists() for line in log.read_text(errors="replace").splitlines()[-3:]
        )
        raise StackError(f"luigid exited during startup | last log lines: {tail}")
    return state


def healthy(state: dict) -> bool:
    """True when luigid answers an RPC call. ``is_paused`` is the cheapest one that neither
    registers a worker (``ping`` does) nor serialises the whole graph (``task_list``)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{state['port']}/api/is_paused", timeout=2) as resp:
            return resp.status == 200 and "paused" in json.load(resp)["response"]
    except (OSError, ValueError, KeyError, TypeError):
        return False
