#!/usr/bin/env bash
# deploy/test.sh -- install what is missing, build with ASan+UBSan, run every test.
# Works on a fresh Debian 12 machine as root; safe to run again. Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
. deploy/lib.sh

FUZZ_SECONDS="${SLUICE_FUZZ_SECONDS:-30}"
JOBS="$(nproc_or_2)"
started=$(date +%s)

# shellcheck disable=SC2086
install_missing $SLUICE_BUILD_PKGS $SLUICE_TEST_PKGS $SLUICE_DEPLOY_TEST_PKGS
install_npm

log "build (ASan + UBSan): build-asan/"
cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DSLUICE_SANITIZE=ON >/dev/null
cmake --build build-asan -j "$JOBS"

log "tests (ctest, sanitizers fatal)"
export ASAN_OPTIONS="detect_leaks=1:halt_on_error=1:abort_on_error=1:print_stacktrace=1"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
(cd build-asan && ctest --output-on-failure -j "$JOBS")

log "rule registry and action pipeline under ThreadSanitizer: build-tsan/"
cmake -S . -B build-tsan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSLUICE_TSAN=ON \
  -DSLUICE_BENCH=OFF >/dev/null
cmake --build build-tsan -j "$JOBS" --target engine_stress_registry actions_stress_pipeline
TSAN_OPTIONS="halt_on_error=1" build-tsan/tests/engine/engine_stress_registry
TSAN_OPTIONS="halt_on_error=1" build-tsan/tests/actions/actions_stress_pipeline

log "fuzz targets (clang libFuzzer, ${FUZZ_SECONDS}s each): build-fuzz/"
CC=clang cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DSLUICE_FUZZ=ON -DSLUICE_TESTS=OFF -DSLUICE_BENCH=OFF >/dev/null
cmake --build build-fuzz -j "$JOBS"
shopt -s nullglob
fuzzers=(build-fuzz/tests/fuzz/fuzz_*)
for f in "${fuzzers[@]}"; do
  [ -x "$f" ] || continue
  name=$(basename "$f")
  corpus="tests/fuzz/corpus/$name"
  work=$(mktemp -d)
  [ -d "$corpus" ] && cp -r "$corpus"/. "$work"/
  echo "-- $name"
  if ! "$f" -max_total_time="$FUZZ_SECONDS" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$work/" "$work" > "$work.log" 2>&1; then
    # the finding: the harness's or the sanitizer's report, and the input that caused it
    grep -v -E '^#[0-9]+ +(NEW|REDUCE|pulse|INITED)' "$work.log" | tail -n 80
    for a in "$work"/crash-* "$work"/leak-* "$work"/timeout-* "$work"/oom-*; do
      [ -f "$a" ] && { echo "input $(basename "$a"), base64:"; base64 -w0 "$a"; echo; }
    done
    rm -rf "$work" "$work.log"
    exit 1
  fi
  tail -n 6 "$work.log"
  rm -rf "$work" "$work.log"
done
[ ${#fuzzers[@]} -gt 0 ] || echo "no fuzz targets built"

log "release build and conformance: build/"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DSLUICE_TESTS=OFF >/dev/null
cmake --build build -j "$JOBS"
python3 tests/conformance/check.py --bin build/engine/sluice tests/conformance/public.jsonl | tail -n 3
if [ -x build/bench/eval_bench ]; then
  log "evaluation benchmark (short run; figures only)"
  build/bench/eval_bench --quick || echo "benchmark did not complete (not a test failure)"
fi

log "deployment files: deploy/k8s and deploy/compose.yaml against their schemas (tests/deploy)"
(cd tests/deploy && npm ci --no-audit --no-fund --loglevel=error && node --test manifests.test.js)

if [ "${SLUICE_IMAGE_TEST:-1}" = 0 ]; then
  log "container image: SKIPPED (SLUICE_IMAGE_TEST=0)"
else
  log "container image: deploy/Dockerfile built with podman and run (tests/deploy/container.sh)"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo bash tests/deploy/container.sh
fi

log "all tests passed in $(( $(date +%s) - started ))s"
