"""`make image-test`: our container images built with podman and run, one month end to end.

Why: the Dockerfiles and docker-compose.yml were only ever read (scripts/check_containers.py). This
builds both images from the very files a user's ``docker build`` reads (only ``BASE_IMAGE`` differs:
a local Debian 12 base, see scripts/podman.py) and runs them the way docker-compose.yml does, on the
host network since compose's service names cannot be resolved here:

1. the pipeline image's default command and ``--help`` answer;
2. ``gcs``, ``bigquery`` and ``luigid`` start from our two images with compose's own command,
   entrypoint, environment and volumes (ports moved to free loopback ports, ``0.0.0.0`` to
   127.0.0.1, service names to 127.0.0.1), and each passes compose's own healthcheck command,
   run inside its container; the two emulators share one GCS directory as in compose;
3. compose's ``pipeline`` entrypoint (the password read from a mounted secret file) runs
   ``IngestMonth`` for one generated month, against those containers, the local stack's
   PostgreSQL 15 and loopback source (postgres:15 is a registry image: not reachable here),
   writing into a host directory mounted at ``/data`` as compose's ``tlc-data`` volume;
4. ``python -m tlc.report`` runs on the host, outside every container, over that directory's
   ledger and the same sinks, and every stage must hold exactly the month's rows.

Usage: ``python -m scripts.image_test [--workdir DIR] [--rows N] [--keep]``. Exit 0 when all holds,
1 with one line naming what did not, 2 when podman cannot run on this machine at all.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from scripts.check_containers import COMPOSE_FILE, INTERPOLATION, load_yaml  # noqa: E402
from scripts.make_sample_data import write_month  # noqa: E402
from scripts.podman import Podman, PodmanError, ensure_base, pip_build_mounts, unusable_reason  # noqa: E402
from scripts.stack import Stack  # noqa: E402
from scripts.stack.base import free_port, wait_until  # noqa: E402

# Image name -> (Dockerfile, tag). Runs use the built image's id, so a concurrent run that
# retags never changes what this one runs.
IMAGES = {
    "tlc-luigi": ("Dockerfile", "localhost/tlc-luigi:test"),
    "tlc-emulators": ("docker/emulators.Dockerfile", "localhost/tlc-emulators:test"),
}
# Compose services started from our images, in order (luigid last, as in the local stack).
SERVICES = ("gcs", "bigquery", "luigid")
MONTH = ("yellow", 2021, 1)
RUN_FLAGS = ("--runtime", "runc", "--network=host")
ROWS = 5_000


class ImageTestError(RuntimeError):
    """One step of the image test failed; the message names the step."""


@dataclass
class Result:
    seconds: dict[str, float] = field(default_factory=dict)
    images: dict[str, str] = field(default_factory=dict)
    help_text: str = ""
    month_log: str = ""
    report: str = ""
    counts: dict[str, str] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------
# docker-compose.yml, rewritten for the host network
# ---------------------------------------------------------------------------------------------


def compose_services(repo: Path = ROOT) -> dict[str, dict[str, Any]]:
    doc, _ = load_yaml((repo / COMPOSE_FILE).read_text())
    return doc["services"]


def _interpolate(value: str) -> str:
    """Compose's ``${VAR:-default}`` against this process's environment, ``$$`` to ``$``."""

    def sub(match: re.Match[str]) -> str:
        name, op, word = match.group(1), match.group(2) or "", match.group(3) or ""
        current = os.environ.get(name)
        is_set = bool(current) if op.startswith(":") else current is not None
        if op.endswith("-"):
            return current if is_set else word
        if op.endswith("+"):
            return word if is_set else ""
        if op.endswith("?") and not is_set:
            raise ImageTestError(f"docker-compose.yml needs {name}: {word or 'not set'}")
        return current or ""

    return INTERPOLATION.sub(sub, value).replace("$$", "$")


@dataclass
class HostNetwork:
    """Where each compose port lands on the host: every container port gets a free loopback port.

    Compose's services listen on fixed ports (4443, 9050, ...) in their own network namespaces;
    on the shared host network those could be taken, so each is moved, and every ``host:port``
    that names a service, ``localhost``, ``127.0.0.1`` or ``0.0.0.0`` follows it.
    """

    services: tuple[str, ...]
    ports: dict[str, int] = field(default_factory=dict)

    def port(self, container_port: str) -> int:
        if container_port not in self.ports:
            self.ports[container_port] = free_port()
        return self.ports[container_port]

    def rewrite(self, value: str) -> str:
        hosts = "|".join(re.escape(h) for h in (*self.services, "localhost", "127.0.0.1", "0.0.0.0"))  # noqa: S104

        def sub(match: re.Match[str]) -> str:
            return f"127.0.0.1:{self.port(match.group(2))}"

        value = re.sub(rf"\b({hosts}):(\d+)\b", sub, value)
        return "127.0.0.1" if value == "0.0.0.0" else value  # noqa: S104 - the address compose binds to

    def args(self, words: list[str]) -> list[str]:
        """Command words: values of ``-port``/``--rest-port``-style flags move too."""
        out: list[str] = []
        for i, word in enumerate(words):
            flag = words[i - 1] if i else ""
            if re.fullmatch(r"--?[\w-]*port", flag) and word.isdigit():
                out.append(str(self.port(word)))
            else:
                out.append(self.rewrite(_interpolate(word)))
        return out


# ---------------------------------------------------------------------------------------------
# Steps
# ---------------------------------------------------------------------------------------------


def build_images(podman: Podman, work: Path, result: Result, repo: Path = ROOT) -> None:
    began = time.monotonic()
    base, base_seconds = ensure_base(podman, work / "logs" / "debootstrap.log")
    result.seconds["base image (debootstrap, cached after the first run)"] = base_seconds
    mounts = pip_build_mounts(work)
    for name, (dockerfile, tag) in IMAGES.items():
        start = time.monotonic()
        with podman.lock("build-" + name):
            result.images[name] = podman.build(
                repo / dockerfile,
                repo,
                tag=tag,
                build_args={"BASE_IMAGE": base},
                mounts=mounts,
                log=work / "logs" / f"build-{name}.log",
            )
        result.seconds[f"build {name}"] = time.monotonic() - start
    podman.prune()
    result.seconds["images total"] = time.monotonic() - began


def image_user(podman: Podman, image: str) -> tuple[int, int]:
    """The numeric uid:gid the image runs as (its USER), which must own its writable mounts."""
    user = podman("image", "inspect", "--format", "{{.Config.User}}", image).stdout.strip()
    uid, _, gid = user.partition(":")
    if not uid.isdigit():
        raise ImageTestError(f"image {image[:12]} runs as USER {user!r}; expected a numeric uid:gid")
    return int(uid), int(gid or uid)


def check_help(podman: Podman, image: str, result: Result) -> None:
    """The default command (IngestRange --help) and --help: the entrypoint, venv and code are in place."""
    default = podman.run_raw("run", "--rm", *RUN_FLAGS, image, timeout=120)
    if default.returncode != 0 or "--colors" not in default.stdout:
        raise ImageTestError(f"the default command exited {default.returncode}: {default.stderr[-500:]}")
    plain = podman.run_raw("run", "--rm", *RUN_FLAGS, image, "--help", timeout=120)
    if plain.returncode != 0 or "usage: luigi" not in plain.stdout:
        raise ImageTestError(f"--help exited {plain.returncode}: {plain.stderr[-500:]}")
    result.help_text = default.stdout


@dataclass
class RunSpec:
    """A compose service as podman run arguments: options, environment (passed by name) and command."""

    options: list[str]
    env: dict[str, str]
    command: list[str]


def service_spec(
    service: dict[str, Any], net: HostNetwork, work: Path, owner: tuple[int, int], extra_env: dict[str, str]
) -> RunSpec:
    options: list[str] = []
    for volume in service.get("volumes", []):
        name, _, target = str(volume).partition(":")
        host = work / "volumes" / name
        if not host.exists():
            host.mkdir(parents=True)
            os.chown(host, *owner)  # a named volume takes the image directory's owner; a bind mount must be given it
        options += ["-v", f"{host}:{target}"]
    env = {k: net.rewrite(_interpolate(str(v))) for k, v in (service.get("environment") or {}).items()}
    env.update(extra_env)
    for key in env:
        options += ["--env", key]
    if "entrypoint" in service:
        options += ["--entrypoint", json.dumps(net.args([str(w) for w in service["entrypoint"]]))]
    return RunSpec(options, env, net.args([str(w) for w in service.get("command", [])]))


class Containers:
    """Detached containers of one run, removed together however the run ends."""

    def __init__(self, podman: Podman, prefix: str) -> None:
        self.podman = podman
        self.prefix = prefix
        self.names: list[str] = []

    def start(self, name: str, image: str, spec: RunSpec) -> str:
        full = f"{self.prefix}-{name}"
        self.names.append(full)
        self.podman("run", "-d", "--name", full, *RUN_FLAGS, *spec.options, image, *spec.command, env=spec.env)
        return full

    def logs(self, full: str) -> str:
        proc = self.podman.run_raw("logs", full, timeout=60)
        return (proc.stdout + proc.stderr)[-1500:]

    def remove(self) -> None:
        for full in reversed(self.names):
            self.podman.run_raw("rm", "-f", "-t", "5", full, timeout=120)


def _healthy(podman: Podman, container: str, service: dict[str, Any], net: HostNetwork) -> bool:
    """Compose's own healthcheck command, run inside the container as compose would."""
    test = [str(w) for w in service["healthcheck"]["test"]]
    words = net.args(test[1:])
    argv = words if test[0] == "CMD" else ["sh", "-c", " ".join(words)]
    return podman.run_raw("exec", container, *argv, timeout=30).returncode == 0


