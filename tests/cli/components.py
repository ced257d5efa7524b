"""Real Debian components for CLI tests, as context managers: each binds 127.0.0.1 on a free
port, keeps all its state in a directory under the caller's temp dir, is ready when it answers
(polled with a deadline, never a fixed sleep) and is stopped by its own PID. A missing package
raises ComponentMissing naming it: a test FAILURE, never a skip (scripts/install-deps.sh
installs them).

    with sshd(tmpdir) as s:       # openssh-server + openssh-client
        subprocess.run(s.ssh_argv("cat /etc/hostname"))
        env = s.env                # DLSYS_SSH_CONFIG for dlsys monitor ssh://...
    with nginx_json(tmpdir) as n:  # nginx-light
        n.get("/ok"); n.access_log
"""
import contextlib
import http.server
import os
import pwd
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

READY_TIMEOUT = 30  # seconds; both start in well under a second here


class ComponentMissing(AssertionError):
    """A Debian package a test needs is not installed (an AssertionError: a failure)."""


def _require(path, package):
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        raise ComponentMissing(f"{path} is missing: install the Debian package '{package}' "
                               "(scripts/install-deps.sh)")
    return path


def free_port():
    """A port nobody listens on right now (the kernel's choice for an ephemeral bind)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tail(path, n=2000):
    try:
        with open(path, "rb") as f:
            return f.read()[-n:].decode(errors="replace")
    except OSError:
        return ""


def _children(pid):
    """PIDs whose parent is pid (from /proc)."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if ppid == pid:
            out.append(int(entry))
    return out


def descendants(pid):
    """Every process below pid, parents before children."""
    out, todo = [], [pid]
    while todo:
        kids = _children(todo.pop())
        out.extend(kids)
        todo.extend(kids)
    return out


def _stop(proc, timeout=10):
    """SIGTERM to proc (a Popen), SIGKILL after timeout; always reaped."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=60)


def _wait_until(pred, proc, what, log, timeout=READY_TIMEOUT):
    """Polls pred() until true; fails if proc exits or the deadline passes."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"{what} exited with {proc.returncode} before it was ready: "
                                 f"{_tail(log)}")
        try:
            if pred():
                return
        except OSError as e:
            last = e
        time.sleep(0.01)  # polling readiness, bounded by the deadline
    raise AssertionError(f"{what} was not ready within {timeout} s ({last}): {_tail(log)}")


# ---------------------------------------------------------------------------------------------
# OpenSSH server


class Sshd:
    """What sshd() yields."""
    host = "127.0.0.1"

    def __init__(self, dir, port, user, identity, known_hosts, config, log, proc):
        self.dir, self.port, self.user = dir, port, user
        self.identity, self.known_hosts = identity, known_hosts
        self.config = config  # an ssh_config for this server only: ssh -F CONFIG
        self.log, self.proc = log, proc

    @property
    def options(self):
        """ssh command-line options that reach this server with the throwaway key."""
        return ["-F", self.config, "-p", str(self.port), "-l", self.user]

    @property
    def env(self):
        """Environment for dlsys: its ssh reads this config (DLSYS_SSH_CONFIG)."""
        return {"DLSYS_SSH_CONFIG": self.config}

    def url(self, path):
        """ssh://USER@127.0.0.1:PORT/PATH (PATH absolute)."""
        return f"ssh://{self.user}@{self.host}:{self.port}{path}"

    def ssh_argv(self, command):
        return ["ssh", *self.options, "-o", "BatchMode=yes", "--", self.host, command]

    def sessions(self):
        """PIDs of processes sshd started for connections (and theirs)."""
        return descendants(self.proc.pid)

    def log_text(self):
        return _tail(self.log, 100000)


def _write(path, text, mode=0o600):
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)


