#include "monitor/remote.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "test_tmp.h"

namespace dlsys::monitor {
namespace {

using dlsys::testing::Slurp;
using dlsys::testing::Spit;
using dlsys::testing::TempDir;

// ---------------------------------------------------------------------------------------------
// URLs

TEST(ParseSshUrl, Accepts) {
  struct Case {
    const char* url;
    const char* user;
    const char* host;
    int port;
    const char* path;
  };
  const Case cases[] = {
      {"ssh://web1/var/log/serve.log", "", "web1", 0, "/var/log/serve.log"},
      {"ssh://deploy@web1.example.com:2222/var/log/serve.log", "deploy", "web1.example.com", 2222,
       "/var/log/serve.log"},
      {"SSH://a_b-c.d@10.0.0.7:1/x", "a_b-c.d", "10.0.0.7", 1, "/x"},
      {"ssh://[::1]:65535/x", "", "::1", 65535, "/x"},
      {"ssh://u@[fe80::1%eth0]/x", "u", "fe80::1%eth0", 0, "/x"},
      {"ssh://[::ffff:10.0.0.1]/x", "", "::ffff:10.0.0.1", 0, "/x"},
      {"ssh://h/~/serve.log", "", "h", 0, "~/serve.log"},
      // The path is literal: no %-decoding; '?', '#', spaces, quotes and '@' ':' are file name.
      {"ssh://h/a%20b?c#d", "", "h", 0, "/a%20b?c#d"},
      {"ssh://h/it's a $(log)`x`;y", "", "h", 0, "/it's a $(log)`x`;y"},
      {"ssh://h/-rf", "", "h", 0, "/-rf"},
      {"ssh://h//double", "", "h", 0, "//double"},
      {"ssh://h/x@y:1", "", "h", 0, "/x@y:1"},
      {"ssh://h/\xc3\xa9t\xc3\xa9.log", "", "h", 0, "/\xc3\xa9t\xc3\xa9.log"},
  };
  for (const auto& c : cases) {
    auto t = ParseSshUrl(c.url);
    ASSERT_TRUE(t) << c.url << ": " << t.error().message;
    EXPECT_EQ(t->user, c.user) << c.url;
    EXPECT_EQ(t->host, c.host) << c.url;
    EXPECT_EQ(t->port, c.port) << c.url;
    EXPECT_EQ(t->path, c.path) << c.url;
  }
}

TEST(ParseSshUrl, RejectsWithAReasonAndAnExample) {
  struct Case {
    std::string url;
    const char* reason;
  };
  const Case cases[] = {
      {"http://h/x", "does not start with ssh://"},
      {"ssh://h", "no path"},
      {"ssh://h/", "path is empty"},
      {"ssh:///x", "host is empty"},
      {"ssh://@h/x", "user is empty"},
      {"ssh://-oProxyCommand=touch${IFS}x/x", "starts with '-'"},
      {"ssh://-p/x", "starts with '-'"},
      {"ssh://-l@h/x", "user '-l' starts with '-'"},
      {"ssh://a@b@h/x", "has a character other than"},
      {"ssh://h;x/x", "has a character other than"},
      {"ssh://h x/x", "has a character other than"},
      {"ssh://h$(x)/x", "has a character other than"},
      {"ssh://h:0/x", "port '0'"},
      {"ssh://h:65536/x", "port '65536'"},
      {"ssh://h:/x", "port ''"},
      {"ssh://h:+22/x", "port '+22'"},
      {"ssh://h:22a/x", "port '22a'"},
      {"ssh://h:0000022/x", "port '0000022'"},
      {"ssh://[::1/x", "not closed"},
      {"ssh://[h]/x", "not an IPv6 address"},
      {"ssh://[::1%]/x", "not an IPv6 address"},
      {"ssh://[::1]x/x", "after ']'"},
      {"ssh://[::1]:0/x", "port '0'"},
      {"ssh://h/x\ny", "control character"},
      {"ssh://h/x\x1b[2Jy", "control character"},
      {std::string("ssh://h/x\0y", 11), "control character"},
      {"ssh://h/~", "/~/FILE"},
      {"ssh://h/~/", "/~/FILE"},
      {"ssh://h/~root/x", "/~/FILE"},
  };
  for (const auto& c : cases) {
    auto t = ParseSshUrl(c.url);
    ASSERT_FALSE(t) << c.url;
    EXPECT_EQ(t.error().code, Code::kUsage) << c.url;
    EXPECT_NE(t.error().message.find(c.reason), std::string::npos)
        << c.url << " -> " << t.error().message;
    EXPECT_EQ(t.error().message.find('\x1b'), std::string::npos) << "terminal-safe";
    ASSERT_FALSE(t.error().details.empty());
    EXPECT_NE(t.error().details[0].find("ssh://deploy@web1.example.com:2222/"), std::string::npos);
  }
}

TEST(ParseSshUrl, UrlAndWhereRoundTrip) {
  for (const char* url :
       {"ssh://u@h:22/x y", "ssh://h/~/a.log", "ssh://[::1]:2222/x", "ssh://[::1]/x"}) {
    auto t = ParseSshUrl(url);
    ASSERT_TRUE(t) << url;
    EXPECT_EQ(t->Url(), url);
  }
  EXPECT_EQ(ParseSshUrl("ssh://u@h:22/x")->Where(), "u@h:22");
  EXPECT_EQ(ParseSshUrl("ssh://[::1]:2222/x")->Where(), "[::1]:2222");
  EXPECT_EQ(ParseSshUrl("ssh://[::1]/x")->Where(), "::1");
  EXPECT_TRUE(IsSshUrl("SSH://h/x"));
  EXPECT_FALSE(IsSshUrl("./ssh://h/x"));
  EXPECT_FALSE(IsSshUrl("ssh:"));
}

// ---------------------------------------------------------------------------------------------
// Quoting: what the remote shell reads back is the path, byte for byte.

const std::vector<std::string>& HostileNames() {
  static const std::vector<std::string> names = {
      "plain.log",
      "a b  c",
      "it's",
      "''",
      "'",
      "x'; touch PWNED; '",
      "$(touch PWNED)",
      "`touch PWNED`",
      "a;touch PWNED",
      "a&&touch PWNED|cat>PWNED",
      "-rf",
      "--",
      "back\\slash\\'",
      "*",
      "?",
      "\"dq\" $HOME ${HOME} !x",
      "\xc3\xa9t\xc3\xa9 \xf0\x9f\x98\x80",
      "~x",
      "#hash",
  };
  return names;
}

// The output of `printf '%s' WORD` run by /bin/sh, where WORD is shell text.
std::string ShellPrints(const std::string& word) {
  const std::string cmd = "printf '%s' " + word;
  FILE* p = ::popen(cmd.c_str(), "r");  // popen runs /bin/sh -c cmd: the parser under test
  std::string out;
  char buf[256];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  ::pclose(p);
  return out;
}

TEST(ShellQuote, RoundTripsThroughShByteForByte) {
  std::vector<std::string> all = HostileNames();
  all.push_back("new\nline\ttab\r\x01\x7f");  // kept out of URLs, but quoting still holds
  std::string every_byte;
  for (int c = 1; c < 256; ++c) every_byte += static_cast<char>(c);
  all.push_back(every_byte);
  for (const auto& s : all) {
    EXPECT_EQ(ShellPrints(ShellQuote(s)), s) << ShellQuote(s);
  }
}

TEST(RemoteCommand, QuotesThePathAndUsesOnlyTailOrCat) {
  SshTarget t{"", "h", 0, "/var/log/it's.log"};
  EXPECT_EQ(RemoteCommand(t, false), "exec env LC_ALL=C cat -- '/var/log/it'\\''s.log'");
  EXPECT_EQ(RemoteCommand(t, true),
            "env LC_ALL=C tail -c 1 -- '/var/log/it'\\''s.log' >/dev/null && "
            "exec env LC_ALL=C tail -F -n +1 -- '/var/log/it'\\''s.log'");
  t.path = "~/a b.log";
  EXPECT_EQ(RemoteCommand(t, false), "exec env LC_ALL=C cat -- ~/'a b.log'");
}

TEST(SshArgv, UrlPartsThenUserOptionsThenDefaultsThenHostAndOneCommand) {
  SshTarget t{"deploy", "web1", 2222, "/x.log"};
  SshOptions o;
  o.config_file = "/etc/dlsys/ssh config";
  o.options = {"IdentityFile=/k", "BatchMode=no"};
  const std::vector<std::string> want = {"ssh",
                                         "-T",
                                         "-a",
                                         "-x",
                                         "-p",
                                         "2222",
                                         "-l",
                                         "deploy",
                                         "-F",
                                         "/etc/dlsys/ssh config",
                                         "-o",
                                         "IdentityFile=/k",
                                         "-o",
                                         "BatchMode=no",
                                         "-o",
                                         "BatchMode=yes",
                                         "-o",
                                         "ConnectTimeout=10",
                                         "-o",
                                         "ServerAliveInterval=10",
                                         "-o",
                                         "ClearAllForwardings=yes",
                                         "--",
                                         "web1",
                                         "exec env LC_ALL=C cat -- '/x.log'"};
  EXPECT_EQ(SshArgv(t, false, o), want);
  const auto plain = SshArgv(SshTarget{"", "::1", 0, "/x"}, true, SshOptions{});
  EXPECT_EQ(plain[4], "-o") << "no -p, -l or -F when the URL and options have none";
  EXPECT_EQ(plain[plain.size() - 2], "::1");
}

class EnvVar {
 public:
  EnvVar(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old, had_ = true;
    if (value) {
      ::setenv(name, value, 1);
    } else {
      ::unsetenv(name);
    }
  }
  ~EnvVar() {
    if (had_) {
      ::setenv(name_, old_.c_str(), 1);
    } else {
      ::unsetenv(name_);
    }
  }