def _image_of(service: dict[str, Any], result: Result) -> str:
    """The id of the image we built for a compose service: its ``image:`` names one of ours, and
    its ``build.dockerfile`` is the file we built that image from (compose and test agree)."""
    name = str(service["image"]).rsplit("/", 1)[-1].split(":")[0]
    if name not in result.images:
        raise ImageTestError(f"compose service uses image {service['image']!r}, which this test does not build")
    dockerfile = str((service.get("build") or {}).get("dockerfile", "Dockerfile"))
    if dockerfile != IMAGES[name][0]:
        raise ImageTestError(
            f"compose builds {service['image']!r} from {dockerfile}, the image test from {IMAGES[name][0]}"
        )
    return result.images[name]


def start_services(podman: Podman, containers: Containers, net: HostNetwork, work: Path, result: Result) -> None:
    """gcs, bigquery and luigid from our images as compose defines them, each healthy by its own check."""
    services = compose_services()
    for name in SERVICES:
        service = services[name]
        image = _image_of(service, result)
        full = containers.start(name, image, service_spec(service, net, work, image_user(podman, image), {}))
        began = time.monotonic()
        try:
            wait_until(lambda c=full, s=service: _healthy(podman, c, s, net), f"compose service {name}", timeout=120)
        except Exception as exc:  # noqa: BLE001 - StackError or a podman failure: both end the run here
            raise ImageTestError(f"{exc}; its log:\n{containers.logs(full)}") from None
        result.seconds[f"{name} container healthy"] = time.monotonic() - began


