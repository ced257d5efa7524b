"""One archive, one meaning: `dlsys verify` accepts only the canonical byte form of an archive
(tests/cli/hostile_tar.py), so whatever it accepts, every tar reader reads the same way.

(a) the generator rebuilds pack's archives byte for byte (generator = spec = pack);
(b) breaking any single thing of a signed archive (signature still valid) is exit 4 with the
    byte offset, nothing is written, and `inspect` refuses a broken head too;
(c) GNU tar, bsdtar and Python's tarfile extract exactly the manifest's files from valid ones;
(d) random mutations: whatever verify accepts, GNU tar extracts as the manifest says.
The Generator class checks hostile_tar itself against GNU tar, bsdtar and Python's tarfile.
"""
import atexit
import calendar
import hashlib
import io
import json
import os
import random
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import unittest
import zlib

sys.path.insert(0, os.path.dirname(__file__))
import hostile_tar as H  # noqa: E402
from clitest import EXIT_INVALID, EXIT_OK, EXIT_VERIFY_FAILED, make_model, run  # noqa: E402

EPOCH = 1767225600  # SOURCE_DATE_EPOCH for every fixture: 2026-01-01T00:00:00Z
LONG_PATH = "files/" + "deep-directory-name/" * 6 + "a-file-name-long-enough.txt"  # > 100 bytes
LABELS = b"setosa\nversicolor\nvirginica\n"
# A file with a hole, so sparse encodings really differ from the logical bytes.
HOLES = b"head" * 200 + bytes(4096) + b"tail" * 200


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def read(path):
    with open(path, "rb") as f:
        return f.read()


def write(path, data):
    with open(path, "wb") as f:
        f.write(data)


def sh(*cmd, **kw):
    return subprocess.run(list(map(str, cmd)), capture_output=True, **kw)


class Fixture:
    """Signed archives packed by the real binary, and their parts, built once per process."""
    _built = None

    @classmethod
    def get(cls):
        if cls._built is None:
            cls._built = cls()
        return cls._built

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="dlsys-canonical-")
        atexit.register(shutil.rmtree, self.dir, True)
        self.model = make_model("mlp", self.p("model.pt"))
        self.other_model = read(make_model("random", self.p("other.pt")))
        self.key = self.p("k.key")
        self.pub = self.key + ".pub"
        r = run("keygen", "--out", self.key)
        assert r.returncode == 0, r.stderr
        write(self.p("labels.txt"), LABELS)
        write(self.p("holes.bin"), HOLES)
        self.archives = {}
        common = ["--name", "mlp", "--version", "1.0.0", "--key", self.key,
                  "--file", self.p("labels.txt"), "--file", self.p("holes.bin")]
        for comp in ("none", "gzip", "zstd"):
            self.pack(comp, *common, "--compression", comp)
        self.pack("long", *common, "--file", self.p("labels.txt") + "=" + LONG_PATH,
                  "--file", self.p("holes.bin") + "=files/extra/holes-again.bin")
        self.parts = {name: self.read_parts(path) for name, path in self.archives.items()}
        self.manifest, self.signature, self.files, self.mtime = self.parts["none"]
        self.doc = json.loads(self.manifest)

    def p(self, name):
        return os.path.join(self.dir, name)

    def pack(self, name, *args):
        out = self.p(name + ".dlsys")
        r = run("pack", self.model, *args, "-o", out, env={"SOURCE_DATE_EPOCH": str(EPOCH)})
        assert r.returncode == 0, r.stderr
        self.archives[name] = out

    @staticmethod
    def read_parts(path):
        """(manifest bytes, signature bytes, [(path, bytes)] in manifest order, mtime)."""
        with tarfile.open(fileobj=io.BytesIO(H.decompress(read(path)))) as t:
            def get(name):
                return t.extractfile(name).read()
            manifest, signature = get("manifest.json"), get("signature.json")
            doc = json.loads(manifest)
            files = [(f["path"], get(f["path"])) for f in doc["files"]]
        mtime = calendar.timegm(time.strptime(doc["created"], "%Y-%m-%dT%H:%M:%SZ"))
        return manifest, signature, files, mtime

    def entries(self, name="none"):
        """[(path, bytes)] of the canonical entry sequence."""
        manifest, signature, files, _ = self.parts[name]
        return [("manifest.json", manifest), ("signature.json", signature)] + files

    def canonical(self, name="none"):
        return H.canonical(self.entries(name), self.parts[name][3])


def describe_diff(a, b):
    """Where two tar streams first differ: block, entry offset and header field."""
    for i in range(0, max(len(a), len(b)), H.BLOCK):
        x, y = a[i:i + H.BLOCK], b[i:i + H.BLOCK]
        if x != y:
            if not x or not y:
                return "lengths differ: %d vs %d bytes" % (len(a), len(b))
            j = next(k for k in range(min(len(x), len(y))) if x[k] != y[k])
            field = next((f for f, (s, e) in H.FIELDS.items() if s <= j < e), "?")
            return ("first difference at byte %d (block at %d, +%d, header field '%s' if this is a "
                    "header): %r vs %r" % (i + j, i, j, field, x[j:j + 16], y[j:j + 16]))
    return "identical"


def walk(root):
    """({relative regular file: bytes}, [other non-directory things])."""
    files, others = {}, []
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames + filenames:
            full = os.path.join(dirpath, n)
            rel = os.path.relpath(full, root)
            if os.path.islink(full):
                others.append(rel + " (symlink)")
            elif os.path.isfile(full):
                files[rel] = read(full)
            elif not os.path.isdir(full):
                others.append(rel)
    return files, others


