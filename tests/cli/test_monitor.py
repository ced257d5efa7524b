"""dlsys monitor: summaries of real dlsys serve logs, filters, compressed inputs, bad lines,
hostile strings, exit codes and --json (schemas/monitor-summary.schema.json)."""
import gzip
import json
import os
import subprocess
import unittest

from clitest import (DLSYS, EXIT_INVALID, EXIT_NOT_FOUND, EXIT_OK, EXIT_USAGE, MonitorSnapshots,
                     Serve, TempDirTest, make_model, run, validate)

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

    def test_alerts_exit_7_when_they_fire_and_0_when_not(self):
        r = run("monitor", self.log, "--alert", "status_4xx > 3", "--alert", "p99_ms > 100000")
        self.assertEqual(r.returncode, 7, r.stderr)
        self.assertIn("ALERT status_4xx > 3: mlp16 1.0.0 (4.0000)", r.stdout)
        self.assertNotIn("p99_ms > 100000:", r.stdout)
        self.assertIn("monitor.alert", r.stderr, "a firing alert is logged")
        r = run("monitor", self.log, "--alert", "status_4xx > 3", "--json")
        self.assertEqual(r.returncode, 7)
        out = json.loads(r.stdout)
        validate(out, "monitor-summary.schema.json")
        self.assertEqual(out["alerts"], [{"rule": "status_4xx > 3",
                                          "key": {"model": "mlp16", "model_version": "1.0.0"},
                                          "value": 4.0}])
        r = run("monitor", self.log, "--alert", "status_5xx > 0", "--alert", "error_rate>0")
        self.assertEqual(r.returncode, EXIT_OK, r.stdout)
        r = run("monitor", self.log, "--alert", "p99_ms >> 5")
        self.assertEqual(r.returncode, EXIT_USAGE)
        self.assertIn("column 9: expected a number", r.stderr)
        self.assertIn("\n    p99_ms >> 5\n            ^\n", r.stderr)

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


def request_line(i, status=200):
    return json.dumps({"@timestamp": "2026-12-01T10:00:%02d.000000Z" % (i % 60),
                       "status": status, "latency_ms": 1.0 + i, "model": "m",
                       "model_version": "1"}) + "\n"


class Follow(TempDirTest):
    """--follow on a file that grows, is rotated and truncated, read through JSON snapshots."""

    def start(self, log):
        return MonitorSnapshots(self, [log, "--follow", "--interval", "20ms", "--json"])

    def test_growth_partial_lines_rotation_truncation_and_stop(self):
        log = self.path("serve.log")
        with open(log, "w") as f:
            f.writelines(request_line(i) for i in range(5))
        m = self.start(log)
        m.wait_for(lambda s: s["requests"] == 5, "the existing 5 requests")
        with open(log, "a") as f:
            f.writelines(request_line(i) for i in range(5, 12))
        m.wait_for(lambda s: s["requests"] == 12, "12 requests after appending")
        # A line in flight waits for its newline.
        with open(log, "a") as f:
            f.write('{"status":503,"latency_ms":2')
        size = os.path.getsize(log)
        s = m.wait_for(lambda s: s["bytes"] == size, "the partial line read")
        self.assertEqual(s["requests"], 12)
        with open(log, "a") as f:
            f.write('.5}\n')
        s = m.wait_for(lambda s: s["requests"] == 13, "the completed line")
        self.assertEqual(s["groups"][-1]["status_5xx"], 1)
        # Rotation: the old file gets two more lines (and a last one without a newline)
        # before the new one appears; all are counted, then the new file from its start.
        os.rename(log, log + ".1")
        with open(log + ".1", "a") as f:
            f.writelines(request_line(i) for i in range(13, 15))
            f.write(request_line(15).rstrip("\n"))
        with open(log, "w") as f:
            f.writelines(request_line(i) for i in range(16, 19))
        s = m.wait_for(lambda s: s["requests"] == 19, "19 requests across the rotation")
        self.assertEqual(s["follow"]["rotations"], 1)
        # Truncation: counted lines stay counted; the file is read again from 0.
        os.truncate(log, 0)
        m.wait_for(lambda s: s["follow"]["truncations"] == 1, "the truncation")
        with open(log, "a") as f:
            f.writelines(request_line(i) for i in range(19, 23))
        m.wait_for(lambda s: s["requests"] == 23, "23 requests after the truncation")
        snapshots = m.stop()
        self.assertEqual(snapshots[-1]["requests"], 23, "a last snapshot on SIGTERM")

    def test_a_terminal_gets_frames_redrawn_in_place(self):
        import pty
        import select
        import signal
        import time
        log = self.path("t.log")
        with open(log, "w") as f:
            f.writelines(request_line(i) for i in range(3))
        pid, fd = pty.fork()
        if pid == 0:  # the child: dlsys on the pty's terminal
            os.environ["TERM"] = "xterm"
            os.environ.pop("NO_COLOR", None)
            os.execv(DLSYS, [DLSYS, "monitor", log, "--follow", "--interval", "20ms"])
        out = b""
        deadline = time.monotonic() + 60
        while out.count(b"\x1b[H") < 3 and time.monotonic() < deadline:
            if select.select([fd], [], [], 1)[0]:
                try:
                    out += os.read(fd, 65536)
                except OSError:
                    break
        os.kill(pid, signal.SIGTERM)
        _, status = os.waitpid(pid, 0)
        os.close(fd)
        self.assertEqual(os.waitstatus_to_exitcode(status), EXIT_OK)
        self.assertGreaterEqual(out.count(b"\x1b[H"), 3, out[-500:])
        self.assertNotIn(b"\x1b[2J", out, "never a full clear: it flickers")
        frame = out.split(b"\x1b[H")[1]
        lines = frame.split(b"\r\n")
        self.assertTrue(lines[0].startswith(b"== "), frame)
        self.assertTrue(lines[1].startswith(b"3 requests"), frame)
        self.assertTrue(all(l.endswith(b"\x1b[K") for l in lines[:-1]), frame)
        self.assertEqual(lines[-1], b"\x1b[J", "everything below the frame cleared")

    def test_follow_refuses_what_it_cannot_follow(self):
        log = self.path("a.log")
        with open(log, "w") as f:
            f.write(request_line(0))
        gz = self.path("a.log.gz")
        with gzip.open(gz, "wt") as f:
            f.write(request_line(0))
        for args, code, text in (([log, log], EXIT_USAGE, "exactly one"),
                                 ([gz], EXIT_INVALID, "compressed"),
                                 ([log, "--interval", "1ms"], EXIT_USAGE, "at least 10ms"),
                                 ([self.path("none.log")], EXIT_NOT_FOUND, "none.log")):
            r = run("monitor", *args, "--follow")
            self.assertEqual(r.returncode, code, (args, r.stderr))
            self.assertIn(text, r.stderr)


