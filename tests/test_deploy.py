"""deploy/: the systemd units and luigid's config, checked with systemd's own tools.

``systemd-analyze verify`` parses the units as systemd would and checks that every ExecStart
binary exists and is executable; it is run on copies whose install path ``/opt/tlc-luigi``
is this checkout, so the binaries it checks (``.venv/bin/luigid``, ``.venv/bin/luigi``) are
real. systemd is not PID 1 here: nothing is started, only parsed and checked. The catch-up
service must run the README's cron command, and the timer fire on the cron line's schedule.
"""

from __future__ import annotations

import configparser
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.readme import blocks, cron_entries

REPO = Path(__file__).resolve().parents[1]
UNITS = REPO / "deploy" / "systemd"
INSTALL = "/opt/tlc-luigi"
ANALYZE = "/usr/bin/systemd-analyze"


def _require_analyze() -> None:
    if not os.access(ANALYZE, os.X_OK):
        reason = f"{ANALYZE} is missing: `make test` installs it (scripts/install_apt_tool.sh ... systemd)"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)


def _unit(name: str) -> configparser.ConfigParser:
    # systemd allows repeated keys (Environment=); strict=False keeps the last, enough here.
    cfg = configparser.ConfigParser(strict=False, interpolation=None)
    cfg.optionxform = str  # type: ignore[assignment, method-assign]
    cfg.read(UNITS / name)
    return cfg


def _environment(name: str) -> dict[str, str]:
    """Every Environment= assignment of a unit's [Service]."""
    lines = (UNITS / name).read_text().splitlines()
    return dict(line.split("=", 2)[1:] for line in lines if line.startswith("Environment="))


def _localised(tmp_path: Path) -> list[Path]:
    out = []
    for unit in sorted(UNITS.iterdir()):
        copy = tmp_path / unit.name
        copy.write_text(unit.read_text().replace(INSTALL, str(REPO)))
        out.append(copy)
    return out


def _verify(paths: list[Path]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [ANALYZE, "verify", *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=paths[0].parent,
    )


def test_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    _require_analyze()
    units = _localised(tmp_path)
    assert [u.name for u in units] == ["luigid.service", "tlc-catchup.service", "tlc-catchup.timer"]
    proc = _verify(units)
    # verify exits 0 on mere warnings (an unknown key is "ignoring"): no output at all is the bar.
    assert (proc.returncode, proc.stdout + proc.stderr) == (0, "")


def test_verify_would_catch_a_broken_unit(tmp_path: Path) -> None:
    """The bar above can fail: a misspelt key and a missing binary are both reported."""
    _require_analyze()
    units = _localised(tmp_path)
    text = units[0].read_text()
    units[0].write_text(text.replace("Restart=", "Restrat=").replace("/bin/luigid ", "/bin/luigid-gone "))
    proc = _verify(units[:1])
    assert proc.returncode != 0
    assert "Unknown key 'Restrat'" in proc.stderr
    assert "luigid-gone is not executable" in proc.stderr


def test_timer_fires_on_the_cron_lines_schedule() -> None:
    _require_analyze()
    (cron,) = [b for b in blocks() if b.lang == "cron"]
    (entry,) = cron_entries(cron)
    minute, hour, dom, month, dow = entry.schedule
    assert (dom, month, dow) == ("*", "*", "*"), "a daily line"
    calendar = _unit("tlc-catchup.timer")["Timer"]["OnCalendar"]
    proc = subprocess.run([ANALYZE, "calendar", calendar], capture_output=True, text=True, check=True, timeout=30)
    normalized = re.search(r"Normalized form: (.+)", proc.stdout)[1]  # type: ignore[index]
    assert normalized == f"*-*-* {int(hour):02d}:{int(minute):02d}:00"
    assert _unit("tlc-catchup.timer")["Timer"]["Unit"] == "tlc-catchup.service"


def test_catchup_service_runs_the_cron_command_against_the_units_luigid() -> None:
    (cron,) = [b for b in blocks() if b.lang == "cron"]
    (entry,) = cron_entries(cron)
    # The cron command: cd INSTALL && . .venv/bin/activate && <luigi command> >> log 2>&1
    cd, activate, luigi_cmd = (part.strip() for part in entry.command.split(">>")[0].split("&&"))
    assert (cd, activate) == (f"cd {INSTALL}", ". .venv/bin/activate")
    service = _unit("tlc-catchup.service")["Service"]
    assert service["WorkingDirectory"] == INSTALL
    assert service["ExecStart"] == f"{INSTALL}/.venv/bin/{luigi_cmd}"
    assert service["Type"] == "oneshot"
    # Neither sets a scheduler: both use luigi's default, localhost:8082, where luigid.service listens.
    assert "--scheduler" not in luigi_cmd and "--local-scheduler" not in luigi_cmd
    luigid = _unit("luigid.service")["Service"]
    assert "--port 8082" in luigid["ExecStart"] and "--address 127.0.0.1" in luigid["ExecStart"]
    # What luigi resolves from ./luigi.cfg alone, as under cron or systemd (no LUIGI_CONFIG_PATH).
    probe = (
        "from luigi.interface import core; c = core(); print(c.scheduler_host, c.scheduler_port, repr(c.scheduler_url))"
    )
    env = {k: v for k, v in os.environ.items() if k != "LUIGI_CONFIG_PATH"}
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO, env=env, capture_output=True, text=True, check=True, timeout=60
    ).stdout
    assert out.strip() == "localhost 8082 ''", "luigi.cfg must leave the scheduler where luigid.service listens"


def test_units_keep_secrets_out_and_load_the_repos_luigid_config() -> None:
    env = _environment("luigid.service")
    assert env["LUIGI_CONFIG_PATH"] == f"{INSTALL}/deploy/luigid.cfg"
    assert env["PGPASSFILE"] == "%d/pgpass"  # systemd's credentials directory
    for name in ("luigid.service", "tlc-catchup.service"):
        text = (UNITS / name).read_text()
        assert "LoadCredential=pgpass:/etc/tlc-luigi/" in text
        assert not re.search(r"(?i)password\s*=|PGPASSWORD", text), name
    cfg = configparser.ConfigParser(interpolation=None)
    cfg.read(REPO / "deploy" / "luigid.cfg")
    assert cfg["scheduler"]["record_task_history"] == "true"
    assert cfg["scheduler"]["metrics_collector"] == "prometheus"
    url = cfg["task_history"]["db_connection"]
    assert re.fullmatch(r"postgresql\+psycopg2://luigid@localhost:5432/luigi_history", url), url
    assert shutil.which("luigid", path=str(REPO / ".venv" / "bin")), "the unit's ExecStart binary"
