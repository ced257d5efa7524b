"""Hostile archives and inputs: each case fails with its specific error and exit code,
without crashing, hanging, or writing anything."""
import io
import json
import os
import subprocess
import sys
import tarfile
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from clitest import (canonical_json, EXIT_INVALID, EXIT_OK, EXIT_USAGE, EXIT_VERIFY_FAILED, TempDirTest,
                     file_info, make_model, run, tar_members, write_tar)


class Hostile(TempDirTest):
    @classmethod
    def setUpClass(cls):
        import tempfile
        cls.fixtures = tempfile.mkdtemp(prefix="dlsys-hostile-")
        cls.model = make_model("mlp", os.path.join(cls.fixtures, "model.pt"))
        cls.key = os.path.join(cls.fixtures, "k.key")
        assert run("keygen", "--out", cls.key).returncode == 0
        with open(os.path.join(cls.fixtures, "labels.txt"), "w") as f:
            f.write("a\nb\n")
        cls.signed = os.path.join(cls.fixtures, "signed.dlsys")
        r = run("pack", cls.model, "--name", "mlp", "--version", "1.0.0", "--key", cls.key,
                "--file", os.path.join(cls.fixtures, "labels.txt"), "-o", cls.signed)
        assert r.returncode == 0, r.stderr
        cls.unsigned = os.path.join(cls.fixtures, "unsigned.dlsys")
        r = run("pack", cls.model, "--name", "mlp", "--version", "1.0.0",
                "--file", os.path.join(cls.fixtures, "labels.txt"), "-o", cls.unsigned)
        assert r.returncode == 0, r.stderr

    @classmethod
    def tearDownClass(cls):
        import shutil
        shutil.rmtree(cls.fixtures, ignore_errors=True)

    def verify(self, path, *extra):
        r = run("verify", path, "--trust", self.key + ".pub", "--json", *extra, timeout=60)
        report = json.loads(r.stdout) if r.stdout.strip() else None
        return r, report

    def failures(self, report):
        return [c["message"] for c in report["checks"] if c["status"] == "FAIL"]

    def flip(self, src, member, offset_in_member=10):
        """Copies src and flips one bit of the given member's data."""
        dst = self.path("flipped.dlsys")
        data = bytearray(open(src, "rb").read())
        with tarfile.open(src) as t:
            m = t.getmember(member)
            pos = m.offset_data + min(offset_in_member, m.size - 1)
        data[pos] ^= 0x01
        open(dst, "wb").write(data)
        return dst

    def rebuilt(self, transform, src=None):
        """Rebuilds an archive from a (modified) member list."""
        members = transform(tar_members(src or self.signed))
        dst = self.path("rebuilt.dlsys")
        write_tar(dst, members)
        return dst

    def assert_unsafe(self, transform, phrase, src=None):
        r, report = self.verify(self.rebuilt(transform, src))
        self.assertEqual(r.returncode, EXIT_INVALID, r.stdout + r.stderr)
        self.assertTrue(any(phrase in m for m in self.failures(report)), self.failures(report))
        self.assertEqual(sorted(os.listdir(self.dir)), ["rebuilt.dlsys"])
        # inspect reads only the head: hostile entries after it are verify's business, but an
        # unsafe head must be refused.
        return report

    # --- integrity ---------------------------------------------------------------------------

    def test_flipped_bit_in_model_fails_naming_file_and_digests(self):
        r, report = self.verify(self.flip(self.signed, "model.pt", 100))
        self.assertEqual(r.returncode, EXIT_VERIFY_FAILED)
        fail = [c for c in report["checks"] if c["status"] == "FAIL"]
        self.assertEqual(len(fail), 1, fail)
        self.assertEqual(fail[0]["subject"], "model.pt")
        self.assertIn("manifest says", fail[0]["message"])
        self.assertEqual(len(fail[0]["expected"]), 64)
        self.assertNotEqual(fail[0]["expected"], fail[0]["found"])

    def test_flipped_bit_in_manifest_fails_signature(self):
        # Flip a bit inside a string value so the manifest still parses.
        data = bytearray(open(self.signed, "rb").read())
        with tarfile.open(self.signed) as t:
            m = t.getmember("manifest.json")
            body = t.extractfile(m).read()
        pos = m.offset_data + body.index(b'"mlp"') + 2
        data[pos] ^= 0x01
        open(self.path("f.dlsys"), "wb").write(data)
        r, report = self.verify(self.path("f.dlsys"))
        self.assertEqual(r.returncode, EXIT_VERIFY_FAILED)
        self.assertTrue(any("altered" in m for m in self.failures(report)), report)

    def test_flipped_bit_in_signature_fails(self):
        with tarfile.open(self.signed) as t:
            env = t.extractfile("signature.json").read()
        sig_at = env.index(b'"sig":"') + 12
        r, report = self.verify(self.flip(self.signed, "signature.json", sig_at))
        # Which character the flip hits depends on the (random) key: another base64 digit gives
        # a signature that does not verify (exit 5); a non-base64 character or non-canonical
        # padding bits make the envelope itself invalid (exit 4). Never a pass.
        failures = self.failures(report)
        if r.returncode == EXIT_VERIFY_FAILED:
            self.assertTrue(any("does not verify" in m for m in failures), report)
        else:
            self.assertEqual(r.returncode, EXIT_INVALID, report)
            self.assertTrue(any("base64" in m for m in failures), report)

    def test_missing_file(self):
        dst = self.rebuilt(lambda ms: [(m, d) for m, d in ms if m.name != "files/labels.txt"])
        r, report = self.verify(dst)
        self.assertEqual(r.returncode, EXIT_VERIFY_FAILED)
        self.assertIn("files/labels.txt: listed in the manifest but missing from the archive",
                      self.failures(report))

    def test_extra_file(self):
        dst = self.rebuilt(lambda ms: ms + [(file_info("zz-extra.txt"), b"surprise")])
        r, report = self.verify(dst)
        self.assertEqual(r.returncode, EXIT_VERIFY_FAILED)
        self.assertIn("zz-extra.txt: present in the archive but not listed in the manifest",
                      self.failures(report))

    def test_manifest_that_lies_about_a_size(self):
        def lie(ms):
            out = []
            for m, d in ms:
                if m.name == "manifest.json":
                    doc = json.loads(d)
                    for f in doc["files"]:
                        if f["path"] == "files/labels.txt":
                            f["size"] += 1
                    d = canonical_json(doc)
                out.append((m, d))
            return out
        r, report = self.verify(self.rebuilt(lie, self.unsigned), "--allow-unsigned")
        self.assertEqual(r.returncode, EXIT_VERIFY_FAILED)
        self.assertIn("files/labels.txt: archive entry has 4 bytes, manifest says 5",
                      self.failures(report))

    def test_unsigned_fails_unless_allowed(self):
        r, report = self.verify(self.unsigned)
        self.assertEqual(r.returncode, EXIT_VERIFY_FAILED)
        r, report = self.verify(self.unsigned, "--allow-unsigned")
        self.assertEqual(r.returncode, EXIT_OK)

    # --- unsafe containers (exit 4) ----------------------------------------------------------

    def test_absolute_path(self):
        self.assert_unsafe(lambda ms: ms + [(file_info("/etc/evil"), b"x")], "absolute")

    def test_dot_dot_path(self):
        self.assert_unsafe(lambda ms: ms + [(file_info("files/../../evil"), b"x")], "..")

    def test_symlink(self):
        def add(ms):
            info = tarfile.TarInfo("link")
            info.type = tarfile.SYMTYPE
            info.linkname = "/etc/passwd"
            return ms + [(info, b"")]
        self.assert_unsafe(add, "symbolic link")

    def test_hard_link(self):
        def add(ms):
            info = tarfile.TarInfo("hard")
            info.type = tarfile.LNKTYPE
            info.linkname = "model.pt"
            return ms + [(info, b"")]
        self.assert_unsafe(add, "hard link")

    def test_device_file(self):
        def add(ms):
            info = tarfile.TarInfo("dev")
            info.type = tarfile.CHRTYPE
            info.devmajor, info.devminor = 1, 3
            return ms + [(info, b"")]
        self.assert_unsafe(add, "device")

    def test_duplicate_names(self):
        def dup(ms):
            model = [x for x in ms if x[0].name == "model.pt"][0]
            return ms + [(file_info("model.pt"), model[1])]
        self.assert_unsafe(dup, "out of order or repeated")

    def test_manifest_not_first(self):
        def swap(ms):
            return [ms[2], ms[0], ms[1]] + ms[3:]
        dst = self.rebuilt(swap)
        r, report = self.verify(dst)
        self.assertEqual(r.returncode, EXIT_INVALID)
        self.assertTrue(any("first entry" in m for m in self.failures(report)))
        r = run("inspect", dst)
        self.assertEqual(r.returncode, EXIT_INVALID)
        self.assertIn("first entry (at offset 0) is", r.stderr)

    def test_truncated_archive(self):
        data = open(self.signed, "rb").read()
        with tarfile.open(self.signed) as t:
            cut = t.getmember("model.pt").offset_data + 1000
        for n in [cut, 700, 100]:
            open(self.path("t.dlsys"), "wb").write(data[:n])
            r, report = self.verify(self.path("t.dlsys"))
            self.assertEqual(r.returncode, EXIT_INVALID, (n, r.stdout, r.stderr))
            os.remove(self.path("t.dlsys"))

    def test_not_an_archive(self):
        open(self.path("junk.dlsys"), "wb").write(os.urandom(4096))
        r = run("inspect", self.path("junk.dlsys"))
        self.assertEqual(r.returncode, EXIT_INVALID)
        self.assertIn("junk.dlsys", r.stderr)

    def test_huge_declared_size_is_bounded(self):
        # A header claiming ~8 GiB of data followed by almost nothing.
        def huge(ms):
            info = file_info("zz-huge.bin")
            return ms + [(info, b"")]
        dst = self.rebuilt(huge)
        data = bytearray(open(dst, "rb").read())
        with tarfile.open(dst) as t:
            hdr = t.getmember("zz-huge.bin").offset
        data[hdr + 124:hdr + 136] = b"77777777777\0"
        chk = sum(data[hdr:hdr + 148]) + 8 * 32 + sum(data[hdr + 156:hdr + 512])
        data[hdr + 148:hdr + 156] = b"%06o\0 " % chk
        open(dst, "wb").write(data)
        start = time.monotonic()
        r, report = self.verify(dst)
        self.assertIn(r.returncode, (EXIT_INVALID, EXIT_VERIFY_FAILED))
        self.assertLess(time.monotonic() - start, 30)

    def test_compression_bomb_is_stopped(self):
        # 1 GiB of zeros declared by an (unsigned) manifest, zstd-compressed to ~30 KB.
        members = tar_members(self.unsigned)
        doc = json.loads(members[0][1])
        size = 1 << 30
        doc["files"].append({"path": "zz-bomb.bin", "size": size, "mode": 420,
                             "shard_bytes": 64 << 20,
                             "shards": ["0" * 64] * (size // (64 << 20))})
        manifest = canonical_json(doc)
        tar_path = self.path("bomb.tar")
        mtime = members[0][0].mtime  # every entry carries the manifest's created time

        def info(name, n):
            i = file_info(name, n)
            i.mtime = mtime
            return i
        with tarfile.open(tar_path, "w", format=tarfile.PAX_FORMAT) as t:
            t.addfile(info("manifest.json", len(manifest)), io.BytesIO(manifest))
            for m, d in members[1:]:
                t.addfile(m, io.BytesIO(d))
            class Zeros(io.RawIOBase):
                def __init__(self, n): self.n = n
                def readable(self): return True
                def readinto(self, b):
                    k = min(len(b), self.n); b[:k] = bytes(k); self.n -= k; return k
            t.addfile(info("zz-bomb.bin", size), io.BufferedReader(Zeros(size), 1 << 20))
        subprocess.run(["zstd", "-q", "-1", "--rm", "-f", tar_path, "-o", self.path("bomb.dlsys")],
                       check=True)
        start = time.monotonic()
        r, report = self.verify(self.path("bomb.dlsys"), "--allow-unsigned")
        self.assertEqual(r.returncode, EXIT_INVALID, r.stdout)
        self.assertTrue(any("compression ratio" in m for m in self.failures(report)), report)
        self.assertLess(time.monotonic() - start, 30)

    # --- bad inputs to pack ------------------------------------------------------------------

    def pack_spec(self, text, model=None):
        with open(self.path("dlsys.yaml"), "w") as f:
            f.write(text)
        return run("pack", model or self.model, "--spec", self.path("dlsys.yaml"), "-o",
                   self.path("out.dlsys"))

    def test_malformed_yaml_spec(self):
        r = self.pack_spec("name: [unclosed\nversion: 1.0.0\n")
        self.assertEqual(r.returncode, EXIT_INVALID)
        self.assertIn("not valid YAML", r.stderr)
        self.assertIn("line", r.stderr)
        self.assertFalse(os.path.exists(self.path("out.dlsys")))

    def test_malformed_json_spec(self):
        r = self.pack_spec('{"name": "a", "version": "1.0.0",,}')
        self.assertEqual(r.returncode, EXIT_INVALID)
        self.assertFalse(os.path.exists(self.path("out.dlsys")))

    def test_spec_field_errors_name_the_field(self):
        cases = [
            ("name: a\nversion: 1.0.0\ninputs: [{name: x, dtype: float33, shape: [1]}]\n",
             "inputs[0].dtype"),
            ("name: a\nversion: 1.0.0\nhyperparameter: {lr: 1}\n", "'hyperparameter' is not a known field"),
            ("name: a\nversion: 1.0.0\ninputs: [{name: x, dtype: float32, shape: [-2]}]\n",
             "inputs[0].shape[0]"),
            ("name: a\nversion: 1.0.0\nexamples: [{inputs: {x: {data: [[1, 2], [3]]}}}]\n", "ragged"),
            ("name: a\nversion: 1.0.0\nmetrics: [1, 2]\n", "metrics"),
            ("[" * 10000 + "]" * 10000, "nesting"),
            ("[" * 10000, "line 1"),
        ]
        for text, phrase in cases:
            r = self.pack_spec(text)
            self.assertEqual(r.returncode, EXIT_INVALID, (text[:40], r.stderr))
            self.assertIn(phrase, r.stderr, text[:40])

    def test_pack_never_writes_an_archive_its_verify_refuses(self):
        # A file and a directory of the same name: verify would refuse the archive, so pack must.
        labels = os.path.join(self.fixtures, "labels.txt")
        r = run("pack", self.model, "--name", "a", "--version", "1.0.0",
                "--file", labels + "=files/x", "--file", labels + "=files/x/y",
                "-o", self.path("out.dlsys"))
        self.assertEqual(r.returncode, EXIT_USAGE, r.stderr)
        self.assertIn("files/x", r.stderr)
        self.assertEqual(os.listdir(self.dir), [])

    def test_empty_model(self):
        open(self.path("empty.pt"), "wb").close()
        r = run("pack", self.path("empty.pt"), "--name", "a", "--version", "1.0.0", "-o",
                self.path("out.dlsys"))
        self.assertEqual(r.returncode, EXIT_INVALID)
        self.assertIn("empty", r.stderr)
        self.assertFalse(os.path.exists(self.path("out.dlsys")))

    def test_not_a_torchscript_model(self):
        open(self.path("junk.pt"), "wb").write(b"PK\x03\x04 definitely not a model" * 10)
        r = run("pack", self.path("junk.pt"), "--name", "a", "--version", "1.0.0", "-o",
                self.path("out.dlsys"))
        self.assertEqual(r.returncode, EXIT_INVALID)
        self.assertIn("not a loadable TorchScript model", r.stderr)
        self.assertFalse(os.path.exists(self.path("out.dlsys")))

    def test_examples_that_do_not_fit_the_model(self):
        r = self.pack_spec("name: a\nversion: 1.0.0\nexamples:\n"
                           "  - {name: bad, inputs: {x: {data: [[1, 2, 3]]}}}\n")
        self.assertEqual(r.returncode, EXIT_INVALID)
        self.assertIn("example 'bad'", r.stderr)

    def test_bad_key_file(self):
        open(self.path("bad.key"), "w").write("-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----\n")
        r = run("pack", self.model, "--name", "a", "--version", "1.0.0", "--key",
                self.path("bad.key"), "-o", self.path("out.dlsys"))
        self.assertEqual(r.returncode, EXIT_INVALID, r.stderr)
        self.assertNotIn("nope", r.stderr)
        self.assertFalse(os.path.exists(self.path("out.dlsys")))

    def test_unsafe_extra_file_path(self):
        r = run("pack", self.model, "--name", "a", "--version", "1.0.0", "--file",
                os.path.join(self.fixtures, "labels.txt") + "=../escape.txt", "-o",
                self.path("out.dlsys"))
        self.assertEqual(r.returncode, EXIT_USAGE, r.stderr)
        self.assertIn("..", r.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
