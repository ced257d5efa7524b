#!/usr/bin/env bash
# OCI registry benchmark (`dlsys deploy push/pull oci://`, remote `inspect`): a PUSH_MIB (512) MiB
# archive pushed to and pulled from a real registry on loopback (Debian's docker-registry, a temp
# storage directory), against `skopeo copy` of the same artifact in the same run, and the time
# of a remote inspect (one manifest and one config request) against a local one. Prints every
# step, then a Markdown table (copy it into docs/performance.md with the machine and date).
#   scripts/bench/oci.sh
# Push: dlsys deploy push (hash, HEAD, upload, manifest) vs skopeo copy oci:LAYOUT -> registry.
# Pull: dlsys deploy pull (download with digest check, verify the signature and every digest,
# rename) vs skopeo copy registry -> oci:LAYOUT (download with digest check, write).
# Each push goes to a fresh registry (nothing to mount or skip); median of RUNS (3).
# Builds nothing: needs build/bin/dlsys and build/tests/make_model (or $DLSYS, $MAKE_MODEL),
# docker-registry, skopeo, hyperfine, /usr/bin/python3.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
DLSYS=${DLSYS:-$ROOT/build/bin/dlsys}
MAKE_MODEL=${MAKE_MODEL:-$ROOT/build/tests/make_model}
PUSH_MIB=${PUSH_MIB:-512}
RUNS=${RUNS:-3}
for x in "$DLSYS" "$MAKE_MODEL"; do
  [ -x "$x" ] || { echo "missing $x: build first (scripts/build.sh)" >&2; exit 2; }
done
for x in docker-registry skopeo hyperfine /usr/bin/python3; do
  command -v "$x" >/dev/null || { echo "missing $x (scripts/install-deps.sh)" >&2; exit 2; }
done

