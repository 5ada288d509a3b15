#!/usr/bin/env bash
# Installs every Debian 12 package wsbridge needs to build, run and test. Idempotent; needs root.
#   scripts/install-deps.sh               everything (build, run, test)
#   scripts/install-deps.sh --build-only  what building needs (the container image uses this)
#   scripts/install-deps.sh --list        print the packages of the full set, one a line, and
#                                         install nothing (scripts/check-readme.sh reads it)
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config
  libwebsockets-dev libwebsockets-evlib-ev libev-dev libssl-dev zlib1g-dev libtomlplusplus-dev
  nlohmann-json3-dev
  libpaho-mqtt-dev libpaho-mqttpp-dev libgtest-dev libgmock-dev
  ca-certificates
)
build_only=false
[ "${1:-}" = "--build-only" ] && build_only=true
if ! $build_only; then
  # Running and testing: the local broker, its clients, Chromium for the browser tests, clang for
  # the fuzzers, systemd-analyze for the unit check, curl and procps for scripts, and Python with
  # websockets for the README's examples, bench/run and the test backends; Paho's MQTT client for
  # the README's MQTT-over-WebSocket example; websockify, the raw WebSocket-to-TCP bridge bench/run's
  # mqtt-passthrough phase measures wsbridge against; nginx and haproxy, the proxies the fallback
  # and reverse-proxy tests put in front of wsbridge (or behind it, as a legacy app) and the
  # proxy phase of bench/run measures it against (each test starts its own, on a free port).
  packages+=(mosquitto mosquitto-clients chromium clang systemd curl procps python3
             python3-websockets python3-paho-mqtt websockify nginx haproxy)
fi
if [ "${1:-}" = "--list" ]; then
  printf '%s\n' "${packages[@]}"
  exit 0
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# Node.js (for the browser tests) is on the development machines; Debian's is enough elsewhere.
$build_only || command -v node >/dev/null 2>&1 || missing+=(nodejs npm)
if ((${#missing[@]})); then
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  echo "==> installing: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
