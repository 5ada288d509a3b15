#!/usr/bin/env bash
# One command from a fresh Debian 12 machine to a running wsbridge on conf/wsbridge.toml, with
# the local mosquitto it talks to (started here unless something already listens on 1883).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh release
config="${WSBRIDGE_CONFIG:-conf/wsbridge.toml}"

broker_pid=""
if ! (exec 3<>/dev/tcp/127.0.0.1/1883) 2>/dev/null; then
  echo "==> starting mosquitto on 127.0.0.1:1883 (conf/mosquitto.conf)"
  /usr/sbin/mosquitto -c conf/mosquitto.conf &
  broker_pid=$!
  trap '[ -n "$broker_pid" ] && kill "$broker_pid" 2>/dev/null; wait 2>/dev/null' EXIT
else
  echo "==> using the MQTT broker already listening on 127.0.0.1:1883"
fi

echo
echo "==> wsbridge is starting on $config"
echo "==> open http://localhost:8080/   (ws://localhost:8080/echo, ws://localhost:8080/mqtt)"
echo "==> try: mosquitto_pub -t sensors/k1/temp -m 21.5   (the page, subscribed to sensors/#, shows it)"
echo "==> Ctrl-C stops everything"
echo
build/release/wsbridge --config "$config" &
bridge_pid=$!
trap 'kill -TERM "$bridge_pid" 2>/dev/null; wait "$bridge_pid" 2>/dev/null; [ -n "$broker_pid" ] && kill "$broker_pid" 2>/dev/null; wait 2>/dev/null' EXIT INT TERM
wait "$bridge_pid"
