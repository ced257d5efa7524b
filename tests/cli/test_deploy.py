"""dlsys deploy through the real binary: push/list/show/remove, every rollout strategy and its
refusals, status and history (text and --json against schemas/deploy-output.schema.json),
hostile strings, no libtorch, and crash safety: SIGKILL at every crash point and at random
times, and concurrent changes."""
import json
import os
import random
import shutil
import signal
import sys
import tempfile
import textwrap
import time
import unittest

import jsonschema

sys.path.insert(0, os.path.dirname(__file__))
from clitest import (EXIT_INVALID, EXIT_NOT_FOUND, EXIT_OK, EXIT_USAGE,  # noqa: E402
                     EXIT_VERIFY_FAILED, SCHEMAS, TempDirTest, load_schema, make_model, run,
                     start, validate)

SPEC = """\
    name: iris
    version: {version}
    description: "{description}"
    requirements:
      device: cpu
      min_memory: 64 MiB
    inputs:
      - {{name: x, dtype: float32, shape: [-1, 16]}}
    outputs:
      - {{name: y, dtype: float32, shape: [-1, 4]}}
    examples:
      - name: one
        inputs:
          x: {{data: [[1, 2, 3, 4, 5, 6, 7, 8, -1, -2, -3, -4, 0.5, 0.25, 0, 1]]}}
    """

FIX = {}  # archives and keys, packed once per module


def pack(version, key, description="iris classifier", tag=""):
    d = FIX["dir"]
    spec = os.path.join(d, "iris-%s%s.yaml" % (version, tag))
    with open(spec, "w") as f:
        f.write(textwrap.dedent(SPEC).format(version=version, description=description))
    out = os.path.join(d, "iris-%s%s.dlsys" % (version, tag))
    r = run("pack", FIX["model"], "--spec", spec, "--key", key, "-o", out, "--force")
    if r.returncode != EXIT_OK:
        raise RuntimeError("pack failed: " + r.stderr)
    return out


def setUpModule():
    d = FIX["dir"] = tempfile.mkdtemp(prefix="dlsys-deploy-cache-")
    FIX["model"] = make_model("mlp16", os.path.join(d, "mlp16.pt"))
    for name in ("release", "other"):
        key = os.path.join(d, name + ".key")
        r = run("keygen", "--out", key)
        if r.returncode != EXIT_OK:
            raise RuntimeError("keygen failed: " + r.stderr)
        FIX[name] = key
    FIX["pub"] = FIX["release"] + ".pub"
    for v in ("1.0.0", "1.1.0", "1.2.0"):
        FIX[v] = pack(v, FIX["release"])
    # Same name and version, other bytes: a conflict.
    FIX["1.0.0-other-bytes"] = pack("1.0.0", FIX["release"], "rebuilt", tag="-rebuilt")
    # Signed, but by a key nobody trusts.
    FIX["untrusted"] = pack("1.3.0", FIX["other"], tag="-untrusted")


def tearDownModule():
    shutil.rmtree(FIX["dir"], ignore_errors=True)


def validate_def(instance, name):
    """Validates against one $def of deploy-output.schema.json (and the whole schema)."""
    validate(instance, "deploy-output.schema.json")
    store = {}
    for fn in os.listdir(SCHEMAS):
        if fn.endswith(".json"):
            s = load_schema(fn)
            store[s["$id"]] = s
    wrapper = {"$schema": "https://json-schema.org/draft/2020-12/schema",
               "$id": "https://dlsys.dev/schemas/deploy-test-wrapper.json",
               "$ref": "deploy-output.schema.json#/$defs/" + name}
    resolver = jsonschema.RefResolver.from_schema(wrapper, store=store)
    jsonschema.Draft202012Validator(wrapper, resolver=resolver).validate(instance)


