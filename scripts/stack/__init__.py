"""The local stack: real stand-ins for the TLC source, GCS, BigQuery, PostgreSQL and luigid.

``python -m scripts.stack up`` starts what is missing, ``down`` stops everything, ``status``
reports. Each service module exposes ``NAME``, ``start(stack) -> ServiceState`` (blocks, by
polling, until the service answers) and ``healthy(state) -> bool``. The endpoints of the
running services are written to ``<stack dir>/env`` as ``export`` lines for the shell and
the pipeline (``. .stack/env``).

A service module may name the services it is configured from in ``AFTER`` (luigid records
its task history in PostgreSQL): it starts after them, and whenever one of them is
(re)started, on a new port, it is restarted too.
"""

from __future__ import annotations

import importlib
import shlex
from pathlib import Path
from types import ModuleType

from scripts.stack.base import StackDir, StackError, pid_alive, stop_pid

# Start order matters: luigid last so everything it schedules can already reach its sinks.
SERVICES = ("http", "gcs", "bigquery", "postgres", "luigid")


def _module(name: str) -> ModuleType:
    return importlib.import_module(f"scripts.stack.{name}")


class Stack:
    """A set of running services owned by one directory."""

    def __init__(self, root: Path) -> None:
        self.dir = StackDir(Path(root))

    def up(self, services: tuple[str, ...] = SERVICES) -> dict[str, str]:
        unknown = sorted(set(services) - set(SERVICES))
        if unknown:
            raise StackError(f"unknown service(s) {unknown}; known: {', '.join(SERVICES)}")
        state = self.dir.load_state()
        started: set[str] = set()
        for name in SERVICES:  # always in dependency order, whatever order was asked for
            mod = _module(name)
            current = state.get(name)
            stale = bool(current) and bool(started & set(getattr(mod, "AFTER", ())))
            if name not in services and not stale:
                continue
            if current and not stale and all(pid_alive(p) for p in current["pids"]) and mod.healthy(current):
                continue
            if current:
                self._stop_one(name, current)
            state[name] = mod.start(self.dir)
            started.add(name)
            self.dir.save_state(state)
        self.write_env(state)
        return self.env(state)

    def down(self) -> None:
        state = self.dir.load_state()
        for name in sorted(state, key=lambda s: SERVICES.index(s) if s in SERVICES else -1, reverse=True):
            self._stop_one(name, state[name])
            del state[name]
            self.dir.save_state(state)
        (self.dir.root / "env").unlink(missing_ok=True)

    def _stop_one(self, name: str, current: dict) -> None:
        mod = _module(name)
        if hasattr(mod, "stop"):
            mod.stop(self.dir, current)
        for pid in reversed(current["pids"]):
            stop_pid(pid)

    def status(self) -> dict[str, bool]:
        state = self.dir.load_state()
        return {name: all(pid_alive(p) for p in s["pids"]) and _module(name).healthy(s) for name, s in state.items()}

    @staticmethod
    def env(state: dict[str, dict]) -> dict[str, str]:
        env: dict[str, str] = {}
        for s in state.values():
            env.update(s.get("env", {}))
        return env

    def write_env(self, state: dict[str, dict]) -> Path:
        path = self.dir.root / "env"
        lines = ["# Written by `python -m scripts.stack up`; source it: . .stack/env"]
        lines += [f"export {k}={shlex.quote(v)}" for k, v in sorted(self.env(state).items())]
        tmp = path.with_suffix(".tmp")
        tmp.write_text("\n".join(lines) + "\n")
        tmp.chmod(0o600)
        tmp.replace(path)
        return path


__all__ = ["SERVICES", "Stack", "StackError"]
