"""`dlsys serve` driven only through tritonwire: the requests Triton's own Python client
(tritonclient.http) sends, byte for byte, and its response decoding (see tritonwire.py's
docstring for the source lines each behaviour mirrors).

WireBytes and FakeServer run without dlsys: literal request bytes derived from the
tritonclient/geventhttpclient source, and the response parser against a canned loopback
server. TritonServe starts the real `dlsys serve ARCHIVE... --port 0 --allow-unsigned`.
Status codes follow Triton's http_server.cc HttpCodeFromError: INVALID_ARG (unknown model
name, bad input) -> 400, NOT_FOUND (unknown version of a known model) -> 404."""
import gzip
import json
import math
import os
import re
import shutil
import socket
import struct
import sys
import tempfile
import textwrap
import threading
import unittest
import zlib

sys.path.insert(0, os.path.dirname(__file__))
import clitest  # noqa: E402
from clitest import EXIT_OK, make_model, run  # noqa: E402
from tritonwire import (InferenceServerException, InferInput, InferRequestedOutput,  # noqa: E402
                        InferResult, Response, TritonWireClient, build_request, rj_dumps)

UA = b"User-Agent: python/gevent-http-client-2.3.8\r\n"


def f32(v):
    return struct.unpack("<f", struct.pack("<f", v))[0]


