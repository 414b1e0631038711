#!/usr/bin/env bash
# Makes .gpu-bundle/: what scripts/gpu_check.sh needs on a GPU machine that has no internet and
# only torch (with pyarrow), CUDA, cmake and ninja preinstalled. Run it here, on a build machine
# with Debian's package archive; it downloads .deb files (not installed here) of yaml-cpp, fmt,
# nlohmann-json (headers), OpenSSL's libcrypto (headers, the libcrypto.so link and the library it
# points to), GoogleTest and Gloo (headers), cpp-httplib (with the brotli and zlib headers its
# header includes) and libjwt (with jansson) for `chart serve`. gpu_check.sh unpacks them into a prefix (dpkg -x) and
# points CMake at it.
#   bash scripts/make_gpu_bundle.sh          then carry .gpu-bundle to the GPU machine
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .gpu-bundle/debs
cd .gpu-bundle/debs
apt-get update -qq >/dev/null 2>&1 || true
apt-get download libyaml-cpp-dev libyaml-cpp0.7 libfmt-dev libfmt9 nlohmann-json3-dev libssl-dev libssl3 \
  libgtest-dev libgmock-dev googletest libgloo-dev libcpp-httplib-dev libcpp-httplib0.11 libbrotli-dev libbrotli1 \
  zlib1g-dev libjwt-dev libjwt0 libjansson4 >/dev/null
ls -1 "$PWD"
du -sh "$PWD"
