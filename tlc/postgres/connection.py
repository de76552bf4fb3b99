"""PostgreSQL connections and the small things every statement needs: locks, errors, rollback.

The password is never passed here: libpq reads PGPASSWORD or ~/.pgpass itself, so it cannot
end up in a message, a log line or a task id.
"""

from __future__ import annotations

import contextlib
import hashlib
import sys
from collections.abc import Iterator
from typing import Any

import psycopg2
from psycopg2.extensions import connection as Connection  # noqa: N812 - the type, by its role

from tlc.errors import SinkError, first_line

# A peer or a network that vanishes without closing the connection (a lost VM, a dead NAT) is
# noticed in about a minute, not after the operating system's two hours: TCP keepalives every
# 10 s after 30 s idle, given up after 3 misses, and unacknowledged data for at most 60 s. Both
# ends: libpq's for this side (a dead server), the session's for the server (a dead host, whose
# COPY would otherwise hold the month's lock and partition for hours).
_KEEPALIVES = {
    "keepalives": 1,
    "keepalives_idle": 30,
    "keepalives_interval": 10,
    "keepalives_count": 3,
    "tcp_user_timeout": 60_000,
}
_SERVER_KEEPALIVES = (
    "SET tcp_keepalives_idle = 30; SET tcp_keepalives_interval = 10;"
    " SET tcp_keepalives_count = 3; SET tcp_user_timeout = 60000"
)


def _where(dsn_parts: dict[str, Any]) -> str:
    return f"{dsn_parts.get('host')}:{dsn_parts.get('port')}/{dsn_parts.get('dbname')}"


def connect(dsn_parts: dict[str, Any]) -> Connection:
    """A psycopg2 connection from ``PostgresConfig().dsn_parts()``.

    The password is never passed here: libpq reads PGPASSWORD or ~/.pgpass itself, so it
    cannot end up in a message, a log line or a task id. A refused or failed connection
    becomes a one-line SinkError naming host:port/db and libpq's reason.
    """
    try:
        conn = psycopg2.connect(**dsn_parts, **_KEEPALIVES, application_name="tlc-luigi", client_encoding="UTF8")
    except psycopg2.OperationalError as exc:
        reason = first_line(exc).split(" failed: ", 1)[-1].removeprefix("FATAL:").strip()
        hint = "; set PGPASSWORD or ~/.pgpass" if "no password supplied" in reason else ""
        where = f"{_where(dsn_parts)} as {dsn_parts.get('user')}"
        raise SinkError(f"cannot connect to PostgreSQL at {where}: {reason}{hint}") from None
    try:
        with conn.cursor() as cur:
            cur.execute(_SERVER_KEEPALIVES)
        conn.commit()
    except psycopg2.Error as exc:
        conn.close()
        raise SinkError(f"cannot set up a session on PostgreSQL at {_where(dsn_parts)}: {first_line(exc)}") from None
    return conn


@contextlib.contextmanager
def server_errors() -> Iterator[list[psycopg2.Error]]:
    """Collect the server's error that psycopg2 prints instead of raising during a COPY.

    When the session dies mid-COPY (pg_terminate_backend, a server shutting down), psycopg2
    hands the server's message to ``sys.excepthook`` (a multi-line print to stderr, data row
    included) and raises a bare "invalid socket" (psycopg/psycopg2#1689). Catching it here
    lets the SinkError say why, in one line; anything else goes to the previous hook.
    """
    caught: list[psycopg2.Error] = []
    previous = sys.excepthook

    def hook(kind: type[BaseException], value: BaseException, tb: Any) -> None:
        cause = getattr(value, "__cause__", None)
        if isinstance(cause, psycopg2.Error):
            caught.append(cause)
            return
        previous(kind, value, tb)

    sys.excepthook = hook
    try:
        yield caught
    finally:
        sys.excepthook = previous


def lock_key(*parts: object) -> int:
    """A stable signed 64-bit advisory-lock key for a name (hash() is salted per process)."""
    digest = hashlib.sha256(":".join(["tlc-luigi", *map(str, parts)]).encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def rollback_quietly(conn: Connection) -> None:
    """Roll back if the connection is still there; a dead one has rolled back on the server."""
    if conn.closed:
        return
    with contextlib.suppress(psycopg2.Error):
        conn.rollback()
