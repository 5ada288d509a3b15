#!/usr/bin/env bash
# One command from a fresh Debian 12 machine to the whole test suite:
#   1. a release build (warnings are errors) and every test;
#   2. an AddressSanitizer + UBSan build and every test;
#   3. a ThreadSanitizer build and every test again (the wsbridge servers the tests start run
#      under TSan too; tests/tsan.supp lists the library reports suppressed, and why).
#   4. a smoke run of the benchmark (bench/run --smoke);
#   5. the libFuzzer targets, a few seconds each (WSBRIDGE_FUZZ_SECONDS).
# Tests that cross threads inside one process carry the label "threads" (ctest -L threads).
# Shards ([server] threads): every flavour runs the suite with 2 service threads (the tests that
# start wsbridge set it through WSBRIDGE_TEST_THREADS); the release build runs it once more with 1,
# today's single loop, so both models stay covered (#14.7). The sanitizers run only the 2-thread
# model, the one with cross-shard hand-offs to check. To keep the suite within its time, the
# release 1-thread pass leaves out what does not depend on the thread count: the unit tests (none
# starts wsbridge), the README's commands (the default config's threads) and the labels that
# take the longest (reliability: signals, soak, floods; e2e: browsers and foreign clients; tls:
# the wss:// suite, which every flavour runs with 2 threads, the sanitizers included; proxy: the
# reverse proxy, whose connections each stay on one shard). The reverse proxy's end-to-end files
# (proxy.*: nginx and raw-socket backends, 100 MiB bodies) run in the release build and under
# AddressSanitizer, not ThreadSanitizer: an exchange lives on one service thread from its request
# to its end, and the C++ tests of the reverse proxy (its pieces, and DirectTunnelTest against a
# running 2-thread wsbridge) run in every flavour. The slow end-to-end tests of the servers
# (label e2e: Node clients against clusters of wsbridge instances, the fallback transports'
# servers, foreign TLS clients; about two minutes under a sanitizer) run in one sanitizer flavour,
# ThreadSanitizer, as their sessions cross shards and instances; AddressSanitizer covers the
# same server paths through the C++ tests of each part. Of the cluster's end-to-end files,
# ThreadSanitizer runs cluster_control and cluster_restart (the cluster bus between instances:
# pushes, closes and lookups by id across them, an instance restarted); e2e.cluster (browsers
# failing over after SIGKILL and a drain, ~40 s under TSan, the balancer's timing) runs in the
# release build, to keep the whole suite within its 40 minutes. The tests labelled
# "client" check web/wsbridge.js and the browser pages (the client library's own tests, the demo
# page, the fallback scenarios and hostile proxies in Chromium) and run in the release build only:
# the server paths they cross run under the sanitizers in the tests of their own (e2e.fallback_*
# under TSan, the C++ fallback tests under both), and a browser driving an instrumented server
# only adds minutes.
# Each sanitizer flavour is built at the lowest priority while the flavour before it is tested
# (see build_flavour below).
# Exits non-zero when any build or test fails. Set WSBRIDGE_TEST_FLAVOURS="release" to run fewer.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
# The browser tests' npm packages (playwright-core, from the lockfile; it uses Debian's Chromium).
(cd tests/e2e && npm ci --no-audit --no-fund --loglevel=error)

