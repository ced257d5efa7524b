#!/usr/bin/python3
"""The usual alternative to `dlsys serve` in scripts/bench/serve.sh: a minimal Python server
that answers the same KServe v2 JSON infer request with torch.jit.load + a forward.

  /usr/bin/python3 scripts/bench/py_server.py MODEL.pt --name NAME [--output y]
                   [--framework http|flask] [--port 0] [--threads N] [--nagle] [--stock]

POST /v2/models/NAME/infer   {"inputs":[{"name":..,"datatype":"FP32","shape":[..],"data":[..]}]}
GET  /v2/health/ready        200
Prints 'py_server: ready on http://127.0.0.1:PORT' on stdout once the model is loaded.
http: http.server.ThreadingHTTPServer, flask: Flask's threaded (werkzeug) server; both with HTTP/1.1
keep-alive and TCP_NODELAY (without it, headers and body written apart meet delayed ACKs: 40 ms).
--stock (flask): Flask's server exactly as `app.run(threaded=True)` starts it, the way a
hand-written model server is usually run: werkzeug's default handler (HTTP/1.0, a connection per
request, Nagle on). JSON only, FP32 only: just enough to be a fair comparison.
"""
import argparse
import json
import sys

import torch

DTYPES = {"FP32": torch.float32}


def make_infer(model, name, output):
    def infer(body):
        req = json.loads(body)
        inp = req["inputs"][0]
        x = torch.tensor(inp["data"], dtype=DTYPES[inp.get("datatype", "FP32")]).reshape(inp["shape"])
        with torch.inference_mode():
            y = model(x)
        reply = {"model_name": name, "outputs": [{
            "name": output, "datatype": "FP32", "shape": list(y.shape),
            "data": y.reshape(-1).tolist()}]}
        return json.dumps(reply, separators=(",", ":")).encode()
    return infer


def serve_http(infer, name, host, port, nagle=False):
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    path = "/v2/models/%s/infer" % name

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = not nagle  # headers and body go out in two writes

        def log_message(self, *args):
            pass

        def reply(self, code, body, ctype="application/json"):
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            self.reply(200 if self.path == "/v2/health/ready" else 404, b"")

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if self.path != path:
                return self.reply(404, b'{"error":"not found"}')
            try:
                self.reply(200, infer(body))
            except Exception as e:  # noqa: BLE001 - report, keep serving
                self.reply(400, json.dumps({"error": str(e)}).encode())

    ThreadingHTTPServer.daemon_threads = True
    srv = ThreadingHTTPServer((host, port), Handler)
    print("py_server: ready on http://%s:%d" % (host, srv.server_address[1]), flush=True)
    srv.serve_forever()


def serve_flask(infer, name, host, port, stock=False):
    import logging
    import socket

    from flask import Flask, Response, request
    from werkzeug.serving import WSGIRequestHandler, make_server

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    app = Flask("py_server")

    @app.post("/v2/models/%s/infer" % name)
    def infer_route():
        try:
            return Response(infer(request.get_data()), mimetype="application/json")
        except Exception as e:  # noqa: BLE001
            return Response(json.dumps({"error": str(e)}), status=400, mimetype="application/json")

    @app.get("/v2/health/ready")
    def ready():
        return ""

    class Handler(WSGIRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

    # app.run(threaded=True) = make_server(..., threaded=True) with the default handler.
    srv = make_server(host, port, app, threaded=True,
                      request_handler=WSGIRequestHandler if stock else Handler)
    port = srv.socket.getsockname()[1] if srv.socket.family != socket.AF_UNIX else port
    print("py_server: ready on http://%s:%d" % (host, port), flush=True)
    srv.serve_forever()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--name", required=True)
    ap.add_argument("--output", default="y")
    ap.add_argument("--framework", choices=["http", "flask"], default="http")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--nagle", action="store_true",
                    help="http: keep Nagle's algorithm on (the stock handler's behaviour)")
    ap.add_argument("--stock", action="store_true",
                    help="flask: the server as app.run(threaded=True) starts it (HTTP/1.0, Nagle on)")
    ap.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0: default)")
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    model = torch.jit.load(a.model).eval()
    infer = make_infer(model, a.name, a.output)
    if a.framework == "flask":
        serve_flask(infer, a.name, a.host, a.port, stock=a.stock)
    else:
        serve_http(infer, a.name, a.host, a.port, nagle=a.nagle)


if __name__ == "__main__":
    sys.exit(main())
