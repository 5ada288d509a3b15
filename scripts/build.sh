#!/usr/bin/env bash
# Configures and builds one flavour of wsbridge: scripts/build.sh [release|asan|tsan] [extra cmake args]
# A unity build (WSBRIDGE_UNITY_BUILD, about three times faster from scratch) unless
# WSBRIDGE_UNITY_BUILD=OFF is set: turn it off for quicker rebuilds of one changed source.
set -euo pipefail
cd "$(dirname "$0")/.."
flavour="${1:-release}"
shift || true
case "$flavour" in
  release) opts=(-DCMAKE_BUILD_TYPE=RelWithDebInfo) ;;
  asan) opts=(-DCMAKE_BUILD_TYPE=Debug -DWSBRIDGE_ASAN=ON) ;;
  tsan) opts=(-DCMAKE_BUILD_TYPE=Debug -DWSBRIDGE_TSAN=ON) ;;
  *) echo "usage: $0 [release|asan|tsan]" >&2; exit 2 ;;
esac
cmake -S . -B "build/$flavour" -G Ninja -DWSBRIDGE_WERROR=ON \
  -DWSBRIDGE_UNITY_BUILD="${WSBRIDGE_UNITY_BUILD:-ON}" "${opts[@]}" "$@" >/dev/null
cmake --build "build/$flavour" -j "$(nproc)"
