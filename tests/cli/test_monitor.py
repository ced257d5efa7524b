"""dlsys monitor: summaries of real dlsys serve logs, filters, compressed inputs, bad lines,
hostile strings, exit codes and --json (schemas/monitor-summary.schema.json)."""
import gzip
import json
import os
import subprocess
import unittest

from clitest import (DLSYS, EXIT_INVALID, EXIT_NOT_FOUND, EXIT_OK, EXIT_USAGE, Serve,
                     TempDirTest, make_model, run, validate)

SPEC = """\
name: mlp16
version: 1.0.0
inputs:
  - {name: x, dtype: float32, shape: [-1, 16]}
outputs:
  - {name: y, dtype: float32, shape: [-1, 4]}
examples:
  - name: one
    inputs:
      x: {data: [[1, 2, 3, 4, 5, 6, 7, 8, -1, -2, -3, -4, 0.5, 0.25, 0, 1]]}
"""


class ServeLog(TempDirTest):
    """One real server log, made once: 30 good requests, 4 bad inputs (400), 2 unknown models."""
    log = None

    @classmethod
    def setUpClass(cls):
        import tempfile
        cls.dir = tempfile.mkdtemp(prefix="dlsys-monitor-")
        model = make_model("mlp16", os.path.join(cls.dir, "mlp16.pt"))
        spec = os.path.join(cls.dir, "mlp16.yaml")
        with open(spec, "w") as f:
            f.write(SPEC)
        archive = os.path.join(cls.dir, "mlp16.dlsys")
        r = run("pack", model, "--spec", spec, "-o", archive)
        assert r.returncode == EXIT_OK, r.stderr
        cls.log = os.path.join(cls.dir, "serve.log")
        s = Serve(archive, "--allow-unsigned", "--log-format", "json", "--log-file", cls.log)
        try:
            row = {"name": "x", "datatype": "FP32", "shape": [1, 16], "data": [0.5] * 16}
            for _ in range(30):
                assert s.infer("mlp16", [row])[0] == 200
            bad = dict(row, shape=[1, 15])
            for _ in range(4):
                assert s.infer("mlp16", [bad])[0] == 400
            for _ in range(2):
                assert s.request("POST", "/v2/models/nope/infer", "{}")[0] == 400
        finally:
            assert s.stop() == EXIT_OK

    @classmethod
    def tearDownClass(cls):
        import shutil
        shutil.rmtree(cls.dir, ignore_errors=True)

    def summary(self, *args, stdin=None):
        r = subprocess.run([DLSYS, "monitor", *args, "--json"], capture_output=True, text=True,
                           input=stdin, timeout=120)
        self.assertEqual(r.returncode, EXIT_OK, r.stderr)
        out = json.loads(r.stdout)
        validate(out, "monitor-summary.schema.json")
        return out

    def test_counts_a_real_server_log_per_model_version(self):
        s = self.summary(self.log)
        self.assertEqual(s["bad_lines"], 0)
        self.assertEqual(s["requests"], 36)
        self.assertGreater(s["other_records"], 3, "start, load, ready, stop events")
        groups = {(g["key"]["model"], g["key"]["model_version"]): g for g in s["groups"]}
        g = groups[("mlp16", "1.0.0")]
        self.assertEqual(g["requests"], 34)
        self.assertEqual(g["status_4xx"], 4)
        self.assertEqual(g["status_5xx"], 0)
        self.assertEqual(g["latency_ms"]["count"], 34)
        lat = g["latency_ms"]
        self.assertTrue(0 < lat["min"] <= lat["p50"] <= lat["p95"] <= lat["p99"] <= lat["max"], lat)
        self.assertGreater(g["batch_size_mean"], 0)
        self.assertIsNotNone(g["first"])
        # Requests for an unknown model name it but have no version: "-".
        self.assertEqual(groups[("nope", "-")]["requests"], 2)

    def test_filters_standard_input_and_compressed_rotations(self):
        s = self.summary(self.log, "--where", "status=400", "--by", "model")
        self.assertEqual(s["requests"], 6)
        self.assertEqual(s["by"], ["model"])
        with open(self.log) as f:
            text = f.read()
        self.assertEqual(self.summary("-", stdin=text)["requests"], 36)
        self.assertEqual(self.summary(stdin=text)["requests"], 36, "stdin when it is a pipe")
        gz = self.path("serve.log.1.gz")
        with gzip.open(gz, "wt") as f:
            f.write(text)
        both = self.summary(gz, self.log)
        self.assertEqual(both["requests"], 72)
        self.assertEqual(self.summary(self.log, "--level", "warn")["requests"], 6)

    def test_text_output_is_a_table_with_escaped_keys(self):
        hostile = self.path("hostile.log")
        with open(hostile, "w") as f:
            f.write(json.dumps({"status": 200, "latency_ms": 1.5,
                                "model": "evil\u001b[2J\u202eend", "model_version": "1"}) + "\n")
            f.write("not json\n")
        r = run("monitor", hostile)
        self.assertEqual(r.returncode, EXIT_OK, r.stderr)
        self.assertNotIn("\x1b", r.stdout)
        self.assertNotIn("\u202e", r.stdout)
        self.assertIn("1 requests, 0 other records, 1 bad lines", r.stdout)
        self.assertIn("p99 ms", r.stdout)
        r = run("monitor", self.log)
        self.assertEqual(r.returncode, EXIT_OK, r.stderr)
        line = [l for l in r.stdout.splitlines() if l.startswith("mlp16")][0]
        self.assertEqual(line.split()[:3], ["mlp16", "1.0.0", "34"])

    def test_bad_invocations_have_documented_exit_codes(self):
        for args, code, text in (
                (["missing.log"], EXIT_NOT_FOUND, "missing.log"),
                ([self.dir], EXIT_INVALID, "directory"),
                ([self.log, "--where", "status"], EXIT_USAGE, "FIELD=VALUE"),
                ([self.log, "--since", "5x"], EXIT_USAGE, "duration"),
                ([self.log, "--level", "loud"], EXIT_USAGE, "level"),
                ([self.log, "--by", "model,,x"], EXIT_USAGE, "empty field")):
            r = run("monitor", *args, cwd=self.dir)
            self.assertEqual(r.returncode, code, (args, r.stderr))
            self.assertIn(text, r.stderr)
            r = run("monitor", *args, "--json", cwd=self.dir)
            self.assertEqual(r.returncode, code)
            validate(json.loads(r.stdout), "monitor-summary.schema.json")

    def test_never_loads_libtorch(self):
        env = {"LD_DEBUG": "libs", "DLSYS_RUNTIME_MODULE": "/nonexistent/libdlsys_runtime.so"}
        r = run("monitor", self.log, env=env)
        self.assertEqual(r.returncode, EXIT_OK)
        self.assertNotIn("libtorch", r.stderr)
        self.assertNotIn("libdlsys_runtime", r.stderr)

    def test_help_teaches(self):
        r = run("monitor", "--help")
        self.assertEqual(r.returncode, EXIT_OK)
        for text in ("--by", "--where", "--since", "bad lines", "Examples:"):
            self.assertIn(text, r.stdout)


if __name__ == "__main__":
    unittest.main()
