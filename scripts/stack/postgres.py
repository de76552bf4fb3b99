"""A throwaway PostgreSQL cluster inside the stack directory: the pipeline's database and
luigid's task history.

Layout under ``<stack>/postgres/``: ``data/`` (the cluster, owned by the server user),
``run/`` (its unix socket, mode 0700), ``password`` (mode 0600, the ``tlc`` role's password,
generated once with ``secrets``) and ``luigid.password`` (likewise, for the ``luigid`` role
that owns the ``luigi_history`` database). Clients use TCP on 127.0.0.1 with scram-sha-256:
the pipeline through the exported ``PG*`` variables, luigid through a passfile of its own
(scripts/stack/luigid.py); the stack administers the cluster as ``postgres`` over the private
unix socket.

The server binaries are Debian's/Ubuntu's ``/usr/lib/postgresql/<major>/bin``, whatever major
the distribution ships (15 on Debian 12, 17 on Debian 13, 14 on Ubuntu 22.04, 16 on 24.04):
an existing cluster keeps the major it was made with, a new one takes the newest installed.

PostgreSQL refuses to run as root, so when the stack runs as root the server runs as the
dedicated system user ``tlcpg`` (created on first use, no home, no login shell). A dedicated
user rather than Debian's ``postgres`` keeps the throwaway cluster and any system cluster
unable to touch each other's files. As a non-root user the server simply runs as the caller.
"""

from __future__ import annotations

import os
import pwd
import re
import secrets
import shutil
import subprocess
from contextlib import closing
from pathlib import Path

import psycopg2
from psycopg2 import sql
from psycopg2.extensions import encrypt_password

from scripts.stack.base import StackDir, StackError, free_port, pid_alive, wait_until

NAME = "postgres"
PG_ROOT = Path("/usr/lib/postgresql")  # postgresql-common's layout: <root>/<major>/bin
SERVER_BINARIES = ("postgres", "initdb", "pg_ctl")
SERVER_USER = "tlcpg"  # only used when the stack runs as root
SUPERUSER = "postgres"
ROLE = DATABASE = "tlc"
# luigid's task history: a role and database of its own, so luigid can neither read nor
# change the pipeline's tables, and the pipeline's password is not luigid's.
HISTORY_ROLE, HISTORY_DATABASE = "luigid", "luigi_history"
SOCKET_PATH_MAX = 107  # sun_path is 108 bytes including the terminating NUL

# The socket directory is 0700 and owned by the server user, so only that user and root can
# reach the socket at all: trust there is as strict as peer auth, without an ident map for
# root. Everything else must come over TCP on loopback with a scram-sha-256 password.
PG_HBA = """\
# Written by scripts/stack/postgres.py; see its docstring.
local   all   all                  trust
host    all   all   127.0.0.1/32   scram-sha-256
"""

# A throwaway cluster, rebuilt from the source files whenever needed: durability is traded
# for speed (fsync, synchronous_commit and full_page_writes off). A crash of the machine may
# lose or corrupt it; nothing in it is ever the only copy.
STACK_CONF = """\
# Written by scripts/stack/postgres.py (included from postgresql.conf).
listen_addresses = '127.0.0.1'
unix_socket_permissions = 0700
password_encryption = 'scram-sha-256'
fsync = off
synchronous_commit = off
full_page_writes = off
log_line_prefix = '%m [%p] %q%u@%d '
"""


def installed_majors(root: Path = PG_ROOT) -> list[int]:
    """Major versions whose server binaries are all installed under ``root``, oldest first."""
    if not root.is_dir():
        return []
    majors = []
    for entry in root.iterdir():
        if re.fullmatch(r"\d+", entry.name) and all(os.access(entry / "bin" / b, os.X_OK) for b in SERVER_BINARIES):
            majors.append(int(entry.name))
    return sorted(majors)


