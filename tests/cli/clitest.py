"""Helpers for CLI tests: run the real dlsys binary, build fixtures, validate JSON."""
import io
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
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
    if not MAKE_MODEL:
        raise unittest.SkipTest("make_model is not built (DLSYS_WITH_RUNTIME=OFF)")
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


def write_tar(path, members, fmt=tarfile.PAX_FORMAT):
    """Writes [(TarInfo, bytes)] as an uncompressed tar, in order, exactly as given."""
    with tarfile.open(path, "w", format=fmt) as t:
        for info, data in members:
            if info.isfile():
                info.size = len(data)
                t.addfile(info, io.BytesIO(data))
            else:
                t.addfile(info)


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
