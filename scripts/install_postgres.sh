#!/usr/bin/env bash
# Install the PostgreSQL server binaries that the local stack (scripts/stack/postgres.py) runs
# from /usr/lib/postgresql/<major>/bin: the distribution's default major, whatever it is
# (15 on Debian 12, 17 on Debian 13, 14 on Ubuntu 22.04, 16 on Ubuntu 24.04), through the
# `postgresql` metapackage. Idempotent: does nothing when a server major is installed already.
# Debian/Ubuntu (apt) only; needs root or sudo. The stack makes its own throwaway cluster,
# so the package is told not to create (and start) the distribution's default "<major>/main".
#
# Prints the major it found or installed as its last line: "postgresql <major>: ... <bin dir>".
set -euo pipefail

# TLC_PG_LIB overrides the root only so the tests can check the discovery on a made-up tree.
ROOT=${TLC_PG_LIB:-/usr/lib/postgresql}

# The newest <major> whose postgres, initdb and pg_ctl are all there (same rule as postgres.py).
installed_major() {
  local dir major best=""
  for dir in "$ROOT"/*/; do
    major=$(basename "$dir")
    [[ $major =~ ^[0-9]+$ ]] || continue
    [[ -x "$dir/bin/postgres" && -x "$dir/bin/initdb" && -x "$dir/bin/pg_ctl" ]] || continue
    if [[ -z $best || $major -gt $best ]]; then best=$major; fi
  done
  echo "$best"
}

major=$(installed_major)
if [[ -n $major ]]; then
  echo "postgresql $major: already installed in $ROOT/$major/bin"
  exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
  echo "install_postgres.sh: apt-get not found; install a PostgreSQL server so that $ROOT/<major>/bin/postgres exists" >&2
  exit 1
fi

SUDO=()
if [[ $(id -u) -ne 0 ]]; then
  if command -v sudo >/dev/null 2>&1; then
    SUDO=(sudo)
  else
    echo "install_postgres.sh: run as root (or install sudo): apt-get install -y postgresql" >&2
    exit 1
  fi
fi

# postgresql-common reads this drop-in directory (include_dir in createcluster.conf).
"${SUDO[@]}" mkdir -p /etc/postgresql-common/createcluster.d
echo "create_main_cluster = false" | "${SUDO[@]}" tee /etc/postgresql-common/createcluster.d/tlc-luigi.conf >/dev/null

export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update
# The metapackage depends on postgresql-<the distribution's default major>.
"${SUDO[@]}" apt-get install -y --no-install-recommends postgresql

major=$(installed_major)
if [[ -z $major ]]; then
  echo "install_postgres.sh: postgresql installed but no $ROOT/<major>/bin/postgres was found" >&2
  exit 1
fi
echo "postgresql $major: installed in $ROOT/$major/bin"
