"""The command line as an attack surface: strings from archives, specs, profiles and file names
cannot drive the terminal; --json prints one JSON document on every path; outputs are not
overwritten by accident; bad flag and environment values are usage errors; signals leave
nothing behind.

Archives here are hand-made (unsigned, with a fake model file), so most tests need no runtime:
inspect and verify without --smoke never load the model."""
import hashlib
import io
import json
import os
import re
import signal
import subprocess
import sys
import tarfile
import unittest
import xml.etree.ElementTree as ET

sys.path.insert(0, os.path.dirname(__file__))
from clitest import (canonical_json, DLSYS, EXIT_INVALID, EXIT_NOT_FOUND, EXIT_OK, EXIT_USAGE,
                     EXIT_VERIFY_FAILED, TempDirTest, make_model, signal_at_hook, validate)

MTIME = 1700000000
CREATED = "2023-11-14T22:13:20Z"

# Erase the line, move up one line; the 8-bit CSI; a right-to-left override; CR, TAB, BEL.
HOSTILE = "PASS\x1b[2K\x1b[1A\u009b1A\u202eevil\u2066\r\t\x07"
# What must never reach a terminal: C0 controls except the line feed between lines, DEL, C1,
# and the bidi controls.
UNSAFE = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def tar_entry(name, data, mtime=MTIME):
    """One ustar entry (header + zero-padded data) as dlsys writes it; name may be raw bytes."""
    if isinstance(name, str):
        name = name.encode()
    buf = io.BytesIO()
    t = tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT, encoding="latin-1")
    info = tarfile.TarInfo(name.decode("latin-1"))
    info.size, info.mode, info.mtime = len(data), 0o644, mtime
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    t.addfile(info, io.BytesIO(data))
    end = t.offset
    out = buf.getvalue()[:end]
    t.close()
    return out


def merge(doc, fields):
    for k, v in fields.items():
        if isinstance(v, dict) and isinstance(doc.get(k), dict) and v:
            merge(doc[k], v)
        else:
            doc[k] = v
    return doc


def manifest(payload, **fields):
    """Manifest bytes for payload {path: bytes}, with fields merged over a minimal valid one."""
    doc = {
        "format_version": 1, "name": "hostile", "version": "1.0.0", "created": CREATED,
        "description": "", "owner": "", "license": "",
        "lineage": {}, "hyperparameters": {}, "training": {}, "metrics": {},
        "dependencies": {}, "requirements": {},
        "framework": {"name": "pytorch", "format": "torchscript"},
        "entry_point": {"file": "model.pt", "method": "forward"},
        "inputs": [{"name": "x", "dtype": "float32", "shape": [-1, 4]}],
        "outputs": [{"name": "y", "dtype": "float32", "shape": [-1, 2]}],
        "model": {
            "methods": [{"name": "forward", "schema": "forward(Tensor x) -> Tensor",
                         "args": ["x"]}],
            "parameters": {"count": 2, "elements": 10, "bytes_by_dtype": {"float32": 40}},
            "buffers": {"count": 0, "elements": 0, "bytes_by_dtype": {}},
            "operators": ["aten::linear"], "file_format_version": 8,
            "runtime_version": "1.13.1", "devices": ["cpu"]},
        "examples": [],
        "files": [{"path": p, "size": len(d), "mode": 420, "sha256": hashlib.sha256(d).hexdigest()}
                  for p, d in sorted(payload.items())],
        "tool": {"name": "dlsys", "version": "0.1.0"},
    }
    merge(doc, fields)
    return canonical_json(doc)


def write_archive(path, manifest_bytes, payload, extra=()):
    """An unsigned archive: manifest, payload sorted by path, then extra raw (name, data)."""
    entries = [tar_entry("manifest.json", manifest_bytes)]
    entries += [tar_entry(p, d) for p, d in sorted(payload.items())]
    entries += [tar_entry(n, d) for n, d in extra]
    with open(path, "wb") as f:
        f.write(b"".join(entries) + bytes(1024))
    return path


