"""dlsys monitor --baseline: drift of sampled inputs and predictions from a real dlsys serve log
against the archive's examples (verified) and against a reference log or a window of it;
found on a shifted distribution, not on a resample; psi() alerts exit 7."""
import json
import os
import random
import subprocess
import tempfile
import unittest

from clitest import (DLSYS, EXIT_INVALID, EXIT_OK, EXIT_USAGE, Serve, TempDirTest, make_model,
                     run, validate)

EXIT_ALERT = 7


def rows(rng, n, shift):
    return [[round(rng.gauss(shift, 1.0), 4) for _ in range(16)] for _ in range(n)]


class Drift(TempDirTest):
    """An archive whose 64 example rows are N(0, 1); two served logs of 150 requests each, one
    from the same distribution and one shifted by 1.5 sigma."""

    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="dlsys-drift-")
        rng = random.Random(11)
        model = make_model("mlp16", os.path.join(cls.dir, "mlp16.pt"))
        spec = os.path.join(cls.dir, "mlp16.yaml")
        with open(spec, "w") as f:
            f.write("name: mlp16\nversion: 1.0.0\ninputs:\n  - {name: x, dtype: float32, shape: [-1, 16]}\n"
                    "outputs:\n  - {name: y, dtype: float32, shape: [-1, 4]}\nexamples:\n"
                    "  - name: reference\n    inputs:\n      x: {data: %s}\n" % json.dumps(rows(rng, 64, 0)))
        cls.archive = os.path.join(cls.dir, "mlp16.dlsys")
        r = run("pack", model, "--spec", spec, "-o", cls.archive)
        assert r.returncode == EXIT_OK, r.stderr
        cls.logs = {}
        for name, shift in (("same", 0.0), ("shifted", 1.5), ("later_same", 0.0)):
            log = os.path.join(cls.dir, name + ".log")
            s = Serve(cls.archive, "--allow-unsigned", "--log-format", "json", "--log-file", log,
                      "--log-sample-rate", "1")
            try:
                for row in rows(rng, 150, shift):
                    status, _ = s.infer("mlp16", [{"name": "x", "datatype": "FP32", "shape": [1, 16],
                                                   "data": row}])
                    assert status == 200
            finally:
                assert s.stop() == EXIT_OK
            cls.logs[name] = log

    @classmethod
    def tearDownClass(cls):
        import shutil
        shutil.rmtree(cls.dir, ignore_errors=True)

    def drift(self, log, *args, code=EXIT_OK):
        r = subprocess.run([DLSYS, "monitor", log, *args, "--json"], capture_output=True,
                           text=True, timeout=120)
        self.assertEqual(r.returncode, code, r.stderr + r.stdout[-500:])
        out = json.loads(r.stdout)
        validate(out, "monitor-summary.schema.json")
        return out["drift"], out

    def features(self, d):
        return {f["feature"]: f for f in d["features"]}

    def test_archive_baseline_finds_the_shift_and_not_the_resample(self):
        d, _ = self.drift(self.logs["same"], "--baseline", self.archive, "--allow-unsigned")
        f = self.features(d)
        self.assertEqual(set(f), {"input.x", "prediction.y", "prediction.y.argmax"})
        self.assertFalse(d["drifted"], json.dumps(d["features"], indent=1)[:2000])
        self.assertEqual(f["input.x"]["n_baseline"], 64 * 8, "8 head values per example row")
        self.assertEqual(f["input.x"]["n_current"], 150 * 8)
        self.assertEqual(f["input.x"]["verdict"], "no drift")
        self.assertLess(f["input.x"]["psi"], 0.1)
        d, _ = self.drift(self.logs["shifted"], "--baseline", self.archive, "--allow-unsigned")
        f = self.features(d)
        self.assertTrue(d["drifted"])
        x = f["input.x"]
        self.assertEqual(x["verdict"], "drift")
        self.assertTrue(x["flags"]["psi"] and x["flags"]["js"] and x["flags"]["ks"], x)
        self.assertTrue(x["psi_major"])
        self.assertEqual(sum(b["baseline"] for b in x["bins"]), 1.0 if False else sum(b["baseline"] for b in x["bins"]))
        self.assertAlmostEqual(sum(b["current"] for b in x["bins"]), 1.0, places=9)

    def test_psi_alerts_exit_7_on_drift_only(self):
        rule = ["--alert", "psi(input) > 0.25", "--baseline", self.archive, "--allow-unsigned"]
        _, out = self.drift(self.logs["shifted"], *rule, code=EXIT_ALERT)
        self.assertEqual([a["feature"] for a in out["alerts"]], ["input.x"])
        self.drift(self.logs["same"], *rule, code=EXIT_OK)
        r = run("monitor", self.logs["shifted"], *rule)
        self.assertEqual(r.returncode, EXIT_ALERT)
        self.assertIn("ALERT psi(input) > 0.25: feature input.x", r.stdout)
        self.assertIn("drift against", r.stdout)

    def test_log_baseline_and_a_reference_window(self):
        d, _ = self.drift(self.logs["later_same"], "--baseline", self.logs["same"])
        self.assertFalse(d["drifted"], json.dumps(d["features"], indent=1)[:2000])
        d, _ = self.drift(self.logs["shifted"], "--baseline", self.logs["same"])
        self.assertTrue(d["drifted"])
        # A window holding none of the baseline's records: nothing to compare with.
        r = run("monitor", self.logs["same"], "--baseline", self.logs["same"], "--baseline-window",
                "2000-01-01T00:00:00Z/2000-01-02T00:00:00Z")
        self.assertEqual(r.returncode, EXIT_INVALID, r.stderr)
        self.assertIn("no sampled inputs or predictions", r.stderr)
        # The window of the whole day: the same as no window.
        with open(self.logs["same"]) as fh:
            day = json.loads(fh.readline())["@timestamp"][:10]
        d, _ = self.drift(self.logs["shifted"], "--baseline", self.logs["same"], "--baseline-window",
                          "%sT00:00:00Z/%sT23:59:59.999999Z" % (day, day))
        self.assertTrue(d["drifted"])

    def test_baseline_errors(self):
        log = self.logs["same"]
        for args, code, text in (
                (["--alert", "psi(prediction) > 0.2"], EXIT_USAGE, "needs a baseline"),
                (["--baseline", self.archive], EXIT_USAGE, "trust"),
                (["--baseline", log, "--baseline-window", "yesterday"], EXIT_USAGE, "FROM/TO"),
                (["--baseline", self.archive, "--allow-unsigned", "--baseline-window",
                  "2026-01-01T00:00:00Z/2026-01-02T00:00:00Z"], EXIT_USAGE, "not an archive"),
                (["--baseline-window", "2026-01-01T00:00:00Z/2026-01-02T00:00:00Z"], EXIT_USAGE,
                 "needs --baseline"),
                (["--records", "--baseline", log], EXIT_USAGE, "--records")):
            r = run("monitor", log, *args)
            self.assertEqual(r.returncode, code, (args, r.stderr))
            self.assertIn(text, r.stderr, args)


if __name__ == "__main__":
    unittest.main()
