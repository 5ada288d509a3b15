#!/usr/bin/env bash
# One command from a fresh Debian 12 machine to a running wsbridge on conf/wsbridge.toml, with
# the local mosquitto it talks to (started here unless something already listens on 1883).
#   --tls        also serve https://localhost:8443 and wss://localhost:8443, with a self-signed
#                certificate for localhost made here (openssl) on first use, in the state dir
#   --make-cert  only make that certificate (when missing) and say how to trust it; no build
#   --tls-config only make it and write the config --tls runs; print that file's name; no build
# The state dir is $WSBRIDGE_STATE_DIR, by default .state/ in this checkout (conf/wss.toml names
# the certificate there). WSBRIDGE_CONFIG replaces conf/wsbridge.toml.
set -euo pipefail
cd "$(dirname "$0")/.."
tls=false
cert_only=false
config_only=false
for arg in "$@"; do
  case "$arg" in
    --tls) tls=true ;;
    --make-cert) cert_only=true ;;
    --tls-config) config_only=true ;;
    -h | --help) sed -n '2,9p' "$0" | cut -c3-; exit 0 ;;
    *) echo "usage: $0 [--tls | --make-cert | --tls-config]" >&2; exit 2 ;;
  esac
done
config="${WSBRIDGE_CONFIG:-conf/wsbridge.toml}"
state="${WSBRIDGE_STATE_DIR:-$PWD/.state}"
cert="$state/tls/localhost.crt"
key="$state/tls/localhost.key"

# A self-signed certificate for localhost, 127.0.0.1 and ::1 (EC P-256, one year), made once:
# kept across runs so that a browser told to trust it goes on trusting it.
make_cert() {
  if [ -s "$cert" ] && [ -s "$key" ] && openssl x509 -in "$cert" -noout -checkend 86400 >/dev/null; then
    return 0
  fi
  echo "==> making a self-signed certificate for localhost in $state/tls/"
  mkdir -p "$state/tls"
  chmod 700 "$state/tls"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 365 \
    -subj "/CN=localhost" \
    -addext "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1" \
    -addext "basicConstraints=critical,CA:FALSE" \
    -addext "keyUsage=critical,digitalSignature" \
    -addext "extendedKeyUsage=serverAuth" \
    -keyout "$key" -out "$cert" 2>/dev/null
  chmod 600 "$key"
}

# How to make clients trust it: the SPKI hash is what Chromium's allowlist flag takes.
trust_hint() {
  local spki
  spki=$(openssl x509 -in "$cert" -noout -pubkey | openssl pkey -pubin -outform der |
    openssl dgst -sha256 -binary | base64)
  echo "==> certificate: $cert (valid until $(openssl x509 -in "$cert" -noout -enddate | cut -d= -f2))"
  echo "==> its SPKI SHA-256: $spki"
  echo "    Chromium:  chromium --ignore-certificate-errors-spki-list=$spki https://localhost:8443/"
  echo "    curl:      curl --cacert $cert https://localhost:8443/healthz"
  echo "    Python:    ssl.create_default_context(cafile=\"$cert\")"
  echo "    (or for good: docs/TLS.md, \"Try it on localhost\")"
}

# $config with one more listener, TLS on 8443, written to the state dir: so a relative
# static_dir is made absolute (relative to the file it came from).
write_tls_config() {
  local base_dir
  base_dir=$(cd "$(dirname "$config")" && pwd)
  tls_config="$state/wsbridge-tls.toml"
  {
    sed -e "s|^static_dir = \"\\([^/\"][^\"]*\\)\"|static_dir = \"$base_dir/\\1\"|" "$config"
    cat <<EOF

# Added by scripts/run.sh --tls: the same routes over TLS (docs/TLS.md).
[[listeners]]
address = "127.0.0.1"
port = 8443
compression = "shared"
  [listeners.tls]
  cert_file = "$cert"
  key_file = "$key"
EOF
  } >"$tls_config"
}

if $cert_only; then
  make_cert
  trust_hint
  exit 0
fi
if $config_only; then
  make_cert >&2
  write_tls_config
  echo "$tls_config"
  exit 0
fi

bash scripts/install-deps.sh
bash scripts/build.sh release
if $tls; then
  make_cert
  write_tls_config
  config="$tls_config"
fi

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
if $tls; then
  echo "==> and https://localhost:8443/  (wss://localhost:8443/echo, wss://localhost:8443/mqtt)"
  trust_hint
fi
echo "==> try: mosquitto_pub -t sensors/k1/temp -m 21.5   (the page, subscribed to sensors/#, shows it)"
echo "==> Ctrl-C stops everything"
echo
build/release/wsbridge --config "$config" &
bridge_pid=$!
trap 'kill -TERM "$bridge_pid" 2>/dev/null; wait "$bridge_pid" 2>/dev/null; [ -n "$broker_pid" ] && kill "$broker_pid" 2>/dev/null; wait 2>/dev/null' EXIT INT TERM
wait "$bridge_pid"