PAYLOAD = {"model.pt": b"not really a model, never loaded by inspect or verify", "files/a.txt": b"a\n"}


def write_text(path, text):
    with open(path, "w") as f:
        f.write(text)


def read_text(path):
    with open(path) as f:
        return f.read()


def read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


def run_bytes(*args, env=None, timeout=300):
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    argv = [a if isinstance(a, bytes) else str(a) for a in args]
    return subprocess.run([DLSYS, *argv], capture_output=True, env=full_env, timeout=timeout)


class HardeningTest(TempDirTest):
    def assert_terminal_safe(self, data, what=""):
        """data (bytes) is well-formed UTF-8 with no control, C1 or bidi characters."""
        text = data.decode("utf-8")  # raises on malformed UTF-8
        m = UNSAFE.search(text)
        self.assertIsNone(m, f"{what}: raw {text[m.start()]!r} in "
                             f"{text[max(0, m.start() - 60):m.start() + 60]!r}" if m else "")
        return text

    def assert_json_error(self, r, exit_code, code, schema="error.schema.json"):
        """r (bytes) failed with exit_code, printed an error object on stdout and a message on
        stderr."""
        self.assertEqual(r.returncode, exit_code, (r.stdout, r.stderr))
        self.assertTrue(r.stdout.isascii(), r.stdout)
        doc = json.loads(r.stdout)
        validate(doc, schema)
        validate(doc, "error.schema.json")
        self.assertIs(doc["ok"], False)
        self.assertEqual(doc["exit_code"], exit_code)
        self.assertEqual(doc["error"]["code"], code)
        self.assertTrue(doc["error"]["message"])
        self.assertIn(b"dlsys: ", r.stderr)
        return doc

    def hostile_archive(self, name="h.dlsys", **fields):
        return write_archive(self.path(name), manifest(PAYLOAD, **fields), PAYLOAD)


