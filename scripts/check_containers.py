"""Offline checks of the container files: Dockerfile, docker/emulators.Dockerfile,
docker-compose.yml, .dockerignore and .env.example.

Why this exists: the development machines and CI have no Docker engine. scripts/image_test.py
builds both images with podman and runs them as compose describes, but on the host network, and
compose itself never runs here. What *can* be known without an engine is checked instead, in a
second and everywhere, so that renaming a file an image copies, a dangling ``depends_on``, a
typo in an environment name the tasks read, or a password pasted into the compose file fails
``make test`` rather than somebody's ``docker compose up`` weeks later.

Checks (each finding names the file and what to fix):

* Dockerfiles: every ``FROM`` is a tagged image (never ``:latest``) or an earlier stage, also
  through a ``BASE_IMAGE``-style ARG, whose default must then be the pinned image;
  every package pyproject.toml installs is copied into the pipeline image;
  the final stage switches to a non-root ``USER`` before ``ENTRYPOINT``/``CMD``; every
  ``COPY``/``ADD`` source exists in the repository and is not excluded by ``.dockerignore``;
  every requirements file a ``RUN`` installs was copied in first, exists, and pins with
  ``==``; no ``ENV``/``ARG`` carries a secret; the environment names set are ones the code reads.
* docker-compose.yml: every ``depends_on`` names a service (with a healthcheck when the
  condition is ``service_healthy``); every build context and dockerfile exists; images are
  tagged; the services that must have healthchecks do; secrets and named volumes are
  declared; bigquery's BQEMU_GCS_LOCAL_ROOT mounts the volume fake-gcs-server serves from;
  no literal secret in ``environment``; every ``${VAR}`` has a default or is listed
  in ``.env.example``; hosts in URLs, ``PGHOST`` and ``--scheduler-host`` are services;
  environment names match what the project's packages (and libpq / google-auth / luigi) read; published
  ports bind to 127.0.0.1.
* .dockerignore excludes local state and ``.env``; ``.env`` is ignored by git (warning).
* Optional, when installed: ``docker compose config`` (the compose plugin parses offline) and
  ``hadolint``. Their absence is reported as a note, never as a failure.

The compose file is read with PyYAML (a test-only requirement, in requirements-dev.txt).

Usage: ``python -m scripts.check_containers [--repo DIR] [--no-tools] [--json]``; exit 1 on errors.
"""

from __future__ import annotations

import argparse
import ast
import configparser
import fnmatch
import itertools
import json
import posixpath
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
COMPOSE_FILE = "docker-compose.yml"
PIPELINE_DOCKERFILE = "Dockerfile"
DOCKERFILES = (PIPELINE_DOCKERFILE, "docker/emulators.Dockerfile")
ENV_EXAMPLE = ".env.example"
DOCKERIGNORE = ".dockerignore"

# Policy of this project, not of Docker: the long-running services must say when they are ready.
REQUIRED_HEALTHCHECKS = ("postgres", "gcs", "bigquery", "luigid")
# What the build context must never carry (local state, caches, secrets).
REQUIRED_IGNORES = (".git", ".venv*", ".stack", "data", "bench-out", "test-artifacts", "**/__pycache__", ".env*")
# luigi.cfg sections the container environment maps onto; a rename there must be seen here.
REQUIRED_CFG_SECTIONS = ("tlc.source", "tlc.gcs", "tlc.bigquery", "tlc.postgres")
# Environment names read by libraries rather than by the project's packages (so not found by scanning them).
LIBRARY_ENV = frozenset(
    {
        "PGPASSWORD",  # libpq
        "PGPASSFILE",  # libpq
        "PGSSLMODE",  # libpq
        "GOOGLE_APPLICATION_CREDENTIALS",  # google-auth ADC
        "GOOGLE_CLOUD_PROJECT",  # google-auth ADC
        "LUIGI_CONFIG_PATH",  # luigi
    }
)
# Only names with these prefixes are checked against what the code reads; PATH, PYTHON* etc. are not ours.
CHECKED_ENV_PREFIXES = ("TLC_", "PG", "STORAGE_", "GOOGLE_", "LUIGI_", "BQEMU_")
SECRET_NAME = re.compile(r"PASSWORD|PASSWD|SECRET|TOKEN|API_?KEY|PRIVATE_KEY|CREDENTIAL", re.IGNORECASE)
INTERPOLATION = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])([^}]*))?\}")