flavours="${WSBRIDGE_TEST_FLAVOURS:-release asan tsan}"
jobs="$(nproc)"
status=0
# Each phase's start says how long the suite has run so far (the CI limit is on the whole).
phase() { echo "==> [$(date -u +%H:%M:%S), $((SECONDS / 60)) min in] $*"; }
# Builds one flavour. (The benchmark's programs run from the release build only: the sanitizer
# builds skip them.)
build_flavour() {
  local build_args=()
  if [[ "$1" != release ]]; then build_args=(-DWSBRIDGE_BUILD_BENCH=OFF); fi
  bash scripts/build.sh "$1" "${build_args[@]}"
}
# The next flavour builds while this one's tests run, at the lowest priority (nice 19): the tests
# mostly wait on peers and timers (the release ones kept 0.93 of a core busy on average, the
# AddressSanitizer ones 1.3 of 2), so the build takes what they leave and the scheduler hands
# them a CPU as soon as they wake: they took a little longer (ASan's 6.5 minutes against 5.4 to
# 6.1 alone), the suite about 3 minutes less. Its output goes to build/logs/<flavour>.log,
# printed when it is waited for.
declare -A background_build=()
mkdir -p build/logs
read -r -a flavour_list <<<"$flavours"
for index in "${!flavour_list[@]}"; do
  flavour="${flavour_list[$index]}"
  if [[ -n "${background_build[$flavour]:-}" ]]; then
    phase "[$flavour] build (begun at nice 19 beside the previous tests): waiting for it"
    if ! wait "${background_build[$flavour]}"; then
      cat "build/logs/$flavour.log"
      echo "==> [$flavour] build failed" >&2
      exit 1
    fi
    tail -n 3 "build/logs/$flavour.log"
  else
    phase "[$flavour] build"
    build_flavour "$flavour"
  fi
  next="${flavour_list[$((index + 1))]:-}"
  if [[ -n "$next" ]]; then
    (renice -n 19 -p "$BASHPID" >/dev/null && build_flavour "$next") >"build/logs/$next.log" 2>&1 &
    background_build[$next]=$!
  fi
  # The release build runs one test more than CPUs: its tests mostly wait on peers and timers (3
  # at a time on 2 CPUs kept 0.93 of a core busy on average, and took 4.6 minutes instead of
  # 6.1). Under a sanitizer a test's wsbridge is CPU-bound: AddressSanitizer was no faster with 3
  # (5.7 minutes against 5.4, at 1.3 cores), and ThreadSanitizer's timing-bound tests failed
  # with a build beside them. They keep one test per CPU.
  test_jobs="$jobs"
  if [[ "$flavour" == release ]]; then test_jobs=$((jobs + 1)); fi
  args=(--test-dir "build/$flavour" --output-on-failure -j "$test_jobs" --timeout 300)
  thread_counts="2"
  if [[ "$flavour" == release ]]; then thread_counts="2 1"; fi
  for threads in $thread_counts; do
    phase "[$flavour] test, threads = $threads"
    subset=()
    if [[ "$threads" == 1 ]]; then
      subset=(-LE "unit|reliability|e2e|tls|proxy" -E "^operations[.]readme_commands$")
    fi
    if [[ "$flavour" == asan ]]; then subset=(-LE "client|e2e"); fi
    if [[ "$flavour" == tsan ]]; then subset=(-LE "client" -E "^proxy[.]|^e2e[.]cluster$"); fi
    if ! WSBRIDGE_TEST_THREADS="$threads" \
         ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
         UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
         TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 suppressions=$PWD/tests/tsan.supp" \
         ctest "${args[@]}" "${subset[@]}"; then
      status=1
    fi
  done
done
# The benchmark's smoke run (bench/run --smoke, ~30 s): every phase at a tiny size against
# wsbridge, the Node bridge and bare lws, so the benchmark keeps working. Not a performance test.
# With two CPUs or more it runs with --cpu-split on, as the fallback figures are measured, so the
# pinning of the load side is checked too (bench/run fails if a process is not where it should be).
if [[ " $flavours " == *" release "* ]]; then
  phase "[bench] smoke run"
  smoke_args=(--smoke)
  if (($(nproc) >= 2)); then smoke_args+=(--cpu-split on); fi
  if ! /usr/bin/python3 bench/run "${smoke_args[@]}"; then
    status=1
  fi
fi
# libFuzzer targets (fuzz/): replay the regression inputs, then a short bounded run of each (3 s:
# a check that every target still runs and finds nothing new at once; searching is
# scripts/fuzz.sh's own job, 20 s each by default, or as long as FUZZ_SECONDS says).
phase "[fuzz] build and run"
if ! FUZZ_SECONDS="${WSBRIDGE_FUZZ_SECONDS:-3}" bash scripts/fuzz.sh; then
  status=1
fi
phase "done, status $status"
exit $status