class Escaping(HardeningTest):
    def test_inspect_escapes_every_manifest_string(self):
        h = HOSTILE
        archive = self.hostile_archive(
            description=h, owner=h, license=h,
            lineage={h: h, "git_commit": h}, hyperparameters={"lr": h, h: {h: [h, 1]}},
            training={h: 1}, metrics={h: h}, dependencies={h: h},
            requirements={"device": "cpu", "cpu_features": [h.lower()]},
            inputs=[{"name": h, "dtype": "float32", "shape": [-1, 4]}],
            outputs=[{"name": h, "dtype": "float32", "shape": [-1, 2]}],
            entry_point={"method": "forward"},
            model={"methods": [{"name": "forward", "schema": h, "args": [h]},
                               {"name": h, "schema": "", "args": []}],
                   "operators": [h, "aten::" + h], "runtime_version": h, "devices": [h]})
        r = run_bytes("inspect", archive)
        self.assertEqual(r.returncode, EXIT_OK, r.stderr)
        text = self.assert_terminal_safe(r.stdout, "inspect")
        self.assert_terminal_safe(r.stderr, "inspect stderr")
        # Visible, not dropped: the reader sees that something odd is there.
        self.assertIn("PASS\\x1b[2K\\x1b[1A\\u{9b}1A\\u{202e}evil\\u{2066}\\r\\t\\x07", text)
        for row in ["description", "owner", "license", "lineage", "hyperparameters", "training",
                    "metrics", "dependencies", "requirements", "methods", "operators"]:
            self.assertIn(row, text)
        self.assertNotIn("\\x1b", text.split("\n")[0])  # the header: name and version are safe
        # --json carries the exact strings, as ASCII.
        r = run_bytes("inspect", archive, "--json")
        self.assertEqual(r.returncode, EXIT_OK, r.stderr)
        self.assertTrue(r.stdout.isascii())
        doc = json.loads(r.stdout)
        validate(doc, "inspect.schema.json")
        self.assertEqual(doc["manifest"]["description"], h)
        self.assertEqual(doc["manifest"]["hyperparameters"][h][h], [h, 1])

    def test_inspect_text_is_bounded_by_the_manifest(self):
        # 60 levels of 1000-character keys over 2000 leaves: printing every leaf's full key
        # would take 2000 x 60 KB. Plus 1000 hyperparameters and a 10,000-character description.
        deep = {"leaf%04d" % i: i for i in range(2000)}
        for level in range(60):
            deep = {("k%02d" % level) * 250: deep}
        archive = self.hostile_archive(
            description="d" * 10000, lineage=deep,
            hyperparameters={"p%04d" % i: "v" * 500 for i in range(1000)},
            inputs=[{"name": "n" * 250, "dtype": "float32", "shape": [-1, 4]}])
        r = run_bytes("inspect", archive)
        self.assertEqual(r.returncode, EXIT_OK, r.stderr)
        text = self.assert_terminal_safe(r.stdout)
        self.assertLess(len(text), 64 << 10)
        self.assertLessEqual(max(len(line) for line in text.split("\n")), 300)
        self.assertIn("d" * 119 + "…", text)
        self.assertNotIn("d" * 120, text)
        self.assertIn("… 1950 more (--json lists all)", text)
        self.assertIn(".leaf0049  49", text)  # long keys keep both ends
        self.assertNotIn("leaf0050", text)
        self.assertIn("… 950 more (--json lists all)", text)
        self.assertIn("p0049", text)
        self.assertNotIn("p0050", text)
        self.assertIn("n" * 119 + "…", text)
        doc = json.loads(run_bytes("inspect", archive, "--json").stdout)
        self.assertEqual(len(doc["manifest"]["hyperparameters"]), 1000)

    def test_verify_escapes_check_messages_and_junit_stays_well_formed(self):
        # A requirement the manifest check rejects, quoting its hostile name (with U+FFFE,
        # which XML forbids); the archive's own file name holds ESC and a byte that is not UTF-8.
        name = os.path.join(os.fsencode(self.dir), b"h\xff\x1b[2K\xc2\x9b.dlsys")
        write_archive(name, manifest(PAYLOAD, requirements={"x" + HOSTILE + "\ufffe": 1}), PAYLOAD)
        for args in [[], ["--json"]]:
            r = run_bytes("verify", name, "--allow-unsigned", "--junit", self.path("v.xml"),
                          "--force", *args)
            self.assertIn(r.returncode, (EXIT_INVALID, EXIT_VERIFY_FAILED), r)
            if args:
                self.assertTrue(r.stdout.isascii())
                doc = json.loads(r.stdout)
                validate(doc, "verify-report.schema.json")
                self.assertFalse(doc["ok"])
                self.assertTrue(any("evil" in c["message"] for c in doc["checks"]), doc)
            else:
                text = self.assert_terminal_safe(r.stdout, "verify")
                self.assertIn("h\\xff\\x1b[2K\\u{9b}.dlsys", text)  # the archive's name
                self.assertIn("PASS\\x1b[2K\\x1b[1A\\u{9b}1A\\u{202e}evil", text)
                self.assertIn("FAIL", text)
            self.assert_terminal_safe(r.stderr, "verify stderr")
            xml = read_bytes(self.path("v.xml"))
            root = ET.fromstring(xml)  # well-formed
            self.assertGreaterEqual(int(root.get("failures")), 1)
            self.assert_terminal_safe(xml, "junit")
            self.assertNotIn("\ufffe", xml.decode())

    def test_verify_target_profile_strings_are_escaped(self):
        archive = self.hostile_archive(requirements={"device": "cuda", "min_gpu_memory": "1 GiB"})
        profile = {"name": HOSTILE, "os": "linux", "arch": "x86_64",
                   "cpu": {"model": HOSTILE, "cores": 4, "features": ["avx2"]},
                   "memory": {"total": "8 GiB"},
                   "gpus": [{"name": HOSTILE, "memory": "16 GiB", "compute_capability": "8.0"}]}
        write_text(self.path("t.json"), json.dumps(profile))
        r = run_bytes("verify", archive, "--allow-unsigned", "--target", self.path("t.json"))
        self.assertIn(r.returncode, (EXIT_OK, EXIT_VERIFY_FAILED), r)
        text = self.assert_terminal_safe(r.stdout, "verify --target")
        self.assert_terminal_safe(r.stderr, "verify --target stderr")
        self.assertIn("\\x1b[2K", text)  # the GPU's name, in the device row
        # A profile whose unknown key is hostile: the error message quotes it, escaped.
        write_text(self.path("bad.json"), json.dumps({HOSTILE: 1}))
        r = run_bytes("verify", archive, "--allow-unsigned", "--target", self.path("bad.json"))
        self.assertEqual(r.returncode, EXIT_INVALID, r)
        self.assert_terminal_safe(r.stderr, "profile error")
        # The same profile as YAML with escapes in double quotes.
        with open(self.path("t.yaml"), "w") as f:
            f.write('name: "\\e[2K\\e[1Aedge"\ncpu: {model: "\\x1b[2K\\u202e"}\n'
                    'gpus: [{name: "\\e[2K\\e[1APASS", memory: 16 GiB, compute_capability: "8.0"}]\n')
        r = run_bytes("verify", archive, "--allow-unsigned", "--target", self.path("t.yaml"))
        self.assertIn(r.returncode, (EXIT_OK, EXIT_VERIFY_FAILED), r)
        self.assert_terminal_safe(r.stdout + r.stderr, "yaml profile")

    def test_error_messages_escape_file_names_and_manifest_bytes(self):
        name = self.path("evil\x1b[2K\x1b[1A\u202e.dlsys")
        for cmd in [["inspect", name], ["verify", name], ["verify", self.path("x"), "--trust", name],
                    ["pack", name, "--name", "a", "--version", "1.0.0", "-o", self.path("o")]]:
            r = run_bytes(*cmd)
            self.assertNotEqual(r.returncode, EXIT_OK, cmd)
            self.assertIn(b"\\x1b[2K", r.stderr, cmd)
            self.assert_terminal_safe(r.stdout + r.stderr, cmd[0])
        # A manifest with raw control bytes inside a JSON string is not JSON; the parser's
        # message quotes the bytes.
        raw = b'{"description":"\x1b[2K\x1b[1A\xff","name":"a"}'
        write_archive(self.path("raw.dlsys"), raw, PAYLOAD)
        for cmd in ["inspect", "verify"]:
            r = run_bytes(cmd, self.path("raw.dlsys"))
            self.assertIn(r.returncode, (EXIT_INVALID, EXIT_VERIFY_FAILED), r)
            self.assert_terminal_safe(r.stdout + r.stderr, cmd)

    def test_usage_errors_escape_the_arguments(self):
        r = run_bytes("verify", "--bogus\x1b[2K\u202e", self.path("a.dlsys"))
        self.assertEqual(r.returncode, EXIT_USAGE)
        self.assert_terminal_safe(r.stderr)
        r = run_bytes("verify", self.path("a.dlsys"), "--threads", "\x1b[2K")
        self.assertEqual(r.returncode, EXIT_USAGE)
        self.assert_terminal_safe(r.stderr)

    def test_success_lines_escape_paths(self):
        out = self.path("k\x1b[2K\u202e.key")
        r = run_bytes("keygen", "--out", out)
        self.assertEqual(r.returncode, EXIT_OK, r.stderr)
        self.assertIn(b"\\x1b[2K", r.stdout)
        self.assert_terminal_safe(r.stdout + r.stderr)
        r = run_bytes("probe", "--no-runtime", "-o", self.path("p\x1b[2K.yaml"))
        self.assertEqual(r.returncode, EXIT_OK, r.stderr)
        self.assert_terminal_safe(r.stdout + r.stderr)