class DeployTest(TempDirTest):
    def setUp(self):
        super().setUp()
        self.reg = self.path("registry")

    def deploy(self, *args, reg=None, env=None):
        return run("deploy", "--registry", reg or self.reg, *args, env=env)

    def ok(self, *args, reg=None, env=None):
        r = self.deploy(*args, reg=reg, env=env)
        self.assertEqual(r.returncode, EXIT_OK, "deploy %s: %s" % (" ".join(args), r.stderr))
        return r

    def refused(self, code, *args, reg=None, says=None):
        """The command fails with `code`, says `says` on stderr and changes nothing."""
        before = self.snapshot(reg)
        r = self.deploy(*args, reg=reg)
        self.assertEqual(r.returncode, code, "deploy %s: %s%s" % (" ".join(args), r.stdout,
                                                                   r.stderr))
        # "dlsys: error:" from the command, "dlsys: usage error:" from the option parser.
        self.assertRegex(r.stderr, r"^dlsys: (usage )?error: ")
        if says:
            self.assertIn(says, r.stderr)
        self.assertEqual(self.snapshot(reg), before, "a refused command changed the registry")
        # --json: the error object on stdout.
        r = self.deploy(*args, "--json", reg=reg)
        self.assertEqual(r.returncode, code)
        err = json.loads(r.stdout)
        validate(err, "deploy-output.schema.json")
        self.assertEqual((err["ok"], err["exit_code"]), (False, code))
        return r

    def json_of(self, *args, reg=None, schema_def=None):
        r = self.ok(*args, "--json", reg=reg)
        out = json.loads(r.stdout)
        if schema_def:
            validate_def(out, schema_def)
        return out

    def snapshot(self, reg=None):
        """The registry as the commands show it, without what differs between two copies of
        it or two runs of one command (the directory, times)."""
        reg = reg or self.reg
        if not os.path.exists(os.path.join(reg, "registry.json")) and not os.path.isdir(reg):
            return None
        out = {}
        for cmd in ("status", "list", "history"):
            r = run("deploy", "--registry", reg, cmd, "--json")
            self.assertEqual(r.returncode, EXIT_OK, "%s: %s" % (cmd, r.stderr))
            j = json.loads(r.stdout)
            j.pop("registry")
            for v in j.get("versions", []):
                v.pop("pushed_at")
            for e in j.get("entries", []):
                e.pop("time")
            out[cmd] = j
        return out

    def push(self, *versions, reg=None):
        for v in versions:
            self.ok("push", FIX[v], "--trust", FIX["pub"], reg=reg)

    def route(self, env="production", model="iris", reg=None):
        status = self.json_of("status", reg=reg, schema_def="status")
        for e in status["environments"]:
            for m in e["models"]:
                if (e["env"], m["model"]) == (env, model):
                    return m["route"]
        return None


class Help(DeployTest):
    def test_help_teaches(self):
        r = run("deploy", "--help")
        self.assertEqual(r.returncode, EXIT_OK)
        for text in ("push", "list", "show", "remove", "promote", "finalize", "rollback",
                     "status", "history", "--registry", "DLSYS_REGISTRY", "Examples:",
                     "--strategy canary --weight 10"):
            self.assertIn(text, r.stdout)
        for sub in ("push", "list", "show", "remove", "promote", "finalize", "rollback",
                    "status", "history"):
            r = run("deploy", sub, "--help")
            self.assertEqual(r.returncode, EXIT_OK, sub)
            self.assertIn("Examples:", r.stdout, sub)
            self.assertIn("Exit codes:", r.stdout, sub)
            self.assertIn("--json", r.stdout, sub)
        r = run("deploy", "promote", "--help")
        for s in ("replace", "canary", "ab", "shadow", "blue-green", "--weight", "--step",
                  "--key", "--sample", "--reason"):
            self.assertIn(s, r.stdout)

    def test_usage_errors(self):
        r = run("deploy")
        self.assertEqual(r.returncode, EXIT_USAGE)
        r = run("deploy", "--registry", "", "list")
        self.assertEqual(r.returncode, EXIT_USAGE)
        self.assertIn("empty value", r.stderr)
        r = run("deploy", "--registry", self.reg, "promote", "iris", "1.0.0", "--env",
                "production", "--strategy", "linear")
        self.assertEqual(r.returncode, EXIT_USAGE)
        r = run("deploy", "--registry", self.reg, "promote", "iris", "1.0.0", "--json")
        self.assertEqual(r.returncode, EXIT_USAGE)  # --env is required
        validate(json.loads(r.stdout), "deploy-output.schema.json")