@dataclass(frozen=True)
class Finding:
    """One problem: ``severity`` is "error" (fails the check) or "warning" (reported only)."""

    severity: str
    file: str
    message: str

    def __str__(self) -> str:
        return f"{self.severity}: {self.file}: {self.message}"


@dataclass
class Report:
    """All findings, plus notes on which optional tools ran (so a reader knows what was not checked)."""

    findings: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def error(self, file: str, message: str) -> None:
        self.findings.append(Finding("error", file, message))

    def warning(self, file: str, message: str) -> None:
        self.findings.append(Finding("warning", file, message))

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]


# ---------------------------------------------------------------------------------------------
# Reading the compose file.
# ---------------------------------------------------------------------------------------------


def load_yaml(text: str) -> tuple[Any, str]:
    """The document and which parser read it."""
    try:
        return yaml.safe_load(text), f"PyYAML {yaml.__version__}"
    except yaml.YAMLError as exc:  # not a ValueError: normalise so callers catch one type
        raise ValueError(str(exc)) from None


# ---------------------------------------------------------------------------------------------
# Things the code reads
# ---------------------------------------------------------------------------------------------


def env_names_read(repo: Path, package: str) -> set[str]:
    """Environment names appearing as string constants in ``package`` (env_or("TLC_..."), os.environ.get(...))."""
    names: set[str] = set()
    for path in sorted((repo / package).rglob("*.py")):
        try:
            tree = ast.parse(path.read_text(), filename=str(path))
        except (OSError, SyntaxError):
            continue
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and re.fullmatch(r"[A-Z][A-Z0-9_]{2,}", node.value)
                and node.value.startswith(CHECKED_ENV_PREFIXES)
            ):
                names.add(node.value)
    return names


def project_packages(repo: Path) -> list[str]:
    """The top-level packages pyproject.toml installs ([tool.setuptools] packages): the code the image must hold."""
    try:
        doc = tomllib.loads((repo / "pyproject.toml").read_text())
    except (OSError, tomllib.TOMLDecodeError):
        return ["tasks"]
    packages = doc.get("tool", {}).get("setuptools", {}).get("packages", ["tasks"])
    return sorted({p.split(".")[0] for p in packages})


def known_env(repo: Path) -> dict[str, set[str]]:
    """Per image kind, the environment names something in that image reads."""
    pipeline = set().union(*(env_names_read(repo, p) for p in project_packages(repo))) | LIBRARY_ENV
    emulators = {n for n in env_names_read(repo, "scripts/stack") if n.startswith("BQEMU_")}
    return {"pipeline": pipeline, "emulators": emulators}


def check_luigi_cfg(repo: Path, report: Report) -> None:
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read_string((repo / "luigi.cfg").read_text())
    except (OSError, configparser.Error) as exc:
        report.error("luigi.cfg", f"cannot be read: {exc}")
        return
    for section in REQUIRED_CFG_SECTIONS:
        if not parser.has_section(section):
            report.error("luigi.cfg", f"section [{section}] is missing; the container environment maps onto it")


# ---------------------------------------------------------------------------------------------
# .dockerignore
# ---------------------------------------------------------------------------------------------


def read_dockerignore(repo: Path) -> list[str]:
    try:
        text = (repo / DOCKERIGNORE).read_text()
    except OSError:
        return []
    return [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.strip().startswith("#")]


def is_ignored(rel_path: str, patterns: list[str]) -> bool:
    """Approximately Docker's rule: the last matching pattern wins; a pattern also covers what is below it."""
    rel = posixpath.normpath(rel_path).lstrip("/")
    parts = rel.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    ignored = False
    for raw in patterns:
        negate = raw.startswith("!")
        pattern = posixpath.normpath(raw.lstrip("!").lstrip("/"))
        candidates = [pattern, pattern.removeprefix("**/")]
        if any(fnmatch.fnmatchcase(p, c) for p in prefixes for c in candidates) or (
            pattern.startswith("**/") and any(fnmatch.fnmatchcase(part, pattern[3:]) for part in parts)
        ):
            ignored = not negate
    return ignored


def check_dockerignore(repo: Path, report: Report) -> list[str]:
    patterns = read_dockerignore(repo)
    if not patterns:
        report.error(DOCKERIGNORE, "missing or empty: the whole work tree (venvs, data, .env) would be sent")
        return patterns
    for required in REQUIRED_IGNORES:
        if required not in patterns:
            report.error(DOCKERIGNORE, f"does not exclude {required!r}")
    return patterns


