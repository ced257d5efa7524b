#!/usr/bin/env bash
# Deployment benchmark (`dlsys serve --registry --env` + `dlsys deploy`): what a live rollout
# costs the clients. Prints every command it runs, then a Markdown table (copy it into
# docs/performance.md with the machine and the date by hand).
#   scripts/bench/deploy.sh
# 1. Baseline: wrk (1 thread, 8 connections, batch-1 JSON requests to mlp16) against a server
#    following a registry environment, nothing changing: the physical limit for this machine.
# 2. Churn: the same load while `dlsys deploy` promotes, rolls back, runs a 50% canary,
#    finalizes and does a blue-green switch and rollback, one after the other, each awaited in
#    the server's log (load + verify + warm, switch, drain): failed requests (goal 0) and the
#    p50/p99 latency against the baseline; once back to back (a stress test), once at one change
#    per second.
# 0. Push: `dlsys deploy push` of a PUSH_MIB (512) MiB archive into a registry on the same file
#    system (copy + SHA-256 + verify of the copy + rename, fsynced) against `cp` + `sync` (the
#    physical limit: the bytes have to be written) and `cp` + `dlsys verify` of the copy (what
#    a shared directory of archives costs when done by hand). Median of 3, page cache warm.
# 3. The usual alternative without hot swapping (TorchServe/Triton without a model-control
#    API, or a plain process manager): stop the server and start it on the new version, under
#    the same load: failed requests and the time without service.
# Builds nothing: needs build/bin/dlsys, build/tests/make_model (or $DLSYS, $MAKE_MODEL), wrk,
# jq, /usr/bin/python3. Servers listen on 127.0.0.1 and are stopped by their PIDs.
# BENCH_SECONDS (10): length of each wrk run.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
DLSYS=${DLSYS:-$ROOT/build/bin/dlsys}
MAKE_MODEL=${MAKE_MODEL:-$ROOT/build/tests/make_model}
SECS=${BENCH_SECONDS:-10}
LUA=$ROOT/scripts/bench/serve.lua
for x in "$DLSYS" "$MAKE_MODEL"; do
  [ -x "$x" ] || { echo "missing $x: build first (scripts/build.sh)" >&2; exit 2; }
done
for x in wrk jq /usr/bin/python3; do
  command -v "$x" >/dev/null || { echo "missing $x (scripts/install-deps.sh)" >&2; exit 2; }
done

