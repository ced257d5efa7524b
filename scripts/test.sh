#!/usr/bin/env bash
# Installs dependencies, builds, and runs the whole test suite:
#   1. every test (unit tests, runtime tests with libtorch, CLI tests on the real binary);
#   2. everything again under AddressSanitizer + UndefinedBehaviorSanitizer, the CLI tests
#      included (the sanitized binary borrows the first build's runtime module and fixtures);
#   3. each libFuzzer target briefly (scripts/fuzz.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
JOBS=${JOBS:-$(nproc)}

echo "== build (with runtime) =="
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
ninja -C build -j"$JOBS"
echo "== tests =="
ctest --test-dir build -j"$JOBS" --output-on-failure --timeout 900

if [ "${DLSYS_SKIP_SANITIZERS:-0}" != "1" ]; then
  echo "== build (ASan + UBSan, no runtime) =="
  cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DDLSYS_SANITIZE=ON \
    -DDLSYS_WITH_RUNTIME=OFF -DDLSYS_EXTERNAL_MAKE_MODEL="$PWD/build/tests/make_model" \
    -DDLSYS_EXTERNAL_RUNTIME_MODULE="$PWD/build/bin/libdlsys_runtime.so" >/dev/null
  ninja -C build-asan -j"$JOBS"
  echo "== tests under sanitizers (unit and CLI) =="
  # libtorch (in the borrowed, uninstrumented runtime module) keeps global state for the life of
  # the process; tests/lsan.supp silences exactly those leaks, nothing of dlsys's own.
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    LSAN_OPTIONS=suppressions="$PWD/tests/lsan.supp" \
    ctest --test-dir build-asan -j"$JOBS" --output-on-failure --timeout 900
fi

if [ "${DLSYS_SKIP_FUZZ:-0}" != "1" ]; then
  echo "== fuzz (libFuzzer, each target briefly) =="
  bash scripts/fuzz.sh all "${DLSYS_FUZZ_SECONDS:-20}"
fi