class Base(unittest.TestCase):
    def setUp(self):
        self.fx = Fixture.get()
        self.dir = tempfile.mkdtemp(prefix="dlsys-case-")

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def write(self, data, name="case.dlsys"):
        path = os.path.join(self.dir, name)
        write(path, data)
        return path

    def verify(self, path, *extra, timeout=60):
        r = run("verify", path, "--trust", self.fx.pub, "--json", *extra, cwd=self.dir,
                timeout=timeout)
        try:
            report = json.loads(r.stdout)
        except ValueError:
            report = None
        return r, report

    def fail_messages(self, r, report):
        rows = [c for c in (report or {}).get("checks", []) if c.get("status") == "FAIL"]
        return [" ".join(str(c.get(k, "")) for k in ("check", "subject", "message", "expected",
                                                     "found")) for c in rows], rows

    def assert_extracts_manifest(self, root, manifest, signature=None, who=""):
        """root holds exactly manifest.json, signature.json and the manifest's files."""
        doc = json.loads(manifest)
        files, others = walk(root)
        self.assertEqual(others, [], who)
        want = {f["path"] for f in doc["files"]} | {"manifest.json"}
        if signature is not None:
            want.add("signature.json")
        self.assertEqual(sorted(files), sorted(want), who)
        self.assertEqual(files["manifest.json"], manifest, who)
        if signature is not None:
            self.assertEqual(files["signature.json"], signature, who)
        for f in doc["files"]:
            data = files[f["path"]]
            self.assertEqual(len(data), f["size"], (who, f["path"]))
            if "sha256" in f:
                self.assertEqual(sha256(data), f["sha256"], (who, f["path"]))
            else:
                n = f["shard_bytes"]
                pieces = [data[i:i + n] for i in range(0, len(data), n)]
                self.assertEqual([sha256(x) for x in pieces], f["shards"], (who, f["path"]))


# --- (a) generator = spec = pack ----------------------------------------------------------------

class PackIsCanonical(Base):
    def test_uncompressed_is_byte_identical_to_the_generator(self):
        for name in ("none", "long"):
            packed = read(self.fx.archives[name])
            rebuilt = self.fx.canonical(name)
            self.assertTrue(packed == rebuilt, "%s: %s" % (name, describe_diff(packed, rebuilt)))

    def test_long_fixture_has_a_path_over_100_bytes_and_an_extra_file(self):
        paths = [p for p, _ in self.fx.parts["long"][2]]
        self.assertIn(LONG_PATH, paths)
        self.assertIn("files/extra/holes-again.bin", paths)
        self.assertGreater(len(LONG_PATH), 100)

    def test_gzip_is_one_canonical_member(self):
        packed = read(self.fx.archives["gzip"])
        members = H.gunzip_members(packed)  # raises on trailing garbage
        self.assertEqual(len(members), 1)
        self.assertEqual(packed[:10], H.GZIP_HEADER)
        tar = members[0][1]
        rebuilt = self.fx.canonical("gzip")
        self.assertTrue(tar == rebuilt, describe_diff(tar, rebuilt))

    def test_zstd_is_one_canonical_frame(self):
        packed = read(self.fx.archives["zstd"])
        frames = H.zstd_frames(packed)
        self.assertEqual(len(frames), 1, frames)
        f = frames[0]
        self.assertFalse(f["skippable"])
        self.assertTrue(f["checksum"], f)
        self.assertIsNone(f["dict_id"], f)
        self.assertLessEqual(f["window"], 8 << 20, f)
        self.assertEqual(f["end"], len(packed))
        tar = H.unzstd(packed)
        rebuilt = self.fx.canonical("zstd")
        self.assertTrue(tar == rebuilt, describe_diff(tar, rebuilt))

    def test_generator_rebuilds_verify(self):
        # The positive control for (b): the generator's canonical bytes pass, in every wrapping.
        tar = self.fx.canonical()
        for label, data in [("none", tar), ("gzip", H.gzip_member(tar)),
                            ("zstd", H.zstd_frame(tar)),
                            ("long", self.fx.canonical("long"))]:
            r, report = self.verify(self.write(data, label + ".dlsys"))
            self.assertEqual(r.returncode, EXIT_OK, (label, r.stdout, r.stderr))


# --- (b) one break each: exit 4 ---------------------------------------------------------------

def _other_model_entry(fx, path="model.pt"):
    return H.entry(path, fx.other_model, fx.mtime)


def _entries(fx, **change):
    """The canonical entries as bytes; change={path: callable(path, data) -> entry bytes}."""
    out = []
    for p, d in fx.entries():
        f = change.get(p)
        out.append(f(p, d) if f else H.entry(p, d, fx.mtime))
    return out


def _with(fx, path, **kw):
    """The canonical archive with entry `path` built as H.entry(path, data, mtime, **kw)."""
    return H.archive(_entries(fx, **{path: lambda p, d: H.entry(p, d, fx.mtime, **kw)}))


def _insert(fx, before, extra):
    """The canonical archive with bytes `extra` inserted before entry `before` (None = end)."""
    parts = _entries(fx)
    paths = [p for p, _ in fx.entries()]
    at = paths.index(before) if before else len(parts)
    return H.archive(parts[:at] + [extra] + parts[at:])


def _swap(fx, a, b):
    es = fx.entries()
    i, j = [p for p, _ in es].index(a), [p for p, _ in es].index(b)
    es[i], es[j] = es[j], es[i]
    return H.canonical(es, fx.mtime)


def _tar(fx):
    return fx.canonical()


def _with_long_pax(fx, **pax_kw):
    """The canonical archive plus one extra entry with a >100-byte path whose pax header gets
    pax_kw (fields=..., name=...). The path is unlisted, so a reader that ignores the break
    still says 'not listed' (exit 5), never 0."""
    path = "zz/" + "x" * 120
    records = H.canonical_pax_records(path, 1)
    name = pax_kw.pop("name", "././@PaxHeader")
    extra = H.pax_header(records, name=name, **pax_kw) + H.header(path, 1, fx.mtime) + H.pad(b"x")
    return _insert(fx, None, extra)


def _rechecksum(entry_bytes, fmt):
    """The entry with its (last) ustar header's checksum written with a different format."""
    h = bytearray(entry_bytes[:H.BLOCK])
    h[148:156] = fmt % H.checksum(h)
    return bytes(h) + entry_bytes[H.BLOCK:]


LABELS_PATH, HOLES_PATH = "files/labels.txt", "files/holes.bin"

