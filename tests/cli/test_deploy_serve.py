"""dlsys serve --registry DIR --env ENV: every rollout strategy against a live server.

The registry is changed with the real `dlsys deploy` commands; the server applies each change
live. Changes are awaited through the server's own log (the serve.deploy record naming the
registry generation), never by sleeping. Splits are checked against binomial tolerances
(5 standard deviations: a correct split fails about once in 3.5 million runs)."""
import json
import math
import os
import signal
import sys
import textwrap
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from clitest import (EXIT_OK, EXIT_USAGE, Serve, TempDirTest, make_model, run,  # noqa: E402
                     validate)

SPEC = """\
    name: m
    version: {version}
    description: deploy test model
    inputs:
      - {{name: x, dtype: float32, shape: [-1, 4]}}
    outputs:
      - {{name: y, dtype: float32, shape: [-1, 2]}}
    examples:
      - name: one
        inputs:
          x: {{data: [[1, 2, 3, 4]]}}
    """

X = [[0.5, -1.0, 2.0, 0.25]]
BODY = json.dumps({"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4],
                               "data": [v for row in X for v in row]}]})
CACHE = {}


def setUpModule():
    import tempfile
    d = tempfile.mkdtemp(prefix="dlsys-deploy-serve-")
    CACHE["dir"] = d
    r = run("keygen", "--out", os.path.join(d, "release"))
    assert r.returncode == 0, r.stderr
    r = run("keygen", "--out", os.path.join(d, "other"))
    assert r.returncode == 0, r.stderr
    # 1.0.0 and 1.2.0: the fixture MLP; 1.1.0: the same MLP + 0.5 on every output, so a shadow
    # comparison has a known difference.
    models = {"1.0.0": ("mlp", []), "1.1.0": ("noise", ["--scale", "0.5"]),
              "1.2.0": ("mlp", [])}
    for version, (kind, extra) in models.items():
        model = make_model(kind, os.path.join(d, "%s-%s.pt" % (kind, version)), *extra)
        spec = os.path.join(d, "spec-%s.yaml" % version)
        with open(spec, "w") as f:
            f.write(textwrap.dedent(SPEC).format(version=version))
        for signer in ("release", "other"):
            out = os.path.join(d, "m-%s-%s.dlsys" % (version, signer))
            r = run("pack", model, "--spec", spec, "-o", out, "--key",
                    os.path.join(d, signer), env={"SOURCE_DATE_EPOCH": "1700000000"})
            assert r.returncode == 0, r.stderr
            CACHE[(version, signer)] = out


def tearDownModule():
    import shutil
    shutil.rmtree(CACHE["dir"], ignore_errors=True)


