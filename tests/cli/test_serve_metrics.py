"""`dlsys serve` observability on the real binary: the /metrics exposition checked by the real
promtool and by our own parser (for what promtool does not catch), scraped by a real Prometheus
that answers histogram_quantile, and the Triton statistics extension at /v2/models/NAME/stats.

One server serves the example model (iris-mlp 1.0.0) for the whole class; setUpClass sends all
the inference traffic once, so every test compares against the same known counts."""
import http.client
import json
import math
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.parse

sys.path.insert(0, os.path.dirname(__file__))
from clitest import EXIT_OK, SOURCE_DIR, Serve, run

MODEL, VERSION = "iris-mlp", "1.0.0"
PYTHON = "/usr/bin/python3"  # the interpreter with Debian's torch (scripts/make_example_model.py)
PROMTOOL = "/usr/bin/promtool"
PROMETHEUS = "/usr/bin/prometheus"
MISSING_PACKAGE = "install the Debian package 'prometheus' (scripts/install-deps.sh)"

CONNECTIONS = 4          # concurrent keep-alive clients, so the batcher may form batches
REQUESTS_PER_CONN = 50   # 200 requests in all
BAD_EVERY = 17           # every 17th request of a connection has a wrong shape -> 400

FAMILIES_WITH_MODEL = {
    "dlsys_inference_request_success_total": "counter",
    "dlsys_inference_request_failure_total": "counter",
    "dlsys_inference_count_total": "counter",
    "dlsys_inference_exec_count_total": "counter",
    "dlsys_inference_queue_duration_seconds": "histogram",
    "dlsys_inference_compute_duration_seconds": "histogram",
    "dlsys_inference_request_duration_seconds": "histogram",
    "dlsys_inference_batch_size": "histogram",
    "dlsys_inference_queue_depth": "gauge",
    "dlsys_model_load_duration_seconds": "gauge",
}


# ---------------------------------------------------------------------------------------------
# A strict parser for the Prometheus text format 0.0.4, and the checks promtool does not make.

_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_SAMPLE = re.compile(r"^(" + _NAME + r")(\{.*\})?[ \t]+(\S+)(?:[ \t]+(-?\d+))?[ \t]*$")
_LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*(,|$)')


def _unescape(value):
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "\\": "\\", '"': '"'}.get(m.group(1),
                                                                          "\\" + m.group(1)), value)


def _parse_labels(text, lineno):
    body = text[1:-1]
    labels, pos = {}, 0
    while pos < len(body):
        m = _LABEL.match(body, pos)
        if not m:
            raise ValueError(f"line {lineno}: malformed labels {text!r}")
        name, value = m.group(1), _unescape(m.group(2))
        if name in labels:
            raise ValueError(f"line {lineno}: label {name!r} repeated in {text!r}")
        labels[name] = value
        pos = m.end()
        if m.group(3) == "" and pos < len(body):
            raise ValueError(f"line {lineno}: malformed labels {text!r}")
    return labels


def _parse_value(text, lineno):
    special = {"+Inf": math.inf, "Inf": math.inf, "-Inf": -math.inf, "NaN": math.nan}
    if text in special:
        return special[text]
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"line {lineno}: value {text!r} is not a number") from None


def _family_of(sample_name, types):
    """The family a sample belongs to: itself, or a histogram/summary it is a part of."""
    if sample_name in types:
        return sample_name
    for suffix in ("_bucket", "_sum", "_count"):
        base = sample_name[:-len(suffix)]
        if sample_name.endswith(suffix) and types.get(base) in ("histogram", "summary"):
            return base
    return sample_name


