#!/usr/bin/python3
"""Servers for tests/oci/client_test.cpp, each bound to a free port it writes to --port-file.

  token    an OAuth2-style token service for docker-registry's `auth.token` (ES256 JWTs signed
           with --key, whose certificate is the registry's rootcertbundle); Basic credentials
           --user U:P are required; each request is logged as one line to --log.
  proxy    a reverse proxy in front of --upstream that answers 503 to the first --fail-first
           requests (of --fail-method only, when given), with --redirect-blobs URL 307 to
           URL/DIGEST for blob GETs, and with --cut-first-blob drops the first blob GET halfway.
  blobhost serves the files of --dir by name (the "blob storage" a redirect points at).
  keygen   writes an EC P-256 key (--key) and a self-signed certificate for it (--cert), then exits.

Every request is logged as "METHOD PATH authorization=yes|no"; no secret is ever logged.
Stopped by the test with SIGTERM.
"""
import argparse
import base64
import hashlib
import http.client
import http.server
import json
import os
import re
import sys
import threading
import time
import urllib.parse
import uuid

LOCK = threading.Lock()


def log_line(path, line):
    if not path:
        return
    with LOCK, open(path, "a") as f:
        f.write(line + "\n")


def write_port(path, port):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(port))
    os.replace(tmp, path)


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def libtrust_key_id(public_key):
    """The key ID docker-registry derives from each rootcertbundle key (libtrust's format)."""
    from cryptography.hazmat.primitives import serialization
    der = public_key.public_bytes(serialization.Encoding.DER,
                                  serialization.PublicFormat.SubjectPublicKeyInfo)
    s = base64.b32encode(hashlib.sha256(der).digest()[:30]).decode().rstrip("=")
    return ":".join(s[i:i + 4] for i in range(0, len(s), 4))


def make_jwt(key, claims):
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
    header = {"typ": "JWT", "alg": "ES256", "kid": libtrust_key_id(key.public_key())}
    signing_input = (b64url(json.dumps(header).encode()) + "." +
                     b64url(json.dumps(claims).encode())).encode()
    r, s = decode_dss_signature(key.sign(signing_input, ec.ECDSA(hashes.SHA256())))
    return signing_input.decode() + "." + b64url(r.to_bytes(32, "big") + s.to_bytes(32, "big"))


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    args = None
    state = {"count": 0}

    def log_message(self, *unused):
        pass

    def note(self):
        has_auth = "yes" if self.headers.get("Authorization") else "no"
        line = f"{self.command} {self.path} authorization={has_auth}"
        if self.headers.get("Range"):
            line += " range=" + self.headers.get("Range")
        log_line(self.args.log, line)

    def reply(self, status, body=b"", headers=()):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def read_body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    # ---- token -----------------------------------------------------------------------------
    def token(self):
        self.note()
        body = self.read_body()
        a = self.args
        expected = "Basic " + base64.b64encode(a.user.encode()).decode()
        if self.headers.get("Authorization") != expected:
            self.reply(401, b'{"errors":[{"code":"UNAUTHORIZED","message":"bad credentials"}]}',
                       [("Content-Type", "application/json")])
            return
        query = urllib.parse.parse_qs(urllib.parse.urlparse(self.path).query)
        if body:
            query.update(urllib.parse.parse_qs(body.decode()))
        access = []
        for scope in query.get("scope", []):
            kind, name, actions = scope.split(":")
            access.append({"type": kind, "name": name, "actions": actions.split(",")})
        log_line(a.log, "scopes " + " ".join(query.get("scope", [])))
        now = int(time.time())
        claims = {"iss": a.issuer, "sub": a.user.split(":")[0], "aud": a.service,
                  "exp": now + 300, "nbf": now - 10, "iat": now, "jti": uuid.uuid4().hex,
                  "access": access}
        token = make_jwt(a.key_obj, claims)
        self.reply(200, json.dumps({"access_token": token, "expires_in": 300}).encode(),
                   [("Content-Type", "application/json")])

    # ---- proxy -----------------------------------------------------------------------------
    def proxy(self):
        self.note()
        body = self.read_body()
        a = self.args
        with LOCK:
            if not a.fail_method or self.command == a.fail_method:
                self.state["count"] += 1
                failing = self.state["count"] <= a.fail_first
            else:
                failing = False
            cut = False
            if a.cut_first_blob and self.command == "GET" and "/blobs/sha256:" in self.path:
                cut = not self.state.get("cut")
                self.state["cut"] = True
        if failing:
            self.reply(503, b'{"errors":[{"code":"UNAVAILABLE","message":"try later"}]}',
                       [("Content-Type", "application/json")])
            return
        m = re.match(r"^/v2/.+/blobs/(sha256:[0-9a-f]{64})$", self.path)
        if a.redirect_blobs and self.command == "GET" and m:
            self.reply(307, b"", [("Location", a.redirect_blobs + "/" + m.group(1))])
            return
        host, port = a.upstream.rsplit(":", 1)
        conn = http.client.HTTPConnection(host, int(port), timeout=60)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("connection",)}
        conn.request(self.command, self.path, body=body if body else None, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        out = [(k, v) for k, v in resp.getheaders()
               if k.lower() not in ("content-length", "transfer-encoding", "connection")]
        conn.close()
        if cut:  # announce the whole body, send half of it, drop the connection
            self.send_response(resp.status)
            for k, v in out:
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[:len(data) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.reply(resp.status, data, out)

    # ---- blobhost --------------------------------------------------------------------------
    def blobhost(self):
        self.note()
        name = os.path.basename(urllib.parse.urlparse(self.path).path)
        path = os.path.join(self.args.dir, name)
        if not os.path.isfile(path):
            self.reply(404)
            return
        with open(path, "rb") as f:
            self.reply(200, f.read(), [("Content-Type", "application/octet-stream")])

    def handle_any(self):
        getattr(self, self.args.mode)()

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = handle_any


def keygen(key_path, cert_path):
    import datetime
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "dlsys test token issuer")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=2))
            .sign(key, hashes.SHA256()))
    with open(key_path, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    with open(cert_path, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["token", "proxy", "blobhost", "keygen"])
    p.add_argument("--bind", default="127.0.0.1")
    p.add_argument("--port-file", default="")
    p.add_argument("--cert", default="")
    p.add_argument("--log", default="")
    p.add_argument("--key")
    p.add_argument("--issuer", default="dlsys-test-issuer")
    p.add_argument("--service", default="dlsys-test-registry")
    p.add_argument("--user", default="")
    p.add_argument("--upstream", default="")
    p.add_argument("--fail-first", type=int, default=0)
    p.add_argument("--fail-method", default="")
    p.add_argument("--cut-first-blob", action="store_true")
    p.add_argument("--redirect-blobs", default="")
    p.add_argument("--dir", default="")
    args = p.parse_args()
    if args.mode == "keygen":
        keygen(args.key, args.cert)
        return 0
    if args.mode == "token":
        from cryptography.hazmat.primitives import serialization
        with open(args.key, "rb") as f:
            args.key_obj = serialization.load_pem_private_key(f.read(), password=None)
    Handler.args = args
    server = http.server.ThreadingHTTPServer((args.bind, 0), Handler)
    server.daemon_threads = True
    write_port(args.port_file, server.server_address[1])
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