def run_month(
    podman: Podman, net: HostNetwork, work: Path, stack_env: dict[str, str], result: Result
) -> dict[str, str]:
    """compose's pipeline service, IngestMonth for one month; the environment the report needs."""
    service = compose_services()["pipeline"]
    image = _image_of(service, result)
    owner = image_user(podman, image)
    secret = work / "secrets" / "pg_password"  # what compose mounts at /run/secrets/pg_password
    secret.parent.mkdir(exist_ok=True)
    secret.write_text(stack_env["PGPASSWORD"])
    secret.chmod(0o400)
    os.chown(secret, *owner)
    # PostgreSQL is the local stack's (the postgres image is a registry's); the source is the
    # loopback one (compose uses the real TLC site, luigi.cfg's default).
    extra = {k: stack_env[k] for k in ("PGHOST", "PGPORT", "PGUSER", "PGDATABASE", "TLC_SOURCE_URL", "TLC_PARQUET_URL")}
    spec = service_spec(service, net, work, owner, extra)
    color, year, month = MONTH
    spec.options += ["-v", f"{secret}:/run/secrets/pg_password:ro"]
    spec.command = ["IngestMonth", "--color", color, "--year", str(year), "--month", str(month)]
    luigid = [str(w) for w in compose_services()["luigid"]["command"]]
    spec.command += ["--scheduler-url", f"http://127.0.0.1:{net.port(luigid[luigid.index('--port') + 1])}/"]
    began = time.monotonic()
    proc = podman.run_raw("run", "--rm", *RUN_FLAGS, *spec.options, image, *spec.command, env=spec.env, timeout=600)
    result.seconds["IngestMonth in the container"] = time.monotonic() - began
    result.month_log = proc.stdout + proc.stderr
    if proc.returncode != 0:
        raise ImageTestError(f"IngestMonth in the container exited {proc.returncode}:\n{result.month_log[-3000:]}")
    data = work / "volumes" / "tlc-data"
    return {**spec.env, "TLC_DATA_DIR": str(data), "PGPASSWORD": stack_env["PGPASSWORD"]}