# ---------------------------------------------------------------------------------------------
# Dockerfiles
# ---------------------------------------------------------------------------------------------


@dataclass
class Instruction:
    line: int
    keyword: str
    args: str


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction]


def parse_dockerfile(text: str) -> list[Instruction]:
    """Instructions with continuation lines joined; comments (also inside continuations) dropped."""
    instructions: list[Instruction] = []
    buffer: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if stripped.startswith("#") or (not stripped and not buffer):
            continue
        if not buffer:
            start = number
        if stripped.endswith("\\"):
            buffer.append(stripped[:-1])
            continue
        buffer.append(stripped)
        joined = " ".join(part.strip() for part in buffer if part.strip())
        buffer = []
        keyword, _, args = joined.partition(" ")
        instructions.append(Instruction(start, keyword.upper(), args.strip()))
    return instructions


def split_stages(instructions: list[Instruction]) -> list[Stage]:
    stages: list[Stage] = []
    for ins in instructions:
        if ins.keyword == "FROM":
            words = [w for w in ins.args.split() if not w.startswith("--")]
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
            stages.append(Stage(words[0] if words else "", name, []))
        elif stages:
            stages[-1].instructions.append(ins)
    return stages


def _exec_or_shell(args: str) -> list[str]:
    """Arguments of COPY/ADD/ENTRYPOINT in JSON (exec) form or shell form."""
    if args.startswith("["):
        try:
            value = json.loads(args)
        except ValueError:
            return shlex.split(args)
        return [str(v) for v in value]
    return shlex.split(args)


def _flags(words: list[str]) -> tuple[dict[str, str], list[str]]:
    flags: dict[str, str] = {}
    rest: list[str] = []
    for word in words:
        if word.startswith("--") and not rest:
            key, _, value = word[2:].partition("=")
            flags[key] = value
        else:
            rest.append(word)
    return flags, rest


def image_pin_problem(image: str) -> str | None:
    """Why ``image`` is not pinned, or None. A digest pins; otherwise a tag other than latest."""
    if "@sha256:" in image:
        return None
    if "$" in image:
        return f"{image!r} is built from a variable; pin the literal image"
    last = image.rsplit("/", 1)[-1]
    if ":" not in last:
        return f"{image!r} has no tag (means :latest)"
    if last.rsplit(":", 1)[1] == "latest":
        return f"{image!r} uses :latest"
    return None


def global_args(instructions: list[Instruction]) -> dict[str, str | None]:
    """ARGs declared before the first FROM (the only ones a FROM line can use), with their defaults."""
    found: dict[str, str | None] = {}
    for ins in instructions:
        if ins.keyword == "FROM":
            break
        if ins.keyword == "ARG":
            for word in shlex.split(ins.args):
                name, sep, default = word.partition("=")
                found[name] = default if sep else None
    return found


