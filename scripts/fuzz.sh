#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz) with clang-14 in build-fuzz/ and runs each one.
#
#   scripts/fuzz.sh TARGET SECONDS     TARGET: archive, manifest, spec, profile, infer, log, prom, registry, oci or all
#
# Each target starts from a temporary copy of tests/fuzz/corpus/TARGET and
# tests/fuzz/regressions/TARGET (the committed seeds are never written) and runs for SECONDS.
# Crash, leak, timeout and out-of-memory inputs are kept in build-fuzz/artifacts/TARGET/ and
# their paths printed; full logs are in build-fuzz/logs/TARGET.log. Prints one line per target,
#   fuzz: archive 123456 runs in 30 s, 0 crashes
# and exits 1 if any target found a crash. JOBS (default: nproc) bounds the build.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() { echo "usage: scripts/fuzz.sh archive|manifest|spec|profile|infer|log|prom|registry|oci|all SECONDS" >&2; exit 2; }
[ $# -eq 2 ] || usage
case "$1" in
  all) targets=(archive manifest spec profile infer log prom registry oci) ;;
  archive|manifest|spec|profile|infer|log|prom|registry|oci) targets=("$1") ;;
  *) usage ;;
esac
[[ "$2" =~ ^[1-9][0-9]*$ ]] || usage
seconds=$2

bash scripts/install-deps.sh
JOBS=${JOBS:-$(nproc)}
BUILD=build-fuzz

echo "== build (clang-14, libFuzzer + ASan + UBSan) =="
CC=clang-14 CXX=clang++-14 cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g" -DDLSYS_FUZZ=ON -DDLSYS_TESTS=OFF \
  -DDLSYS_WITH_RUNTIME=OFF >/dev/null
ninja -C "$BUILD" -j"$JOBS" "${targets[@]/%/_fuzz}"

# Largest input per target: a few times the largest seed, small enough to keep runs fast.
declare -A max_len=([archive]=65536 [manifest]=32768 [spec]=16384 [profile]=16384 [infer]=8192
                    [log]=8192 [prom]=8192 [registry]=16384 [oci]=16384)
declare -A dict=([archive]=archive.dict [manifest]=manifest.dict [spec]=yaml.dict
                 [profile]=yaml.dict [infer]=manifest.dict [log]=log.dict [prom]=prom.dict
                 [registry]=registry.dict [oci]=registry.dict)

work=$(mktemp -d "${TMPDIR:-/tmp}/dlsys-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$BUILD/logs"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:symbolize=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

failed=0
summary=()
for t in "${targets[@]}"; do
  corpus="$work/$t"
  artifacts="$BUILD/artifacts/$t"
  log="$BUILD/logs/$t.log"
  mkdir -p "$corpus" "$artifacts"
  for seeds in "tests/fuzz/corpus/$t" "tests/fuzz/regressions/$t"; do
    if [ -d "$seeds" ] && [ -n "$(ls -A "$seeds")" ]; then cp "$seeds"/* "$corpus"/; fi
  done
  echo "== fuzz $t for ${seconds} s ($(ls "$corpus" | wc -l) seeds) =="
  start=$(date +%s)
  rc=0
  "$BUILD/fuzz/${t}_fuzz" "$corpus" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
    -max_len="${max_len[$t]}" -dict="tests/fuzz/${dict[$t]}" -artifact_prefix="$artifacts/" \
    -print_final_stats=1 >"$log" 2>&1 || rc=$?
  elapsed=$(( $(date +%s) - start ))

  runs=$(sed -n 's/^Done \([0-9]*\) runs in .*/\1/p' "$log" | tail -n1)
  [ -n "$runs" ] || runs=$(sed -n 's/^stat::number_of_executed_units: *\([0-9]*\).*/\1/p' "$log" | tail -n1)
  [ -n "$runs" ] || runs="?"
  coverage=$(grep -E '^#[0-9]+[[:space:]]+(DONE|INITED|NEW|REDUCE|pulse)' "$log" | tail -n1 || true)
  [ -z "$coverage" ] || echo "$coverage"
  grep -E '^Done [0-9]+ runs in' "$log" || true

  if [ "$rc" -eq 0 ]; then
    line="fuzz: $t $runs runs in $elapsed s, 0 crashes"
  else
    failed=1
    crash=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -n1)
    echo "---- $t: libFuzzer exited with $rc; end of $log:"
    grep -E '^(==[0-9]+== ?ERROR|SUMMARY|.*runtime error)' "$log" | head -n5 || true
    tail -n 40 "$log"
    echo "----"
    line="fuzz: $t $runs runs in $elapsed s, 1 crash: ${crash:-see $log}"
    [ -z "$crash" ] || echo "reproduce: $BUILD/fuzz/${t}_fuzz $crash"
  fi
  echo "$line"
  summary+=("$line")
done

echo "== fuzz summary =="
printf '%s\n' "${summary[@]}"
exit "$failed"
