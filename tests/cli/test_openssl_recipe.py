"""The openssl recipe in docs/archive-format.md, run verbatim: it must accept exactly the
signature dlsys accepts (the one whose keyid names the trusted key), not signatures[0]."""
import base64
import hashlib
import io
import json
import os
import re
import subprocess
import sys
import tarfile
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from clitest import (EXIT_OK, EXIT_VERIFY_FAILED, SOURCE_DIR, TempDirTest, make_model, run)

PAYLOAD_TYPE = b"application/vnd.dlsys.manifest.v1+json"


def recipe():
    """The ```sh block of the 'Checking a signature with the openssl command line' section."""
    with open(os.path.join(SOURCE_DIR, "docs", "archive-format.md")) as f:
        doc = f.read()
    section = doc[doc.index("### Checking a signature with the openssl command line"):]
    return re.search(r"```sh\n(.*?)```", section, re.S).group(1)


def canonical_tar(members, mtime):
    """[(name, bytes)] as a canonical dlsys tar stream (Python's pax writer, no record padding)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, mtime
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            t.addfile(info, io.BytesIO(data))
        end = t.offset + 1024
    return buf.getvalue()[:end]


class OpensslRecipe(TempDirTest):
    def setUp(self):
        super().setUp()
        model = make_model("mlp", self.path("model.pt"))
        for key in ("release.key", "other.key"):
            self.assertEqual(run("keygen", "--out", self.path(key)).returncode, EXIT_OK)
        r = run("pack", model, "--name", "mlp", "--version", "1.0.0", "--key",
                self.path("release.key"), "-o", self.path("signed.dlsys"))
        self.assertEqual(r.returncode, EXIT_OK, r.stderr)
        with tarfile.open(self.path("signed.dlsys")) as t:
            self.members = [(m.name, t.extractfile(m).read()) for m in t.getmembers()]
            self.mtime = t.getmembers()[0].mtime

    def keyid(self, pub):
        der = subprocess.run(["openssl", "pkey", "-pubin", "-in", pub, "-outform", "DER"],
                             capture_output=True, check=True).stdout
        return hashlib.sha256(der).hexdigest()

    def sign(self, key, manifest):
        pae = b"DSSEv1 %d %s %d %s" % (len(PAYLOAD_TYPE), PAYLOAD_TYPE, len(manifest), manifest)
        with open(self.path("pae-in.bin"), "wb") as f:
            f.write(pae)
        return subprocess.run(["openssl", "pkeyutl", "-sign", "-inkey", key, "-rawin", "-in",
                               self.path("pae-in.bin")], capture_output=True, check=True).stdout

    def two_signature_archive(self, corrupt_trusted):
        """signatures = [valid signature by an untrusted key, signature by release.key]."""
        manifest = dict(self.members)["manifest.json"]
        env = json.loads(dict(self.members)["signature.json"])
        trusted = env["signatures"][0]
        if corrupt_trusted:
            sig = bytearray(base64.b64decode(trusted["sig"]))
            sig[5] ^= 1
            trusted = {"keyid": trusted["keyid"], "sig": base64.b64encode(bytes(sig)).decode()}
        other = {"keyid": self.keyid(self.path("other.key.pub")),
                 "sig": base64.b64encode(self.sign(self.path("other.key"), manifest)).decode()}
        env["signatures"] = [other, trusted]
        envelope = json.dumps(env, sort_keys=True, separators=(",", ":")).encode()
        members = [(n, envelope if n == "signature.json" else d) for n, d in self.members]
        os.makedirs(self.path("work"), exist_ok=True)
        with open(self.path("work/mlp-1.0.0.dlsys"), "wb") as f:
            f.write(canonical_tar(members, self.mtime))
        with open(self.path("release.key.pub"), "rb") as src, \
                open(self.path("work/release.key.pub"), "wb") as dst:
            dst.write(src.read())
        return self.path("work/mlp-1.0.0.dlsys")

    def run_recipe(self):
        return subprocess.run(["bash", "-euo", "pipefail", "-c", recipe()], cwd=self.path("work"),
                              capture_output=True, text=True)

    def test_recipe_and_dlsys_accept_the_trusted_signature_when_it_is_not_first(self):
        archive = self.two_signature_archive(corrupt_trusted=False)
        r = run("verify", archive, "--trust", self.path("release.key.pub"))
        self.assertEqual(r.returncode, EXIT_OK, r.stdout + r.stderr)
        ok = self.run_recipe()
        self.assertEqual(ok.returncode, 0, ok.stdout + ok.stderr)
        self.assertIn("Signature Verified Successfully", ok.stdout)

    def test_recipe_and_dlsys_refuse_when_only_the_untrusted_signature_is_valid(self):
        archive = self.two_signature_archive(corrupt_trusted=True)
        r = run("verify", archive, "--trust", self.path("release.key.pub"))
        self.assertEqual(r.returncode, EXIT_VERIFY_FAILED, r.stdout + r.stderr)
        self.assertIn("does not verify", r.stdout)
        bad = self.run_recipe()
        self.assertNotEqual(bad.returncode, 0, bad.stdout + bad.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