class JsonOnFailure(HardeningTest):
    """--json: stdout is one JSON document on every path."""

    def test_inspect(self):
        r = run_bytes("inspect", self.path("nope.dlsys"), "--json")
        self.assert_json_error(r, EXIT_NOT_FOUND, "not_found", "inspect.schema.json")
        with open(self.path("junk.dlsys"), "wb") as f:
            f.write(b"\xff" * 4096)
        r = run_bytes("inspect", self.path("junk.dlsys"), "--json")
        self.assert_json_error(r, EXIT_INVALID, "invalid", "inspect.schema.json")
        r = run_bytes("inspect", "--json")
        self.assert_json_error(r, EXIT_USAGE, "usage", "inspect.schema.json")

    def test_verify(self):
        missing = self.path("nope.dlsys")
        r = run_bytes("verify", missing, "--json")
        doc = self.assert_json_error(r, EXIT_NOT_FOUND, "not_found", "verify-report.schema.json")
        self.assertEqual(doc["archive"], missing)
        self.assertEqual(doc["checks"], [])
        archive = self.hostile_archive()
        r = run_bytes("verify", archive, "--json", "--trust", self.path("nope.pub"))
        self.assert_json_error(r, EXIT_NOT_FOUND, "not_found", "verify-report.schema.json")
        write_text(self.path("bad.yaml"), "memory: [unclosed\n")
        r = run_bytes("verify", archive, "--json", "--target", self.path("bad.yaml"))
        self.assert_json_error(r, EXIT_INVALID, "invalid", "verify-report.schema.json")
        r = run_bytes("verify", archive, "--json", "--target", self.path("nope.yaml"))
        self.assert_json_error(r, EXIT_NOT_FOUND, "not_found", "verify-report.schema.json")
        for bad_flags in [["--bogus"], ["--threads", "9999"], ["--target", ""]]:
            r = run_bytes("verify", archive, "--json", *bad_flags)
            self.assert_json_error(r, EXIT_USAGE, "usage", "verify-report.schema.json")
        r = run_bytes("verify", archive, "--json", env={"DLSYS_THREADS": "0"})
        self.assert_json_error(r, EXIT_USAGE, "usage", "verify-report.schema.json")
        # And the report itself on success, for comparison.
        r = run_bytes("verify", archive, "--json", "--allow-unsigned")
        self.assertEqual(r.returncode, EXIT_OK, r)
        validate(json.loads(r.stdout), "verify-report.schema.json")

    def test_pack(self):
        r = run_bytes("pack", self.path("nope.pt"), "--spec", self.path("nope.yaml"), "--name",
                      "a", "--version", "1.0.0", "-o", self.path("a.dlsys"), "--json")
        self.assert_json_error(r, EXIT_NOT_FOUND, "not_found", "pack.schema.json")
        r = run_bytes("pack", "--json", "--bogus")
        self.assert_json_error(r, EXIT_USAGE, "usage", "pack.schema.json")
        r = run_bytes("pack", self.path("nope.pt"), "--name", "a", "--version", "1.0.0", "-o",
                      self.path("a.dlsys"), "--json", env={"SOURCE_DATE_EPOCH": "12abc"})
        doc = self.assert_json_error(r, EXIT_USAGE, "usage", "pack.schema.json")
        self.assertIn("SOURCE_DATE_EPOCH", doc["error"]["message"])
        self.assertFalse(os.path.exists(self.path("a.dlsys")))

    def test_keygen(self):
        self.assertEqual(run_bytes("keygen", "--out", self.path("k.key")).returncode, EXIT_OK)
        r = run_bytes("keygen", "--out", self.path("k.key"), "--json")
        self.assert_json_error(r, EXIT_USAGE, "exists", "keygen.schema.json")
        r = run_bytes("keygen", "--json")
        self.assert_json_error(r, EXIT_USAGE, "usage", "keygen.schema.json")
        r = run_bytes("keygen", "--out", self.path("no/such/dir/k.key"), "--json")
        self.assertNotEqual(r.returncode, EXIT_OK)
        self.assert_json_error(r, r.returncode, json.loads(r.stdout)["error"]["code"],
                               "keygen.schema.json")
        r = run_bytes("keygen", "--out", self.path("k2.key"), "--json")
        self.assertEqual(r.returncode, EXIT_OK)
        validate(json.loads(r.stdout), "keygen.schema.json")

    def test_probe(self):
        write_text(self.path("p.yaml"), "x")
        r = run_bytes("probe", "--no-runtime", "-o", self.path("p.yaml"), "--json")
        self.assert_json_error(r, EXIT_USAGE, "exists")
        self.assertEqual(read_text(self.path("p.yaml")), "x")
        r = run_bytes("probe", "--json", "--bogus")
        self.assert_json_error(r, EXIT_USAGE, "usage")
        r = run_bytes("probe", "--no-runtime", "--json")
        self.assertEqual(r.returncode, EXIT_OK, r.stderr)
        self.assertTrue(r.stdout.isascii())
        validate(json.loads(r.stdout), "target.schema.json")

    def test_pack_success_matches_its_schema(self):
        model = make_model("mlp", self.path("model.pt"))
        r = run_bytes("pack", model, "--name", "m", "--version", "1.0.0", "--description",
                      HOSTILE, "-o", self.path("m.dlsys"), "--json")
        self.assertEqual(r.returncode, EXIT_OK, r.stderr)
        self.assertTrue(r.stdout.isascii())
        doc = json.loads(r.stdout)
        validate(doc, "pack.schema.json")
        self.assertEqual((doc["name"], doc["signed"]), ("m", False))
        r = run_bytes("pack", model, "--name", "m", "--version", "1.0.0", "-o",
                      self.path("m.dlsys"), "--json")
        self.assert_json_error(r, EXIT_USAGE, "exists", "pack.schema.json")

    def test_json_after_double_dash_is_not_a_request_for_json(self):
        r = run_bytes("inspect", "--", "--json")
        self.assertEqual(r.returncode, EXIT_NOT_FOUND)
        self.assertEqual(r.stdout, b"")


