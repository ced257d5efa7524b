"""dlsys serve: lifecycle, validation, batching, backpressure, deadlines, failures, graceful stop,
security defaults and limits, against the real binary on 127.0.0.1 (tests/cli/clitest.Serve)."""
import concurrent.futures
import json
import os
import signal
import socket
import ssl
import struct
import subprocess
import sys
import textwrap
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from clitest import (EXIT_OK, EXIT_UNAVAILABLE, EXIT_USAGE, EXIT_VERIFY_FAILED, Serve, TempDirTest,
                     make_model, run)  # noqa: E402

SPECS = {
    "mlp16": """\
        name: mlp16
        version: {version}
        inputs:
          - {{name: x, dtype: float32, shape: [-1, 16]}}
        outputs:
          - {{name: y, dtype: float32, shape: [-1, 4]}}
        examples:
          - name: one
            inputs:
              x: {{data: [[1, 2, 3, 4, 5, 6, 7, 8, -1, -2, -3, -4, 0.5, 0.25, 0, 1]]}}
        """,
    "mlp_heavy": """\
        name: heavy
        version: {version}
        inputs:
          - {{name: x, dtype: float32, shape: [-1, 1024]}}
        outputs:
          - {{name: y, dtype: float32, shape: [-1, 1024]}}
        """,
    "int_bool": """\
        name: int_bool
        version: {version}
        inputs:
          - {{name: ids, dtype: int64, shape: [-1, 4]}}
          - {{name: mask, dtype: bool, shape: [-1, 4]}}
        examples:
          - name: one
            inputs:
              ids: {{data: [[1, 2, 3, 4]]}}
              mask: {{data: [[true, false, true, false]]}}
        """,
    "spin": """\
        name: spin
        version: {version}
        inputs:
          - {{name: x, dtype: float32, shape: [-1, 4]}}
        outputs:
          - {{name: y, dtype: float32, shape: [-1, 4]}}
        """,
}
ROW = [1, 2, 3, 4, 5, 6, 7, 8, -1, -2, -3, -4, 0.5, 0.25, 0, 1]


def rows(n, offset=0):
    return [[((i + offset) * 7 + j * 3) % 11 / 4.0 - 1.0 for j in range(16)] for i in range(n)]


def heavy_binary(rows):
    """A request of `rows` rows for the heavy model through the binary extension, so building
    and parsing it costs nothing next to the forward it causes (tens of ms per 100 rows)."""
    header = json.dumps({"inputs": [{"name": "x", "datatype": "FP32", "shape": [rows, 1024],
                                     "parameters": {"binary_data_size": rows * 4096}}],
                         "parameters": {"binary_data_output": True}}).encode()
    return header, struct.pack("<f", 0.001) * (rows * 1024)


def x_input(data_rows):
    return [{"name": "x", "datatype": "FP32", "shape": [len(data_rows), 16],
             "data": [v for r in data_rows for v in r]}]


def post_mlp16(server, data_rows):
    """One inference on its own connection (so concurrent calls can share a batch):
    (status, the output's data)."""
    c = server.connection()
    c.request("POST", "/v2/models/mlp16/infer", json.dumps({"inputs": x_input(data_rows)}))
    r = c.getresponse()
    body = json.loads(r.read())
    c.close()
    return r.status, body["outputs"][0]["data"]


def setUpModule():
    import tempfile
    ServeTest.cache_dir = tempfile.mkdtemp(prefix="dlsys-serve-cache-")


def tearDownModule():
    import shutil
    shutil.rmtree(ServeTest.cache_dir, ignore_errors=True)


