"""pack's measured requirements and `verify --smoke` on the real binary: golden outputs,
drift beyond tolerance, output schema, latency budget, memory, missing runtime."""
import json
import os
import sys
import textwrap
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from clitest import (canonical_json, EXIT_OK, EXIT_VERIFY_FAILED, TempDirTest, make_model, run, tar_members,
                     validate, write_tar)

SPEC = textwrap.dedent("""\
    name: smoky
    version: 1.0.0
    inputs:
      - {name: x, dtype: float32, shape: [-1, 4]}
    outputs:
      - {name: scores, dtype: float32, shape: [-1, 2]}
    examples:
      - name: basic
        inputs:
          x: {data: [[1, 2, 3, 4], [0.5, -1, 0, 2]]}
      - name: zeros
        inputs:
          x: {data: [[0, 0, 0, 0]]}
    """)


class Smoke(TempDirTest):
    def write_spec(self, extra=""):
        path = self.path("dlsys.yaml")
        with open(path, "w") as f:
            f.write(SPEC + extra)
        return path

    def pack(self, kind, *model_args, extra_spec="", out="m.dlsys", env=None):
        model = make_model(kind, self.path(kind + ".pt"), *model_args)
        r = run("pack", model, "--spec", self.write_spec(extra_spec), "-o", self.path(out),
                "--force", env=env)
        self.assertEqual(r.returncode, EXIT_OK, r.stderr)
        return self.path(out)

    def smoke(self, archive, env=None):
        r = run("verify", archive, "--allow-unsigned", "--smoke", "--json", env=env)
        report = json.loads(r.stdout)
        validate(report, "verify-report.schema.json")
        rows = {c["subject"]: c for c in report["checks"] if c["check"] == "smoke"}
        return r, report, rows

    def manifest(self, archive):
        r = run("inspect", archive, "--json")
        self.assertEqual(r.returncode, EXIT_OK, r.stderr)
        return json.loads(r.stdout)["manifest"]

    def test_mlp_passes_every_smoke_row(self):
        r, report, rows = self.smoke(self.pack("mlp"))
        self.assertEqual(r.returncode, EXIT_OK, r.stdout + r.stderr)
        self.assertTrue(report["ok"])
        for subject in ["load", "example basic", "example zeros", "output schema"]:
            self.assertIn(subject, rows, sorted(rows))
            self.assertEqual(rows[subject]["status"], "PASS", rows[subject])
        # Timings and memory depend on the machine's load: they may WARN, never FAIL here.
        for subject in ["latency", "memory"]:
            self.assertIn(rows[subject]["status"], ["PASS", "WARN"], rows[subject])
        self.assertIn("example 'basic': 1 output matches golden",
                      rows["example basic"]["message"])
        self.assertIn("recorded at pack time", rows["latency"]["message"])
        self.assertIn("recorded at pack time", rows["memory"]["message"])

    def test_text_output_lists_smoke_rows(self):
        archive = self.pack("mlp")
        r = run("verify", archive, "--allow-unsigned", "--smoke")
        self.assertEqual(r.returncode, EXIT_OK, r.stdout + r.stderr)
        self.assertIn("smoke", r.stdout)
        self.assertIn("matches golden", r.stdout)

    def test_drift_within_tolerance_passes(self):
        r, report, rows = self.smoke(self.pack("random", "--scale", "1e-9"))
        self.assertEqual(r.returncode, EXIT_OK, r.stdout + r.stderr)
        self.assertEqual(rows["example basic"]["status"], "PASS", rows["example basic"])

    def test_drift_beyond_tolerance_fails_naming_the_output(self):
        r, report, rows = self.smoke(self.pack("random", "--scale", "1.0"))
        self.assertEqual(r.returncode, EXIT_VERIFY_FAILED, r.stdout + r.stderr)
        self.assertFalse(report["ok"])
        row = rows["example basic"]
        self.assertEqual(row["status"], "FAIL")
        self.assertIn("output 'scores' differs from golden", row["message"])
        self.assertIn("max abs diff", row["message"])
        self.assertIn("atol 1e-06 rtol 1e-05", row["message"])
        # Integrity is intact: only the smoke test can catch drift.
        self.assertTrue(all(c["status"] != "FAIL" for c in report["checks"]
                            if c["check"] == "file"))

    def test_latency_over_budget_fails(self):
        archive = self.pack("mlp", extra_spec="requirements: {latency_budget_ms: 0.000001}\n")
        r, report, rows = self.smoke(archive)
        self.assertEqual(r.returncode, EXIT_VERIFY_FAILED, r.stdout + r.stderr)
        self.assertEqual(rows["latency"]["status"], "FAIL", rows["latency"])
        self.assertIn("exceeds the budget", rows["latency"]["message"])
        self.assertEqual(rows["example basic"]["status"], "PASS")

    def test_missing_runtime_is_a_fail_row(self):
        archive = self.pack("mlp")
        r, report, rows = self.smoke(
            archive, env={"DLSYS_RUNTIME_MODULE": self.path("missing.so")})
        self.assertEqual(r.returncode, EXIT_VERIFY_FAILED, r.stdout + r.stderr)
        self.assertEqual(rows["runtime"]["status"], "FAIL")
        self.assertIn("runtime module", rows["runtime"]["message"])

    def test_memory_far_above_recorded_warns(self):
        archive = self.pack("mlp")
        members = tar_members(archive)
        info, data = members[0]
        self.assertEqual(info.name, "manifest.json")
        manifest = json.loads(data)
        manifest["requirements"]["measured"]["peak_memory_bytes"] = 1
        members[0] = (info, canonical_json(manifest))
        write_tar(self.path("edited.dlsys"), members)
        r, report, rows = self.smoke(self.path("edited.dlsys"))
        self.assertEqual(r.returncode, EXIT_OK, r.stdout + r.stderr)
        self.assertEqual(rows["memory"]["status"], "WARN", rows["memory"])
        self.assertIn("more than 1.5x the 1 B recorded at pack time", rows["memory"]["message"])

    def test_pack_records_measured_requirements(self):
        archive = self.pack("mlp", extra_spec="requirements: {latency_budget_ms: 50}\n")
        req = self.manifest(archive)["requirements"]
        self.assertEqual(req["latency_budget_ms"], 50)
        measured = req["measured"]
        self.assertGreater(measured["peak_memory_bytes"], 0)
        self.assertGreater(measured["forward_latency_ms"], 0)
        self.assertEqual(measured["forward_runs"], 5)
        self.assertEqual(measured["example"], "basic")
        self.assertEqual(measured["weights_bytes"], (8 * 4 + 8 + 2 * 8 + 2) * 4)

    def test_source_date_epoch_leaves_measurements_out(self):
        env = {"SOURCE_DATE_EPOCH": "1700000000"}
        extra = "requirements: {latency_budget_ms: 50}\n"
        a = self.pack("mlp", extra_spec=extra, out="a.dlsys", env=env)
        b = self.pack("mlp", extra_spec=extra, out="b.dlsys", env=env)
        req = self.manifest(a)["requirements"]
        self.assertNotIn("measured", req)
        self.assertEqual(req["latency_budget_ms"], 50)
        with open(a, "rb") as fa, open(b, "rb") as fb:
            self.assertEqual(fa.read(), fb.read())
        # Without recorded figures the smoke test still checks everything it can.
        r, report, rows = self.smoke(a)
        self.assertEqual(r.returncode, EXIT_OK, r.stdout + r.stderr)
        self.assertIn("not recorded at pack time", rows["latency"]["message"])

    def test_invalid_requirements_fail_pack_naming_the_field(self):
        model = make_model("mlp", self.path("mlp.pt"))
        r = run("pack", model, "--spec", self.write_spec("requirements: {device: tpu}\n"), "-o",
                self.path("bad.dlsys"))
        self.assertNotEqual(r.returncode, EXIT_OK)
        self.assertIn("device", r.stderr)
        self.assertFalse(os.path.exists(self.path("bad.dlsys")))


if __name__ == "__main__":
    unittest.main()
