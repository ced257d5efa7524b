#!/usr/bin/env bash
# Hostile-input benchmark (issue 7): what verify costs on archives built to hurt it, against
# the physical limit (reading the bytes) and the usual alternatives (GNU tar, bsdtar, Python's
# tarfile) on the same files; and verify's throughput on a 1 GiB model for each compression
# against openssl / zstd / gzip pipelines. Prints a Markdown report (docs/performance.md).
#   scripts/bench/hostile.sh [WEIGHT_BYTES]     (default 1073741824)
# Needs: a build in build/ (scripts/build.sh), GNU time (/usr/bin/time), bsdtar, zstd, openssl.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
DLSYS=$ROOT/build/bin/dlsys
MAKE_MODEL=$ROOT/build/tests/make_model
BYTES=${1:-1073741824}
RUNS=${RUNS:-3}
WORK=${BENCH_DIR:-$ROOT/out/bench-hostile}
mkdir -p "$WORK" && cd "$WORK"
[ -x "$DLSYS" ] && [ -x "$MAKE_MODEL" ] || { echo "build first: scripts/build.sh" >&2; exit 2; }

# --- fixtures --------------------------------------------------------------------------------
[ -f small.pt ] || "$MAKE_MODEL" mlp small.pt >/dev/null
[ -f k.key ] || "$DLSYS" keygen --out k.key >/dev/null
"$DLSYS" pack small.pt --name small --version 1.0.0 --key k.key -o small.dlsys --force >/dev/null
[ -f big.pt ] && [ "$(stat -c %s big.pt)" -ge "$BYTES" ] || "$MAKE_MODEL" big big.pt --weight-bytes "$BYTES" >/dev/null
for c in none gzip zstd; do
  [ -f "big-$c.dlsys" ] || "$DLSYS" pack big.pt --name big --version 1.0.0 --compression "$c" \
    -o "big-$c.dlsys" >/dev/null
