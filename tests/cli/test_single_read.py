"""What verify checks is what runs: `verify --smoke` reads the archive once and runs exactly
the bytes it verified; a file swapped in after verification is never loaded. Also: dict outputs
are named by key in the model's order, in pack's golden outputs and in the smoke test."""
import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from clitest import (DLSYS, EXIT_OK, EXIT_VERIFY_FAILED, TempDirTest, canonical_json,
                     make_model, run, tar_members, wait_stopped, write_tar)

SPEC = textwrap.dedent("""\
    name: swap
    version: 1.0.0
    examples:
      - name: basic
        inputs:
          x: {data: [[1, 2, 3, 4], [0.5, -1, 0, 2]]}
    """)


class SingleRead(TempDirTest):
    def pack(self, kind, out, *model_args, spec=SPEC):
        with open(self.path("dlsys.yaml"), "w") as f:
            f.write(spec)
        model = make_model(kind, self.path(kind + ".pt"), *model_args)
        r = run("pack", model, "--spec", self.path("dlsys.yaml"), "--key", self.path("k.key"),
                "-o", self.path(out), env={"SOURCE_DATE_EPOCH": "1700000000"})
        self.assertEqual(r.returncode, EXIT_OK, r.stderr)
        return self.path(out)

    def setUp(self):
        super().setUp()
        self.assertEqual(run("keygen", "--out", self.path("k.key")).returncode, EXIT_OK)

    def verify_with_swap(self, archive, replacement):
        """Runs verify --smoke, stops it after verification, swaps the file, lets it go on."""
        p = subprocess.Popen([DLSYS, "verify", archive, "--trust", self.path("k.key.pub"),
                              "--smoke", "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             env=dict(os.environ, DLSYS_TEST_HOOK="verify-before-smoke"))
        try:
            line = p.stderr.readline().decode()
            self.assertEqual(line, "dlsys-test-hook: verify-before-smoke\n")
            self.assertTrue(wait_stopped(p.pid))
            os.replace(replacement, archive)  # the path now names a different archive
            p.send_signal(signal.SIGCONT)
            out, err = p.communicate(timeout=120)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        return p.returncode, json.loads(out), err.decode()

    def test_a_file_swapped_after_verification_is_not_run(self):
        good = self.pack("mlp", "good.dlsys")
        # The same archive with another model.pt (outputs drift by +1 from the golden ones): a
        # verifier that re-opened the path after checking would load this model and fail.
        with open(make_model("noise", self.path("noise.pt"), "--scale", "1.0"), "rb") as f:
            noise = f.read()
        members = [(m, noise if m.name == "model.pt" else d) for m, d in tar_members(good)]
        write_tar(self.path("evil.dlsys"), members)
        code, report, err = self.verify_with_swap(good, self.path("evil.dlsys"))
        self.assertEqual(code, EXIT_OK, json.dumps(report, indent=1) + err)
        smoke = [c for c in report["checks"] if c["check"] == "smoke"]
        self.assertTrue(any(c["subject"] == "example basic" and c["status"] == "PASS"
                            for c in smoke), smoke)
        # Control: the file now at that path is the altered archive, and verify says so.
        r = run("verify", good, "--trust", self.path("k.key.pub"))
        self.assertEqual(r.returncode, EXIT_VERIFY_FAILED, r.stdout)
        self.assertIn("FAIL  file            model.pt:", r.stdout)

    def spin_archive(self):
        """The archive of a good model with its model.pt replaced by one that spins forever (the
        manifest updated to match, unsigned)."""
        members = tar_members(self.pack("mlp", "good.dlsys"))
        with open(make_model("spin", self.path("spin.pt")), "rb") as f:
            spin = f.read()
        doc = json.loads(members[0][1])
        for record in doc["files"]:
            if record["path"] == "model.pt":
                record["size"], record["sha256"] = len(spin), hashlib.sha256(spin).hexdigest()
        rebuilt = [(members[0][0], canonical_json(doc))]
        rebuilt += [(m, spin if m.name == "model.pt" else d) for m, d in members[1:]
                    if m.name != "signature.json"]
        write_tar(self.path("spin.dlsys"), rebuilt)
        return self.path("spin.dlsys")

    def test_a_model_that_never_returns_is_stopped_by_the_smoke_timeout(self):
        self.spin_archive()
        start = time.monotonic()
        r = run("verify", self.path("spin.dlsys"), "--allow-unsigned", "--smoke",
                "--smoke-timeout", "2", "--json", timeout=60)
        elapsed = time.monotonic() - start
        self.assertEqual(r.returncode, EXIT_VERIFY_FAILED, r.stdout + r.stderr)
        rows = [c for c in json.loads(r.stdout)["checks"] if c["check"] == "smoke"]
        self.assertEqual([c["subject"] for c in rows], ["timeout"], rows)
        self.assertIn("did not finish within 2 s", rows[0]["message"])
        self.assertLess(elapsed, 30)
        # Every file still verified: only the run was stopped.
        files = [c for c in json.loads(r.stdout)["checks"] if c["check"] == "file"]
        self.assertTrue(files and all(c["status"] == "PASS" for c in files), files)

    @staticmethod
    def children(pid):
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            return [int(x) for x in f.read().split()]

    @staticmethod
    def alive(pid):
        """True while pid runs (a zombie waiting for its reaper counts as gone)."""
        try:
            with open("/proc/%d/stat" % pid) as f:
                return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
        except FileNotFoundError:
            return False

    def test_the_smoke_child_dies_with_verify(self):
        archive = self.spin_archive()
        p = subprocess.Popen([DLSYS, "verify", archive, "--allow-unsigned", "--smoke",
                              "--smoke-timeout", "600"], stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE,
                             env=dict(os.environ, DLSYS_TEST_HOOK="verify-before-smoke"))
        try:
            self.assertEqual(p.stderr.readline(), b"dlsys-test-hook: verify-before-smoke\n")
            self.assertTrue(wait_stopped(p.pid))
            p.send_signal(signal.SIGCONT)
            deadline = time.monotonic() + 30
            kids = []
            while not kids and time.monotonic() < deadline:  # waits for the fork to happen
                kids = self.children(p.pid)
            self.assertTrue(kids, "verify never started its smoke-test child")
            p.send_signal(signal.SIGTERM)
            self.assertEqual(p.wait(timeout=30), 143)
            deadline = time.monotonic() + 30
            while self.alive(kids[0]) and time.monotonic() < deadline:
                time.sleep(0.01)  # polling the child's state, bounded by the deadline
            self.assertFalse(self.alive(kids[0]), "the smoke-test child outlived verify")
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
            p.stderr.close()

    def test_dict_outputs_are_named_by_key_in_the_models_order(self):
        spec = SPEC.replace("x: {data: [[1, 2, 3, 4], [0.5, -1, 0, 2]]}", "x: {data: [1, -2, 0.5]}")
        spec += textwrap.dedent("""\
            outputs:
              - {name: alpha, dtype: float32, shape: [-1]}
              - {name: zeta, dtype: float32, shape: [-1]}
            """)
        archive = self.pack("dict_unsorted", "dict.dlsys", spec=spec)
        files = dict((m.name, d) for m, d in tar_members(archive))
        manifest = json.loads(files["manifest.json"])
        # The model returns {"zeta": 2x, "alpha": x + 1}: the manifest keeps the model's order.
        self.assertEqual([o["name"] for o in manifest["outputs"]], ["zeta", "alpha"])
        outs = manifest["examples"][0]["outputs"]
        self.assertEqual([o["name"] for o in outs], ["zeta", "alpha"])
        import struct
        zeta = struct.unpack("<3f", files["examples/basic/outputs/zeta.bin"])
        alpha = struct.unpack("<3f", files["examples/basic/outputs/alpha.bin"])
        self.assertEqual(zeta, (2.0, -4.0, 1.0))
        self.assertEqual(alpha, (2.0, -1.0, 1.5))
        r = run("verify", archive, "--trust", self.path("k.key.pub"), "--smoke")
        self.assertEqual(r.returncode, EXIT_OK, r.stdout + r.stderr)

    def test_a_dict_key_that_is_not_declared_is_refused_by_name(self):
        spec = SPEC.replace("x: {data: [[1, 2, 3, 4], [0.5, -1, 0, 2]]}", "x: {data: [1, -2, 0.5]}")
        spec += "outputs:\n  - {name: alpha, dtype: float32, shape: [-1]}\n" \
                "  - {name: beta, dtype: float32, shape: [-1]}\n"
        with open(self.path("dlsys.yaml"), "w") as f:
            f.write(spec)
        model = make_model("dict_unsorted", self.path("d.pt"))
        r = run("pack", model, "--spec", self.path("dlsys.yaml"), "-o", self.path("d.dlsys"))
        self.assertEqual(r.returncode, 4, r.stderr)
        self.assertIn("key 'zeta'", r.stderr)
        self.assertFalse(os.path.exists(self.path("d.dlsys")))


if __name__ == "__main__":
    unittest.main(verbosity=2)
