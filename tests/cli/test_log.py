"""The structured log (docs/logging.md): --log-format json records from real commands match
schemas/log-record.schema.json, the text form is terminal-safe, bad logging flags are usage
errors, and lnav reads the log through share/lnav/dlsys_log.json."""
import json
import os
import re
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from clitest import (lnav_query, EXIT_NOT_FOUND, EXIT_OK, EXIT_USAGE, SOURCE_DIR, TempDirTest, make_model,
                     run, validate)

FIXED = ["@timestamp", "log.level", "message", "ecs.version", "severity", "event", "service",
         "host", "pid"]
LNAV_FORMAT = os.path.join(SOURCE_DIR, "share", "lnav", "dlsys_log.json")
UNSAFE = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
TEXT_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z "
                       r"(TRACE|DEBUG|INFO |WARN |ERROR|FATAL) [a-z_.]+: ")

# A request record as serve writes it, with every documented optional field: the schema and the
# lnav format must accept it before serve exists.
SERVE_RECORD = {
    "@timestamp": "2026-12-01T15:47:28.123456Z", "log.level": "INFO", "message": "POST infer 200",
    "ecs.version": "8.11.0", "severity": 9, "event": "serve.request", "service": "dlsys-serve",
    "host": "h1", "pid": 4242, "request_id": "req-7",
    "trace.id": "4bf92f3577b34da6a3ce929d0e0e4736",
    "span.id": "00f067aa0ba902b7", "model": "mlp", "model_version": "1.2.0", "variant": "canary",
    "status": 200, "error_type": "bad_input", "error.message": "x: expected 4 values",
    "latency_ms": 3.25, "queue_ms": 0.5, "infer_ms": 2.0, "batch_size": 4,
    "http.request.method": "POST", "url.path": "/v2/models/mlp/infer",
    "client.address": "10.0.0.7", "http.request.body.bytes": 120, "http.response.body.bytes": 96,
    "input": {"x": {"shape": [1, 4], "count": 4, "mean": 2.5, "std": 1.118, "min": 1, "max": 4,
                    "head": [1, 2, 3, 4]}},
    "prediction": {"scores": {"shape": [1, 2], "count": 2, "mean": 0.5, "std": 0.4, "min": 0.1,
                              "max": 0.9, "head": [0.1, 0.9]}},
}


def parse_log(path):
    """The bytes of a JSON log and its records, each as (top-level keys in file order, dict)."""
    with open(path, "rb") as f:
        data = f.read()
    records = []
    for line in data.split(b"\n")[:-1]:
        keys = list(json.loads(line, object_pairs_hook=lambda pairs: pairs))
        records.append(([k for k, _ in keys], json.loads(line)))
    return data, records


