#!/usr/bin/env bash
# Builds the tree here against .gpu-bundle alone, the way scripts/gpu_check.sh builds it on a GPU
# machine that has none of the Debian packages: in a private mount namespace the system's copies
# of every bundled package (headers, libraries, CMake configs) are hidden, the .debs are unpacked
# into a prefix, and setup.sh runs with CHART_SKIP_APT=1. A dependency added to setup.sh but not to
# scripts/make_gpu_bundle.sh fails here instead of in the rare GPU session.
#   bash scripts/make_gpu_bundle.sh && bash scripts/check_gpu_bundle.sh     (root; build-bundle/)
# Headers and CMake configs are what it proves come from the bundle (the system's .so links, which
# point at the same libraries, are left). Needs root (unshare -m); CHART_PYTHON defaults to .venv's python.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
[ -d .gpu-bundle/debs ] || { echo "no .gpu-bundle/debs: run scripts/make_gpu_bundle.sh first" >&2; exit 1; }
prefix=/tmp/chart-bundle-prefix
rm -rf "$prefix" && mkdir -p "$prefix"
for deb in .gpu-bundle/debs/*.deb; do dpkg -x "$deb" "$prefix"; done

# Every file the bundled development packages installed on this machine (headers, .so links,
# static libraries, CMake configs): hidden inside the namespace. Runtime libraries stay (the base
# system's own programs may need them; the linker never sees them without the -dev links).
hide=()
for deb in .gpu-bundle/debs/*.deb; do
  pkg=$(dpkg-deb -f "$deb" Package)
  [[ "$pkg" == *-dev || "$pkg" == googletest ]] || continue
  dpkg-query -W "$pkg" >/dev/null 2>&1 || continue
  while read -r f; do
    [[ "$f" == /usr/include/* || "$f" == /usr/lib/* || "$f" == /usr/share/*cmake* ]] || continue
    [ -f "$f" ] || [ -L "$f" ] || continue
    hide+=("$f")
  done < <(dpkg -L "$pkg")
done
printf '%s\n' "${hide[@]}" > /tmp/chart-bundle-hidden.txt
echo "check_gpu_bundle: hiding ${#hide[@]} system files of the bundled packages; prefix $prefix"

export CHART_PYTHON=${CHART_PYTHON:-$root/.venv/bin/python}
unshare -m --propagation private bash -euo pipefail -c '
  empty=$(mktemp); : > "$empty"
  # A hidden library is an empty file: the linker or CMake fails on it if the prefix is not used.
  while read -r f; do [ -L "$f" ] || mount --bind "$empty" "$f"; done < /tmp/chart-bundle-hidden.txt
  for d in yaml-cpp fmt gtest gmock gloo nlohmann openssl; do
    [ -d /usr/include/$d ] && mount -t tmpfs none /usr/include/$d
  done
  [ -d /usr/include/x86_64-linux-gnu/openssl ] && mount -t tmpfs none /usr/include/x86_64-linux-gnu/openssl
  export LD_LIBRARY_PATH='"$prefix"'/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}
  CHART_SKIP_APT=1 CHART_BUILD_DIR=build-bundle \
    CMAKE_ARGS="-DCMAKE_PREFIX_PATH='"$prefix"'/usr -DCMAKE_INCLUDE_PATH='"$prefix"'/usr/include" \
    bash scripts/setup.sh
  build-bundle/chart --version
'
echo "check_gpu_bundle: ok: the tree builds against .gpu-bundle alone"
