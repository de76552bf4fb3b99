# tlc-luigi pipeline image. The entrypoint is the luigi CLI with our task module loaded, so
# arguments are a task and its flags:
#   docker run --rm -v tlc-data:/data tlc-luigi:dev IngestRange --start 2021-01 --colors yellow --local-scheduler
# The same image runs the central scheduler with `--entrypoint luigid` (see docker-compose.yml).
#
# Base image: pinned by tag to a Python patch release on Debian 12 slim (the same Python
# minor and Debian release as the development machines). It is NOT pinned by digest: this
# file was written on a machine that cannot reach Docker Hub, so no digest could be resolved.
# Where a registry is reachable, run `docker buildx imagetools inspect python:3.11.13-slim-bookworm`
# and append `@sha256:...` to the default below.
# BASE_IMAGE is a build argument only so that the image test (scripts/image_test.py) can build
# this very file on machines without a registry, from a Debian 12 base made with debootstrap
# (Python 3.11 at /usr/bin/python3 there, /usr/local/bin/python3 here): hence `python3 -m venv`.
# Everything after FROM is the same for both bases.
ARG BASE_IMAGE=python:3.11.13-slim-bookworm

# --- deps: a virtualenv with the pinned requirements, and nothing of the project -------------
FROM ${BASE_IMAGE} AS deps

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_INPUT=1

RUN python3 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /src
# Requirements first, so editing the code does not invalidate the dependency layer.
COPY requirements.txt ./
# Wheels only: the slim base has no compiler, and every pin has a cp311 manylinux wheel.
RUN pip install --only-binary=:all: -r requirements.txt

# --- project: the code and config that /app holds at run time -------------------------------
FROM deps AS project
# The ONE list of the project's files in the image (the runtime stage copies /src whole). A
# new top-level package gets its `COPY pkg/ pkg/` line here and its name in pyproject.toml's
# [tool.setuptools] packages; scripts/check_containers.py checks that the two agree.
COPY pyproject.toml luigi.cfg ./
COPY config/ config/
COPY scripts/ scripts/
COPY tasks/ tasks/
COPY tlc/ tlc/
# Building the package proves pyproject.toml still builds; the in-tree build leftovers are
# dropped so they do not land in /app. This venv is not the one the runtime copies.
RUN pip install --no-deps . && rm -rf build ./*.egg-info

# --- runtime: the venv, the code and the config, run as an unprivileged user ----------------
FROM ${BASE_IMAGE}

# A fixed numeric uid/gid: volume ownership stays predictable across rebuilds and hosts, and
# USER can be numeric (orchestrators verify "non-root" only from a number).
RUN groupadd --system --gid 10001 tlc \
    && useradd --system --uid 10001 --gid tlc --home-dir /app --no-create-home \
        --shell /usr/sbin/nologin tlc \
    && mkdir -p /data /var/lib/luigid \
    && chown tlc:tlc /data /var/lib/luigid

# The pins only: this layer is rebuilt when requirements.txt changes, not with every code change.
COPY --from=deps /opt/venv /opt/venv

# PYTHONPATH=/app: the code under /app is what runs (a bind mount over /app/tasks takes
# effect without a rebuild); the venv holds the dependencies only.
# LUIGI_CONFIG_PATH: luigi otherwise reads luigi.cfg from the current directory only.
# TLC_DATA_DIR: raw/ and lake/ go to the volume, not into the container's layer.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/app \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    LUIGI_CONFIG_PATH=/app/luigi.cfg \
    TLC_DATA_DIR=/data

WORKDIR /app
COPY --from=project /src/ ./
# Bytecode now: at run time /app is read-only to the user, so it could never be cached later.
RUN python -m compileall -q .

VOLUME ["/data"]
# luigid's web UI and RPC port, used when the image runs the scheduler.
EXPOSE 8082

USER 10001:10001

# A batch job: no HEALTHCHECK here. luigid's health is checked in docker-compose.yml.
ENTRYPOINT ["luigi", "--module", "tasks"]
CMD ["IngestRange", "--help"]
