"""dlsys and OCI registries, against a real docker-registry (CNCF distribution) on loopback:
deploy push/pull/tags, remote inspect and verify, serve oci://, basic auth, a corrupted blob,
and interop with skopeo (inspect --raw shows the documented layout; copy keeps it pullable).

Every registry is started per test with its own storage directory and stopped by its PID
(components.OciRegistry); a missing docker-registry, skopeo or htpasswd is a failure naming
the Debian package."""
import base64
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import textwrap
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from clitest import (EXIT_OK, EXIT_UNAVAILABLE, EXIT_USAGE,  # noqa: E402
                     EXIT_VERIFY_FAILED, Serve, TempDirTest, canonical_json, make_model, run,
                     validate)
from components import OciRegistry, _require  # noqa: E402

SPEC = """\
    name: m
    version: {version}
    description: OCI test model
    lineage: {{git_commit: 4f2c9e1, source: "https://git.example.com/m"}}
    inputs:
      - {{name: x, dtype: float32, shape: [-1, 4]}}
    outputs:
      - {{name: y, dtype: float32, shape: [-1, 2]}}
    examples:
      - name: one
        inputs:
          x: {{data: [[1, 2, 3, 4]]}}
    """
CACHE = {}


def setUpModule():
    import tempfile
    d = tempfile.mkdtemp(prefix="dlsys-oci-")
    CACHE["dir"] = d
    for key in ("release", "other"):
        r = run("keygen", "--out", os.path.join(d, key))
        assert r.returncode == 0, r.stderr
    # 1.0.0 and 2.0.0 are different models, so they share no blob.
    for version, kind, extra in (("1.0.0", "mlp", []), ("2.0.0", "noise", ["--scale", "0.5"])):
        model = make_model(kind, os.path.join(d, f"{kind}.pt"), *extra)
        spec = os.path.join(d, f"spec-{version}.yaml")
        with open(spec, "w") as f:
            f.write(textwrap.dedent(SPEC).format(version=version))
        out = os.path.join(d, f"m-{version}.dlsys")
        r = run("pack", model, "--spec", spec, "-o", out, "--key", os.path.join(d, "release"),
                env={"SOURCE_DATE_EPOCH": "1700000000"})
        assert r.returncode == 0, r.stderr
        CACHE[version] = out
    CACHE["pub"] = os.path.join(d, "release.pub")
    CACHE["other_pub"] = os.path.join(d, "other.pub")


def tearDownModule():
    shutil.rmtree(CACHE["dir"], ignore_errors=True)


def sha256_file(path):
    with open(path, "rb") as f:
        return "sha256:" + hashlib.sha256(f.read()).hexdigest()


def documented_manifest(archive):
    """The OCI manifest docs/oci.md documents for an archive (bytes), built here from the
    archive's own entries (independently of dlsys's BuildManifest)."""
    with tarfile.open(archive) as t:
        manifest_json = t.extractfile("manifest.json").read()
        signature = t.extractfile("signature.json").read().decode()
    m = json.loads(manifest_json)
    title = f"{m['name']}-{m['version']}.dlsys"
    annotations = {
        "org.opencontainers.image.title": title,
        "org.opencontainers.image.version": m["version"],
        "org.opencontainers.image.created": m["created"],
        "org.opencontainers.image.source": m["lineage"]["source"],
        "org.opencontainers.image.revision": m["lineage"]["git_commit"],
        "dev.dlsys.signature": signature,
    }
    return canonical_json({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "artifactType": "application/vnd.dlsys.model.v1",
        "config": {"mediaType": "application/vnd.dlsys.model.config.v1+json",
                   "digest": "sha256:" + hashlib.sha256(manifest_json).hexdigest(),
                   "size": len(manifest_json)},
        "layers": [{"mediaType": "application/vnd.dlsys.model.archive.v1.tar",
                    "digest": sha256_file(archive), "size": os.path.getsize(archive),
                    "annotations": {"org.opencontainers.image.title": title}}],
        "annotations": annotations,
    })