def server_major(data: Path | None = None, root: Path = PG_ROOT) -> int:
    """The major to run: the existing cluster's own (``PG_VERSION``), else the newest installed.

    A cluster can only be run by the major that made it, so a newer major installed later
    (a distribution upgrade) never touches it; a one-line StackError says what to do instead.
    """
    majors = installed_majors(root)
    cluster = None
    if data is not None and (data / "PG_VERSION").is_file():
        cluster = int((data / "PG_VERSION").read_text().strip())
    if cluster is not None:
        if cluster in majors:
            return cluster
        have = ", ".join(map(str, majors)) or "none"
        raise StackError(
            f"{data} holds a PostgreSQL {cluster} cluster but the installed server majors are {have}; "
            f"install postgresql-{cluster} or remove {data} to start afresh"
        )
    if not majors:
        raise StackError(
            f"no PostgreSQL server is installed (no {root}/<major>/bin/postgres); install the "
            "distribution's default with `scripts/install_postgres.sh` "
            "(or `apt-get update && apt-get install -y postgresql` as root)"
        )
    return majors[-1]


def _bin(name: str, major: int) -> str:
    return str(PG_ROOT / str(major) / "bin" / name)


def _server_ids() -> tuple[int, int] | None:
    """(uid, gid) to drop to when we are root, creating the system user once; None otherwise."""
    if os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam(SERVER_USER)
    except KeyError:
        useradd = shutil.which("useradd") or "/usr/sbin/useradd"
        proc = subprocess.run(
            [
                useradd,
                "--system",
                "--user-group",
                "--no-create-home",
                "--home-dir",
                "/nonexistent",
                "--shell",
                "/usr/sbin/nologin",
                "--comment",
                "tlc-luigi throwaway PostgreSQL",
                SERVER_USER,
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        try:  # looked up again: a concurrent useradd that won the race (exit 9) is fine too
            entry = pwd.getpwnam(SERVER_USER)
        except KeyError:
            raise StackError(
                f"could not create the system user {SERVER_USER} to run PostgreSQL as non-root: {proc.stderr.strip()}"
            ) from None
    if entry.pw_uid == 0:
        raise StackError(f"user {SERVER_USER} has uid 0; PostgreSQL needs an unprivileged user")
    return entry.pw_uid, entry.pw_gid


def _as_server(ids: tuple[int, int] | None, cmd: list[str]) -> list[str]:
    """Wrap ``cmd`` to run as the server user with a minimal environment.

    ``setpriv`` execs in place, so a spawned postmaster keeps the pid we recorded; ``env -i``
    keeps the caller's ``PG*`` variables (a sourced ``.stack/env``) away from the server.
    """
    clean = ["env", "-i", "PATH=/usr/bin:/bin", "LC_ALL=C"]
    if ids is None:
        return clean + cmd
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        raise StackError(
            "setpriv (util-linux) is needed to run PostgreSQL as non-root; "
            "install it with `apt-get install -y util-linux`"
        )
    uid, gid = ids
    return [setpriv, f"--reuid={uid}", f"--regid={gid}", "--clear-groups", "--", *clean, *cmd]


def _chown_tree(path: Path, ids: tuple[int, int]) -> None:
    """Hand a directory tree to the server user (only when it is not theirs already)."""
    st = path.stat()
    if (st.st_uid, st.st_gid) == ids:
        return
    os.lchown(path, *ids)
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            os.lchown(os.path.join(root, name), *ids)


def _tail(log: Path, lines: int = 5) -> str:
    if not log.exists():
        return ""
    return " | last log lines: " + " / ".join(log.read_text(errors="replace").splitlines()[-lines:])


def _check_reachable(ids: tuple[int, int] | None, target: Path) -> None:
    """Fail clearly when a parent directory (e.g. a 0700 /root) hides the data from ``tlcpg``."""
    if ids is None:
        return
    test = shutil.which("test") or "/usr/bin/test"

    def searchable(path: Path) -> bool:
        return subprocess.run(_as_server(ids, [test, "-x", str(path)]), check=False).returncode == 0

    if searchable(target):
        return
    blocker = next((p for p in reversed(target.parents) if not searchable(p)), target)
    raise StackError(
        f"PostgreSQL runs as the unprivileged user {SERVER_USER}, which cannot enter {blocker} "
        f"(mode {blocker.stat().st_mode & 0o777:o}); allow it with `chmod o+x {blocker}` "
        "(search only, no listing) or use a stack --dir outside it"
    )


def _exited(pid: int) -> bool:
    """True once the postmaster is gone (a zombie child of ours counts as gone)."""
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:  # not our child, or already reaped
        return not pid_alive(pid)
    return done == pid


def _admin_connect(run: Path, port: int) -> psycopg2.extensions.connection:
    return psycopg2.connect(host=str(run), port=port, user=SUPERUSER, dbname="postgres", connect_timeout=2)


def _accepting(run: Path, port: int) -> bool:
    """Readiness probe: a real login over the socket (raises while the server starts up)."""
    _admin_connect(run, port).close()
    return True


def _read_or_make_password(path: Path) -> str:
    """The role password: made once, kept only in a 0600 file, never printed or logged."""
    if path.exists():
        value = path.read_text().strip()
        if value:
            return value
    value = secrets.token_urlsafe(24)
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(value + "\n")
    tmp.replace(path)
    return value


def _initdb(ids: tuple[int, int] | None, major: int, data: Path, log: Path) -> None:
    """Create the cluster once; ``--no-sync`` because it is throwaway (see STACK_CONF)."""
    if data.exists() and any(data.iterdir()):  # a half-made cluster from an interrupted initdb
        shutil.rmtree(data)
        data.mkdir(mode=0o700)
        if ids is not None:
            os.chown(data, *ids)
    cmd = [
        _bin("initdb", major),
        "-D",
        str(data),
        "-U",
        SUPERUSER,
        "-E",
        "UTF8",
        "--no-locale",
        "--auth-local=trust",
        "--auth-host=scram-sha-256",
        "--no-sync",
    ]
    with open(log, "ab") as out:
        proc = subprocess.run(
            _as_server(ids, cmd), stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, check=False
        )
    if proc.returncode != 0:
        raise StackError(f"initdb failed (exit {proc.returncode}){_tail(log)}")


def _configure(ids: tuple[int, int] | None, data: Path) -> None:
    """Write our auth and settings on every start, so an interrupted first start heals."""
    (data / "pg_hba.conf").write_text(PG_HBA)
    (data / "stack.conf").write_text(STACK_CONF)
    main = data / "postgresql.conf"
    if "include 'stack.conf'" not in main.read_text():
        with open(main, "a") as conf:
            conf.write("\ninclude 'stack.conf'\n")
    if ids is not None:
        for name in ("pg_hba.conf", "stack.conf"):
            os.chown(data / name, *ids)


def _pg_ctl(ids: tuple[int, int] | None, major: int, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        _as_server(ids, [_bin("pg_ctl", major), *args]),
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def _ensure_role_and_database(cur: psycopg2.extensions.cursor, role: str, database: str, password: str) -> None:
    """Create (or re-password) ``role`` and create ``database`` owned by it.

    Only a scram-sha-256 verifier computed client-side reaches the server, so even a logged
    statement would not reveal the password. Re-setting it each start heals a lost file.
    """
    cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,))
    verb = "ALTER" if cur.fetchone() else "CREATE"
    verifier = encrypt_password(password, role, cur.connection, "scram-sha-256")
    cur.execute(sql.SQL("{} ROLE {} LOGIN PASSWORD %s").format(sql.SQL(verb), sql.Identifier(role)), (verifier,))
    cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,))
    if not cur.fetchone():
        cur.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(database), sql.Identifier(role)))


