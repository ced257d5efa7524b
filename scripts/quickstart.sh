#!/usr/bin/env bash
# From a fresh Debian machine to a signed, verified model archive:
# installs dependencies, builds dlsys, exports an example model, then
# keygen -> pack -> inspect -> verify -> probe -> verify --target --smoke
# (and shows a tampered and a non-canonical archive failing).
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
echo; echo "quickstart done: artefacts in $WORK"
