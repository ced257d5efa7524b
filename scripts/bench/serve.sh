#!/usr/bin/env bash
# Serving benchmark (`dlsys serve`): HTTP throughput and latency of the KServe v2 server against
# the physical limits and the usual alternatives, in one run. Prints every command it runs, then
# a Markdown table (copy it into docs/performance.md with the machine and the date by hand).
#   scripts/bench/serve.sh
# 1. mlp16 (16->64->4), batch-1 JSON requests, wrk 8 connections: dlsys serve (defaults, then a
#    sweep of --http-threads/--instances/--intra-op-threads/--max-batch-size/--max-queue-delay-us)
#    vs a Python server (http.server and Flask, scripts/bench/py_server.py), nginx returning a
#    fixed reply (the HTTP ceiling) and forward_loop at batch 1 (the model's own limit).
# 2. mlp_heavy (1024->2048->2048->1024), batch-1 binary requests, 64 connections: rows/s vs
#    forward_loop at batch 1 and at batch 8/16/32/64, with a --max-batch-size/delay/threads sweep.
# 3. mlp_wide1m: one 1 MiB FP32 row, binary extension vs JSON: req/s and MB/s.
# 4. RSS of the server after 10k and after MEM_REQUESTS (1M) mlp16 requests.
# 5. Start-up: exec to the ready line, and how much of it is the runtime module load.
# Builds nothing: needs build/bin/dlsys, build/tests/{make_model,forward_loop} (or $DLSYS,
# $MAKE_MODEL, $FORWARD_LOOP), wrk, curl, jq, nginx (nginx-light), /usr/bin/python3 with torch
# and flask. Every server listens on 127.0.0.1 on a free port and is stopped by its PID.
# Durations (seconds): BENCH_SECONDS (10, measured runs), SWEEP_SECONDS (3, each sweep point),
# LOOP_SECONDS (3, forward_loop), WARMUP_SECONDS (1); MEM_REQUESTS (1000000); WRK_THREADS (1);
# SWEEP=0 skips the sweeps (then SERVE_FLAGS / HEAVY_FLAGS give the flags to measure).
# wrk and the server share the machine's cores (2 on the reference machine): wrk -t1 takes one.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
DLSYS=${DLSYS:-$ROOT/build/bin/dlsys}
MAKE_MODEL=${MAKE_MODEL:-$ROOT/build/tests/make_model}
FORWARD_LOOP=${FORWARD_LOOP:-$ROOT/build/tests/forward_loop}
PY=${PYTHON:-/usr/bin/python3}
SECS=${BENCH_SECONDS:-10}
SWEEP_SECS=${SWEEP_SECONDS:-3}
LOOP_SECS=${LOOP_SECONDS:-3}
WARM=${WARMUP_SECONDS:-1}
MEM_REQUESTS=${MEM_REQUESTS:-1000000}
WRK_T=${WRK_THREADS:-1}
SWEEP=${SWEEP:-1}
# one flag set measured on both models: the candidate for new defaults
CANDIDATE=${CANDIDATE_FLAGS:---http-threads 2 --instances 1 --intra-op-threads 2 --max-batch-size 32 --max-queue-delay-us 0}
read -r -a CAND <<<"$CANDIDATE"
LUA=$ROOT/scripts/bench/serve.lua
PYSERVER=$ROOT/scripts/bench/py_server.py
for x in "$DLSYS" "$MAKE_MODEL" "$FORWARD_LOOP"; do
  [ -x "$x" ] || { echo "missing $x: build first (scripts/build.sh)" >&2; exit 2; }
done
for x in wrk curl jq nginx "$PY"; do
  command -v "$x" >/dev/null || { echo "missing $x (scripts/install-deps.sh)" >&2; exit 2; }
done