class WireBytes(unittest.TestCase):
    """Request bytes as tritonclient.http + geventhttpclient 2.3.8 write them."""

    def infer_bytes(self, *args, **kw):
        c = TritonWireClient("127.0.0.1", 8000)
        path, body, headers = c.build_infer(*args, **kw)
        return build_request("POST", "/" + path, body, headers, "127.0.0.1", 8000)

    def test_get_requests(self):
        cases = {
            "v2/health/live": b"GET /v2/health/live HTTP/1.1\r\n",
            "v2/health/ready": b"GET /v2/health/ready HTTP/1.1\r\n",
        }
        for path, line in cases.items():
            self.assertEqual(build_request("GET", "/" + path, host="127.0.0.1", port=8000),
                             line + UA + b"Host: 127.0.0.1:8000\r\n\r\n")
        # port 80 is left out of Host; IPv6 hosts are bracketed
        self.assertEqual(build_request("GET", "/v2", host="localhost", port=80),
                         b"GET /v2 HTTP/1.1\r\n" + UA + b"Host: localhost\r\n\r\n")
        self.assertEqual(build_request("GET", "/v2", host="::1", port=9),
                         b"GET /v2 HTTP/1.1\r\n" + UA + b"Host: [::1]:9\r\n\r\n")

    def test_model_paths(self):
        c = TritonWireClient()
        self.assertEqual(c._model_path("a b/c", "", "/ready"), "v2/models/a%20b/c/ready")
        self.assertEqual(c._model_path("m", "1.0.0", "/stats"), "v2/models/m/versions/1.0.0/stats")
        with self.assertRaises(InferenceServerException):
            c._model_path("m", 1)

    def test_binary_infer_bytes(self):
        raw = self.infer_bytes("mlp16", [("x", "FP32", [1, 2], [1.0, -2.0], True)])
        self.assertEqual(raw, (
            b"POST /v2/models/mlp16/infer HTTP/1.1\r\n"
            b"User-Agent: python/gevent-http-client-2.3.8\r\n"
            b"Inference-Header-Content-Length: 134\r\n"
            b"Host: 127.0.0.1:8000\r\n"
            b"Content-Length: 142\r\n"
            b"\r\n"
            b'{"inputs":[{"name":"x","shape":[1,2],"datatype":"FP32","parameters":'
            b'{"binary_data_size":8}}],"parameters":{"binary_data_output":true}}'
            b"\x00\x00\x80\x3f\x00\x00\x00\xc0"))

    def test_mixed_infer_bytes(self):
        raw = self.infer_bytes(
            "int_bool", [("ids", "INT64", [1, 2], [1, -1], True),
                         ("mask", "BOOL", [1, 2], [True, False], False)],
            model_version="1.0.0", outputs=[InferRequestedOutput("y", binary_data=False)],
            request_id="r1", parameters={"k": "v"}, headers={"X-Trace": "t"})
        self.assertEqual(raw, (
            b"POST /v2/models/int_bool/versions/1.0.0/infer HTTP/1.1\r\n"
            b"User-Agent: python/gevent-http-client-2.3.8\r\n"
            b"X-Trace: t\r\n"
            b"Inference-Header-Content-Length: 258\r\n"
            b"Host: 127.0.0.1:8000\r\n"
            b"Content-Length: 274\r\n"
            b"\r\n"
            b'{"id":"r1","inputs":[{"name":"ids","shape":[1,2],"datatype":"INT64",'
            b'"parameters":{"binary_data_size":16}},{"name":"mask","shape":[1,2],'
            b'"datatype":"BOOL","data":[true,false]}],"outputs":[{"name":"y","parameters":'
            b'{"binary_data":false}}],"parameters":{"k":"v"}}'
            b"\x01\x00\x00\x00\x00\x00\x00\x00\xff\xff\xff\xff\xff\xff\xff\xff"))

    def test_json_infer_bytes(self):
        # No binary input: no Inference-Header-Content-Length even with binary outputs.
        raw = self.infer_bytes("m", [("x", "FP32", [1, 3], [0.1, 1e-7, 2.0], False)],
                               outputs=["y"], timeout=5, priority=2)
        self.assertEqual(raw, (
            b"POST /v2/models/m/infer HTTP/1.1\r\n" + UA +
            b"Host: 127.0.0.1:8000\r\nContent-Length: 211\r\n\r\n"
            b'{"inputs":[{"name":"x","shape":[1,3],"datatype":"FP32","data":'
            b'[0.10000000149011612,1.0000000116860974e-7,2.0]}],"outputs":[{"name":"y",'
            b'"parameters":{"binary_data":true}}],"parameters":{"priority":2,"timeout":5}}'))

    def test_compression_headers(self):
        raw = self.infer_bytes("m", [("x", "FP32", [1], [1.0], True)],
                               request_compression_algorithm="gzip",
                               response_compression_algorithm="deflate")
        head, body = raw.split(b"\r\n\r\n", 1)
        self.assertEqual(head.split(b"\r\n"), [
            b"POST /v2/models/m/infer HTTP/1.1", UA[:-2], b"Content-Encoding: gzip",
            b"Accept-Encoding: deflate", b"Inference-Header-Content-Length: 132",
            b"Host: 127.0.0.1:8000", b"Content-Length: %d" % len(body)])
        plain = gzip.decompress(body)  # the WHOLE body is compressed; header counts plain JSON
        self.assertEqual(plain[132:], b"\x00\x00\x80\x3f")
        self.assertEqual(json.loads(plain[:132])["inputs"][0]["parameters"],
                         {"binary_data_size": 4})
        raw = self.infer_bytes("m", [("x", "FP32", [1], [1.0], False)],
                               request_compression_algorithm="deflate")
        head, body = raw.split(b"\r\n\r\n", 1)
        self.assertIn(b"\r\nContent-Encoding: deflate\r\n", head)
        self.assertNotIn(b"Inference-Header", head)
        self.assertEqual(json.loads(zlib.decompress(body))["inputs"][0]["data"], [1.0])

    def test_user_header_replaces_case_insensitively(self):
        raw = build_request("GET", "/v2", headers={"user-agent": "me", "HOST": "h"},
                            host="127.0.0.1", port=8000)
        self.assertEqual(raw, b"GET /v2 HTTP/1.1\r\nuser-agent: me\r\nHOST: h\r\n\r\n")

    def test_reserved_parameters_refused_client_side(self):
        for key in ["binary_data_output", "timeout", "triton_x"]:
            with self.assertRaises(InferenceServerException):
                self.infer_bytes("m", [("x", "FP32", [1], [1.0], True)], parameters={key: 1})

    def test_rapidjson_format(self):
        self.assertEqual(rj_dumps({"a": [1, 1.0, 0.5, 1e-7, 1.5e21, -0.0, True, None, "é\n"]}),
                         '{"a":[1,1.0,0.5,1e-7,1.5e21,-0.0,true,null,"\\u00E9\\n"]}')

    def test_dtype_serialisation(self):
        x = InferInput("x", [3], "BF16").set_data([1.0, -2.0, 0.5])
        self.assertEqual(x._get_binary_data(), b"\x80\x3f\x00\xc0\x00\x3f")
        x = InferInput("x", [2], "FP16").set_data([1.0, -2.0])
        self.assertEqual(x._get_binary_data(), b"\x00\x3c\x00\xc0")
        x = InferInput("x", [2], "BYTES").set_data([b"ab", "c"])
        self.assertEqual(x._get_binary_data(), b"\x02\x00\x00\x00ab\x01\x00\x00\x00c")
        x = InferInput("x", [3], "BOOL").set_data([True, False, True])
        self.assertEqual(x._get_binary_data(), b"\x01\x00\x01")

    def test_result_decoding(self):
        header = json.dumps({"model_name": "m", "model_version": "1", "outputs": [
            {"name": "b", "datatype": "BOOL", "shape": [1, 3], "parameters": {"binary_data_size": 3}},
            {"name": "j", "datatype": "FP32", "shape": [2], "data": [0.1, 2]},
            {"name": "h", "datatype": "FP16", "shape": [2], "parameters": {"binary_data_size": 4}},
            {"name": "bf", "datatype": "BF16", "shape": [1], "parameters": {"binary_data_size": 2}},
            {"name": "i", "datatype": "INT64", "shape": [1, 1], "parameters": {"binary_data_size": 8}},
            {"name": "e", "datatype": "FP32", "shape": [0, 4], "parameters": {"binary_data_size": 0}},
        ]}).encode()
        body = header + b"\x01\x00\x01" + b"\x00\x3c\x00\xc0" + b"\x80\x3f" + struct.pack("<q", -5)
        r = InferResult(Response(200, "OK", "HTTP/1.1", [
            ("inference-header-content-length", str(len(header)))], body))
        self.assertEqual(r.as_list("b"), ([True, False, True], [1, 3]))
        self.assertEqual(r.as_list("j"), ([f32(0.1), 2.0], [2]))
        self.assertEqual(r.as_list("h"), ([1.0, -2.0], [2]))
        self.assertEqual(r.as_list("bf"), ([1.0], [1]))
        self.assertEqual(r.as_list("i"), ([-5], [1, 1]))
        self.assertEqual(r.as_list("e"), ([], [0, 4]))
        self.assertIsNone(r.as_list("nope"))
        self.assertEqual(r.as_numpy("i").tolist(), [[-5]])
        # gzip'd response: the header length counts the decompressed JSON
        r = InferResult(Response(200, "OK", "HTTP/1.1", [
            ("Inference-Header-Content-Length", str(len(header))), ("Content-Encoding", "gzip")],
            gzip.compress(body)))
        self.assertEqual(r.as_list("i"), ([-5], [1, 1]))


