#!/usr/bin/python3
"""Regenerates the fuzzing seed corpora in tests/fuzz/corpus/<target>/.

Needs a full build with the runtime (the dlsys binary and the make_model fixture) and Debian's
torch for scripts/make_example_model.py:

    /usr/bin/python3 tests/fuzz/make_corpus.py [--build build] [--out tests/fuzz/corpus]

Archives are packed with SOURCE_DATE_EPOCH set, so they are reproducible; the one manifest
packed without it (to carry requirements.measured) and the probed profiles depend on the
machine. Every seed stays below 64 KiB. Existing seeds are replaced; files in
tests/fuzz/regressions/ are left alone.
"""
import argparse
import copy
import gzip
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MAX_SEED_BYTES = 64 * 1024
EPOCH = "1767225600"  # 2026-01-01T00:00:00Z


def run(*cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, **kw).stdout


def canonical(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def write(out_dir, name, data):
    if isinstance(data, str):
        data = data.encode()
    if len(data) >= MAX_SEED_BYTES:
        sys.exit(f"make_corpus: seed {name} is {len(data)} bytes (limit {MAX_SEED_BYTES})")
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, name), "wb") as f:
        f.write(data)


def member(archive_path, name):
    with open(archive_path, "rb") as f:
        raw = f.read()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    elif raw[:4] == b"\x28\xb5\x2f\xfd":
        raw = run("zstd", "-dc", input=raw)
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        return tar.extractfile(name).read()