class Outputs(HardeningTest):
    def test_junit_is_not_overwritten_without_force(self):
        archive = self.hostile_archive()
        xml = self.path("v.xml")
        write_text(xml, "precious")
        r = run_bytes("verify", archive, "--allow-unsigned", "--junit", xml)
        self.assertEqual(r.returncode, EXIT_USAGE)
        self.assertIn(b"--force", r.stderr)
        self.assertEqual(read_text(xml), "precious")
        # Refused before any work: a missing archive does not get that far.
        r = run_bytes("verify", self.path("nope.dlsys"), "--junit", xml, "--json")
        doc = self.assert_json_error(r, EXIT_USAGE, "exists", "verify-report.schema.json")
        self.assertIn("--force", doc["error"]["message"])
        self.assertEqual(read_text(xml), "precious")
        r = run_bytes("verify", archive, "--allow-unsigned", "--junit", xml, "--force")
        self.assertEqual(r.returncode, EXIT_OK, r)
        self.assertEqual(ET.parse(xml).getroot().get("failures"), "0")
        # A fresh file needs no --force.
        r = run_bytes("verify", archive, "--allow-unsigned", "--junit", self.path("new.xml"))
        self.assertEqual(r.returncode, EXIT_OK, r)
        self.assertTrue(os.path.exists(self.path("new.xml")))


