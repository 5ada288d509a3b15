#!/usr/bin/env bash
# Runs every ```sh block of README.md as written, against a wsbridge on conf/wsbridge.toml and a
# mosquitto on conf/mosquitto.conf, both moved to free loopback ports: in the blocks,
# localhost:8080 becomes wsbridge's port, and mosquitto_pub/mosquitto_sub get the broker's port
# from their options file ($XDG_CONFIG_HOME/mosquitto_pub), so the commands themselves are
# unchanged. A block may be preceded by
#   <!-- readme-test: skip: REASON -->   not run (it blocks, or is the whole suite)
#   <!-- readme-test: expect TEXT -->    its output must contain TEXT
# A block fails when it exits non-zero, misses its expectation, runs over 60 s, or leaves a
# process running. Also checks the pieces of scripts/run.sh (which blocks, so is not run) and
# that scripts/install-deps.sh installs what the blocks use.
# Usage: scripts/check-readme.sh [WSBRIDGE_BINARY]   (CTest: operations.readme_commands)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
binary="${1:-build/release/wsbridge}"
work=$(mktemp -d)
started=()
cleanup() {
  for pid in "${started[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
failures=0
fail() {
  echo "FAIL: $*" >&2
  failures=$((failures + 1))
}
free_port() {
  /usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
wait_port() {
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}
# Copies $1 to $2 with sed expression $3, failing when it changed nothing (the file drifted).
rewrite() {
  sed -e "$3" "$1" >"$2"
  if cmp -s "$1" "$2"; then fail "$1 no longer matches '$3': update $0"; fi
}

# --- scripts/run.sh, piece by piece: its syntax, the files it uses, the config it runs.
bash -n scripts/run.sh || fail "scripts/run.sh has a syntax error"
for f in conf/wsbridge.toml conf/mosquitto.conf scripts/install-deps.sh scripts/build.sh; do
  grep -q "$f" scripts/run.sh || fail "scripts/run.sh no longer uses $f: update $0"
  [ -f "$f" ] || fail "scripts/run.sh uses $f, which does not exist"
done
[ -x /usr/sbin/mosquitto ] || fail "scripts/run.sh starts /usr/sbin/mosquitto, which is missing"
"$binary" --check-config conf/wsbridge.toml >/dev/null || fail "conf/wsbridge.toml does not pass"
# scripts/run.sh --tls: its self-signed certificate for localhost, the config it runs, and
# conf/wss.toml (which names that certificate, relative to itself), in a copy of the layout.
mkdir -p "$work/tls/conf"
cp conf/wss.toml "$work/tls/conf/"
ln -s "$root/web" "$work/tls/web"
if tls_config=$(WSBRIDGE_STATE_DIR="$work/tls/.state" bash scripts/run.sh --tls-config 2>/dev/null); then
  crt="$work/tls/.state/tls/localhost.crt"
  for name in "-checkhost localhost" "-checkip 127.0.0.1" "-checkip ::1"; do
    # (openssl x509 -check* prints whether the name matches; its exit status does not say)
    # (Output captured first: with pipefail, grep -q quitting early would fail the writer.)
    check=$(openssl x509 -in "$crt" -noout $name)
    [[ "$check" == *" does match"* ]] ||
      fail "scripts/run.sh's certificate is not valid for ${name#* }"
  done
  "$binary" --check-config "$tls_config" >/dev/null || fail "the config of scripts/run.sh --tls does not pass"
  grep -q "^port = 8443$" "$tls_config" || fail "scripts/run.sh --tls no longer serves port 8443"
  "$binary" --check-config "$work/tls/conf/wss.toml" >/dev/null ||
    fail "conf/wss.toml does not pass with the certificate of scripts/run.sh --make-cert"
  hint=$(WSBRIDGE_STATE_DIR="$work/tls/.state" bash scripts/run.sh --make-cert)
  grep -q "SPKI SHA-256: [A-Za-z0-9+/]\{43\}=" <<<"$hint" ||
    fail "scripts/run.sh --make-cert does not print the SPKI hash"
else
  fail "scripts/run.sh --tls-config failed"
fi

# --- The broker and wsbridge of scripts/run.sh, on free ports.
broker_port=$(free_port)
rewrite conf/mosquitto.conf "$work/mosquitto.conf" "s/^listener 1883 /listener $broker_port /"
/usr/sbin/mosquitto -c "$work/mosquitto.conf" >"$work/mosquitto.log" 2>&1 &
started+=($!)
wait_port "$broker_port" || { cat "$work/mosquitto.log"; fail "mosquitto did not start"; exit 1; }
port=$(free_port)
rewrite conf/wsbridge.toml "$work/a.toml" "s/^port = 8080$/port = $port/"
rewrite "$work/a.toml" "$work/b.toml" "s|tcp://127.0.0.1:1883|tcp://127.0.0.1:$broker_port|"
rewrite "$work/b.toml" "$work/wsbridge.toml" "s|^static_dir = \"../web\"|static_dir = \"$root/web\"|"
"$binary" --config "$work/wsbridge.toml" >"$work/wsbridge.log" 2>&1 &
started+=($!)
wait_port "$port" || { cat "$work/wsbridge.log"; fail "wsbridge did not start"; exit 1; }
mkdir -p "$work/xdg"
echo "-p $broker_port" >"$work/xdg/mosquitto_pub"
echo "-p $broker_port" >"$work/xdg/mosquitto_sub"

# --- Every sh block.
packages=$(bash scripts/install-deps.sh --list)
needs() {  # $1: block text; prints the Debian packages its commands come from
  grep -q 'python3' <<<"$1" && echo python3
  grep -Eq 'import .*websockets' <<<"$1" && echo python3-websockets
  grep -Eq 'import .*paho' <<<"$1" && echo python3-paho-mqtt
  grep -Eq 'mosquitto_(pub|sub)' <<<"$1" && echo mosquitto-clients
  grep -Eq '(^|[^a-z_])curl ' <<<"$1" && echo curl
  true
}
run_block() {  # $1: number, $2: text, $3: expected output (may be empty)
  local file="$work/block$1.sh" out="$work/block$1.out" status=0
  local text=${2//localhost:8080/localhost:$port}
  printf '%s' "${text//127.0.0.1:8080/127.0.0.1:$port}" >"$file"
  for p in $(needs "$2"); do
    grep -qx "$p" <<<"$packages" || fail "block $1 needs $p, which scripts/install-deps.sh lacks"
  done
  # Its own session, so whatever it starts can be found (and stopped) afterwards.
  XDG_CONFIG_HOME="$work/xdg" setsid bash "$file" >"$out" 2>&1 </dev/null &
  local pid=$! waited=0
  while kill -0 "$pid" 2>/dev/null && [ "$waited" -lt 600 ]; do
    sleep 0.1
    waited=$((waited + 1))
  done
  if kill -0 "$pid" 2>/dev/null; then
    fail "block $1 still runs after 60 s"
    kill -KILL -- "-$pid" 2>/dev/null || true
  fi
  wait "$pid" || status=$?
  [ "$status" -eq 0 ] || fail "block $1 exited with $status"
  if kill -0 -- "-$pid" 2>/dev/null; then
    fail "block $1 left a process running (it must end by itself)"
    kill -KILL -- "-$pid" 2>/dev/null || true
  fi
  if [ -n "$3" ] && ! grep -qF -- "$3" "$out"; then fail "block $1's output lacks: $3"; fi
  echo "---- block $1 (exit $status):"
  cat "$file"
  echo "---- its output:"
  cat "$out"
}
n=0
ran=0
in_block=false
skip=""
expect=""
block=""
while IFS= read -r line; do
  if $in_block; then
    if [ "$line" = '```' ]; then
      in_block=false
      n=$((n + 1))
      if [ -n "$skip" ]; then
        echo "---- block $n skipped ($skip): $(head -1 <<<"$block")"
      else
        run_block "$n" "$block" "$expect"
        ran=$((ran + 1))
      fi
      skip=""
      expect=""
    else
      block+="$line"$'\n'
    fi
  elif [[ "$line" =~ ^'<!-- readme-test: skip: '(.*)' -->'$ ]]; then
    skip=${BASH_REMATCH[1]}
  elif [[ "$line" =~ ^'<!-- readme-test: expect '(.*)' -->'$ ]]; then
    expect=${BASH_REMATCH[1]}
  elif [ "$line" = '```sh' ]; then
    in_block=true
    block=""
  elif [ -n "$line" ]; then
    skip=""  # an annotation belongs to the block right after it
    expect=""
  fi
done <README.md
[ "$ran" -gt 0 ] || fail "no sh block of README.md was run"
if [ "$failures" -gt 0 ]; then
  echo "---- wsbridge log:"
  cat "$work/wsbridge.log"
  echo "$failures failure(s)" >&2
  exit 1
fi
echo "README.md: $ran block(s) ran, $((n - ran)) skipped: ok"