def _expand(image: str, args: dict[str, str | None]) -> tuple[str, str | None]:
    """``image`` with ``${NAME}``/``$NAME`` replaced by the ARG's default; a problem when one has none."""
    missing: list[str] = []

    def sub(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if args.get(name) is None:
            missing.append(name)
            return match.group(0)
        return str(args[name])

    expanded = re.sub(r"\$\{(\w+)\}|\$(\w+)", sub, image)
    if missing:
        return (
            expanded,
            f"{image!r} uses ARG {missing[0]} with no default before the first FROM; give it the pinned image",
        )
    return expanded, None


def _check_from(rel: str, stages: list[Stage], instructions: list[Instruction], report: Report) -> None:
    """Every base is pinned; a base from an ARG is pinned by that ARG's default (what a plain build uses)."""
    names: set[str] = set()
    args = global_args(instructions)
    froms = [i for i in instructions if i.keyword == "FROM"]
    for stage, ins in zip(stages, froms, strict=True):
        if stage.base not in names:
            image, problem = _expand(stage.base, args)
            problem = problem or image_pin_problem(image)
            if problem:
                report.error(rel, f"line {ins.line}: FROM {problem}")
        if stage.name:
            names.add(stage.name)


def _is_root(user: str) -> bool:
    who = user.split(":", 1)[0].strip()
    return who in ("root", "0", "")


def _check_user(rel: str, final: Stage, report: Report) -> None:
    """The last stage must switch to a non-root user, and do so before ENTRYPOINT/CMD."""
    users = [i for i in final.instructions if i.keyword == "USER"]
    if not users or _is_root(users[-1].args):
        report.error(rel, "the final stage does not switch to a non-root USER")
        return
    starts = [i for i in final.instructions if i.keyword in ("ENTRYPOINT", "CMD")]
    if not starts:
        report.error(rel, "the final stage has neither ENTRYPOINT nor CMD")
        return
    if users[-1].line > starts[0].line:
        report.error(rel, f"line {users[-1].line}: USER comes after {starts[0].keyword} (line {starts[0].line})")


@dataclass
class _Copied:
    dest: str  # absolute path in the image
    source: str  # path relative to the build context
    is_dir: bool


def _resolve(workdir: str, path: str) -> str:
    return posixpath.normpath(path if path.startswith("/") else posixpath.join(workdir, path))


def _check_copy(
    rel: str, ins: Instruction, workdir: str, context: Path, ignores: list[str], report: Report
) -> list[_Copied]:
    flags, words = _flags(_exec_or_shell(ins.args))
    if "from" in flags:
        return []
    if len(words) < 2:
        report.error(rel, f"line {ins.line}: {ins.keyword} needs a source and a destination")
        return []
    *sources, dest = words
    copied: list[_Copied] = []
    for source in sources:
        if ins.keyword == "ADD" and re.match(r"[a-z]+://", source):
            report.error(rel, f"line {ins.line}: ADD of a URL; download in a RUN step with a checksum instead")
            continue
        matches = sorted(context.glob(source.rstrip("/"))) if any(c in source for c in "*?[") else []
        path = context / source
        if not (matches or path.exists()):
            report.error(rel, f"line {ins.line}: {ins.keyword} source {source!r} does not exist in the build context")
            continue
        if is_ignored(source, ignores):
            report.error(rel, f"line {ins.line}: {ins.keyword} source {source!r} is excluded by {DOCKERIGNORE}")
        target = _resolve(workdir, dest)
        into_dir = dest.endswith("/") or len(sources) > 1 or path.is_dir()
        if not path.is_dir() and into_dir:
            target = posixpath.join(target, posixpath.basename(source))
        copied.append(_Copied(target, source.rstrip("/"), path.is_dir()))
    return copied


def _source_of(image_path: str, copied: list[_Copied]) -> str | None:
    for item in reversed(copied):
        if item.dest == image_path:
            return item.source
        if item.is_dir and image_path.startswith(item.dest + "/"):
            return posixpath.join(item.source, image_path[len(item.dest) + 1 :])
    return None


def check_requirements_file(repo: Path, rel_source: str, report: Report, where: str) -> None:
    """A requirements file must exist and pin every requirement exactly (reproducible images)."""
    path = repo / rel_source
    if not path.is_file():
        report.error(where, f"requirements file {rel_source!r} does not exist")
        return
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith(("-r ", "--requirement ", "-c ", "--constraint ")):
            nested = posixpath.join(posixpath.dirname(rel_source), line.split(maxsplit=1)[1])
            check_requirements_file(repo, posixpath.normpath(nested), report, where)
        elif line.startswith("-"):
            continue
        elif "==" not in line:
            report.error(rel_source, f"line {number}: {line!r} is not pinned with '=='")


def _check_run(rel: str, ins: Instruction, workdir: str, copied: list[_Copied], repo: Path, report: Report) -> None:
    """Requirements files given to ``pip install`` must have been copied in (and exist, pinned)."""
    for segment in re.split(r"&&|;|\|\|", ins.args):
        if not re.search(r"\bpip3?\s+install\b", segment):
            continue  # `python -c ...` elsewhere is not a constraints file
        for match in re.finditer(r"(?:^|\s)(?:-r|--requirement|-c|--constraint)[ =](\S+)", segment):
            image_path = _resolve(workdir, match.group(1))
            source = _source_of(image_path, copied)
            if source is None:
                report.error(rel, f"line {ins.line}: {match.group(1)!r} is installed but no earlier COPY puts it there")
            else:
                check_requirements_file(repo, source, report, rel)


def _check_env(rel: str, ins: Instruction, allowed: set[str], report: Report) -> None:
    """ENV/ARG: no secrets baked into a layer; checked names must be ones the image's code reads."""
    words = shlex.split(ins.args)
    pairs = [w.split("=", 1)[0] for w in words if "=" in w] if "=" in ins.args else words[:1]
    for name in pairs:
        if SECRET_NAME.search(name):
            report.error(rel, f"line {ins.line}: {ins.keyword} {name} would bake a secret into the image")
        if ins.keyword == "ENV" and name.startswith(CHECKED_ENV_PREFIXES) and name not in allowed:
            report.error(rel, f"line {ins.line}: ENV {name} is read by nothing in this image")


def _check_packages_copied(repo: Path, rel: str, copies: list[_Copied], report: Report) -> None:
    """Every package pyproject.toml names is copied into the pipeline image (a new top-level
    package, such as ``tlc/``, must get its COPY line too, or the image would not import it)."""
    sources = {c.source.strip("/") for c in copies if c.is_dir}
    for package in project_packages(repo):
        if package not in sources:
            report.error(
                rel,
                f"package {package!r} (pyproject.toml [tool.setuptools] packages) is never copied into the image;"
                f" add `COPY {package}/ {package}/` beside the other package COPY lines",
            )


def check_dockerfile(
    repo: Path, rel: str, context: Path, ignores: list[str], allowed_env: set[str], report: Report
) -> None:
    path = repo / rel
    try:
        instructions = parse_dockerfile(path.read_text())
    except OSError as exc:
        report.error(rel, f"cannot be read: {exc}")
        return
    stages = split_stages(instructions)
    if not stages:
        report.error(rel, "has no FROM")
        return
    _check_from(rel, stages, instructions, report)
    _check_user(rel, stages[-1], report)
    for ins in instructions:
        if ins.keyword == "FROM":
            break
        if ins.keyword == "ARG":
            _check_env(rel, ins, allowed_env, report)
    every_copy: list[_Copied] = []
    for stage in stages:
        workdir, copied = "/", []
        for ins in stage.instructions:
            if ins.keyword == "WORKDIR":
                workdir = _resolve(workdir, ins.args)
            elif ins.keyword in ("COPY", "ADD"):
                copied += _check_copy(rel, ins, workdir, context, ignores, report)
            elif ins.keyword == "RUN":
                _check_run(rel, ins, workdir, copied, repo, report)
            elif ins.keyword in ("ENV", "ARG"):
                _check_env(rel, ins, allowed_env, report)
        every_copy += copied
    if rel == PIPELINE_DOCKERFILE:
        _check_packages_copied(repo, rel, every_copy, report)


# ---------------------------------------------------------------------------------------------
# docker-compose.yml
# ---------------------------------------------------------------------------------------------


def read_env_example(repo: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    try:
        text = (repo / ENV_EXAMPLE).read_text()
    except OSError:
        return values
    for raw in text.splitlines():
        line = raw.strip()
        if line and not line.startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, dict)) else [value]


