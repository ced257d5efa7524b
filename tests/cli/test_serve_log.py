"""serve's structured log (docs/logging.md, "serve's records"): the server events and one
serve.request access record per request, as JSON (schemas/log-record.schema.json) and text,
in the main log or an --access-log of their own, with sampled input/prediction summaries, and
read back by lnav through share/lnav/dlsys_log.json. Against the real binary and the example
model (scripts/make_example_model.py: iris-mlp, x FP32 [-1,4] -> probabilities FP32 [-1,3]).

No sleeps: the log is written by a background thread and flushed at exit, so every test stops
the server (SIGTERM, exit 0) before it reads a log."""
import concurrent.futures
import json
import math
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from clitest import lnav_query, EXIT_OK, SOURCE_DIR, Serve, TempDirTest, run, validate  # noqa: E402

FIXED = ["@timestamp", "log.level", "message", "ecs.version", "severity", "event", "service",
         "host", "pid"]
LNAV_FORMAT = os.path.join(SOURCE_DIR, "share", "lnav", "dlsys_log.json")
MAKE_EXAMPLE = os.path.join(SOURCE_DIR, "scripts", "make_example_model.py")
UNSAFE = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
TEXT_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z "
                       r"(TRACE|DEBUG|INFO |WARN |ERROR|FATAL) [a-z_.]+: ")
MODEL, VERSION = "iris-mlp", "1.0.0"
INFER = "/v2/models/iris-mlp/infer"
TRACE_1 = ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7")
TRACE_2 = ("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331")
LIFECYCLE = ["serve.start", "serve.load", "serve.ready", "serve.drain", "serve.stop"]

_cache = {}


def setUpModule():
    _cache["dir"] = tempfile.mkdtemp(prefix="dlsys-serve-log-")


def tearDownModule():
    shutil.rmtree(_cache.pop("dir"), ignore_errors=True)


def f32(v):
    """v as the float32 the server holds."""
    return struct.unpack("<f", struct.pack("<f", v))[0]


def traceparent(trace, span, version="00", flags="01"):
    return "%s-%s-%s-%s" % (version, trace, span, flags)


def x_input(rows):
    return [{"name": "x", "datatype": "FP32", "shape": [len(rows), 4],
             "data": [v for r in rows for v in r]}]


# Values exact in float32, so what the log reads back equals what was sent.
ROWS = [[5.0, 3.5, 1.25, 0.25], [6.5, 3.0, 5.25, 2.25], [4.75, 3.25, 1.5, 0.5]]


class ServeLogTest(TempDirTest):
    def archive(self):
        """The example model packed once per run (unsigned: serve with --allow-unsigned)."""
        if "archive" not in _cache:
            d = _cache["dir"]
            r = subprocess.run(["/usr/bin/python3", MAKE_EXAMPLE, d], capture_output=True,
                               text=True, timeout=600)
            self.assertEqual(r.returncode, 0, r.stderr)
            out = os.path.join(d, "iris.dlsys")
            r = run("pack", os.path.join(d, "best_model_final_v7.pt"), "--spec",
                    os.path.join(d, "dlsys.yaml"), "-o", out, "--force")
            self.assertEqual(r.returncode, EXIT_OK, r.stderr)
            _cache["archive"] = out
        return _cache["archive"]

    def serve(self, *args, **kw):
        s = Serve(self.archive(), "--allow-unsigned", *args, **kw)
        self.addCleanup(s.kill)
        return s

    def json_serve(self, *args, **kw):
        log = self.path("serve.jsonl")
        return self.serve("--log-format", "json", "--log-file", log, *args, **kw), log

    def stop(self, s):
        code = s.stop()
        self.assertEqual(code, EXIT_OK, s.stderr())

    def records(self, path):
        """Every line of a JSON log: one ASCII JSON object, fixed fields first, no key twice,
        valid against the schema. Returns the records."""
        with open(path, "rb") as f:
            data = f.read()
        self.assertTrue(data.endswith(b"\n"), "the last record ends its line")
        bad = [b for b in data if b >= 0x80 or (b < 0x20 and b != 0x0a)]
        self.assertEqual(bad, [], "JSON log lines are printable ASCII only")
        out = []
        for line in data.split(b"\n")[:-1]:
            pairs = json.loads(line, object_pairs_hook=lambda p: p)
            keys = [k for k, _ in pairs]
            self.assertEqual(keys[:len(FIXED)], FIXED, line)
            self.assertEqual(len(keys), len(set(keys)), "no key twice: %r" % keys)
            record = json.loads(line)
            validate(record, "log-record.schema.json")
            out.append(record)
        return out

    def requests_of(self, records):
        return [r for r in records if r["event"] == "serve.request"]

    def check_summary(self, summary, shape, values):
        """A sampled tensor summary matches the tensor: shape, count, stats, head."""
        values = [f32(v) for v in values]
        self.assertEqual(summary["shape"], shape)
        self.assertEqual(summary["count"], len(values))
        self.assertLessEqual(len(summary["head"]), 8, "head is bounded")
        self.assertEqual([f32(v) for v in summary["head"]], values[:8])
        self.assertEqual(f32(summary["min"]), min(values))
        self.assertEqual(f32(summary["max"]), max(values))
        mean = sum(values) / len(values)
        std = math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))
        self.assertAlmostEqual(summary["mean"], mean, places=5)
        self.assertAlmostEqual(summary["std"], std, places=5)
        self.assertLessEqual(set(summary), {"shape", "count", "mean", "std", "min", "max",
                                            "head", "dtype"})


