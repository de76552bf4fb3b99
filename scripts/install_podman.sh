#!/usr/bin/env bash
# Install what the image test (scripts/image_test.py) needs to build and run OCI images without a
# Docker daemon: Debian's podman, the runc runtime (crun refuses here: hybrid cgroups, setrlimit)
# and debootstrap (no image registry is reachable, so the base image is made from Debian's
# packages). Idempotent and quiet: prints nothing and touches nothing when all three are there;
# runs `apt-get update` only when the package lists do not know a package yet.
# Debian/Ubuntu (apt) only; needs root or sudo.
set -euo pipefail

PACKAGES=(podman runc debootstrap)
missing=()
for cmd in "${PACKAGES[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("$cmd")
done
if [[ ${#missing[@]} -eq 0 ]]; then
  exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
  echo "install_podman.sh: apt-get not found; install ${missing[*]} by other means" >&2
  exit 1
fi

SUDO=()
if [[ $(id -u) -ne 0 ]]; then
  if command -v sudo >/dev/null 2>&1; then
    SUDO=(sudo)
  else
    echo "install_podman.sh: run as root (or install sudo): apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
fi

export DEBIAN_FRONTEND=noninteractive
# A fresh machine has empty package lists; `apt-cache policy` then shows no candidate.
for pkg in "${missing[@]}"; do
  if ! apt-cache policy "$pkg" 2>/dev/null | grep -q 'Candidate: [0-9]'; then
    "${SUDO[@]}" apt-get update -qq
    break
  fi
done
# Recommends would add buildah, slirp4netns, fuse-overlayfs and more: the test runs as root on
# the host network with the kernel's overlay driver, and needs none of them.
"${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}" >/dev/null

for cmd in "${PACKAGES[@]}"; do
  if ! command -v "$cmd" >/dev/null 2>&1; then
    echo "install_podman.sh: ${PACKAGES[*]} installed but $cmd is not on PATH" >&2
    exit 1
  fi
done
echo "podman: installed ($(podman --version 2>/dev/null || echo 'version unknown'), runc, debootstrap)"