def _bootstrap(run: Path, port: int, home: Path) -> str:
    """Ensure the pipeline's role and database and luigid's; returns the pipeline's password
    (luigid's stays in its 0600 file, for scripts/stack/luigid.py's passfile)."""
    password = _read_or_make_password(home / "password")
    history_password = _read_or_make_password(home / f"{HISTORY_ROLE}.password")
    with closing(_admin_connect(run, port)) as conn:
        conn.autocommit = True
        with conn.cursor() as cur:
            _ensure_role_and_database(cur, ROLE, DATABASE, password)
            _ensure_role_and_database(cur, HISTORY_ROLE, HISTORY_DATABASE, history_password)
    return password


def start(stack: StackDir) -> dict:
    """Start (initdb-ing once) the cluster, wait for it by polling, and return its state."""
    home = stack.path("postgres", "data").parent
    data, run = home / "data", home / "run"
    major = server_major(data)  # before any work: a missing server is one clear line
    ids = _server_ids()
    if len(str(run / ".s.PGSQL.65535")) > SOCKET_PATH_MAX:
        raise StackError(f"stack dir path too long for a unix socket ({run}); use a shorter --dir")
    home.chmod(0o711 if ids else 0o700)  # the server user only needs to pass through
    for path in (data, run):
        path.mkdir(mode=0o700, exist_ok=True)
        path.chmod(0o700)
        if ids is not None:
            _chown_tree(path, ids)
    _check_reachable(ids, data)
    log = stack.log(NAME)

    if not (data / "PG_VERSION").exists():
        _initdb(ids, major, data, log)
    elif _pg_ctl(ids, major, "status", "-D", str(data)).returncode == 0:
        # A postmaster the state file lost track of (e.g. services.json removed): stop it.
        _pg_ctl(ids, major, "stop", "-D", str(data), "-m", "fast", "-w", "-t", "60")
    _configure(ids, data)

    port = free_port()
    server = [_bin("postgres", major), "-D", str(data), "-p", str(port), "-k", str(run)]
    pid = stack.spawn(NAME, _as_server(ids, server))
    wait_until(lambda: _exited(pid) or _accepting(run, port), "PostgreSQL", log=log)
    if _exited(pid):
        raise StackError(f"PostgreSQL exited during startup{_tail(log)}")
    password = _bootstrap(run, port, home)
    state = {
        "pids": [pid],
        "port": port,
        "major": major,
        "data": str(data),
        "socket_dir": str(run),
        "run_as": list(ids) if ids else None,
        # For luigid's task history (scripts/stack/luigid.py): never exported to the env file.
        "history": {
            "role": HISTORY_ROLE,
            "database": HISTORY_DATABASE,
            "password_file": str(home / f"{HISTORY_ROLE}.password"),
        },
        "env": {
            "PGHOST": "127.0.0.1",
            "PGPORT": str(port),
            "PGUSER": ROLE,
            "PGDATABASE": DATABASE,
            "PGPASSWORD": password,
        },
    }
    if not healthy(state):  # the path clients take: TCP + scram as tlc
        raise StackError(f"PostgreSQL is up but role {ROLE} cannot log in over TCP{_tail(log)}")
    return state