class UsageErrors(HardeningTest):
    def assert_usage(self, r, *phrases):
        self.assertEqual(r.returncode, EXIT_USAGE, r)
        for p in phrases:
            self.assertIn(p.encode(), r.stderr)

    def test_empty_target_is_refused_not_skipped(self):
        archive = self.hostile_archive(requirements={"device": "cuda"})
        r = run_bytes("verify", archive, "--allow-unsigned", "--target", "")
        self.assert_usage(r, "--target", "'local'")
        r = run_bytes("verify", archive, "--allow-unsigned", "--target=")
        self.assert_usage(r, "--target")

    def test_empty_values_for_other_flags_are_refused(self):
        for args in [["verify", "a.dlsys", "--junit", ""], ["verify", "a.dlsys", "--trust", ""],
                     ["pack", "m.pt", "--name", "a", "--version", "1.0.0", "-o", ""],
                     ["pack", "m.pt", "--name", "a", "--version", "1.0.0", "-o", "x", "--key", ""],
                     ["pack", "m.pt", "--name", "", "--version", "1.0.0", "-o", "x"],
                     ["keygen", "--out", ""], ["probe", "-o", ""]]:
            r = run_bytes(*args)
            self.assert_usage(r, "empty value")

    def test_threads_range(self):
        missing = self.path("nope.dlsys")
        for bad in ["9999", "257", "-1", "abc", "1.5", "99999999999999999999"]:
            r = run_bytes("verify", missing, "--threads", bad)
            self.assert_usage(r, "--threads", "0 to 256")
        for good in ["0", "1", "256"]:
            self.assertEqual(run_bytes("verify", missing, "--threads", good).returncode,
                             EXIT_NOT_FOUND, good)

    def test_dlsys_threads_environment(self):
        missing = self.path("nope.dlsys")
        for bad in ["0", "9999", "12abc", "-4", " 4"]:
            r = run_bytes("verify", missing, env={"DLSYS_THREADS": bad})
            self.assert_usage(r, "DLSYS_THREADS", "1 to 256")
        for good in ["1", "256", ""]:
            r = run_bytes("verify", missing, env={"DLSYS_THREADS": good})
            self.assertEqual(r.returncode, EXIT_NOT_FOUND, (good, r.stderr))

    def test_source_date_epoch(self):
        def pack(value):
            return run_bytes("pack", self.path("nope.pt"), "--name", "a", "--version", "1.0.0",
                             "-o", self.path("a.dlsys"), env={"SOURCE_DATE_EPOCH": value})
        for bad in ["99999999999", "8589934592", "12abc", "-1", " 1", "1e9", "0x10",
                    "99999999999999999999999999"]:
            r = pack(bad)
            self.assert_usage(r, "SOURCE_DATE_EPOCH", "8589934591")
        for good in ["0", "1700000000", "8589934591", ""]:
            r = pack(good)
            self.assertNotEqual(r.returncode, EXIT_USAGE, (good, r.stderr))
        self.assertFalse(os.path.exists(self.path("a.dlsys")))

    def test_smoke_timeout_range(self):
        missing = self.path("nope.dlsys")
        for bad in ["0", "86401", "-5", "ten"]:
            r = run_bytes("verify", missing, "--smoke", "--smoke-timeout", bad)
            self.assert_usage(r, "--smoke-timeout", "1 to 86400")
        for good in ["1", "86400"]:
            r = run_bytes("verify", missing, "--smoke", "--smoke-timeout", good)
            self.assertEqual(r.returncode, EXIT_NOT_FOUND, (good, r.stderr))
        self.assertIn(b"--smoke-timeout", run_bytes("verify", "--help").stdout)