class Compare(TempDirTest):
    def write_log(self, canary_error_rate, canary_slowdown):
        import random
        rng = random.Random(5)
        log = self.path("ab.log")
        with open(log, "w") as f:
            for i in range(6000):
                canary = i % 2 == 1
                bad = rng.random() < (canary_error_rate if canary else 0.01)
                lat = rng.lognormvariate(0, 0.5) * (canary_slowdown if canary else 1.0)
                f.write(json.dumps({"status": 503 if bad else 200, "latency_ms": lat,
                                    "model": "m", "model_version": "1.1.0" if canary else "1.0.0"}) + "\n")
        return log

    def compare(self, log):
        r = run("monitor", log, "--compare", "model_version=1.0.0,1.1.0", "--json")
        self.assertEqual(r.returncode, EXIT_OK, r.stderr)
        out = json.loads(r.stdout)
        validate(out, "monitor-summary.schema.json")
        return out["comparison"]

    def test_a_worse_canary_is_called_worse_and_a_twin_is_not(self):
        c = self.compare(self.write_log(0.05, 1.3))
        self.assertEqual(c["error_rate"]["verdict"], "worse")
        self.assertEqual(c["latency"]["verdict"], "worse")
        self.assertEqual((c["stable"]["requests"], c["canary"]["requests"]), (3000, 3000))
        self.assertLess(c["error_rate"]["p_value"], 0.001)
        twin = self.compare(self.write_log(0.01, 1.0))
        self.assertEqual(twin["error_rate"]["verdict"], "no significant difference")
        self.assertEqual(twin["latency"]["verdict"], "no significant difference")
        r = run("monitor", self.path("ab.log"), "--compare", "model_version=1.0.0,1.1.0")
        self.assertEqual(r.returncode, EXIT_OK)
        self.assertIn("canary model_version=1.1.0 (3000 requests) vs stable 1.0.0 (3000):", r.stdout)
        self.assertIn("no significant difference", r.stdout)

    def test_bad_compare_specs_are_usage_errors(self):
        log = self.write_log(0.01, 1.0)
        for spec in ("model_version", "model_version=1.0.0", "=a,b", "v=a,", "v=a,a", "v=a,b,c"):
            r = run("monitor", log, "--compare", spec)
            self.assertEqual(r.returncode, EXIT_USAGE, spec)
            self.assertIn("FIELD=STABLE,CANARY", r.stderr)


if __name__ == "__main__":
    unittest.main()