WORK=$(mktemp -d -t dlsys-oci-bench.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
cd "$WORK"
# skopeo with a fresh HOME per run: its blob-info cache (HOME/.local/share/containers) would
# otherwise remember where a blob was seen and mount it instead of uploading it.
skopeo_fresh() {
  local home
  home=$(mktemp -d "$WORK/skopeo-home.XXXXXX")
  mkdir -p "$home/.config/containers"
  printf '{"default":[{"type":"insecureAcceptAnything"}]}\n' >"$home/.config/containers/policy.json"
  HOME=$home skopeo "$@"
}
say() { echo "+ $*" >&2; }

# Starts a docker-registry with its own empty storage STORE; sets REG_PID and R (host:port).
start_registry() {
  local store=$1 port
  port=$(/usr/bin/python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
  cat >"$store.yml" <<YAML
version: 0.1
storage:
  filesystem:
    rootdirectory: $store
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$port
log:
  level: error
YAML
  docker-registry serve "$store.yml" >"$store.log" 2>&1 &
  REG_PID=$!
  PIDS+=("$REG_PID")
  for _ in $(seq 1 200); do
    /usr/bin/python3 -c "import urllib.request as u; u.urlopen('http://127.0.0.1:$port/v2/')" 2>/dev/null && break
    sleep 0.05
  done
  R=127.0.0.1:$port
}
stop_registry() { kill "$REG_PID"; wait "$REG_PID" 2>/dev/null || true; }

start_registry "$WORK/seed-storage"
SEED=$R

say "a ${PUSH_MIB} MiB archive"
"$MAKE_MODEL" big big.pt --weight-bytes $((PUSH_MIB * 1048576)) >/dev/null
printf 'name: big\nversion: 1.0.0\n' >spec.yaml
"$DLSYS" keygen --out k >/dev/null
"$DLSYS" pack big.pt --spec spec.yaml -o big.dlsys --key k >/dev/null
rm big.pt
BYTES=$(stat -c %s big.dlsys)
OCI=(--plain-http)

median() { sort -n | sed -n "$(( (RUNS + 1) / 2 ))p"; }
ms() { local a b; a=$(date +%s%N); "$@" >/dev/null 2>&1; b=$(date +%s%N); echo $(( (b - a) / 1000000 )); }

say "push: dlsys deploy push vs skopeo copy oci-layout -> registry (each into a fresh registry)"
"$DLSYS" deploy push big.dlsys "oci://$SEED/seed/big:1.0.0" --trust k.pub "${OCI[@]}" >/dev/null
skopeo_fresh copy --src-tls-verify=false "docker://$SEED/seed/big:1.0.0" "oci:$WORK/layout:1.0.0" >/dev/null
DPUSH=(); SPUSH=()
for i in $(seq 1 "$RUNS"); do
  # A registry of its own per push: nothing there to mount from or skip (skopeo remembers, in
  # /var/lib/containers/cache for root, where it saw a blob, and would mount it).
  start_registry "$WORK/push-d$i"
  DPUSH+=("$(ms "$DLSYS" deploy push big.dlsys "oci://$R/team/big:1.0.0" --trust k.pub "${OCI[@]}")")
  stop_registry; rm -rf "$WORK/push-d$i"
  start_registry "$WORK/push-s$i"
  SPUSH+=("$(ms skopeo_fresh copy --dest-tls-verify=false "oci:$WORK/layout:1.0.0" "docker://$R/team/big:1.0.0")")
  stop_registry; rm -rf "$WORK/push-s$i"
done

say "pull: dlsys deploy pull (verifies) vs skopeo copy registry -> oci-layout"
DPULL=(); SPULL=()
for i in $(seq 1 "$RUNS"); do
  rm -f pulled.dlsys; rm -rf "pull-layout-$i"; sync
  DPULL+=("$(ms "$DLSYS" deploy pull "oci://$SEED/seed/big:1.0.0" -o pulled.dlsys --trust k.pub "${OCI[@]}")")
  cmp -s pulled.dlsys big.dlsys || { echo "pulled archive differs" >&2; exit 1; }
  SPULL+=("$(ms skopeo_fresh copy --src-tls-verify=false "docker://$SEED/seed/big:1.0.0" "oci:$WORK/pull-layout-$i:1.0.0")")
done

say "inspect: remote (oci://) vs local"
hyperfine -N -w 3 -r 30 --export-json inspect.json \
  "$DLSYS inspect oci://$SEED/seed/big:1.0.0 --plain-http" "$DLSYS inspect big.dlsys" >&2
INSPECT_REMOTE=$(/usr/bin/python3 -c 'import json;r=json.load(open("inspect.json"))["results"];print("%.1f ms ± %.1f" % (r[0]["median"]*1e3, r[0]["stddev"]*1e3))')
INSPECT_LOCAL=$(/usr/bin/python3 -c 'import json;r=json.load(open("inspect.json"))["results"];print("%.1f ms ± %.1f" % (r[1]["median"]*1e3, r[1]["stddev"]*1e3))')
REQUESTS=$("$DLSYS" inspect "oci://$SEED/seed/big:1.0.0" --plain-http --log-level info --log-format json 2>&1 >/dev/null |
  /usr/bin/python3 -c 'import json,sys
for line in sys.stdin:
    r = json.loads(line)
    if r.get("event") == "oci.inspect": print(r["requests"])')

dp=$(printf '%s\n' "${DPUSH[@]}" | median); sp=$(printf '%s\n' "${SPUSH[@]}" | median)
dl=$(printf '%s\n' "${DPULL[@]}" | median); sl=$(printf '%s\n' "${SPULL[@]}" | median)
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
echo
echo "| $BYTES-byte archive, loopback registry (median of $RUNS) | dlsys ms | skopeo copy ms | ratio |"
echo "|---|---|---|---|"
echo "| push | $dp | $sp | $(ratio "$dp" "$sp") |"
echo "| pull (dlsys also verifies signature and digests) | $dl | $sl | $(ratio "$dl" "$sl") |"
echo
echo "remote inspect: $INSPECT_REMOTE ($REQUESTS requests); local inspect: $INSPECT_LOCAL"
echo "runs: dlsys push ${DPUSH[*]}; skopeo push ${SPUSH[*]}; dlsys pull ${DPULL[*]}; skopeo pull ${SPULL[*]}"