 private:
  const char* name_;
  std::string old_;
  bool had_ = false;
};

TEST(SshOptionsFromEnv, ReadsConfigAndKeyValueOptions) {
  EnvVar config("DLSYS_SSH_CONFIG", "/home/me/.ssh/dlsys");
  EnvVar opts("DLSYS_SSH_OPTIONS", "  IdentityFile=~/.ssh/ci\tProxyJump=bastion\n");
  auto o = SshOptionsFromEnv();
  ASSERT_TRUE(o) << o.error().message;
  EXPECT_EQ(o->config_file, "/home/me/.ssh/dlsys");
  EXPECT_EQ(o->options, (std::vector<std::string>{"IdentityFile=~/.ssh/ci", "ProxyJump=bastion"}));
  for (const char* bad : {"-oProxyCommand=x", "IdentityFile", "=x", "Key=", "Ke-y=1"}) {
    EnvVar b("DLSYS_SSH_OPTIONS", bad);
    auto r = SshOptionsFromEnv();
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.error().code, Code::kUsage);
    EXPECT_NE(r.error().message.find("DLSYS_SSH_OPTIONS"), std::string::npos);
  }
  EnvVar none1("DLSYS_SSH_CONFIG", nullptr);
  EnvVar none2("DLSYS_SSH_OPTIONS", nullptr);
  auto empty = SshOptionsFromEnv();
  ASSERT_TRUE(empty);
  EXPECT_TRUE(empty->config_file.empty());
  EXPECT_TRUE(empty->options.empty());
}

// ---------------------------------------------------------------------------------------------
// OpenSsh with a fake ssh: a shell script that records its argv (NUL-separated), its open
// descriptors and its stdin, then runs the remote command locally through sh -c, as the
// remote login shell would. FAKE_SSH_MODE selects a misbehaviour.

constexpr const char* kFakeSsh = R"(#!/bin/sh
dir=$(dirname "$0")
for a in "$@"; do printf '%s\0' "$a"; done > "$dir/argv"
ls -l /proc/$$/fd > "$dir/fds" 2>&1
readlink /proc/$$/fd/0 > "$dir/stdin"
ps -o pgid= -p $$ > "$dir/pgid"
case "$FAKE_SSH_MODE" in
  denied) echo "Warning: Permanently added 'h' (ED25519) to the list of known hosts." >&2
          echo "deploy@h: Permission denied (publickey)." >&2; exit 255 ;;
  escape) printf 'evil \033[2J\033]0;title\007 line\r\n' >&2; exit 255 ;;
  flood)  head -c 1000000 /dev/zero | tr '\0' 'x' >&2; echo >&2; echo "the last line" >&2; exit 3 ;;
  nocmd)  echo "sh: 1: tail: not found" >&2; exit 127 ;;
  deaf)   trap '' TERM; : > "$dir/ready"; exec sleep 1000 ;;