done
/usr/bin/python3 - "$ROOT/tests/cli" <<'PY'
import base64, json, subprocess, sys, tarfile
sys.path.insert(0, sys.argv[1])
import hostile_tar as H
t = tarfile.open("small.dlsys")
ms = t.getmembers()
entries = [(m.name, t.extractfile(m).read()) for m in ms]
mtime = ms[0].mtime
head = H.canonical_entries(entries, mtime)
# 1. 10,000 entries with 1,000-byte names in deep directories, gzip (138 KB reached 1.2-4.9 GB)
parts = []
for i in range(10000):
    name = "zz/%05d/" % i
    name += "d/" * ((1000 - len(name) - 1) // 2)
    name += "f" * (1000 - len(name))
    parts.append(H.entry(name, b"", mtime))
open("many-names.dlsys", "wb").write(H.gzip_member(H.archive(head + parts), level=9))
# 2. a zstd bomb: one entry of 1 GiB of zeros
tar = H.archive(head[:1] + [H.entry("zz-bomb.bin", bytes(1 << 30), mtime)])
open("bomb.dlsys", "wb").write(subprocess.run(["zstd", "-19", "--check", "-q", "-c"], input=tar,
                                              capture_output=True, check=True).stdout)
# 3. a manifest of 80,000 nested arrays
deep = b"[" * 80000 + b"]" * 80000
open("deep-json.dlsys", "wb").write(H.archive([H.entry("manifest.json", deep, mtime)]))
# 4. 300,000 keyless signatures in the envelope (~45 MB)
env = json.loads(dict(entries)["signature.json"])
env["signatures"] = [{"keyid": "", "sig": env["signatures"][0]["sig"]}] * 300000
sig = json.dumps(env, separators=(",", ":")).encode()
open("sigs.dlsys", "wb").write(H.archive([H.entry("manifest.json", dict(entries)["manifest.json"], mtime),
                                          H.entry("signature.json", sig, mtime)]))
PY

# --- measuring -------------------------------------------------------------------------------
# "seconds max_rss_MiB exit" of one run (GNU time), with a 120 s / 2 GiB guard.
measure() {
  local tf; tf=$(mktemp)
  /usr/bin/time -o "$tf" -f "%e %M %x" timeout 120 prlimit --as=$((2 << 30)) "$@" >/dev/null 2>&1 || true
  awk 'END {printf "%.2f s, %.0f MiB, exit %s", $1, $2/1024, $3}' "$tf"
  rm -f "$tf"
}
median() {
  local -a t=()
  for _ in $(seq "$RUNS"); do
    local s=$(date +%s.%N); "$@" >/dev/null 2>&1 || true; local e=$(date +%s.%N)
    t+=("$(echo "$e - $s" | bc -l)")
  done
  printf '%s\n' "${t[@]}" | sort -g | awk '{a[NR]=$1} END {printf "%.3f", a[int((NR+1)/2)]}'
}
ratio() { echo "scale=2; $1 / $2" | bc -l; }
pytar='import sys, tarfile
with tarfile.open(sys.argv[1]) as t:
    for m in t: pass'

cpu=$(lscpu | sed -n 's/^Model name: *//p' | head -1)
echo "### Hostile inputs — $(date -u +%Y-%m-%d), $(nproc) cores, ${cpu}"
echo
echo "Each cell: wall time, peak RSS, exit code (GNU time; 120 s and 2 GiB address-space guard)."
echo
echo "| input (size) | \`dlsys verify\` | GNU \`tar -tf\` | \`bsdtar -tf\` | Python \`tarfile\` |"
echo "|---|---|---|---|---|"
for f in many-names bomb deep-json sigs; do
  size=$(stat -c %s "$f.dlsys")
  echo "| $f ($(numfmt --to=iec "$size")) | $(measure "$DLSYS" verify "$f.dlsys" --trust k.key.pub) | $(measure tar -tf "$f.dlsys") | $(measure bsdtar -tf "$f.dlsys") | $(measure /usr/bin/python3 -c "$pytar" "$f.dlsys") |"
done
echo
cat big-none.dlsys big-gzip.dlsys big-zstd.dlsys > /dev/null
t_openssl=$(median openssl dgst -sha256 big-none.dlsys)
t_none=$(median "$DLSYS" verify big-none.dlsys --allow-unsigned)
t_none1=$(median "$DLSYS" verify big-none.dlsys --allow-unsigned --threads 1)
t_gnutar=$(median tar -xOf big-none.dlsys model.pt)
t_gz=$(median "$DLSYS" verify big-gzip.dlsys --allow-unsigned)
t_gzpipe=$(median sh -c "gzip -dc big-gzip.dlsys | openssl dgst -sha256")
t_zst=$(median "$DLSYS" verify big-zstd.dlsys --allow-unsigned)
t_zstpipe=$(median sh -c "zstd -dcq big-zstd.dlsys | openssl dgst -sha256")
rss_none=$(measure "$DLSYS" verify big-none.dlsys --allow-unsigned)
rss_zst=$(measure "$DLSYS" verify big-zstd.dlsys --allow-unsigned)
echo "Verify throughput, $(stat -c %s big.pt) bytes of random float32 weights, page cache warm, median of $RUNS runs:"
echo
echo "| measurement | time | compared with | ratio |"
echo "|---|---|---|---|"
echo "| \`dlsys verify\` none (all cores) | ${t_none} s | \`openssl dgst -sha256\` ${t_openssl} s | $(ratio "$t_none" "$t_openssl") |"
echo "| \`dlsys verify --threads 1\` none | ${t_none1} s | \`openssl dgst -sha256\` ${t_openssl} s | $(ratio "$t_none1" "$t_openssl") |"
echo "| \`dlsys verify\` none | ${t_none} s | GNU \`tar -xOf A model.pt\` (no hashing) ${t_gnutar} s | $(ratio "$t_none" "$t_gnutar") |"
echo "| \`dlsys verify\` gzip | ${t_gz} s | \`gzip -dc \\| openssl dgst -sha256\` ${t_gzpipe} s | $(ratio "$t_gz" "$t_gzpipe") |"
echo "| \`dlsys verify\` zstd | ${t_zst} s | \`zstd -dc \\| openssl dgst -sha256\` ${t_zstpipe} s | $(ratio "$t_zst" "$t_zstpipe") |"
echo
echo "Peak RSS of \`dlsys verify\` on the 1 GiB archives: none ${rss_none}; zstd ${rss_zst}."