class JsonLog(ServeLogTest):
    def test_every_request_has_one_record_and_the_events_come_in_order(self):
        s, log = self.json_serve("--log-sample-rate", "1")
        sent = []  # (request_id, status, rows or None, response outputs or None)

        def infer(rows, request_id, trace=None, body_id=None, want=200):
            headers = {"X-Request-ID": request_id}
            if trace:
                headers["traceparent"] = traceparent(*trace)
            status, body = s.infer(MODEL, x_input(rows), id=body_id, headers=headers)
            self.assertEqual(status, want, body)
            sent.append((request_id, status, rows, body.get("outputs") if status == 200 else None))

        infer(ROWS[:1], "req-1", TRACE_1)
        infer(ROWS[:2], "req-2", TRACE_2)
        infer(ROWS[:3], "req-3", body_id="body-3")  # X-Request-ID wins over the body's id
        # The inference request's own "id" when there is no X-Request-ID.
        status, body = s.infer(MODEL, x_input(ROWS[:1]), id="inf-4")
        self.assertEqual(status, 200, body)
        sent.append(("inf-4", 200, ROWS[:1], body["outputs"]))
        # A 400 (bad input), a 404 (unknown version), an unknown model (400) and an unknown
        # endpoint (404).
        status, body = s.infer(MODEL, [{"name": "x", "datatype": "FP32", "shape": [1, 3],
                                         "data": [1, 2, 3]}], headers={"X-Request-ID": "req-bad"})
        self.assertEqual(status, 400, body)
        sent.append(("req-bad", 400, None, None))
        status, _, _ = s.request("GET", "/v2/models/iris-mlp/versions/9.9.9",
                                 headers={"X-Request-ID": "req-404"})
        self.assertEqual(status, 404)
        sent.append(("req-404", 404, None, None))
        status, body = s.infer("no-such-model", x_input(ROWS[:1]),
                               headers={"X-Request-ID": "req-unknown"})
        self.assertEqual(status, 400, body)
        sent.append(("req-unknown", 400, None, None))
        status, _, _ = s.request("GET", "/v2/nowhere", headers={"X-Request-ID": "req-nowhere"})
        self.assertEqual(status, 404)
        sent.append(("req-nowhere", 404, None, None))
        pid = s.proc.pid
        self.stop(s)

        records = self.records(log)
        events = [r["event"] for r in records]
        for e in LIFECYCLE:
            self.assertEqual(events.count(e), 1, "%s once: %r" % (e, events))
        where = [events.index(e) for e in LIFECYCLE]
        self.assertEqual(where, sorted(where), "lifecycle events in order: %r" % events)
        ready, drain = where[2], where[3]
        self.assertTrue(all(ready < i < drain for i, e in enumerate(events)
                            if e == "serve.request"), events)
        self.assertTrue(all(r["service"] == "dlsys-serve" and r["pid"] == pid for r in records))
        load = records[where[1]]
        self.assertEqual((load["model"], load["model_version"]), (MODEL, VERSION))

        reqs = self.requests_of(records)
        self.assertEqual(len(reqs), len(sent), "one record per request: %r" % reqs)
        by_id = {}
        for r in reqs:
            self.assertIn("request_id", r, r)
            self.assertNotIn(r["request_id"], by_id, "one record per request")
            by_id[r["request_id"]] = r
        self.assertEqual([r["request_id"] for r in reqs], [x[0] for x in sent],
                         "records in the order the requests were answered")

        for request_id, status, rows, outputs in sent:
            with self.subTest(request_id=request_id):
                r = by_id[request_id]
                self.assertEqual(r["status"], status)
                self.assertGreater(r["latency_ms"], 0)
                self.assertTrue(r["client.address"].startswith("127.0.0.1"), r)
                if status == 200:
                    self.assertEqual(r["log.level"], "INFO")
                    self.assertEqual(r["http.request.method"], "POST")
                    self.assertEqual(r["url.path"], INFER)
                    self.assertEqual((r["model"], r["model_version"]), (MODEL, VERSION))
                    self.assertGreaterEqual(r["batch_size"], 1)
                    self.assertGreaterEqual(r["queue_ms"], 0)
                    self.assertGreaterEqual(r["infer_ms"], 0)
                    self.assertGreater(r["http.request.body.bytes"], 0)
                    self.assertGreater(r["http.response.body.bytes"], 0)
                    self.assertNotIn("error_type", r)
                    # Sampled (rate 1): what was sent, and what was answered.
                    self.assertEqual(list(r["input"]), ["x"])
                    self.check_summary(r["input"]["x"], [len(rows), 4],
                                       [v for row in rows for v in row])
                    self.assertEqual(list(r["prediction"]), ["probabilities"])
                    (out,) = outputs
                    self.check_summary(r["prediction"]["probabilities"], out["shape"],
                                       out["data"])
                    self.assertEqual(r["prediction"]["probabilities"]["shape"], [len(rows), 3])
                else:
                    self.assertEqual(r["log.level"], "WARN")
                    self.assertIn("error_type", r)
                    self.assertTrue(r["error.message"])
                    self.assertNotIn("queue_ms", r)
                    self.assertNotIn("infer_ms", r)

        self.assertEqual(by_id["req-1"]["trace.id"], TRACE_1[0])
        self.assertEqual(by_id["req-1"]["span.id"], TRACE_1[1])
        self.assertEqual(by_id["req-2"]["trace.id"], TRACE_2[0])
        self.assertEqual(by_id["req-2"]["span.id"], TRACE_2[1])
        for rid in ["req-3", "inf-4", "req-bad", "req-404", "req-unknown", "req-nowhere"]:
            self.assertNotIn("trace.id", by_id[rid], "no traceparent, no trace.id")
            self.assertNotIn("span.id", by_id[rid])
        self.assertEqual(by_id["req-3"]["input"]["x"]["count"], 12)
        self.assertEqual(len(by_id["req-3"]["input"]["x"]["head"]), 8, "12 values, head of 8")
        bad = by_id["req-bad"]
        self.assertEqual((bad["error_type"], bad["model"], bad["model_version"]),
                         ("bad_input", MODEL, VERSION))
        self.assertIn("shape", bad["error.message"])
        self.assertEqual((by_id["req-404"]["error_type"], by_id["req-404"]["model"]),
                         ("not_found", MODEL))
        self.assertEqual(by_id["req-unknown"]["error_type"], "not_found")
        self.assertEqual(by_id["req-unknown"]["url.path"], "/v2/models/no-such-model/infer")
        self.assertNotEqual(by_id["req-unknown"].get("model_version"), VERSION)
        self.assertEqual(by_id["req-nowhere"]["error_type"], "not_found")
        for rid in ["req-bad", "req-404", "req-unknown", "req-nowhere"]:
            self.assertNotIn("input", by_id[rid])
            self.assertNotIn("prediction", by_id[rid])

    def test_access_fields_mean_what_the_docs_say(self):
        """client.address is the peer's IP address (ECS; the port is not part of it), url.path
        is the path without the query, and the body sizes are the bodies' sizes."""
        s, log = self.json_serve()
        body = json.dumps({"inputs": x_input(ROWS[:1])})
        status, _, answer = s.request("POST", INFER + "?verbose=1", body,
                                      {"X-Request-ID": "q-1", "Content-Type": "application/json"})
        self.assertEqual(status, 200, answer)
        status, _, meta = s.request("GET", "/v2/models/iris-mlp?x=1&y=2",
                                    headers={"X-Request-ID": "q-2"})
        self.assertEqual(status, 200, meta)
        self.stop(s)
        reqs = {r["request_id"]: r for r in self.requests_of(self.records(log))}
        with self.subTest("client.address"):
            self.assertEqual(reqs["q-1"]["client.address"], "127.0.0.1")
        with self.subTest("url.path"):
            self.assertEqual(reqs["q-1"]["url.path"], INFER)
            self.assertEqual(reqs["q-2"]["url.path"], "/v2/models/iris-mlp")
            self.assertNotIn("?", reqs["q-2"]["url.path"])
        with self.subTest("http.request.body.bytes"):
            self.assertEqual(reqs["q-1"]["http.request.body.bytes"], len(body.encode()))
            self.assertEqual(reqs["q-2"]["http.request.body.bytes"], 0)
        with self.subTest("http.response.body.bytes"):
            self.assertEqual(reqs["q-1"]["http.response.body.bytes"], len(answer))
            self.assertEqual(reqs["q-2"]["http.response.body.bytes"], len(meta))

    def test_a_request_without_an_id_gets_one_made_up(self):
        """docs/logging.md: request_id is "the client's X-Request-Id, else one serve makes
        up" (it is lnav's operation id)."""
        s, log = self.json_serve()
        for _ in range(2):
            status, body = s.infer(MODEL, x_input(ROWS[:1]))
            self.assertEqual(status, 200, body)
        status, _, _ = s.request("GET", "/v2/models/iris-mlp")
        self.assertEqual(status, 200)
        self.stop(s)
        reqs = self.requests_of(self.records(log))
        self.assertEqual(len(reqs), 3)
        ids = [r.get("request_id") for r in reqs]
        self.assertTrue(all(ids), "every record has a request_id: %r" % reqs)
        self.assertEqual(len(set(ids)), 3, "made-up ids are distinct: %r" % ids)

    def test_invalid_traceparent_is_not_logged(self):
        s, log = self.json_serve()
        t, p = TRACE_1
        cases = {
            "upper-hex-trace": traceparent(t.upper(), p),
            "upper-hex-span": traceparent(t, p.upper()),
            "short-trace": traceparent(t[:-1], p),
            "long-span": traceparent(t, p + "0"),
            "no-dashes": "00" + t + p + "01",
            "extra-field": traceparent(t, p) + "-00",
            "not-hex": traceparent("g" * 32, p),
            "zero-trace": traceparent("0" * 32, p),  # W3C: all zeros is invalid
            "zero-span": traceparent(t, "0" * 16),
            "version-ff": traceparent(t, p, version="ff"),
            "empty": "",
        }
        for name, value in cases.items():
            status, body = s.infer(MODEL, x_input(ROWS[:1]),
                                   headers={"X-Request-ID": name, "traceparent": value})
            self.assertEqual(status, 200, body)
        status, body = s.infer(MODEL, x_input(ROWS[:1]), headers={
            "X-Request-ID": "valid", "traceparent": traceparent(t, p)})
        self.assertEqual(status, 200, body)
        self.stop(s)
        reqs = {r["request_id"]: r for r in self.requests_of(self.records(log))}
        self.assertEqual(len(reqs), len(cases) + 1)
        self.assertEqual((reqs["valid"]["trace.id"], reqs["valid"]["span.id"]), (t, p))
        for name, value in cases.items():
            with self.subTest(name, traceparent=value):
                self.assertNotIn("trace.id", reqs[name])
                self.assertNotIn("span.id", reqs[name])

    def test_hostile_strings_stay_on_their_line_and_read_back_exactly(self):
        s, log = self.json_serve()
        body_id = 'inf\x1b[31m"red"\\\n\u202eevil'
        status, body = s.infer(MODEL, x_input(ROWS[:1]), id=body_id)
        self.assertEqual(status, 200, body)
        for path in ["/v2/models/a%22b", '/v2/models/a"b', "/v2/models/a%1b%5b31m"]:
            status, _, _ = s.request("GET", path, headers={"X-Request-ID": "path " + path})
            self.assertEqual(status, 400, path)
        # Non-ASCII (a UTF-8 bidi override) and a quote in a header value.
        rid = b'hdr\xe2\x80\xaeevil"q\\'
        status, _, _ = s.request("GET", "/v2/models/iris-mlp", headers={"X-Request-ID": rid})
        self.assertEqual(status, 200)
        # A raw escape sequence in a header: refused by the HTTP parser or logged escaped.
        esc_status, _, _ = s.request("GET", "/v2/models/iris-mlp",
                                     headers={"X-Request-ID": "esc\x1b[31mred"})
        self.stop(s)
        reqs = self.requests_of(self.records(log))  # ASCII, one object per line, valid
        self.assertEqual(len(reqs), 6, reqs)
        self.assertEqual(reqs[0]["request_id"], body_id)
        self.assertEqual([r["url.path"] for r in reqs[1:4]],
                         ["/v2/models/a%22b", '/v2/models/a"b', "/v2/models/a%1b%5b31m"])
        self.assertEqual(reqs[4]["request_id"], rid.decode())
        self.assertEqual(reqs[5]["status"], esc_status)
        if esc_status < 400:
            self.assertEqual(reqs[5]["request_id"], "esc\x1b[31mred")

    def test_default_sample_rate_logs_no_samples(self):
        s, log = self.json_serve()
        for n in range(1, 4):
            status, body = s.infer(MODEL, x_input(ROWS[:n]), headers={"X-Request-ID": "n%d" % n})
            self.assertEqual(status, 200, body)
        self.stop(s)
        reqs = self.requests_of(self.records(log))
        self.assertEqual([r["status"] for r in reqs], [200] * 3)
        for r in reqs:
            self.assertNotIn("input", r)
            self.assertNotIn("prediction", r)
            self.assertGreaterEqual(r["batch_size"], 1)

    def test_batched_requests_each_log_their_own_rows(self):
        """Concurrent requests that may share an execution: each record's summaries are its
        own request's rows and its own slice of the outputs."""
        s, log = self.json_serve("--log-sample-rate", "1", "--max-queue-delay-us", "20000")
        data = {"c%d" % i: [[float(i), 1.0 + i, 0.5 * i, 0.25]] * (1 + i % 2) for i in range(6)}

        def one(rid):
            conn = s.connection()
            try:
                conn.request("POST", INFER, json.dumps({"inputs": x_input(data[rid])}),
                             {"X-Request-ID": rid})
                r = conn.getresponse()
                return rid, r.status, json.loads(r.read())
            finally:
                conn.close()

        with concurrent.futures.ThreadPoolExecutor(len(data)) as pool:
            answers = list(pool.map(one, data))
        self.stop(s)
        reqs = {r["request_id"]: r for r in self.requests_of(self.records(log))}
        self.assertEqual(set(reqs), set(data))
        for rid, status, body in answers:
            with self.subTest(rid):
                self.assertEqual(status, 200, body)
                r = reqs[rid]
                rows = data[rid]
                self.assertGreaterEqual(r["batch_size"], 1)
                self.check_summary(r["input"]["x"], [len(rows), 4], [v for x in rows for v in x])
                (out,) = body["outputs"]
                self.check_summary(r["prediction"]["probabilities"], [len(rows), 3], out["data"])