WORK=$(mktemp -d -t dlsys-serve-bench.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
cd "$WORK"
T0=$(date +%s)
RESULTS=$WORK/results.tsv
: >"$RESULTS"

say() { echo "$*" >&2; }
cmd() { echo "\$ $*"; }          # the exact command lines, on stdout
row() { printf '%s\n' "$(IFS=$'\t'; echo "$*")" >>"$RESULTS"; }   # section label value...

# start NAME CMD...: runs a server, waits for 'ready on URL' on its stdout; sets SPID and URL.
# Its stderr goes to $WORK/NAME.err (or $SERVER_ERR).
start() {
  local name=$1; shift
  cmd "$@"
  "$@" >"$WORK/$name.out" 2>"${SERVER_ERR:-$WORK/$name.err}" &
  SPID=$!
  PIDS+=("$SPID")
  local i
  URL=
  for i in $(seq 2400); do
    URL=$(sed -n 's/.*ready on \(http:[^ ]*[0-9]\).*/\1/p' "$WORK/$name.out" | head -1)
    [ -n "$URL" ] && break
    kill -0 "$SPID" 2>/dev/null || { say "$name exited:"; cat "$WORK/$name.err" >&2 || true; return 1; }
    sleep 0.025
  done
  [ -n "$URL" ] || { say "$name: no ready line: $(cat "$WORK/$name.out")"; return 1; }
}
stop() { kill "$SPID" 2>/dev/null || true; wait "$SPID" 2>/dev/null || true; }
free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# wrk_run CONNS SECONDS URL BODY [HEADER_LEN]: prints the command, sets W to the JSON summary.
wrk_run() {
  local conns=$1 secs=$2 url=$3 body=$4 hlen=${5:-} ctype=application/json
  [ -n "$hlen" ] && ctype=application/octet-stream
  local envs="BODY_FILE=$body CTYPE=$ctype${hlen:+ HEADER_LEN=$hlen}"
  [ "$WARM" != 0 ] && env $envs wrk -t"$WRK_T" -c"$conns" -d"${WARM}s" -s "$LUA" "$url" >/dev/null 2>&1
  cmd "$envs wrk -t$WRK_T -c$conns -d${secs}s --latency -s $LUA $url"
  W=$(env $envs wrk -t"$WRK_T" -c"$conns" -d"${secs}s" --latency -s "$LUA" "$url" | sed -n 's/^WRKJSON //p')
  [ -n "$W" ] || { say "wrk printed no summary"; W='{"rps":0,"p50_ms":0,"p99_ms":0,"non2xx":0,"errors":0,"requests":0}'; }
  say "    -> $(jq -c '{rps,p50_ms,p99_ms,non2xx,errors}' <<<"$W")"
}
j() { jq -r ".$1" <<<"$2"; }
metric() { curl -s "$1/metrics" | awk -v n="$2" '$1 ~ "^"n"([{]|$)" {s += $2} END {printf "%d", s}'; }
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

say "== fixtures in $WORK"
for k in mlp16 mlp_heavy mlp_wide1m; do
  cmd "$MAKE_MODEL" $k $k.pt
  "$MAKE_MODEL" $k $k.pt >/dev/null
done
spec() {  # spec NAME WIDTH_IN WIDTH_OUT
  printf 'name: %s\nversion: 1.0.0\ninputs:\n  - {name: x, dtype: float32, shape: [-1, %s]}\noutputs:\n  - {name: y, dtype: float32, shape: [-1, %s]}\n' "$1" "$2" "$3"
}
# mlp16 carries an example, as archives from `dlsys pack` in a pipeline do: serve times its
# forward at warm-up and (instances 0, auto) runs this fast model on the HTTP event loop.
{ spec mlp16 16 4
  printf 'examples:\n  - name: one-row\n    inputs:\n      x: {data: [[%s]]}\n' \
    "0.5, -0.25, 0.125, 1, -1, 0.75, 0.3, -0.6, 0.9, 0.1, -0.2, 0.4, -0.8, 0.6, 0.2, -0.4"
} >mlp16.yaml
spec heavy 1024 1024 >heavy.yaml
spec wide 262144 1 >wide.yaml
for p in "mlp16 mlp16" "mlp_heavy heavy" "mlp_wide1m wide"; do
  set -- $p
  cmd "$DLSYS" pack $1.pt --spec $2.yaml -o $2.dlsys --force
  "$DLSYS" pack $1.pt --spec $2.yaml -o $2.dlsys --force >/dev/null
done
# Request bodies, built once: JSON and binary-extension (JSON header + raw little-endian FP32).
"$PY" - <<'PY'
import json, random, struct
random.seed(1)
def body(name, n, binary, out_binary=False):
    data = [round(random.uniform(-1, 1), 6) for _ in range(n)]
    if not binary:
        b = json.dumps({"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, n], "data": data}]},
                       separators=(",", ":")).encode()
        open(name + ".json", "wb").write(b)
        return
    req = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, n],
                       "parameters": {"binary_data_size": 4 * n}}]}
    if out_binary:
        req["outputs"] = [{"name": "y", "parameters": {"binary_data": True}}]
    h = json.dumps(req, separators=(",", ":")).encode()
    open(name + ".bin", "wb").write(h + struct.pack("<%df" % n, *data))
    open(name + ".hlen", "w").write(str(len(h)))
