"""Write-then-rename, so a reader (or luigi's ``complete()``) never sees a half-written file.

Temporary files live beside their destination (same filesystem, so the rename is atomic)
and carry the writer's host and pid: a later writer on the same host removes the leftovers of
writers that died (SIGKILL, power loss) without touching those of a writer that is still
running, nor those of another host (containers sharing one volume each have a host of their own,
and a pid that means nothing in the others' process table).
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

_TMP_MARK = ".tmp-"
HOST_TAG = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]


def temporary_name(dest: Path, pid: int, token: str, host: str = HOST_TAG) -> Path:
    """``.{name}.tmp-{host}-{pid}-{token}`` beside ``dest``."""
    return dest.parent / f".{dest.name}{_TMP_MARK}{host}-{pid}-{token}"


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temporaries(dest: Path) -> list[Path]:
    """Delete temporaries of ``dest`` left by writers that no longer run."""
    removed = []
    for tmp in dest.parent.glob(f".{dest.name}{_TMP_MARK}*"):
        parts = tmp.name[len(dest.name) + 1 + len(_TMP_MARK) :].split("-")
        if len(parts) != 3 or parts[0] != HOST_TAG or not parts[1].isdigit():
            continue  # another host's (or not ours at all): its writer may well be alive
        if not pid_alive(int(parts[1])):
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


@contextmanager
def atomic_path(dest: Path) -> Iterator[Path]:
    """Yield a temporary path; on success fsync it and rename it onto ``dest``, else delete it."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(dest)
    tmp = temporary_name(dest, os.getpid(), secrets.token_hex(4))
    try:
        yield tmp
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_dir(dest.parent)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_json(dest: Path, payload: dict[str, Any]) -> None:
    """Write a JSON document atomically, keys sorted so reruns produce the same bytes."""
    with atomic_path(dest) as tmp:
        tmp.write_text(json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n")


def read_json(path: Path) -> dict[str, Any] | None:
    """The document at ``path``, or None when it is missing or unreadable (never half-valid)."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None