@contextlib.contextmanager
def sshd(tmpdir):
    """A real OpenSSH sshd (package openssh-server) on 127.0.0.1:PORT that lets the current
    user in with a throwaway ed25519 key, and an ssh_config that trusts only its throwaway host
    key (StrictHostKeyChecking yes, a known_hosts file of its own). Root or not: as root it needs
    PermitRootLogin prohibit-password and the privilege separation directory /run/sshd, which is
    created when missing, as the openssh-server service does."""
    sshd_bin = _require("/usr/sbin/sshd", "openssh-server")
    _require(shutil.which("ssh") or "/usr/bin/ssh", "openssh-client")
    keygen = _require(shutil.which("ssh-keygen") or "/usr/bin/ssh-keygen", "openssh-client")
    d = os.path.join(tmpdir, "sshd")
    os.makedirs(d, mode=0o700)
    host_key, user_key = os.path.join(d, "host_ed25519"), os.path.join(d, "id_ed25519")
    for key, comment in ((host_key, "dlsys-test-host"), (user_key, "dlsys-test-user")):
        subprocess.run([keygen, "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", key],
                       check=True, capture_output=True, timeout=60)
    user = pwd.getpwuid(os.geteuid()).pw_name
    authorized = os.path.join(d, "authorized_keys")
    shutil.copy(user_key + ".pub", authorized)
    os.chmod(authorized, 0o600)
    if os.geteuid() == 0 and not os.path.isdir("/run/sshd"):
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
    port = free_port()
    pidfile = os.path.join(d, "sshd.pid")
    config = os.path.join(d, "sshd_config")
    # Nothing from /etc/ssh: its own host key, keys only, no PAM (which would need root and
    # the system's account setup), no forwarding; StrictModes off because the temp dir's
    # ancestors need not have sshd's idea of safe permissions.
    _write(config, "\n".join([
        f"ListenAddress 127.0.0.1:{port}",
        f"HostKey {host_key}",
        f"PidFile {pidfile}",
        f"AuthorizedKeysFile {authorized}",
        "PermitRootLogin prohibit-password",
        "PubkeyAuthentication yes",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "UsePAM no",
        "StrictModes no",
        "AllowTcpForwarding no",
        "X11Forwarding no",
        "PrintMotd no",
        "PrintLastLog no",
        "LogLevel VERBOSE",
        "",
    ]))
    with open(host_key + ".pub") as f:
        host_pub = " ".join(f.read().split()[:2])
    known_hosts = os.path.join(d, "known_hosts")
    _write(known_hosts, f"[127.0.0.1]:{port} {host_pub}\n")
    client_config = os.path.join(d, "ssh_config")
    _write(client_config, "\n".join([
        "Host *",
        f"  IdentityFile {user_key}",
        "  IdentitiesOnly yes",
        f"  UserKnownHostsFile {known_hosts}",
        "  GlobalKnownHostsFile /dev/null",
        "  StrictHostKeyChecking yes",
        "  UpdateHostKeys no",
        "  PasswordAuthentication no",
        "  KbdInteractiveAuthentication no",
        "",
    ]))
    log = os.path.join(d, "sshd.log")
    with open(log, "wb") as logf:
        proc = subprocess.Popen([sshd_bin, "-D", "-e", "-f", config], stdin=subprocess.DEVNULL,
                                stdout=logf, stderr=subprocess.STDOUT)
    s = Sshd(d, port, user, user_key, known_hosts, client_config, log, proc)
    try:
        def banner():
            with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
                return c.recv(64).startswith(b"SSH-2.0-")
        _wait_until(banner, proc, "sshd", log)
        r = subprocess.run(s.ssh_argv("true"), capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            raise AssertionError(f"ssh to the test sshd failed ({r.returncode}): {r.stderr}\n"
                                 f"sshd log: {s.log_text()}")
        yield s
    finally:
        # Sessions outlive a stopped sshd (that is how sshd restarts remotely): stop them first.
        for pid in reversed(s.sessions()):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        _stop(proc)


# ---------------------------------------------------------------------------------------------
# nginx writing JSON access logs

# Fields a real nginx JSON access log has. escape=json writes every $variable escaped inside the
# quotes the format gives it; most formats quote everything (so numbers arrive as strings such
# as "503" and "0.052"), some leave a few bare. Both are here: status and request_time quoted,
# bytes and request_length bare.
NGINX_LOG_FORMAT = (
    '{"@timestamp":"$time_iso8601",'
    '"remote_addr":"$remote_addr",'
    '"method":"$request_method",'
    '"uri":"$uri",'
    '"args":"$args",'
    '"status":"$status",'
    '"bytes":$body_bytes_sent,'
    '"request_length":$request_length,'
    '"request_time":"$request_time",'
    '"upstream":"$upstream_addr",'
    '"upstream_response_time":"$upstream_response_time",'
    '"user_agent":"$http_user_agent",'
    '"request_id":"$request_id"}'
)


class _SlowBackend(http.server.BaseHTTPRequestHandler):
    """GET /slow?ms=N answers 200 after N milliseconds (what makes request_time non-zero)."""
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        q = urllib.parse.parse_qs(urllib.parse.urlparse(self.path).query)
        ms = min(int(q.get("ms", ["0"])[0]), 5000)
        time.sleep(ms / 1000)  # the backend's simulated work, not synchronisation
        body = b"slow\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class Nginx:
    """What nginx_json() yields."""
    host = "127.0.0.1"

    def __init__(self, dir, port, access_log, error_log, proc):
        self.dir, self.port = dir, port
        self.access_log, self.error_log, self.proc = access_log, error_log, proc

    def get(self, path, headers=None):
        """GET path: (status, body bytes); HTTP errors are answers, not exceptions."""
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def wait_logged(self, n, timeout=30):
        """Waits until the access log holds n lines (nginx writes each after the response is
        sent, so a client can see the answer a moment before the line); returns the lines."""
        deadline = time.monotonic() + timeout
        while True:
            with open(self.access_log, "rb") as f:
                lines = f.read().splitlines()
            if len(lines) >= n or time.monotonic() > deadline:
                return lines
            time.sleep(0.005)  # polling the log, bounded by the deadline


@contextlib.contextmanager
def nginx_json(tmpdir):
    """A real nginx (package nginx-light) on 127.0.0.1:PORT, its own prefix, config, pid file,
    temp paths and logs in a directory under tmpdir, writing a JSON access log
    (NGINX_LOG_FORMAT, escape=json). Locations: /ok 200, /err 503, /missing 404, /slow?ms=N
    proxied to a local backend that waits N ms (so request_time and upstream fields are real),
    anything else 404."""
    nginx_bin = _require("/usr/sbin/nginx", "nginx-light")
    d = os.path.join(tmpdir, "nginx")
    os.makedirs(os.path.join(d, "logs"))
    os.makedirs(os.path.join(d, "tmp"))
    backend = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _SlowBackend)
    backend.daemon_threads = True
    threading.Thread(target=backend.serve_forever, daemon=True).start()
    port = free_port()
    access_log = os.path.join(d, "logs", "access.json")
    error_log = os.path.join(d, "logs", "error.log")
    conf = os.path.join(d, "nginx.conf")
    tmp = os.path.join(d, "tmp")
    # As root, workers would switch to 'nobody' and could not enter the 0700 temp dir; as
    # another user the directive is ignored with a warning, so it is written only for root.
    user = "user root root;\n" if os.geteuid() == 0 else ""
    _write(conf, f"""{user}worker_processes 1;
pid {d}/nginx.pid;
error_log {error_log} info;
events {{ worker_connections 64; }}
http {{
  log_format j escape=json '{NGINX_LOG_FORMAT}';
  access_log {access_log} j;
  client_body_temp_path {tmp}/body;
  proxy_temp_path {tmp}/proxy;
  fastcgi_temp_path {tmp}/fastcgi;
  uwsgi_temp_path {tmp}/uwsgi;
  scgi_temp_path {tmp}/scgi;
  server {{
    listen 127.0.0.1:{port};
    location = /ok {{ return 200 "ok\\n"; }}
    location = /err {{ return 503 "unavailable\\n"; }}
    location = /slow {{ proxy_pass http://127.0.0.1:{backend.server_address[1]}; }}
    location / {{ return 404 "not found\\n"; }}
  }}
}}
""", mode=0o644)
    with open(os.path.join(d, "stderr"), "wb") as err:
        proc = subprocess.Popen([nginx_bin, "-p", d + "/", "-c", conf, "-e", error_log,
                                 "-g", "daemon off;"],
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
    n = Nginx(d, port, access_log, error_log, proc)
    try:
        def answers():
            with socket.create_connection(("127.0.0.1", port), timeout=5):
                return True
        _wait_until(answers, proc, "nginx", error_log)
        yield n
    finally:
        _stop(proc)  # SIGTERM: fast shutdown of the master and its worker
        backend.shutdown()
        backend.server_close()


# ---------------------------------------------------------------------------------------------
# An OCI registry: the CNCF distribution registry (Debian's docker-registry)


class OciRegistry:
    """A real docker-registry (package docker-registry, CNCF distribution 2.8) on
    127.0.0.1:PORT storing blobs in a directory under tmpdir, optionally requiring basic auth
    (a bcrypt htpasswd file written with htpasswd -Bbn, package apache2-utils). A context
    manager: ready when GET /v2/ answers (200, or 401 with auth), stopped by its own PID.

        with OciRegistry(tmpdir) as reg:                     # anonymous
            reg.ref("iris", "1.0.0")  # oci://127.0.0.1:PORT/iris:1.0.0
        with OciRegistry(tmpdir, user="u", password="p") as reg:
            env = {"REGISTRY_AUTH_FILE": reg.write_auth_file(path)}
    """
    host = "127.0.0.1"

    def __init__(self, tmpdir, user=None, password=None, name="registry", tls=False):
        self.binary = _require("/usr/bin/docker-registry", "docker-registry")
        self.dir = os.path.join(tmpdir, name)
        self.storage = os.path.join(self.dir, "storage")
        self.log = os.path.join(self.dir, "registry.log")
        self.user, self.password = user, password
        self.port, self.proc = None, None
        # tls: HTTPS with a throwaway self-signed certificate for 127.0.0.1 (self.ca_file: give
        # it to clients as their CA).
        self.tls, self.ca_file = tls, None

    @property
    def addr(self):
        return f"{self.host}:{self.port}"

    def ref(self, repo, tag=None, digest=None):
        """oci://127.0.0.1:PORT/REPO[:TAG|@DIGEST] for dlsys."""
        return f"oci://{self.addr}/{repo}" + (f":{tag}" if tag else "") + \
            (f"@{digest}" if digest else "")

    def docker_ref(self, repo, tag):
        """docker://127.0.0.1:PORT/REPO:TAG for skopeo."""
        return f"docker://{self.addr}/{repo}:{tag}"

    def blob_path(self, digest):
        """Where the registry keeps a blob's bytes (distribution's filesystem layout)."""
        hexdigest = digest.split(":", 1)[1]
        return os.path.join(self.storage, "docker", "registry", "v2", "blobs", "sha256",
                            hexdigest[:2], hexdigest, "data")

    def write_auth_file(self, path, user=None, password=None):
        """An auth file as docker login / podman login write it; returns its path."""
        import base64
        import json
        token = base64.b64encode(f"{user or self.user}:{password or self.password}".encode())
        _write(path, json.dumps({"auths": {self.addr: {"auth": token.decode()}}}))
        return path

    def log_text(self):
        return _tail(self.log, 1000000)

    def requests(self):
        """(method, path) of every request the registry has answered so far, from its access
        log lines (method and path of the request line)."""
        import re
        out = []
        for m in re.finditer(r'"(GET|HEAD|POST|PUT|PATCH|DELETE) (/v2/[^ "]*) HTTP/',
                             self.log_text()):
            out.append((m.group(1), m.group(2)))
        return out

    def get(self, path, headers=None):
        import ssl
        scheme = "https" if self.tls else "http"
        req = urllib.request.Request(f"{scheme}://{self.addr}{path}", headers=headers or {})
        context = ssl.create_default_context(cafile=self.ca_file) if self.tls else None
        try:
            with urllib.request.urlopen(req, timeout=30, context=context) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def start(self):
        os.makedirs(self.storage)
        self.port = free_port()
        auth = ""
        if self.user:
            htpasswd = _require(shutil.which("htpasswd") or "/usr/bin/htpasswd", "apache2-utils")
            r = subprocess.run([htpasswd, "-Bbn", self.user, self.password], check=True,
                               capture_output=True, text=True, timeout=60)
            passwd = os.path.join(self.dir, "htpasswd")
            _write(passwd, r.stdout)
            auth = f"auth:\n  htpasswd:\n    realm: dlsys-test\n    path: {passwd}\n"
        tls = ""
        if self.tls:
            openssl = _require(shutil.which("openssl") or "/usr/bin/openssl", "openssl")
            cert, key = os.path.join(self.dir, "cert.pem"), os.path.join(self.dir, "key.pem")
            subprocess.run([openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt",
                            "ec_paramgen_curve:P-256", "-nodes", "-days", "1", "-subj",
                            "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                            "-keyout", key, "-out", cert], check=True, capture_output=True,
                           timeout=60)
            self.ca_file = cert
            tls = f"  tls:\n    certificate: {cert}\n    key: {key}\n"
        config = os.path.join(self.dir, "config.yml")
        _write(config, f"""version: 0.1
log:
  level: info
  accesslog:
    disabled: false
storage:
  filesystem:
    rootdirectory: {self.storage}
  delete:
    enabled: true
http:
  addr: {self.addr}
{tls}{auth}""")
        with open(self.log, "wb") as logf:
            self.proc = subprocess.Popen([self.binary, "serve", config], stdin=subprocess.DEVNULL,
                                         stdout=logf, stderr=subprocess.STDOUT)
        try:
            _wait_until(lambda: self.get("/v2/")[0] in (200, 401), self.proc, "docker-registry",
                        self.log)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self):
        if self.proc is not None:
            _stop(self.proc)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