class DeployServeTest(TempDirTest):
    def setUp(self):
        super().setUp()
        self.registry = self.path("registry")
        self.pub = os.path.join(CACHE["dir"], "release.pub")
        for version in ("1.0.0", "1.1.0", "1.2.0"):
            self.deploy("push", CACHE[(version, "release")], "--trust", self.pub)
        self.deploy("promote", "m", "1.0.0", "--env", "prod", "--strategy", "replace")

    # --- helpers ---------------------------------------------------------------------------
    def deploy(self, *args, expect=EXIT_OK):
        r = run("deploy", "--registry", self.registry, *args)
        self.assertEqual(r.returncode, expect, "deploy %s: %s%s" % (args, r.stdout, r.stderr))
        return r

    def generation(self):
        with open(os.path.join(self.registry, "registry.json")) as f:
            return json.load(f)["generation"]

    def serve(self, *extra, poll_ms=50):
        s = Serve("--registry", self.registry, "--env", "prod", "--trust", self.pub,
                  "--registry-poll-ms", str(poll_ms), "--log-format", "json", *extra)
        self.addCleanup(s.kill)
        return s

    def records(self, s):
        out = []
        for line in s.stderr().splitlines():
            if line.startswith("{"):
                out.append(json.loads(line))
        return out

    def wait_until(self, s, cond, what, timeout=120):
        """Polls cond() (bounded) until it returns something true, and returns that."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = cond()
            if got:
                return got
            if s.proc.poll() is not None:
                self.fail("serve exited (%d) while waiting for %s: %s" %
                          (s.proc.returncode, what, s.stderr()[-2000:]))
            time.sleep(0.02)  # polling a condition with a deadline, not synchronisation
        self.fail("no %s within %ds; log tail: %s" % (what, timeout, s.stderr()[-3000:]))

    def wait_log(self, s, pred, what, timeout=120):
        """Polls the server's log until a record matches pred; returns it."""
        return self.wait_until(s, lambda: next((r for r in self.records(s) if pred(r)), None),
                               what, timeout)

    def wait_applied(self, s, generation=None):
        gen = self.generation() if generation is None else generation
        return self.wait_log(
            s, lambda r: r.get("event") == "serve.deploy" and r.get("generation", -1) >= gen,
            "serve.deploy of generation %d" % gen)

    def infer(self, s, headers=None, version=None):
        path = "/v2/models/m%s/infer" % ("/versions/" + version if version else "")
        hdrs = {"Content-Type": "application/json"}
        hdrs.update(headers or {})
        status, h, data = s.request("POST", path, BODY, hdrs)
        self.assertEqual(status, 200, data)
        return h.get("x-dlsys-model-version"), h.get("x-dlsys-arm"), data

    def assertBinomial(self, k, n, p, what):
        sd = math.sqrt(n * p * (1 - p))
        self.assertLessEqual(abs(k - n * p), 5 * sd,
                             "%s: %d of %d, expected %.0f +- %.1f" % (what, k, n, n * p, 5 * sd))

    # --- strategies ------------------------------------------------------------------------
    def test_replace_switches_live_and_rollback_restores(self):
        s = self.serve()
        self.assertEqual(self.infer(s)[:2], ("1.0.0", "stable"))
        self.deploy("promote", "m", "1.2.0", "--env", "prod")
        self.wait_applied(s)
        self.assertEqual(self.infer(s)[:2], ("1.2.0", "stable"))
        # The old version is drained and unloaded once nothing holds it.
        self.wait_log(s, lambda r: r.get("event") == "serve.unload" and
                      r.get("model_version") == "1.0.0", "serve.unload of 1.0.0")
        self.deploy("rollback", "m", "--env", "prod")
        self.wait_applied(s)
        self.assertEqual(self.infer(s)[:2], ("1.0.0", "stable"))
        # Access records carry the arm as `variant` (what `dlsys monitor --by variant` reads).
        reqs = [r for r in self.records(s) if r.get("event") == "serve.request"]
        self.assertTrue(reqs)
        for r in reqs:
            validate(r, "log-record.schema.json")
            self.assertEqual(r["variant"], "stable")
        self.assertEqual(s.stop(), 0)

    def test_canary_split_step_and_finalize(self):
        s = self.serve()
        self.deploy("promote", "m", "1.2.0", "--env", "prod", "--strategy", "canary",
                    "--weight", "20")
        self.wait_applied(s)
        n, canary = 1000, 0
        for _ in range(n):
            version, arm, _ = self.infer(s)
            self.assertIn((version, arm), {("1.0.0", "stable"), ("1.2.0", "canary")})
            canary += arm == "canary"
        self.assertBinomial(canary, n, 0.20, "canary at 20%")
        self.assertEqual(s.metric("dlsys_route_requests_total", model="m", version="1.2.0",
                                  arm="canary", outcome="success"), canary)
        self.assertEqual(s.metric("dlsys_route_requests_total", model="m", version="1.0.0",
                                  arm="stable", outcome="success"), n - canary)
        # The access log, read by `dlsys monitor`, tells the arms apart the same way.
        # (The log is written by a background thread: wait until it holds every request.)
        def inferences():
            return [r for r in self.records(s)
                    if r.get("event") == "serve.request" and r["url.path"].endswith("/infer")]
        self.wait_until(s, lambda: len(inferences()) >= n, "%d access records" % n)
        log = self.path("serve.log")
        with open(log, "w") as f:
            f.write("\n".join(json.dumps(r) for r in inferences()) + "\n")
        r = run("monitor", log, "--once", "--json", "--by", "variant",
                "--compare", "variant=stable,canary")
        self.assertEqual(r.returncode, EXIT_OK, r.stderr)
        summary = json.loads(r.stdout)
        validate(summary, "monitor-summary.schema.json")
        by_arm = {g["key"]["variant"]: g["requests"] for g in summary["groups"]}
        self.assertEqual(by_arm, {"stable": n - canary, "canary": canary}, summary["groups"])
        self.assertIn("comparison", summary)
        self.deploy("promote", "m", "1.2.0", "--env", "prod", "--strategy", "canary",
                    "--step", "50")
        self.wait_applied(s)
        canary = sum(self.infer(s)[1] == "canary" for _ in range(n))
        self.assertBinomial(canary, n, 0.70, "canary at 70%")
        self.deploy("finalize", "m", "--env", "prod")
        self.wait_applied(s)
        for _ in range(50):
            self.assertEqual(self.infer(s)[:2], ("1.2.0", "stable"))
        self.assertEqual(s.stop(), 0)

    def test_ab_is_sticky_per_key(self):
        s = self.serve()
        self.deploy("promote", "m", "1.2.0", "--env", "prod", "--strategy", "ab",
                    "--weight", "50", "--key", "X-User-Id")
        self.wait_applied(s)
        users, in_b = 300, 0
        for u in range(users):
            arms = {self.infer(s, {"X-User-Id": "user-%d" % u})[:2] for _ in range(3)}
            self.assertEqual(len(arms), 1, "user-%d went to %s" % (u, arms))
            arm = arms.pop()
            self.assertIn(arm, {("1.0.0", "stable"), ("1.2.0", "canary")})
            in_b += arm[1] == "canary"
        self.assertBinomial(in_b, users, 0.5, "users in the canary arm")
        # Without the header: stable.
        for _ in range(20):
            self.assertEqual(self.infer(s)[:2], ("1.0.0", "stable"))
        self.assertEqual(s.stop(), 0)

    def test_shadow_never_alters_responses_and_logs_the_difference(self):
        s = self.serve()
        _, _, before = self.infer(s)
        self.deploy("promote", "m", "1.1.0", "--env", "prod", "--strategy", "shadow")
        self.wait_applied(s)
        n = 100
        for i in range(n):
            version, arm, body = self.infer(s, {"X-Request-ID": "shadow-%d" % i})
            self.assertEqual((version, arm), ("1.0.0", "stable"))
            self.assertEqual(body, before, "a shadowed request's answer changed")
        def shadow_records():
            return [r for r in self.records(s) if r.get("event") == "serve.shadow"]
        self.wait_until(s, lambda: len(shadow_records()) >= n, "%d serve.shadow records" % n)
        shadows = shadow_records()
        self.assertEqual(len(shadows), n)
        self.assertEqual({r["request_id"] for r in shadows}, {"shadow-%d" % i for i in range(n)})
        for r in shadows:
            validate(r, "log-record.schema.json")
            self.assertEqual((r["model_version"], r["variant"], r["stable_version"]),
                             ("1.1.0", "shadow", "1.0.0"))
            self.assertEqual(r["status"], 200)
            self.assertFalse(r["shadow.outputs_equal"])
            # noise = mlp + 0.5 on every output.
            self.assertAlmostEqual(r["shadow.max_abs_diff"], 0.5, places=5)
            self.assertIn("y", r["shadow.prediction"])
            self.assertIn("y", r["stable.prediction"])
        self.assertEqual(s.metric("dlsys_route_requests_total", model="m", version="1.1.0",
                                  arm="shadow", outcome="success"), n)
        self.assertEqual(s.stop(), 0)

    def test_blue_green_keeps_the_old_version_warm_until_finalize(self):
        s = self.serve()
        self.deploy("promote", "m", "1.2.0", "--env", "prod", "--strategy", "blue-green")
        self.wait_applied(s)
        self.assertEqual(self.infer(s)[:2], ("1.2.0", "stable"))
        # The standby answers only when asked by version, and is ready.
        self.assertEqual(self.infer(s, version="1.0.0")[:2], ("1.0.0", "standby"))
        loads_before = sum(1 for r in self.records(s) if r.get("event") == "serve.load")
        self.deploy("rollback", "m", "--env", "prod")
        self.wait_applied(s)
        self.assertEqual(self.infer(s)[:2], ("1.0.0", "stable"))
        loads_after = sum(1 for r in self.records(s) if r.get("event") == "serve.load")
        self.assertEqual(loads_after, loads_before, "rollback to the warm standby loaded again")
        # Again, then finalize: the standby is released.
        self.deploy("promote", "m", "1.2.0", "--env", "prod", "--strategy", "blue-green")
        self.wait_applied(s)
        self.deploy("finalize", "m", "--env", "prod")
        self.wait_applied(s)
        self.wait_log(s, lambda r: r.get("event") == "serve.unload" and
                      r.get("model_version") == "1.0.0", "serve.unload of the standby")
        status, _, _ = s.request("GET", "/v2/models/m/versions/1.0.0/ready")
        self.assertNotEqual(status, 200)
        self.assertEqual(s.stop(), 0)

    def test_sighup_applies_at_once(self):
        s = self.serve(poll_ms=86400000)  # only SIGHUP makes it look
        self.deploy("promote", "m", "1.2.0", "--env", "prod")
        s.proc.send_signal(signal.SIGHUP)
        self.wait_applied(s)
        self.assertEqual(self.infer(s)[:2], ("1.2.0", "stable"))
        self.assertEqual(s.stop(), 0)

    def test_a_change_that_does_not_verify_keeps_the_current_routing(self):
        s = self.serve()
        # Signed by a key the registry accepts but the server does not trust.
        self.deploy("remove", "m@1.2.0")
        self.deploy("push", CACHE[("1.2.0", "other")], "--trust",
                    os.path.join(CACHE["dir"], "other.pub"))
        self.deploy("promote", "m", "1.2.0", "--env", "prod")
        failed = self.wait_log(s, lambda r: r.get("event") == "serve.deploy.failed",
                               "serve.deploy.failed")
        self.assertIn("1.2.0", failed["message"])
        for _ in range(20):
            self.assertEqual(self.infer(s)[:2], ("1.0.0", "stable"))
        self.assertEqual(s.stop(), 0)

    def test_serve_refuses_archives_with_env_and_a_missing_registry(self):
        r = run("serve", CACHE[("1.0.0", "release")], "--registry", self.registry, "--env", "prod",
                "--trust", self.pub)
        self.assertEqual(r.returncode, EXIT_USAGE, r.stderr)
        r = run("serve", "--registry", self.path("nope"), "--env", "prod", "--trust", self.pub)
        self.assertEqual(r.returncode, 3, r.stderr)

    def test_registry_files_match_their_schemas(self):
        for args in (["promote", "m", "1.1.0", "--env", "prod", "--strategy", "canary",
                      "--weight", "12.5", "--reason", "first canary"],
                     ["promote", "m", "1.1.0", "--env", "prod", "--strategy", "canary",
                      "--step", "10"],
                     ["finalize", "m", "--env", "prod"],
                     ["promote", "m", "1.0.0", "--env", "stage"],
                     ["promote", "m", "1.2.0", "--env", "stage", "--strategy", "ab", "--weight",
                      "50", "--key", "x-user"],
                     ["promote", "m", "1.0.0", "--env", "dark"],
                     ["promote", "m", "1.1.0", "--env", "dark", "--strategy", "shadow",
                      "--sample", "0.5"],
                     ["promote", "m", "1.2.0", "--env", "prod", "--strategy", "blue-green"],
                     ["rollback", "m", "--env", "prod"]):
            self.deploy(*args)
        with open(os.path.join(self.registry, "registry.json")) as f:
            state = json.load(f)
        validate(state, "deploy-registry.schema.json")
        with open(os.path.join(self.registry, "history.jsonl")) as f:
            lines = f.read().splitlines()
        self.assertEqual(len(lines), state["history_entries"])
        for line in lines:
            validate(json.loads(line), "deploy-history.schema.json")

    def test_trust_takes_one_value_so_an_archive_may_follow_it(self):
        s = Serve("--trust", self.pub, CACHE[("1.0.0", "release")])
        self.addCleanup(s.kill)
        self.assertEqual(self.infer(s)[:2], ("1.0.0", None))
        self.assertEqual(s.stop(), 0)

    def test_no_failed_request_while_promoting_and_rolling_back(self):
        s = self.serve()
        stop = threading.Event()
        results = {"ok": 0, "failed": []}
        lock = threading.Lock()

        def client():
            import http.client
            c = http.client.HTTPConnection("127.0.0.1", s.port, timeout=60)
            while not stop.is_set():
                try:
                    c.request("POST", "/v2/models/m/infer", BODY,
                              {"Content-Type": "application/json"})
                    r = c.getresponse()
                    r.read()
                    with lock:
                        if r.status == 200:
                            results["ok"] += 1
                        else:
                            results["failed"].append(r.status)
                except Exception as e:  # noqa: BLE001 - any failure counts
                    with lock:
                        results["failed"].append(repr(e))
                    c.close()
                    c = http.client.HTTPConnection("127.0.0.1", s.port, timeout=60)
            c.close()

        threads = [threading.Thread(target=client) for _ in range(4)]
        for t in threads:
            t.start()
        try:
            for args in (["promote", "m", "1.2.0", "--env", "prod"],
                         ["rollback", "m", "--env", "prod"],
                         ["promote", "m", "1.2.0", "--env", "prod", "--strategy", "canary",
                          "--weight", "50"],
                         ["finalize", "m", "--env", "prod"],
                         ["promote", "m", "1.1.0", "--env", "prod", "--strategy", "blue-green"],
                         ["rollback", "m", "--env", "prod"]):
                self.deploy(*args)
                self.wait_applied(s)
        finally:
            stop.set()
            for t in threads:
                t.join(timeout=60)
        self.assertEqual(results["failed"], [])
        self.assertGreater(results["ok"], 100)
        self.assertEqual(s.stop(), 0)


if __name__ == "__main__":
    unittest.main()
