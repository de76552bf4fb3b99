#!/usr/bin/env bash
# Install Debian's headless-capable Chromium at /usr/bin/chromium for the visualiser test
# (tests/test_luigid.py screenshots luigid's task graph with it). Browser builds cannot be
# downloaded from anywhere else here, so Debian's package is the only source.
# Idempotent and quiet: prints nothing and touches nothing when chromium is already there;
# runs `apt-get update` only when the package lists do not know the package yet.
# Debian/Ubuntu (apt) only; needs root or sudo.
set -euo pipefail

CHROMIUM=/usr/bin/chromium

if [[ -x "$CHROMIUM" ]]; then
  exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
  echo "install_chromium.sh: apt-get not found; install Chromium so that $CHROMIUM exists" >&2
  exit 1
fi

SUDO=()
if [[ $(id -u) -ne 0 ]]; then
  if command -v sudo >/dev/null 2>&1; then
    SUDO=(sudo)
  else
    echo "install_chromium.sh: run as root (or install sudo): apt-get install -y chromium" >&2
    exit 1
  fi
fi

export DEBIAN_FRONTEND=noninteractive
# A fresh machine has empty package lists; `apt-cache policy` then shows no candidate.
if ! apt-cache policy chromium 2>/dev/null | grep -q 'Candidate: [0-9]'; then
  "${SUDO[@]}" apt-get update -qq
fi
# Recommends would pull in a desktop's worth of fonts and themes; headless needs none.
"${SUDO[@]}" apt-get install -y -qq --no-install-recommends chromium fonts-liberation >/dev/null

if [[ ! -x "$CHROMIUM" ]]; then
  echo "install_chromium.sh: chromium installed but $CHROMIUM is missing" >&2
  exit 1
fi
echo "chromium: installed at $CHROMIUM ($("$CHROMIUM" --version 2>/dev/null || echo 'version unknown'))"