class Signals(HardeningTest):
    def test_sigterm_and_sighup_during_pack_exit_128_plus_signal_and_leave_nothing(self):
        model = make_model("mlp", self.path("model.pt"))
        before = sorted(os.listdir(self.dir))
        for sig, code in [(signal.SIGTERM, 143), (signal.SIGHUP, 129), (signal.SIGINT, 130)]:
            got, _, err = signal_at_hook(
                self, ["pack", model, "--name", "m", "--version", "1.0.0", "-o",
                       self.path("m.dlsys")], "pack-before-commit", sig)
            self.assertEqual(got, code, (sig, err))
            self.assertEqual(sorted(os.listdir(self.dir)), before, sig)

    def test_sigterm_before_the_smoke_test_leaves_no_junit(self):
        archive = self.hostile_archive()
        before = sorted(os.listdir(self.dir))
        code, out, err = signal_at_hook(
            self, ["verify", archive, "--allow-unsigned", "--smoke", "--junit",
                   self.path("v.xml"), "--json"], "verify-before-smoke", signal.SIGTERM)
        self.assertEqual(code, 143, err)
        self.assertEqual(sorted(os.listdir(self.dir)), before)

    def test_closed_stdout_exits_141(self):
        read_end, write_end = os.pipe()
        os.close(read_end)
        try:
            p = subprocess.run([DLSYS, "probe", "--no-runtime", "--json"], stdout=write_end,
                               stderr=subprocess.PIPE, timeout=120)
        finally:
            os.close(write_end)
        self.assertEqual(p.returncode, 141, p.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
