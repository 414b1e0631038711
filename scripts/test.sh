#!/usr/bin/env bash
# Builds (setting up first if needed) and runs every test through ctest. Extra arguments go to
# ctest, e.g. scripts/test.sh -R Config
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cd "${CHART_BUILD_DIR:-build}"
ctest --output-on-failure -j "$(nproc)" "$@"
