#!/usr/bin/env bash
# One command from a fresh Debian 12 machine to a running wsbridge on conf/wsbridge.toml.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh release
config="${WSBRIDGE_CONFIG:-conf/wsbridge.toml}"
echo
echo "==> wsbridge is starting on $config"
echo "==> open http://localhost:8080/  (WebSocket echo: ws://localhost:8080/echo); Ctrl-C stops it"
echo
exec build/release/wsbridge --config "$config"
