"""dlsys monitor: sliding windows and trends against exact computation on known data,
`for DURATION` rules, filter mode (--records), --field mappings of foreign logs, and the
terminal view (ASCII fallback without a UTF-8 locale, fitted to the terminal, redrawn on
resize)."""
import fcntl
import json
import math
import os
import random
import re
import select
import signal
import struct
import subprocess
import termios
import time
import unittest

from clitest import DLSYS, EXIT_OK, EXIT_USAGE, TempDirTest, run, validate

EXIT_ALERT = 7
T0 = 1_796_000_400_000_000  # 2026-12-01T... µs, a multiple of every tick used here
TICK = 6_000_000            # a 1m window's tick


def stamp(us):
    secs, frac = divmod(us, 1_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + ".%06dZ" % frac


def lower_quantile(values, q):
    """The rank the sketch answers for: floor(q * (n - 1)) of the sorted values, 0-based."""
    v = sorted(values)
    return v[int(math.floor(q * (len(v) - 1)))]


def make_log(path, seed=7):
    """10 minutes, ~5 requests a second; latency and errors change with time."""
    rng = random.Random(seed)
    records = []
    t = T0 + 1234
    while t < T0 + 600_000_000:
        minute = (t - T0) // 60_000_000
        latency = rng.lognormvariate(math.log(5 + minute), 0.5)
        status = 503 if rng.random() < (0.02 if minute < 8 else 0.3) else 200
        records.append({"@timestamp": stamp(t), "log.level": "INFO", "event": "serve.request",
                        "message": "POST /v2/models/m/infer", "status": status,
                        "latency_ms": round(latency, 4), "model": "m", "model_version": "1"})
        t += rng.randint(50_000, 350_000)
    with open(path, "w") as f:
        for r in records:
            f.write(json.dumps(r) + "\n")
    return records


def us_of(r):
    s = r["@timestamp"]
    secs = int(time.mktime(time.strptime(s[:19], "%Y-%m-%dT%H:%M:%S"))) - time.timezone
    return secs * 1_000_000 + int(s[20:26])


class Windows(TempDirTest):
    def test_window_and_series_match_exact_computation(self):
        log = self.path("serve.log")
        records = make_log(log)
        r = run("monitor", log, "--once", "--window", "1m", "--json")
        self.assertEqual(r.returncode, EXIT_OK, r.stderr)
        s = json.loads(r.stdout)
        validate(s, "monitor-summary.schema.json")
        g = s["groups"][0]
        last = max(us_of(x) for x in records)
        self.assertEqual(s["window"]["end"], stamp(last))
        # The window: the 10 ticks up to the newest record's.
        start = (last // TICK - 9) * TICK
        inside = [x for x in records if start <= us_of(x) <= last]
        w = g["window"]
        self.assertEqual(w["from"], stamp(start))
        self.assertEqual(w["requests"], len(inside))
        self.assertEqual(w["status_5xx"], sum(x["status"] >= 500 for x in inside))
        self.assertAlmostEqual(w["rate_per_s"], len(inside) / ((last - start) / 1e6), places=6)
        lat = [x["latency_ms"] for x in inside]
        for q, name in ((0.5, "p50"), (0.95, "p95"), (0.99, "p99")):
            exact = lower_quantile(lat, q)
            self.assertLessEqual(abs(w["latency_ms"][name] - exact), 0.01 * exact + 1e-9,
                                 "%s of the window" % name)
        self.assertAlmostEqual(w["latency_ms"]["mean"], sum(lat) / len(lat), places=6)
        # Since start, over everything.
        all_lat = [x["latency_ms"] for x in records]
        for q, name in ((0.5, "p50"), (0.99, "p99")):
            exact = lower_quantile(all_lat, q)
            self.assertLessEqual(abs(g["latency_ms"][name] - exact), 0.01 * exact + 1e-9)
        # Series: one entry per tick with requests, the newest 30 ticks.
        series = g["series"]
        self.assertEqual(len(series), 30)
        for point in series:
            t0 = us_of({"@timestamp": point["start"]})
            ticked = [x for x in records if t0 <= us_of(x) < t0 + TICK]
            self.assertEqual(point["requests"], len(ticked), point["start"])
            exact = lower_quantile([x["latency_ms"] for x in ticked], 0.99)
            self.assertLessEqual(abs(point["p99_ms"] - exact), 0.01 * exact + 1e-9)
            errors = sum(x["status"] >= 500 for x in ticked)
            self.assertAlmostEqual(point["error_rate"], errors / len(ticked))

    def test_text_view_shows_the_window_with_trends(self):
        log = self.path("serve.log")
        make_log(log)
        r = run("monitor", log, "--window", "2m", env={**os.environ, "LANG": "C.UTF-8"})
        self.assertEqual(r.returncode, EXIT_OK, r.stderr)
        self.assertIn("last 2m (to ", r.stdout)
        self.assertIn("trends: 30 x 12s", r.stdout)
        self.assertRegex(r.stdout, "[\u2581-\u2588]{10}")
        r = run("monitor", log, "--window", "2m", env={**os.environ, "LANG": "C", "LC_ALL": ""})
        self.assertEqual(r.returncode, EXIT_OK, r.stderr)
        self.assertTrue(r.stdout.isascii(), "no UTF-8 locale: ASCII trends")
        self.assertRegex(r.stdout, r"[_.\-:=+*#]{10}")
        r = run("monitor", log)
        self.assertNotIn("last 1m", r.stdout, "a plain summary has no window unless asked")

    def test_for_rules_fire_only_when_the_rule_held_that_long(self):
        log = self.path("serve.log")
        make_log(log)
        # The error rate jumped to ~30% two minutes before the end.
        for rule, code in (("error_rate > 0.15 for 1m", EXIT_ALERT),
                           ("error_rate > 0.15 for 3m", EXIT_OK),
                           ("error_rate > 0.15", EXIT_ALERT),
                           ("p50_ms > 1 for 9m", EXIT_ALERT),
                           ("p50_ms > 1 for 11m", EXIT_OK)):
            r = run("monitor", log, "--window", "1m", "--alert", rule, "--json")
            self.assertEqual(r.returncode, code, rule + "\n" + r.stdout[-300:] + r.stderr)
            s = json.loads(r.stdout)
            self.assertEqual(len(s["alerts"]), 1 if code == EXIT_ALERT else 0, rule)
        # The 1m error rate of the last minute, not of all 10 minutes, is what rules see.
        r = run("monitor", log, "--window", "1m", "--alert", "error_rate < 0.1")
        self.assertEqual(r.returncode, EXIT_OK, r.stdout)
        r = run("monitor", log, "--alert", "error_rate < 0.1")
        self.assertEqual(r.returncode, EXIT_ALERT, "without --window: over everything")

    def test_bad_window_and_for_are_usage_errors(self):
        log = self.path("serve.log")
        make_log(log)
        for args, text in ((["--window", "10ms"], "at least 100ms"),
                           (["--window", "1x"], "--window"),
                           (["--alert", "p99_ms > 1 for 2h"], "longer --window"),
                           (["--alert", "p99_ms > 1 for"], "column 15")):
            r = run("monitor", log, *args)
            self.assertEqual(r.returncode, EXIT_USAGE, args)
            self.assertIn(text, r.stderr, args)


class Records(TempDirTest):
    def write(self):
        log = self.path("mixed.log")
        lines = [
            {"@timestamp": "2026-12-01T10:00:00.123456Z", "log.level": "INFO", "event": "serve.start",
             "message": "listening", "service": "dlsys-serve", "pid": 1, "port": 8080},
            {"@timestamp": "2026-12-01T10:00:01.000000Z", "log.level": "INFO", "event": "serve.request",
             "message": "POST /v2/models/m/infer", "status": 200, "latency_ms": 1.5, "model": "m"},
            {"@timestamp": "2026-12-01T10:00:02.000000Z", "log.level": "ERROR", "event": "serve.request",
             "message": "evil \x1b[31mred\x1b]0;title\x07 \u202e", "status": 503, "latency_ms": 9,
             "model": "m", "error_type": "model failure", "input": {"x": {"head": [1]}}},
        ]
        with open(log, "w") as f:
            for x in lines:
                f.write(json.dumps(x) + "\n")
            f.write("not json\n")
        return log, lines

    def test_filter_mode_prints_matching_records_readably_and_escaped(self):
        log, lines = self.write()
        r = run("monitor", log, "--records", "--where", "status=503")
        self.assertEqual(r.returncode, EXIT_OK, r.stderr)
        out = r.stdout.splitlines()
        self.assertEqual(len(out), 1, r.stdout)
        self.assertTrue(out[0].startswith("2026-12-01T10:00:02.000Z ERROR serve.request: evil "), out[0])
        self.assertIn('error_type="model failure"', out[0])
        self.assertNotIn("\x1b", r.stdout, "escape sequences from the log never reach the terminal")
        self.assertNotIn("\u202e", r.stdout)
        self.assertNotIn("input=", out[0], "drift samples are hidden")
        self.assertIn("1 bad lines", r.stderr)
        r = run("monitor", log, "--records", "--level", "info")
        self.assertEqual(len(r.stdout.splitlines()), 3)
        self.assertIn("serve.start: listening port=8080", r.stdout)
        self.assertNotIn("pid=", r.stdout)

    def test_json_passes_records_through_unchanged(self):
        log, lines = self.write()
        with open(log) as f:
            raw = f.read().splitlines()
        r = run("monitor", log, "--records", "--json", "--where", "model=m")
        self.assertEqual(r.returncode, EXIT_OK, r.stderr)
        self.assertEqual(r.stdout.splitlines(), raw[1:3], "byte for byte")

    def pty_run(self, env, *args):
        import pty
        pid, fd = pty.fork()
        if pid == 0:
            os.environ.clear()
            os.environ.update(env)
            os.execv(DLSYS, [DLSYS, "monitor", *args])
        out = b""
        while True:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
        _, status = os.waitpid(pid, 0)
        os.close(fd)
        return os.waitstatus_to_exitcode(status), out

    def test_colour_on_a_terminal_unless_no_color_or_dumb(self):
        log, _ = self.write()
        base = {"PATH": os.environ.get("PATH", "/usr/bin"), "TERM": "xterm"}
        code, out = self.pty_run(base, log, "--records")
        self.assertEqual(code, EXIT_OK)
        self.assertIn(b"\x1b[31;1mERROR", out, "levels in colour on a terminal")
        for env in ({**base, "NO_COLOR": "1"}, {**base, "TERM": "dumb"}):
            code, out = self.pty_run(env, log, "--records")
            self.assertEqual(code, EXIT_OK)
            self.assertNotIn(b"\x1b[", out, env)
        r = run("monitor", log, "--records")
        self.assertNotIn("\x1b[", r.stdout, "no colour into a pipe")

    def test_follow_prints_records_as_they_arrive(self):
        log, _ = self.write()
        p = subprocess.Popen([DLSYS, "monitor", log, "--records", "--follow", "--where",
                              "event=serve.request", "--json"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.addCleanup(lambda: (p.kill(), p.wait(), p.stdout.close(), p.stderr.close()))
        got = b""
        deadline = time.monotonic() + 60
        appended = False
        while got.count(b"\n") < 3 and time.monotonic() < deadline:
            if not appended and got.count(b"\n") == 2:
                with open(log, "a") as f:
                    f.write(json.dumps({"event": "serve.request", "status": 200, "n": 3}) + "\n")
                    f.write(json.dumps({"event": "other", "status": 200}) + "\n")
                appended = True
            if select.select([p.stdout], [], [], 1)[0]:
                got += os.read(p.stdout.fileno(), 65536)
        self.assertEqual(got.count(b"\n"), 3, got)
        self.assertIn(b'"n": 3', got.splitlines()[-1])
        p.terminate()
        self.assertEqual(p.wait(timeout=60), EXIT_OK)

    def test_records_refuse_summary_options(self):
        log, _ = self.write()
        r = run("monitor", log, "--records", "--alert", "p99_ms > 1")
        self.assertEqual(r.returncode, EXIT_USAGE)


class Fields(TempDirTest):
    def test_foreign_log_through_field_mappings(self):
        log = self.path("access.log")
        rows = [("/a", "200", "0.004"), ("/a", "503", "0.020"), ("/b", "200", "-"),
                ("/b", "404", "0.001"), ("/a", "200", "0.010")]
        with open(log, "w") as f:
            for i, (uri, status, rt) in enumerate(rows):
                f.write(json.dumps({"time": "2026-12-01T10:00:0%d+00:00" % i, "req": {"uri": uri},
                                    "code": status, "request_time": rt}) + "\n")
        r = run("monitor", log, "--field", "latency_ms=request_time*1000", "--field", "status=code",
                "--field", "@timestamp=time", "--field", "uri=/req/uri", "--by", "uri", "--json")
        self.assertEqual(r.returncode, EXIT_OK, r.stderr)
        s = json.loads(r.stdout)
        validate(s, "monitor-summary.schema.json")
        self.assertEqual(s["bad_lines"], 0)
        g = {x["key"]["uri"]: x for x in s["groups"]}
        self.assertEqual(g["/a"]["requests"], 3)
        self.assertEqual(g["/a"]["status_5xx"], 1)
        self.assertAlmostEqual(g["/a"]["latency_ms"]["max"], 20.0)
        self.assertAlmostEqual(g["/a"]["latency_ms"]["min"], 4.0)
        self.assertEqual(g["/b"]["status_4xx"], 1)
        self.assertEqual(g["/b"]["latency_ms"]["count"], 1, "'-' is a missing latency")
        self.assertEqual(g["/a"]["first"], "2026-12-01T10:00:00.000000Z")
        # Unmapped, the same quoted numbers are the wrong type: bad lines, as before.
        r = run("monitor", log, "--field", "latency_ms=request_time*1000", "--json")
        self.assertEqual(json.loads(r.stdout)["requests"], 4, "status is missing, latency counts")

    def test_bad_field_mappings_are_usage_errors(self):
        log = self.path("a.log")
        with open(log, "w") as f:
            f.write("{}\n")
        for spec, text in (("latency_ms", "NAME=PATH"), ("=x", "NAME=PATH"),
                           ("latency_ms=t*0", "non-zero"), ("status=code*2", "only numbers"),
                           ("latency_ms=", "empty"), ("latency_ms=/", "names nothing")):
            r = run("monitor", log, "--field", spec)
            self.assertEqual(r.returncode, EXIT_USAGE, spec)
            self.assertIn(text, r.stderr, spec)


class Terminal(TempDirTest):
    """The live view on a pty: fitted to its size, redrawn when it is resized."""

    def test_fits_the_terminal_and_redraws_on_resize(self):
        import pty
        log = self.path("serve.log")
        make_log(log)
        pid, fd = pty.fork()
        if pid == 0:
            os.environ["TERM"] = "xterm"
            os.environ["LANG"] = "C.UTF-8"
            os.environ.pop("NO_COLOR", None)
            os.execv(DLSYS, [DLSYS, "monitor", log, "--follow", "--interval", "1h"])
        out = b""

        def read_until(pred, what):
            nonlocal out
            deadline = time.monotonic() + 60
            while not pred(out) and time.monotonic() < deadline:
                if select.select([fd], [], [], 1)[0]:
                    out += os.read(fd, 65536)
            self.assertTrue(pred(out), "%s: %r" % (what, out[-400:]))

        def frames():
            return [re.sub(rb"\x1b\[[0-9;]*[A-Za-z]", b"", f) for f in out.split(b"\x1b[H")[1:]]

        try:
            # The interval is an hour: every frame after the first comes from a resize (the
            # kernel signals SIGWINCH to the terminal's foreground process).
            read_until(lambda o: o.count(b"\x1b[J") >= 1, "the first frame")
            fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 8, 60, 0, 0))
            read_until(lambda o: o.count(b"\x1b[J") >= 2, "a frame after the resize to 60x8")
            frame = frames()[-1].decode()
            lines = frame.split("\r\n")
            self.assertLessEqual(len([l for l in lines if l]), 7, frame)
            self.assertTrue(all(len(l) <= 60 for l in lines), frame)
            self.assertIn("more lines", frame)
            fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 60, 200, 0, 0))
            read_until(lambda o: o.count(b"\x1b[J") >= 3, "a frame after the resize to 200x60")
            wide = frames()[-1].decode()
            self.assertNotIn("more lines", wide)
            self.assertGreater(max(len(l) for l in wide.split("\r\n")), 60)
        finally:
            os.kill(pid, signal.SIGTERM)
            os.waitpid(pid, 0)
            os.close(fd)


