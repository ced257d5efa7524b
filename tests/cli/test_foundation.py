"""keygen -> pack -> inspect -> verify on the real binary: behaviour, formats, exit codes."""
import base64
import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
import unittest
import xml.etree.ElementTree as ET

sys.path.insert(0, os.path.dirname(__file__))
from clitest import (EXIT_INVALID, EXIT_NOT_FOUND, EXIT_OK, EXIT_UNAVAILABLE, EXIT_USAGE,
                     EXIT_VERIFY_FAILED, TempDirTest, make_model, run, signal_at_hook,
                     tar_members, validate)

SPEC = textwrap.dedent("""\
    name: mlp
    version: 1.2.0
    description: test model
    owner: team@example.com
    license: Apache-2.0
    lineage: {git_commit: abc123, parent_version: 1.1.0, data_version: d7}
    hyperparameters: {lr: 0.001, layers: [4, 8, 2], nested: {dropout: 0.1}}
    training: {epochs: 3}
    metrics: {accuracy: 0.97}
    dependencies: {torch: "1.13"}
    inputs:
      - {name: x, dtype: float32, shape: [-1, 4]}
    outputs:
      - {name: scores, dtype: float32, shape: [-1, 2]}
    examples:
      - name: basic
        inputs:
          x: {data: [[1, 2, 3, 4], [0.5, -1, 0, 2]]}
    files:
      - labels.txt
    """)


