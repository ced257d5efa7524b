#!/usr/bin/env bash
# Target-check benchmark: `verify --target PROFILE` (no smoke test) must stay within the
# foundation's start-up goal (< 20 ms, no libtorch load). Compared in the same run with plain
# verify, inspect, `verify --target local` (loads the runtime for its operator set) and
# `verify --smoke` (loads the runtime and runs the model).
#   scripts/bench/target.sh        (needs build/ from scripts/build.sh, hyperfine)
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
DLSYS=$ROOT/build/bin/dlsys
WORK=${BENCH_DIR:-$ROOT/out/bench}
mkdir -p "$WORK" && cd "$WORK"
[ -f small.pt ] || "$ROOT/build/tests/make_model" mlp small.pt
cat > small.yaml <<'SPEC'
requirements: {min_memory: 64 MiB, cpu_features: [avx2], latency_budget_ms: 50}
examples: [{name: one, inputs: {x: {data: [[1, 2, 3, 4]]}}}]
SPEC
"$DLSYS" pack small.pt --name small --version 1.0.0 --spec small.yaml -o target-small.dlsys --force >/dev/null
"$DLSYS" probe -o here.yaml --force 2>/dev/null
"$DLSYS" probe -o here.json --force 2>/dev/null
hyperfine -N --warmup 3 --runs 30 --export-json target.json \
  "$DLSYS inspect target-small.dlsys" \
  "$DLSYS verify target-small.dlsys --allow-unsigned" \
  "$DLSYS verify target-small.dlsys --allow-unsigned --target here.yaml" \
  "$DLSYS verify target-small.dlsys --allow-unsigned --target here.json" \
  "$DLSYS verify target-small.dlsys --allow-unsigned --target local" \
  "$DLSYS verify target-small.dlsys --allow-unsigned --smoke" >/dev/null 2>&1
echo "### Target checks — $(date -u +%Y-%m-%d), $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p' | head -1)"
echo
echo "| command | median | stddev |"
echo "|---|---|---|"
/usr/bin/python3 - <<'PY'
import json
for r in json.load(open("target.json"))["results"]:
    cmd = r["command"].split("/")[-1]
    print(f"| `{cmd}` | {r['median']*1000:.1f} ms | {r['stddev']*1000:.1f} ms |")
PY