def healthy(state: dict) -> bool:
    """True when ``tlc`` can log in over TCP with the exported credentials and run a query."""
    env = state["env"]
    try:
        with (
            closing(
                psycopg2.connect(
                    host=env["PGHOST"],
                    port=env["PGPORT"],
                    user=env["PGUSER"],
                    password=env["PGPASSWORD"],
                    dbname=env["PGDATABASE"],
                    connect_timeout=2,
                )
            ) as conn,
            conn.cursor() as cur,
        ):
            cur.execute("SELECT 1")
            return cur.fetchone() == (1,)
    except psycopg2.Error:
        return False


def stop(stack: StackDir, state: dict) -> None:
    """Fast shutdown: sessions end, open transactions roll back, a checkpoint is written.

    The stack's SIGTERM-then-SIGKILL of the pid afterwards only matters if this failed.
    """
    data = Path(state["data"])
    if not (data / "postmaster.pid").exists():
        return
    run_as = state.get("run_as")
    ids = (int(run_as[0]), int(run_as[1])) if run_as else None
    major = int(state.get("major") or server_major(data))
    proc = _pg_ctl(ids, major, "stop", "-D", str(data), "-m", "fast", "-w", "-t", "60")
    with open(stack.log(NAME), "a") as log:
        log.write(proc.stdout + proc.stderr)