def reconcile(env: dict[str, str], work: Path, rows: int, result: Result) -> None:
    """tlc.report on the host, outside every container: each stage must hold exactly ``rows``."""
    began = time.monotonic()
    cmd = [sys.executable, "-m", "tlc.report", "--html", str(work / "report.html")]
    proc = subprocess.run(cmd, cwd=ROOT, env={**os.environ, **env}, capture_output=True, text=True, check=False)
    result.seconds["report from the host"] = time.monotonic() - began
    result.report = proc.stdout
    color, year, month = MONTH
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith(f"{color} {year}-{month:02d}")), "")
    counts = line.split()[2:7]
    result.counts = dict(zip(("source", "parquet", "gcs", "bigquery", "postgres"), counts, strict=False))
    if proc.returncode != 0 or counts != [f"{rows:,}"] * 5 or "1 month(s); 0 mismatch(es)" not in proc.stdout:
        raise ImageTestError(
            f"the report from the host does not show {rows:,} rows in every stage (exit {proc.returncode}):\n"
            f"{proc.stdout[-2000:]}{proc.stderr[-1000:]}"
        )


@contextlib.contextmanager
def local_stack(work: Path) -> Iterator[dict[str, str]]:
    """The loopback source and PostgreSQL of the local stack (the rest runs in containers)."""
    stack = Stack(work / "stack")
    try:
        yield stack.up(("http", "postgres"))
    finally:
        stack.down()


def run_all(work: Path, rows: int = ROWS, podman: Podman | None = None) -> Result:
    """Every step, in order; raises ImageTestError (or PodmanError/BuildFailed) naming the first that failed."""
    podman = podman or Podman()
    result = Result()
    began = time.monotonic()
    build_images(podman, work, result)
    check_help(podman, result.images["tlc-luigi"], result)
    containers = Containers(podman, f"tlc-image-test-{os.getpid()}")
    net = HostNetwork(tuple(compose_services()))
    try:
        with local_stack(work) as stack_env:
            color, year, month = MONTH
            source = Path(Stack(work / "stack").dir.load_state()["http"]["root"])
            write_month(source, color, year, month, rows=rows, seed=16)
            start_services(podman, containers, net, work, result)
            env = run_month(podman, net, work, stack_env, result)
            reconcile(env, work, rows, result)
    finally:
        containers.remove()
    result.seconds["total"] = time.monotonic() - began
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.image_test", description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path, help="where volumes, logs and the stack go (default: a temp dir)")
    parser.add_argument("--rows", type=int, default=ROWS, help=f"rows of the generated month (default {ROWS})")
    parser.add_argument("--keep", action="store_true", help="keep the work directory afterwards")
    args = parser.parse_args(argv)
    if args.rows < 1:
        parser.error(f"--rows must be a positive number of rows, got {args.rows}")
    reason = unusable_reason() or Podman().works()
    if reason:
        print(f"image-test: podman cannot run here: {reason}", file=sys.stderr)
        return 2
    work = args.workdir or Path(tempfile.mkdtemp(prefix="tlc-image-test-"))
    work.mkdir(parents=True, exist_ok=True)
    work.chmod(0o755)  # the stack's PostgreSQL runs as its own user and must reach its directory
    try:
        result = run_all(work, args.rows)
    except (ImageTestError, PodmanError) as exc:
        print(f"image-test: {exc}", file=sys.stderr)
        print(f"image-test: logs in {work / 'logs'}", file=sys.stderr)
        return 1
    else:
        print(result.report)
        for step, seconds in result.seconds.items():
            print(f"{step:<55} {seconds:7.1f} s")
        if not args.keep and args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