esac
for last in "$@"; do :; done
exec /bin/sh -c "$last"
)";

// sh (dash) clears the signal mask when it starts, which would hide an inherited one: this fake
// records the mask it was started with (perl leaves it alone), then runs the command as above.
constexpr const char* kMaskRecordingSsh = R"(#!/usr/bin/perl
use File::Basename;
open(my $in, "<", "/proc/self/status") or die;
open(my $out, ">", dirname($0) . "/sigblk") or die;
print $out grep { /^SigBlk:/ } <$in>;
close($out);
exec("/bin/sh", "-c", $ARGV[-1]);
)";

class OpenSshTest : public ::testing::Test {
 protected:
  void SetUp() override {
    fake_ = dir_ / "ssh";
    Spit(fake_, kFakeSsh);
    ::chmod(fake_.c_str(), 0755);
    options_.program = fake_;
    ::unsetenv("FAKE_SSH_MODE");
  }
  void TearDown() override { ::unsetenv("FAKE_SSH_MODE"); }

  SshTarget Target(const std::string& path) { return SshTarget{"deploy", "h", 2222, path}; }

  // Reads fd until `want` bytes arrived, or end of file, or 30 s passed.
  static std::string ReadUpTo(int fd, std::size_t want, bool* eof = nullptr) {
    std::string out;
    char buf[4096];
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (out.size() < want && std::chrono::steady_clock::now() < deadline) {
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, 100) <= 0) continue;
      const ssize_t n = ::read(fd, buf, sizeof buf);
      if (n <= 0) {
        if (eof) *eof = true;
        break;
      }
      out.append(buf, static_cast<std::size_t>(n));
    }
    return out;
  }
  // Everything up to end of file; a stream that never ends fails the test and is stopped, so
  // a later Wait() cannot hang.
  static std::string ReadAll(RemoteStream& s) {
    bool eof = false;
    std::string out = ReadUpTo(s.fd(), std::string::npos, &eof);
    if (!eof) {
      ADD_FAILURE() << "ssh's output never ended; stopping it";
      s.Stop();
    }
    return out;
  }

  std::vector<std::string> RecordedArgv() {
    std::vector<std::string> out;
    const std::string raw = Slurp(dir_ / "argv");
    std::size_t at = 0;
    while (at < raw.size()) {
      const auto nul = raw.find('\0', at);
      out.push_back(raw.substr(at, nul - at));
      at = nul + 1;
    }
    return out;
  }

  static bool Reaped(pid_t pid) { return ::waitpid(pid, nullptr, WNOHANG) < 0 && errno == ECHILD; }

  TempDir dir_;
  std::string fake_;
  SshOptions options_;
};

