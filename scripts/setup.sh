#!/usr/bin/env bash
# One idempotent command: installs what this machine lacks, configures and builds build/chart.
#   bash scripts/setup.sh                 # system packages (apt), .venv with torch + pyarrow, build
#   CHART_PYTHON=python3 scripts/setup.sh # use a Python that already has torch and pyarrow
#   CHART_SKIP_APT=1                      # never call apt-get (packages come from elsewhere)
#   CHART_BUILD_DIR=build-x               # another build directory; CMAKE_ARGS adds cmake options
# A second run with everything present only rebuilds what changed.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
build=${CHART_BUILD_DIR:-build}
say() { printf 'setup: %s\n' "$*" >&2; }

# 1. System packages (Debian names). Each is checked before anything is installed.
if [ -z "${CHART_SKIP_APT:-}" ]; then
  want=(cmake ninja-build g++ pkg-config libyaml-cpp-dev libfmt-dev nlohmann-json3-dev libssl-dev libgtest-dev libgmock-dev
        libgloo-dev libcpp-httplib-dev libjwt-dev ccache)
  missing=()
  for p in "${want[@]}"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p"); done
  if [ ${#missing[@]} -gt 0 ]; then
    say "installing ${missing[*]}"
    sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
fi

# 2. Python with torch and pyarrow: the project's .venv unless CHART_PYTHON names one.
if [ -n "${CHART_PYTHON:-}" ]; then
  py=$(command -v "$CHART_PYTHON")
else
  py=$root/.venv/bin/python
  stamp=$root/.venv/.chart-requirements
  if [ ! -x "$py" ]; then
    say "creating .venv"
    python3 -m venv "$root/.venv" || { say "python3 -m venv failed: apt-get install python3-venv"; exit 1; }
  fi
  if ! cmp -s scripts/requirements.txt "$stamp" 2>/dev/null; then
    say "installing scripts/requirements.txt into .venv (torch is large: a few minutes the first time)"
    "$py" -m pip install -q --disable-pip-version-check -r scripts/requirements.txt
    cp scripts/requirements.txt "$stamp"
  fi
fi

# 3. Configure (once; cmake re-runs itself when a CMakeLists changes) and build.
if [ ! -f "$build/build.ninja" ]; then
  say "configuring $build/ (python: $py)"
  mkdir -p "$build"
  cmake -S . -B "$build" -G Ninja -DCHART_PYTHON="$py" ${CMAKE_ARGS:-} >"$build/configure.log" 2>&1 || {
    cat "$build/configure.log" >&2; say "configure failed (log above)"; exit 1; }
  grep -E '^-- chart:' "$build/configure.log" >&2 || true
fi
say "building $build/chart"
cmake --build "$build" -j "$(nproc)"
# `source .venv/bin/activate` then puts chart beside torchrun and tensorboard on PATH.
if [ -z "${CHART_PYTHON:-}" ] && [ "$build" = build ]; then ln -sfn "$root/build/chart" "$root/.venv/bin/chart"; fi
say "done: $build/chart (source .venv/bin/activate for chart, torchrun and tensorboard on PATH)"