class FakeServer(unittest.TestCase):
    """The client over a real socket against canned responses: keep-alive, framing, errors."""

    def setUp(self):
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.responses, self.received, self.accepts = [], [], 0
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def tearDown(self):
        try:
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept() on Linux
        except OSError:
            pass
        self.listener.close()
        self.thread.join(timeout=10)
        self.assertFalse(self.thread.is_alive())

    def serve(self):
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.accepts += 1
            with conn:
                f = conn.makefile("rb")
                while self.responses:
                    head = b""
                    while not head.endswith(b"\r\n\r\n"):
                        line = f.readline()
                        if not line:
                            break
                        head += line
                    if not head:
                        break
                    m = re.search(rb"\r\nContent-Length: (\d+)\r\n", head)
                    body = f.read(int(m.group(1))) if m else b""
                    self.received.append(head + body)
                    resp, close = self.responses.pop(0)
                    conn.sendall(resp)
                    if close:
                        break
                f.close()  # the makefile holds the socket open: close both to send FIN

    def reply(self, status=200, headers=(), body=b"", close=False, raw=None):
        if raw is None:
            raw = b"HTTP/1.1 %d X\r\n" % status
            for k, v in headers:
                raw += k.encode() + b": " + v.encode() + b"\r\n"
            raw += b"Content-Length: %d\r\n\r\n" % len(body) + body
        self.responses.append((raw, close))

    def test_keep_alive_and_bytes(self):
        self.reply()
        self.reply(200, [("Content-Type", "application/json")], b'{"name":"x","version":"1"}')
        self.reply(400, [], b'{"error":"Request for unknown model: \'nope\' is not found"}')
        self.reply(raw=b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                       b"5\r\n{\"mod\r\n10\r\nel_stats\":[]}   \r\n0\r\n\r\n")
        with TritonWireClient("127.0.0.1", self.port) as c:
            self.assertTrue(c.is_server_live())
            self.assertEqual(c.get_server_metadata(), {"name": "x", "version": "1"})
            with self.assertRaises(InferenceServerException) as cm:
                c.get_model_metadata("nope")
            self.assertEqual(cm.exception.status(), "400")
            self.assertEqual(str(cm.exception), "[400] Request for unknown model: 'nope' is not found")
            self.assertEqual(c.get_inference_statistics(), {"model_stats": []})
            self.assertEqual(c.connections_opened, 1)
        self.assertEqual(self.accepts, 1)
        self.assertEqual(self.received[0], b"GET /v2/health/live HTTP/1.1\r\n" + UA +
                         b"Host: 127.0.0.1:%d\r\n\r\n" % self.port)
        self.assertEqual(self.received[3].split(b"\r\n")[0], b"GET /v2/models/stats HTTP/1.1")

    def test_error_bodies(self):
        self.reply(500, [], b"")
        self.reply(503, [], b"not json")
        with TritonWireClient("127.0.0.1", self.port) as c:
            with self.assertRaises(InferenceServerException) as cm:
                c.get_server_metadata()
            self.assertEqual(cm.exception.message(), "client received an empty response from the server.")
            with self.assertRaises(InferenceServerException) as cm:
                c.get_server_metadata()
            self.assertEqual(cm.exception.status(), "503")
            self.assertTrue(cm.exception.message().startswith(
                "an exception occurred in the client while decoding the response:"))

    def test_reconnects_after_server_close(self):
        self.reply(close=True)
        self.reply()
        with TritonWireClient("127.0.0.1", self.port) as c:
            self.assertTrue(c.is_server_live())
            self.assertTrue(c.is_server_ready())
            self.assertEqual(c.connections_opened, 2)

    def test_binary_infer_roundtrip(self):
        header = b'{"model_name":"m","model_version":"1","id":"q","outputs":[{"name":"y",' \
                 b'"datatype":"FP32","shape":[1,2],"parameters":{"binary_data_size":8}}]}'
        self.reply(200, [("Content-Type", "application/octet-stream"),
                         ("Inference-Header-Content-Length", str(len(header)))],
                   header + struct.pack("<2f", 0.5, -1.5))
        with TritonWireClient("127.0.0.1", self.port) as c:
            r = c.infer("m", [("x", "FP32", [1, 2], [1, 2], True)], request_id="q")
        self.assertEqual(r.as_list("y"), ([0.5, -1.5], [1, 2]))
        self.assertEqual(r.get_response()["id"], "q")
        self.assertTrue(self.received[0].endswith(struct.pack("<2f", 1, 2)))


