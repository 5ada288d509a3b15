#!/bin/sh
# The image's HEALTHCHECK: GET /healthz on the first [[listeners]] of the config wsbridge runs on,
# so a config on another port or address needs no change here. The config is the one named by
# --config on wsbridge's command line (PID 1 in the container), else $WSBRIDGE_CONFIG, else
# /etc/wsbridge/wsbridge.toml. WSBRIDGE_HEALTH_URL overrides the whole URL.
set -eu
config="${WSBRIDGE_CONFIG:-/etc/wsbridge/wsbridge.toml}"
if [ -r /proc/1/cmdline ] && [ "$(cat /proc/1/comm 2>/dev/null)" = wsbridge ]; then
  previous=""
  for arg in $(tr '\0' '\n' </proc/1/cmdline); do
    case "$previous" in --config | -c) config="$arg" ;; esac
    case "$arg" in --config=*) config="${arg#--config=}" ;; esac
    previous="$arg"
  done
fi
url="${WSBRIDGE_HEALTH_URL:-}"
if [ -z "$url" ]; then
  # address and port of the first [[listeners]] table (comments and quotes stripped).
  endpoint=$(awk '
    { sub(/#.*/, "") }
    /^[ \t]*\[/ { section = $0; gsub(/[ \t]/, "", section); n += (section == "[[listeners]]") }
    n == 1 && section == "[[listeners]]" && /^[ \t]*(address|port)[ \t]*=/ {
      split($0, kv, "="); key = kv[1]; value = kv[2]
      gsub(/[ \t"]/, "", key); gsub(/[ \t"]/, "", value); v[key] = value
    }
    END { if (v["port"] == "") exit 1; print (v["address"] == "" ? "127.0.0.1" : v["address"]), v["port"] }
  ' "$config") || { echo "no [[listeners]] port in $config" >&2; exit 1; }
  address=${endpoint% *}
  port=${endpoint#* }
  case "$address" in
    0.0.0.0) host=127.0.0.1 ;;
    ::) host="[::1]" ;;
    *:*) host="[$address]" ;;
    *) host="$address" ;;
  esac
  url="http://$host:$port/healthz"
fi
exec curl -fsS --max-time 4 "$url"