def canonical_tar(entries, mtime):
    """A canonical dlsys tar stream (docs/archive-format.md) of (path, bytes) entries."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path, data in entries:
            info = tarfile.TarInfo(path)
            info.size, info.mtime, info.mode = len(data), mtime, 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(data))
    raw = buf.getvalue()
    # tarfile pads to a 10240-byte record; a dlsys archive ends right after the two zero blocks.
    end = len(raw)
    while end >= 512 and raw[end - 512:end] == bytes(512):
        end -= 512
    return raw[:end] + bytes(1024)


def yaml_blocks(doc):
    with open(os.path.join(ROOT, doc)) as f:
        return re.findall(r"```yaml\n(.*?)```", f.read(), re.S)


def archives(build, work, out):
    dlsys = os.path.join(build, "bin", "dlsys")
    env = dict(os.environ, SOURCE_DATE_EPOCH=EPOCH)
    run(os.path.join(build, "tests", "make_model"), "mlp", "m.pt", cwd=work)
    run("/usr/bin/python3", os.path.join(ROOT, "scripts", "make_example_model.py"), "ex", cwd=work)
    with open(os.path.join(work, "labels.txt"), "w") as f:
        f.write("a\nb\n")
    run(dlsys, "keygen", "--out", "k.key", cwd=work)
    long_path = "files/" + "d" * 60 + "/" + "e" * 60 + ".txt"  # > 100 bytes: a pax header
    packs = {
        "mlp-none": ["m.pt", "--name", "mlp", "--version", "1.0.0"],
        "mlp-gzip": ["m.pt", "--name", "mlp", "--version", "1.0.0", "--compression", "gzip"],
        "mlp-zstd": ["m.pt", "--name", "mlp", "--version", "1.0.0", "--compression", "zstd"],
        "mlp-signed": ["m.pt", "--name", "mlp", "--version", "1.0.0", "--key", "k.key",
                       "--file", "labels.txt"],
        "mlp-longpath": ["m.pt", "--name", "mlp", "--version", "1.0.0-rc.1+b7",
                         "--file", f"labels.txt={long_path}"],
        "iris-gzip": ["ex/best_model_final_v7.pt", "--spec", "ex/dlsys.yaml",
                      "--compression", "gzip"],
        "iris-zstd": ["ex/best_model_final_v7.pt", "--spec", "ex/dlsys.yaml",
                      "--compression", "zstd"],
        "iris-signed": ["ex/best_model_final_v7.pt", "--spec", "ex/dlsys.yaml", "--key", "k.key"],
    }
    paths = {}
    for name, args in packs.items():
        path = os.path.join(work, name + ".dlsys")
        run(dlsys, "pack", *args, "-o", path, "-q", cwd=work, env=env)
        with open(path, "rb") as f:
            write(os.path.join(out, "archive"), name + ".dlsys", f.read())
        paths[name] = path

    # Hand-made canonical containers: the smallest archive, and one with only a manifest.
    manifest = member(paths["mlp-none"], "manifest.json")
    model = member(paths["mlp-none"], "model.pt")
    mtime = int(EPOCH)
    write(os.path.join(out, "archive"), "tarfile-manifest-only.tar",
          canonical_tar([("manifest.json", manifest)], mtime))
    write(os.path.join(out, "archive"), "tarfile-mlp.tar",
          canonical_tar([("manifest.json", manifest), ("model.pt", model)], mtime))
    write(os.path.join(out, "archive"), "empty-end-marker.tar", bytes(1024))

    # A pack without SOURCE_DATE_EPOCH records requirements.measured (machine-dependent).
    measured = os.path.join(work, "measured.dlsys")
    run(dlsys, "pack", "ex/best_model_final_v7.pt", "--spec", "ex/dlsys.yaml", "-o", measured,
        "-q", cwd=work)
    paths["iris-measured"] = measured
    return paths


def manifests(paths, out):
    d = os.path.join(out, "manifest")
    seen = {}
    for name in ("mlp-none", "mlp-signed", "mlp-longpath", "iris-signed", "iris-measured"):
        text = member(paths[name], "manifest.json")
        seen.setdefault(text, name)
    for text, name in seen.items():
        write(d, name + ".json", text)
    base = json.loads(member(paths["iris-signed"], "manifest.json"))

    sharded = copy.deepcopy(base)  # a file above 64 MiB: shard digests instead of sha256
    size = 2 * 67108864 + 1
    sharded["files"].append({"mode": 420, "path": "files/zz-big.bin", "shard_bytes": 67108864,
                             "shards": [hashlib.sha256(bytes([i])).hexdigest() for i in range(3)],
                             "size": size})
    sharded["files"].sort(key=lambda f: f["path"].encode())
    write(d, "variant-sharded.json", canonical(sharded))

    text = copy.deepcopy(base)  # escapes and non-ASCII in free text
    text["description"] = "caf\u00e9 \U0001F600 \"quoted\" back\\slash\ttab\u0001"
    text["lineage"]["note"] = "line\nbreak"
    text["metrics"] = {"accuracy": 0.5, "big": 18446744073709551615, "neg": -9007199254740993,
                       "tiny": 5e-324, "nested": {"list": [1, 2.5, True, None, "s"]}}
    write(d, "variant-text.json", canonical(text))

    dyn = copy.deepcopy(base)  # dynamic shapes, several dtypes, no examples
    dyn["inputs"] = [{"dtype": t, "name": f"in{i}", "shape": [-1, i + 1, -1]}
                     for i, t in enumerate(["float64", "float16", "bfloat16", "int8", "uint8",
                                            "int16", "int32", "int64", "bool"])]
    dyn["examples"] = []
    dyn["files"] = [f for f in dyn["files"] if not f["path"].startswith("examples/")]
    dyn["requirements"] = {"device": "cuda", "min_gpu_compute_capability": "8.0",
                           "min_gpu_memory_bytes": 42949672960, "min_memory_bytes": 2147483648,
                           "cpu_features": ["avx2", "fma"], "latency_budget_ms": 50,
                           "max_batch_size": 32}
    write(d, "variant-dynamic.json", canonical(dyn))

    minimal = {k: base[k] for k in ("created", "entry_point", "files", "format_version",
                                    "framework", "model", "name", "tool", "version")}
    minimal["files"] = [f for f in base["files"] if f["path"] == "model.pt"]
    write(d, "variant-minimal.json", canonical(minimal))
    write(d, "pretty.json", json.dumps(base, indent=2))  # not canonical: still parsed


def specs(work, out):
    d = os.path.join(out, "spec")
    with open(os.path.join(work, "ex", "dlsys.yaml")) as f:
        write(d, "example-model.yaml", f.read())
    for i, block in enumerate(yaml_blocks("docs/spec-format.md")):
        write(d, f"docs-{i}.yaml", block)
    write(d, "minimal.yaml", "name: m\nversion: 0.0.1\n")
    write(d, "json-form.yaml", json.dumps({
        "name": "j", "version": "2.0.0-alpha.1", "compression": "zstd",
        "inputs": [{"name": "ids", "dtype": "INT64", "shape": [-1, 8]}],
        "examples": [{"name": "e", "inputs": {"ids": {"data": [[1, 2, 3, 4, 5, 6, 7, 8]]}}}]}))
    write(d, "file-inputs.yaml", """\