TEST_F(OpenSshTest, ReadsHostileFileNamesAndRunsNothingElse) {
  const std::string logs = dir_ / "logs";
  std::filesystem::create_directories(logs);
  for (const auto& name : HostileNames()) {
    const std::string path = logs + "/" + name;
    Spit(path, "{\"status\":200} " + name + "\n");
    auto s = OpenSsh(Target(path), /*follow=*/false, options_);
    ASSERT_TRUE(s) << s.error().message;
    EXPECT_EQ(ReadAll(*s), "{\"status\":200} " + name + "\n") << name;
    EXPECT_TRUE(s->Finish()) << name;
    const auto want = SshArgv(Target(path), false, options_);
    EXPECT_EQ(RecordedArgv(), std::vector<std::string>(want.begin() + 1, want.end())) << name;
  }
  for (const char* cwd : {".", "logs"}) {
    EXPECT_FALSE(std::filesystem::exists(dir_ / (std::string(cwd) + "/PWNED")));
  }
  EXPECT_FALSE(std::filesystem::exists("PWNED"));
}

TEST_F(OpenSshTest, HomeRelativePathIsReadFromTheRemoteHome) {
  const std::string home = dir_ / "home";
  std::filesystem::create_directories(home);
  Spit(home + "/my log's.json", "{}\n");
  EnvVar h("HOME", home.c_str());
  auto t = ParseSshUrl("ssh://h/~/my log's.json");
  ASSERT_TRUE(t);
  auto s = OpenSsh(*t, false, options_);
  ASSERT_TRUE(s);
  EXPECT_EQ(ReadAll(*s), "{}\n");
  EXPECT_TRUE(s->Finish());
}