def parse_exposition(text):
    """Parses text format 0.0.4 into {family: {"help", "type", "samples": [(name, labels,
    value)]}}; raises ValueError (with the line) on every structural defect it finds: a family
    split in two places, HELP or TYPE repeated or after the family's samples, duplicate
    series."""
    families, types = {}, {}
    order, closed = [], set()
    series = set()
    current = None

    def enter(family, lineno):
        nonlocal current
        if family == current:
            return families[family]
        if family in closed or family in families:
            raise ValueError(f"line {lineno}: family {family!r} is split: its lines are not "
                             f"contiguous")
        if current is not None:
            closed.add(current)
        current = family
        order.append(family)
        families[family] = {"help": None, "type": None, "samples": []}
        return families[family]

    if text and not text.endswith("\n"):
        raise ValueError("the exposition does not end with a newline")
    for lineno, line in enumerate(text.split("\n")[:-1] if text else [], 1):
        if not line.strip():
            continue
        if line.startswith("#"):
            parts = line.split(None, 3)
            if len(parts) >= 3 and parts[1] in ("HELP", "TYPE"):
                kind, name = parts[1], parts[2]
                rest = parts[3] if len(parts) > 3 else ""
                fam = enter(name, lineno)
                key = kind.lower()
                if fam[key] is not None:
                    raise ValueError(f"line {lineno}: second # {kind} for {name!r}")
                if fam["samples"]:
                    raise ValueError(f"line {lineno}: # {kind} for {name!r} after its samples")
                if kind == "TYPE":
                    if rest not in ("counter", "gauge", "histogram", "summary", "untyped"):
                        raise ValueError(f"line {lineno}: unknown type {rest!r}")
                    types[name] = rest
                fam[key] = rest
            continue
        m = _SAMPLE.match(line)
        if not m:
            raise ValueError(f"line {lineno}: not a sample: {line!r}")
        name = m.group(1)
        labels = _parse_labels(m.group(2), lineno) if m.group(2) else {}
        value = _parse_value(m.group(3), lineno)
        key = (name, frozenset(labels.items()))
        if key in series:
            raise ValueError(f"line {lineno}: duplicate series {line!r}")
        series.add(key)
        enter(_family_of(name, types), lineno)["samples"].append((name, labels, value))
    return {name: families[name] for name in order}


def check_exposition(families):
    """The checks promtool (and a scrape) do not make; raises ValueError naming the defect."""
    for name, fam in families.items():
        if fam["help"] is None:
            raise ValueError(f"family {name!r} has no # HELP")
        if fam["type"] is None:
            raise ValueError(f"family {name!r} has no # TYPE")
        if not fam["samples"]:
            raise ValueError(f"family {name!r} has no samples")
        for sname, labels, value in fam["samples"]:
            if fam["type"] == "counter" and not (value >= 0 and math.isfinite(value)):
                raise ValueError(f"counter {sname}{labels} is {value}")
        if fam["type"] != "histogram":
            continue
        groups = {}
        for sname, labels, value in fam["samples"]:
            rest = frozenset((k, v) for k, v in labels.items() if k != "le")
            g = groups.setdefault(rest, {"buckets": [], "sum": None, "count": None})
            if sname == name + "_bucket":
                if "le" not in labels:
                    raise ValueError(f"{sname}{labels} has no le label")
                g["buckets"].append((_parse_value(labels["le"], 0), value))
            elif sname == name + "_sum":
                g["sum"] = value
            elif sname == name + "_count":
                g["count"] = value
            else:
                raise ValueError(f"histogram {name!r} has a stray sample {sname!r}")
        for rest, g in groups.items():
            where = f"histogram {name}{dict(rest)}"
            les = [le for le, _ in g["buckets"]]
            if not les or les[-1] != math.inf:
                raise ValueError(f"{where}: no le=\"+Inf\" bucket (last of {les})")
            if les != sorted(les) or len(set(les)) != len(les):
                raise ValueError(f"{where}: le values are not strictly increasing: {les}")
            counts = [v for _, v in g["buckets"]]
            for (le_a, a), (le_b, b) in zip(g["buckets"], g["buckets"][1:]):
                if b < a:
                    raise ValueError(f"{where}: buckets are not cumulative: le={le_a} has {a}, "
                                     f"le={le_b} has {b}")
            if g["count"] is None or g["sum"] is None:
                raise ValueError(f"{where}: _count or _sum missing")
            if g["count"] != counts[-1]:
                raise ValueError(f"{where}: _count {g['count']} != +Inf bucket {counts[-1]}")


def sample_values(families, name, family=None):
    fam = families[family or name]
    return [(labels, value) for sname, labels, value in fam["samples"] if sname == name]


def single_value(test, families, name, family=None, **want):
    rows = [(l, v) for l, v in sample_values(families, name, family)
            if all(l.get(k) == v2 for k, v2 in want.items())]
    test.assertEqual(len(rows), 1, f"{name}{want}: expected one series, got {rows}")
    return rows[0][1]