class Foundation(TempDirTest):
    def setUp(self):
        super().setUp()
        self.model = make_model("mlp", self.path("model.pt"))
        with open(self.path("dlsys.yaml"), "w") as f:
            f.write(SPEC)
        with open(self.path("labels.txt"), "w") as f:
            f.write("cat\ndog\n")
        r = run("keygen", "--out", self.path("k.key"))
        self.assertEqual(r.returncode, EXIT_OK, r.stderr)

    def pack(self, out="m.dlsys", *extra, env=None):
        return run("pack", self.model, "--spec", self.path("dlsys.yaml"), "--key",
                   self.path("k.key"), "-o", self.path(out), *extra, env=env)

    def test_help_on_every_subcommand_teaches_with_an_example(self):
        for sub in ["keygen", "pack", "inspect", "verify", "probe"]:
            r = run(sub, "--help")
            self.assertEqual(r.returncode, EXIT_OK, sub)
            self.assertIn("Example", r.stdout, sub)
        r = run("--help")
        self.assertEqual(r.returncode, EXIT_OK)
        for sub in ["keygen", "pack", "inspect", "verify"]:
            self.assertIn(sub, r.stdout)

    def test_usage_errors_exit_2(self):
        self.assertEqual(run().returncode, EXIT_USAGE)
        self.assertEqual(run("frobnicate").returncode, EXIT_USAGE)
        self.assertEqual(run("pack").returncode, EXIT_USAGE)
        r = run("pack", self.model, "--name", "Bad Name", "--version", "1.0.0", "-o", self.path("x"))
        self.assertEqual(r.returncode, EXIT_USAGE)
        self.assertIn("name 'Bad Name' is not valid", r.stderr)
        r = run("pack", self.model, "--name", "ok", "--version", "1.0", "-o", self.path("x"))
        self.assertEqual(r.returncode, EXIT_USAGE)
        self.assertIn("SemVer", r.stderr)
        self.assertFalse(os.path.exists(self.path("x")))

    def test_keygen_writes_private_key_0600_and_refuses_to_overwrite(self):
        mode = stat.S_IMODE(os.stat(self.path("k.key")).st_mode)
        self.assertEqual(mode, 0o600)
        before = open(self.path("k.key"), "rb").read()
        r = run("keygen", "--out", self.path("k.key"))
        self.assertEqual(r.returncode, EXIT_USAGE)
        self.assertIn("already exists", r.stderr)
        self.assertEqual(open(self.path("k.key"), "rb").read(), before)
        self.assertNotIn("PRIVATE", r.stdout + r.stderr)

    def test_round_trip_signed_archive_verifies_with_trusted_key(self):
        r = self.pack()
        self.assertEqual(r.returncode, EXIT_OK, r.stderr)
        r = run("verify", self.path("m.dlsys"), "--trust", self.path("k.key.pub"), "--json")
        self.assertEqual(r.returncode, EXIT_OK, r.stdout + r.stderr)
        report = json.loads(r.stdout)
        validate(report, "verify-report.schema.json")
        self.assertTrue(report["ok"])
        self.assertEqual(report["name"], "mlp")
        statuses = {(c["check"], c["subject"]): c["status"] for c in report["checks"]}
        self.assertEqual(statuses[("signature", "signature.json")], "PASS")
        self.assertEqual(statuses[("file", "model.pt")], "PASS")
        self.assertEqual(statuses[("file", "files/labels.txt")], "PASS")
        # A directory of trusted keys works too.
        r = run("verify", self.path("m.dlsys"), "--trust", self.dir)
        self.assertEqual(r.returncode, EXIT_OK, r.stdout + r.stderr)
        self.assertIn("OK:", r.stdout)

    def test_inspect_shows_manifest_and_json_matches_schema(self):
        self.assertEqual(self.pack().returncode, EXIT_OK)
        r = run("inspect", self.path("m.dlsys"))
        self.assertEqual(r.returncode, EXIT_OK, r.stderr)
        for text in ["mlp 1.2.0", "signed by key", "team@example.com", "scores", "float32",
                     "hyperparameters", "nested.dropout", "accuracy", "files/labels.txt",
                     "model.pt", "git_commit", "basic"]:
            self.assertIn(text, r.stdout)
        r = run("inspect", self.path("m.dlsys"), "--json")
        doc = json.loads(r.stdout)
        validate(doc, "inspect.schema.json")
        m = doc["manifest"]
        self.assertEqual(m["hyperparameters"]["layers"], [4, 8, 2])
        self.assertEqual(m["dependencies"]["torch"], "1.13")
        self.assertIn("forward", [x["name"] for x in m["model"]["methods"]])
        self.assertEqual(m["model"]["parameters"]["count"], 4)
        self.assertTrue(m["model"]["operators"])
        self.assertGreater(m["model"]["file_format_version"], 0)
        self.assertEqual(m["examples"][0]["outputs"][0]["name"], "scores")
        self.assertEqual(m["examples"][0]["outputs"][0]["shape"], [2, 2])
        self.assertEqual([f["path"] for f in m["files"]], sorted(f["path"] for f in m["files"]))
        self.assertEqual(len(doc["signer_key_ids"][0]), 64)

    def test_manifest_is_first_then_signature_and_tar_lists_it(self):
        self.assertEqual(self.pack().returncode, EXIT_OK)
        names = [m.name for m, _ in tar_members(self.path("m.dlsys"))]
        self.assertEqual(names[:2], ["manifest.json", "signature.json"])
        out = subprocess.run(["tar", "-tf", self.path("m.dlsys")], capture_output=True, text=True)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(out.stdout.split(), names)

    def test_compressed_archives_list_with_gnu_tar_and_verify(self):
        for comp, flag in [("gzip", "-z"), ("zstd", "--zstd")]:
            out = f"m-{comp}.dlsys"
            r = self.pack(out, "--compression", comp)
            self.assertEqual(r.returncode, EXIT_OK, r.stderr)
            t = subprocess.run(["tar", flag, "-tf", self.path(out)], capture_output=True, text=True)
            self.assertEqual(t.returncode, 0, t.stderr)
            self.assertEqual(t.stdout.split()[0], "manifest.json")
            r = run("verify", self.path(out), "--trust", self.path("k.key.pub"))
            self.assertEqual(r.returncode, EXIT_OK, r.stdout + r.stderr)
            r = run("inspect", self.path(out), "--json")
            self.assertEqual(json.loads(r.stdout)["compression"], comp)

    def test_same_inputs_and_source_date_epoch_give_identical_bytes(self):
        env = {"SOURCE_DATE_EPOCH": "1700000000"}
        for comp in ["none", "gzip", "zstd"]:
            a = self.pack(f"a-{comp}.dlsys", "--compression", comp, env=env)
            b = self.pack(f"b-{comp}.dlsys", "--compression", comp, env=env)
            self.assertEqual(a.returncode, EXIT_OK, a.stderr)
            self.assertEqual(b.returncode, EXIT_OK, b.stderr)
            with open(self.path(f"a-{comp}.dlsys"), "rb") as fa, open(self.path(f"b-{comp}.dlsys"), "rb") as fb:
                self.assertEqual(fa.read(), fb.read(), comp)
        doc = json.loads(run("inspect", self.path("a-none.dlsys"), "--json").stdout)
        self.assertEqual(doc["manifest"]["created"], "2023-11-14T22:13:20Z")

    def test_openssl_command_line_verifies_the_signature(self):
        self.assertEqual(self.pack().returncode, EXIT_OK)
        members = dict((m.name, data) for m, data in tar_members(self.path("m.dlsys")))
        envelope = json.loads(members["signature.json"])
        payload = base64.b64decode(envelope["payload"])
        self.assertEqual(payload, members["manifest.json"])
        ptype = envelope["payloadType"].encode()
        pae = b"DSSEv1 %d %s %d %s" % (len(ptype), ptype, len(payload), payload)
        with open(self.path("pae.bin"), "wb") as f:
            f.write(pae)
        with open(self.path("sig.bin"), "wb") as f:
            f.write(base64.b64decode(envelope["signatures"][0]["sig"]))
        cmd = ["openssl", "pkeyutl", "-verify", "-pubin", "-inkey", self.path("k.key.pub"),
               "-rawin", "-in", self.path("pae.bin"), "-sigfile", self.path("sig.bin")]
        ok = subprocess.run(cmd, capture_output=True, text=True)
        self.assertEqual(ok.returncode, 0, ok.stdout + ok.stderr)
        with open(self.path("pae.bin"), "r+b") as f:
            f.seek(len(pae) - 3)
            f.write(b"X")
        bad = subprocess.run(cmd, capture_output=True, text=True)
        self.assertNotEqual(bad.returncode, 0)
        # The key id is the SHA-256 of the DER public key.
        der = subprocess.run(["openssl", "pkey", "-pubin", "-in", self.path("k.key.pub"),
                              "-outform", "DER"], capture_output=True, check=True).stdout
        import hashlib
        self.assertEqual(envelope["signatures"][0]["keyid"], hashlib.sha256(der).hexdigest())

    def test_pack_refuses_to_overwrite_without_force(self):
        self.assertEqual(self.pack().returncode, EXIT_OK)
        before = open(self.path("m.dlsys"), "rb").read()
        r = self.pack()
        self.assertEqual(r.returncode, EXIT_USAGE)
        self.assertIn("--force", r.stderr)
        self.assertEqual(open(self.path("m.dlsys"), "rb").read(), before)
        self.assertEqual(self.pack("m.dlsys", "--force").returncode, EXIT_OK)

    def test_flags_override_spec_and_extra_files_are_stored(self):
        r = self.pack("o.dlsys", "--name", "other", "--version", "2.0.0-rc.1", "--file",
                      self.path("labels.txt") + "=config/labels.txt")
        self.assertEqual(r.returncode, EXIT_OK, r.stderr)
        m = json.loads(run("inspect", self.path("o.dlsys"), "--json").stdout)["manifest"]
        self.assertEqual((m["name"], m["version"]), ("other", "2.0.0-rc.1"))
        self.assertIn("config/labels.txt", [f["path"] for f in m["files"]])

    def test_pack_without_spec_derives_from_model(self):
        r = run("pack", self.model, "--name", "bare", "--version", "0.1.0", "-o", self.path("b.dlsys"))
        self.assertEqual(r.returncode, EXIT_OK, r.stderr)
        r = run("verify", self.path("b.dlsys"))
        self.assertEqual(r.returncode, EXIT_VERIFY_FAILED)
        self.assertIn("not signed", r.stdout)
        r = run("verify", self.path("b.dlsys"), "--allow-unsigned")
        self.assertEqual(r.returncode, EXIT_OK, r.stdout)
        self.assertIn("WARN", r.stdout)

    def test_wrong_key_fails_verification(self):
        self.assertEqual(self.pack().returncode, EXIT_OK)
        self.assertEqual(run("keygen", "--out", self.path("other.key")).returncode, EXIT_OK)
        r = run("verify", self.path("m.dlsys"), "--trust", self.path("other.key.pub"), "--json")
        self.assertEqual(r.returncode, EXIT_VERIFY_FAILED)
        sig = [c for c in json.loads(r.stdout)["checks"] if c["check"] == "signature"][0]
        self.assertEqual(sig["status"], "FAIL")
        self.assertIn("not trusted", sig["message"])

    def test_junit_report_carries_every_check(self):
        self.assertEqual(self.pack().returncode, EXIT_OK)
        r = run("verify", self.path("m.dlsys"), "--trust", self.path("k.key.pub"), "--junit",
                self.path("v.xml"))
        self.assertEqual(r.returncode, EXIT_OK)
        root = ET.parse(self.path("v.xml")).getroot()
        cases = root.findall(".//testcase")
        self.assertGreaterEqual(len(cases), 5)
        self.assertEqual(root.get("failures"), "0")

    def test_inspect_and_verify_never_load_libtorch(self):
        self.assertEqual(self.pack().returncode, EXIT_OK)
        env = {"LD_DEBUG": "libs", "DLSYS_RUNTIME_MODULE": "/nonexistent/libdlsys_runtime.so"}
        for args in [["inspect", self.path("m.dlsys")],
                     ["verify", self.path("m.dlsys"), "--trust", self.path("k.key.pub")],
                     ["--help"]]:
            r = run(*args, env=env)
            self.assertEqual(r.returncode, EXIT_OK, args)
            self.assertNotIn("libtorch", r.stderr, args)
            self.assertNotIn("libdlsys_runtime", r.stderr, args)

    def test_pack_without_runtime_module_exits_6(self):
        r = self.pack(env={"DLSYS_RUNTIME_MODULE": self.path("missing.so")})
        self.assertEqual(r.returncode, EXIT_UNAVAILABLE)
        self.assertIn("runtime", r.stderr)
        self.assertFalse(os.path.exists(self.path("m.dlsys")))

    def test_failed_pack_leaves_nothing_behind(self):
        failing = make_model("failing", self.path("failing.pt"))
        r = run("pack", failing, "--spec", self.path("dlsys.yaml"), "-o", self.path("f.dlsys"))
        self.assertEqual(r.returncode, EXIT_INVALID, r.stderr)
        self.assertIn("example 'basic'", r.stderr)
        self.assertEqual(sorted(os.listdir(self.dir)),
                         sorted(["model.pt", "dlsys.yaml", "labels.txt", "k.key", "k.key.pub",
                                 "failing.pt"]))

    def interrupt_pack_before_commit(self, sig):
        """Stops pack when the archive is complete but not yet under its name, sends sig."""
        before = sorted(os.listdir(self.dir))
        code, out, err = signal_at_hook(
            self, ["pack", self.model, "--spec", self.path("dlsys.yaml"), "--key",
                   self.path("k.key"), "-o", self.path("m.dlsys")],
            "pack-before-commit", sig)
        self.assertEqual(sorted(os.listdir(self.dir)), before, err)
        return code

    def test_interrupted_pack_leaves_nothing_behind(self):
        self.assertEqual(self.interrupt_pack_before_commit(signal.SIGINT), 130)
        self.assertEqual(self.interrupt_pack_before_commit(signal.SIGTERM), 143)
        # An archive that was there before is left as it was.
        self.assertEqual(self.pack().returncode, EXIT_OK)
        with open(self.path("m.dlsys"), "rb") as f:
            before = f.read()
        code, _, err = signal_at_hook(
            self, ["pack", self.model, "--name", "other", "--version", "9.9.9", "--force",
                   "-o", self.path("m.dlsys")], "pack-before-commit", signal.SIGTERM)
        self.assertEqual(code, 143, err)
        with open(self.path("m.dlsys"), "rb") as f:
            self.assertEqual(f.read(), before)

    def test_missing_inputs_exit_3(self):
        self.assertEqual(run("inspect", self.path("nope.dlsys")).returncode, EXIT_NOT_FOUND)
        self.assertEqual(run("verify", self.path("nope.dlsys")).returncode, EXIT_NOT_FOUND)
        r = run("pack", self.path("nope.pt"), "--name", "a", "--version", "1.0.0", "-o", self.path("a"))
        self.assertEqual(r.returncode, EXIT_NOT_FOUND)
        self.assertIn("nope.pt", r.stderr)
        r = run("verify", self.path("nope.dlsys"), "--trust", self.path("nope.pub"))
        self.assertEqual(r.returncode, EXIT_NOT_FOUND)


if __name__ == "__main__":
    unittest.main(verbosity=2)