def _environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        return {str(e).split("=", 1)[0]: (str(e).split("=", 1)[1] if "=" in str(e) else "") for e in env}
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


def _image_kind(service: dict[str, Any]) -> str | None:
    """Which of our images a service runs ("pipeline"/"emulators"), from its build section."""
    build = service.get("build")
    if not isinstance(build, dict):
        return None
    dockerfile = posixpath.normpath(
        posixpath.join(str(build.get("context", ".")), build.get("dockerfile", "Dockerfile"))
    )
    return {"Dockerfile": "pipeline", "docker/emulators.Dockerfile": "emulators"}.get(dockerfile)


def _check_build(repo: Path, name: str, service: dict[str, Any], report: Report) -> None:
    build = service.get("build")
    if build is None:
        problem = image_pin_problem(str(service.get("image", "")))
        if problem:
            report.error(COMPOSE_FILE, f"services.{name}.image: {problem}")
        return
    if not isinstance(build, dict):
        build = {"context": build}
    context = repo / str(build.get("context", "."))
    if not context.is_dir():
        report.error(COMPOSE_FILE, f"services.{name}.build.context {build.get('context')!r} is not a directory")
        return
    dockerfile = context / str(build.get("dockerfile", "Dockerfile"))
    if not dockerfile.is_file():
        report.error(COMPOSE_FILE, f"services.{name}.build.dockerfile {build.get('dockerfile')!r} does not exist")
    image = service.get("image")
    if image and str(image).endswith(":latest"):
        report.error(COMPOSE_FILE, f"services.{name}.image tags the local build :latest; use a named tag")