# name: (builder(fx) -> archive bytes, keywords (any, case-insensitive), break in the headers
# of the first two entries, which `inspect` reads too?). Every case keeps the bytes of
# manifest.json and signature.json, so the signature still verifies: only the framing is wrong.
HOSTILE = {
    # pax global headers
    "pax_global_header": (lambda fx: _insert(fx, "manifest.json", H.pax_header(
        [("comment", "hello")], typeflag="g")), ("type 'g'", "pax global header"), True),
    "pax_global_path_to_other_model": (lambda fx: _insert(fx, None, H.pax_header(
        [("path", "model.pt")], typeflag="g") + _other_model_entry(fx, "zz-other.pt")),
        ("type 'g'", "pax global header"), False),
    # data after the end-of-archive marker
    "entry_after_end_marker": (lambda fx: _tar(fx) + _other_model_entry(fx) + H.END,
                               ("trailing data", "end-of-archive marker"), False),
    "junk_after_end_marker": (lambda fx: _tar(fx) + b"x", ("trailing data",), False),
    "padding_to_10240": (lambda fx: H.pad(_tar(fx)) + bytes(-len(_tar(fx)) % 10240),
                         ("trailing data", "end-of-archive marker"), False),
    "lone_zero_block_as_marker": (lambda fx: H.archive(_entries(fx), end=H.ZERO_BLOCK),
                                  ("end-of-archive marker",), False),
    "no_end_marker": (lambda fx: H.archive(_entries(fx), end=b""),
                      ("end-of-archive marker",), False),
    "zero_block_between_entries": (lambda fx: _insert(fx, "model.pt", H.ZERO_BLOCK),
                                   ("end-of-archive marker", "zero block"), False),
    "three_zero_blocks": (lambda fx: _tar(fx) + H.ZERO_BLOCK,
                          ("trailing data", "end-of-archive marker"), False),
    # gzip wrapping
    "gzip_second_member": (lambda fx: H.gzip_member(_tar(fx)) + H.gzip_member(
        _other_model_entry(fx) + H.END), ("gzip",), False),
    "gzip_trailing_bytes": (lambda fx: H.gzip_member(_tar(fx)) + b"\0" * 8,
                            ("gzip", "trailing data"), False),
    "gzip_empty_second_member": (lambda fx: H.gzip_member(_tar(fx)) + H.gzip_member(b""),
                                 ("gzip",), False),
    "gzip_fname": (lambda fx: H.gzip_member(_tar(fx), header=H.gzip_header(name="a.tar")),
                   ("gzip",), False),
    "gzip_fextra": (lambda fx: H.gzip_member(_tar(fx), header=H.gzip_header(extra=b"AB\0\0")),
                    ("gzip",), False),
    "gzip_fcomment": (lambda fx: H.gzip_member(_tar(fx), header=H.gzip_header(comment="hi")),
                      ("gzip",), False),
    "gzip_fhcrc": (lambda fx: H.gzip_member(_tar(fx), header=H.gzip_header(hcrc=True)),
                   ("gzip",), False),
    "gzip_mtime": (lambda fx: H.gzip_member(_tar(fx), header=H.gzip_header(mtime=fx.mtime)),
                   ("gzip",), False),
    "gzip_xfl": (lambda fx: H.gzip_member(_tar(fx), header=H.gzip_header(xfl=2)),
                 ("gzip",), False),
    "gzip_os": (lambda fx: H.gzip_member(_tar(fx), header=H.gzip_header(os=255)),
                ("gzip",), False),
    "gzip_bad_crc": (lambda fx: (lambda g: g[:-8] + bytes([g[-8] ^ 1]) + g[-7:])(
        H.gzip_member(_tar(fx))), ("gzip", "crc"), False),
    # zstd wrapping
    "zstd_second_frame": (lambda fx: H.zstd_frame(_tar(fx)) + H.zstd_frame(
        _other_model_entry(fx) + H.END), ("zstd",), False),
    "zstd_skippable_frame_before": (lambda fx: H.skippable_frame(b"hi") + H.zstd_frame(_tar(fx)),
                                    ("skippable frame",), False),
    "zstd_skippable_frame_after": (lambda fx: H.zstd_frame(_tar(fx)) + H.skippable_frame(
        b"x" * 100, 15), ("skippable frame",), False),
    "zstd_trailing_bytes": (lambda fx: H.zstd_frame(_tar(fx)) + b"\0" * 8,
                            ("zstd", "trailing data"), False),
    "zstd_no_checksum": (lambda fx: H.zstd_frame(_tar(fx), "--no-check"),
                         ("zstd", "checksum"), False),
    "zstd_dictionary_id": (lambda fx: H.zstd_with_dict_id(H.zstd_frame(_tar(fx))),
                           ("zstd", "dictionary"), False),
    "zstd_window_16_mib": (lambda fx: H.zstd_frame(_tar(fx), "--zstd=wlog=24"),
                           ("zstd", "window"), False),
    # entry types other than '0'
    "old_gnu_sparse_S": (lambda fx: H.archive(_entries(fx, **{HOLES_PATH: lambda p, d:
                         H.old_gnu_sparse_entry(p, d, fx.mtime)})), ("sparse", "type 'S'"), False),
    "pax_gnu_sparse_1_0": (lambda fx: H.archive(_entries(fx, **{HOLES_PATH: lambda p, d:
                           H.pax_sparse_entry(p, d, fx.mtime)})),
                           ("sparse", "pax record 'GNU.sparse"), False),
    "gnu_long_name_L_head": (lambda fx: _insert(fx, "manifest.json", H.gnu_long("manifest.json")),
                             ("GNU long name", "type 'L'"), True),
    "gnu_long_name_L_renames": (lambda fx: _insert(fx, LABELS_PATH, H.gnu_long("files/evil.txt")),
                                ("GNU long name", "type 'L'"), False),
    "gnu_long_link_K": (lambda fx: _insert(fx, LABELS_PATH, H.gnu_long("model.pt", "K")),
                        ("GNU long", "type 'K'"), False),
    "hard_link_1": (lambda fx: _insert(fx, None, H.header("zz-link", 0, fx.mtime, "1",
                    fields={"linkname": b"model.pt"})), ("type '1'", "hard link"), False),
    "symlink_2": (lambda fx: _insert(fx, None, H.header("zz-link", 0, fx.mtime, "2",
                  fields={"linkname": b"/etc/passwd"})), ("type '2'", "symbolic link"), False),
    "directory_5": (lambda fx: _insert(fx, "model.pt", H.header("files/", 0, fx.mtime, "5",
                    mode=b"0000755\0")), ("type '5'", "directory"), False),
    "typeflag_nul_old_regular": (lambda fx: _with(fx, "signature.json", typeflag=b"\0"),
                                 ("type", "typeflag"), True),
    "typeflag_7_contiguous": (lambda fx: _with(fx, "model.pt", typeflag="7"),
                              ("type '7'", "typeflag"), False),
    # pax 'x' headers dlsys does not write
    "pax_path_for_short_name": (lambda fx: _with(fx, LABELS_PATH, pax=[("path", LABELS_PATH)]),
                                ("pax record 'path'", "pax"), False),
    "pax_path_for_short_name_head": (lambda fx: _with(fx, "manifest.json",
                                     pax=[("path", "manifest.json")]), ("pax",), True),
    "pax_path_differs_from_name": (lambda fx: _with(fx, LABELS_PATH,
                                   pax=[("path", "files/other.txt")]), ("pax",), False),
    "pax_size_record_for_small_file": (lambda fx: _with(fx, LABELS_PATH,
                                       pax=[("size", str(len(LABELS)))]),
                                       ("pax record 'size'",), False),
    "pax_schily_xattr": (lambda fx: _with(fx, "model.pt", extra_pax=[(
        "SCHILY.xattr.security.capability", b"\1\0\0\2")]), ("pax record 'SCHILY.xattr",), False),
    "pax_libarchive_record": (lambda fx: _with(fx, "signature.json", extra_pax=[(
        "LIBARCHIVE.creationtime", "1")]), ("pax record 'LIBARCHIVE.",), True),
    "pax_atime_record": (lambda fx: _with(fx, "model.pt", extra_pax=[("atime", "1")]),
                         ("pax record 'atime'",), False),
    "pax_mtime_record": (lambda fx: _with(fx, "model.pt", extra_pax=[("mtime", str(fx.mtime))]),
                         ("pax record 'mtime'",), False),
    "pax_uid_record": (lambda fx: _with(fx, "model.pt", extra_pax=[("uid", "0")]),
                       ("pax record 'uid'",), False),
    "pax_two_headers_in_a_row": (lambda fx: _insert(fx, LABELS_PATH, H.pax_header(
        [("comment", "x")])), ("pax",), False),
    "pax_header_without_entry": (lambda fx: _insert(fx, None, H.pax_header([("comment", "x")])),
                                 ("pax",), False),
    "pax_record_bad_length": (lambda fx: _insert(fx, LABELS_PATH, H.pax_header(
        b"99 path=files/labels.txt\n")), ("pax",), False),
    "pax_header_mode_0644": (lambda fx: _with_long_pax(fx, fields={"mode": b"0000644\0"}),
                             ("header field 'mode'",), False),
    "pax_header_libarchive_name": (lambda fx: _with_long_pax(fx, name="PaxHeader/x"),
                                   ("header field 'name'",), False),
    "pax_header_mtime": (lambda fx: _with_long_pax(fx, fields={"mtime": H.octal(fx.mtime, 12)}),
                         ("header field 'mtime'",), False),
    # mode
    "mode_setuid": (lambda fx: _with(fx, "model.pt", mode=b"0004644\0"), ("header field 'mode'",),
                    False),
    "mode_setgid": (lambda fx: _with(fx, LABELS_PATH, mode=b"0002644\0"), ("header field 'mode'",),
                    False),
    "mode_sticky": (lambda fx: _with(fx, LABELS_PATH, mode=b"0001644\0"), ("header field 'mode'",),
                    False),
    "mode_0755": (lambda fx: _with(fx, "model.pt", mode=b"0000755\0"), ("header field 'mode'",),
                  False),
    "mode_with_nuls": (lambda fx: _with(fx, "manifest.json", mode=b"644\0\0\0\0\0"),
                       ("header field 'mode'",), True),
    "mode_space_terminated": (lambda fx: _with(fx, "signature.json", mode=b"0000644 "),
                              ("header field 'mode'",), True),
    "mode_junk": (lambda fx: _with(fx, "model.pt", mode=b"0000644x"), ("header field 'mode'",),
                  False),
    # owner
    "uid_nonzero": (lambda fx: _with(fx, "model.pt", fields={"uid": b"0001750\0"}),
                    ("header field 'uid'",), False),
    "gid_nonzero": (lambda fx: _with(fx, "manifest.json", fields={"gid": b"0001750\0"}),
                    ("header field 'gid'",), True),
    "uname_root": (lambda fx: _with(fx, LABELS_PATH, fields={"uname": b"root"}),
                   ("header field 'uname'",), False),
    "gname_root": (lambda fx: _with(fx, "signature.json", fields={"gname": b"root"}),
                   ("header field 'gname'",), True),
    # other fields
    "name_junk_after_nul": (lambda fx: _with(fx, "model.pt", raw=[(9, b"junk")]),
                            ("header field 'name'",), False),
    "ustar_prefix_split": (lambda fx: _with(fx, LABELS_PATH, fields={
        "name": b"labels.txt", "prefix": b"files"}),
        ("header field 'prefix'", "header field 'name'"), False),
    "linkname_on_regular_file": (lambda fx: _with(fx, "model.pt", fields={"linkname": b"x"}),
                                 ("header field 'linkname'",), False),
    "gnu_magic": (lambda fx: _with(fx, "manifest.json", fields=dict(H.GNU_MAGIC)),
                  ("header field 'magic'", "header field 'version'"), True),
    "devmajor_nonzero": (lambda fx: _with(fx, "model.pt", fields={"devmajor": b"0000001\0"}),
                         ("header field 'devmajor'",), False),
    "size_base256": (lambda fx: _with(fx, LABELS_PATH, fields={
        "size": b"\x80" + len(LABELS).to_bytes(11, "big")}), ("header field 'size'",), False),
    "size_space_padded": (lambda fx: _with(fx, LABELS_PATH, fields={
        "size": b"%11o " % len(LABELS)}), ("header field 'size'",), False),
    "mtime_base256": (lambda fx: _with(fx, "model.pt", fields={
        "mtime": b"\x80" + fx.mtime.to_bytes(11, "big")}), ("header field 'mtime'",), False),
    "chksum_7_digits": (lambda fx: H.archive(_entries(fx, **{"model.pt": lambda p, d:
                        _rechecksum(H.entry(p, d, fx.mtime), b"%07o\0")})),
                        ("header field 'chksum'",), False),
    "chksum_wrong": (lambda fx: _with(fx, "manifest.json", fields={"chksum": b"000000\0 "}),
                     ("chksum", "checksum"), True),
    "header_tail_bytes": (lambda fx: _with(fx, "model.pt", raw=[(500, b"x")]),
                          ("header",), False),
    # data padding
    "nonzero_data_padding": (lambda fx: _with(fx, LABELS_PATH, padding=b"A"), ("padding",), False),
    "nonzero_manifest_padding": (lambda fx: _with(fx, "manifest.json", padding=b" "),
                                 ("padding",), False),
    # order, duplicates, time
    "payloads_out_of_order": (lambda fx: _swap(fx, HOLES_PATH, LABELS_PATH),
                              (HOLES_PATH, LABELS_PATH, "order"), False),
    "signature_before_manifest": (lambda fx: _swap(fx, "manifest.json", "signature.json"),
                                  ("manifest.json", "first"), True),
    "duplicated_entry": (lambda fx: _insert(fx, "model.pt", H.entry(LABELS_PATH, LABELS,
                                                                    fx.mtime)),
                         ("twice", "duplicate", LABELS_PATH), False),
    "duplicated_manifest": (lambda fx: _insert(fx, "signature.json",
                            H.entry("manifest.json", fx.manifest, fx.mtime)),
                            ("twice", "duplicate", "manifest.json", "signature.json"), True),
    "mtime_not_created": (lambda fx: _with(fx, "model.pt", fields={
        "mtime": H.octal(fx.mtime + 1, 12)}), ("header field 'mtime'",), False),
    "mtime_not_created_head": (lambda fx: _with(fx, "manifest.json", fields={
        "mtime": H.octal(0, 12)}), ("header field 'mtime'",), True),
    # paths a tar reader normalises to a listed one
    "dot_slash_path": (lambda fx: H.archive(_entries(fx, **{"model.pt": lambda p, d:
                       H.entry("./model.pt", d, fx.mtime)})), ("path", "./model.pt"), False),
    "double_slash_path": (lambda fx: H.archive(_entries(fx, **{LABELS_PATH: lambda p, d:
                          H.entry("files//labels.txt", d, fx.mtime)})), ("path", "//"), False),
    "trailing_slash_path": (lambda fx: _insert(fx, None, H.entry("zz/", b"", fx.mtime)),
                            ("path", "zz/"), False),
    "backslash_path": (lambda fx: _insert(fx, None, H.entry("zz\\x", b"", fx.mtime)),
                       ("path", "backslash"), False),
    "non_ascii_path": (lambda fx: _insert(fx, None, H.entry("zz-\u00e9", b"", fx.mtime)),
                       ("path", "ascii", "printable"), False),
}