class AccessLog(ServeLogTest):
    def test_access_log_file_takes_the_request_records(self):
        access = self.path("access.jsonl")
        s, log = self.json_serve("--access-log", access)
        status, body = s.infer(MODEL, x_input(ROWS[:1]), headers={"X-Request-ID": "a-1"})
        self.assertEqual(status, 200, body)
        status, body = s.infer("nope", x_input(ROWS[:1]), headers={"X-Request-ID": "a-2"})
        self.assertEqual(status, 400, body)
        self.stop(s)
        main = self.records(log)
        events = [r["event"] for r in main]
        self.assertNotIn("serve.request", events, "requests are not in the main log")
        where = [events.index(e) for e in LIFECYCLE]
        self.assertEqual(where, sorted(where), events)
        acc = self.records(access)
        self.assertEqual([r["event"] for r in acc], ["serve.request"] * 2,
                         "only request records in the access log")
        self.assertEqual([(r["request_id"], r["status"]) for r in acc],
                         [("a-1", 200), ("a-2", 400)])
        self.assertTrue(all(r["service"] == "dlsys-serve" for r in acc))

    def test_access_log_dash_writes_to_stdout_after_the_ready_line(self):
        s, log = self.json_serve("--access-log", "-")
        status, body = s.infer(MODEL, x_input(ROWS[:2]), headers={"X-Request-ID": "o-1"})
        self.assertEqual(status, 200, body)
        status, _, _ = s.request("GET", "/v2/models/iris-mlp/versions/0.0.1",
                                 headers={"X-Request-ID": "o-2"})
        self.assertEqual(status, 404)
        s._conn.close()
        s._conn = None
        s.proc.send_signal(signal.SIGTERM)
        out, _ = s.proc.communicate(timeout=60)  # stdout after the ready line, to EOF
        self.assertEqual(s.stop(), EXIT_OK, s.stderr())
        self.assertTrue(s.ready_line.startswith("dlsys serve: ready on "))
        stdout = self.path("stdout.jsonl")
        with open(stdout, "wb") as f:
            f.write(out)
        acc = self.records(stdout)
        self.assertEqual([(r["event"], r["request_id"], r["status"]) for r in acc],
                         [("serve.request", "o-1", 200), ("serve.request", "o-2", 404)])
        events = [r["event"] for r in self.records(log)]
        self.assertNotIn("serve.request", events)
        for e in LIFECYCLE:
            self.assertIn(e, events)