def _check_depends(name: str, service: dict[str, Any], services: dict[str, Any], report: Report) -> None:
    depends = service.get("depends_on") or {}
    entries = depends.items() if isinstance(depends, dict) else ((d, None) for d in depends)
    for dep, spec in entries:
        if dep not in services:
            report.error(COMPOSE_FILE, f"services.{name}.depends_on names unknown service {dep!r}")
            continue
        condition = spec.get("condition") if isinstance(spec, dict) else None
        if condition == "service_healthy" and not services[dep].get("healthcheck"):
            report.error(COMPOSE_FILE, f"services.{name} waits for {dep!r} to be healthy but it has no healthcheck")


def _is_literal(value: str) -> bool:
    """A value written into the file: not empty, not a path to a mounted secret, not a bare ${VAR}
    (``${VAR:?message}`` is fine, ``${VAR:-default}`` carries the default as a literal)."""
    if not value or value.startswith("/run/secrets/"):
        return False
    match = INTERPOLATION.fullmatch(value)
    if match is None:
        return True
    return bool(match.group(2) and match.group(2).lstrip(":") == "-" and match.group(3))


def _strings(node: Any) -> list[str]:
    """Every string value (and key) in a parsed document, for finding ${VAR} references."""
    if isinstance(node, dict):
        return [s for k, v in node.items() for s in (*_strings(k), *_strings(v))]
    if isinstance(node, list):
        return [s for item in node for s in _strings(item)]
    return [node] if isinstance(node, str) else []


def _check_environment(
    name: str, service: dict[str, Any], services: dict[str, Any], allowed: dict[str, set[str]], report: Report
) -> None:
    env = _environment(service)
    kind = _image_kind(service)
    for key, value in env.items():
        if SECRET_NAME.search(key) and not key.endswith("_FILE") and _is_literal(value):
            report.error(
                COMPOSE_FILE, f"services.{name}.environment.{key} holds a literal secret; use a secret or ${{VAR}}"
            )
        if key.endswith("_FILE") and SECRET_NAME.search(key) and not value.startswith("/run/secrets/"):
            report.error(COMPOSE_FILE, f"services.{name}.environment.{key} should point into /run/secrets/")
        if kind and key.startswith(CHECKED_ENV_PREFIXES) and key not in allowed[kind]:
            report.error(COMPOSE_FILE, f"services.{name}.environment.{key} is read by nothing in the {kind} image")
        host = re.match(r"https?://([^:/]+)", value)
        target = host.group(1) if host else (value if key == "PGHOST" else None)
        if target and "." not in target and target not in services and target != "localhost":
            report.error(COMPOSE_FILE, f"services.{name}.environment.{key} points at {target!r}, which is no service")
    command = [str(c) for c in _as_list(service.get("command"))]
    for flag, value in itertools.pairwise(command):
        if flag == "--scheduler-host" and value not in services:
            report.error(COMPOSE_FILE, f"services.{name}.command: --scheduler-host {value!r} is no service")


def _check_refs(name: str, service: dict[str, Any], doc: dict[str, Any], report: Report) -> None:
    declared_secrets = doc.get("secrets") or {}
    for secret in _as_list(service.get("secrets")):
        secret_name = secret.get("source") if isinstance(secret, dict) else secret
        if secret_name not in declared_secrets:
            report.error(COMPOSE_FILE, f"services.{name}.secrets names undeclared secret {secret_name!r}")
    declared_volumes = doc.get("volumes") or {}
    for volume in _as_list(service.get("volumes")):
        source = str(volume.get("source", "")) if isinstance(volume, dict) else str(volume).split(":", 1)[0]
        if source and not source.startswith((".", "/", "~", "$")) and source not in declared_volumes:
            report.error(COMPOSE_FILE, f"services.{name}.volumes uses undeclared named volume {source!r}")
    for port in _as_list(service.get("ports")):
        text = str(port.get("host_ip", "")) if isinstance(port, dict) else str(port)
        if not text.startswith("127.0.0.1"):
            report.error(COMPOSE_FILE, f"services.{name}.ports {port!r} publishes on every interface; bind 127.0.0.1")


