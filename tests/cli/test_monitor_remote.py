"""dlsys monitor ssh://USER@HOST:PORT/PATH against a real OpenSSH server (Debian's sshd on
127.0.0.1, a throwaway host key and user key, components.sshd): the same summary as the local
file, --follow through appends and a rotation, stopped by SIGTERM with a last snapshot and no
remote tail left behind, and the failures: a missing remote file, a wrong key, an unknown host
key, no ssh client, a bad URL, and hostile paths that must never run anything."""
import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import components
from clitest import (DLSYS, EXIT_NOT_FOUND, EXIT_OK, EXIT_UNAVAILABLE, EXIT_USAGE,
                     MonitorSnapshots, TempDirTest, validate)

# Fields of a summary that describe the run, not the log.
RUN_FIELDS = ("seconds", "threads", "inputs")


def request_line(i):
    """A dlsys serve request record (docs/logging.md); deterministic variety."""
    status = (200, 200, 200, 404, 503)[i % 5]
    return json.dumps({"@timestamp": "2026-12-01T10:%02d:%02d.%06dZ" % (i // 3600 % 60,
                                                                       i // 60 % 60, i % 60),
                       "log.level": "ERROR" if status >= 500 else "INFO",
                       "event": "serve.request", "status": status,
                       "latency_ms": 0.5 + (i * 37 % 101) / 7, "batch_size": 1 + i % 4,
                       "model": "mlp16", "model_version": ("1.0.0", "1.1.0")[i % 2]}) + "\n"


def write_log(path, lines, mode="w"):
    with open(path, mode) as f:
        f.writelines(lines)


def without_run_fields(summary):
    return {k: v for k, v in summary.items() if k not in RUN_FIELDS}


class Remote(TempDirTest):
    """One sshd for the class; each test has its own temp dir for logs."""

    @classmethod
    def setUpClass(cls):
        cls.server_dir = tempfile.mkdtemp(prefix="dlsys-sshd-")
        cls.stack = components.contextlib.ExitStack()
        try:
            cls.ssh = cls.stack.enter_context(components.sshd(cls.server_dir))
        except BaseException:
            cls.stack.close()
            shutil.rmtree(cls.server_dir, ignore_errors=True)
            raise

    @classmethod
    def tearDownClass(cls):
        cls.stack.close()
        shutil.rmtree(cls.server_dir, ignore_errors=True)

    def monitor(self, *args, env=None, timeout=120):
        full_env = dict(os.environ, **self.ssh.env)
        full_env.update(env or {})
        return subprocess.run([DLSYS, "monitor", *args], capture_output=True, text=True,
                              env=full_env, timeout=timeout)

    def summary(self, *args, env=None):
        r = self.monitor(*args, "--once", "--json", env=env)
        self.assertEqual(r.returncode, EXIT_OK, r.stderr)
        out = json.loads(r.stdout)
        validate(out, "monitor-summary.schema.json")
        return out

    def remote_processes(self, needle):
        """PIDs below sshd whose command line mentions needle (a remote tail or cat)."""
        out = []
        for pid in self.ssh.sessions():
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    if needle.encode() in f.read():
                        out.append(pid)
            except OSError:
                pass
        return out

    # -----------------------------------------------------------------------------------------

    def test_once_over_ssh_is_the_local_summary(self):
        log = self.path("serve.log")
        write_log(log, [request_line(i) for i in range(500)])
        local = self.summary(log)
        remote = self.summary(self.ssh.url(log))
        self.assertEqual(remote["requests"], 500)
        self.assertEqual(without_run_fields(remote), without_run_fields(local))
        # The same with the options in DLSYS_SSH_OPTIONS
        # instead of a config file (HOME elsewhere, so no ~/.ssh/config is read).
        home = self.path("home")
        os.makedirs(home)
        opts = " ".join([f"IdentityFile={self.ssh.identity}", "IdentitiesOnly=yes",
                         f"UserKnownHostsFile={self.ssh.known_hosts}",
                         "GlobalKnownHostsFile=/dev/null", "StrictHostKeyChecking=yes"])
        r = self.summary(self.ssh.url(log), env={"DLSYS_SSH_CONFIG": "", "HOME": home,
                                                 "DLSYS_SSH_OPTIONS": opts})
        self.assertEqual(without_run_fields(r), without_run_fields(local))

    def test_hostile_paths_are_read_as_file_names_and_never_run(self):
        d = self.path("hostile")
        os.makedirs(d)
        # A file name cannot hold '/', so the injected commands touch a relative name: it would
        # land in the remote shell's working directory, the user's home.
        marker = "PWNED-%d-%d" % (os.getpid(), time.monotonic_ns())
        landed = [os.path.join(pwd.getpwnam(self.ssh.user).pw_dir, marker),
                  os.path.join(d, marker), os.path.join(os.getcwd(), marker)]
        self.addCleanup(lambda: [os.path.exists(p) and os.remove(p) for p in landed])
        names = [f"x'; touch {marker}; '", f"$(touch {marker})", f"`touch {marker}`",
                 f"a; touch {marker}", f"a && touch {marker} #", f"a\\'; touch {marker}; '",
                 "-rf", "it's a log", '"dq" $HOME \\ * ?']
        for i, name in enumerate(names):
            path = os.path.join(d, name)
            write_log(path, [request_line(j) for j in range(i + 1)])
            with self.subTest(name=name):
                s = self.summary(self.ssh.url(path))
                self.assertEqual(s["requests"], i + 1)
                self.assertEqual([p for p in landed if os.path.exists(p)], [],
                                 "the remote shell ran part of a path")
        # The path of the issue (it does not exist): not found, and still nothing runs.
        outside = os.path.join(d, "PWNED")
        r = self.monitor(self.ssh.url(f"{d}/x'; touch {outside}; '"), "--once")
        self.assertEqual(r.returncode, EXIT_NOT_FOUND, r.stderr)
        self.assertFalse(os.path.exists(outside))

    def test_follow_over_ssh_sees_appends_and_a_rotation_and_stops_cleanly(self):
        log = self.path("serve.log")
        write_log(log, [request_line(i) for i in range(5)])
        env = dict(os.environ, **self.ssh.env)
        m = MonitorSnapshots(self, [self.ssh.url(log), "--follow", "--interval", "20ms",
                                    "--json"], env=env)
        wait_for = m.wait_for

        wait_for(lambda s: s["requests"] == 5, "the 5 requests already in the file")
        self.assertTrue(self.remote_processes(log), "a remote tail follows the file")
        write_log(log, [request_line(i) for i in range(5, 12)], mode="a")
        wait_for(lambda s: s["requests"] == 12, "12 requests after appending")
        # Rotation as logrotate does it (rename, then a new file): tail -F reads on.
        os.rename(log, log + ".1")
        write_log(log, [request_line(i) for i in range(12, 20)])
        wait_for(lambda s: s["requests"] == 20, "20 requests across the rotation")
        rest = m.stop()
        self.assertTrue(rest, "a last snapshot on SIGTERM")
        self.assertEqual(rest[-1]["requests"], 20)
        # Nothing is left running on the remote host once the connection is gone.
        deadline = time.monotonic() + 30
        while self.remote_processes(log) and time.monotonic() < deadline:
            time.sleep(0.01)  # polling the process table, bounded by the deadline
        self.assertEqual(self.remote_processes(log), [], "the remote tail outlived dlsys")

    def test_missing_remote_file_is_not_found_naming_host_and_path(self):
        missing = self.path("nope.log")
        for mode in ("--once", "--follow"):
            with self.subTest(mode=mode):
                r = self.monitor(self.ssh.url(missing), mode, timeout=60)
                self.assertEqual(r.returncode, EXIT_NOT_FOUND, r.stderr)
                self.assertIn(f"{self.ssh.user}@127.0.0.1:{self.ssh.port}", r.stderr)
                # The remote tool's own words, quoted: not a local open() failing on the URL.
                self.assertRegex(r.stderr, r"(cat|tail): .*nope\.log.*No such file or directory")

    def test_wrong_key_and_unknown_host_key_fail_without_a_prompt(self):
        other = self.path("other_key")
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", other], check=True,
                       timeout=60)
        with open(self.ssh.config) as f:
            config = f.read()
        wrong_key = self.path("wrong_key_config")
        with open(wrong_key, "w") as f:
            f.write(config.replace(self.ssh.identity, other))
        empty_known = self.path("known_hosts")
        open(empty_known, "w").close()
        unknown_host = self.path("unknown_host_config")
        with open(unknown_host, "w") as f:
            f.write(config.replace(self.ssh.known_hosts, empty_known))
        log = self.path("serve.log")
        write_log(log, [request_line(0)])
        for cfg, said in ((wrong_key, "Permission denied"),
                          (unknown_host, "Host key verification failed")):
            for mode in ("--once", "--follow"):
                with self.subTest(cfg=os.path.basename(cfg), mode=mode):
                    # No terminal and stdin not one: a prompt would fail or hang; BatchMode
                    # makes ssh fail at once, and the timeout would catch a hang.
                    r = self.monitor(self.ssh.url(log), mode, "--json",
                                     env={"DLSYS_SSH_CONFIG": cfg}, timeout=60)
                    self.assertEqual(r.returncode, EXIT_UNAVAILABLE, r.stderr)
                    self.assertIn(f"127.0.0.1:{self.ssh.port}", r.stderr)
                    self.assertIn(said, r.stderr)
                    if mode == "--once":
                        self.assertEqual(json.loads(r.stdout)["exit_code"], EXIT_UNAVAILABLE)

    def test_no_ssh_client_names_the_package(self):
        log = self.path("serve.log")
        write_log(log, [request_line(0)])
        r = self.monitor(self.ssh.url(log), "--once", env={"PATH": self.path("empty")})
        self.assertEqual(r.returncode, EXIT_UNAVAILABLE, r.stderr)
        self.assertIn("openssh-client", r.stderr)

    def test_bad_urls_are_usage_errors_before_any_connection(self):
        for url, said in (("ssh://-oProxyCommand=touch${IFS}PWNED/x", "starts with '-'"),
                          ("ssh://h:99999/x", "65535"), ("ssh://h", "no path"),
                          ("ssh://a b/x", "letters, digits")):
            with self.subTest(url=url):
                r = self.monitor(url, "--once")
                self.assertEqual(r.returncode, EXIT_USAGE, r.stderr)
                self.assertIn(said, r.stderr)
                self.assertIn("ssh://[USER@]HOST[:PORT]/PATH", r.stderr)
        self.assertFalse(os.path.exists("PWNED"))


class Harness(TempDirTest):
    """components.sshd on its own: the yielded options reach the server, which runs `cat` on a
    log as the current user, and the session ends with the connection (what dlsys relies on)."""

    def test_ssh_with_the_yielded_options_cats_a_log(self):
        log = self.path("serve.log")
        write_log(log, [request_line(i) for i in range(3)])
        with components.sshd(self.dir) as s:
            r = subprocess.run(s.ssh_argv("cat -- '%s'; id -un" % log), capture_output=True,
                               text=True, timeout=60)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(r.stdout, "".join(request_line(i) for i in range(3)) + s.user + "\n")
            r = subprocess.run(s.ssh_argv("exit 7"), capture_output=True, timeout=60)
            self.assertEqual(r.returncode, 7, "ssh passes the remote exit status")
            pid = s.proc.pid
        self.assertIsNotNone(s.proc.returncode, "sshd stopped")
        self.assertEqual(components.descendants(pid), [])


if __name__ == "__main__":
    unittest.main()
