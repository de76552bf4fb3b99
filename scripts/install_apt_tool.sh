#!/usr/bin/env bash
# Install a Debian/Ubuntu package that a test needs, once: install_apt_tool.sh BINARY PACKAGE...
# (`make test` installs Chromium for the browser tests and systemd for `systemd-analyze
# verify` of deploy/systemd/). Idempotent and quiet: prints nothing and touches nothing when
# BINARY is already executable; runs `apt-get update` only when the package lists do not
# know the first package yet. Recommends are left out (a desktop's worth of fonts and themes
# for chromium). apt only; needs root or sudo.
set -euo pipefail

if [[ $# -lt 2 ]]; then
  echo "usage: install_apt_tool.sh BINARY PACKAGE..." >&2
  exit 2
fi
BINARY=$1
shift

if [[ -x "$BINARY" ]]; then
  exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
  echo "install_apt_tool.sh: apt-get not found; install $* so that $BINARY exists" >&2
  exit 1
fi

SUDO=()
if [[ $(id -u) -ne 0 ]]; then
  if command -v sudo >/dev/null 2>&1; then
    SUDO=(sudo)
  else
    echo "install_apt_tool.sh: run as root (or install sudo): apt-get install -y $*" >&2
    exit 1
  fi
fi

export DEBIAN_FRONTEND=noninteractive
# A fresh machine has empty package lists; `apt-cache policy` then shows no candidate.
if ! apt-cache policy "$1" 2>/dev/null | grep -q 'Candidate: [0-9]'; then
  "${SUDO[@]}" apt-get update -qq
fi
"${SUDO[@]}" apt-get install -y -qq --no-install-recommends "$@" >/dev/null

if [[ ! -x "$BINARY" ]]; then
  echo "install_apt_tool.sh: $* installed but $BINARY is missing" >&2
  exit 1
fi
echo "$1: installed, $BINARY"