class OciTest(TempDirTest):
    def setUp(self):
        super().setUp()
        # Credentials only from what a test writes: no ~/.docker or Podman file of this machine.
        self.home = self.path("home")
        os.makedirs(self.home)
        self.env = {"HOME": self.home, "XDG_RUNTIME_DIR": self.home,
                    "DOCKER_CONFIG": os.path.join(self.home, ".docker"),
                    "XDG_CACHE_HOME": self.path("cache")}
        os.environ.pop("REGISTRY_AUTH_FILE", None)
        self.reg = self.registry()

    def registry(self, **kw):
        reg = OciRegistry(self.dir, **kw)
        reg.start()
        self.addCleanup(reg.stop)
        return reg

    def dlsys(self, *args, expect=EXIT_OK, env=None, cwd=None):
        r = run(*args, env={**self.env, **(env or {})}, cwd=cwd)
        self.assertEqual(r.returncode, expect, f"dlsys {args}:\n{r.stdout}\n{r.stderr}")
        return r

    def push(self, version="1.0.0", ref=None, *extra, expect=EXIT_OK, env=None):
        return self.dlsys("deploy", "push", CACHE[version], ref or self.reg.ref("team/m"),
                          "--trust", CACHE["pub"], "--plain-http", *extra, expect=expect,
                          env=env)

    def push_json(self, version="1.0.0", ref=None):
        return json.loads(self.push(version, ref, "--json").stdout)

    def pull(self, ref, out, *extra, expect=EXIT_OK, env=None):
        return self.dlsys("deploy", "pull", ref, "-o", out, "--trust", CACHE["pub"],
                          "--plain-http", *extra, expect=expect, env=env)

    def assert_identical(self, a, b):
        with open(a, "rb") as fa, open(b, "rb") as fb:
            self.assertTrue(fa.read() == fb.read(), f"{a} and {b} differ")

    # --- push, pull, tags ------------------------------------------------------------------
    def test_push_then_pull_is_bit_identical(self):
        r = self.push()
        self.assertRegex(r.stdout, r"^pushed m 1\.0\.0 to oci://127\.0\.0\.1:\d+/team/m:1\.0\.0 "
                                   r"sha256:[0-9a-f]{64}\n$")
        out = self.path("pulled.dlsys")
        r = self.pull(self.reg.ref("team/m", "1.0.0"), out)
        self.assertIn("pulled m 1.0.0 from", r.stdout)
        self.assertIn("signed by", r.stdout)
        self.assert_identical(CACHE["1.0.0"], out)

    def test_repush_is_idempotent_and_uploads_nothing(self):
        first = self.push_json()
        self.assertEqual(first["blobs_uploaded"], 2)
        self.assertEqual(first["uploaded_bytes"],
                         os.path.getsize(CACHE["1.0.0"]) + len(self.config_bytes("1.0.0")))
        self.assertEqual(first["tag"], "1.0.0")
        second = self.push_json()
        self.assertEqual(second["manifest_digest"], first["manifest_digest"])
        self.assertEqual(second["blobs_skipped"], 2)
        self.assertEqual(second["blobs_uploaded"], 0)
        self.assertEqual(second["uploaded_bytes"], 0)
        # The registry saw HEADs, and no upload, for the second push.
        self.assertEqual(self.reg_uploads(), 2)

    def test_https_with_the_registry_ca_and_a_clear_error_without_it(self):
        reg = self.registry(name="tls", tls=True)
        ref = reg.ref("team/m", "1.0.0")
        self.dlsys("deploy", "push", CACHE["1.0.0"], ref, "--trust", CACHE["pub"], "--ca-file",
                   reg.ca_file)
        out = self.path("tls.dlsys")
        self.dlsys("deploy", "pull", ref, "-o", out, "--trust", CACHE["pub"], "--ca-file",
                   reg.ca_file)
        self.assert_identical(CACHE["1.0.0"], out)
        # The system CA store does not know this certificate: a TLS failure naming --ca-file.
        r = self.dlsys("inspect", ref, expect=EXIT_UNAVAILABLE)
        self.assertIn("--ca-file", r.stderr)
        # Plain HTTP to it fails (the registry speaks only TLS): nothing is downgraded.
        r = run("inspect", ref, "--plain-http", env=self.env)
        self.assertNotEqual(r.returncode, EXIT_OK, r.stdout)

    def test_a_push_to_another_repository_mounts_the_layer(self):
        self.push_json()
        other = self.push_json(ref=self.reg.ref("other/m"))
        # The layer is mounted from team/m (this machine pushed it there), not sent again; the
        # small config blob is uploaded.
        self.assertEqual(other["uploaded_bytes"], len(self.config_bytes("1.0.0")))
        mounts = [p for m, p in self.reg.requests() if m == "POST" and "mount=" in p]
        self.assertEqual(len(mounts), 1, self.reg.requests())
        self.assertRegex(mounts[0], r"from=team(%2F|/)m")
        out = self.path("other.dlsys")
        self.pull(self.reg.ref("other/m", "1.0.0"), out)
        self.assert_identical(CACHE["1.0.0"], out)

    def test_second_version_shares_nothing_and_tags_list_both(self):
        one = self.push_json("1.0.0")
        two = self.push_json("2.0.0")
        self.assertEqual(two["blobs_uploaded"], 2)
        self.assertNotEqual(one["manifest_digest"], two["manifest_digest"])
        self.assertNotEqual(one["config_digest"], two["config_digest"])
        self.assertNotEqual(one["layer_digest"], two["layer_digest"])
        self.push("1.0.0", self.reg.ref("team/m", "stable"))
        r = self.dlsys("deploy", "tags", self.reg.ref("team/m"), "--plain-http")
        self.assertEqual(r.stdout, "1.0.0\n2.0.0\nstable\n")
        j = json.loads(self.dlsys("deploy", "tags", self.reg.ref("team/m"), "--plain-http",
                                  "--json").stdout)
        self.assertEqual(j["tags"], ["1.0.0", "2.0.0", "stable"])
        self.dlsys("deploy", "tags", self.reg.ref("team/none"), "--plain-http", expect=3)

    def test_pull_by_digest_to_the_default_name(self):
        pushed = self.push_json()
        work = self.path("work")
        os.makedirs(work)
        ref = self.reg.ref("team/m", digest=pushed["manifest_digest"])
        r = self.dlsys("deploy", "pull", ref, "--trust", CACHE["pub"], "--plain-http", "--json",
                       cwd=work)
        j = json.loads(r.stdout)
        self.assertEqual(j["manifest_digest"], pushed["manifest_digest"])
        self.assertEqual(j["archive"], "m-1.0.0.dlsys")
        self.assert_identical(CACHE["1.0.0"], os.path.join(work, "m-1.0.0.dlsys"))
        # A second pull refuses to replace it without --force.
        self.dlsys("deploy", "pull", ref, "--trust", CACHE["pub"], "--plain-http", cwd=work,
                   expect=EXIT_USAGE)
        wrong = self.reg.ref("team/m", digest="sha256:" + "0" * 64)
        self.dlsys("deploy", "pull", wrong, "--trust", CACHE["pub"], "--plain-http", cwd=work,
                   expect=3)

    def test_pull_into_the_local_registry(self):
        self.push()
        local = self.path("local-registry")
        self.dlsys("deploy", "--registry", local, "pull", self.reg.ref("team/m", "1.0.0"),
                   "-o", self.path("m.dlsys"), "--trust", CACHE["pub"], "--plain-http")
        r = self.dlsys("deploy", "--registry", local, "list", "--json")
        versions = json.loads(r.stdout)["versions"]
        self.assertEqual([(v["name"], v["version"]) for v in versions], [("m", "1.0.0")])

    def test_corrupted_blob_is_detected_and_nothing_is_left(self):
        pushed = self.push_json()
        data = self.reg.blob_path(pushed["layer_digest"])
        with open(data, "r+b") as f:
            f.seek(2000)
            byte = f.read(1)
            f.seek(2000)
            f.write(bytes([byte[0] ^ 0xFF]))
        outdir = self.path("out")
        os.makedirs(outdir)
        out = os.path.join(outdir, "m.dlsys")
        r = self.pull(self.reg.ref("team/m", "1.0.0"), out, expect=EXIT_VERIFY_FAILED)
        self.assertIn(pushed["layer_digest"], r.stderr)
        self.assertIn("corrupt", r.stderr)
        self.assertEqual(os.listdir(outdir), [])

    def test_unsigned_or_untrusted_pull_is_refused(self):
        self.push()
        out = self.path("m.dlsys")
        r = self.dlsys("deploy", "pull", self.reg.ref("team/m", "1.0.0"), "-o", out, "--trust",
                       CACHE["other_pub"], "--plain-http", expect=EXIT_VERIFY_FAILED)
        self.assertIn("not trusted", r.stderr)
        self.assertFalse(os.path.exists(out))
        # No --trust at all: a usage error, as for a local push.
        self.dlsys("deploy", "pull", self.reg.ref("team/m", "1.0.0"), "-o", out, "--plain-http",
                   expect=EXIT_USAGE)

    # --- auth ------------------------------------------------------------------------------
    def test_basic_auth_registry(self):
        password = "s3cret-pw-Zq9"
        reg = self.registry(user="alice", password=password, name="auth-registry")
        ref = reg.ref("team/m")
        r = self.push("1.0.0", ref, expect=EXIT_UNAVAILABLE)
        self.assertIn("refused access to team/m (401)", r.stderr)
        self.assertIn("no credentials for " + reg.addr, r.stderr)
        self.assertNotIn(password, r.stderr + r.stdout)
        wrong = reg.write_auth_file(self.path("wrong.json"), password="nope")
        r = self.push("1.0.0", ref, expect=EXIT_UNAVAILABLE, env={"REGISTRY_AUTH_FILE": wrong})
        self.assertNotIn("nope", r.stderr + r.stdout)
        auth = {"REGISTRY_AUTH_FILE": reg.write_auth_file(self.path("auth.json"))}
        self.push("1.0.0", ref, env=auth)
        out = self.path("m.dlsys")
        self.pull(reg.ref("team/m", "1.0.0"), out, env=auth)
        self.assert_identical(CACHE["1.0.0"], out)
        r = self.pull(reg.ref("team/m", "1.0.0"), self.path("anon.dlsys"), expect=EXIT_UNAVAILABLE)
        self.assertNotIn(password, r.stderr + r.stdout)

    # --- inspect and verify ----------------------------------------------------------------
    def test_remote_inspect_takes_two_requests_and_matches_local(self):
        self.push()
        ref = self.reg.ref("team/m", "1.0.0")
        r = self.dlsys("inspect", ref, "--plain-http", "--json", "--log-level", "info",
                       "--log-format", "json")
        remote = json.loads(r.stdout)
        validate(remote, "inspect.schema.json")
        local = json.loads(self.dlsys("inspect", CACHE["1.0.0"], "--json").stdout)
        self.assertEqual(remote["archive"], ref)
        for key in ("archive_bytes", "compression", "signed", "signer_key_ids", "manifest"):
            self.assertEqual(remote[key], local[key], key)
        records = [json.loads(x) for x in r.stderr.splitlines() if x.startswith("{")]
        done = [x for x in records if x.get("event") == "oci.inspect"]
        self.assertEqual(len(done), 1, r.stderr)
        self.assertEqual(done[0]["requests"], 2)
        # The registry's side: a manifest GET and the config blob GET, never the layer (a
        # push sends no GET, so every GET of the repository is the inspect's).
        got = self.wait_gets(2)
        self.assertEqual(len(got), 2, got)
        self.assertRegex(got[0][1], r"/v2/team/m/manifests/1\.0\.0$")
        self.assertRegex(got[1][1], r"/v2/team/m/blobs/sha256:[0-9a-f]{64}$")
        self.assertNotIn(sha256_file(CACHE["1.0.0"]), got[1][1])
        text = self.dlsys("inspect", ref, "--plain-http").stdout
        self.assertTrue(text.startswith("m 1.0.0  (signed by key "), text)

    def test_remote_verify(self):
        self.push()
        ref = self.reg.ref("team/m", "1.0.0")
        r = self.dlsys("verify", ref, "--trust", CACHE["pub"], "--plain-http")
        self.assertIn("PASS  signature", r.stdout)
        self.assertIn("annotations agree with manifest.json", r.stdout)
        self.assertTrue(r.stdout.rstrip().endswith("checks passed"), r.stdout)
        j = json.loads(self.dlsys("verify", ref, "--trust", CACHE["pub"], "--plain-http",
                                  "--json").stdout)
        validate(j, "verify-report.schema.json")
        self.assertEqual((j["name"], j["version"], j["archive"]), ("m", "1.0.0", ref))
        self.assertEqual(len(j["checks"]), 4)
        r = self.dlsys("verify", ref, "--trust", CACHE["other_pub"], "--plain-http",
                       "--json", expect=EXIT_VERIFY_FAILED)
        j = json.loads(r.stdout)
        validate(j, "verify-report.schema.json")
        failed = [c for c in j["checks"] if c["status"] == "FAIL"]
        self.assertEqual([c["check"] for c in failed], ["signature"])
        # --full downloads the layer and runs every local check too.
        j = json.loads(self.dlsys("verify", ref, "--trust", CACHE["pub"], "--plain-http",
                                  "--full", "--json").stdout)
        validate(j, "verify-report.schema.json")
        self.assertTrue(any(c["check"] == "file" for c in j["checks"]))
        self.assertTrue(j["ok"])
        # Without --full, --target needs the model: a usage error.
        self.dlsys("verify", ref, "--trust", CACHE["pub"], "--plain-http", "--target", "local",
                   expect=EXIT_USAGE)

    def test_verify_detects_edited_annotations(self):
        pushed = self.push_json()
        ref = self.reg.ref("team/m", "1.0.0")
        status, body = self.reg.get(
            "/v2/team/m/manifests/1.0.0",
            {"Accept": "application/vnd.oci.image.manifest.v1+json"})
        self.assertEqual(status, 200)
        m = json.loads(body)
        m["annotations"]["org.opencontainers.image.version"] = "9.9.9"
        edited = canonical_json(m)
        import urllib.request
        req = urllib.request.Request(
            f"http://{self.reg.addr}/v2/team/m/manifests/1.0.0", data=edited, method="PUT",
            headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
        with urllib.request.urlopen(req, timeout=30) as resp:
            self.assertEqual(resp.status, 201)
        r = self.dlsys("verify", ref, "--trust", CACHE["pub"], "--plain-http", "--json",
                       expect=EXIT_VERIFY_FAILED)
        failed = [c for c in json.loads(r.stdout)["checks"] if c["status"] == "FAIL"]
        self.assertEqual([c["subject"] for c in failed], ["oci annotations"])
        self.assertNotEqual(pushed["manifest_digest"], "sha256:" + hashlib.sha256(edited).hexdigest())

    # --- interop ---------------------------------------------------------------------------
    def skopeo(self, *args):
        skopeo = _require(shutil.which("skopeo") or "/usr/bin/skopeo", "skopeo")
        home = self.path("skopeo-home")
        os.makedirs(home, exist_ok=True)
        r = subprocess.run([skopeo, *args], capture_output=True, env={
            "HOME": home, "PATH": os.environ.get("PATH", "/usr/bin:/bin")}, timeout=300)
        self.assertEqual(r.returncode, 0, f"skopeo {args}: {r.stderr.decode()}")
        return r.stdout

    def test_skopeo_inspect_raw_shows_the_documented_manifest(self):
        pushed = self.push_json()
        raw = self.skopeo("inspect", "--raw", "--tls-verify=false",
                          self.reg.docker_ref("team/m", "1.0.0"))
        self.assertEqual(raw, documented_manifest(CACHE["1.0.0"]))
        self.assertEqual("sha256:" + hashlib.sha256(raw).hexdigest(), pushed["manifest_digest"])

    def test_skopeo_copy_then_dlsys_pull_verifies(self):
        pushed = self.push_json()
        self.skopeo("copy", "--src-tls-verify=false", "--dest-tls-verify=false",
                    self.reg.docker_ref("team/m", "1.0.0"), self.reg.docker_ref("team/b", "1.0.0"))
        out = self.path("b.dlsys")
        r = self.pull(self.reg.ref("team/b", "1.0.0"), out, "--json")
        self.assertEqual(json.loads(r.stdout)["manifest_digest"], pushed["manifest_digest"])
        self.assert_identical(CACHE["1.0.0"], out)

    # --- serve -----------------------------------------------------------------------------
    def test_serve_pulls_into_the_cache_and_answers(self):
        pushed = self.push_json()
        ref = self.reg.ref("team/m", "1.0.0")
        s = Serve(ref, "--trust", CACHE["pub"], "--plain-http", env=self.env)
        self.addCleanup(s.kill)
        status, body = s.infer("m", [{"name": "x", "datatype": "FP32", "shape": [1, 4],
                                      "data": [1, 2, 3, 4]}])
        self.assertEqual(status, 200, body)
        self.assertEqual(body["outputs"][0]["shape"], [1, 2])
        self.assertEqual(s.stop(), 0)
        cached = os.path.join(self.env["XDG_CACHE_HOME"], "dlsys", "oci",
                              "sha256-" + pushed["layer_digest"][7:] + ".dlsys")
        self.assert_identical(CACHE["1.0.0"], cached)

    # --- usage -----------------------------------------------------------------------------
    def test_bad_references_are_usage_errors(self):
        for ref in ("oci://127.0.0.1/Team/m:1", "oci://127.0.0.1:99999/m:1", "oci:///m:1",
                    "oci://h/m:t@sha256:" + "a" * 64):
            r = self.dlsys("inspect", ref, "--plain-http", expect=EXIT_USAGE)
            self.assertIn("is not an OCI reference", r.stderr)
        r = self.dlsys("deploy", "pull", self.reg.ref("team/m"), "--trust", CACHE["pub"],
                       "--plain-http", expect=EXIT_USAGE)
        self.assertIn("no tag or digest", r.stderr)
        # A hostile reference is escaped before the terminal.
        r = self.dlsys("inspect", "oci://h/m:\x1b[2J", expect=EXIT_USAGE)
        self.assertNotIn("\x1b", r.stderr)

    # --- helpers ---------------------------------------------------------------------------
    def config_bytes(self, version):
        with tarfile.open(CACHE[version]) as t:
            return t.extractfile("manifest.json").read()

    def reg_uploads(self):
        return sum(1 for m, p in self.reg.requests() if m == "POST" and "/blobs/uploads/" in p)

    def wait_gets(self, n, timeout=30):
        """GETs of /v2/team/m/ the registry logged. It writes an access line after each
        answer, so poll (bounded) until there are n."""
        deadline = time.monotonic() + timeout
        while True:
            got = [(m, p) for m, p in self.reg.requests()
                   if m == "GET" and p.startswith("/v2/team/m/")]
            if len(got) >= n or time.monotonic() > deadline:
                return got
            time.sleep(0.01)  # polling the registry's log, bounded by the deadline


if __name__ == "__main__":
    unittest.main()
