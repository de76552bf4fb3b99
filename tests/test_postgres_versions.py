"""Which PostgreSQL major the stack runs: the distribution's, found under /usr/lib/postgresql.

Debian 12 ships 15, Debian 13 17, Ubuntu 22.04 14 and 24.04 16; only Debian 12 runs here, so
the discovery rule (shared by scripts/install_postgres.sh and scripts/stack/postgres.py) is
checked on the real installation and on made-up trees of several majors, and the running
server is asked for its version.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import psycopg2
import pytest

from scripts.stack import StackError
from scripts.stack.postgres import PG_ROOT, SERVER_BINARIES, installed_majors, server_major

REPO = Path(__file__).resolve().parents[1]
INSTALL = REPO / "scripts" / "install_postgres.sh"


def _fake_tree(root: Path, complete: tuple[str, ...], partial: tuple[str, ...] = ()) -> Path:
    """``root/<major>/bin`` with executable stand-ins; ``partial`` majors lack initdb/pg_ctl."""
    for major in complete + partial:
        bin_dir = root / major / "bin"
        bin_dir.mkdir(parents=True)
        for name in SERVER_BINARIES if major in complete else SERVER_BINARIES[:1]:
            (bin_dir / name).write_text("#!/bin/sh\nexit 0\n")
            (bin_dir / name).chmod(0o755)
    return root


def _script_major(root: Path | None = None) -> int:
    """The major install_postgres.sh reports (its last line); it installs nothing when one is there."""
    env = {**os.environ, "TLC_PG_LIB": str(root)} if root else dict(os.environ)
    proc = subprocess.run(["bash", str(INSTALL)], capture_output=True, text=True, env=env, check=True, timeout=60)
    match = re.fullmatch(r"postgresql (\d+): already installed in (\S+)", proc.stdout.strip().splitlines()[-1])
    assert match, proc.stdout
    return int(match[1])


def test_the_installed_major_is_found_and_is_what_its_server_reports() -> None:
    majors = installed_majors()
    assert majors, f"no server under {PG_ROOT}: make setup runs scripts/install_postgres.sh"
    newest = server_major()
    assert newest == majors[-1]
    out = subprocess.run(
        [str(PG_ROOT / str(newest) / "bin" / "postgres"), "--version"], capture_output=True, text=True, check=True
    ).stdout
    assert re.fullmatch(rf"postgres \(PostgreSQL\) {newest}\.\d+.*", out.strip()), out
    assert _script_major() == newest


def test_script_and_stack_pick_the_same_major_from_a_tree_of_several(tmp_path: Path) -> None:
    # 17 lacks initdb/pg_ctl (a client-only or half-removed install); 9.6 and "latest" are not majors.
    root = _fake_tree(tmp_path / "lib", complete=("13", "16", "9.6", "latest"), partial=("17",))
    assert installed_majors(root) == [13, 16]
    assert server_major(root=root) == 16
    assert _script_major(root) == 16


def test_an_existing_cluster_keeps_its_major_and_a_missing_one_is_one_clear_line(tmp_path: Path) -> None:
    root = _fake_tree(tmp_path / "lib", complete=("13", "16"))
    data = tmp_path / "data"
    data.mkdir()
    (data / "PG_VERSION").write_text("13\n")
    assert server_major(data, root) == 13  # not the newer 16: a cluster runs only under its own major
    (data / "PG_VERSION").write_text("12\n")
    with pytest.raises(StackError) as err:
        server_major(data, root)
    assert str(err.value) == (
        f"{data} holds a PostgreSQL 12 cluster but the installed server majors are 13, 16; "
        f"install postgresql-12 or remove {data} to start afresh"
    )
    with pytest.raises(StackError, match=r"no PostgreSQL server is installed .*scripts/install_postgres.sh"):
        server_major(root=tmp_path / "empty")


def test_the_running_server_is_the_discovered_major(pg_server: dict[str, str], pg_stack_dir: Path) -> None:
    from scripts.stack import Stack

    state = Stack(pg_stack_dir).dir.load_state()["postgres"]
    conn = psycopg2.connect(
        connect_timeout=5,
        **{k: pg_server[f"PG{k.upper()}"] for k in ("host", "port", "user")},
        password=pg_server["PGPASSWORD"],
        dbname=pg_server["PGDATABASE"],
    )
    try:
        with conn.cursor() as cur:
            cur.execute("SHOW server_version_num")
            (num,) = cur.fetchone()
    finally:
        conn.close()
    assert int(num) // 10000 == state["major"] == server_major()
