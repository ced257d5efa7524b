"""Helpers for CLI tests: run the real dlsys binary, build fixtures, validate JSON."""
import decimal
import io
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
import time
import unittest

import jsonschema

DLSYS = os.environ.get("DLSYS_BIN", "build/bin/dlsys")
MAKE_MODEL = os.environ.get("DLSYS_MAKE_MODEL", "")
SOURCE_DIR = os.environ.get("DLSYS_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
SCHEMAS = os.path.join(SOURCE_DIR, "schemas")

EXIT_OK, EXIT_INTERNAL, EXIT_USAGE, EXIT_NOT_FOUND = 0, 1, 2, 3
EXIT_INVALID, EXIT_VERIFY_FAILED, EXIT_UNAVAILABLE = 4, 5, 6


def run(*args, env=None, cwd=None, timeout=300):
    """Runs dlsys; returns CompletedProcess with text stdout/stderr."""
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    return subprocess.run([DLSYS, *map(str, args)], capture_output=True, text=True,
                          env=full_env, cwd=cwd, timeout=timeout)


def make_model(kind, out, *extra):
    # Never a silent skip: a build without the runtime must point DLSYS_MAKE_MODEL (and
    # DLSYS_RUNTIME_MODULE) at a full build's, as scripts/test.sh does for the sanitizer leg.
    if not MAKE_MODEL:
        raise RuntimeError("DLSYS_MAKE_MODEL is not set: configure with the runtime, or with "
                           "-DDLSYS_EXTERNAL_MAKE_MODEL=PATH")
    subprocess.run([MAKE_MODEL, kind, str(out), *map(str, extra)], check=True, timeout=600)
    return str(out)


def load_schema(name):
    with open(os.path.join(SCHEMAS, name)) as f:
        return json.load(f)


def validate(instance, schema_name):
    """Validates against schemas/<schema_name>, resolving refs to sibling schemas."""
    schema = load_schema(schema_name)
    store = {}
    for fn in os.listdir(SCHEMAS):
        if fn.endswith(".json"):
            s = load_schema(fn)
            store[s["$id"]] = s
    resolver = jsonschema.RefResolver.from_schema(schema, store=store)
    jsonschema.Draft202012Validator(schema, resolver=resolver).validate(instance)


def tar_members(path):
    """[(TarInfo, bytes)] of an archive, in order (any compression tarfile reads)."""
    out = []
    with tarfile.open(path) as t:
        for m in t.getmembers():
            data = t.extractfile(m).read() if m.isfile() else b""
            out.append((m, data))
    return out


def ecma_number(x):
    """A number as RFC 8785 (ECMAScript Number.prototype.toString) writes it."""
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        raise TypeError(x)
    if isinstance(x, int):
        return str(x)
    if x == 0:
        return "0"
    if x.is_integer() and abs(x) < 1e21:
        return str(int(x))
    d = decimal.Decimal(repr(abs(x))).normalize()
    sign, digits, exp = d.as_tuple()
    digits = "".join(map(str, digits))
    k, n = len(digits), len(digits) + exp
    out = "-" if x < 0 else ""
    if k <= n <= 21:
        return out + digits + "0" * (n - k)
    if 0 < n <= 21:
        return out + digits[:n] + "." + digits[n:]
    if -6 < n <= 0:
        return out + "0." + "0" * -n + digits
    e = n - 1
    mant = digits if k == 1 else digits[0] + "." + digits[1:]
    return out + mant + "e" + ("+" if e > 0 else "-") + str(abs(e))


def canonical_json(obj):
    """RFC 8785 (JCS) bytes of obj: the only form dlsys accepts for manifests and envelopes."""
    def enc(v):
        if isinstance(v, dict):
            keys = sorted(v, key=lambda k: k.encode("utf-16-be"))
            return "{" + ",".join(json.dumps(k, ensure_ascii=False) + ":" + enc(v[k])
                                  for k in keys) + "}"
        if isinstance(v, (list, tuple)):
            return "[" + ",".join(enc(e) for e in v) + "]"
        if isinstance(v, str):
            return json.dumps(v, ensure_ascii=False)
        if v is None or isinstance(v, bool):
            return json.dumps(v)
        return ecma_number(v)
    return enc(obj).encode()


def write_tar(path, members, fmt=tarfile.PAX_FORMAT, canonical=True):
    """Writes [(TarInfo, bytes)] as an uncompressed tar, in order. canonical (default): in the
    form pack writes (docs/archive-format.md): every mtime the first member's, owner 0:0 with
    empty names, and no padding after the end-of-archive marker; each info's mode and type are
    kept, so a test can still write hostile entries."""
    mtime = members[0][0].mtime if members else 0
    with tarfile.open(path, "w", format=fmt) as t:
        for info, data in members:
            if canonical:
                info.mtime = mtime
                info.uid = info.gid = 0
                info.uname = info.gname = ""
            if info.isfile():
                info.size = len(data)
                t.addfile(info, io.BytesIO(data))
            else:
                t.addfile(info)
        end = t.offset + 1024
    if canonical:
        with open(path, "r+b") as f:
            f.truncate(end)


def file_info(name, size=0):
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = 0o644
    return info


class TempDirTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="dlsys-cli-")

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def path(self, name):
        return os.path.join(self.dir, name)