# Breaks that tar readers read as another valid archive: still exit 5 ("present in the archive
# but not listed") or 4 is fine for these semantics rows.
SEMANTIC = {
    "unlisted_payload_at_the_end": (lambda fx: _insert(fx, None, H.entry("zz-extra.txt", b"x",
                                    fx.mtime)), EXIT_VERIFY_FAILED,
                                    "present in the archive but not listed"),
    "listed_file_missing": (lambda fx: H.canonical([e for e in fx.entries() if e[0] != LABELS_PATH],
                            fx.mtime), EXIT_VERIFY_FAILED, "missing"),
    "wrong_digest": (lambda fx: H.canonical([(p, d if p != LABELS_PATH else d.upper())
                                             for p, d in fx.entries()], fx.mtime),
                     EXIT_VERIFY_FAILED, LABELS_PATH),
}


class HostileCanonical(Base):
    """One test per HOSTILE case (generated below)."""

    def check_hostile(self, name):
        build, keywords, in_head = HOSTILE[name]
        path = self.write(build(self.fx))
        r, report = self.verify(path, timeout=30)
        msgs, rows = self.fail_messages(r, report)
        detail = "%s\nstdout: %s\nstderr: %s" % (name, r.stdout[-2000:], r.stderr[-2000:])
        self.assertEqual(r.returncode, EXIT_INVALID, detail)
        self.assertIsNotNone(report, "verify --json printed no JSON: " + detail)
        self.assertTrue(any(row.get("check") == "archive" for row in rows), detail)
        text = "\n".join(msgs + [r.stderr]).lower()
        self.assertIn("offset", text, detail)
        self.assertTrue(any(k.lower() in text for k in keywords), "want one of %r: %s"
                        % (keywords, detail))
        self.assertEqual(os.listdir(self.dir), ["case.dlsys"], "verify wrote files")
        if in_head:
            r = run("inspect", path, cwd=self.dir, timeout=30)
            self.assertEqual(r.returncode, EXIT_INVALID, "inspect: %s %s" % (r.stdout, r.stderr))
            self.assertEqual(os.listdir(self.dir), ["case.dlsys"], "inspect wrote files")

    def test_every_case_keeps_the_signed_bytes(self):
        # The breaks are in the framing only: the manifest and envelope bytes are all there.
        for name, (build, _, _) in HOSTILE.items():
            data = build(self.fx)
            if data[:2] == b"\x1f\x8b":
                try:
                    stream = zlib.decompressobj(31).decompress(data)  # the first member
                except zlib.error:  # a wrong CRC: the deflate data after the 10-byte header
                    stream = zlib.decompressobj(-15).decompress(data[10:])
            elif H.zstd_frames(data, strict=False):
                f = next(f for f in H.zstd_frames(data, strict=False) if not f["skippable"])
                frame = data[f["offset"]:f["end"]]
                if f["dict_id"] is not None:  # take the inserted dictionary id out again
                    frame = frame[:4] + bytes([frame[4] & ~3]) + frame[5:6] + frame[7:]
                stream = H.unzstd(frame)
            else:
                stream = data
            self.assertIn(self.fx.manifest, stream, name)
            self.assertIn(self.fx.signature, stream, name)
            self.assertNotEqual(data, self.fx.canonical(), name)

    def check_semantic(self, name):
        build, code, phrase = SEMANTIC[name]
        r, report = self.verify(self.write(build(self.fx)))
        msgs, _ = self.fail_messages(r, report)
        self.assertEqual(r.returncode, code, (r.stdout, r.stderr))
        self.assertTrue(any(phrase in m for m in msgs), msgs)