# ---------------------------------------------------------------------------------------------
# Processes.

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop(proc, timeout=30):
    """SIGTERM by PID, wait; SIGKILL on timeout. Returns the exit code."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


class CountingConnection(http.client.HTTPConnection):
    """An HTTPConnection that counts its TCP connects, to prove keep-alive held."""
    def connect(self):
        self.connects = getattr(self, "connects", 0) + 1
        super().connect()


def http_get(port, path, timeout=10):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, dict((k.lower(), v) for k, v in resp.getheaders()), resp.read()
    finally:
        conn.close()


# ---------------------------------------------------------------------------------------------

class ServeMetrics(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="dlsys-serve-metrics-")
        cls.server = None
        try:
            cls._start_server()
            cls._send_traffic()
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            if cls.server is not None:
                server, cls.server = cls.server, None
                code = server.stop()
                # SIGTERM drains and exits 0; anything else is a failure of the class.
                if code != 0:
                    raise AssertionError(f"dlsys serve exited {code} on SIGTERM; stderr: "
                                         f"{server.stderr()[-4000:]}")
        finally:
            shutil.rmtree(cls.dir, ignore_errors=True)

    @classmethod
    def _start_server(cls):
        model_dir = os.path.join(cls.dir, "model")
        subprocess.run([PYTHON, os.path.join(SOURCE_DIR, "scripts", "make_example_model.py"),
                        model_dir], check=True, capture_output=True, timeout=300)
        cls.archive = os.path.join(cls.dir, "iris.dlsys")
        r = run("pack", os.path.join(model_dir, "best_model_final_v7.pt"), "--spec",
                os.path.join(model_dir, "dlsys.yaml"), "-o", cls.archive)
        if r.returncode != EXIT_OK:
            raise AssertionError(f"dlsys pack failed ({r.returncode}): {r.stderr}")
        cls.server = Serve(cls.archive, "--allow-unsigned",
                           stderr_path=os.path.join(cls.dir, "serve.stderr"))
        cls.port = cls.server.port

    @classmethod
    def server_stderr(cls):
        return cls.server.stderr()[-4000:] if cls.server else ""

    @classmethod
    def _send_traffic(cls):
        results = [None] * CONNECTIONS
        rng = random.Random(20261201)
        plans = [[(i % BAD_EVERY == BAD_EVERY - 1, rng.randint(1, 4))
                  for i in range(REQUESTS_PER_CONN)] for _ in range(CONNECTIONS)]

        def client(k):
            ok = bad = rows_ok = 0
            other = []
            values = random.Random(k)
            conn = CountingConnection("127.0.0.1", cls.port, timeout=30)
            try:
                for wrong_shape, rows in plans[k]:
                    cols = 3 if wrong_shape else 4
                    body = json.dumps({"inputs": [{
                        "name": "x", "datatype": "FP32", "shape": [rows, cols],
                        "data": [round(values.uniform(0, 8), 3) for _ in range(rows * cols)]}]})
                    conn.request("POST", f"/v2/models/{MODEL}/infer", body=body,
                                 headers={"Content-Type": "application/json"})
                    resp = conn.getresponse()
                    data = resp.read()
                    if resp.status == 200 and not wrong_shape:
                        out = json.loads(data)["outputs"][0]
                        if out["name"] != "probabilities" or out["shape"] != [rows, 3]:
                            other.append((200, data[:200]))
                        ok += 1
                        rows_ok += rows
                    elif resp.status == 400 and wrong_shape:
                        bad += 1
                    else:
                        other.append((resp.status, wrong_shape, data[:200]))
                results[k] = {"ok": ok, "bad": bad, "rows": rows_ok, "other": other,
                              "connects": conn.connects}
            except Exception as e:  # reported by the main thread
                results[k] = {"error": repr(e)}
            finally:
                conn.close()

        threads = [threading.Thread(target=client, args=(k,)) for k in range(CONNECTIONS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=300)
        errors = [r for r in results if r is None or "error" in r or r["other"]]
        if errors:
            raise AssertionError(f"inference traffic went wrong: {errors}; server stderr: "
                                 f"{cls.server_stderr()}")
        cls.successes = sum(r["ok"] for r in results)
        cls.failures = sum(r["bad"] for r in results)
        cls.rows_ok = sum(r["rows"] for r in results)
        cls.connects = [r["connects"] for r in results]
        cls.planned_bad = sum(w for plan in plans for w, _ in plan)

    def metrics(self):
        status, headers, body = http_get(self.port, "/metrics")
        self.assertEqual(status, 200, body[:500])
        return headers, body.decode("utf-8")

    # -- the traffic itself --------------------------------------------------------------------

    def test_traffic_was_as_planned_over_keep_alive(self):
        self.assertEqual(self.successes + self.failures, CONNECTIONS * REQUESTS_PER_CONN)
        self.assertEqual(self.failures, self.planned_bad)
        self.assertGreater(self.failures, 0)
        # Each client used one TCP connection for all its requests, 400s included.
        self.assertEqual(self.connects, [1] * CONNECTIONS)

    # -- /metrics --------------------------------------------------------------------------------

    def test_content_type_is_text_format_0_0_4(self):
        headers, _ = self.metrics()
        ctype = headers.get("content-type", "")
        parts = [p.strip() for p in ctype.split(";")]
        self.assertEqual(parts[0], "text/plain", ctype)
        params = dict(p.split("=", 1) for p in parts[1:] if "=" in p)
        self.assertEqual(params.get("version"), "0.0.4", ctype)
        self.assertIn(params.get("charset", "utf-8").lower(), ("utf-8",), ctype)

    def test_promtool_check_metrics_accepts_it(self):
        _, text = self.metrics()
        code, out = promtool_check(text)
        self.assertEqual(code, 0, f"promtool check metrics exited {code}:\n{out}\n"
                                  f"--- exposition ---\n{text}")

    def test_exposition_is_well_formed_beyond_promtool(self):
        _, text = self.metrics()
        try:
            families = parse_exposition(text)
            check_exposition(families)
        except ValueError as e:
            self.fail(f"{e}\n--- exposition ---\n{text}")

    def test_families_exist_with_type_and_model_labels(self):
        _, text = self.metrics()
        families = parse_exposition(text)
        for name, kind in FAMILIES_WITH_MODEL.items():
            self.assertIn(name, families, sorted(families))
            self.assertEqual(families[name]["type"], kind, name)
            for sname, labels, _ in families[name]["samples"]:
                self.assertEqual(labels.get("model"), MODEL, (sname, labels))
                self.assertEqual(labels.get("version"), VERSION, (sname, labels))
        self.assertIn("process_resident_memory_bytes", families, sorted(families))
        self.assertEqual(families["process_resident_memory_bytes"]["type"], "gauge")
        rss = single_value(self, families, "process_resident_memory_bytes")
        self.assertGreater(rss, 1 << 20)
        reasons = {l.get("reason") for l, _ in
                   sample_values(families, "dlsys_inference_request_failure_total")}
        self.assertIn("bad_input", reasons)
        self.assertNotIn(None, reasons)
        self.assertGreater(single_value(self, families, "dlsys_model_load_duration_seconds"), 0)
        self.assertEqual(single_value(self, families, "dlsys_inference_queue_depth"), 0)

    def test_counts_match_the_traffic(self):
        _, text = self.metrics()
        f = parse_exposition(text)
        self.assertEqual(single_value(self, f, "dlsys_inference_request_success_total"),
                         self.successes)
        self.assertEqual(single_value(self, f, "dlsys_inference_request_failure_total",
                                      reason="bad_input"), self.failures)
        for labels, value in sample_values(f, "dlsys_inference_request_failure_total"):
            if labels["reason"] != "bad_input":
                self.assertEqual(value, 0, labels)
        self.assertEqual(single_value(self, f, "dlsys_inference_count_total"), self.rows_ok)
        fam = "dlsys_inference_request_duration_seconds"
        self.assertEqual(single_value(self, f, fam + "_count", fam), self.successes)
        self.assertEqual(single_value(self, f, fam + "_bucket", fam, le="+Inf"),
                         self.successes)
        self.assertGreater(single_value(self, f, fam + "_sum", fam), 0)
        # Queue and compute time are observed once per successful request too (their HELP).
        for fam in ("dlsys_inference_queue_duration_seconds",
                    "dlsys_inference_compute_duration_seconds"):
            self.assertEqual(single_value(self, f, fam + "_count", fam), self.successes, fam)
        # One batch_size observation per execution; their sum is the rows inferred.
        execs = single_value(self, f, "dlsys_inference_exec_count_total")
        self.assertGreaterEqual(execs, 1)
        self.assertLessEqual(execs, self.successes)
        fam = "dlsys_inference_batch_size"
        self.assertEqual(single_value(self, f, fam + "_count", fam), execs)
        self.assertEqual(single_value(self, f, fam + "_sum", fam), self.rows_ok)

    # -- Triton statistics extension -------------------------------------------------------------

    def test_model_stats_match_the_traffic(self):
        status, _, body = http_get(self.port, f"/v2/models/{MODEL}/stats")
        self.assertEqual(status, 200, body[:500])
        stats = json.loads(body)
        self.assertEqual(len(stats["model_stats"]), 1, stats)
        s = stats["model_stats"][0]
        self.assertEqual(s["name"], MODEL)
        self.assertEqual(s["version"], VERSION)
        self.assertEqual(s["inference_count"], self.rows_ok)
        self.assertGreaterEqual(s["execution_count"], 1)
        self.assertLessEqual(s["execution_count"], s["inference_count"])
        self.assertEqual(s["inference_stats"]["success"]["count"], self.successes)
        self.assertEqual(s["inference_stats"]["fail"]["count"], self.failures)
        self.assertGreater(s["inference_stats"]["success"]["ns"], 0)
        # The same numbers as /metrics.
        f = parse_exposition(self.metrics()[1])
        self.assertEqual(s["execution_count"],
                         single_value(self, f, "dlsys_inference_exec_count_total"))

    # -- a real Prometheus scrapes it ------------------------------------------------------------

    def test_prometheus_scrapes_and_answers_histogram_quantile(self):
        if not os.access(PROMETHEUS, os.X_OK):
            self.fail(f"{PROMETHEUS} not found: {MISSING_PACKAGE}")
        work = tempfile.mkdtemp(prefix="prometheus-", dir=self.dir)
        target = f"127.0.0.1:{self.port}"
        config = os.path.join(work, "prometheus.yml")
        with open(config, "w") as f:
            f.write("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
                    "scrape_configs:\n  - job_name: dlsys\n    metrics_path: /metrics\n"
                    f"    static_configs:\n      - targets: ['{target}']\n")
        prom, port, log = None, None, os.path.join(work, "prometheus.log")
        try:
            for attempt in range(3):  # a free port can be taken between probe and bind
                port = free_port()
                with open(log, "wb") as err:
                    prom = subprocess.Popen(
                        [PROMETHEUS, f"--config.file={config}",
                         f"--storage.tsdb.path={os.path.join(work, 'data')}",
                         f"--web.listen-address=127.0.0.1:{port}",
                         "--storage.tsdb.retention.time=1h", "--log.level=warn"],
                        stdout=subprocess.DEVNULL, stderr=err, cwd=work)
                if self._wait_prometheus_ready(prom, port, deadline=time.monotonic() + 20):
                    break
                stop(prom)
                prom = None
            if prom is None:
                self.fail(f"prometheus did not become ready: {self._tail(log)}")

            t0 = time.monotonic()
            health = self._wait_target_up(prom, port, target, log, time.monotonic() + 30)
            scrape_wait = time.monotonic() - t0

            q = ("histogram_quantile(0.99, sum by (le) "
                 "(dlsys_inference_request_duration_seconds_bucket))")
            p99 = self._query_scalar(port, q, log)
            self.assertTrue(math.isfinite(p99) and 0 < p99 < 10,
                            f"{q} = {p99} (target {health}, first scrape after "
                            f"{scrape_wait:.1f}s)")
            total = self._query_scalar(port, "sum(dlsys_inference_request_success_total)", log)
            self.assertEqual(total, self.successes)
            bad = self._query_scalar(
                port, 'sum(dlsys_inference_request_failure_total{reason="bad_input"})', log)
            self.assertEqual(bad, self.failures)
        finally:
            if prom is not None:
                stop(prom)

    def _tail(self, log):
        try:
            with open(log, errors="replace") as f:
                return f.read()[-3000:]
        except OSError as e:
            return f"<{e}>"

    def _api(self, port, path):
        try:
            status, _, body = http_get(port, path, timeout=5)
        except OSError:
            return None
        if status != 200:
            return None
        return json.loads(body)

    def _wait_prometheus_ready(self, prom, port, deadline):
        while time.monotonic() < deadline:
            if prom.poll() is not None:
                return False
            try:
                status, _, _ = http_get(port, "/-/ready", timeout=2)
                if status == 200:
                    return True
            except OSError:
                pass
            time.sleep(0.1)  # polling an HTTP API, bounded by the deadline
        return False

    def _wait_target_up(self, prom, port, target, log, deadline):
        seen = None
        while time.monotonic() < deadline:
            self.assertIsNone(prom.poll(), f"prometheus exited: {self._tail(log)}")
            doc = self._api(port, "/api/v1/targets")
            for t in (doc or {}).get("data", {}).get("activeTargets", []):
                if t.get("labels", {}).get("instance") != target:
                    continue
                seen = t
                scraped = t.get("lastScrape", "").split("T")[0] not in ("", "0001-01-01")
                if scraped and t.get("health") == "up":
                    return {k: t.get(k) for k in ("health", "lastScrape", "lastError")}
            time.sleep(0.25)  # polling an HTTP API, bounded by the deadline
        self.fail(f"prometheus never scraped {target} successfully within 30 s; last target "
                  f"state: {seen}; prometheus log: {self._tail(log)}")

    def _query_scalar(self, port, query, log):
        doc = self._api(port, "/api/v1/query?" + urllib.parse.urlencode({"query": query}))
        self.assertIsNotNone(doc, f"query {query!r} failed; {self._tail(log)}")
        self.assertEqual(doc.get("status"), "success", doc)
        result = doc["data"]["result"]
        self.assertEqual(doc["data"]["resultType"], "vector", doc)
        self.assertEqual(len(result), 1, f"{query}: {doc}")
        return float(result[0]["value"][1])


def promtool_check(text):
    """(exit code, combined output) of the real `promtool check metrics` on text."""
    if not os.access(PROMTOOL, os.X_OK):
        raise AssertionError(f"{PROMTOOL} not found: {MISSING_PACKAGE}")
    r = subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True,
                       text=True, timeout=60)
    return r.returncode, r.stdout + r.stderr


# ---------------------------------------------------------------------------------------------

GOOD = """\
# HELP h_seconds A histogram.
# TYPE h_seconds histogram
h_seconds_bucket{model="m",le="0.1"} 1
h_seconds_bucket{model="m",le="1"} 3
h_seconds_bucket{model="m",le="+Inf"} 4
h_seconds_sum{model="m"} 2.5
h_seconds_count{model="m"} 4
# HELP c_total A counter.
# TYPE c_total counter
c_total{model="m",reason="a\\"b"} 7
"""


class ExpositionChecker(unittest.TestCase):
    """The checker itself must fail on each defect promtool lets through."""

    def check(self, text):
        check_exposition(parse_exposition(text))

    def assertRejected(self, text, fragment):
        with self.assertRaises(ValueError) as cm:
            self.check(text)
        self.assertIn(fragment, str(cm.exception))

    def test_good_passes(self):
        self.check(GOOD)
        f = parse_exposition(GOOD)
        self.assertEqual(list(f), ["h_seconds", "c_total"])
        self.assertEqual(f["c_total"]["samples"][0][1]["reason"], 'a"b')

    def test_missing_inf_bucket(self):
        self.assertRejected(GOOD.replace('h_seconds_bucket{model="m",le="+Inf"} 4\n', ""),
                            "no le=\"+Inf\"")

    def test_non_cumulative_buckets(self):
        self.assertRejected(GOOD.replace('le="1"} 3', 'le="1"} 0'), "not cumulative")

    def test_count_differs_from_inf_bucket(self):
        self.assertRejected(GOOD.replace('h_seconds_count{model="m"} 4',
                                         'h_seconds_count{model="m"} 5'), "!= +Inf bucket")

    def test_duplicate_series(self):
        self.assertRejected(GOOD + 'c_total{reason="a\\"b",model="m"} 8\n', "duplicate series")

    def test_split_family(self):
        self.assertRejected(GOOD + 'h_seconds_sum{model="n"} 1\n', "split")

    def test_second_help_or_type(self):
        self.assertRejected(GOOD.replace("# TYPE c_total counter\n",
                                         "# TYPE c_total counter\n# TYPE c_total counter\n"),
                            "second # TYPE")
        self.assertRejected(GOOD + "# HELP c_total Again.\n", "second # HELP")

    def test_missing_help(self):
        self.assertRejected(GOOD.replace("# HELP c_total A counter.\n", ""), "no # HELP")

    def test_unsorted_le(self):
        text = GOOD.replace('h_seconds_bucket{model="m",le="0.1"} 1\n'
                            'h_seconds_bucket{model="m",le="1"} 3\n',
                            'h_seconds_bucket{model="m",le="1"} 3\n'
                            'h_seconds_bucket{model="m",le="0.1"} 3\n')
        self.assertRejected(text, "strictly increasing")

    def test_promtool_catches_a_parse_error(self):
        code, out = promtool_check(GOOD + "not a valid line {\n")
        self.assertNotEqual(code, 0, out)
        self.assertEqual(promtool_check(GOOD)[0], 0, promtool_check(GOOD)[1])


if __name__ == "__main__":
    unittest.main()