def _mounts(service: dict[str, Any]) -> dict[str, str]:
    """Container path -> volume name or host path, for the short and long volume syntax."""
    mounts: dict[str, str] = {}
    for volume in _as_list(service.get("volumes")):
        if isinstance(volume, dict):
            mounts[str(volume.get("target", ""))] = str(volume.get("source", ""))
        else:
            parts = str(volume).split(":")
            if len(parts) >= 2:
                mounts[parts[1]] = parts[0]
    return mounts


def _check_shared_gcs_root(services: dict[str, Any], report: Report) -> None:
    """bqemulator resolves gs:// URIs in BQEMU_GCS_LOCAL_ROOT: that must be the very volume
    fake-gcs-server serves from, or every load job fails with 'file not found'."""
    roots: dict[str, str] = {}
    for name, service in services.items():
        command = [str(c) for c in _as_list(service.get("command"))]
        for flag, value in itertools.pairwise(command):
            if flag == "-filesystem-root":
                roots[name] = value
    for name, service in services.items():
        local_root = _environment(service).get("BQEMU_GCS_LOCAL_ROOT")
        if not local_root:
            continue
        if not roots:
            report.error(
                COMPOSE_FILE, f"services.{name} sets BQEMU_GCS_LOCAL_ROOT but no service runs -filesystem-root"
            )
        for gcs_name, root in roots.items():
            served = _mounts(services[gcs_name]).get(root)
            if served is None or _mounts(service).get(local_root) != served:
                report.error(
                    COMPOSE_FILE,
                    f"services.{name}: BQEMU_GCS_LOCAL_ROOT {local_root} is not a mount of the volume "
                    f"{gcs_name} serves objects from ({root})",
                )


def _check_secrets_and_variables(repo: Path, doc: dict[str, Any], report: Report) -> None:
    example = read_env_example(repo)
    if not (repo / ENV_EXAMPLE).is_file():
        report.error(ENV_EXAMPLE, "missing: users need the list of variables .env must set")
    for name, declared in (doc.get("secrets") or {}).items():
        spec = declared or {}
        if "environment" in spec and spec["environment"] not in example:
            report.error(COMPOSE_FILE, f"secrets.{name} reads ${spec['environment']}, not listed in {ENV_EXAMPLE}")
        if "file" in spec and _git_tracked(repo, str(spec["file"])):
            report.error(COMPOSE_FILE, f"secrets.{name}.file {spec['file']!r} is tracked by git")
    for match in (m for value in _strings(doc) for m in INTERPOLATION.finditer(value)):
        var, op = match.group(1), match.group(2)
        has_default = bool(op and op.lstrip(":") == "-")
        if not has_default and var not in example:
            report.error(COMPOSE_FILE, f"${{{var}}} has no default and {ENV_EXAMPLE} does not list it")
        if has_default and SECRET_NAME.search(var) and match.group(3):
            report.error(COMPOSE_FILE, f"${{{var}}} has a literal default: a committed secret")


def _git_tracked(repo: Path, rel: str) -> bool:
    if shutil.which("git") is None or not (repo / ".git").exists():
        return False
    proc = subprocess.run(
        ["git", "-C", str(repo), "ls-files", "--error-unmatch", rel], capture_output=True, check=False
    )
    return proc.returncode == 0


def check_compose(repo: Path, allowed_env: dict[str, set[str]], report: Report) -> dict[str, Any] | None:
    try:
        text = (repo / COMPOSE_FILE).read_text()
        doc, parser = load_yaml(text)
    except (OSError, ValueError) as exc:
        report.error(COMPOSE_FILE, f"cannot be parsed: {exc}")
        return None
    report.notes.append(f"{COMPOSE_FILE} read with {parser}")
    services = doc.get("services") if isinstance(doc, dict) else None
    if not isinstance(services, dict) or not services:
        report.error(COMPOSE_FILE, "has no services")
        return None
    for name in REQUIRED_HEALTHCHECKS:
        if name not in services:
            report.error(COMPOSE_FILE, f"service {name!r} is missing")
        elif not services[name].get("healthcheck"):
            report.error(COMPOSE_FILE, f"services.{name} has no healthcheck")
    postgres_check = " ".join(map(str, _as_list((services.get("postgres") or {}).get("healthcheck", {}).get("test"))))
    if "postgres" in services and "pg_isready" not in postgres_check:
        report.error(COMPOSE_FILE, "services.postgres.healthcheck should use pg_isready")
    for name, service in services.items():
        _check_build(repo, name, service, report)
        _check_depends(name, service, services, report)
        _check_environment(name, service, services, allowed_env, report)
        _check_refs(name, service, doc, report)
    _check_shared_gcs_root(services, report)
    _check_secrets_and_variables(repo, doc, report)
    return doc


