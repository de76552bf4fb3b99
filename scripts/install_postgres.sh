#!/usr/bin/env bash
# Install the PostgreSQL 15 server binaries that the local stack (scripts/stack/postgres.py)
# runs from /usr/lib/postgresql/15/bin. Idempotent: does nothing when they are present.
# Debian/Ubuntu (apt) only; needs root or sudo. The stack makes its own throwaway cluster,
# so the package is told not to create (and start) Debian's default "15/main" cluster.
set -euo pipefail

PG_MAJOR=15
BIN="/usr/lib/postgresql/${PG_MAJOR}/bin"

if [[ -x "$BIN/postgres" && -x "$BIN/initdb" && -x "$BIN/pg_ctl" ]]; then
  echo "postgresql-${PG_MAJOR}: already installed in $BIN"
  exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
  echo "install_postgres.sh: apt-get not found; install PostgreSQL ${PG_MAJOR} so that $BIN/postgres exists" >&2
  exit 1
fi

SUDO=()
if [[ $(id -u) -ne 0 ]]; then
  if command -v sudo >/dev/null 2>&1; then
    SUDO=(sudo)
  else
    echo "install_postgres.sh: run as root (or install sudo): apt-get install -y postgresql-${PG_MAJOR}" >&2
    exit 1
  fi
fi

# postgresql-common reads this drop-in directory (include_dir in createcluster.conf).
"${SUDO[@]}" mkdir -p /etc/postgresql-common/createcluster.d
echo "create_main_cluster = false" | "${SUDO[@]}" tee /etc/postgresql-common/createcluster.d/tlc-luigi.conf >/dev/null

export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update
"${SUDO[@]}" apt-get install -y --no-install-recommends "postgresql-${PG_MAJOR}"

if [[ ! -x "$BIN/postgres" ]]; then
  echo "install_postgres.sh: postgresql-${PG_MAJOR} installed but $BIN/postgres is missing" >&2
  exit 1
fi
echo "postgresql-${PG_MAJOR}: installed in $BIN"
