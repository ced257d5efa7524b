#!/usr/bin/env bash
# Foundation benchmark: pack / verify / inspect on a model with 1 GiB of weights, each against
# the usual alternative in the same run. Prints a Markdown report (docs/performance.md).
#   scripts/bench/foundation.sh [WEIGHT_BYTES]     (default 1073741824)
# Needs: a build in build/ (scripts/build.sh), hyperfine, openssl. Page cache is warmed first
# so every command reads from memory, as on a CI machine that just produced the model.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
DLSYS=$ROOT/build/bin/dlsys
MAKE_MODEL=$ROOT/build/tests/make_model
BYTES=${1:-1073741824}
RUNS=${RUNS:-5}
WORK=${BENCH_DIR:-$ROOT/out/bench}
mkdir -p "$WORK" && cd "$WORK"
[ -x "$DLSYS" ] && [ -x "$MAKE_MODEL" ] || { echo "build first: scripts/build.sh" >&2; exit 2; }

[ -f big.pt ] && [ "$(stat -c %s big.pt)" -ge "$BYTES" ] || "$MAKE_MODEL" big big.pt --weight-bytes "$BYTES"
[ -f small.pt ] || "$MAKE_MODEL" mlp small.pt
cat big.pt > /dev/null

# median of N timings of a command, in seconds
median() {
  local -a t=()
  for _ in $(seq "$RUNS"); do
    "${PRE[@]}" >/dev/null 2>&1 || true
    local s=$(date +%s.%N)
    "$@" >/dev/null 2>&1
    local e=$(date +%s.%N)
    t+=("$(echo "$e - $s" | bc -l)")
  done
  printf '%s\n' "${t[@]}" | sort -g | awk '{a[NR]=$1} END {printf "%.3f", a[int((NR+1)/2)]}'
}
ratio() { echo "scale=2; $1 / $2" | bc -l; }

PRE=(sh -c "rm -f copy.pt big.dlsys; sync")
t_cp=$(median cp big.pt copy.pt)
PRE=(sh -c "rm -f big.dlsys copy.pt; sync")
t_pack=$(median "$DLSYS" pack big.pt --name big --version 1.0.0 --compression none -o big.dlsys)
"$DLSYS" pack big.pt --name big --version 1.0.0 --compression none -o big.dlsys --force >/dev/null
PRE=(true)
t_load=$(median /usr/bin/python3 -c "import torch; torch.jit.load('big.pt')")
t_pyimport=$(median /usr/bin/python3 -c "import torch")
t_openssl=$(median openssl dgst -sha256 big.dlsys)
t_sha256sum=$(median sha256sum big.dlsys)
t_verify=$(median "$DLSYS" verify big.dlsys --allow-unsigned)
t_verify1=$(median "$DLSYS" verify big.dlsys --allow-unsigned --threads 1)
"$DLSYS" pack small.pt --name small --version 1.0.0 -o small.dlsys --force >/dev/null
hyperfine -N --warmup 5 --runs 50 --export-json inspect.json \
  "$DLSYS inspect big.dlsys" "$DLSYS inspect small.dlsys" "$DLSYS --help" >/dev/null 2>&1
read -r t_ins_big t_ins_small t_help < <(/usr/bin/python3 -c "
import json; r=json.load(open('inspect.json'))['results']
print(' '.join('%.2f' % (x['median']*1000) for x in r))")
read -r sd_big sd_small < <(/usr/bin/python3 -c "
import json; r=json.load(open('inspect.json'))['results']
print(' '.join('%.2f' % (x['stddev']*1000) for x in r[:2]))")

cpu=$(lscpu | sed -n 's/^Model name: *//p' | head -1)
cat <<REPORT
### Foundation benchmark — $(date -u +%Y-%m-%d), $(nproc) cores, ${cpu}, $(free -g | awk '/Mem:/{print $2}') GiB RAM

Model: $(stat -c %s big.pt) bytes of float32 weights (random, incompressible); page cache warm; median of $RUNS runs.

| measurement | time | compared with | ratio | goal |
|---|---|---|---|---|
| \`dlsys verify\` (uncompressed, all cores) | ${t_verify} s | \`openssl dgst -sha256\` ${t_openssl} s | $(ratio "$t_verify" "$t_openssl") | <= 0.6 |
| \`dlsys verify --threads 1\` | ${t_verify1} s | \`openssl dgst -sha256\` ${t_openssl} s | $(ratio "$t_verify1" "$t_openssl") | (one core) |
| \`sha256sum\` | ${t_sha256sum} s | \`openssl dgst -sha256\` ${t_openssl} s | $(ratio "$t_sha256sum" "$t_openssl") | |
| \`dlsys pack --compression none\` (load check included) | ${t_pack} s | \`cp\` ${t_cp} s | $(ratio "$t_pack" "$t_cp") | <= 1.3 |
| libtorch's own \`torch.jit.load\` (Python, incl. ${t_pyimport} s \`import torch\`) | ${t_load} s | \`cp\` ${t_cp} s | $(ratio "$t_load" "$t_cp") | (floor for a real load check) |
| \`dlsys inspect\` 1 GiB archive | ${t_ins_big} ms ± ${sd_big} | 1 KB-model archive ${t_ins_small} ms ± ${sd_small} | $(ratio "$t_ins_big" "$t_ins_small") | same within noise; < 20 ms |
| \`dlsys --help\` (start-up) | ${t_help} ms | | | < 20 ms |
REPORT
