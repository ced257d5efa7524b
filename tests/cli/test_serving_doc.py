"""docs/serving.md is executable: every example runs verbatim against a real `dlsys serve`.

The rule (stated in the doc's "Start" section):

- A fenced ```sh block holding a line that starts with `dlsys serve ` is a *start block*. Its
  other lines are run first with bash in the work directory (comments, blank lines and `URL=...`
  are skipped; each must exit 0); then the server of the previous start block is stopped (it
  must exit 0: the graceful stop is exercised every time) and `dlsys serve ARGS --port 0` is
  started with the block's ARGS (clitest.Serve, which waits for the ready line). URL is set to
  http(s)://127.0.0.1:PORT.
- A fenced ```console block holds commands, lines starting with `$ ` (a trailing `\\` continues
  a command on the next line), each followed by its expected output. Each command runs with
  `bash -c` in the work directory, with URL set and the dlsys binary's directory first on PATH,
  and must exit 0. Its stdout, with CR LF turned into LF and trailing blank lines removed, is
  compared with the expected lines:
    - exactly, by default;
    - a command ending in `# approx`: every number within a relative tolerance of 1e-5 (absolute
      1e-6), everything between the numbers exactly (runs of spaces count as one);
    - a command ending in `# varies`: the shape only: if the expected output is JSON, the actual
      output is JSON with the same keys and list lengths (recursively), else it has as many lines.
- Other blocks (```text, ```json, ```yaml, ```python, ```sh without `dlsys serve`) are not run.

The work directory is built like the quickstart: scripts/make_example_model.py, keygen, pack.

Also checked: the doc's configuration table lists exactly the keys (and defaults) of
schemas/serve-config.schema.json, and its metrics table exactly the families (and types) a live
/metrics scrape has.

SERVING_DOC=path overrides the document (to see the test fail on a broken copy).
"""
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import clitest  # noqa: E402
from clitest import EXIT_OK, Serve, run  # noqa: E402