# ---------------------------------------------------------------------------------------------
# The real server

SPECS = {
    "mlp16": """\
        name: mlp16
        version: 1.0.0
        inputs:
          - {name: x, dtype: float32, shape: [-1, 16]}
        examples:
          - name: one
            inputs:
              x: {data: [[1, 2, 3, 4, 5, 6, 7, 8, -1, -2, -3, -4, 0.5, 0.25, 0, 1]]}
        """,
    "multi_io": """\
        name: multi_io
        version: 1.0.0
        inputs:
          - {name: a, dtype: float32, shape: [-1, 3]}
          - {name: b, dtype: float32, shape: [-1, 3]}
        examples:
          - name: one
            inputs:
              a: {data: [[1, 2, 3]]}
              b: {data: [[0.5, -1, 2]]}
        """,
    "int_bool": """\
        name: int_bool
        version: 1.0.0
        inputs:
          - {name: ids, dtype: int64, shape: [-1, 4]}
          - {name: mask, dtype: bool, shape: [-1, 4]}
        examples:
          - name: one
            inputs:
              ids: {data: [[1, 2, 3, 4]]}
              mask: {data: [[true, false, true, false]]}
        """,
}
MLP_ROWS = [[(i * 7 + j * 3) % 11 / 4.0 - 1.0 for j in range(16)] for i in range(3)]


