#!/usr/bin/env bash
# Install Debian's headless-capable Chromium at /usr/bin/chromium for the browser tests
# (tests/test_luigid.py screenshots luigid's task graph, tests/test_luigid_history.py its
# /history page). Browser builds cannot be downloaded from anywhere else here, so Debian's
# package is the only source. Idempotent and quiet when chromium is already there.
set -euo pipefail
exec bash "$(dirname "$0")/install_apt_tool.sh" /usr/bin/chromium chromium fonts-liberation