if __name__ == "__main__":
    unittest.main()


class DefaultMode(TempDirTest):
    """Without --once or --follow: a live view on a terminal, one summary into a pipe."""

    def test_live_on_a_terminal_summary_into_a_pipe(self):
        import pty
        log = self.path("serve.log")
        make_log(log)
        r = run("monitor", log)
        self.assertEqual(r.returncode, EXIT_OK)
        self.assertNotIn("\x1b[", r.stdout, "into a pipe: one plain summary")
        self.assertEqual(r.stdout.count("3013 requests"), 1)
        pid, fd = pty.fork()
        if pid == 0:
            os.environ["TERM"] = "xterm"
            os.environ.pop("NO_COLOR", None)
            os.execv(DLSYS, [DLSYS, "monitor", log, "--interval", "20ms"])
        out, deadline = b"", time.monotonic() + 60
        try:
            while out.count(b"\x1b[H") < 3 and time.monotonic() < deadline:
                if select.select([fd], [], [], 1)[0]:
                    out += os.read(fd, 65536)
        finally:
            os.kill(pid, signal.SIGTERM)
            _, status = os.waitpid(pid, 0)
            os.close(fd)
        self.assertGreaterEqual(out.count(b"\x1b[H"), 3, "frames redrawn in place: %r" % out[-300:])
        self.assertIn(b"last 1m", out, "the live view shows the window")
        self.assertEqual(os.waitstatus_to_exitcode(status), EXIT_OK)

    def test_once_and_follow_exclude_each_other(self):
        log = self.path("a.log")
        with open(log, "w") as f:
            f.write("{}\n")
        r = run("monitor", log, "--once", "--follow")
        self.assertEqual(r.returncode, EXIT_USAGE)
        self.assertIn("exclude each other", r.stderr)