class ServeTest(TempDirTest):
    """Packs fixture archives (cached per class) and starts servers that are always stopped."""
    archives = {}

    def archive(self, kind, version="1.0.0", key=None):
        tag = (kind, version, key)
        if tag not in ServeTest.archives or not os.path.exists(ServeTest.archives[tag]):
            d = ServeTest.cache_dir
            model = os.path.join(d, kind + ".pt")
            if not os.path.exists(model):
                make_model(kind, model)
            spec = os.path.join(d, "%s-%s.yaml" % (kind, version))
            with open(spec, "w") as f:
                f.write(textwrap.dedent(SPECS[kind]).format(version=version))
            out = os.path.join(d, "%s-%s%s.dlsys" % (kind, version, "-signed" if key else ""))
            args = ["pack", model, "--spec", spec, "-o", out, "--force"]
            if key:
                args += ["--key", key]
            r = run(*args)
            self.assertEqual(r.returncode, EXIT_OK, r.stderr)
            ServeTest.archives[tag] = out
        return ServeTest.archives[tag]


    def serve(self, *args, **kw):
        s = Serve(*args, **kw)
        self.addCleanup(s.kill)
        return s

    def wait_metric(self, server, name, want, timeout=60, **labels):
        """Polls /metrics until the series equals want (a state change we caused, bounded)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if server.metric(name, **labels) == want:
                return
            time.sleep(0.01)
        self.fail("%s%s never became %s" % (name, labels, want))


class Endpoints(ServeTest):
    def test_health_metadata_versions_and_errors(self):
        s = self.serve(self.archive("mlp16", "1.9.0"), self.archive("mlp16", "1.10.0"),
                       self.archive("int_bool"), "--allow-unsigned")
        self.assertIn("(3 models)", s.ready_line)
        for path in ["/v2/health/live", "/v2/health/ready", "/v2/models/mlp16/ready",
                     "/v2/models/mlp16/versions/1.9.0/ready"]:
            status, _, body = s.request("GET", path)
            self.assertEqual((status, body), (200, b""), path)
        status, hdrs, body = s.request("GET", "/v2")
        meta = json.loads(body)
        self.assertEqual(meta["name"], "dlsys")
        self.assertIn("binary_tensor_data", meta["extensions"])
        self.assertIn("statistics", meta["extensions"])
        # Model metadata comes from the manifest; versions sorted highest first in SemVer order
        # (1.10.0 > 1.9.0, which text order gets wrong).
        status, _, body = s.request("GET", "/v2/models/mlp16")
        meta = json.loads(body)
        self.assertEqual(meta["versions"], ["1.10.0", "1.9.0"])
        self.assertEqual(meta["inputs"], [{"name": "x", "datatype": "FP32", "shape": [-1, 16]}])
        self.assertEqual(meta["outputs"], [{"name": "y", "datatype": "FP32", "shape": [-1, 4]}])
        status, _, body = s.request("GET", "/v2/models/mlp16/versions/1.9.0")
        self.assertEqual(json.loads(body)["versions"], ["1.9.0"])
        status, body = s.infer("mlp16", x_input([ROW]))
        self.assertEqual(status, 200)
        self.assertEqual(body["model_version"], "1.10.0")  # no version: the highest
        status, body = s.infer("mlp16", x_input([ROW]), version="1.9.0", id="req-7")
        self.assertEqual((status, body["model_version"], body["id"]), (200, "1.9.0", "req-7"))
        # Errors: Triton's codes, always {"error": "..."} naming the thing.
        for method, path, want, text in [
                ("GET", "/v2/models/nope", 400, "nope"),
                ("GET", "/v2/models/mlp16/versions/9.9.9", 404, "9.9.9"),
                ("GET", "/v2/models/mlp16/versions/9.9.9/ready", 404, "9.9.9"),
                ("POST", "/v2/models/nope/infer", 400, "nope"),
                ("GET", "/v3/anything", 404, "/v3/anything"),
                ("GET", "/v2/models/mlp16/infer", 405, "POST"),
                ("DELETE", "/v2", 405, "GET")]:
            status, hdrs, body = s.request(method, path, body=b"{}" if method == "POST" else None)
            self.assertEqual(status, want, (method, path, body))
            self.assertIn(text, json.loads(body)["error"], (method, path))
            self.assertEqual(hdrs["content-type"], "application/json")
        self.assertEqual(s.stop(), EXIT_OK, s.stderr())

    def test_every_request_is_validated_before_the_model_runs(self):
        s = self.serve(self.archive("mlp16"), self.archive("int_bool"), "--allow-unsigned",
                       "--max-request-bytes", "65536")
        good = {"name": "x", "datatype": "FP32", "shape": [1, 16], "data": ROW}
        cases = [
            ("unknown input", [good, dict(good, name="q")], "'q'"),
            ("missing input", [], "'x'"),
            ("wrong datatype", [dict(good, datatype="INT64", data=[1] * 16)], "INT64"),
            ("wrong rank", [dict(good, shape=[16])], "shape"),
            ("wrong dim", [dict(good, shape=[1, 15], data=ROW[:15])], "shape"),
            ("count mismatch", [dict(good, data=ROW[:15])], "x"),
            ("string in data", [dict(good, data=["a"] * 16)], "x"),
        ]
        for what, inputs, needle in cases:
            status, body = s.infer("mlp16", inputs)
            self.assertEqual(status, 400, (what, body))
            self.assertIn(needle, body["error"], what)
        status, body = s.infer("int_bool", [
            {"name": "ids", "datatype": "INT64", "shape": [1, 4], "data": [1, 2, 3, 4.5]},
            {"name": "mask", "datatype": "BOOL", "shape": [1, 4], "data": [True] * 4}])
        self.assertEqual(status, 400)
        self.assertIn("ids", body["error"])
        for what, body_bytes, needle in [
                ("malformed JSON", b'{"inputs": [', "JSON"),
                ("not an object", b"[1,2]", "object")]:
            status, _, data = s.request("POST", "/v2/models/mlp16/infer", body_bytes)
            self.assertEqual(status, 400, what)
            self.assertIn(needle.lower(), json.loads(data)["error"].lower(), what)
        # Binary framing: header longer than the body, and a short binary section.
        hdr = json.dumps({"inputs": [dict(good, data=None, parameters={"binary_data_size": 64})]})
        hdr = hdr.replace(', "data": null', "")
        for extra, length in [(b"\0" * 64, len(hdr) + 100), (b"\0" * 60, len(hdr))]:
            status, _, data = s.request("POST", "/v2/models/mlp16/infer", hdr.encode() + extra,
                                        {"Inference-Header-Content-Length": str(length)})
            self.assertEqual(status, 400, data)
        status, _, data = s.request("POST", "/v2/models/mlp16/infer", hdr.encode() + b"\0" * 64,
                                    {"Inference-Header-Content-Length": "x1"})
        self.assertEqual(status, 400, data)
        # Body over the limit: 413 naming the limit, then the connection is closed.
        status, hdrs, data = s.request("POST", "/v2/models/mlp16/infer", b" " * 70000)
        self.assertEqual(status, 413)
        self.assertIn("65536", json.loads(data)["error"])
        # ...and the model never ran for any of these; the server still serves.
        self.assertEqual(s.metric("dlsys_inference_exec_count_total", model="mlp16"), 0)
        status, body = s.infer("mlp16", x_input([ROW]))
        self.assertEqual(status, 200, body)
        self.assertEqual(s.stop(), EXIT_OK)

    def test_json_and_binary_give_the_same_numbers_for_int_and_bool(self):
        s = self.serve(self.archive("int_bool"), "--allow-unsigned")
        ids, mask = [3, -7, 2 ** 40, 5], [True, False, True, True]
        status, body = s.infer("int_bool", [
            {"name": "ids", "datatype": "INT64", "shape": [1, 4], "data": ids},
            {"name": "mask", "datatype": "BOOL", "shape": [1, 4], "data": mask}])
        self.assertEqual(status, 200, body)
        want = [float(i) * m for i, m in zip(ids, mask)]
        self.assertEqual(body["outputs"][0]["data"], want)
        # The same request through the binary extension, output binary too.
        header = json.dumps({"inputs": [
            {"name": "ids", "datatype": "INT64", "shape": [1, 4], "parameters": {"binary_data_size": 32}},
            {"name": "mask", "datatype": "BOOL", "shape": [1, 4], "parameters": {"binary_data_size": 4}}],
            "parameters": {"binary_data_output": True}}).encode()
        blob = struct.pack("<4q", *ids) + bytes(mask)
        status, hdrs, data = s.request("POST", "/v2/models/int_bool/infer", header + blob,
                                       {"Inference-Header-Content-Length": str(len(header))})
        self.assertEqual(status, 200, data)
        n = int(hdrs["inference-header-content-length"])
        self.assertEqual(hdrs["content-type"], "application/octet-stream")
        out = json.loads(data[:n])["outputs"][0]
        self.assertEqual(out["parameters"]["binary_data_size"], 16)
        self.assertEqual(list(struct.unpack("<4f", data[n:])), want)
        s.stop()


class Batching(ServeTest):
    def test_batched_results_equal_unbatched_runs(self):
        archive = self.archive("mlp16")
        # Reference: one request at a time with batching off.
        s = self.serve(archive, "--allow-unsigned", "--max-batch-size", "1")
        single = []
        for i in range(24):
            status, body = s.infer("mlp16", x_input(rows(1, i)))
            self.assertEqual(status, 200)
            single.append(body["outputs"][0]["data"])
        self.assertEqual(s.stop(), EXIT_OK)
        # 24 concurrent requests with a long queue delay: they share executions.
        s = self.serve(archive, "--allow-unsigned", "--max-batch-size", "8",
                       "--max-queue-delay-us", "200000")
        with concurrent.futures.ThreadPoolExecutor(24) as pool:
            results = list(pool.map(lambda i: post_mlp16(s, rows(1, i)), range(24)))
        for i, (status, data) in enumerate(results):
            self.assertEqual(status, 200)
            self.assertEqual(data, single[i], "request %d differs when batched" % i)
        executions = s.metric("dlsys_inference_exec_count_total", model="mlp16")
        self.assertEqual(s.metric("dlsys_inference_count_total", model="mlp16"), 24)
        self.assertLess(executions, 24, "no two requests were batched")
        self.assertGreater(s.metric("dlsys_inference_batch_size_sum", model="mlp16") /
                           executions, 1.0)
        # A request of several rows is split back exactly.
        status, body = s.infer("mlp16", x_input(rows(3, 0)))
        self.assertEqual(body["outputs"][0]["data"], single[0] + single[1] + single[2])
        self.assertEqual(s.stop(), EXIT_OK)


    def test_fast_models_run_on_the_event_loop_with_the_same_results(self):
        archive = self.archive("mlp16")
        reference = None
        # instances 0 (auto) picks the event loop when the timed warm-up forward is under
        # 0.5 ms and there is no queue delay; --instances N or a queue delay use workers.
        # Two HTTP threads: connections on strands, batches on either thread.
        for flags, forced in (((), None), (("--instances", "1"), "threads"),
                              (("--max-queue-delay-us", "100"), "threads"),
                              (("--http-threads", "2"), None),
                              (("--http-threads", "2", "--instances", "1"), "threads")):
            s = self.serve(archive, "--allow-unsigned", "--log-format", "json", *flags)
            with concurrent.futures.ThreadPoolExecutor(16) as pool:
                results = list(pool.map(lambda i: post_mlp16(s, rows(1 + i % 3, i)), range(32)))
            self.assertEqual([st for st, _ in results], [200] * 32)
            if reference is None:
                reference = results
            self.assertEqual(results, reference, "results differ between executors")
            self.assertEqual(s.stop(), EXIT_OK)
            load = [json.loads(line) for line in s.stderr().splitlines()
                    if '"event":"serve.load"' in line]
            self.assertEqual(len(load), 1, s.stderr())
            # Only the automatic choice times forwards.
            self.assertEqual("warmup_forward_ms" in load[0], forced is None, load[0])
            want = forced or ("event-loop" if load[0]["warmup_forward_ms"] < 0.5 else "threads")
            self.assertEqual(load[0]["executor"], want, load[0])
            self.assertEqual("instances" in load[0], want == "threads", load[0])


class Overload(ServeTest):
    def post_async(self, s, payload, results, key):
        """POSTs payload = (model, JSON object) or (model, (header bytes, binary bytes))."""
        def go():
            c = s.connection(timeout=300)
            try:
                body, headers = payload[1], {}
                if isinstance(body, tuple):
                    headers = {"Inference-Header-Content-Length": str(len(body[0]))}
                    body = body[0] + body[1]
                else:
                    body = json.dumps(body)
                c.request("POST", "/v2/models/%s/infer" % payload[0], body, headers)
                r = c.getresponse()
                results[key] = (r.status, dict((k.lower(), v) for k, v in r.getheaders()),
                                r.read())
            except Exception as e:  # noqa: BLE001 - reported by the assertions
                results[key] = (None, {}, repr(e).encode())
            finally:
                c.close()
        t = threading.Thread(target=go, daemon=True)
        t.start()
        return t

    def test_full_queue_fails_fast_with_503_and_retry_after(self):
        # The spin model never returns: one request occupies the only instance for good.
        s = self.serve(self.archive("spin"), "--allow-unsigned", "--queue-capacity", "1",
                       "--max-batch-size", "1", "--grace-period-ms", "500")
        body = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]}]}
        results = {}
        self.post_async(s, ("spin", body), results, "running")
        self.wait_metric(s, "dlsys_inference_executing_requests", 1, model="spin")
        self.post_async(s, ("spin", body), results, "queued")
        self.wait_metric(s, "dlsys_inference_queue_depth", 1, model="spin")
        t0 = time.monotonic()
        status, hdrs, data = s.request("POST", "/v2/models/spin/infer", json.dumps(body))
        self.assertLess(time.monotonic() - t0, 10)
        self.assertEqual(status, 503, data)
        self.assertEqual(hdrs.get("retry-after"), "1")
        self.assertIn("queue", json.loads(data)["error"])
        self.assertEqual(s.metric("dlsys_inference_request_failure_total", model="spin",
                                  reason="overloaded"), 1)
        # Health still answers while the model is stuck (HTTP threads are not the model's).
        self.assertEqual(s.request("GET", "/v2/health/live")[0], 200)
        # The stuck forward cannot be interrupted: SIGTERM drains for the grace period, a second
        # signal stops at once.
        s.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 60
        while "draining" not in s.stderr() and time.monotonic() < deadline:
            time.sleep(0.01)  # polling the server's own report, bounded
        self.assertIn("draining", s.stderr())
        s.proc.send_signal(signal.SIGTERM)
        self.assertEqual(s.proc.wait(timeout=60), 128 + signal.SIGTERM)

    def test_deadline_passed_in_queue_is_dropped_before_it_runs(self):
        s = self.serve(self.archive("mlp_heavy"), "--allow-unsigned", "--max-batch-size", "1")
        big = heavy_binary(512)
        results = {}
        t = self.post_async(s, ("heavy", big), results, "big")
        self.wait_metric(s, "dlsys_inference_executing_requests", 1, model="heavy")
        small = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 1024], "data": [0.5] * 1024}],
                 "parameters": {"timeout": 1}}  # 1 us: passes while the big one runs
        status, _, data = s.request("POST", "/v2/models/heavy/infer", json.dumps(small))
        t.join(300)
        self.assertEqual(results["big"][0], 200, results["big"][2][:200])
        self.assertEqual(status, 503, data)
        self.assertIn("deadline", json.loads(data)["error"])
        self.assertEqual(s.metric("dlsys_inference_request_failure_total", model="heavy",
                                  reason="deadline"), 1)
        self.assertEqual(s.metric("dlsys_inference_count_total", model="heavy"), 512)
        self.assertEqual(s.stop(), EXIT_OK)

    def test_graceful_stop_finishes_queued_work_and_refuses_new(self):
        s = self.serve(self.archive("mlp_heavy"), "--allow-unsigned", "--max-batch-size", "1")
        big = heavy_binary(2048)
        results = {}
        t1 = self.post_async(s, ("heavy", big), results, "running")
        self.wait_metric(s, "dlsys_inference_executing_requests", 1, model="heavy")
        t2 = self.post_async(s, ("heavy", big), results, "queued")
        self.wait_metric(s, "dlsys_inference_queue_depth", 1, model="heavy")
        probe = s.connection()  # opened before the signal: requests on it get answers
        probe.connect()
        s.proc.send_signal(signal.SIGTERM)
        # Readiness turns 503 at once; a new inference is refused with 503.
        deadline = time.monotonic() + 30
        while True:
            probe.request("GET", "/v2/health/ready")
            r = probe.getresponse()
            r.read()
            if r.status == 503 or time.monotonic() > deadline:
                break
            time.sleep(0.01)
        self.assertEqual(r.status, 503)
        if r.getheader("Connection", "").lower() == "close":
            probe.close()
            probe = s.connection()
        t1.join(300)
        t2.join(300)
        self.assertEqual(results["running"][0], 200, results["running"][2][:300])
        self.assertEqual(results["queued"][0], 200, results["queued"][2][:300])
        self.assertEqual(s.proc.wait(timeout=120), EXIT_OK, s.stderr())
        self.assertIn("draining", s.stderr())


class Security(ServeTest):
    def test_unsigned_archives_are_refused_by_default(self):
        r = run("serve", self.archive("mlp16"), "--port", "0")
        self.assertEqual(r.returncode, EXIT_USAGE, r.stderr)
        self.assertIn("--trust", r.stderr)
        run("keygen", "--out", self.path("k"))
        r = run("serve", self.archive("mlp16"), "--port", "0", "--trust", self.path("k.pub"))
        self.assertEqual(r.returncode, EXIT_VERIFY_FAILED, r.stderr)
        self.assertIn("does not verify", r.stderr)

    def test_signed_archive_with_bearer_token(self):
        run("keygen", "--out", self.path("k"))
        archive = self.archive("mlp16", key=self.path("k"))
        with open(self.path("token"), "w") as f:
            f.write("s3cret-token\n")
        s = self.serve(archive, "--trust", self.path("k.pub"), "--token-file", self.path("token"))
        self.assertEqual(s.request("GET", "/v2/health/ready")[0], 200)  # probes need no token
        for headers in [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret-token"}]:
            status, hdrs, data = s.request("GET", "/v2/models/mlp16", headers=headers)
            self.assertEqual(status, 401, headers)
            self.assertEqual(hdrs.get("www-authenticate"), "Bearer")
            self.assertEqual(s.request("GET", "/metrics", headers=headers)[0], 401)
        ok = {"Authorization": "Bearer s3cret-token"}
        self.assertEqual(s.request("GET", "/v2/models/mlp16", headers=ok)[0], 200)
        status, body = s.infer("mlp16", x_input([ROW]), headers=ok)
        self.assertEqual(status, 200)
        self.assertNotIn("s3cret", s.stderr())
        self.assertEqual(s.stop(), EXIT_OK)

    def test_tls(self):
        r = subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                            "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1", "-subj",
                            "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                            "-keyout", self.path("tls.key"), "-out", self.path("tls.crt")],
                           capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        s = self.serve(self.archive("mlp16"), "--allow-unsigned", "--tls-cert",
                       self.path("tls.crt"), "--tls-key", self.path("tls.key"))
        self.assertEqual(s.scheme, "https")
        import http.client
        ctx = ssl.create_default_context(cafile=self.path("tls.crt"))
        c = http.client.HTTPSConnection("127.0.0.1", s.port, context=ctx, timeout=60)
        c.request("POST", "/v2/models/mlp16/infer", json.dumps({"inputs": x_input([ROW])}))
        r = c.getresponse()
        self.assertEqual(r.status, 200)
        self.assertEqual(len(json.loads(r.read())["outputs"][0]["data"]), 4)
        c.close()
        # Plain HTTP on the TLS port gets no answer that parses as HTTP.
        with socket.create_connection(("127.0.0.1", s.port), timeout=30) as raw:
            raw.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n")
            self.assertFalse(raw.recv(100).startswith(b"HTTP/1.1 200"))
        r = run("serve", self.archive("mlp16"), "--allow-unsigned", "--port", "0",
                "--tls-cert", self.path("tls.crt"))
        self.assertEqual(r.returncode, EXIT_USAGE, r.stderr)
        self.assertIn("tls_key", r.stderr)
        self.assertEqual(s.stop(), EXIT_OK)

    def test_limits_on_headers_connections_and_idle_clients(self):
        s = self.serve(self.archive("mlp16"), "--allow-unsigned", "--max-connections", "4",
                       "--idle-timeout-ms", "300")
        # Headers over the limit: 431.
        status, _, data = s.request("GET", "/v2", headers={"X-Big": "a" * 20000})
        self.assertEqual(status, 431, data)
        # Idle connections are closed by the server after the idle timeout...
        idle = [socket.create_connection(("127.0.0.1", s.port), timeout=30) for _ in range(4)]
        for c in idle:
            self.assertEqual(c.recv(1), b"")  # EOF: closed by the server, not by us
            c.close()
        # ...so they cannot starve others: a new client is served.
        self.assertEqual(s.request("GET", "/v2/health/live")[0], 200)
        # A slow client that dribbles its headers is cut off too.
        slow = socket.create_connection(("127.0.0.1", s.port), timeout=30)
        slow.sendall(b"GET /v2 HTTP/1.1\r\n")
        self.assertEqual(slow.recv(1), b"")
        slow.close()
        self.assertEqual(s.stop(), EXIT_OK)

    def test_listens_on_loopback_by_default(self):
        s = self.serve(self.archive("mlp16"), "--allow-unsigned")
        out = subprocess.run(["ss", "-Hltnp"], capture_output=True, text=True).stdout
        mine = [l for l in out.splitlines() if ":%d " % s.port in l]
        self.assertEqual(len(mine), 1, out)
        self.assertIn("127.0.0.1:%d" % s.port, mine[0])
        self.assertEqual(s.stop(), EXIT_OK)


class Config(ServeTest):
    def test_yaml_config_and_flag_precedence(self):
        cfg = self.path("serve.yaml")
        with open(cfg, "w") as f:
            f.write("max_batch_size: 1\nqueue_capacity: 7\nallow_unsigned: true\nport: 1\n")
        s = self.serve(self.archive("mlp16"), "--config", cfg)  # --port 0 from Serve wins
        status, body = s.infer("mlp16", x_input([ROW]))
        self.assertEqual(status, 200)
        self.assertEqual(s.stop(), EXIT_OK)
        with open(cfg, "w") as f:
            f.write("max_batch_size: 1\nbogus_key: 3\n")
        r = run("serve", self.archive("mlp16"), "--config", cfg, "--allow-unsigned")
        self.assertNotEqual(r.returncode, EXIT_OK)
        self.assertIn("bogus_key", r.stderr)
        r = run("serve", self.archive("mlp16"), "--config", self.path("missing.yaml"))
        self.assertEqual(r.returncode, 3, r.stderr)

    def test_port_in_use_is_unavailable(self):
        s = self.serve(self.archive("mlp16"), "--allow-unsigned")
        r = run("serve", self.archive("mlp16"), "--allow-unsigned", "--port", str(s.port))
        self.assertEqual(r.returncode, EXIT_UNAVAILABLE, r.stderr)
        self.assertIn(str(s.port), r.stderr)
        self.assertEqual(s.stop(), EXIT_OK)


if __name__ == "__main__":
    unittest.main()
