"""dlsys monitor on a real nginx's JSON access log (Debian's nginx-light on 127.0.0.1,
components.nginx_json: log_format escape=json, so status and request_time arrive as quoted
strings such as "503" and "0.052"). --field maps the foreign keys onto what monitor knows; the
per-uri summary must match what this test computes from the same log with Python's json module,
and --follow must pick up requests made while it runs."""
import datetime
import json
import os
import shutil
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import components
from clitest import DLSYS, EXIT_OK, MonitorSnapshots, TempDirTest, validate

FIELDS = ["--field", "status=status", "--field", "latency_ms=request_time*1000",
          "--field", "@timestamp=@timestamp"]
SLOW_MS = [5, 10, 20, 30, 40, 60, 80, 120]
QUANTILE_ACCURACY = 0.01  # the sketch's relative accuracy (docs/monitoring.md)


def make_traffic(n):
    """Requests of every kind: 200s, 503s, 404s and proxied slow ones. Returns the count."""
    count = 0
    for i in range(30):
        assert n.get("/ok")[0] == 200
        count += 1
        if i % 4 == 0:
            assert n.get("/err")[0] == 503
            count += 1
        if i % 10 == 0:
            assert n.get("/missing?x=%d" % i)[0] == 404
            count += 1
    for ms in SLOW_MS:
        assert n.get("/slow?ms=%d" % ms)[0] == 200
        count += 1
    return count


def expected_by_uri(lines):
    """What monitor should say per uri, computed with the json module."""
    groups = {}
    for line in lines:
        rec = json.loads(line)
        g = groups.setdefault(rec["uri"], {"requests": 0, "status_4xx": 0, "status_5xx": 0,
                                           "latency": [], "stamps": []})
        status = int(rec["status"])
        g["requests"] += 1
        g["status_4xx"] += 400 <= status < 500
        g["status_5xx"] += 500 <= status < 600
        g["latency"].append(float(rec["request_time"]) * 1000)
        g["stamps"].append(datetime.datetime.fromisoformat(rec["@timestamp"]))
    return groups


def utc(stamp):
    return stamp.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class NginxAccessLog(TempDirTest):
    def monitor(self, *args, timeout=120):
        return subprocess.run([DLSYS, "monitor", *args], capture_output=True, text=True,
                              timeout=timeout)

    def assert_quantile(self, got, values, q, what):
        """got is within the sketch's accuracy of a value whose rank is next to q's rank."""
        s = sorted(values)
        rank = q * (len(s) - 1)
        lo = s[max(0, int(rank) - 1)]
        hi = s[min(len(s) - 1, int(rank) + 2)]
        self.assertGreaterEqual(got, lo * (1 - QUANTILE_ACCURACY) - 1e-9, (what, got, s))
        self.assertLessEqual(got, hi * (1 + QUANTILE_ACCURACY) + 1e-9, (what, got, s))

    def test_once_per_uri_matches_the_log_read_with_json(self):
        with components.nginx_json(self.dir) as n:
            total = make_traffic(n)
            lines = n.wait_logged(total)
            self.assertEqual(len(lines), total)
            r = self.monitor(n.access_log, *FIELDS, "--by", "uri", "--once", "--json")
        self.assertEqual(r.returncode, EXIT_OK, r.stderr)
        s = json.loads(r.stdout)
        validate(s, "monitor-summary.schema.json")
        self.assertEqual(s["bad_lines"], 0)
        self.assertEqual(s["requests"], total)
        want = expected_by_uri(lines)
        got = {g["key"]["uri"]: g for g in s["groups"]}
        self.assertEqual(set(got), set(want))
        self.assertEqual(set(want), {"/ok", "/err", "/missing", "/slow"})
        for uri, w in want.items():
            g = got[uri]
            with self.subTest(uri=uri):
                self.assertEqual(g["requests"], w["requests"])
                self.assertEqual(g["status_4xx"], w["status_4xx"])
                self.assertEqual(g["status_5xx"], w["status_5xx"])
                lat = g["latency_ms"]
                self.assertEqual(lat["count"], w["requests"])
                self.assertAlmostEqual(lat["max"], max(w["latency"]), places=6)
                self.assertAlmostEqual(lat["min"], min(w["latency"]), places=6)
                self.assertAlmostEqual(lat["mean"], sum(w["latency"]) / len(w["latency"]),
                                       places=6)
                for q in ("p50", "p95", "p99"):
                    self.assert_quantile(lat[q], w["latency"], int(q[1:]) / 100, q)
                self.assertEqual(g["first"], utc(min(w["stamps"])))
                self.assertEqual(g["last"], utc(max(w["stamps"])))
        self.assertEqual(got["/err"]["status_5xx"], got["/err"]["requests"])
        # The proxied requests really took time: request_time is what was measured.
        self.assertGreaterEqual(got["/slow"]["latency_ms"]["max"], max(SLOW_MS))

    def test_follow_picks_up_requests_made_while_it_runs(self):
        with components.nginx_json(self.dir) as n:
            assert n.get("/ok")[0] == 200
            n.wait_logged(1)
            m = MonitorSnapshots(self, [n.access_log, *FIELDS, "--by", "uri", "--follow",
                                        "--interval", "20ms", "--json"])
            wait_for = m.wait_for

            def uri(s, u):
                return next((g for g in s["groups"] if g["key"]["uri"] == u), None)

            wait_for(lambda s: s["requests"] == 1, "the request logged before the start")
            for _ in range(5):
                assert n.get("/err")[0] == 503
            assert n.get("/slow?ms=50")[0] == 200
            s = wait_for(lambda s: s["requests"] == 7, "7 requests")
            self.assertEqual(uri(s, "/err")["status_5xx"], 5)
            self.assertGreaterEqual(uri(s, "/slow")["latency_ms"]["max"], 50)
            m.stop()


class Harness(TempDirTest):
    """components.nginx_json on its own: curl's requests land in the JSON access log."""

    def test_curl_requests_are_logged_as_json_with_quoted_numbers(self):
        curl = shutil.which("curl")
        self.assertIsNotNone(curl, "install the Debian package 'curl'")
        with components.nginx_json(self.dir) as n:
            for path, code in (("/ok", "200"), ("/err", "503"), ("/slow?ms=30", "200"),
                               ("/nope", "404")):
                r = subprocess.run([curl, "-s", "-o", "/dev/null", "-w", "%{http_code}",
                                    f"http://127.0.0.1:{n.port}{path}"], capture_output=True,
                                   text=True, timeout=60)
                self.assertEqual(r.stdout, code, r.stderr)
            lines = n.wait_logged(4)
            pid = n.proc.pid
        self.assertIsNotNone(n.proc.returncode, "nginx stopped")
        self.assertEqual(components.descendants(pid), [])
        recs = [json.loads(l) for l in lines]
        self.assertEqual([r["uri"] for r in recs], ["/ok", "/err", "/slow", "/nope"])
        self.assertEqual([r["status"] for r in recs], ["200", "503", "200", "404"])
        self.assertIsInstance(recs[0]["bytes"], int)
        self.assertGreaterEqual(float(recs[2]["request_time"]), 0.030)
        self.assertTrue(recs[2]["upstream"].startswith("127.0.0.1:"))
        self.assertEqual(recs[0]["upstream"], "", "escape=json logs a missing value as empty")
        self.assertEqual(recs[2]["args"], "ms=30")
        datetime.datetime.fromisoformat(recs[0]["@timestamp"])


if __name__ == "__main__":
    unittest.main()