name: f
version: 1.2.3
inputs:
  - {name: x, dtype: float16, shape: [-1, 2]}
  - {name: m, dtype: bool, shape: [2]}
examples:
  - name: e1
    inputs:
      x: {dtype: float16, shape: [1, 2], file: x.bin}
      m: {data: [true, false]}
files:
  - labels.txt
  - {path: /nonexistent-abs/vocab.json, as: files/vocab.json}
""")
    write(d, "requirements.yaml", """\
name: gpu-model
version: "1.0"
requirements:
  device: cuda
  min_gpu_compute_capability: "8.6"
  min_gpu_memory: 40 GiB
  min_memory_bytes: 2147483648
  cpu_features: [avx2, fma]
  latency_budget_ms: 12.5
  max_batch_size: 64
entry_point: {method: predict}
hyperparameters: {a: ~, b: null, c: .inf, d: -.nan, e: 0x1F, f: 0o17, g: 1e3, h: [1, [2, [3]]]}
training: &anchor {x: 1}
metrics: *anchor
dependencies: {"quoted key": 'single', multi: |
    line one
    line two
  }
""")


def profiles(build, out):
    d = os.path.join(out, "profile")
    for i, block in enumerate(yaml_blocks("docs/target-profile.md")):
        write(d, f"docs-{i}.yaml", block)
    dlsys = os.path.join(build, "bin", "dlsys")
    write(d, "probe-no-runtime.json", run(dlsys, "probe", "--no-runtime", "--json"))
    write(d, "probe-no-runtime.yaml", run(dlsys, "probe", "--no-runtime"))
    probed = yaml.safe_load(run(dlsys, "probe"))
    if probed.get("runtime", {}).get("operators"):
        probed["runtime"]["operators"] = probed["runtime"]["operators"][:40]
    probed["cpu"]["features"] = probed["cpu"].get("features", [])[:20]
    write(d, "probe-runtime-trimmed.yaml", yaml.safe_dump(probed, sort_keys=False))
    write(d, "sizes.yaml", """\
memory: {total: 1.5GB, available: 512MiB}
gpus:
  - {name: a, memory: 1 TiB, compute_capability: 8.6}
  - {name: b, memory: 1024, compute_capability: 8, driver_version: "535.104", cuda_version: "12.2"}
  - {name: c, memory: 3 kB}
cpu: {cores: 1, features: [B, a, a, c]}
runtime: {max_file_format_version: 0, operators: [prim::Constant, aten::add, aten::add]}
""")
    write(d, "empty-map.yaml", "{}\n")
    write(d, "json-form.json", '{"name":"j","os":"linux","arch":"aarch64","cpu":{"model":"x",'
          '"cores":4},"memory":{"total":"4 GiB"},"gpus":[],"runtime":{"libtorch_version":'
          '"1.13.0+cpu"}}')


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--out", default=os.path.join(ROOT, "tests", "fuzz", "corpus"))
    a = ap.parse_args()
    build, out = os.path.abspath(a.build), os.path.abspath(a.out)
    for t in ("archive", "manifest", "spec", "profile"):
        shutil.rmtree(os.path.join(out, t), ignore_errors=True)
    with tempfile.TemporaryDirectory(prefix="dlsys-corpus-") as work:
        paths = archives(build, work, out)
        manifests(paths, out)
        specs(work, out)
    profiles(build, out)
    total = sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(out) for f in fs)
    print(f"make_corpus: wrote {out} ({total} bytes)")


if __name__ == "__main__":
    main()