body("mlp16", 16, False)
body("heavy", 1024, True, out_binary=True)
body("wide", 262144, True)
body("wide", 262144, False)
PY
MLP_URL_PATH=/v2/models/mlp16/infer

# ---- 1. small MLP, batch-1 JSON, 8 connections ------------------------------------------------
say "== 1. mlp16, batch-1 JSON, 8 connections"
serve_mlp16() {  # serve_mlp16 SECONDS LABEL FLAGS...: one dlsys server, one wrk run; sets W
  local secs=$1 label=$2; shift 2
  start dlsys "$DLSYS" serve mlp16.dlsys --allow-unsigned --port 0 "$@"
  wrk_run 8 "$secs" "$URL$MLP_URL_PATH" mlp16.json
  stop
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$label" "$(j rps "$W")" "$(j p50_ms "$W")" "$(j p99_ms "$W")" \
    "$(j non2xx "$W")" "$*" >>sweep1.tsv
}
# best_of FILE: the flags of the fastest row with p99 <= 1 ms (else of the fastest row)
best_of() {
  awk -F'\t' '{ok = ($4 <= 1.0 && $5 == 0); if ((ok && (!bok || $2 > b)) || (!bok && !ok && $2 > b)) {b = $2; bok = ok; f = $6}} END {print f}' "$1"
}
: >sweep1.tsv
if [ "$SWEEP" = 1 ]; then
  # stage A: threads and instances at the default batching
  for ht in 1 2; do for inst in 0 1 2; do for iop in 1 2; do
    serve_mlp16 "$SWEEP_SECS" sweep --http-threads $ht --instances $inst --intra-op-threads $iop
  done; done; done
  read -r -a A <<<"$(best_of sweep1.tsv)"
  # stage B: batching at the best threads
  serve_mlp16 "$SWEEP_SECS" sweep "${A[@]:0:6}" --max-batch-size 1 --max-queue-delay-us 0
  for mb in 8 16; do for d in 0 100 500; do
    serve_mlp16 "$SWEEP_SECS" sweep "${A[@]:0:6}" --max-batch-size $mb --max-queue-delay-us $d
  done; done
  serve_mlp16 "$SWEEP_SECS" sweep "${A[@]:0:6}" --max-batch-size 64 --max-queue-delay-us 0
  read -r -a BEST <<<"$(best_of sweep1.tsv)"
else
  read -r -a BEST <<<"${SERVE_FLAGS:-}"