class Push(DeployTest):
    def test_push_noop_and_conflict(self):
        r = self.ok("push", FIX["1.0.0"], "--trust", FIX["pub"])
        self.assertRegex(r.stdout, r"^pushed iris 1\.0\.0 sha256:[0-9a-f]{12}\u2026 \([0-9.]+ "
                                   r"(B|KiB|MiB)\)\n$")
        blobs = os.path.join(self.reg, "blobs", "sha256")
        self.assertEqual(len(os.listdir(blobs)), 1)
        # The same bytes again: a no-op, no history line.
        r = self.ok("push", FIX["1.0.0"], "--trust", FIX["pub"])
        self.assertRegex(r.stdout, r"^iris 1\.0\.0 already stored \(sha256:[0-9a-f]{12}\u2026\)\n$")
        out = self.json_of("push", FIX["1.0.0"], "--trust", FIX["pub"], schema_def="push")
        self.assertEqual(out["pushed"][0]["stored"], False)
        digest = out["pushed"][0]["digest"]
        self.assertEqual(len(self.json_of("history", schema_def="history")["entries"]), 1)
        # The same version, other bytes: refused, both digests named, nothing changed.
        r = self.refused(EXIT_USAGE, "push", FIX["1.0.0-other-bytes"], "--trust", FIX["pub"],
                         says=digest)
        self.assertIn("new version", r.stderr)
        self.assertIn("1.0.0", r.stderr)
        self.assertEqual(len(os.listdir(blobs)), 1)
        listed = self.json_of("list", schema_def="list")["versions"]
        self.assertEqual([(v["version"], v["digest"]) for v in listed], [("1.0.0", digest)])

    def test_push_several_and_json(self):
        out = self.json_of("push", FIX["1.0.0"], FIX["1.1.0"], "--trust", FIX["pub"],
                           schema_def="push")
        self.assertEqual([(p["name"], p["version"], p["stored"]) for p in out["pushed"]],
                         [("iris", "1.0.0", True), ("iris", "1.1.0", True)])
        p = out["pushed"][0]
        self.assertEqual(p["size"], os.path.getsize(FIX["1.0.0"]))
        self.assertEqual(p["compression"], "none")
        self.assertRegex(p["signer"], "^[0-9a-f]{64}$")
        self.assertEqual(out["registry"], self.reg)
        # Stored read-only, named by the digest of the bytes.
        import hashlib
        with open(FIX["1.0.0"], "rb") as f:
            self.assertEqual(p["digest"], "sha256:" + hashlib.sha256(f.read()).hexdigest())
        blob = os.path.join(self.reg, "blobs", "sha256", p["digest"][7:])
        self.assertEqual(os.stat(blob).st_mode & 0o777, 0o444)

    def test_push_refusals_leave_registry_unchanged(self):
        self.push("1.0.0")
        blobs = os.path.join(self.reg, "blobs", "sha256")
        before = sorted(os.listdir(blobs))
        self.refused(EXIT_USAGE, "push", FIX["1.1.0"], says="no trusted key")
        self.refused(EXIT_VERIFY_FAILED, "push", FIX["untrusted"], "--trust", FIX["pub"],
                     says="not trusted")
        self.refused(EXIT_NOT_FOUND, "push", self.path("missing.dlsys"), "--trust", FIX["pub"])
        self.refused(EXIT_NOT_FOUND, "push", FIX["1.1.0"], "--trust", self.path("none.pub"))
        broken = self.path("broken.dlsys")
        with open(FIX["1.1.0"], "rb") as f:
            data = f.read()
        with open(broken, "wb") as f:
            f.write(data[: len(data) // 2])
        self.refused(EXIT_INVALID, "push", broken, "--trust", FIX["pub"])
        self.assertEqual(sorted(os.listdir(blobs)), before, "a refused push left a file")
        # --allow-unsigned accepts the untrusted signature (development).
        self.ok("push", FIX["untrusted"], "--allow-unsigned")

    def test_registry_from_environment(self):
        reg = self.path("from-env")
        r = run("deploy", "push", FIX["1.0.0"], "--trust", FIX["pub"],
                env={"DLSYS_REGISTRY": reg})
        self.assertEqual(r.returncode, EXIT_OK, r.stderr)
        self.assertTrue(os.path.isfile(os.path.join(reg, "registry.json")))
        r = run("deploy", "list", "--json", env={"DLSYS_REGISTRY": reg})
        self.assertEqual(json.loads(r.stdout)["registry"], reg)
        self.assertEqual(len(json.loads(r.stdout)["versions"]), 1)
        # --registry wins over the environment, before or after the subcommand.
        r = run("deploy", "list", "--registry", self.path("empty"), "--json",
                env={"DLSYS_REGISTRY": reg})
        self.assertEqual(r.returncode, EXIT_NOT_FOUND, r.stdout)
        self.assertIn("empty", r.stderr)
        # Reading a registry that does not exist does not create it.
        self.assertFalse(os.path.exists(self.path("empty")))


class ListShow(DeployTest):
    def test_list_and_show(self):
        self.push("1.2.0", "1.0.0", "1.1.0")
        self.ok("promote", "iris", "1.0.0", "--env", "production")
        self.ok("promote", "iris", "1.1.0", "--env", "production", "--strategy", "canary",
                "--weight", "10")
        r = self.ok("list")
        lines = r.stdout.splitlines()
        self.assertEqual(lines[0].split(), ["NAME", "VERSION", "DIGEST", "SIZE", "PUSHED",
                                            "SIGNER", "ENVIRONMENTS"])
        self.assertEqual([ln.split()[1] for ln in lines[1:]], ["1.0.0", "1.1.0", "1.2.0"])
        self.assertTrue(lines[1].endswith("production:stable"), lines[1])
        self.assertTrue(lines[2].endswith("production:canary"), lines[2])
        self.assertTrue(lines[3].endswith("-"), lines[3])
        self.assertRegex(lines[1].split()[2], "^[0-9a-f]{12}$")
        out = self.json_of("list", "iris", schema_def="list")
        self.assertEqual([v["environments"] for v in out["versions"]],
                         [[{"env": "production", "arm": "stable"}],
                          [{"env": "production", "arm": "canary"}], []])
        self.refused(EXIT_NOT_FOUND, "list", "nosuch")

        r = self.ok("show", "iris@1.1.0")
        for text in ("iris 1.1.0\n", "iris classifier", "x float32 [-1, 16]",
                     "y float32 [-1, 4]", "min_memory", "production:canary", "by "):
            self.assertIn(text, r.stdout)
        out = self.json_of("show", "iris", schema_def="show")
        self.assertEqual([v["version"] for v in out["versions"]], ["1.0.0", "1.1.0", "1.2.0"])
        m = out["versions"][0]["manifest"]
        self.assertEqual(m["description"], "iris classifier")
        self.assertEqual(m["inputs"], [{"name": "x", "dtype": "float32", "shape": [-1, 16]}])
        self.assertEqual(m["requirements"]["device"], "cpu")
        self.refused(EXIT_NOT_FOUND, "show", "iris@9.9.9")
        self.refused(EXIT_USAGE, "show", "iris@")

    def test_empty_registry(self):
        self.ok("push", FIX["1.0.0"], "--trust", FIX["pub"])
        self.ok("remove", "iris@1.0.0")
        self.assertIn("no archive is stored", self.ok("list").stdout)
        self.assertIn("no environment routes anything", self.ok("status").stdout)
        self.refused(EXIT_NOT_FOUND, "status", reg=self.path("nowhere"))


class Strategies(DeployTest):
    def promote(self, version, *args, env="production"):
        return self.ok("promote", "iris", version, "--env", env, *args)

    def test_every_strategy_and_refusal(self):
        self.push("1.0.0", "1.1.0", "1.2.0")
        self.refused(EXIT_USAGE, "promote", "iris", "1.1.0", "--env", "production",
                     "--strategy", "canary", "--weight", "10")  # nothing stable yet
        self.refused(EXIT_NOT_FOUND, "promote", "iris", "9.9.9", "--env", "production")
        self.refused(EXIT_USAGE, "promote", "iris", "1.0.0", "--env", "Production")
        r = self.promote("1.0.0")
        self.assertEqual(r.stdout, "production: iris 1.0.0 (stable, 100%)\n")
        self.refused(EXIT_USAGE, "promote", "iris", "1.0.0", "--env", "production")

        # canary: weight, step, one candidate at a time, flags that do not apply.
        r = self.promote("1.1.0", "--strategy", "canary", "--weight", "10")
        self.assertEqual(r.stdout, "production: iris 1.0.0 (stable, 90%) + 1.1.0 (canary, 10%)\n")
        self.refused(EXIT_USAGE, "promote", "iris", "1.2.0", "--env", "production",
                     "--strategy", "canary", "--weight", "5", says="1.1.0")
        self.refused(EXIT_USAGE, "promote", "iris", "1.2.0", "--env", "production",
                     "--strategy", "canary", "--step", "5")
        self.refused(EXIT_USAGE, "promote", "iris", "1.1.0", "--env", "production",
                     "--strategy", "canary")
        self.refused(EXIT_USAGE, "promote", "iris", "1.1.0", "--env", "production",
                     "--strategy", "canary", "--weight", "101")
        self.refused(EXIT_USAGE, "promote", "iris", "1.1.0", "--env", "production",
                     "--strategy", "canary", "--weight", "10", "--key", "x-user",
                     says="--key")
        out = self.json_of("promote", "iris", "1.1.0", "--env", "production", "--strategy",
                           "canary", "--step", "40", schema_def="routed")
        self.assertEqual((out["route"]["strategy"], out["route"]["weight"]), ("canary", 50))
        self.assertEqual(self.route()["candidate"], "1.1.0")
        r = self.ok("status")
        self.assertEqual(r.stdout.splitlines()[1].split(),
                         ["production", "iris", "canary", "1.0.0", "1.1.0", "50%", "-", "-",
                          "1.0.0"])
        r = self.ok("finalize", "iris", "--env", "production")
        self.assertEqual(r.stdout, "production: iris 1.1.0 (stable, 100%)\n"
                                   "  rollback target: 1.0.0 (dlsys deploy rollback iris "
                                   "--env production)\n")
        self.refused(EXIT_USAGE, "finalize", "iris", "--env", "production")

        # ab: sticky by a header (stored lower-case); rollback drops the candidate.
        self.refused(EXIT_USAGE, "promote", "iris", "1.2.0", "--env", "production",
                     "--strategy", "ab", "--weight", "50")  # no --key
        r = self.promote("1.2.0", "--strategy", "ab", "--weight", "50", "--key", "X-User")
        self.assertEqual(r.stdout, "production: iris 1.1.0 (stable, 50%) + 1.2.0 (canary, 50%), "
                                   "sticky by header 'x-user'\n")
        self.assertEqual(self.route()["key"], "x-user")
        r = self.ok("rollback", "iris", "--env", "production")
        self.assertTrue(r.stdout.startswith("production: iris 1.1.0 (stable, 100%)\n"), r.stdout)
        route = self.route()
        self.assertEqual((route["strategy"], route["stable"], route["candidate"]),
                         ("replace", "1.1.0", ""))

        # shadow: sampled, answers only logged; finalize makes it stable.
        r = self.promote("1.2.0", "--strategy", "shadow", "--sample", "0.25")
        self.assertEqual(r.stdout, "production: iris 1.1.0 (stable, 100%) + 1.2.0 (shadow, 25% "
                                   "of requests mirrored, answers only logged)\n")
        self.assertEqual(self.route()["sample"], 0.25)
        self.ok("finalize", "iris", "--env", "production")
        self.assertEqual(self.route()["stable"], "1.2.0")

        # blue-green: the old stable stays warm; rollback switches back; finalize releases it.
        r = self.promote("1.0.0", "--strategy", "blue-green")
        self.assertTrue(r.stdout.startswith("production: iris 1.0.0 (stable, 100%) + 1.2.0 "
                                            "(standby, warm)\n"), r.stdout)
        self.assertEqual(self.ok("status").stdout.splitlines()[1].split()[4:6],
                         ["1.2.0", "(standby)"])
        out = self.json_of("rollback", "iris", "--env", "production", schema_def="routed")
        self.assertEqual((out["route"]["stable"], out["route"]["standby"]), ("1.2.0", ""))
        self.promote("1.0.0", "--strategy", "blue-green")
        out = self.json_of("finalize", "iris", "--env", "production", schema_def="routed")
        self.assertEqual((out["route"]["strategy"], out["route"]["stable"],
                          out["route"]["standby"]), ("replace", "1.0.0", ""))

        # replace: rollback walks back through the earlier stables.
        route = self.route()
        back = route["rollback_to"]
        self.assertEqual(back, route["previous"][-1])
        out = self.json_of("rollback", "iris", "--env", "production", schema_def="routed")
        self.assertEqual(out["route"]["stable"], back)

        # Environments are independent.
        self.promote("1.1.0", env="staging")
        status = self.json_of("status", schema_def="status")
        self.assertEqual([e["env"] for e in status["environments"]], ["production", "staging"])
        only = self.json_of("status", "--env", "staging", schema_def="status")
        self.assertEqual([e["env"] for e in only["environments"]], ["staging"])

        history = self.json_of("history", schema_def="history")["entries"]
        self.assertEqual([e["seq"] for e in history], list(range(1, len(history) + 1)))
        self.assertEqual([e["action"] for e in history[:5]],
                         ["push", "push", "push", "promote", "promote"])
        self.assertEqual(history[4]["from"]["stable"], "1.0.0")
        self.assertEqual(history[4]["to"]["candidate"], "1.1.0")
        self.assertEqual(history[-1]["env"], "staging")


class Remove(DeployTest):
    def test_remove_refused_while_routed(self):
        self.push("1.0.0", "1.1.0", "1.2.0")
        self.ok("promote", "iris", "1.0.0", "--env", "production")
        self.ok("promote", "iris", "1.1.0", "--env", "production")
        self.refused(EXIT_USAGE, "remove", "iris@1.1.0", says="production")
        self.refused(EXIT_USAGE, "remove", "iris@1.0.0", says="production")  # rollback target
        self.refused(EXIT_NOT_FOUND, "remove", "iris@9.9.9")
        self.refused(EXIT_USAGE, "remove", "iris")
        digest = self.json_of("list")["versions"][2]["digest"]
        out = self.json_of("remove", "iris@1.2.0", "--reason", "unused", schema_def="removed")
        self.assertEqual((out["model"], out["version"], out["digest"]),
                         ("iris", "1.2.0", digest))
        self.assertFalse(os.path.exists(os.path.join(self.reg, "blobs", "sha256", digest[7:])))
        r = self.ok("remove", "iris@1.0.0", "--force")
        self.assertRegex(r.stdout, r"^removed iris 1\.0\.0 \(sha256:[0-9a-f]{12}\u2026\)\n$")
        self.assertEqual(self.route()["previous"], [])
        self.assertEqual([v["version"] for v in self.json_of("list")["versions"]], ["1.1.0"])
        history = self.json_of("history", "iris", schema_def="history")["entries"]
        self.assertEqual([e["action"] for e in history[-2:]], ["remove", "remove"])
        self.assertEqual(history[-2]["reason"], "unused")


class StatusHistory(DeployTest):
    def test_text_filters_and_limit(self):
        self.push("1.0.0", "1.1.0")
        self.ok("promote", "iris", "1.0.0", "--env", "production", "--reason", "first")
        self.ok("promote", "iris", "1.1.0", "--env", "production", "--strategy", "canary",
                "--weight", "10", "--reason", "try 1.1.0")
        self.ok("promote", "iris", "1.0.0", "--env", "staging")
        r = self.ok("status")
        lines = r.stdout.splitlines()
        self.assertEqual(lines[0].split(), ["ENV", "MODEL", "STRATEGY", "STABLE",
                                            "CANDIDATE/STANDBY", "WEIGHT", "KEY", "SAMPLE",
                                            "ROLLBACK", "TO"])
        self.assertEqual(len(lines), 3)
        r = self.ok("history")
        lines = r.stdout.splitlines()
        self.assertEqual(lines[0].split(), ["TIME", "USER@HOST", "ACTION", "MODEL", "ENV",
                                            "VERSIONS", "STRATEGY", "REASON"])
        self.assertEqual(len(lines), 6)
        self.assertRegex(lines[1], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ  \S+@\S+ +push +iris +- +1\.0\.0 ")
        self.assertIn("none -> 1.0.0", lines[3])
        self.assertIn("1.0.0 -> 1.0.0 + 1.1.0 10%", lines[4])
        self.assertTrue(lines[4].rstrip().endswith("try 1.1.0"), lines[4])
        r = self.ok("history", "--env", "production", "--limit", "1")
        self.assertEqual(len(r.stdout.splitlines()), 2)
        self.assertIn("try 1.1.0", r.stdout)
        out = self.json_of("history", "iris", "--env", "staging", schema_def="history")
        self.assertEqual([(e["action"], e["env"]) for e in out["entries"]],
                         [("promote", "staging")])
        out = self.json_of("history", "--limit", "2", schema_def="history")
        self.assertEqual([e["seq"] for e in out["entries"]], [4, 5])
        e = out["entries"][-1]
        self.assertRegex(e["time"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
        self.assertTrue(e["user"] and e["host"])
        self.refused(EXIT_USAGE, "history", "--limit", "0")

    def test_hostile_reason(self):
        self.push("1.0.0")
        # Bidi overrides and other format characters are stored as given and shown escaped.
        reason = "ok \u202etxt.exe\u2066 \u00e9"
        self.ok("promote", "iris", "1.0.0", "--env", "production", "--reason", reason)
        entry = self.json_of("history", schema_def="history")["entries"][-1]
        self.assertEqual(entry["reason"], reason)
        r = self.ok("history")
        self.assertIn("ok \\u{202e}txt.exe\\u{2066} \u00e9", r.stdout)
        self.assertNotIn("\u202e", r.stdout)
        # Control characters are refused before anything is stored.
        self.refused(EXIT_USAGE, "rollback", "iris", "--env", "production", "--reason",
                     "\x1b[2Jclean")
        r = self.deploy("rollback", "iris", "--env", "production", "--reason", "\x1b[2J")
        self.assertNotIn("\x1b", r.stderr)

    def test_never_loads_libtorch(self):
        env = {"LD_DEBUG": "libs", "DLSYS_RUNTIME_MODULE": "/nonexistent/libdlsys_runtime.so"}
        for args in (["push", FIX["1.0.0"], "--trust", FIX["pub"]],
                     ["promote", "iris", "1.0.0", "--env", "production"],
                     ["status"], ["list"], ["show", "iris"], ["history"]):
            r = self.deploy(*args, env=env)
            self.assertEqual(r.returncode, EXIT_OK, " ".join(args))
            self.assertNotIn("libtorch", r.stderr, args[0])
            self.assertNotIn("libdlsys_runtime", r.stderr, args[0])


def copy_registry(src, dst):
    shutil.copytree(src, dst, symlinks=True)


class CrashSafety(DeployTest):
    """SIGKILL at every crash point (DLSYS_TEST_CRASH="*:N"): the registry shows exactly the
    state before or after, and the command can be run again."""

    def prepared(self, name, *steps):
        reg = self.path("prep-" + name)
        os.makedirs(reg)  # an empty directory reads as an empty registry
        for step in steps:
            if step[0] == "push":
                self.ok("push", FIX[step[1]], "--trust", FIX["pub"], reg=reg)
            else:
                self.ok(*step, reg=reg)
        return reg

    def crash_all_points(self, base, args):
        # The state after, from a run without a crash on another copy.
        after_reg = self.path("after")
        shutil.rmtree(after_reg, ignore_errors=True)
        copy_registry(base, after_reg)
        before = self.snapshot(base)
        self.ok(*args, reg=after_reg)
        after = self.snapshot(after_reg)
        self.assertNotEqual(before, after)
        crashes = 0
        runs = tempfile.mkdtemp(dir=self.dir)
        for n in range(1, 50):
            reg = os.path.join(runs, "crash-%d" % n)
            copy_registry(base, reg)
            r = run("deploy", "--registry", reg, *args, env={"DLSYS_TEST_CRASH": "*:%d" % n})
            if r.returncode == EXIT_OK:
                self.assertEqual(self.snapshot(reg), after)
                break
            self.assertEqual(r.returncode, -signal.SIGKILL,
                             "crash point %d: exit %d: %s" % (n, r.returncode, r.stderr))
            crashes += 1
            state = self.snapshot(reg)
            self.assertIn(state, (before, after), "crash point %d left a mixed state" % n)
            again = self.deploy(*args, reg=reg)
            if state == before:
                self.assertEqual(again.returncode, EXIT_OK, again.stderr)
                self.assertEqual(self.snapshot(reg), after)
            else:
                # Done already: a replay is a no-op or refused as such (remove: not found
                # any more), never damage.
                self.assertIn(again.returncode, (EXIT_OK, EXIT_USAGE, EXIT_NOT_FOUND),
                              again.stderr)
                self.ok("history", reg=reg)
            shutil.rmtree(reg, ignore_errors=True)
        else:
            self.fail("the command never completed")
        self.assertGreaterEqual(crashes, 3, "too few crash points were reached")
        if os.environ.get("DLSYS_TEST_VERBOSE"):
            print("\n  %s: %d crash points" % (" ".join(a for a in args if "/" not in a), crashes),
                  file=sys.stderr)
        return crashes

    def test_push(self):
        base = self.prepared("push", ("push", "1.0.0"))
        self.crash_all_points(base, ["push", FIX["1.1.0"], "--trust", FIX["pub"]])
        self.crash_all_points(self.prepared("push-first"),
                              ["push", FIX["1.0.0"], "--trust", FIX["pub"]])

    def test_promote_each_strategy(self):
        base = self.prepared("promote", ("push", "1.0.0"), ("push", "1.1.0"),
                             ("promote", "iris", "1.0.0", "--env", "production"))
        for extra in (["--strategy", "replace"],
                      ["--strategy", "canary", "--weight", "10"],
                      ["--strategy", "ab", "--weight", "30", "--key", "x-user"],
                      ["--strategy", "shadow", "--sample", "0.5"],
                      ["--strategy", "blue-green"]):
            with self.subTest(extra[1]):
                self.crash_all_points(base, ["promote", "iris", "1.1.0", "--env", "production",
                                             *extra])

    def test_finalize_rollback_remove(self):
        canary = self.prepared("canary", ("push", "1.0.0"), ("push", "1.1.0"), ("push", "1.2.0"),
                               ("promote", "iris", "1.0.0", "--env", "production"),
                               ("promote", "iris", "1.1.0", "--env", "production",
                                "--strategy", "canary", "--weight", "10"))
        self.crash_all_points(canary, ["finalize", "iris", "--env", "production"])
        self.crash_all_points(canary, ["rollback", "iris", "--env", "production"])
        replaced = self.prepared("replaced", ("push", "1.0.0"), ("push", "1.1.0"),
                                 ("promote", "iris", "1.0.0", "--env", "production"),
                                 ("promote", "iris", "1.1.0", "--env", "production"))
        self.crash_all_points(replaced, ["rollback", "iris", "--env", "production"])
        self.crash_all_points(canary, ["remove", "iris@1.2.0"])

    def consistent(self, reg):
        """Readable, valid, and the routes agree with the last history line of each route."""
        status = self.json_of("status", reg=reg, schema_def="status")
        listed = self.json_of("list", reg=reg, schema_def="list")
        history = self.json_of("history", reg=reg, schema_def="history")["entries"]
        stored = {v["version"] for v in listed["versions"]}
        last = {}
        for e in history:
            if e["to"] is not None:
                last[(e["env"], e["model"])] = e["to"]
        for env in status["environments"]:
            for m in env["models"]:
                route = m["route"]
                for v in (route["stable"], route["candidate"], route["standby"]):
                    self.assertTrue(v == "" or v in stored, v)
                self.assertEqual(last[(env["env"], m["model"])], route)
        self.assertEqual([e["seq"] for e in history], list(range(1, len(history) + 1)))
        return len(history)

    def test_sigkill_at_random_times(self):
        reg = self.prepared("random", ("push", "1.0.0"), ("push", "1.1.0"),
                            ("promote", "iris", "1.0.0", "--env", "production"))
        commands = [["promote", "iris", "1.1.0", "--env", "production", "--strategy", "canary",
                     "--weight", "10"],
                    ["rollback", "iris", "--env", "production"]]
        # How long one change takes here, to spread the kills over its whole run.
        t0 = time.monotonic()
        self.ok(*commands[0], reg=reg)
        self.ok(*commands[1], reg=reg)
        span = (time.monotonic() - t0) / 2
        rng = random.Random(1234)
        entries = self.consistent(reg)
        killed = 0
        for i in range(20):
            p = start("deploy", "--registry", reg, *commands[i % 2])
            # The random delay is the fault injected, not a wait for something to happen.
            time.sleep(rng.uniform(0, 1.5 * span))
            p.kill()
            p.communicate(timeout=60)
            killed += p.returncode == -signal.SIGKILL
            self.assertIn(p.returncode, (-signal.SIGKILL, EXIT_OK, EXIT_USAGE))
            now = self.consistent(reg)
            self.assertIn(now - entries, (0, 1))
            entries = now
        # Still usable afterwards.
        self.deploy(*commands[1], reg=reg)
        self.ok(*commands[0], reg=reg)
        self.consistent(reg)
        self.assertGreater(killed, 0)

    def test_concurrent_changes_serialize(self):
        steps = [("push", "1.0.0"), ("push", "1.1.0")]
        for i in range(4):
            steps.append(("promote", "iris", "1.0.0", "--env", "env%d" % i))
            steps.append(("promote", "iris", "1.1.0", "--env", "env%d" % i, "--strategy",
                          "canary", "--weight", "10"))
        reg = self.prepared("concurrent", *steps)
        before = self.json_of("history", reg=reg)["entries"]
        generation = self.json_of("status", reg=reg)["generation"]
        procs = []
        for i in range(8):
            args = (["rollback", "iris", "--env", "env%d" % i] if i < 4 else
                    ["promote", "iris", "1.1.0", "--env", "env%d" % i])
            procs.append(start("deploy", "--registry", reg, *args))
        for p in procs:
            out, err = p.communicate(timeout=300)
            self.assertEqual(p.returncode, EXIT_OK, err.decode(errors="replace"))
        after = self.json_of("history", reg=reg, schema_def="history")["entries"]
        self.assertEqual(len(after), len(before) + 8)
        self.assertEqual(sorted(e["action"] for e in after[len(before):]),
                         ["promote"] * 4 + ["rollback"] * 4)
        self.assertEqual(self.json_of("status", reg=reg)["generation"], generation + 8)
        self.consistent(reg)


if __name__ == "__main__":
    unittest.main()