DOC = os.environ.get("SERVING_DOC", os.path.join(clitest.SOURCE_DIR, "docs", "serving.md"))
SCHEMA = os.path.join(clitest.SCHEMAS, "serve-config.schema.json")
NUMBER = re.compile(r"-?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


def blocks(text):
    """[(info, [lines], first line number)] of the fenced blocks of a Markdown text."""
    out, lines, i = [], text.split("\n"), 0
    while i < len(lines):
        m = re.match(r"^```(\S*)\s*$", lines[i])
        if not m:
            i += 1
            continue
        start, body = i + 1, []
        i += 1
        while i < len(lines) and not lines[i].startswith("```"):
            body.append(lines[i])
            i += 1
        out.append((m.group(1), body, start + 1))
        i += 1
    return out


def serve_args(block):
    """The `dlsys serve` arguments of a start block, or None."""
    for line in block:
        if line.startswith("dlsys serve "):
            return shlex.split(line)[2:]
    return None


def console_commands(block, lineno):
    """[(command, expected lines, mode, doc line)] of a console block."""
    cmds, i = [], 0
    while i < len(block):
        line = block[i]
        if not line.startswith("$ "):
            raise AssertionError("serving.md:%d: output before any command: %r" % (lineno + i, line))
        at = lineno + i
        cmd = line[2:]
        while cmd.endswith("\\") and i + 1 < len(block):
            i += 1
            cmd = cmd[:-1] + "\n" + block[i]
        i += 1
        expected = []
        while i < len(block) and not block[i].startswith("$ "):
            expected.append(block[i])
            i += 1
        mode = "exact"
        m = re.search(r"\s#\s*(approx|varies)\s*$", cmd)
        if m:
            mode = m.group(1)
        cmds.append((cmd, expected, mode, at))
    return cmds


def normalize(output):
    return output.replace("\r\n", "\n").rstrip("\n")


def approx_equal(want, got, rtol=1e-5, atol=1e-6):
    def split(s):
        nums = [float(n) for n in NUMBER.findall(s)]
        rest = [re.sub(r"[ \t]+", " ", part) for part in NUMBER.split(s)]
        return nums, rest
    wn, wr = split(want)
    gn, gr = split(got)
    if wr != gr or len(wn) != len(gn):
        return False
    return all(abs(a - b) <= atol + rtol * abs(a) for a, b in zip(wn, gn))


def same_shape(a, b):
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(
            same_shape(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(
            same_shape(x, y) for x, y in zip(a, b))
    return not isinstance(b, (dict, list))


def varies_equal(want, got):
    try:
        w = json.loads(want)
    except ValueError:
        return len(want.split("\n")) == len(got.split("\n"))
    try:
        return same_shape(w, json.loads(got))
    except ValueError:
        return False


def table(text, header):
    """Rows (lists of cells) of the Markdown table whose header row starts with `header`."""
    lines = text.split("\n")
    for i, line in enumerate(lines):
        if line.startswith(header):
            rows = []
            for row in lines[i + 2:]:
                if not row.startswith("|"):
                    break
                rows.append([c.strip() for c in row.strip().strip("|").split("|")])
            return rows
    raise AssertionError("no table starting %r in %s" % (header, DOC))


def code(cell):
    m = re.match(r"^`([^`]*)`", cell)
    return m.group(1) if m else None


class ServingDoc(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        with open(DOC) as f:
            cls.text = f.read()
        cls.dir = tempfile.mkdtemp(prefix="dlsys-serving-doc-")
        clitest.DLSYS = os.path.abspath(clitest.DLSYS)
        model = os.path.join(clitest.SOURCE_DIR, "scripts", "make_example_model.py")
        subprocess.run(["/usr/bin/python3", model, cls.dir], check=True, capture_output=True,
                       timeout=600)
        for args in (["keygen", "--out", "release.key"],
                     ["pack", "best_model_final_v7.pt", "--spec", "dlsys.yaml", "--key",
                      "release.key", "-o", "iris-mlp-1.0.0.dlsys"]):
            r = run(*args, cwd=cls.dir)
            if r.returncode != EXIT_OK:
                raise RuntimeError("dlsys %s: %s" % (" ".join(args), r.stderr))
        cls.env = dict(os.environ)
        cls.env["PATH"] = os.path.dirname(clitest.DLSYS) + os.pathsep + cls.env.get("PATH", "")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir, ignore_errors=True)

    def start(self, args, lineno):
        old = os.getcwd()
        os.chdir(self.dir)  # the doc's paths are relative to the archive's directory
        try:
            server = Serve(*args)
        finally:
            os.chdir(old)
        self.addCleanup(server.kill)
        return server

    def bash(self, cmd, env, where):
        r = subprocess.run(["bash", "-c", cmd], cwd=self.dir, env=env, capture_output=True,
                           timeout=300)
        self.assertEqual(r.returncode, 0, "%s: exit %d: %s\nstderr: %s" % (
            where, r.returncode, cmd, r.stderr.decode(errors="replace")))
        return r.stdout.decode(errors="replace")

    def test_examples_run_verbatim(self):
        server, env, ran, starts = None, None, 0, 0
        for info, body, lineno in blocks(self.text):
            args = serve_args(body) if info == "sh" else None
            if args is not None:
                for i, line in enumerate(body):
                    stripped = line.strip()
                    if (not stripped or stripped.startswith("#") or stripped.startswith("URL=")
                            or stripped.startswith("dlsys serve ")):
                        continue
                    self.bash(stripped, self.env, "serving.md:%d" % (lineno + i))
                if server is not None:
                    self.assertEqual(server.stop(), EXIT_OK, server.stderr())
                server = self.start(args, lineno)
                env = dict(self.env, URL="%s://127.0.0.1:%d" % (server.scheme, server.port))
                starts += 1
                continue
            if info != "console":
                continue
            self.assertIsNotNone(server, "serving.md:%d: console block before any start block"
                                 % lineno)
            for cmd, expected, mode, at in console_commands(body, lineno):
                where = "serving.md:%d" % at
                got = normalize(self.bash(cmd, env, where))
                want = normalize("\n".join(expected))
                with self.subTest(line=at, cmd=cmd[:80]):
                    if mode == "exact":
                        self.assertEqual(got, want, where)
                    elif mode == "approx":
                        self.assertTrue(approx_equal(want, got),
                                        "%s: numbers differ beyond 1e-5 or text differs:\n"
                                        "want %s\ngot  %s" % (where, want, got))
                    else:
                        self.assertTrue(varies_equal(want, got), "%s: shape differs:\nwant %s\n"
                                        "got  %s" % (where, want, got))
                ran += 1
        self.assertIsNotNone(server, "no start block (```sh with a `dlsys serve` line)")
        self.assertEqual(server.stop(), EXIT_OK, server.stderr())
        # The first start block is the documented convention.
        first = next(b for i, b, _ in blocks(self.text) if i == "sh" and serve_args(b))
        self.assertEqual(serve_args(first), ["iris-mlp-1.0.0.dlsys", "--trust", "release.key.pub"])
        self.assertGreaterEqual(starts, 3)
        self.assertGreaterEqual(ran, 30, "too few examples ran: is the doc's format still parsed?")

    def test_config_table_matches_the_schema(self):
        with open(SCHEMA) as f:
            props = json.load(f)["properties"]
        rows = table(self.text, "| key | flag |")
        keys = [code(r[0]) for r in rows]
        self.assertEqual(len(keys), len(set(keys)), "a key is listed twice")
        self.assertEqual(set(keys), set(props), "docs/serving.md configuration table vs schema")
        for r in rows:
            key, default = code(r[0]), code(r[3])
            self.assertIsNotNone(default, "%s: default cell must be `JSON`" % key)
            self.assertEqual(json.loads(default), props[key]["default"], "default of " + key)
        # Flags named in the table exist in `dlsys serve --help`.
        help_text = run("serve", "--help").stdout
        for r in rows:
            flag = code(r[1])
            if flag:
                self.assertIn(flag, help_text, "flag of " + code(r[0]))

    def test_metrics_table_matches_a_live_scrape(self):
        rows = table(self.text, "| metric | type |")
        documented = {code(r[0]): r[1] for r in rows}
        old = os.getcwd()
        os.chdir(self.dir)
        try:
            server = Serve("iris-mlp-1.0.0.dlsys", "--trust", "release.key.pub")
        finally:
            os.chdir(old)
        self.addCleanup(server.kill)
        status, headers, body = server.request("GET", "/metrics")
        self.assertEqual(status, 200)
        self.assertEqual(server.stop(), EXIT_OK)
        live = {}
        for line in body.decode().splitlines():
            m = re.match(r"^# TYPE (\S+) (\S+)$", line)
            if m:
                live[m.group(1)] = m.group(2)
        self.assertTrue(live)
        self.assertEqual(documented, live, "docs/serving.md metrics table vs a live /metrics")


if __name__ == "__main__":
    unittest.main()
