"""`dlsys monitor --url` against a real `dlsys serve` and a real Prometheus 2.42 scraping it.

Since-start values (request totals, histogram_quantile over the cumulative buckets) must equal
Prometheus's answers exactly: same counters, same algorithm. Window values come from monitor's
own two scrapes, which this test sees through a recording proxy: they must equal rate() and
histogram_quantile applied to those two bodies (a port of Prometheus 2.42's extrapolatedRate and
bucketQuantile below), and be close to the live Prometheus's rate() over about the same time
(not equal: Prometheus scraped at other instants)."""
import http.client
import http.server
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.parse

sys.path.insert(0, os.path.dirname(__file__))
from clitest import EXIT_OK, EXIT_USAGE, EXIT_INVALID, EXIT_UNAVAILABLE, SOURCE_DIR, Serve, run
from clitest import validate
from test_serve_metrics import (MISSING_PACKAGE, PROMETHEUS, PYTHON, free_port, http_get,
                                parse_exposition, stop)

MODEL, VERSION = "iris-mlp", "1.0.0"
SUCCESS = "dlsys_inference_request_success_total"
FAILURE = "dlsys_inference_request_failure_total"
BUCKET = "dlsys_inference_request_duration_seconds_bucket"


# -- Prometheus 2.42's functions, for samples the test knows ----------------------------------

