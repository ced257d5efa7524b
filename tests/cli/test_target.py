"""probe and verify --target on the real binary: hand-written profiles for an edge device, a CPU
server and a GPU box against models that fit and models that don't."""
import json
import os
import sys
import tarfile
import unittest

import yaml  # python3-yaml, installed by scripts/install-deps.sh

sys.path.insert(0, os.path.dirname(__file__))
from clitest import (EXIT_INVALID, EXIT_NOT_FOUND, EXIT_OK, EXIT_VERIFY_FAILED, TempDirTest,
                     make_model, run, validate)

EDGE = """\
name: edge-pi4
os: linux
arch: aarch64
cpu: {model: Cortex-A72, cores: 4, features: [neon, asimd]}
memory: {total: 1 GiB, available: 900 MiB}
gpus: []
runtime: {libtorch_version: "1.13.0", max_file_format_version: 10, operators: OPS}
"""
SERVER = """\
name: cpu-server
os: linux
arch: x86_64
cpu: {model: Xeon, cores: 64, features: [avx2, avx512f, fma]}
memory: {total: 64 GiB, available: 60 GiB}
gpus: []
runtime: {libtorch_version: "1.13.0", max_file_format_version: 10, operators: OPS}
"""
GPU = """\
name: gpu-box
os: linux
arch: x86_64
cpu: {model: EPYC, cores: 32, features: [avx2]}
memory: {total: 256 GiB}
gpus: [{name: NVIDIA A100-SXM4-80GB, memory: 80 GiB, compute_capability: "8.0", driver_version: "535.104", cuda_version: "12.2"}]
runtime: {libtorch_version: "1.13.0", max_file_format_version: 10, operators: OPS}
"""