class TritonServe(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="dlsys-serve-")
        cls.addClassCleanup(shutil.rmtree, cls.tmp, ignore_errors=True)
        cls.archives = []
        for kind, spec in SPECS.items():
            model = make_model(kind, os.path.join(cls.tmp, kind + ".pt"))
            spec_path = os.path.join(cls.tmp, kind + ".yaml")
            with open(spec_path, "w") as f:
                f.write(textwrap.dedent(spec))
            out = os.path.join(cls.tmp, kind + ".dlsys")
            r = run("pack", model, "--spec", spec_path, "-o", out, "--force")
            if r.returncode != EXIT_OK:
                raise RuntimeError("pack %s failed: %s" % (kind, r.stderr))
            cls.archives.append(out)

    def setUp(self):
        self.server = clitest.Serve(*self.archives, "--allow-unsigned")
        self.addCleanup(self.server.kill)
        self.assertIn("(3 models)", self.server.ready_line)
        self.client = TritonWireClient("127.0.0.1", self.server.port)

    def tearDown(self):
        if hasattr(self, "client"):
            self.client.close()
        self.assertEqual(self.server.stop(), EXIT_OK, self.server.stderr())

    # -- helpers ------------------------------------------------------------------------------
    def meta(self, model):
        return self.client.get_model_metadata(model)

    def outputs_of(self, model):
        return [o["name"] for o in self.meta(model)["outputs"]]

    def assert_error(self, status, fn, *args, **kw):
        with self.assertRaises(InferenceServerException) as cm:
            fn(*args, **kw)
        self.assertEqual(cm.exception.status(), status, str(cm.exception))
        self.assertIsInstance(cm.exception.message(), str)
        self.assertTrue(cm.exception.message(), "empty error message")
        self.assertFalse(cm.exception.message().startswith("an exception occurred"),
                         "error body is not {\"error\": ...}: " + cm.exception.message())
        return cm.exception.message()

    def mlp(self, rows, binary_in=True, binary_out=True, **kw):
        flat = [v for r in rows for v in r]
        y = self.outputs_of("mlp16")[0]
        res = self.client.infer("mlp16", [("x", "FP32", [len(rows), 16], flat, binary_in)],
                                outputs=[InferRequestedOutput(y, binary_data=binary_out)], **kw)
        vals, shape = res.as_list(y)
        self.assertEqual(shape, [len(rows), 4])
        return vals, res

    # -- health and metadata -------------------------------------------------------------------
    def test_health(self):
        c = self.client
        self.assertTrue(c.is_server_live())
        self.assertTrue(c.is_server_ready())
        for m in SPECS:
            self.assertTrue(c.is_model_ready(m), m)
            for v in self.meta(m)["versions"]:
                self.assertTrue(c.is_model_ready(m, v), (m, v))
        self.assertFalse(c.is_model_ready("nope"))
        self.assertFalse(c.is_model_ready("mlp16", "999"))
        self.assertEqual(c.connections_opened, 1, "keep-alive: one connection for every request")

    def test_server_metadata(self):
        md = self.client.get_server_metadata()
        self.assertIsInstance(md["name"], str)
        self.assertIsInstance(md["version"], str)
        self.assertIn("binary_tensor_data", md["extensions"])
        self.assertIn("statistics", md["extensions"])

    def test_model_metadata(self):
        md = self.meta("mlp16")
        self.assertEqual(md["name"], "mlp16")
        self.assertTrue(md["versions"] and all(isinstance(v, str) for v in md["versions"]))
        self.assertIsInstance(md["platform"], str)
        self.assertEqual(md["inputs"], [{"name": "x", "datatype": "FP32", "shape": [-1, 16]}])
        self.assertEqual(len(md["outputs"]), 1)
        self.assertEqual({k: md["outputs"][0][k] for k in ("datatype", "shape")},
                         {"datatype": "FP32", "shape": [-1, 4]})
        md = self.meta("int_bool")
        self.assertEqual(md["inputs"], [{"name": "ids", "datatype": "INT64", "shape": [-1, 4]},
                                        {"name": "mask", "datatype": "BOOL", "shape": [-1, 4]}])
        self.assertEqual([o["datatype"] for o in md["outputs"]], ["FP32"])
        self.assertEqual(len(self.meta("multi_io")["outputs"]), 2)
        v = self.meta("mlp16")["versions"][0]
        self.assertEqual(self.client.get_model_metadata("mlp16", v)["name"], "mlp16")
        self.assert_error("400", self.client.get_model_metadata, "nope")
        self.assert_error("404", self.client.get_model_metadata, "mlp16", "999")

    # -- inference -----------------------------------------------------------------------------
    def test_binary_and_json_agree(self):
        results = [self.mlp(MLP_ROWS, bi, bo)[0] for bi in (True, False) for bo in (True, False)]
        for r in results[1:]:
            self.assertEqual(r, results[0])  # JSON floats must round-trip to the same float32
        self.assertTrue(all(math.isfinite(v) for v in results[0]))

    def test_batch_equals_single_rows(self):
        batch, _ = self.mlp(MLP_ROWS)
        singles = [v for row in MLP_ROWS for v in self.mlp([row])[0]]
        for a, b in zip(batch, singles):
            self.assertTrue(math.isclose(a, b, rel_tol=1e-5, abs_tol=1e-6), (batch, singles))

    def test_default_outputs_are_binary(self):
        # outputs=None: tritonclient sends "binary_data_output": true and no "outputs"
        res = self.client.infer("mlp16", [("x", "FP32", [1, 16], MLP_ROWS[0], False)])
        y = self.outputs_of("mlp16")[0]
        out = res.get_output(y)
        self.assertIn("binary_data_size", out.get("parameters", {}), out)
        self.assertNotIn("data", out)
        self.assertEqual(res.response.get("Inference-Header-Content-Length") is not None, True)
        self.assertEqual(res.as_list(y)[0], self.mlp([MLP_ROWS[0]])[0])
        self.assertEqual(res.get_response()["model_name"], "mlp16")
        self.assertIsInstance(res.get_response()["model_version"], str)

    def test_json_only_response_has_no_binary_header(self):
        _, res = self.mlp(MLP_ROWS, True, False)
        self.assertIsNone(res.response.get("Inference-Header-Content-Length"))
        self.assertIn("data", res.get_response()["outputs"][0])

    def test_int_bool_matches_python(self):
        ids = [[3, -2, 7, 1 << 40], [0, 5, -9, 2]]
        mask = [[True, False, True, True], [False, False, True, False]]
        want = [float(i * m) for ri, rm in zip(ids, mask) for i, m in zip(ri, rm)]
        y = self.outputs_of("int_bool")[0]
        for bi in (True, False):
            for bm in (True, False):
                for bo in (True, False):
                    res = self.client.infer(
                        "int_bool", [("ids", "INT64", [2, 4], ids, bi),
                                     ("mask", "BOOL", [2, 4], mask, bm)],
                        outputs=[(y, bo)])
                    self.assertEqual(res.as_list(y), ([f32(w) for w in want], [2, 4]),
                                     (bi, bm, bo))

    def test_multi_io_output_selection(self):
        a, b = [[1, 2, 3], [-1, 0.5, 4]], [[0.5, -1, 2], [3, 3, 3]]
        ins = lambda ba, bb: [("a", "FP32", [2, 3], a, ba), ("b", "FP32", [2, 3], b, bb)]  # noqa
        names = self.outputs_of("multi_io")
        full = self.client.infer("multi_io", ins(True, False))
        self.assertEqual([o["name"] for o in full.get_response()["outputs"]], names)
        every = {n: full.as_list(n) for n in names}
        for n in names:
            for binary in (True, False):
                res = self.client.infer("multi_io", ins(False, True), outputs=[(n, binary)])
                self.assertEqual([o["name"] for o in res.get_response()["outputs"]], [n])
                self.assertEqual(res.as_list(n), every[n])
        # both, one binary and one JSON, in reverse order
        res = self.client.infer("multi_io", ins(True, True),
                                outputs=[(names[1], False), (names[0], True)])
        for n in names:
            self.assertEqual(res.as_list(n), every[n])

    def test_request_id_and_parameters(self):
        _, res = self.mlp(MLP_ROWS[:1], request_id="req-42")
        self.assertEqual(res.get_response().get("id"), "req-42")
        _, res = self.mlp(MLP_ROWS[:1])
        self.assertNotIn("id", res.get_response())
        _, res = self.mlp(MLP_ROWS[:1], parameters={"note": "x", "n": 3, "flag": True},
                          headers={"X-Request-Source": "test"}, timeout=10_000_000, priority=1)
        self.assertEqual(res.get_response()["model_name"], "mlp16")

    def test_versioned_infer(self):
        v = self.meta("mlp16")["versions"][0]
        flat = MLP_ROWS[0]
        res = self.client.infer("mlp16", [("x", "FP32", [1, 16], flat, True)], model_version=v)
        y = self.outputs_of("mlp16")[0]
        self.assertEqual(res.as_list(y)[0], self.mlp([flat])[0])
        self.assert_error("404", self.client.infer, "mlp16",
                          [("x", "FP32", [1, 16], flat, True)], model_version="999")

    def test_compressed_requests_and_responses(self):
        want = self.mlp(MLP_ROWS)[0]
        y = self.outputs_of("mlp16")[0]
        flat = [v for r in MLP_ROWS for v in r]
        for req in ("gzip", "deflate", None):
            for resp in ("gzip", "deflate", None):
                for binary in (True, False):
                    res = self.client.infer(
                        "mlp16", [("x", "FP32", [3, 16], flat, binary)], outputs=[(y, binary)],
                        request_compression_algorithm=req, response_compression_algorithm=resp)
                    self.assertEqual(res.as_list(y)[0], want, (req, resp, binary))
                    enc = res.response.get("Content-Encoding")
                    self.assertIn(enc, (None, resp), (req, resp))

    def test_errors(self):
        c, x = self.client, MLP_ROWS[0]
        self.assert_error("400", c.infer, "nope", [("x", "FP32", [1, 16], x, True)])
        self.assert_error("400", c.infer, "mlp16", [("z", "FP32", [1, 16], x, True)])
        self.assert_error("400", c.infer, "mlp16", [("x", "FP64", [1, 16], x, True)])
        self.assert_error("400", c.infer, "mlp16", [("x", "FP32", [1, 15], x[:15], False)])
        self.assert_error("400", c.infer, "mlp16", [("x", "FP32", [2, 16], x, False)])
        self.assert_error("400", c.infer, "multi_io", [("a", "FP32", [1, 3], [1, 2, 3], True)])
        self.assert_error("400", c.infer, "mlp16", [("x", "FP32", [1, 16], x, True)],
                          outputs=["no_such_output"])
        # binary_data_size larger than the bytes sent
        inp = InferInput("x", [1, 16], "FP32").set_data(x)
        inp._parameters["binary_data_size"] = 68
        self.assert_error("400", c.infer, "mlp16", [inp])
        # malformed JSON, as a raw body through the same connection
        resp = c.request("POST", "v2/models/mlp16/infer", b'{"inputs": [', None)
        self.assertEqual(resp.status_code, 400)
        self.assertIsInstance(json.loads(resp.body)["error"], str)
        self.assert_error("400", c.get_inference_statistics, "nope")
        # errors do not cost the connection
        self.assertTrue(c.is_server_live())
        self.mlp(MLP_ROWS[:1])
        self.assertEqual(c.connections_opened, 1)

    def test_statistics(self):
        for rows in (MLP_ROWS, MLP_ROWS[:1], MLP_ROWS[:2]):
            self.mlp(rows)
        stats = self.client.get_inference_statistics("mlp16")
        self.assertEqual(len(stats["model_stats"]), 1)
        s = stats["model_stats"][0]
        self.assertEqual(s["name"], "mlp16")
        self.assertEqual(s["version"], self.meta("mlp16")["versions"][0])
        self.assertEqual(s["inference_count"], 6)
        self.assertTrue(1 <= s["execution_count"] <= 3, s)
        self.assertIsInstance(s["last_inference"], int)
        self.assertGreater(s["last_inference"], 1_600_000_000_000)  # ms since the epoch
        inf = s["inference_stats"]
        for key in ("success", "fail", "queue", "compute_input", "compute_infer",
                    "compute_output", "cache_hit", "cache_miss"):
            self.assertIsInstance(inf[key]["count"], int, key)
            self.assertIsInstance(inf[key]["ns"], int, key)
        self.assertEqual(inf["success"]["count"], 3)
        self.assertGreater(inf["success"]["ns"], 0)
        self.assertIsInstance(s["batch_stats"], list)
        for b in s["batch_stats"]:
            self.assertIsInstance(b["batch_size"], int)
            self.assertIsInstance(b["compute_infer"]["count"], int)
        v = s["version"]
        self.assertEqual(self.client.get_inference_statistics("mlp16", v)["model_stats"][0]
                         ["inference_count"], 6)
        every = self.client.get_inference_statistics()
        self.assertEqual(sorted(m["name"] for m in every["model_stats"]), sorted(SPECS))
        self.assert_error("404", self.client.get_inference_statistics, "mlp16", "999")


if __name__ == "__main__":
    unittest.main()