def go_seconds(ms):
    """time.Duration(ms).Seconds() as Go computes it."""
    ns = ms * 1000000
    return float(ns // 1000000000) + float(ns % 1000000000) / 1e9


def extrapolated_rate(points, start, end):
    """promql/functions.go extrapolatedRate(isCounter, isRate) over [(t_ms, v)]."""
    points = [p for p in points if start <= p[0] <= end]
    if len(points) < 2:
        return None
    result = points[-1][1] - points[0][1]
    prev = points[0][1]
    for _, v in points[1:]:
        if v < prev:
            result += prev
        prev = v
    to_start = (points[0][0] - start) / 1000
    to_end = (end - points[-1][0]) / 1000
    sampled = (points[-1][0] - points[0][0]) / 1000
    average = sampled / (len(points) - 1)
    if result > 0 and points[0][1] >= 0:
        to_start = min(to_start, sampled * (points[0][1] / result))
    interval = sampled
    interval += to_start if to_start < average * 1.1 else average / 2
    interval += to_end if to_end < average * 1.1 else average / 2
    factor = interval / sampled / go_seconds(end - start)
    return result * factor


def bucket_quantile(q, buckets):
    """promql/quantile.go bucketQuantile over [(upper_bound, count)]."""
    if math.isnan(q):
        return math.nan
    if q < 0:
        return -math.inf
    if q > 1:
        return math.inf
    b = sorted(buckets)
    if not b or b[-1][0] != math.inf:
        return math.nan
    merged = [list(b[0])]
    for ub, c in b[1:]:
        if ub == merged[-1][0]:
            merged[-1][1] += c
        else:
            merged.append([ub, c])
    top = merged[0][1]
    for m in merged[1:]:
        top = max(top, m[1])
        m[1] = top
    if len(merged) < 2 or merged[-1][1] == 0:
        return math.nan
    rank = q * merged[-1][1]
    i = next((k for k in range(len(merged) - 1) if merged[k][1] >= rank), len(merged) - 1)
    if i == len(merged) - 1:
        return merged[-2][0]
    if i == 0 and merged[0][0] <= 0:
        return merged[0][0]
    lo, count = 0.0, merged[i][1]
    if i > 0:
        lo = merged[i - 1][0]
        count -= merged[i - 1][1]
        rank -= merged[i - 1][1]
    return lo + (merged[i][0] - lo) * (rank / count)


def series(body):
    """{(name, frozenset(labels)): value} of an exposition."""
    out = {}
    for fam in parse_exposition(body).values():
        for name, labels, value in fam["samples"]:
            out[(name, frozenset(labels.items()))] = value
    return out


class RecordingProxy:
    """GET /metrics forwarded to dlsys serve; every body kept, in order."""

    def __init__(self, upstream_port):
        bodies = self.bodies = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                status, headers, body = http_get(upstream_port, self.path)
                bodies.append(body.decode())
                self.send_response(status)
                self.send_header("Content-Type", headers.get("content-type", "text/plain"))
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class MonitorUrl(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="dlsys-monitor-url-")
        cls.server = cls.prom = None
        try:
            model_dir = os.path.join(cls.dir, "model")
            subprocess.run([PYTHON, os.path.join(SOURCE_DIR, "scripts", "make_example_model.py"),
                            model_dir], check=True, capture_output=True, timeout=300)
            archive = os.path.join(cls.dir, "iris.dlsys")
            r = run("pack", os.path.join(model_dir, "best_model_final_v7.pt"), "--spec",
                    os.path.join(model_dir, "dlsys.yaml"), "-o", archive)
            if r.returncode != EXIT_OK:
                raise AssertionError(f"dlsys pack failed ({r.returncode}): {r.stderr}")
            cls.server = Serve(archive, "--allow-unsigned",
                               stderr_path=os.path.join(cls.dir, "serve.stderr"))
            cls.url = f"http://127.0.0.1:{cls.server.port}/metrics"
            cls._start_prometheus()
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            if cls.prom is not None:
                stop(cls.prom)
            if cls.server is not None:
                cls.server.stop()
        finally:
            shutil.rmtree(cls.dir, ignore_errors=True)

    @classmethod
    def _start_prometheus(cls):
        if not os.access(PROMETHEUS, os.X_OK):
            raise AssertionError(f"{PROMETHEUS} not found: {MISSING_PACKAGE}")
        work = os.path.join(cls.dir, "prometheus")
        os.makedirs(work)
        cls.target = f"127.0.0.1:{cls.server.port}"
        config = os.path.join(work, "prometheus.yml")
        with open(config, "w") as f:
            f.write("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
                    "scrape_configs:\n  - job_name: dlsys\n    metrics_path: /metrics\n"
                    f"    static_configs:\n      - targets: ['{cls.target}']\n")
        cls.prom_log = os.path.join(work, "prometheus.log")
        for _ in range(3):  # a free port can be taken between probe and bind
            cls.prom_port = free_port()
            with open(cls.prom_log, "wb") as err:
                cls.prom = subprocess.Popen(
                    [PROMETHEUS, f"--config.file={config}",
                     f"--storage.tsdb.path={os.path.join(work, 'data')}",
                     f"--web.listen-address=127.0.0.1:{cls.prom_port}",
                     "--storage.tsdb.retention.time=1h", "--log.level=warn"],
                    stdout=subprocess.DEVNULL, stderr=err, cwd=work)
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and cls.prom.poll() is None:
                try:
                    if http_get(cls.prom_port, "/-/ready", timeout=2)[0] == 200:
                        return cls._wait_first_scrape()
                except OSError:
                    pass
                time.sleep(0.1)  # polling an HTTP API, bounded by the deadline
            stop(cls.prom)
            cls.prom = None
        raise AssertionError(f"prometheus did not become ready: {cls._prom_log()}")

    @classmethod
    def _wait_first_scrape(cls):
        """The first scrape lands 5-6 s after start (docs: components.md)."""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            status, _, body = http_get(cls.prom_port, "/api/v1/targets", timeout=5)
            for t in json.loads(body).get("data", {}).get("activeTargets", []) if status == 200 else []:
                scraped = t.get("lastScrape", "").split("T")[0] not in ("", "0001-01-01")
                if t.get("labels", {}).get("instance") == cls.target and scraped and \
                        t.get("health") == "up":
                    return
            time.sleep(0.25)  # polling an HTTP API, bounded by the deadline
        raise AssertionError(f"prometheus never scraped {cls.target}: {cls._prom_log()}")

    @classmethod
    def _prom_log(cls):
        try:
            with open(cls.prom_log, errors="replace") as f:
                return f.read()[-3000:]
        except OSError as e:
            return f"<{e}>"

    def query(self, q, at=None):
        params = {"query": q}
        if at is not None:
            params["time"] = "%.3f" % at
        status, _, body = http_get(self.prom_port, "/api/v1/query?" + urllib.parse.urlencode(params))
        self.assertEqual(status, 200, f"{q}: {body[:500]!r} {self._prom_log()}")
        doc = json.loads(body)
        self.assertEqual(doc["status"], "success", doc)
        result = doc["data"]["result"]
        self.assertEqual(len(result), 1, f"{q}: {doc}")
        return float(result[0]["value"][1])

    def traffic(self, seconds, stop_event=None):
        """Inference requests for `seconds` (or until stop_event): rows 1..4, every 17th one
        with a wrong shape (400). Returns (ok, bad)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=30)
        ok = bad = i = 0
        end = time.monotonic() + seconds
        try:
            while time.monotonic() < end and not (stop_event and stop_event.is_set()):
                rows, cols = 1 + i % 4, 3 if i % 17 == 16 else 4
                body = json.dumps({"inputs": [{"name": "x", "datatype": "FP32",
                                               "shape": [rows, cols],
                                               "data": [0.5 * (k % 9) for k in range(rows * cols)]}]})
                conn.request("POST", f"/v2/models/{MODEL}/infer", body=body,
                             headers={"Content-Type": "application/json"})
                resp = conn.getresponse()
                resp.read()
                if resp.status == 200:
                    ok += 1
                else:
                    self.assertEqual(resp.status, 400)
                    bad += 1
                i += 1
                time.sleep(0.002)  # pacing the load (a steadier rate), not synchronisation
        finally:
            conn.close()
        return ok, bad

    def wait_prometheus_has(self, successes, deadline_s=30):
        """Polls until Prometheus's latest scrape shows `successes` (so it scraped after the
        traffic stopped)."""
        deadline = time.monotonic() + deadline_s
        seen = None
        while time.monotonic() < deadline:
            status, _, body = http_get(self.prom_port, "/api/v1/query?" + urllib.parse.urlencode(
                {"query": f"sum({SUCCESS})"}))
            if status == 200:
                result = json.loads(body)["data"]["result"]
                seen = float(result[0]["value"][1]) if result else None
                if seen == successes:
                    return
            time.sleep(0.25)  # polling an HTTP API, bounded by the deadline
        self.fail(f"prometheus never showed {successes} successes (last {seen}); "
                  f"{self._prom_log()}")

    def monitor_json(self, url, *extra):
        r = run("monitor", "--url", url, "--once", "--json", *extra, timeout=120)
        self.assertEqual(r.returncode, EXIT_OK, r.stderr)
        doc = json.loads(r.stdout)
        validate(doc, "monitor-url.schema.json")
        return doc

    # -- tests ----------------------------------------------------------------------------

    def test_1_window_values_are_rate_and_histogram_quantile_of_its_own_scrapes(self):
        proxy = RecordingProxy(self.server.port)
        stop_event = threading.Event()
        result = {}
        worker = threading.Thread(target=lambda: result.update(
            zip(("ok", "bad"), self.traffic(60, stop_event))))
        worker.start()
        try:
            self.traffic(0.5)  # some load before the first scrape
            doc = self.monitor_json(f"http://127.0.0.1:{proxy.port}/metrics", "--interval", "3s")
        finally:
            stop_event.set()
            worker.join(timeout=120)
            proxy.close()
        self.assertEqual(len(proxy.bodies), 2)
        self.assertEqual(doc["scrapes"], 2)
        start, end = doc["range"]["start_ms"], doc["range"]["end_ms"]
        self.assertTrue(2900 <= end - start <= 5000, doc["range"])
        self.assertEqual(len(doc["groups"]), 1)
        g = doc["groups"][0]
        self.assertEqual(g["key"], {"model": MODEL, "version": VERSION})
        a, b = series(proxy.bodies[0]), series(proxy.bodies[1])

        def rate_sum(name, **want):
            total = None
            for key in sorted(b, key=lambda k: sorted(k[1])):
                labels = dict(key[1])
                if key[0] != name or any(labels.get(k) != v for k, v in want.items()):
                    continue
                r = extrapolated_rate([(start, a[key]), (end, b[key])], start, end)
                total = r if total is None else total + r
            return total

        req = rate_sum(SUCCESS) + rate_sum(FAILURE)
        self.assertGreater(req, 0, "no traffic between the two scrapes")
        w = g["window"]
        self.assertAlmostEqual(w["requests_per_s"], req, delta=1e-9 * req)
        self.assertAlmostEqual(w["failures_per_s"], rate_sum(FAILURE), delta=1e-9 * req)
        by_le = {}
        for key in b:
            if key[0] == BUCKET:
                le = dict(key[1])["le"]
                by_le[le] = by_le.get(le, 0) + extrapolated_rate(
                    [(start, a[key]), (end, b[key])], start, end)
        buckets = [(float(le), c) for le, c in by_le.items()]
        for name, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99)):
            self.assertEqual(w["latency_ms"][name], bucket_quantile(q, buckets) * 1e3, name)
        # The live Prometheus over about the same time: its own scrapes, 1 s apart, at other
        # instants, so only close (the load is steady but not constant).
        prom_rate = self.query(f"sum(rate({SUCCESS}[{end - start}ms])) + "
                               f"sum(rate({FAILURE}[{end - start}ms]))", at=end / 1000)
        self.assertLess(abs(prom_rate - req) / req, 0.5, (prom_rate, req))

    def test_2_since_start_values_equal_prometheus(self):
        ok, bad = self.traffic(2)
        self.assertGreater(ok, 50)
        self.assertGreater(bad, 0)
        successes = self.server.metric(SUCCESS)
        self.wait_prometheus_has(successes)
        doc = self.monitor_json(self.url, "--interval", "200ms")
        t = doc["groups"][0]["total"]
        self.assertEqual(t["successes"], self.query(f"sum({SUCCESS})"))
        self.assertEqual(t["failures"], self.query(f"sum({FAILURE})"))
        self.assertEqual(t["requests"], t["successes"] + t["failures"])
        self.assertEqual(t["failures_by_reason"]["bad_input"],
                         self.query(f'sum({FAILURE}{{reason="bad_input"}})'))
        for name, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99)):
            prom = self.query(f"histogram_quantile({q}, sum by (le) ({BUCKET}))")
            self.assertEqual(t["latency_ms"][name], prom * 1e3, name)
        self.assertEqual(t["latency_ms"]["count"],
                         self.query("sum(dlsys_inference_request_duration_seconds_count)"))
        # No traffic between the two scrapes: rates 0, no quantile (no observations).
        w = doc["groups"][0]["window"]
        self.assertEqual(w["requests_per_s"], 0)
        self.assertIsNone(w["latency_ms"]["p99"])
        self.assertIsNone(w["error_rate"])

    def test_text_table(self):
        r = run("monitor", "--url", self.url, "--once", "--interval", "200ms")
        self.assertEqual(r.returncode, EXIT_OK, r.stderr)
        self.assertIn(self.url, r.stdout)
        self.assertRegex(r.stdout, r"\nmodel\s+version\s+req/s\s+err%\s+p50 ms")
        self.assertRegex(r.stdout, rf"\n{MODEL}\s+{VERSION}\s")

    def test_where_and_by(self):
        doc = self.monitor_json(self.url, "--interval", "200ms", "--where", "model=nothing")
        self.assertEqual(doc["groups"], [])
        doc = self.monitor_json(self.url, "--interval", "200ms", "--by", "version")
        self.assertEqual([g["key"] for g in doc["groups"]], [{"version": VERSION}])

    def test_follow_prints_json_lines_until_sigterm(self):
        import signal
        from clitest import start
        proc = start("monitor", "--url", self.url, "--interval", "200ms", "--json")
        try:
            first = proc.stdout.readline()  # blocks until the first snapshot (bounded below)
            self.assertTrue(first, proc.stderr.read() if proc.poll() is not None else "")
            proc.send_signal(signal.SIGTERM)
            out, err = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        self.assertEqual(proc.returncode, EXIT_OK, err)
        lines = [first] + out.decode().splitlines()
        self.assertGreaterEqual(len(lines), 2)
        for line in lines:
            validate(json.loads(line), "monitor-url.schema.json")

    def test_closed_port_is_unavailable_and_asks_for_serve(self):
        port = free_port()  # bound and released: nothing listens there
        r = run("monitor", "--url", f"http://127.0.0.1:{port}/metrics", "--once")
        self.assertEqual(r.returncode, EXIT_UNAVAILABLE, r.stderr)
        self.assertIn(f"is dlsys serve running on 127.0.0.1:{port}?", r.stderr)
        r = run("monitor", "--url", f"http://127.0.0.1:{port}/metrics", "--once", "--json")
        self.assertEqual(r.returncode, EXIT_UNAVAILABLE)
        validate(json.loads(r.stdout), "monitor-url.schema.json")

    def test_https_and_bad_urls_are_usage_errors(self):
        r = run("monitor", "--url", f"https://127.0.0.1:{self.server.port}/metrics", "--once")
        self.assertEqual(r.returncode, EXIT_USAGE)
        self.assertIn("https is not supported, only http", r.stderr)
        for bad in ("127.0.0.1:9/metrics", "http://h:0/", "http://u@h/"):
            r = run("monitor", "--url", bad, "--once")
            self.assertEqual(r.returncode, EXIT_USAGE, bad)
        r = run("monitor", "--url", self.url, "--interval", "1s", "--window", "500ms")
        self.assertEqual(r.returncode, EXIT_USAGE)

    def test_an_html_page_is_invalid_naming_the_line(self):
        site = os.path.join(self.dir, "site")
        os.makedirs(site, exist_ok=True)
        with open(os.path.join(site, "metrics"), "w") as f:
            f.write("\n<html><body>\x1b[31mnot metrics</body></html>\n")
        port = free_port()
        web = subprocess.Popen([PYTHON, "-m", "http.server", "--bind", "127.0.0.1", str(port),
                                "--directory", site], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                try:
                    http_get(port, "/metrics", timeout=2)
                    break
                except OSError:
                    time.sleep(0.1)  # polling for the server to listen, bounded
            r = run("monitor", "--url", f"http://127.0.0.1:{port}/metrics", "--once")
        finally:
            stop(web)
        self.assertEqual(r.returncode, EXIT_INVALID, r.stderr)
        self.assertIn("line 2: expected a metric name", r.stderr)
        self.assertIn("\\x1b[31m", r.stderr)  # shown escaped, never sent to the terminal
        self.assertNotIn("\x1b", r.stderr)

    def test_never_loads_libtorch(self):
        env = {"LD_DEBUG": "libs", "DLSYS_RUNTIME_MODULE": "/nonexistent/libdlsys_runtime.so"}
        r = run("monitor", "--url", self.url, "--once", "--interval", "200ms", env=env)
        self.assertEqual(r.returncode, EXIT_OK)
        self.assertIn("calling init", r.stderr)  # LD_DEBUG did report the libraries
        self.assertNotIn("libtorch", r.stderr)
        self.assertNotIn("libdlsys_runtime", r.stderr)


if __name__ == "__main__":
    unittest.main()