def check_gitignore(repo: Path, report: Report) -> None:
    """.env holds the real passwords: git must ignore it (a warning: .gitignore is not a container file)."""
    if shutil.which("git") is None or not (repo / ".git").exists():
        report.notes.append("not a git work tree: .env ignore status not checked")
        return
    proc = subprocess.run(["git", "-C", str(repo), "check-ignore", "-q", ".env"], capture_output=True, check=False)
    if proc.returncode != 0:
        report.warning(
            ".gitignore", "does not ignore .env; add a line '.env' so the compose passwords cannot be committed"
        )


# ---------------------------------------------------------------------------------------------
# Optional external tools
# ---------------------------------------------------------------------------------------------


def compose_command() -> list[str] | None:
    """``docker compose`` (plugin) or a standalone Compose v2 ``docker-compose``, if either runs."""
    candidates = []
    if shutil.which("docker"):
        candidates.append(["docker", "compose"])
    if shutil.which("docker-compose"):
        candidates.append(["docker-compose"])
    for cmd in candidates:
        try:
            proc = subprocess.run([*cmd, "version"], capture_output=True, text=True, timeout=20, check=False)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if proc.returncode == 0 and re.search(r"v?2\.\d+", proc.stdout):
            return cmd
    return None


def run_compose_config(repo: Path, report: Report) -> None:
    cmd = compose_command()
    if cmd is None:
        report.notes.append("docker compose: not available, `compose config` not run")
        return
    args = [*cmd, "--project-directory", str(repo), "-f", str(repo / COMPOSE_FILE)]
    if (repo / ENV_EXAMPLE).is_file():
        args += ["--env-file", str(repo / ENV_EXAMPLE)]
    args += ["--profile", "*", "config", "--quiet"]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)
    if proc.returncode != 0:
        report.error(COMPOSE_FILE, f"`{' '.join(cmd)} config` failed: {(proc.stderr or proc.stdout).strip()[:500]}")
    else:
        report.notes.append(f"`{' '.join(cmd)} config` (all profiles, {ENV_EXAMPLE}) passed")


def run_hadolint(repo: Path, report: Report) -> None:
    exe = shutil.which("hadolint")
    if exe is None:
        report.notes.append("hadolint: not installed, not run")
        return
    for rel in DOCKERFILES:
        proc = subprocess.run(
            [exe, "--no-fail", "--format", "json", str(repo / rel)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        try:
            results = json.loads(proc.stdout or "[]")
        except ValueError:
            report.error(rel, f"hadolint output unreadable: {proc.stderr.strip()[:300]}")
            continue
        for item in results:
            if item.get("level") in ("error", "warning"):
                report.error(rel, f"line {item.get('line')}: hadolint {item.get('code')}: {item.get('message')}")
    report.notes.append("hadolint ran on " + ", ".join(DOCKERFILES))


# ---------------------------------------------------------------------------------------------


def run_checks(repo: Path = REPO, *, tools: bool = True) -> Report:
    """Every check on the container files under ``repo``; ``tools`` adds docker compose / hadolint when present."""
    report = Report()
    allowed = known_env(repo)
    check_luigi_cfg(repo, report)
    ignores = check_dockerignore(repo, report)
    for rel, kind in zip(DOCKERFILES, ("pipeline", "emulators"), strict=True):
        check_dockerfile(repo, rel, repo, ignores, allowed[kind], report)
    check_compose(repo, allowed, report)
    check_gitignore(repo, report)
    if tools:
        run_compose_config(repo, report)
        run_hadolint(repo, report)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--repo", type=Path, default=REPO)
    parser.add_argument("--no-tools", action="store_true", help="skip docker compose config and hadolint")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    args = parser.parse_args(argv)
    report = run_checks(args.repo.resolve(), tools=not args.no_tools)
    if args.json:
        json.dump({"findings": [asdict(f) for f in report.findings], "notes": report.notes}, sys.stdout, indent=2)
        print()
    else:
        for note in report.notes:
            print(f"note: {note}")
        for finding in report.findings:
            print(finding)
        print(f"{len(report.errors)} error(s), {len(report.findings) - len(report.errors)} warning(s)")
    return 1 if report.errors else 0


if __name__ == "__main__":
    sys.exit(main())