def start(*args, env=None):
    """Starts dlsys with stdout and stderr as byte pipes; returns the Popen."""
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    return subprocess.Popen([DLSYS, *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=full_env)


def wait_for_hook(proc, point, timeout=300):
    """Reads proc's stderr until core::TestHook's line for `point` (the process then stops
    itself with SIGSTOP). Returns (seen, stderr bytes read so far); seen is False if the
    process ended or the timeout passed first."""
    import select
    import time
    want = b"dlsys-test-hook: " + point.encode() + b"\n"
    fd = proc.stderr.fileno()
    got = b""
    deadline = time.monotonic() + timeout
    while want not in got:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            break
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        got += chunk
    return want in got, got


def wait_stopped(pid, timeout=60):
    """Waits until pid is stopped (state T): the hook writes its line just before it raises
    SIGSTOP, so a SIGCONT sent on the line alone could arrive first and be lost. True if it
    stopped in time."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open("/proc/%d/stat" % pid) as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            return False
        if state in ("T", "t"):
            return True
        time.sleep(0.001)  # polling the process state, bounded by the deadline
    return False


def signal_at_hook(test, args, point, sig, env=None, timeout=300):
    """Runs dlsys with DLSYS_TEST_HOOK=point, sends `sig` once it stops there, resumes it
    (SIGCONT) and returns (exit code, stdout, stderr). Fails the test if the hook never fires."""
    import signal
    proc = start(*args, env=dict(env or {}, DLSYS_TEST_HOOK=point))
    try:
        seen, err = wait_for_hook(proc, point, timeout)
        if not seen:
            proc.kill()
            out, rest = proc.communicate(timeout=60)
            test.fail(f"hook '{point}' never fired; exit {proc.returncode}; stderr: "
                      f"{(err + rest).decode(errors='replace')}")
        test.assertTrue(wait_stopped(proc.pid), f"dlsys did not stop at hook '{point}'")
        proc.send_signal(sig)
        proc.send_signal(signal.SIGCONT)
        out, rest = proc.communicate(timeout=timeout)
        return proc.returncode, out, err + rest
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def lnav_query(log, sql, workdir):
    """Rows of an SQL query run by Debian's lnav over `log`, through the shipped format file
    only (share/lnav/dlsys_log.json in a config dir under `workdir`, HOME there too). lnav exits
    0 even when the query fails, so any stderr output raises."""
    lnav = shutil.which("lnav")
    if lnav is None:
        raise RuntimeError("lnav is not installed: scripts/install-deps.sh installs it")
    cfg = os.path.join(workdir, "lnav-cfg")
    os.makedirs(os.path.join(cfg, "formats", "dlsys"), exist_ok=True)
    shutil.copy(os.path.join(SOURCE_DIR, "share", "lnav", "dlsys_log.json"),
                os.path.join(cfg, "formats", "dlsys", "dlsys_log.json"))
    home = os.path.join(workdir, "home")
    os.makedirs(home, exist_ok=True)
    env = dict(os.environ, HOME=home, XDG_CONFIG_HOME=os.path.join(home, ".config"))
    r = subprocess.run([lnav, "-N", "-I", cfg, "-n", "-c", ";" + sql, "-c", ":write-json-to -",
                        log], capture_output=True, text=True, env=env, timeout=120)
    if r.returncode != 0 or r.stderr:
        raise AssertionError("lnav failed (exit %d): %s" % (r.returncode, r.stderr))
    return json.loads(r.stdout)


class Serve:
    """A running `dlsys serve ARGS --port 0`: waits for its ready line on stdout (no sleeps),
    talks HTTP/1.1 keep-alive to it, and stops it by its own PID. stderr goes to a file so a
    chatty log can never block the server."""

    def __init__(self, *args, env=None, timeout=120, stderr_path=None):
        import select
        full_env = dict(os.environ)
        if env:
            full_env.update(env)
        self.stderr_path = stderr_path or tempfile.mktemp(prefix="dlsys-serve-", suffix=".err")
        self._stderr = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen([DLSYS, "serve", *map(str, args), "--port", "0"],
                                     stdout=subprocess.PIPE, stderr=self._stderr, env=full_env)
        self.port = None
        self.ready_line = ""
        got = b""
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while b"\n" not in got:
            left = deadline - time.monotonic()
            if left <= 0:
                self.kill()
                raise RuntimeError("dlsys serve was not ready within %ds: %s" % (timeout, self.stderr()))
            ready, _, _ = select.select([fd], [], [], left)
            if ready:
                chunk = os.read(fd, 4096)
                if not chunk:
                    code = self.proc.wait(timeout=60)
                    raise RuntimeError("dlsys serve exited with %d before it was ready: %s" %
                                       (code, self.stderr()))
                got += chunk
        self.ready_line = got.split(b"\n")[0].decode()
        import re
        m = re.match(r"dlsys serve: ready on (https?)://127\.0\.0\.1:(\d+) \(\d+ models?\)$",
                     self.ready_line)
        if not m:
            self.kill()
            raise RuntimeError("unexpected ready line: %r" % self.ready_line)
        self.scheme, self.port = m.group(1), int(m.group(2))
        self._conn = None

    def connection(self, timeout=120):
        import http.client
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def request(self, method, path, body=None, headers=None, timeout=120):
        """One request on this object's keep-alive connection: (status, headers dict, body)."""
        import http.client
        for attempt in range(2):
            if self._conn is None:
                self._conn = self.connection(timeout)
            try:
                self._conn.request(method, path, body=body, headers=headers or {})
                r = self._conn.getresponse()
                data = r.read()
                hdrs = {k.lower(): v for k, v in r.getheaders()}
                if hdrs.get("connection", "").lower() == "close":
                    self._conn.close()
                    self._conn = None
                return r.status, hdrs, data
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self._conn.close()
                self._conn = None
                if attempt == 1:
                    raise

    def infer(self, model, inputs, version=None, outputs=None, id=None, parameters=None, headers=None):
        """POSTs a JSON inference request; returns (status, decoded JSON body)."""
        body = {"inputs": inputs}
        if outputs is not None:
            body["outputs"] = outputs
        if id is not None:
            body["id"] = id
        if parameters is not None:
            body["parameters"] = parameters
        path = "/v2/models/%s%s/infer" % (model, "/versions/" + version if version else "")
        status, _, data = self.request("POST", path, json.dumps(body), headers)
        return status, json.loads(data) if data else None

    def metric(self, name, **labels):
        """The value of one series of /metrics (None if absent)."""
        status, _, data = self.request("GET", "/metrics")
        for line in data.decode().splitlines():
            if line.startswith("#") or not line.startswith(name):
                continue
            series, value = line.rsplit(" ", 1)
            if series.split("{")[0] != name:
                continue
            if all('%s="%s"' % (k, v) in series for k, v in labels.items()):
                return float(value)
        return None

    def stderr(self):
        if not self._stderr.closed:
            self._stderr.flush()
        with open(self.stderr_path, "rb") as f:
            return f.read().decode(errors="replace")

    def stop(self, sig=None, timeout=60):
        """Sends SIGTERM (or sig) and waits; returns the exit code (kills on timeout)."""
        import signal
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self.proc.poll() is None:
            self.proc.send_signal(sig or signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                raise
        self.proc.stdout.close()
        self._stderr.close()
        return self.proc.returncode

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=60)


class MonitorSnapshots:
    """A running `dlsys monitor ARGS` that prints JSON-lines snapshots (--follow --json): a
    thread reads them as they come; wait_for() returns the first that holds (each validated
    against the schema) within a deadline, never by sleeping. Killed at cleanup if running."""

    def __init__(self, test, args, env=None):
        import queue
        import threading
        self.test = test
        self.proc = subprocess.Popen([DLSYS, "monitor", *args], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, env=env)
        p = self.proc
        test.addCleanup(lambda: (p.poll() is None and p.kill(), p.wait(), p.stdout.close(),
                                 p.stderr.close()))
        self.lines = queue.Queue()

        def pump():
            for line in p.stdout:
                self.lines.put(line)
            self.lines.put(None)
        threading.Thread(target=pump, daemon=True).start()

    def _next(self, deadline):
        import queue
        try:
            line = self.lines.get(timeout=max(0.01, deadline - time.monotonic()))
        except queue.Empty:
            return None
        if line is None:
            return None
        try:
            snapshot = json.loads(line)
        except json.JSONDecodeError:
            self.test.fail("not a JSON-lines snapshot: %r; stderr: %s" % (line, self.proc.stderr.read()))
        validate(snapshot, "monitor-summary.schema.json")
        return snapshot

    def wait_for(self, pred, what, timeout=60):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            snapshot = self._next(deadline)
            if snapshot is None:
                break
            last = snapshot
            if pred(last):
                return last
        self.test.fail("never saw %s; last snapshot: %s; exit %s" % (what, last, self.proc.poll()))

    def stop(self, timeout=60):
        """SIGTERM; asserts exit 0 and returns the snapshots printed since the last wait_for."""
        import signal
        self.proc.send_signal(signal.SIGTERM)
        self.test.assertEqual(self.proc.wait(timeout=timeout), EXIT_OK, self.proc.stderr.read())
        rest, deadline = [], time.monotonic() + timeout
        while True:
            snapshot = self._next(deadline)
            if snapshot is None:
                return rest
            rest.append(snapshot)