class Log(TempDirTest):
    def log_path(self):
        return self.path("dlsys.jsonl")

    def check_records(self, path):
        """Every line is one ASCII JSON object that matches the schema, fixed fields first.
        Returns the records as dicts."""
        data, records = parse_log(path)
        self.assertTrue(data.endswith(b"\n"), "the last record ends its line")
        self.assertTrue(all(b < 0x80 for b in data), "JSON log lines are ASCII-only")
        out = []
        for keys, record in records:
            self.assertEqual(keys[:len(FIXED)], FIXED, record)
            self.assertEqual(len(keys), len(set(keys)), "no key twice: %r" % keys)
            validate(record, "log-record.schema.json")
            out.append(record)
        return out

    def test_json_records_of_real_commands_match_the_schema(self):
        log = self.log_path()
        flags = ["--log-format", "json", "--log-file", log, "-v"]
        model = make_model("mlp", self.path("model.pt"))
        key = self.path("k.key")
        archive = self.path("mlp.dlsys")
        # The flags go before or after the command's name.
        r = run(*flags, "keygen", "--out", key)
        self.assertEqual(r.returncode, EXIT_OK, r.stderr)
        r = run("pack", model, "--name", "mlp", "--version", "1.0.0", "--key", key, "-o", archive,
                *flags)
        self.assertEqual(r.returncode, EXIT_OK, r.stderr)
        self.assertEqual(r.stderr, "", "records go to the file, not stderr")
        plain = run("inspect", archive)
        logged = run("inspect", archive, *flags)
        self.assertEqual(logged.returncode, EXIT_OK, logged.stderr)
        self.assertEqual(logged.stdout, plain.stdout, "logging never changes the output")
        r = run("verify", archive, "--trust", key + ".pub", *flags)
        self.assertEqual(r.returncode, EXIT_OK, r.stdout + r.stderr)
        r = run("verify", self.path("missing.dlsys"), *flags)
        self.assertEqual(r.returncode, EXIT_NOT_FOUND)

        records = self.check_records(log)
        events = [r["event"] for r in records]
        for event in ["cli.start", "keygen.done", "pack.start", "pack.done", "inspect.done",
                      "verify.start", "verify.done", "cli.exit"]:
            self.assertIn(event, events)
        self.assertEqual(events.count("cli.exit"), 5, "one per command run")
        self.assertEqual(len({r["pid"] for r in records}), 5, "five processes appended")
        pack = next(r for r in records if r["event"] == "pack.done")
        self.assertEqual((pack["model"], pack["model_version"]), ("mlp", "1.0.0"))
        self.assertEqual(pack["archive"], archive)
        self.assertEqual(pack["archive_bytes"], os.path.getsize(archive))
        self.assertTrue(pack["signed"])
        self.assertEqual(pack["log.level"], "INFO")
        self.assertEqual(pack["severity"], 9)
        self.assertEqual(pack["service"], "dlsys")
        verify = next(r for r in records if r["event"] == "verify.done")
        self.assertEqual((verify["result"], verify["failed_checks"]), ("ok", 0))
        self.assertGreater(verify["checks"], 0)
        exits = [r["exit_code"] for r in records if r["event"] == "cli.exit"]
        self.assertEqual(exits, [EXIT_OK, EXIT_OK, EXIT_OK, EXIT_OK, EXIT_NOT_FOUND])
        start = next(r for r in records if r["event"] == "cli.start")
        self.assertEqual(start["log.level"], "DEBUG")
        self.assertEqual(start["severity"], 5)

    def test_default_level_is_warn_and_stderr_stays_quiet(self):
        r = run("keygen", "--out", self.path("k.key"))
        self.assertEqual(r.returncode, EXIT_OK, r.stderr)
        self.assertEqual(r.stderr, "")
        r = run("keygen", "--out", self.path("k2.key"), "--log-format", "json",
                "--log-file", self.log_path())
        self.assertEqual(r.returncode, EXIT_OK, r.stderr)
        self.assertEqual(os.path.getsize(self.log_path()), 0, "nothing at WARN or above")
        r = run("keygen", "--out", self.path("k3.key"), "--log-format", "json",
                "--log-file", self.log_path(), env={"DLSYS_LOG_LEVEL": "info"})
        self.assertEqual(r.returncode, EXIT_OK, r.stderr)
        events = [r["event"] for r in self.check_records(self.log_path())]
        self.assertEqual(events, ["keygen.done", "cli.exit"])

    def test_text_records_on_stderr_are_terminal_safe(self):
        hostile = self.path("evil\x1b[2J\u202e\r.dlsys")
        r = run("-vv", "verify", hostile)
        self.assertEqual(r.returncode, EXIT_NOT_FOUND)
        lines = [l for l in r.stderr.split("\n") if TEXT_LINE.match(l)]
        self.assertTrue(any(" DEBUG verify.start: verifying " in l for l in lines), r.stderr)
        self.assertTrue(any(" INFO  cli.exit: " in l and "exit_code=3" in l for l in lines),
                        r.stderr)
        self.assertIsNone(UNSAFE.search(r.stderr), repr(r.stderr))
        self.assertIn("\\x1b[2J", r.stderr)

        r = run("verify", hostile, "--log-format", "json", "--log-file", self.log_path(), "-v")
        self.assertEqual(r.returncode, EXIT_NOT_FOUND)
        start = next(r for r in self.check_records(self.log_path())
                     if r["event"] == "verify.start")
        self.assertEqual(start["archive"], hostile, "escaped, and read back exactly")

    def test_bad_logging_flags_are_usage_errors(self):
        for args, env, said in [
                (["--log-format", "bogus"], None, "--log-format"),
                (["--log-format", "JSON5"], None, "--log-format"),
                (["--log-level", "loud"], None, "--log-level"),
                ([], {"DLSYS_LOG_FORMAT": "bogus"}, "bogus"),
                ([], {"DLSYS_LOG_LEVEL": "loud"}, "loud"),
                (["--log-file", ""], None, "--log-file"),
                (["--log-file", self.path("no/such/dir/log")], None, "no/such/dir/log")]:
            with self.subTest(args=args, env=env):
                r = run("keygen", "--out", self.path("k.key"), *args, env=env)
                self.assertEqual(r.returncode, EXIT_USAGE, r.stderr)
                self.assertIn(said, r.stderr)
                self.assertFalse(os.path.exists(self.path("k.key")), "nothing ran")

    def test_log_file_must_be_a_regular_file_and_is_appended_to(self):
        fifo = self.path("fifo")
        os.mkfifo(fifo)
        # Would block forever on open (no reader) if the FIFO were not refused first.
        r = run("keygen", "--out", self.path("k.key"), "--log-file", fifo, timeout=60)
        self.assertEqual(r.returncode, EXIT_USAGE, r.stderr)
        self.assertIn("'%s' is a FIFO" % fifo, r.stderr)
        r = run("keygen", "--out", self.path("k.key"), "--log-file", self.dir, timeout=60)
        self.assertEqual(r.returncode, EXIT_USAGE, r.stderr)
        self.assertIn(self.dir, r.stderr)

        with open(self.log_path(), "w") as f:
            f.write(json.dumps(SERVE_RECORD) + "\n")
        for i in range(2):
            r = run("keygen", "--out", self.path("k%d.key" % i), "--log-format", "json",
                    "--log-file", self.log_path(), "--log-level", "info")
            self.assertEqual(r.returncode, EXIT_OK, r.stderr)
        events = [r["event"] for r in self.check_records(self.log_path())]
        self.assertEqual(events, ["serve.request"] + ["keygen.done", "cli.exit"] * 2)

    def test_schema_pins_the_documented_field_types(self):
        validate(SERVE_RECORD, "log-record.schema.json")
        validate(dict(SERVE_RECORD, my_field={"any": ["thing"]}), "log-record.schema.json")
        import jsonschema
        head = dict(SERVE_RECORD["input"]["x"], head=list(range(9)))
        for bad in [dict(SERVE_RECORD, status="200"), dict(SERVE_RECORD, latency_ms="1"),
                    dict(SERVE_RECORD, batch_size=1.5), dict(SERVE_RECORD, severity=10),
                    dict(SERVE_RECORD, **{"log.level": "info"}),
                    dict(SERVE_RECORD, **{"@timestamp": "2026-12-01 15:47:28"}),
                    dict(SERVE_RECORD, **{"trace.id": "XYZ"}),
                    dict(SERVE_RECORD, input={"x": head}),
                    dict(SERVE_RECORD, input={"t%d" % i: SERVE_RECORD["input"]["x"]
                                              for i in range(17)}),
                    {k: v for k, v in SERVE_RECORD.items() if k != "pid"}]:
            with self.subTest(bad=bad):
                with self.assertRaises(jsonschema.ValidationError):
                    validate(bad, "log-record.schema.json")

    def lnav(self, log, sql):
        return lnav_query(log, sql, self.dir)

    def test_lnav_reads_every_record_through_the_shipped_format(self):
        log = self.log_path()
        with open(log, "w") as f:
            f.write(json.dumps(SERVE_RECORD, separators=(",", ":")) + "\n")
        r = run("keygen", "--out", self.path("k.key"), "--log-format", "json", "--log-file", log,
                "-v")
        self.assertEqual(r.returncode, EXIT_OK, r.stderr)
        r = run("inspect", self.path("missing.dlsys"), "--log-format", "json", "--log-file", log,
                "-v")
        self.assertEqual(r.returncode, EXIT_NOT_FOUND)
        records = self.check_records(log)

        rows = self.lnav(log, 'SELECT event, log_level, "log.level" AS level, log_body, '
                              'service, typeof(pid) AS pid_type, command, '
                              'typeof(exit_code) AS exit_type, exit_code FROM dlsys_log '
                              'ORDER BY log_line')
        self.assertEqual([r["event"] for r in rows], [r["event"] for r in records],
                         "lnav drops no record")
        for row, record in zip(rows, records):
            self.assertEqual(row["level"], record["log.level"])
            self.assertEqual(row["log_level"], {"DEBUG": "debug", "INFO": "info"}[row["level"]])
            self.assertEqual(row["log_body"], record["message"])
            self.assertEqual(row["service"], record["service"])
            self.assertEqual(row["pid_type"], "integer")
        exits = [(r["command"], int(r["exit_code"]), r["exit_type"]) for r in rows
                 if r["event"] == "cli.exit"]
        self.assertEqual(exits, [("keygen", 0, "integer"), ("inspect", 3, "integer")])

        rows = self.lnav(log, 'SELECT log_opid, request_id, model, model_version, variant, '
                              'status + 0 AS status, typeof(status) AS status_type, '
                              'latency_ms * 2 AS twice_latency, typeof(latency_ms) AS '
                              'latency_type, batch_size + 0 AS batch_size, "trace.id" AS trace, '
                              'error_type, "url.path" AS path FROM dlsys_log '
                              'WHERE event = \'serve.request\'')
        self.assertEqual(len(rows), 1, rows)
        row = rows[0]
        self.assertEqual((row["log_opid"], row["request_id"]), ("req-7", "req-7"))
        self.assertEqual((row["model"], row["model_version"], row["variant"]),
                         ("mlp", "1.2.0", "canary"))
        self.assertEqual((int(row["status"]), row["status_type"]), (200, "integer"))
        self.assertEqual((float(row["twice_latency"]), row["latency_type"]), (6.5, "real"))
        self.assertEqual(int(row["batch_size"]), 4)
        self.assertEqual(row["trace"], SERVE_RECORD["trace.id"])
        self.assertEqual((row["error_type"], row["path"]), ("bad_input", "/v2/models/mlp/infer"))


if __name__ == "__main__":
    unittest.main()