WORK=$(mktemp -d -t dlsys-deploy-bench.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
cd "$WORK"
say() { echo "+ $*" >&2; }

say "models, keys, archives, registry"
"$MAKE_MODEL" mlp16 m.pt >/dev/null
"$DLSYS" keygen --out k >/dev/null  # k (private), k.pub
for v in 1.0.0 1.1.0 1.2.0; do
  cat >spec-$v.yaml <<YAML
name: mlp16
version: $v
inputs:
  - {name: x, dtype: float32, shape: [-1, 16]}
outputs:
  - {name: y, dtype: float32, shape: [-1, 4]}
examples:
  - name: one
    inputs:
      x: {data: [[1, 2, 3, 4, 5, 6, 7, 8, -1, -2, -3, -4, 0.5, 0.25, 0, 1]]}
YAML
  "$DLSYS" pack m.pt --spec spec-$v.yaml -o m-$v.dlsys --key k >/dev/null
done
PUSH_MIB=${PUSH_MIB:-512}
say "0. push of a ${PUSH_MIB} MiB archive"
"$MAKE_MODEL" big big.pt --weight-bytes $((PUSH_MIB * 1048576)) >/dev/null
cat >spec-big.yaml <<YAML
name: big
version: 1.0.0
YAML
"$DLSYS" pack big.pt --spec spec-big.yaml -o big.dlsys --key k >/dev/null
cat big.dlsys >/dev/null
median3() {  # median wall seconds of 3 runs of "$@" (each after its setup in $SETUP)
  local t=()
  for _ in 1 2 3; do
    eval "$SETUP"
    local a b
    a=$(date +%s%N)
    "$@" >/dev/null
    b=$(date +%s%N)
    t+=("$(( (b - a) / 1000000 ))")
  done
  printf '%s\n' "${t[@]}" | sort -n | sed -n 2p
}
SETUP='rm -rf pushreg copy.dlsys; sync'
PUSH_MS=$(median3 "$DLSYS" deploy --registry pushreg push big.dlsys --trust k.pub)
CP_MS=$(median3 sh -c 'cp big.dlsys copy.dlsys && sync')
CPV_MS=$(median3 sh -c "cp big.dlsys copy.dlsys && sync && '$DLSYS' verify copy.dlsys --trust k.pub")
BIG_BYTES=$(stat -c %s big.dlsys)
rm -rf pushreg copy.dlsys big.pt big.dlsys

REG=$WORK/registry
DEPLOY=("$DLSYS" deploy --registry "$REG")
"${DEPLOY[@]}" push m-1.0.0.dlsys m-1.1.0.dlsys m-1.2.0.dlsys --trust k.pub >/dev/null
"${DEPLOY[@]}" promote mlp16 1.0.0 --env bench >/dev/null
printf '{"inputs":[{"name":"x","datatype":"FP32","shape":[1,16],"data":[1,2,3,4,5,6,7,8,-1,-2,-3,-4,0.5,0.25,0,1]}]}' >body.json
export BODY_FILE=$WORK/body.json

free_port() { /usr/bin/python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }

# Starts `dlsys serve ARGS` on $PORT with a JSON log in $1; waits for its ready line.
start_serve() {
  local log=$1; shift
  "$DLSYS" serve "$@" --port "$PORT" --log-format json --log-file "$log" >"$log.out" 2>"$log.err" &
  SERVE_PID=$!
  PIDS+=("$SERVE_PID")
  for _ in $(seq 1 600); do
    grep -q "ready on" "$log.out" 2>/dev/null && return 0
    kill -0 "$SERVE_PID" 2>/dev/null || { cat "$log.err" >&2; exit 1; }
    sleep 0.05
  done
  echo "serve not ready" >&2; exit 1
}

generation() { jq .generation "$REG/registry.json"; }
# Waits until the server logged serve.deploy for the registry's current generation.
wait_applied() {
  local log=$1 gen out
  gen=$(generation)
  for _ in $(seq 1 1200); do
    out=$(jq -c --argjson g "$gen" 'select(.event == "serve.deploy" and .generation >= $g)' \
      "$log" 2>/dev/null || true)
    [ -n "$out" ] && return 0
    grep -q '"serve.deploy.failed"' "$log" && { echo "deploy failed" >&2; exit 1; }
    sleep 0.05
  done
  echo "generation $gen not applied" >&2; exit 1
}

wrk_run() {  # prints the WRKJSON line
  wrk -t1 -c8 -d"${SECS}s" -s "$LUA" "http://127.0.0.1:$PORT/v2/models/mlp16/infer" |
    sed -n 's/^WRKJSON //p'
}

PORT=$(free_port)
say "1. baseline: dlsys serve --registry --env bench, no change"
start_serve "$WORK/serve.log" --registry "$REG" --env bench --trust k.pub --registry-poll-ms 50 \
  --access-log "$WORK/access.log"
BASE=$(wrk_run)
echo "$BASE" >&2

# Runs wrk while `dlsys deploy` changes the route again and again, each change awaited in the
# log; with a pace of P seconds, one change every P seconds (0: back to back). Sets CHANGES and
# APPLY_MS; prints the WRKJSON line.
churn() {
  local pace=$1 next
  wrk_run >churn.json &
  local wrk_pid=$!
  CHANGES=0
  APPLY_MS=()
  next=$(date +%s%N)
  while kill -0 "$wrk_pid" 2>/dev/null; do
    for args in "promote mlp16 1.1.0 --env bench" "rollback mlp16 --env bench" \
      "promote mlp16 1.2.0 --env bench --strategy canary --weight 50" \
      "finalize mlp16 --env bench" "promote mlp16 1.1.0 --env bench --strategy blue-green" \
      "rollback mlp16 --env bench" "rollback mlp16 --env bench"; do
      kill -0 "$wrk_pid" 2>/dev/null || break
      if [ "$pace" != 0 ]; then  # pacing the changes is the workload, not synchronisation
        local now
        now=$(date +%s%N)
        [ "$now" -ge "$next" ] || sleep "$(awk -v d=$((next - now)) 'BEGIN { print d / 1e9 }')"
        next=$((next + pace * 1000000000))
      fi
      kill -0 "$wrk_pid" 2>/dev/null || break
      local t0
      t0=$(date +%s%N)
      # shellcheck disable=SC2086
      "${DEPLOY[@]}" $args >/dev/null 2>&1 || true
      wait_applied "$WORK/serve.log"
      APPLY_MS+=($(( ($(date +%s%N) - t0) / 1000000 )))
      CHANGES=$((CHANGES + 1))
    done
  done
  wait "$wrk_pid"
  cat churn.json
}

say "2a. churn: promote / rollback / canary / finalize / blue-green / rollback, back to back, under load"
churn 0 >fast.json
CHURN=$(cat fast.json)
echo "$CHURN" >&2
sorted=$(printf '%s\n' "${APPLY_MS[@]}" | sort -n)
med=$(echo "$sorted" | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
max=$(echo "$sorted" | tail -1)
FAST_CHANGES=$CHANGES

say "2b. the same changes, one per second, under load"
churn 1 >paced.json
PACED=$(cat paced.json)
echo "$PACED" >&2
PACED_CHANGES=$CHANGES
kill "$SERVE_PID"; wait "$SERVE_PID" 2>/dev/null || true

say "3. restart-based swap under load (the alternative without hot swapping)"
PORT=$(free_port)
start_serve "$WORK/r1.log" m-1.0.0.dlsys --trust k.pub --access-log "$WORK/access.log"
wrk_run >restart.json &
WRK_PID=$!
sleep 1  # let the load settle before the swap: part of the measurement, not synchronisation
t0=$(date +%s%N)
kill "$SERVE_PID"; wait "$SERVE_PID" 2>/dev/null || true
start_serve "$WORK/r2.log" m-1.1.0.dlsys --trust k.pub --access-log "$WORK/access.log"
DOWN_MS=$(( ($(date +%s%N) - t0) / 1000000 ))
wait "$WRK_PID"
RESTART=$(cat restart.json)
echo "$RESTART" >&2

row() {  # name json
  echo "$2" | jq -r --arg n "$1" \
    '"| \($n) | \(.requests) | \(.rps|floor) | \(.p50_ms) | \(.p99_ms) | \(.max_ms) | \(.non2xx + .errors) |"'
}
echo
echo "| run (wrk -t1 -c8, ${SECS}s, mlp16 batch 1) | requests | req/s | p50 ms | p99 ms | max ms | failed |"
echo "|---|---|---|---|---|---|---|"
row "no change (baseline)" "$BASE"
row "$FAST_CHANGES live changes back to back (dlsys deploy)" "$CHURN"
row "$PACED_CHANGES live changes, one per second" "$PACED"
row "one stop + start of the server" "$RESTART"
echo
echo "live change, deploy command to serve.deploy logged: median ${med} ms, max ${max} ms ($FAST_CHANGES changes back to back)"
echo "stop + start: ${DOWN_MS} ms from stop to ready"
echo
echo "| push of a $BIG_BYTES-byte archive (median of 3) | ms |"
echo "|---|---|"
echo "| cp + sync (the bytes written once: the limit) | $CP_MS |"
echo "| dlsys deploy push (copy + SHA-256 + verify the copy + fsync + rename) | $PUSH_MS |"
echo "| cp + sync + dlsys verify of the copy (by hand) | $CPV_MS |"