TEST_F(OpenSshTest, ChildGetsDevNullStdinOnlyThreeDescriptorsAndItsOwnGroup) {
  int leak[2];
  ASSERT_EQ(::pipe(leak), 0);  // no O_CLOEXEC: as if another thread had just opened it
  struct stat st {};
  ::fstat(leak[0], &st);
  const std::string log = dir_ / "a.log";
  Spit(log, "x\n");
  auto s = OpenSsh(Target(log), false, options_);
  ASSERT_TRUE(s);
  EXPECT_EQ(ReadAll(*s), "x\n");
  EXPECT_TRUE(s->Finish());
  ::close(leak[0]);
  ::close(leak[1]);
  EXPECT_EQ(Slurp(dir_ / "stdin"), "/dev/null\n");
  const std::string fds = Slurp(dir_ / "fds");
  EXPECT_EQ(fds.find("pipe:[" + std::to_string(st.st_ino) + "]"), std::string::npos) << fds;
  // Besides /dev/null and files in the test directory (the script, the listing), the shell
  // holds only ssh's two pipes (stdout and stderr, and the copies sh saved while redirecting).
  std::set<std::string> pipes;
  for (std::size_t at = 0; (at = fds.find("pipe:[", at)) != std::string::npos; ++at) {
    pipes.insert(fds.substr(at, fds.find(']', at) - at));
  }
  EXPECT_LE(pipes.size(), 2u) << fds;
  EXPECT_EQ(std::stoi(Slurp(dir_ / "pgid")), s->pid()) << "ssh leads its own process group";
}

TEST_F(OpenSshTest, FollowSeesAppendsAndStopReapsEvenWithStopSignalsBlocked) {
  // dlsys monitor --follow blocks SIGTERM/SIGINT/SIGHUP; ssh must not inherit that.
  sigset_t stop, old;
  sigemptyset(&stop);
  for (int sig : {SIGTERM, SIGINT, SIGHUP}) sigaddset(&stop, sig);
  ASSERT_EQ(::pthread_sigmask(SIG_BLOCK, &stop, &old), 0);
  const std::string log = dir_ / "f.log";
  Spit(log, "one\n");
  Spit(dir_ / "ssh-mask", kMaskRecordingSsh);
  ::chmod((dir_ / "ssh-mask").c_str(), 0755);
  options_.program = dir_ / "ssh-mask";
  auto s = OpenSsh(Target(log), /*follow=*/true, options_);
  ASSERT_TRUE(s);
  EXPECT_EQ(ReadUpTo(s->fd(), 4), "one\n");
  EXPECT_EQ(Slurp(dir_ / "sigblk"), "SigBlk:\t0000000000000000\n") << "ssh starts unblocked";
  {
    std::FILE* f = std::fopen(log.c_str(), "a");
    std::fputs("two\n", f);
    std::fclose(f);
  }
  EXPECT_EQ(ReadUpTo(s->fd(), 4), "two\n");
  const pid_t pid = s->pid();
  const auto before = std::chrono::steady_clock::now();
  s->Stop(/*grace_ms=*/60000);
  EXPECT_LT(std::chrono::steady_clock::now() - before, std::chrono::seconds(30))
      << "SIGTERM ended it; no wait for a SIGKILL";
  EXPECT_TRUE(Reaped(pid));
  const RemoteExit& e = s->Wait();
  EXPECT_EQ(e.signal, SIGTERM);
  EXPECT_TRUE(e.stopped);
  EXPECT_TRUE(s->Finish()) << "stopped on purpose is not a failure";
  ASSERT_EQ(::pthread_sigmask(SIG_SETMASK, &old, nullptr), 0);
}

TEST_F(OpenSshTest, StopEscalatesToSigkillAfterTheGrace) {
  ::setenv("FAKE_SSH_MODE", "deaf", 1);
  auto s = OpenSsh(Target("/x"), true, options_);
  ASSERT_TRUE(s);
  // Wait until the fake ignores SIGTERM (it then execs sleep, which inherits that).
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (!std::filesystem::exists(dir_ / "ready") && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));  // polling a file, bounded
  }
  const pid_t pid = s->pid();
  s->Stop(/*grace_ms=*/200);
  EXPECT_TRUE(Reaped(pid));
  EXPECT_EQ(s->Wait().signal, SIGKILL);
}

