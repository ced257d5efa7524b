#!/usr/bin/env bash
# Monitor benchmark (`dlsys monitor --once`): summarizing RECORDS (1M) dlsys serve access records
# per model version against the physical limit (`wc -l`, reading the same file from the page
# cache) and the usual alternative (jq computing the same per-version count and mean latency),
# in one run. Also: one thread vs all cores, gzip input, and peak memory at 1/10 and all of the
# records (memory must not grow with the file), and --follow keeping up with FOLLOW_RATE
# (100k) appended lines/s for FOLLOW_SECONDS (10). Prints every command, then a Markdown table.
#   scripts/bench/monitor.sh            (RECORDS=1000000 JQ=1 REPEAT=3)
# Builds nothing: needs build/bin/dlsys (or $DLSYS), jq, gzip, /usr/bin/time, python3.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
DLSYS=${DLSYS:-$ROOT/build/bin/dlsys}
RECORDS=${RECORDS:-1000000}
REPEAT=${REPEAT:-3}
JQ=${JQ:-1}
[ -x "$DLSYS" ] || { echo "missing $DLSYS: build first (scripts/build.sh)" >&2; exit 2; }
for x in jq gzip /usr/bin/time python3; do
  command -v "$x" >/dev/null || { echo "missing $x (scripts/install-deps.sh)" >&2; exit 2; }
done
WORK=$(mktemp -d -t dlsys-monitor-bench.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
cmd() { echo "\$ $*" >&2; }
# best SECONDS of REPEAT runs of a command (stdout discarded), wall clock to the microsecond
best() {
  local b=999999 t
  for _ in $(seq "$REPEAT"); do
    local t0=$EPOCHREALTIME
    "$@" >/dev/null 2>&1
    t=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN {printf "%.3f", b - a}')
    b=$(awk -v a="$t" -v b="$b" 'BEGIN {print (a < b) ? a : b}')
  done
  echo "$b"
}
peak_kib() { /usr/bin/time -f %M -o "$WORK/time" "$@" >/dev/null 2>&1; tail -1 "$WORK/time"; }

LOG=$WORK/serve.log
cmd python3 scripts/bench/monitor_gen.py "$RECORDS" "$LOG"
python3 scripts/bench/monitor_gen.py "$RECORDS" "$LOG"
head -n $((RECORDS / 10)) "$LOG" >"$WORK/tenth.log"
BYTES=$(stat -c %s "$LOG")
cat "$LOG" >/dev/null  # into the page cache
cmd wc -l "$LOG"
T_WC=$(best wc -l "$LOG")
cmd "$DLSYS" monitor "$LOG" --once --by model_version
T_MON=$(best "$DLSYS" monitor "$LOG" --once --by model_version)
cmd DLSYS_THREADS=1 "$DLSYS" monitor "$LOG" --once --by model_version
T_MON1=$(DLSYS_THREADS=1 best "$DLSYS" monitor "$LOG" --once --by model_version)
gzip -1 -c "$LOG" >"$LOG.gz"
cmd "$DLSYS" monitor "$LOG.gz" --once --by model_version
T_GZ=$(best "$DLSYS" monitor "$LOG.gz" --once --by model_version)
cmd gzip -dc "$LOG.gz" '>' /dev/null
T_GUNZIP=$(best gzip -dc "$LOG.gz")
M_ALL=$(peak_kib "$DLSYS" monitor "$LOG" --once)
M_TENTH=$(peak_kib "$DLSYS" monitor "$WORK/tenth.log" --once)
JQ_PROG='reduce inputs as $r ({}; if ($r.latency_ms | type) == "number" then .[$r.model_version | tostring] |= {n: ((.n // 0) + 1), s: ((.s // 0) + $r.latency_ms)} else . end) | map_values({requests: .n, mean_ms: (.s / .n)})'
if [ "$JQ" = 1 ]; then
  cmd jq -n "'$JQ_PROG'" "$LOG"
  /usr/bin/time -f %e -o "$WORK/time" jq -n "$JQ_PROG" "$LOG" >"$WORK/jq.json"
  T_JQ=$(tail -1 "$WORK/time")
  # The same answer: counts equal, means within 1e-6 ms.
  "$DLSYS" monitor "$LOG" --once --by model_version --json >"$WORK/mon.json"
  python3 - "$WORK/jq.json" "$WORK/mon.json" <<'PY'
import json, sys
jq = json.load(open(sys.argv[1])); mon = json.load(open(sys.argv[2]))
got = {g["key"]["model_version"]: g for g in mon["groups"]}
for v, r in jq.items():
    assert got[v]["requests"] == r["requests"], (v, got[v]["requests"], r)
    assert abs(got[v]["latency_ms"]["mean"] - r["mean_ms"]) < 1e-6, (v, got[v]["latency_ms"], r)
print("jq and dlsys monitor agree on", len(jq), "versions", file=sys.stderr)
PY
else
  T_JQ=
fi
FOLLOW_RATE=${FOLLOW_RATE:-100000}
FOLLOW_SECONDS=${FOLLOW_SECONDS:-10}
cmd python3 scripts/bench/monitor_follow.py "$DLSYS" "$LOG" "$WORK/follow.log" "$FOLLOW_RATE" "$FOLLOW_SECONDS"
F=$(python3 scripts/bench/monitor_follow.py "$DLSYS" "$LOG" "$WORK/follow.log" "$FOLLOW_RATE" "$FOLLOW_SECONDS")
CPU=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
echo "### Monitor — $(date -u +%Y-%m-%d), $(nproc) cores, $CPU"
echo
echo "$RECORDS records, $BYTES bytes ($(awk -v b="$BYTES" -v n="$RECORDS" 'BEGIN {printf "%.0f", b / n}') B/record), page cache warm, best of $REPEAT."
echo
echo "| measurement | seconds | GB/s | compared with |"
echo "|---|---|---|---|"
gbps() { awk -v b="$BYTES" -v t="$1" 'BEGIN {if (t > 0) printf "%.2f", b / t / 1e9; else print "-"}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (b > 0) printf "%.1f", a / b; else print "-"}'; }
echo "| wc -l (the limit: reading the file) | $T_WC | $(gbps "$T_WC") | |"
echo "| dlsys monitor --once --by model_version, all cores | $T_MON | $(gbps "$T_MON") | $(ratio "$T_MON" "$T_WC")× wc -l |"
echo "| the same, DLSYS_THREADS=1 | $T_MON1 | $(gbps "$T_MON1") | $(ratio "$T_MON1" "$T_MON")× all cores |"
echo "| the same on the gzip -1 file (one stream) | $T_GZ | $(gbps "$T_GZ") | gzip -dc alone: $T_GUNZIP s |"
[ -n "$T_JQ" ] && echo "| jq: per-version count and mean latency | $T_JQ | $(gbps "$T_JQ") | dlsys $(ratio "$T_JQ" "$T_MON")× faster |"
echo "| peak RSS, all records / a tenth | $M_ALL / $M_TENTH KiB | | |"
fj() { python3 -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$F" "$1"; }
echo "| --follow: $(fj written) lines appended at $(fj write_rate) lines/s for $(fj seconds) s | caught up: $(fj caught_up), $(fj lag_s) s after the last write | | monitor CPU $(fj monitor_cpu_pct)% of a core |"
