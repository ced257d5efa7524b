#!/usr/bin/env bash
# From a fresh Debian machine to a signed, verified model archive:
# installs dependencies, builds dlsys, exports an example model, then
# keygen -> pack -> inspect -> verify -> probe -> verify --target --smoke
# (and shows a tampered and a non-canonical archive failing), then serves the archive
# through a deploy registry (push, promote; KServe v2 on 127.0.0.1), queries it with curl,
# reads its Prometheus metrics, rolls a second version out as a 30% canary live, and
# summarizes the JSON log with dlsys monitor (per version, and canary against stable).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh
DLSYS=$PWD/build/bin/dlsys
WORK=${WORK:-$PWD/out/quickstart}
rm -rf "$WORK" && mkdir -p "$WORK" && cd "$WORK"
step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; "$@"; }

/usr/bin/python3 "$OLDPWD/scripts/make_example_model.py" .
step "$DLSYS" keygen --out release.key
step "$DLSYS" pack best_model_final_v7.pt --spec dlsys.yaml --key release.key -o iris-mlp-1.0.0.dlsys
step "$DLSYS" inspect iris-mlp-1.0.0.dlsys
step "$DLSYS" verify iris-mlp-1.0.0.dlsys --trust release.key.pub
step tar -tvf iris-mlp-1.0.0.dlsys

echo; echo "# will it run here? describe this machine, check the model against it, smoke-test it"
step "$DLSYS" probe -o this-machine.json
step "$DLSYS" verify iris-mlp-1.0.0.dlsys --trust release.key.pub --target this-machine.json --smoke

echo; echo "# flip one byte of the model inside the archive: verify must fail (exit 5)"
cp iris-mlp-1.0.0.dlsys tampered.dlsys
offset=$(/usr/bin/python3 -c "import tarfile; print(tarfile.open('tampered.dlsys').getmember('model.pt').offset_data + 100)")
printf '\xff' | dd of=tampered.dlsys bs=1 seek="$offset" conv=notrunc status=none
set +e
"$DLSYS" verify tampered.dlsys --trust release.key.pub
echo "exit code: $?"
set -e
echo; echo "# append bytes after the end-of-archive marker: verify accepts only the canonical form (exit 4)"
cp iris-mlp-1.0.0.dlsys appended.dlsys
printf 'extra' >> appended.dlsys
set +e
"$DLSYS" verify appended.dlsys --trust release.key.pub
echo "exit code: $?"
set -e
echo; echo "# store the archive in a deploy registry (verified, content-addressed) and promote it"
export DLSYS_REGISTRY=$WORK/registry
step "$DLSYS" deploy push iris-mlp-1.0.0.dlsys --trust release.key.pub
step "$DLSYS" deploy promote iris-mlp 1.0.0 --env dev --reason "first release"
echo; echo "# serve what 'dev' routes to on 127.0.0.1 (a free port), ask it for a prediction, read its metrics"
"$DLSYS" serve --env dev --trust release.key.pub --port 0 --registry-poll-ms 100 \
  --log-format json --log-file serve.log > serve.out 2> serve.err &
SERVER=$!
trap 'kill "$SERVER" 2>/dev/null || true' EXIT
for _ in $(seq 600); do   # the ready line appears once the model is verified, loaded and warm
  grep -q "ready on" serve.out && break
  kill -0 "$SERVER" 2>/dev/null || { cat serve.err serve.log; exit 1; }
  sleep 0.1
done
printf '\n\033[1m$ dlsys serve --env dev --trust release.key.pub --port 0 --log-format json --log-file serve.log &\033[0m\n'
cat serve.out
URL=$(sed -n 's/^dlsys serve: ready on \(http[^ ]*\).*/\1/p' serve.out)
step curl -s "$URL/v2/models/iris-mlp"
echo
step curl -s -D - "$URL/v2/models/iris-mlp/infer" -d '{"id":"q1","inputs":[{"name":"x","datatype":"FP32","shape":[2,4],"data":[[5.1,3.5,1.4,0.2],[6.7,3.0,5.2,2.3]]}]}'
echo
printf '\n\033[1m$ curl -s %s/metrics | grep ...\033[0m\n' "$URL"
curl -s "$URL/metrics" | grep -E '^dlsys_inference_(request_success_total|request_failure_total.*bad_input|count_total|exec_count_total|request_duration_seconds_(count|sum))'

echo; echo "# a new version as a 30% canary: the server loads, verifies and warms it, then switches, live"
sed 's/^version: 1.0.0$/version: 1.1.0/' dlsys.yaml > dlsys-1.1.0.yaml
step "$DLSYS" pack best_model_final_v7.pt --spec dlsys-1.1.0.yaml --key release.key -o iris-mlp-1.1.0.dlsys
step "$DLSYS" deploy push iris-mlp-1.1.0.dlsys --trust release.key.pub
step "$DLSYS" deploy promote iris-mlp 1.1.0 --env dev --strategy canary --weight 30 --reason "try 1.1.0"
generation=$(/usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["generation"])' "$DLSYS_REGISTRY/registry.json")
for _ in $(seq 600); do   # wait until the server logged that it serves this generation
  /usr/bin/python3 - "$generation" <<'PY' && break
import json, sys
want = int(sys.argv[1])
for line in open("serve.log"):
    try:
        r = json.loads(line)
    except ValueError:
        continue
    if r.get("event") == "serve.deploy" and r.get("generation", 0) >= want:
        sys.exit(0)
sys.exit(1)
PY
  kill -0 "$SERVER" 2>/dev/null || { cat serve.err serve.log; exit 1; }
  sleep 0.1
done
step "$DLSYS" deploy status
for i in $(seq 40); do   # a little traffic for the monitor: 40 predictions, one bad request
  curl -s -o /dev/null "$URL/v2/models/iris-mlp/infer" -d '{"inputs":[{"name":"x","datatype":"FP32","shape":[1,4],"data":[5.1,3.5,1.4,0.2]}]}'
done
curl -s -o /dev/null "$URL/v2/models/iris-mlp/infer" -d '{"inputs":[{"name":"x","datatype":"FP32","shape":[1,3],"data":[1,2,3]}]}'
kill -TERM "$SERVER" && wait "$SERVER"
echo; echo "# its log: lifecycle events and one JSON access record per request (docs/logging.md)"
head -n 4 serve.log
echo "... ($(wc -l < serve.log) lines)"
echo; echo "# summarize the log per model version: rate, errors, latency quantiles, and an HTML report"
echo "# (on a terminal without --once, dlsys monitor is a live view; docs/monitoring.md)"
step "$DLSYS" monitor serve.log --once --report monitor.html
echo "report: $WORK/monitor.html (self-contained: open it in any browser)"
echo; echo "# is the canary worse than stable? (error rate and latency, with the requests still needed)"
step "$DLSYS" monitor serve.log --once --where url.path=/v2/models/iris-mlp/infer --by variant --compare variant=stable,canary
echo; echo "# the audit history of every change (docs/deploy.md: finalize, rollback, A/B, shadow, blue-green)"
step "$DLSYS" deploy history
echo; echo "quickstart done: artefacts in $WORK"
