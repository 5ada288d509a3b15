#!/usr/bin/env bash
# Builds the libFuzzer targets (fuzz/) with clang and runs each for a bounded time:
#   scripts/fuzz.sh [target...]        (default: every target; names as fuzz_protocol or protocol)
# Environment:
#   FUZZ_SECONDS=20            fuzzing time per target (-max_total_time)
#   FUZZ_BUILD_DIR=build/fuzz  the build directory (the only place this script builds)
#   FUZZ_BUILD_JOBS=$(nproc)   parallel compile jobs
#   FUZZ_WORK_DIR=             where corpus copies, logs and crash inputs go (default: a new
#                              /tmp/wsbridge-fuzz.XXXXXX, deleted when every target passed)
#   FUZZ_CC=clang FUZZ_CXX=clang++
#   WSBRIDGE_UNITY_BUILD=ON     a unity build (scripts/build.sh); OFF for quick rebuilds
#   FUZZ_ARGS=                 extra libFuzzer arguments, e.g. "-jobs=2 -workers=2"
# Each target first replays its saved regressions (fuzz/regressions/<target>-*), then fuzzes a
# copy of fuzz/corpus/<target>/ (the repository's corpus never grows). Exits non-zero when any
# regression or fuzzing run crashes, printing the path of each crashing input.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"

seconds="${FUZZ_SECONDS:-20}"
build_dir="${FUZZ_BUILD_DIR:-build/fuzz}"
jobs="${FUZZ_BUILD_JOBS:-$(nproc)}"
all_targets=(fuzz_protocol fuzz_topics fuzz_mqtt_packets fuzz_jwt fuzz_config fuzz_frames fuzz_http fuzz_compression fuzz_fallback_body fuzz_proxy_heads)

targets=()
for arg in "$@"; do
  name="fuzz_${arg#fuzz_}"
  if [[ ! " ${all_targets[*]} " == *" $name "* ]]; then
    echo "unknown target: $arg (one of: ${all_targets[*]})" >&2
    exit 2
  fi
  targets+=("$name")
done
[[ ${#targets[@]} -gt 0 ]] || targets=("${all_targets[@]}")

generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
echo "==> configure $build_dir"
cmake -S . -B "$build_dir" "${generator[@]}" \
  -DCMAKE_C_COMPILER="${FUZZ_CC:-clang}" -DCMAKE_CXX_COMPILER="${FUZZ_CXX:-clang++}" \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DWSBRIDGE_FUZZ=ON -DWSBRIDGE_BUILD_TESTS=OFF \
  -DWSBRIDGE_UNITY_BUILD="${WSBRIDGE_UNITY_BUILD:-ON}" >/dev/null
echo "==> build (${targets[*]})"
cmake --build "$build_dir" --target "${targets[@]}" -j "$jobs"
build_abs="$(cd "$build_dir" && pwd)"

if [[ -n "${FUZZ_WORK_DIR:-}" ]]; then
  work="$FUZZ_WORK_DIR"
  mkdir -p "$work"
else
  work="$(mktemp -d /tmp/wsbridge-fuzz.XXXXXX)"
fi
work="$(cd "$work" && pwd)"

export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
read -r -a extra_args <<<"${FUZZ_ARGS:-}"
failures=()

for target in "${targets[@]}"; do
  bin="$build_abs/fuzz/$target"
  tdir="$work/$target"
  rm -rf "$tdir"
  mkdir -p "$tdir/corpus" "$tdir/crashes" "$tdir/cwd"
  if [[ -d "$root/fuzz/corpus/$target" ]]; then
    cp -R "$root/fuzz/corpus/$target/." "$tdir/corpus/"
  fi

  # Saved regressions: each must run without a crash.
  shopt -s nullglob
  regressions=("$root"/fuzz/regressions/"$target"-*)
  shopt -u nullglob
  for input in "${regressions[@]}"; do
    if ! (cd "$tdir/cwd" && "$bin" -timeout=5 -rss_limit_mb=2048 "$input") >"$tdir/regression.log" 2>&1; then
      echo "!! $target: regression still crashes: $input (log: $tdir/regression.log)"
      grep -m1 -E "INVARIANT BROKEN|ERROR: (AddressSanitizer|libFuzzer|LeakSanitizer)|runtime error" \
        "$tdir/regression.log" | sed 's/^/   /' || true
      failures+=("$target: regression $input")
    fi
  done

  echo "==> $target: fuzzing ${seconds}s (corpus copy: $tdir/corpus)"
  status=0
  # Run from an empty folder: fuzz_config resolves relative file names against it.
  (cd "$tdir/cwd" && "$bin" "$tdir/corpus" -max_total_time="$seconds" -timeout=5 \
     -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$tdir/crashes/" \
     "${extra_args[@]}") >"$tdir/fuzz.log" 2>&1 || status=$?
  grep -E "^#[0-9]+ +DONE|stat::number_of_executed_units" "$tdir/fuzz.log" | sed 's/^/   /' || true
  shopt -s nullglob
  crashes=("$tdir"/crashes/*)
  shopt -u nullglob
  if [[ $status -ne 0 || ${#crashes[@]} -gt 0 ]]; then
    echo "!! $target: fuzzing failed (exit $status; log: $tdir/fuzz.log)"
    grep -m3 -E "INVARIANT BROKEN|ERROR: (AddressSanitizer|libFuzzer|LeakSanitizer)|runtime error|SUMMARY" \
      "$tdir/fuzz.log" | sed 's/^/   /' || true
    for input in "${crashes[@]}"; do echo "   crash input: $input"; done
    failures+=("$target: fuzzing")
  fi
done

if [[ ${#failures[@]} -gt 0 ]]; then
  echo "==> FAILED: ${#failures[@]} problem(s); inputs and logs kept in $work"
  printf '   %s\n' "${failures[@]}"
  echo "   replay one: (cd /tmp && $build_abs/fuzz/<target> <crash input>)"
  exit 1
fi
if [[ -z "${FUZZ_WORK_DIR:-}" ]]; then
  rm -rf "$work"
fi
echo "==> every target ran ${seconds}s without a crash"
