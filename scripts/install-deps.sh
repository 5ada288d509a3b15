#!/usr/bin/env bash
# Installs every Debian 12 package wsbridge needs to build, run and test. Idempotent; needs root.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config clang
  libwebsockets-dev libssl-dev zlib1g-dev libtomlplusplus-dev nlohmann-json3-dev
  libpaho-mqtt-dev libpaho-mqttpp-dev
  libgtest-dev libgmock-dev
  mosquitto mosquitto-clients
  curl ca-certificates procps systemd
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  echo "==> installing: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