class Lnav(ServeLogTest):
    def lnav(self, log, sql):
        return lnav_query(log, sql, self.dir)

    def test_lnav_queries_the_server_log(self):
        s, log = self.json_serve("--log-sample-rate", "1")
        want = []  # (request_id, status, model)
        for i, rid in enumerate(["l-1", "l-2", "l-3"]):
            status, body = s.infer(MODEL, x_input(ROWS[:i + 1]), headers={
                "X-Request-ID": rid, "traceparent": traceparent(*TRACE_1)})
            self.assertEqual(status, 200, body)
            want.append((rid, 200, MODEL))
        status, body = s.infer(MODEL, [{"name": "x", "datatype": "FP32", "shape": [1, 2],
                                        "data": [1, 2]}], headers={"X-Request-ID": "l-bad"})
        self.assertEqual(status, 400, body)
        want.append(("l-bad", 400, MODEL))
        status, body = s.infer("ghost", x_input(ROWS[:1]), headers={"X-Request-ID": "l-ghost"})
        self.assertEqual(status, 400, body)
        want.append(("l-ghost", 400, "ghost"))
        status, _, _ = s.request("GET", "/v2/models/iris-mlp/versions/7.7.7",
                                 headers={"X-Request-ID": "l-404"})
        self.assertEqual(status, 404)
        want.append(("l-404", 404, MODEL))
        self.stop(s)
        records = self.records(log)

        rows = self.lnav(log, "SELECT count(*) AS n FROM dlsys_log")
        self.assertEqual(int(rows[0]["n"]), len(records), "lnav drops no record")
        rows = self.lnav(log, 'SELECT event, status, typeof(status) AS status_type, model, '
                              'latency_ms, typeof(latency_ms) AS latency_type, log_opid, '
                              '"trace.id" AS trace, batch_size, input FROM dlsys_log '
                              "WHERE event = 'serve.request' ORDER BY log_line")
        self.assertEqual(len(rows), len(want), rows)
        for row, (rid, status, model) in zip(rows, want):
            with self.subTest(rid):
                self.assertEqual(row["log_opid"], rid)
                self.assertEqual((int(row["status"]), row["status_type"]), (status, "integer"))
                self.assertEqual(row["model"], model)
                self.assertEqual(row["latency_type"], "real")
                self.assertGreater(float(row["latency_ms"]), 0)
                if status == 200:
                    self.assertEqual(row["trace"], TRACE_1[0])
                    self.assertGreaterEqual(int(row["batch_size"]), 1)
                    self.assertEqual(json.loads(row["input"])["x"]["shape"],
                                     [int(rid[-1]), 4])
                else:
                    self.assertIsNone(row["trace"])
                    self.assertIsNone(row["input"])

        rows = self.lnav(log, "SELECT status, count(*) AS n, max(latency_ms) AS max_ms "
                              "FROM dlsys_log WHERE event = 'serve.request' "
                              "GROUP BY status ORDER BY status")
        self.assertEqual([(int(r["status"]), int(r["n"])) for r in rows],
                         [(200, 3), (400, 2), (404, 1)])
        rows = self.lnav(log, "SELECT error_type, count(*) AS n FROM dlsys_log "
                              "WHERE event = 'serve.request' AND status >= 400 "
                              "GROUP BY error_type ORDER BY error_type")
        self.assertEqual([(r["error_type"], int(r["n"])) for r in rows],
                         [("bad_input", 1), ("not_found", 2)])
        rows = self.lnav(log, "SELECT event FROM dlsys_log WHERE event LIKE 'serve.%' AND "
                              "event != 'serve.request' AND event != 'serve.blas' "
                              "ORDER BY log_line")
        self.assertEqual([r["event"] for r in rows], LIFECYCLE)


