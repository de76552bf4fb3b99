"""Process plumbing shared by every local service: ports, background processes, polling.

The local stack runs real servers (HTTP source, fake-gcs-server, bqemulator, PostgreSQL,
luigid) as background processes owned by a stack directory. Everything a service needs to
be found again by ``down``/``status`` lives in that directory, so the stack survives the
shell that started it and two stacks (the user's and a test run's) never collide.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


class StackError(RuntimeError):
    """A service could not be installed, started or reached."""


def free_port() -> int:
    """Ask the kernel for a loopback port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    """True when something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def wait_until(check: Callable[[], bool], what: str, timeout: float = 60.0, log: Path | None = None) -> None:
    """Poll ``check`` until it is true; services are never waited for with a blind sleep."""
    deadline = time.monotonic() + timeout
    delay = 0.05
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception:  # noqa: BLE001, S110 - a service that is still starting may raise anything
            pass
        time.sleep(delay)
        delay = min(delay * 1.5, 1.0)
    tail = ""
    if log is not None and log.exists():
        tail = " | last log lines: " + " / ".join(log.read_text(errors="replace").splitlines()[-5:])
    raise StackError(f"{what} did not become ready within {timeout:.0f}s{tail}")


@dataclass
class StackDir:
    """The directory that owns one running stack: pid files, logs, data and the env file."""

    root: Path

    def __post_init__(self) -> None:
        self.root = self.root.resolve()
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, *parts: str) -> Path:
        p = self.root.joinpath(*parts)
        p.parent.mkdir(parents=True, exist_ok=True)
        return p

    @property
    def state_file(self) -> Path:
        return self.root / "services.json"

    def load_state(self) -> dict[str, dict]:
        if not self.state_file.exists():
            return {}
        return json.loads(self.state_file.read_text())

    def save_state(self, state: dict[str, dict]) -> None:
        # 0600 like the env file: service env (e.g. PGPASSWORD) is part of the state.
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2, sort_keys=True))
        tmp.chmod(0o600)
        tmp.replace(self.state_file)

    def spawn(
        self,
        name: str,
        cmd: list[str],
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
        user: str | None = None,
        unset: tuple[str, ...] = (),
    ) -> int:
        """Start ``cmd`` in its own session, logging to ``logs/<name>.log``; returns the pid.

        ``unset`` removes variables the caller's shell may carry (a sourced ``.stack/env``)
        that would change what the service does, e.g. a ``PGPASSWORD`` meant for another role.
        """
        log = self.path("logs", f"{name}.log")
        full_env = {k: v for k, v in os.environ.items() if k not in unset}
        full_env.update(env or {})
        with open(log, "ab") as out:
            proc = subprocess.Popen(
                cmd,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=full_env,
                cwd=cwd,
                start_new_session=True,
                user=user,
            )
        return proc.pid

    def log(self, name: str) -> Path:
        return self.path("logs", f"{name}.log")


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stop_pid(pid: int, timeout: float = 15.0) -> None:
    """SIGTERM the process group, poll for exit, then SIGKILL what is left."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pid, sig)
        except (ProcessLookupError, PermissionError):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not pid_alive(pid):
                return
            with contextlib.suppress(ChildProcessError):  # reap our children: no zombies
                os.waitpid(pid, os.WNOHANG)
            time.sleep(0.05)