class Target(TempDirTest):
    @classmethod
    def setUpClass(cls):
        import tempfile
        cls.fixtures = tempfile.mkdtemp(prefix="dlsys-target-")
        f = lambda n: os.path.join(cls.fixtures, n)
        cls.mlp = make_model("mlp", f("mlp.pt"))
        cls.big = make_model("big", f("big.pt"), "--weight-bytes", str(64 << 20))
        # The operator set the local runtime provides, for realistic hand-written profiles.
        r = run("probe", "--json")
        assert r.returncode == 0, r.stderr
        cls.local = json.loads(r.stdout)
        cls.ops = cls.local["runtime"]["operators"]
        spec = "examples: [{name: one, inputs: {x: {data: [[1, 2, 3, 4]]}}}]\n"
        cls.small = cls.pack(f, cls.mlp, "small", spec)
        cls.needs_ram = cls.pack(f, cls.big, "needs-ram", "requirements: {min_memory: 2 GiB}\n")
        cls.needs_cuda = cls.pack(
            f, cls.mlp, "needs-cuda",
            "requirements: {device: cuda, min_gpu_compute_capability: '8.0', min_gpu_memory: 40 GiB}\n")
        cls.needs_avx512 = cls.pack(f, cls.mlp, "needs-avx512",
                                    "requirements: {cpu_features: [avx2, AVX512F]}\n")

    @classmethod
    def pack(cls, f, model, name, spec):
        with open(f(name + ".yaml"), "w") as out:
            out.write(spec)
        path = f(name + ".dlsys")
        r = run("pack", model, "--name", name, "--version", "1.0.0", "--spec", f(name + ".yaml"),
                "-o", path)
        assert r.returncode == 0, r.stderr
        return path

    @classmethod
    def tearDownClass(cls):
        import shutil
        shutil.rmtree(cls.fixtures, ignore_errors=True)

    def profile(self, text, ops=None, name="target.yaml"):
        text = text.replace("OPS", json.dumps(self.ops if ops is None else ops))
        with open(self.path(name), "w") as f:
            f.write(text)
        return self.path(name)

    def verify(self, archive, target, *extra, env=None):
        r = run("verify", archive, "--allow-unsigned", "--target", target, "--json", *extra, env=env)
        self.assertTrue(r.stdout.strip(), r.stderr)
        report = json.loads(r.stdout)
        validate(report, "verify-report.schema.json")
        return r, {c["check"]: c for c in report["checks"]}

    def test_probe_describes_this_machine_and_matches_schema(self):
        validate(self.local, "target.schema.json")
        self.assertEqual(self.local["os"], "linux")
        self.assertGreaterEqual(self.local["cpu"]["cores"], 1)
        self.assertGreater(self.local["memory"]["total"], 0)
        # Whatever GPUs this machine has (none on most test machines): a list of named GPUs.
        self.assertIsInstance(self.local["gpus"], list)
        for gpu in self.local["gpus"]:
            self.assertIsInstance(gpu["name"], str)
        self.assertGreater(len(self.ops), 100)
        self.assertGreater(self.local["runtime"]["max_file_format_version"], 0)
        r = run("probe")  # YAML by default
        self.assertEqual(r.returncode, EXIT_OK)
        self.assertEqual(yaml.safe_load(r.stdout)["arch"], self.local["arch"])
        self.assertEqual(yaml.safe_load(r.stdout)["runtime"]["blas"], self.local["runtime"]["blas"])

    def test_probe_names_the_blas_libtorch_uses(self):
        # scripts/install-deps.sh installs libopenblas0-openmp, which takes over libblas.so.3.
        blas = self.local["runtime"]["blas"]
        self.assertEqual(blas["name"], "openblas", blas)
        self.assertTrue(os.path.isabs(blas["library"]), blas)
        self.assertTrue(os.path.exists(blas["library"]), blas)
        self.assertTrue(blas["detail"].startswith("OpenBLAS "), blas)
        # And verify --target against this machine says so, as a PASS row.
        r = run("probe", "-o", self.path("here.json"))
        self.assertEqual(r.returncode, EXIT_OK, r.stderr)
        r, rows = self.verify(self.small, self.path("here.json"))
        self.assertEqual(r.returncode, EXIT_OK, r.stdout)
        self.assertEqual(rows["blas"]["status"], "PASS", rows["blas"])
        self.assertTrue(rows["blas"]["message"].startswith("openblas: OpenBLAS "), rows["blas"])

    def test_reference_blas_warns_but_passes(self):
        reference = SERVER.replace(
            "operators: OPS}",
            "operators: OPS, blas: {name: reference, "
            "library: /usr/lib/x86_64-linux-gnu/blas/libblas.so.3.11.0}}")
        r, rows = self.verify(self.small, self.profile(reference))
        self.assertEqual(r.returncode, EXIT_OK, r.stdout)  # WARN, not FAIL
        self.assertEqual(rows["blas"]["status"], "WARN")
        self.assertEqual(rows["blas"]["message"],
                         "reference BLAS: batched inference will be ~10x slower; install "
                         "libopenblas0-openmp")
        self.assertEqual(rows["blas"]["subject"], "runtime.blas")
        for rule in ["memory", "device", "cpu_features", "file_format", "runtime_version",
                     "operators"]:
            self.assertEqual(rows[rule]["status"], "PASS", rows[rule])
        # The text report shows the row too.
        r = run("verify", self.small, "--allow-unsigned", "--target", self.profile(reference))
        self.assertEqual(r.returncode, EXIT_OK, r.stderr)
        self.assertIn("reference BLAS: batched inference will be ~10x slower", r.stdout)
        # Old profiles without the field stay valid: the row WARNs that it was not stated.
        r, rows = self.verify(self.small, self.profile(SERVER))
        self.assertEqual(r.returncode, EXIT_OK, r.stdout)
        self.assertEqual(rows["blas"]["status"], "WARN")
        self.assertIn("does not say which BLAS", rows["blas"]["message"])

    def test_probe_writes_a_profile_that_verify_reads_back(self):
        r = run("probe", "-o", self.path("here.yaml"))
        self.assertEqual(r.returncode, EXIT_OK, r.stderr)
        r, rows = self.verify(self.small, self.path("here.yaml"))
        self.assertEqual(r.returncode, EXIT_OK, r.stdout)
        self.assertEqual(rows["operators"]["status"], "PASS")
        self.assertEqual(rows["file_format"]["status"], "PASS")
        r = run("probe", "-o", self.path("here.yaml"))
        self.assertEqual(r.returncode, 2)  # refuses to overwrite without --force

    def test_probe_without_runtime_does_not_load_libtorch(self):
        r = run("probe", "--no-runtime", "--json", env={"LD_DEBUG": "libs"})
        self.assertEqual(r.returncode, EXIT_OK)
        self.assertNotIn("libtorch", r.stderr)
        self.assertNotIn("runtime", json.loads(r.stdout))

    def test_small_model_fits_everywhere(self):
        for text in [EDGE, SERVER, GPU]:
            r, rows = self.verify(self.small, self.profile(text))
            self.assertEqual(r.returncode, EXIT_OK, r.stdout)
            for rule in ["memory", "device", "cpu_features", "file_format", "runtime_version",
                         "operators"]:
                self.assertEqual(rows[rule]["status"], "PASS", (text[:12], rows[rule]))

    def test_memory_does_not_fit_the_edge_device(self):
        r, rows = self.verify(self.needs_ram, self.profile(EDGE))
        self.assertEqual(r.returncode, EXIT_VERIFY_FAILED)
        self.assertEqual(rows["memory"]["status"], "FAIL")
        self.assertIn("needs 2.00 GiB", rows["memory"]["message"])
        self.assertIn("target has 900", rows["memory"]["message"])
        r, rows = self.verify(self.needs_ram, self.profile(SERVER))
        self.assertEqual(r.returncode, EXIT_OK, r.stdout)

    def test_cuda_model_needs_a_gpu(self):
        r, rows = self.verify(self.needs_cuda, self.profile(EDGE))
        self.assertEqual(r.returncode, EXIT_VERIFY_FAILED)
        self.assertEqual(rows["device"]["status"], "FAIL")
        self.assertIn("no GPU", rows["device"]["message"])
        self.assertIn("8.0", rows["device"]["message"])
        r, rows = self.verify(self.needs_cuda, self.profile(GPU))
        self.assertEqual(r.returncode, EXIT_OK, r.stdout)
        self.assertEqual(rows["device"]["status"], "PASS")
        self.assertEqual(rows["gpu_memory"]["status"], "PASS")
        old_gpu = GPU.replace('"8.0"', '"7.0"').replace("80 GiB", "16 GiB")
        r, rows = self.verify(self.needs_cuda, self.profile(old_gpu))
        self.assertEqual(r.returncode, EXIT_VERIFY_FAILED)
        self.assertEqual(rows["device"]["status"], "FAIL")
        self.assertEqual(rows["gpu_memory"]["status"], "FAIL")

    def test_cpu_features(self):
        r, rows = self.verify(self.needs_avx512, self.profile(EDGE))
        self.assertEqual(r.returncode, EXIT_VERIFY_FAILED)
        self.assertIn("avx512f", rows["cpu_features"]["message"])
        r, rows = self.verify(self.needs_avx512, self.profile(SERVER))
        self.assertEqual(rows["cpu_features"]["status"], "PASS")

    def test_missing_operator_and_old_file_format(self):
        model_ops = json.loads(run("inspect", self.small, "--json").stdout)["manifest"]["model"]["operators"]
        missing = [o for o in model_ops if o.startswith("aten::")][0]
        ops = [o for o in self.ops if o != missing]
        text = SERVER.replace("max_file_format_version: 10", "max_file_format_version: 1")
        r, rows = self.verify(self.small, self.profile(text, ops))
        self.assertEqual(r.returncode, EXIT_VERIFY_FAILED)
        self.assertEqual(rows["operators"]["status"], "FAIL")
        self.assertIn(missing, rows["operators"]["message"])
        self.assertEqual(rows["file_format"]["status"], "FAIL")
        self.assertIn("runtime reads <= 1", rows["file_format"]["message"])

    def test_hand_written_profile_with_missing_fields_warns(self):
        r, rows = self.verify(self.small, self.profile("name: sparse\narch: x86_64\n"))
        self.assertEqual(r.returncode, EXIT_OK, r.stdout)
        for rule in ["memory", "file_format", "operators"]:
            self.assertEqual(rows[rule]["status"], "WARN", rows[rule])

    def test_malformed_profiles_name_the_field(self):
        cases = [("memory: {total: lots}\n", "memory"),
                 ("cpu: {cores: -1}\n", "cores"),
                 ("gpus: [{name: x, compute_capability: eight}]\n", "compute_capability"),
                 ("colour: blue\n", "colour"),
                 ("runtime: {blas: {name: openblas, speed: fast}}\n", "runtime.blas.speed"),
                 ("memory: [unclosed\n", "YAML")]
        for text, phrase in cases:
            r = run("verify", self.small, "--allow-unsigned", "--target", self.profile(text))
            self.assertEqual(r.returncode, EXIT_INVALID, (text, r.stderr))
            self.assertIn(phrase, r.stderr, text)
        r = run("verify", self.small, "--allow-unsigned", "--target", self.path("nope.yaml"))
        self.assertEqual(r.returncode, EXIT_NOT_FOUND)

    def test_target_rows_reach_junit(self):
        r = run("verify", self.needs_ram, "--allow-unsigned", "--target", self.profile(EDGE),
                "--junit", self.path("v.xml"))
        self.assertEqual(r.returncode, EXIT_VERIFY_FAILED)
        xml = open(self.path("v.xml")).read()
        self.assertIn('classname="dlsys.verify.memory"', xml)
        self.assertIn("<failure", xml)

    def test_verify_target_without_smoke_does_not_load_libtorch(self):
        r = run("verify", self.small, "--allow-unsigned", "--target", self.profile(SERVER),
                env={"LD_DEBUG": "libs", "DLSYS_RUNTIME_MODULE": "/nonexistent.so"})
        self.assertEqual(r.returncode, EXIT_OK, r.stdout)
        self.assertNotIn("libtorch", r.stderr)

    def test_tampered_golden_outputs_are_caught_by_integrity(self):
        # A signed archive whose golden output bytes were edited: the digest check fails, so a
        # tampered golden can never make a broken model look good.
        r = run("keygen", "--out", self.path("k.key"))
        self.assertEqual(r.returncode, EXIT_OK)
        signed = self.path("signed.dlsys")
        with open(self.path("s.yaml"), "w") as f:
            f.write("examples: [{name: one, inputs: {x: {data: [[1, 2, 3, 4]]}}}]\n")
        r = run("pack", self.mlp, "--name", "s", "--version", "1.0.0", "--spec",
                self.path("s.yaml"), "--key", self.path("k.key"), "-o", signed)
        self.assertEqual(r.returncode, EXIT_OK, r.stderr)
        data = bytearray(open(signed, "rb").read())
        with tarfile.open(signed) as t:
            m = t.getmember("examples/one/outputs/output0.bin")
        data[m.offset_data] ^= 0x40
        open(self.path("t.dlsys"), "wb").write(data)
        r = run("verify", self.path("t.dlsys"), "--trust", self.path("k.key.pub"), "--json")
        self.assertEqual(r.returncode, EXIT_VERIFY_FAILED)
        fails = [c for c in json.loads(r.stdout)["checks"] if c["status"] == "FAIL"]
        self.assertEqual([c["subject"] for c in fails], ["examples/one/outputs/output0.bin"])


if __name__ == "__main__":
    unittest.main(verbosity=2)