fi
serve_mlp16 "$SECS" final-default
row 1 "dlsys serve, defaults" "$(j rps "$W")" "$(j p50_ms "$W")" "$(j p99_ms "$W")" "$(j non2xx "$W")"
DLSYS_DEFAULT_RPS=$(j rps "$W")
serve_mlp16 "$SECS" final-best "${BEST[@]}"
row 1 "dlsys serve ${BEST[*]}" "$(j rps "$W")" "$(j p50_ms "$W")" "$(j p99_ms "$W")" "$(j non2xx "$W")"
DLSYS_BEST_RPS=$(j rps "$W"); DLSYS_BEST_P99=$(j p99_ms "$W")
serve_mlp16 "$SECS" final-candidate "${CAND[@]}"
row 1 "dlsys serve ${CAND[*]} (candidate defaults)" "$(j rps "$W")" "$(j p50_ms "$W")" "$(j p99_ms "$W")" "$(j non2xx "$W")"
CAND_RPS=$(j rps "$W"); CAND_P99=$(j p99_ms "$W")
serve_mlp16 "$SECS" final-best-nolog "${BEST[@]}" --log-level warn
row 1 "dlsys serve ${BEST[*]} --log-level warn (no access log)" "$(j rps "$W")" "$(j p50_ms "$W")" "$(j p99_ms "$W")" "$(j non2xx "$W")"

for fw in http flask; do
  start py-$fw "$PY" "$PYSERVER" mlp16.pt --name mlp16 --framework $fw
  wrk_run 8 "$SECS" "$URL$MLP_URL_PATH" mlp16.json
  stop
  row 1 "Python $fw (py_server.py --framework $fw)" "$(j rps "$W")" "$(j p50_ms "$W")" "$(j p99_ms "$W")" "$(j non2xx "$W")"
  if [ $fw = http ]; then PY_RPS=$(j rps "$W"); fi
done
start py-nagle "$PY" "$PYSERVER" mlp16.pt --name mlp16 --framework http --nagle
wrk_run 8 "$SWEEP_SECS" "$URL$MLP_URL_PATH" mlp16.json
stop
row 1 "Python http.server without TCP_NODELAY (--nagle, stock handler)" "$(j rps "$W")" "$(j p50_ms "$W")" "$(j p99_ms "$W")" "$(j non2xx "$W")"
PY_NAGLE_RPS=$(j rps "$W")
# Flask as people run it: app.run(threaded=True) (HTTP/1.0, a connection per request, Nagle on)
start py-flask-stock "$PY" "$PYSERVER" mlp16.pt --name mlp16 --framework flask --stock
wrk_run 8 "$SECS" "$URL$MLP_URL_PATH" mlp16.json
stop
row 1 "Python Flask as app.run(threaded=True) starts it (--stock: HTTP/1.0, Nagle on)" "$(j rps "$W")" "$(j p50_ms "$W")" "$(j p99_ms "$W")" "$(j non2xx "$W")"
PY_FLASK_STOCK_RPS=$(j rps "$W")

# nginx: a fixed reply of the same size as dlsys's, one worker (wrk has the other core)
REPLY='{"model_name":"mlp16","model_version":"1.0.0","outputs":[{"name":"y","datatype":"FP32","shape":[1,4],"data":[3.4282649,-2.1064737,1.6156892,-1.9273162]}]}'
NPORT=$(free_port)
mkdir -p nginx/logs
cat >nginx/nginx.conf <<CONF
worker_processes 1;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $WORK/nginx/body;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:$NPORT;
    location / { default_type application/json; return 200 '$REPLY'; }
  }
}
CONF
cmd nginx -c "$WORK/nginx/nginx.conf" -p "$WORK/nginx" -g "'daemon off;'"
nginx -c "$WORK/nginx/nginx.conf" -p "$WORK/nginx" -g 'daemon off;' 2>"$WORK/nginx.err" &
SPID=$!; PIDS+=("$SPID")
for _ in $(seq 200); do curl -sf -o /dev/null "http://127.0.0.1:$NPORT/" -d x && break; sleep 0.025; done
wrk_run 8 "$SECS" "http://127.0.0.1:$NPORT$MLP_URL_PATH" mlp16.json
stop
row 1 "nginx, fixed JSON reply (HTTP ceiling, 1 worker)" "$(j rps "$W")" "$(j p50_ms "$W")" "$(j p99_ms "$W")" "$(j non2xx "$W")"
NGINX_RPS=$(j rps "$W")
cmd "$FORWARD_LOOP" mlp16.pt --input-shape 1,16 --seconds "$LOOP_SECS" --threads 1
L=$("$FORWARD_LOOP" mlp16.pt --input-shape 1,16 --seconds "$LOOP_SECS" --threads 1)
row 1 "forward_loop batch 1 (model limit, 1 thread, no HTTP)" "$(j rows_per_s "$L")" "$(j p50_ms "$L")" "$(j p99_ms "$L")" 0
LOOP16=$(j rows_per_s "$L")