class TextLog(ServeLogTest):
    def test_text_is_the_default_with_a_terminal_safe_line_per_request(self):
        s = self.serve("--log-sample-rate", "1")
        status, body = s.infer(MODEL, x_input(ROWS[:1]), headers={"X-Request-ID": "t-1"})
        self.assertEqual(status, 200, body)
        status, body = s.infer("nope", x_input(ROWS[:1]), headers={"X-Request-ID": "t-2"})
        self.assertEqual(status, 400, body)
        status, body = s.infer(MODEL, x_input(ROWS[:1]), id='t\x1b[31m"3\u202e')
        self.assertEqual(status, 200, body)
        status, _, _ = s.request("GET", "/v2/models/iris-mlp",
                                 headers={"X-Request-ID": b"t-4\xe2\x80\xae\x9b"})
        self.assertEqual(status, 200)
        status, _, _ = s.request("GET", '/v2/models/q"x%1b[2J')
        self.assertEqual(status, 400)
        self.stop(s)
        err = s.stderr()
        self.assertIsNone(UNSAFE.search(err), "nothing unsafe reaches the terminal: %r" % err)
        lines = [l for l in err.split("\n") if TEXT_LINE.match(l)]
        self.assertFalse(any(l.lstrip().startswith("{") for l in err.split("\n")), err)
        for e in LIFECYCLE:
            self.assertTrue(any(" %s: " % e in l for l in lines), "%s in %r" % (e, err))
        reqs = [l for l in lines if " serve.request: " in l]
        self.assertEqual(len(reqs), 5, err)
        self.assertIn(" INFO  serve.request: POST /v2/models/iris-mlp/infer 200", reqs[0])
        self.assertIn("status=200", reqs[0])
        self.assertIn("request_id=t-1", reqs[0])
        self.assertIn(" WARN  serve.request: POST /v2/models/nope/infer 400", reqs[1])
        self.assertIn("status=400", reqs[1])
        self.assertIn("error_type=not_found", reqs[1])
        self.assertIn("\\x1b[31m", reqs[2])
        self.assertIn("\\u{202e}", reqs[2])
        self.assertIn("\\u{202e}", reqs[3])
        self.assertIn("serve.request: GET /v2/models/q", reqs[4])
        self.assertIn(" 400", reqs[4])


if __name__ == "__main__":
    unittest.main()