TEST_F(OpenSshTest, DestructorStopsAndReaps) {
  const std::string log = dir_ / "d.log";
  Spit(log, "a\n");
  pid_t pid = -1;
  {
    auto s = OpenSsh(Target(log), true, options_);
    ASSERT_TRUE(s);
    pid = s->pid();
    EXPECT_EQ(ReadUpTo(s->fd(), 2), "a\n");
  }
  EXPECT_TRUE(Reaped(pid));
}

TEST_F(OpenSshTest, MissingRemoteFileIsNotFoundNamingHostAndFile) {
  for (bool follow : {false, true}) {
    auto s = OpenSsh(Target(dir_ / "nope.log"), follow, options_);
    ASSERT_TRUE(s);
    EXPECT_EQ(ReadAll(*s), "");
    auto r = s->Finish();
    ASSERT_FALSE(r) << "follow=" << follow;
    EXPECT_EQ(r.error().code, Code::kNotFound);
    EXPECT_NE(r.error().message.find("deploy@h:2222"), std::string::npos) << r.error().message;
    EXPECT_NE(r.error().message.find("nope.log' not found"), std::string::npos)
        << r.error().message;
    EXPECT_NE(r.error().message.find("No such file or directory"), std::string::npos);
  }
}

TEST_F(OpenSshTest, SshFailureIsUnavailableWithItsLastStderrLine) {
  ::setenv("FAKE_SSH_MODE", "denied", 1);
  auto s = OpenSsh(Target("/x"), true, options_);
  ASSERT_TRUE(s);
  EXPECT_EQ(ReadAll(*s), "");
  auto r = s->Finish();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Code::kUnavailable);
  EXPECT_EQ(r.error().message,
            "cannot connect to deploy@h:2222 with ssh (exit 255): deploy@h: Permission denied "
            "(publickey).");
  EXPECT_NE(r.error().details[0].find("ssh -o BatchMode=yes -p 2222 deploy@h true"),
            std::string::npos);
  EXPECT_NE(s->Wait().stderr_tail.find("Permanently added"), std::string::npos);
}

TEST_F(OpenSshTest, StderrIsTerminalSafeAndBounded) {
  ::setenv("FAKE_SSH_MODE", "escape", 1);
  auto s = OpenSsh(Target("/x"), false, options_);
  ASSERT_TRUE(s);
  auto r = s->Finish();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message.find('\x1b'), std::string::npos) << r.error().message;
  EXPECT_NE(r.error().message.find("evil \\x1b[2J\\x1b]0;title\\x07 line"), std::string::npos)
      << r.error().message;

  ::setenv("FAKE_SSH_MODE", "flood", 1);
  auto f = OpenSsh(Target("/x"), false, options_);
  ASSERT_TRUE(f);
  auto fr = f->Finish();
  ASSERT_FALSE(fr);
  EXPECT_EQ(fr.error().code, Code::kInvalid);
  EXPECT_NE(fr.error().message.find("(exit 3): the last line"), std::string::npos)
      << fr.error().message.substr(0, 200);
  EXPECT_LE(f->Wait().stderr_tail.size(), std::size_t{8} << 10);
}

TEST_F(OpenSshTest, RemoteWithoutTailIsUnavailable) {
  ::setenv("FAKE_SSH_MODE", "nocmd", 1);
  auto s = OpenSsh(Target("/x"), true, options_);
  ASSERT_TRUE(s);
  auto r = s->Finish();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Code::kUnavailable);
  EXPECT_NE(r.error().message.find("tail: not found"), std::string::npos);
}

TEST_F(OpenSshTest, FindsSshOnPathOrNamesThePackage) {
  const std::string log = dir_ / "p.log";
  Spit(log, "p\n");
  {
    EnvVar path("PATH", (dir_.path().string() + ":/usr/bin:/bin").c_str());
    auto s = OpenSsh(Target(log), false, SshOptions{});  // program "ssh": the fake, by PATH
    ASSERT_TRUE(s);
    EXPECT_EQ(ReadAll(*s), "p\n");
    EXPECT_TRUE(s->Finish());
  }
  EnvVar path("PATH", (dir_ / "empty").c_str());
  auto s = OpenSsh(Target(log), false, SshOptions{});
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code, Code::kUnavailable);
  EXPECT_NE(s.error().details[0].find("openssh-client"), std::string::npos);
}

}  // namespace
}  // namespace dlsys::monitor