for _name in HOSTILE:
    setattr(HostileCanonical, "test_" + _name,
            lambda self, n=_name: self.check_hostile(n))
for _name in SEMANTIC:
    setattr(HostileCanonical, "test_semantic_" + _name,
            lambda self, n=_name: self.check_semantic(n))


# --- (c) one archive, one meaning ---------------------------------------------------------------

class ReadersAgree(Base):
    def extract_all(self, path):
        """{reader: extraction dir} for GNU tar, bsdtar and Python's tarfile."""
        data = read(path)
        gnu_flag = {b"\x1f\x8b": ["-z"], b"\x28\xb5": ["--zstd"]}.get(data[:2], [])
        out = {}
        for who, cmd in [("gnu tar", ["tar", *gnu_flag, "-xf"]), ("bsdtar", ["bsdtar", "-xf"])]:
            d = os.path.join(self.dir, who.replace(" ", "-"))
            os.mkdir(d)
            r = sh(*cmd, path, "-C", d)
            self.assertEqual(r.returncode, 0, (who, r.stderr))
            out[who] = d
        d = os.path.join(self.dir, "python")
        os.mkdir(d)
        with tarfile.open(fileobj=io.BytesIO(H.decompress(data))) as t:
            t.extractall(d)
        out["python tarfile"] = d
        return out

    def test_every_reader_extracts_exactly_the_manifest(self):
        for name, path in self.fx.archives.items():
            with self.subTest(archive=name):
                manifest, signature, _, _ = self.fx.parts[name]
                r, _ = self.verify(path)
                self.assertEqual(r.returncode, EXIT_OK, (name, r.stdout))
                for who, d in self.extract_all(path).items():
                    self.assert_extracts_manifest(d, manifest, signature, "%s/%s" % (name, who))
            for d in os.listdir(self.dir):
                shutil.rmtree(os.path.join(self.dir, d))