# ---- 2. compute-heavy MLP, batch-1 binary requests, 64 connections -----------------------------
say "== 2. mlp_heavy, batch-1 binary requests, 64 connections"
BEST_FIXED=0
for b in 1 8 16 32 64; do
  cmd "$FORWARD_LOOP" mlp_heavy.pt --input-shape $b,1024 --seconds "$LOOP_SECS"
  L=$("$FORWARD_LOOP" mlp_heavy.pt --input-shape $b,1024 --seconds "$LOOP_SECS")
  row 2 "forward_loop batch $b (threads: libtorch default)" "$(j rows_per_s "$L")" "$(j p50_ms "$L")" "$(j p99_ms "$L")" 0
  r=$(j rows_per_s "$L")
  if [ $b = 1 ]; then LOOP_H1=$r; fi
  if awk -v a="$r" -v b="$BEST_FIXED" 'BEGIN {exit !(a > b)}'; then BEST_FIXED=$r; BEST_B=$b; fi
done
# batch 1 on one thread too (OpenMP's two threads lose when wrk and the server share the cores);
# the better of the two is the batch-1 baseline
cmd "$FORWARD_LOOP" mlp_heavy.pt --input-shape 1,1024 --seconds "$LOOP_SECS" --threads 1
L=$("$FORWARD_LOOP" mlp_heavy.pt --input-shape 1,1024 --seconds "$LOOP_SECS" --threads 1)
row 2 "forward_loop batch 1 --threads 1" "$(j rows_per_s "$L")" "$(j p50_ms "$L")" "$(j p99_ms "$L")" 0
if awk -v a="$(j rows_per_s "$L")" -v b="$LOOP_H1" 'BEGIN {exit !(a > b)}'; then LOOP_H1=$(j rows_per_s "$L"); fi
HLEN=$(cat heavy.hlen)
serve_heavy() {  # serve_heavy SECONDS FLAGS...
  local secs=$1; shift
  start dlsys-heavy "$DLSYS" serve heavy.dlsys --allow-unsigned --port 0 "$@"
  wrk_run 64 "$secs" "$URL/v2/models/heavy/infer" heavy.bin "$HLEN"
  stop
  printf 'h\t%s\t%s\t%s\t%s\t%s\n' "$(j rps "$W")" "$(j p50_ms "$W")" "$(j p99_ms "$W")" "$(j non2xx "$W")" "$*" >>sweep2.tsv
}
: >sweep2.tsv
HT=()
for ((i = 0; i < ${#BEST[@]}; i++)); do
  if [ "${BEST[$i]}" = --http-threads ]; then HT=(--http-threads "${BEST[$((i + 1))]}"); fi
done
if [ "$SWEEP" = 1 ]; then
  for mb in 16 32 64; do for d in 0 2000; do
    serve_heavy "$SWEEP_SECS" "${HT[@]}" --max-batch-size $mb --max-queue-delay-us $d
  done; done
  # throughput first: the fastest row regardless of p99
  read -r -a HB <<<"$(sort -t$'\t' -k2 -g -r sweep2.tsv | head -1 | cut -f6)"
  for t in "1 1" "1 2" "2 1"; do
    set -- $t
    serve_heavy "$SWEEP_SECS" "${HB[@]}" --intra-op-threads $1 --instances $2
  done
  read -r -a HBEST <<<"$(sort -t$'\t' -k2 -g -r sweep2.tsv | head -1 | cut -f6)"
else
  read -r -a HBEST <<<"${HEAVY_FLAGS:-}"
fi
serve_heavy "$SECS"
row 2 "dlsys serve, defaults (rows/s = req/s)" "$(j rps "$W")" "$(j p50_ms "$W")" "$(j p99_ms "$W")" "$(j non2xx "$W")"
HEAVY_DEF=$(j rps "$W")
serve_heavy "$SECS" "${HBEST[@]}"
row 2 "dlsys serve ${HBEST[*]}" "$(j rps "$W")" "$(j p50_ms "$W")" "$(j p99_ms "$W")" "$(j non2xx "$W")"
HEAVY_BEST=$(j rps "$W"); HEAVY_P99=$(j p99_ms "$W")
serve_heavy "$SECS" "${CAND[@]}"
row 2 "dlsys serve ${CAND[*]} (candidate defaults)" "$(j rps "$W")" "$(j p50_ms "$W")" "$(j p99_ms "$W")" "$(j non2xx "$W")"
HEAVY_CAND=$(j rps "$W"); HEAVY_CAND_P99=$(j p99_ms "$W")

# ---- 3. 1 MiB input: binary extension vs JSON ---------------------------------------------------
say "== 3. mlp_wide1m, 1 MiB FP32 row, 8 connections"
start dlsys-wide "$DLSYS" serve wide.dlsys --allow-unsigned --port 0
wrk_run 8 "$SECS" "$URL/v2/models/wide/infer" wide.bin "$(cat wide.hlen)"
row 3 "binary extension ($(stat -c %s wide.bin) bytes/request)" "$(j rps "$W")" "$(j p50_ms "$W")" "$(j p99_ms "$W")" "$(j non2xx "$W")" \
  "$(awk -v r="$(j rps "$W")" -v b="$(stat -c %s wide.bin)" 'BEGIN {printf "%.0f MB/s", r * b / 1e6}')"
wrk_run 8 "$SECS" "$URL/v2/models/wide/infer" wide.json
row 3 "JSON ($(stat -c %s wide.json) bytes/request)" "$(j rps "$W")" "$(j p50_ms "$W")" "$(j p99_ms "$W")" "$(j non2xx "$W")" \
  "$(awk -v r="$(j rps "$W")" -v b="$(stat -c %s wide.json)" 'BEGIN {printf "%.0f MB/s (%.0f MB/s of FP32 payload)", r * b / 1e6, r * 1048576 / 1e6}')"
stop

# ---- 4. memory after 10k and after MEM_REQUESTS requests ---------------------------------------
say "== 4. RSS after 10k and $MEM_REQUESTS mlp16 requests"
SERVER_ERR=/dev/null start dlsys-mem "$DLSYS" serve mlp16.dlsys --allow-unsigned --port 0 "${BEST[@]}"
MPID=$SPID
RSS0=$(rss_kib "$MPID")
cmd "MAX_REQUESTS=10000 BODY_FILE=mlp16.json wrk -t1 -c8 -d30s -s $LUA $URL$MLP_URL_PATH"
MAX_REQUESTS=10000 BODY_FILE=mlp16.json wrk -t1 -c8 -d30s -s "$LUA" "$URL$MLP_URL_PATH" >/dev/null
n=$(metric "$URL" dlsys_inference_request_success_total)
N10K=$n; RSS10K=$(rss_kib "$MPID")
cmd "BODY_FILE=mlp16.json wrk -t$WRK_T -c8 -dNs -s $LUA $URL$MLP_URL_PATH  (repeated until dlsys_inference_request_success_total >= $MEM_REQUESTS)"
t_mem=$(date +%s.%N)
while [ "$n" -lt "$MEM_REQUESTS" ]; do
  rate=${DLSYS_BEST_RPS%.*}; [ "${rate:-0}" -gt 1000 ] || rate=1000
  d=$(( (MEM_REQUESTS - n) / rate + 1 )); [ $d -gt 30 ] && d=30
  BODY_FILE=mlp16.json wrk -t"$WRK_T" -c8 -d${d}s -s "$LUA" "$URL$MLP_URL_PATH" >/dev/null
  n=$(metric "$URL" dlsys_inference_request_success_total)
done
t_mem=$(echo "$(date +%s.%N) - $t_mem" | bc -l)
N1M=$n; RSS1M=$(rss_kib "$MPID")
stop
row 4 "RSS after start-up" "$RSS0 KiB" "" "" 0
row 4 "RSS after $N10K requests" "$RSS10K KiB" "" "" 0
row 4 "RSS after $N1M requests ($(printf '%.0f' "$t_mem") s)" "$RSS1M KiB" "" "" 0 \
  "$(awk -v a="$RSS1M" -v b="$RSS10K" 'BEGIN {printf "%+.1f%% vs 10k", (a - b) * 100 / b}')"

# ---- 5. start-up -------------------------------------------------------------------------------
say "== 5. start-up, mlp16"
cmd "$DLSYS" serve mlp16.dlsys --allow-unsigned --port 0 --log-format json -v "(x5: exec to 'ready on', log timestamps)"
STARTUP=$("$PY" - "$DLSYS" <<'PY'
import json, statistics, subprocess, sys, time
from datetime import datetime
def ts(r): return datetime.fromisoformat(r["@timestamp"].replace("Z", "+00:00")).timestamp()
wall, runtime, after, load = [], [], [], []
for _ in range(5):
    t0 = time.time()
    p = subprocess.Popen([sys.argv[1], "serve", "mlp16.dlsys", "--allow-unsigned", "--port", "0",
                          "--log-format", "json", "-v"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    line = p.stdout.readline()
    t1 = time.time()
    p.terminate(); _, err = p.communicate(timeout=30)
    assert "ready on" in line, line
    ev = {}
    for l in err.splitlines():
        try: r = json.loads(l)
        except ValueError: continue
        ev.setdefault(r.get("event"), r)
    wall.append((t1 - t0) * 1000)
    runtime.append((ts(ev["serve.blas"]) - t0) * 1000)          # exec -> runtime module loaded
    after.append((ts(ev["serve.ready"]) - ts(ev["serve.blas"])) * 1000)
    load.append(ev["serve.load"]["load_ms"])
m = statistics.median
print("%.0f %.0f %.1f %.1f" % (m(wall), m(runtime), m(after), m(load)))
PY
)
read -r SU_WALL SU_RT SU_AFTER SU_LOAD <<<"$STARTUP"
cmd "$DLSYS" verify mlp16.dlsys --allow-unsigned --smoke "(x5)"
SMOKE=$("$PY" - "$DLSYS" <<'PY'
import statistics, subprocess, sys, time
t = []
for _ in range(5):
    t0 = time.time()
    subprocess.run([sys.argv[1], "verify", "mlp16.dlsys", "--allow-unsigned", "--smoke"], capture_output=True)
    t.append((time.time() - t0) * 1000)
print("%.0f" % statistics.median(t))
PY
)
row 5 "exec -> 'ready on' line (median of 5)" "$SU_WALL ms" "" "" 0
row 5 "  of which exec -> runtime module loaded (serve.blas)" "$SU_RT ms" "" "" 0
row 5 "  runtime loaded -> ready (verify, load, warm-up: serve.load load_ms $SU_LOAD)" "$SU_AFTER ms" "" "" 0
row 5 "dlsys verify --smoke (loads the runtime, runs the model)" "$SMOKE ms" "" "" 0

# ---- report ------------------------------------------------------------------------------------
ok() { awk "BEGIN {exit !($1)}" && echo "✔" || echo "✘"; }
echo
echo "### Serving — $(date -u +%Y-%m-%d), $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p' | head -1), load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "wrk -t$WRK_T shares the $(nproc) cores with the server (nothing pinned). Measured runs ${SECS} s, sweep points ${SWEEP_SECS} s, each after a ${WARM} s warm-up."
echo
echo "| # | measurement | req/s (rows/s) | p50 ms | p99 ms | non-2xx | note |"
echo "|---|---|---|---|---|---|---|"
awk -F'\t' '{printf "| %s | %s | %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, $5, $6, $7}' "$RESULTS"
echo
echo "Targets:"
echo "- mlp16: dlsys defaults / stock Flask (app.run) = $(awk -v a="$DLSYS_DEFAULT_RPS" -v b="$PY_FLASK_STOCK_RPS" 'BEGIN {printf "%.1f", a / b}')x (goal >= 40x) $(ok "$DLSYS_DEFAULT_RPS >= 40 * $PY_FLASK_STOCK_RPS")"
echo "- mlp16: dlsys (${BEST[*]}) / Python http.server = $(awk -v a="$DLSYS_BEST_RPS" -v b="$PY_RPS" 'BEGIN {printf "%.1f", a / b}')x (goal >= 40x) $(ok "$DLSYS_BEST_RPS >= 40 * $PY_RPS"); vs http.server without TCP_NODELAY $(awk -v a="$DLSYS_BEST_RPS" -v b="$PY_NAGLE_RPS" 'BEGIN {printf "%.0f", a / b}')x; defaults / http.server = $(awk -v a="$DLSYS_DEFAULT_RPS" -v b="$PY_RPS" 'BEGIN {printf "%.1f", a / b}')x"
echo "- mlp16: p99 $DLSYS_BEST_P99 ms (goal <= 1 ms) $(ok "$DLSYS_BEST_P99 <= 1"); dlsys / nginx = $(awk -v a="$DLSYS_BEST_RPS" -v b="$NGINX_RPS" 'BEGIN {printf "%.2f", a / b}'); forward_loop batch 1 = $(printf '%.0f' "$LOOP16") rows/s"
echo "- mlp_heavy: ${HBEST[*]}: $HEAVY_BEST rows/s = $(awk -v a="$HEAVY_BEST" -v b="$LOOP_H1" 'BEGIN {printf "%.2f", a / b}')x the better batch-1 loop (goal >= 3) $(ok "$HEAVY_BEST >= 3 * $LOOP_H1"), $(awk -v a="$HEAVY_BEST" -v b="$BEST_FIXED" 'BEGIN {printf "%.2f", a / b}')x best fixed batch $BEST_B (goal >= 0.7) $(ok "$HEAVY_BEST >= 0.7 * $BEST_FIXED"); p99 $HEAVY_P99 ms; defaults: $HEAVY_DEF rows/s"
echo "- candidate defaults (${CAND[*]}): mlp16 $CAND_RPS req/s = $(awk -v a="$CAND_RPS" -v b="$PY_RPS" 'BEGIN {printf "%.1f", a / b}')x Python, p99 $CAND_P99 ms $(ok "$CAND_P99 <= 1"); mlp_heavy $HEAVY_CAND rows/s = $(awk -v a="$HEAVY_CAND" -v b="$LOOP_H1" 'BEGIN {printf "%.2f", a / b}')x batch-1 loop $(ok "$HEAVY_CAND >= 3 * $LOOP_H1"), $(awk -v a="$HEAVY_CAND" -v b="$BEST_FIXED" 'BEGIN {printf "%.2f", a / b}')x best fixed batch $(ok "$HEAVY_CAND >= 0.7 * $BEST_FIXED"), p99 $HEAVY_CAND_P99 ms"
echo "- memory: RSS after $N1M vs after $N10K requests: $(awk -v a="$RSS1M" -v b="$RSS10K" 'BEGIN {printf "%+.1f%%", (a - b) * 100 / b}') (goal within 10%) $(ok "$RSS1M <= 1.1 * $RSS10K && $RSS1M >= 0.9 * $RSS10K")"
echo "- start-up: ready $SU_AFTER ms after the runtime module loaded ($SU_RT ms from exec) $(ok "$SU_AFTER < 250")"
if [ "$SWEEP" = 1 ]; then
  echo
  echo "Sweep, mlp16 (req/s, p50 ms, p99 ms, non-2xx, flags):"
  echo '```'
  grep -v '^final' sweep1.tsv | cut -f2- | sort -t$'\t' -k1 -g -r
  echo '```'
  echo "Sweep, mlp_heavy (rows/s, p50 ms, p99 ms, non-2xx, flags; default http threads unless given):"
  echo '```'
  cut -f2- sweep2.tsv | sort -t$'\t' -k1 -g -r
  echo '```'
fi
echo
echo "Total bench time: $(( $(date +%s) - T0 )) s"