class FollowPipe(TempDirTest):
    def test_follows_a_pipe_until_its_writer_closes_it(self):
        p = subprocess.Popen([DLSYS, "monitor", "--follow", "--interval", "20ms", "--json"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.addCleanup(lambda: (p.kill(), p.wait(), p.stdout.close(), p.stderr.close()))
        line = lambda i: (json.dumps({"status": 200, "latency_ms": i + 1, "model": "m",
                                      "model_version": "1"}) + "\n").encode()
        p.stdin.write(b"".join(line(i) for i in range(5)))
        p.stdin.flush()
        buf, deadline = b"", time.monotonic() + 60
        while b'"requests":5' not in buf and time.monotonic() < deadline:
            if select.select([p.stdout], [], [], 1)[0]:
                buf += os.read(p.stdout.fileno(), 65536)
        self.assertIn(b'"requests":5', buf, "5 requests seen while the pipe is open")
        self.assertIsNone(p.poll(), "still following")
        p.stdin.write(line(5) + line(6).rstrip(b"\n"))  # the last line has no newline
        p.stdin.close()
        self.assertEqual(p.wait(timeout=60), EXIT_OK, p.stderr.read())
        last = json.loads((buf + p.stdout.read()).splitlines()[-1])
        validate(last, "monitor-summary.schema.json")
        self.assertEqual(last["requests"], 7, "a last snapshot when the writer closed the pipe")