# --- (d) differential ---------------------------------------------------------------------------

def header_offsets(tar):
    """Offsets of every header block (pax and ustar) of a canonical stream."""
    out, pos = [], 0
    while pos + H.BLOCK <= len(tar) and tar[pos:pos + H.BLOCK] != H.ZERO_BLOCK:
        out.append(pos)
        size = int(tar[pos + 124:pos + 135] or b"0", 8)
        pos += H.BLOCK + size + (-size % H.BLOCK)
    return out


def mutate(rng, data, hot, step=H.BLOCK):
    """One random mutation of data: (description, bytes), never equal to data. hot: offsets of
    512-byte regions worth aiming at (tar headers; for a gzip file its header and trailer);
    step: the alignment of inserted blocks."""
    while True:
        kind = rng.choice(["flip_hot", "flip_hot", "flip_any", "truncate", "append", "insert"])
        if kind in ("flip_hot", "flip_any"):
            if kind == "flip_hot":
                pos = min(rng.choice(hot) + rng.randrange(H.BLOCK), len(data) - 1)
            else:
                pos = rng.randrange(len(data))
            bit = rng.randrange(8)
            out = data[:pos] + bytes([data[pos] ^ (1 << bit)]) + data[pos + 1:]
            desc = "flip bit %d at %d (%s)" % (bit, pos, kind)
        elif kind == "truncate":
            n = rng.randrange(len(data))
            out, desc = data[:n], "truncate to %d" % n
        elif kind == "append":
            what = rng.choice(["random", "zero blocks", "copy"])
            if what == "random":
                extra = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 1500)))
            elif what == "zero blocks":
                extra = H.ZERO_BLOCK * rng.randrange(1, 4)
            else:
                h = rng.choice(hot)
                extra = data[h:h + H.BLOCK * rng.randrange(1, 4)]
            out, desc = data + extra, "append %d bytes (%s)" % (len(extra), what)
        else:
            at = rng.randrange(len(data) // step + 1) * step
            what = rng.choice(["zero", "random", "copy"])
            block = {"zero": H.ZERO_BLOCK,
                     "random": bytes(rng.randrange(256) for _ in range(H.BLOCK)),
                     "copy": data[rng.choice(hot):][:H.BLOCK]}[what]
            out, desc = data[:at] + block + data[at:], "insert %s block at %d" % (what, at)
        if out != data:
            return desc, out


class Differential(Base):
    MUTANTS = 300
    SEED = 20260101

    def test_whatever_verify_accepts_gnu_tar_reads_as_the_manifest_says(self):
        rng = random.Random(self.SEED)
        tar = read(self.fx.archives["none"])
        gz = read(self.fx.archives["gzip"])
        gz_tar = H.decompress(gz)
        problems, accepted, codes = [], 0, {}
        for i in range(self.MUTANTS):
            if i % 2 == 0:
                desc, data = mutate(rng, tar, header_offsets(tar))
                inner, label = data, "none"
            elif i % 6 == 1:  # the compressed bytes themselves
                desc, data = mutate(rng, gz, [0, len(gz) - 8], step=1)
                inner, label = None, "gzip bytes"
            else:  # the tar inside, recompressed canonically
                desc, inner = mutate(rng, gz_tar, header_offsets(gz_tar))
                data, label = H.gzip_member(inner), "gzip tar"
            case = "#%d %s: %s" % (i, label, desc)
            path = self.write(data, "m.dlsys")
            start = time.monotonic()
            try:
                r = run("verify", path, "--trust", self.fx.pub, cwd=self.dir, timeout=10)
            except subprocess.TimeoutExpired:
                problems.append(case + ": verify took over 10 s")
                continue
            elapsed = time.monotonic() - start
            codes[r.returncode] = codes.get(r.returncode, 0) + 1
            if r.returncode not in (EXIT_OK, EXIT_INVALID, EXIT_VERIFY_FAILED):
                problems.append("%s: exit %d %s" % (case, r.returncode, r.stderr[-300:]))
            if elapsed > 10:
                problems.append("%s: %.1f s" % (case, elapsed))
            if os.listdir(self.dir) != ["m.dlsys"]:
                problems.append(case + ": verify wrote files")
            if r.returncode == EXIT_OK:
                accepted += 1
                # The canonical form is unique: an accepted tar stream is the original one.
                if label != "gzip bytes" and inner != (tar if label == "none" else gz_tar):
                    problems.append(case + ": verify accepted a non-canonical tar stream")
                original = "none" if label == "none" else "gzip"
                problems += self.gnu_tar_disagrees(path, case, original)
            for n in os.listdir(self.dir):
                p = os.path.join(self.dir, n)
                shutil.rmtree(p) if os.path.isdir(p) else os.remove(p)
        print("\ndifferential: %d mutants, exit codes %s, %d accepted" % (
            self.MUTANTS, dict(sorted(codes.items())), accepted), file=sys.stderr)
        if problems:
            self.fail("%d problems:\n" % len(problems) + "\n".join(problems))

    def gnu_tar_disagrees(self, path, case, original):
        d = os.path.join(self.dir, "x")
        os.mkdir(d)
        r = sh("tar", *(["-z"] if original == "gzip" else []), "-xf", path, "-C", d)
        if r.returncode != 0:
            return ["%s: accepted, but GNU tar fails: %s" % (case, r.stderr[-300:])]
        manifest, signature, _, _ = self.fx.parts[original]
        try:
            self.assert_extracts_manifest(d, manifest, signature, case)
        except AssertionError as e:
            return ["%s: accepted, but GNU tar extracts something else: %s" % (case, e)]
        return []


# --- the generator itself (needs only the tar tools) --------------------------------------------

class Generator(unittest.TestCase):
    FILES = [("manifest.json", b'{"a":1}'), ("signature.json", b"{}"), ("a" * 100, b"x" * 512),
             ("b/" * 60 + "c", b"y" * 513), ("e", b""),
             (("d" * 200 + "/") * 5 + "f" * 19, os.urandom(3000)),  # 1024 bytes
             ("files/z.bin", HOLES)]
    MTIME = EPOCH

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="dlsys-gen-")

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def python_pax(self, files, mtime):
        bio = io.BytesIO()
        with tarfile.open(fileobj=bio, mode="w", format=tarfile.PAX_FORMAT) as t:
            for p, d in files:
                ti = tarfile.TarInfo(p)
                ti.size, ti.mtime, ti.mode, ti.uid, ti.gid, ti.uname, ti.gname = \
                    len(d), mtime, 0o644, 0, 0, "", ""
                t.addfile(ti, io.BytesIO(d))
        return bio.getvalue()

    @staticmethod
    def with_devnumbers(tar):
        """The canonical form leaves devmajor/devminor NUL, as Python 3.11's tarfile does for
        non-device entries; older Pythons wrote "0000000\\0": normalise those."""
        tar = bytearray(tar)
        for pos in range(0, len(tar), H.BLOCK):
            h = tar[pos:pos + H.BLOCK]
            if h[257:263] == b"ustar\0" and h[329:345] == b"0000000\0" * 2:
                h[329:345] = bytes(16)
                h[148:156] = b"%06o\0 " % H.checksum(h)
                tar[pos:pos + H.BLOCK] = h
        return bytes(tar)

    def test_canonical_equals_python_pax_without_the_record_padding(self):
        ours = H.canonical(self.FILES, self.MTIME)
        theirs = self.with_devnumbers(self.python_pax(self.FILES, self.MTIME))
        self.assertEqual(len(theirs) % 10240, 0)
        self.assertEqual(theirs[:len(ours)], ours, describe_diff(theirs, ours))
        self.assertEqual(set(theirs[len(ours):]), {0} if len(theirs) > len(ours) else set())
        self.assertEqual(ours[-1024:], H.END)

    def test_headers_for_huge_sizes_equal_python(self):
        for name, size in [("big", 8 ** 11 - 1), ("big", 8 ** 11), ("b" * 150, 2 ** 40 + 3)]:
            ti = tarfile.TarInfo(name)
            ti.size, ti.mtime, ti.mode = size, self.MTIME, 0o644
            theirs = self.with_devnumbers(ti.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape"))
            self.assertEqual(H.entry_header(name, size, self.MTIME), theirs, (name, size))

    def test_field_layout(self):
        h = H.header("p", 5, 7)
        self.assertEqual(h[100:108], b"0000644\0")
        self.assertEqual(h[124:136], b"00000000005\0")
        self.assertEqual(h[136:148], b"00000000007\0")
        self.assertEqual(int(h[148:154], 8), H.checksum(h))
        self.assertEqual(h[154:156], b"\0 ")
        self.assertEqual(h[257:265], b"ustar\x0000")
        for n in range(80, 1100):  # the length prefix is self-inclusive across digit changes
            record = H.pax_record("path", "x" * n)
            length, _, rest = record.partition(b" ")
            self.assertEqual(int(length), len(record), n)
            self.assertEqual(rest, b"path=" + b"x" * n + b"\n")
        self.assertEqual(H.pax_record("path", "x" * 91), b"101 path=" + b"x" * 91 + b"\n")

    def archive_file(self, data, name="a.tar"):
        path = os.path.join(self.dir, name)
        write(path, data)
        return path

    def extract(self, tool, path, *flags):
        d = tempfile.mkdtemp(dir=self.dir)
        cmd = {"gnu": ["tar", *flags, "-xf"], "bsd": ["bsdtar", *flags, "-xf"]}[tool]
        r = sh(*cmd, path, "-C", d)
        self.assertEqual(r.returncode, 0, (tool, r.stderr))
        return walk(d)

    def test_every_reader_reads_canonical_output(self):
        tar = H.canonical(self.FILES, self.MTIME)
        want = dict(self.FILES)
        wrapped = {"none": (tar, []), "gzip": (H.gzip_member(tar), ["-z"]),
                   "zstd": (H.zstd_frame(tar), ["--zstd"])}
        for comp, (data, gnu_flags) in wrapped.items():
            path = self.archive_file(data, comp + ".tar")
            for tool, flags in [("gnu", gnu_flags), ("bsd", [])]:
                files, others = self.extract(tool, path, *flags)
                self.assertEqual((files, others), (want, []), (comp, tool))
            r = sh("tar", *gnu_flags, "-tvf", path)  # GNU tar warns on anything odd
            self.assertEqual((r.returncode, r.stderr), (0, b""), comp)
            with tarfile.open(fileobj=io.BytesIO(H.decompress(data))) as t:
                ms = t.getmembers()
                self.assertEqual([m.name for m in ms], [p for p, _ in self.FILES])
                for m in ms:
                    self.assertEqual((m.mode, m.uid, m.gid, m.uname, m.gname, m.mtime, m.type),
                                     (0o644, 0, 0, "", "", self.MTIME, tarfile.REGTYPE))
                    self.assertEqual(t.extractfile(m).read(), want[m.name])
                    self.assertEqual(m.pax_headers, {"path": m.name} if len(m.name) > 100 else {})

    def test_compression_wrappers(self):
        tar = H.canonical(self.FILES, self.MTIME)
        g = H.gzip_member(tar)
        self.assertEqual(g[:10], H.GZIP_HEADER)
        c = __import__("zlib").compressobj(6, 8, 31)
        self.assertEqual(g, c.compress(tar) + c.flush())
        self.assertEqual(sh("gzip", "-t", input=g).returncode, 0)
        z = H.zstd_frame(tar)
        (f,) = H.zstd_frames(z)
        self.assertEqual((f["checksum"], f["dict_id"], f["end"]), (True, None, len(z)))
        self.assertLessEqual(f["window"], 8 << 20)
        self.assertEqual(sh("zstd", "-t", "-q", input=z).returncode, 0)
        self.assertEqual(H.decompress(z), tar)
        self.assertGreater(H.zstd_frames(H.zstd_frame(tar, "--zstd=wlog=24"))[0]["window"], 8 << 20)
        self.assertFalse(H.zstd_frames(H.zstd_frame(tar, "--no-check"))[0]["checksum"])
        self.assertEqual(H.zstd_frames(H.zstd_with_dict_id(z))[0]["dict_id"], 1)
        frames = H.zstd_frames(H.skippable_frame(b"a") + z + H.skippable_frame(b"", 15))
        self.assertEqual([x["skippable"] for x in frames], [True, False, True])
        for hdr in [H.gzip_header(name="n"), H.gzip_header(extra=b"AB\0\0"),
                    H.gzip_header(comment="c"), H.gzip_header(hcrc=True, mtime=5, xfl=2, os=255)]:
            gz = H.gzip_member(tar, header=hdr)
            self.assertEqual(H.gunzip_members(gz)[0][1], tar)
            self.assertEqual(sh("gzip", "-t", input=gz).returncode, 0)
        self.assertEqual(len(H.gunzip_members(H.gzip_member(tar) + H.gzip_member(b"x"))), 2)

    # The hostile knobs mean what they claim to real readers.

    def test_gnu_tar_honours_hostile_encodings(self):
        m = self.MTIME
        base = [H.entry("model.pt", b"good", m)]
        cases = {
            # a global path= renames the next entry in GNU tar
            "global path": (base + [H.pax_header([("path", "model.pt")], typeflag="g"),
                                    H.entry("zz-other.pt", b"evil", m)], {"model.pt": b"evil"},
                            []),
            "L header": ([H.gnu_long("files/evil.txt"), H.entry("x", b"evil", m)],
                         {"files/evil.txt": b"evil"}, []),
            "pax path differs": ([H.entry("x", b"evil", m, pax=[("path", "files/evil.txt")])],
                                 {"files/evil.txt": b"evil"}, []),
            "ustar prefix": ([H.entry("a", b"evil", m, fields={"name": b"b", "prefix": b"a"})],
                             {"a/b": b"evil"}, []),
            "entry after the marker": ([H.archive(base) + H.entry("model.pt", b"evil", m)],
                                       {"model.pt": b"evil"}, ["-i"]),
            "old GNU sparse": ([H.old_gnu_sparse_entry("s.bin", HOLES, m)], {"s.bin": HOLES}, []),
            "pax sparse 1.0": ([H.pax_sparse_entry("s.bin", HOLES, m)], {"s.bin": HOLES}, []),
            "dot slash": ([H.entry("./model.pt", b"evil", m)], {"model.pt": b"evil"}, []),
        }
        for name, (parts, want, flags) in cases.items():
            path = self.archive_file(H.archive(parts), name.replace(" ", "_") + ".tar")
            files, _ = self.extract("gnu", path, *flags)
            self.assertEqual(files, want, name)
        self.assertGreater(len(H.sparse_chunks(HOLES)), 1)
        self.assertLess(len(H.old_gnu_sparse_entry("s", HOLES, m)), len(H.entry("s", HOLES, m)))
        # a second gzip member / zstd frame holding another entry: read by tar -i
        gz = H.gzip_member(H.archive(base)) + H.gzip_member(H.entry("model.pt", b"evil", m) + H.END)
        files, _ = self.extract("gnu", self.archive_file(gz, "two.tgz"), "-z", "-i")
        self.assertEqual(files, {"model.pt": b"evil"})
        zs = H.zstd_frame(H.archive(base)) + H.zstd_frame(H.entry("model.pt", b"evil", m) + H.END)
        files, _ = self.extract("gnu", self.archive_file(zs, "two.tzst"), "--zstd", "-i")
        self.assertEqual(files, {"model.pt": b"evil"})

    def test_python_and_bsdtar_read_sparse_as_the_logical_bytes(self):
        for build in (H.old_gnu_sparse_entry, H.pax_sparse_entry):
            path = self.archive_file(H.archive([build("s.bin", HOLES, self.MTIME)]))
            self.assertEqual(self.extract("bsd", path)[0], {"s.bin": HOLES}, build.__name__)
            with tarfile.open(path) as t:
                self.assertEqual(t.extractfile("s.bin").read(), HOLES, build.__name__)


if __name__ == "__main__":
    unittest.main(verbosity=2)
