#include "monitor/remote.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <optional>
#include <thread>

#include "core/file.h"
#include "core/text.h"

extern char** environ;

namespace dlsys::monitor {
namespace {

// What is kept of ssh's stderr: several lines of ssh diagnostics (a host key warning is ~10
// lines of ~70 characters), while a remote host that floods stderr cannot grow our memory.
constexpr std::size_t kStderrTailBytes = 8 << 10;
// Characters of ssh's last stderr line quoted in an error message.
constexpr std::size_t kQuotedLineChars = 300;
// How long Wait() lets another process hold ssh's stderr open after ssh ended (a ProxyCommand,
// a ControlPersist master) before it stops reading it.
constexpr int kStderrDrainMs = 1000;

constexpr std::string_view kExample =
    "e.g. ssh://deploy@web1.example.com:2222/var/log/dlsys/serve.log";

tl::unexpected<Error> UrlError(std::string_view url, const std::string& problem) {
  return Fail(Code::kUsage, "'" + core::TerminalSafe(url) + "' is not an ssh:// URL: " + problem,
              {"give ssh://[USER@]HOST[:PORT]/PATH, " + std::string(kExample) +
               " (ssh://HOST/~/serve.log for a path in the remote home)"});
}

bool IsNameChar(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-';
}

bool HasControl(std::string_view s) {
  return std::any_of(s.begin(), s.end(), [](char c) {
    const auto u = static_cast<unsigned char>(c);
    return u < 0x20 || u == 0x7f;
  });
}

// "user", "host": non-empty, the conservative charset, not an option.
std::optional<std::string> CheckName(std::string_view what, std::string_view s) {
  if (s.empty()) return "the " + std::string(what) + " is empty";
  if (s.front() == '-') {
    return "the " + std::string(what) + " '" + core::TerminalSafe(s) +
           "' starts with '-' (it would be read as an ssh option)";
  }
  if (!std::all_of(s.begin(), s.end(), IsNameChar)) {
    return "the " + std::string(what) + " '" + core::TerminalSafe(s) +
           "' has a character other than letters, digits, '.', '_' and '-'" +
           (what == "user" ? " (set an unusual user name as User in ~/.ssh/config)" : "");
  }
  return std::nullopt;
}

// The inside of [...]: hex digits, ':' and '.' (an embedded IPv4), at least one ':', and an
// optional %zone of name characters.
bool IsIpv6Literal(std::string_view s) {
  const auto pct = s.find('%');
  const std::string_view addr = s.substr(0, pct);
  if (addr.find(':') == std::string_view::npos) return false;
  if (!std::all_of(addr.begin(), addr.end(), [](char c) {
        return std::isxdigit(static_cast<unsigned char>(c)) || c == ':' || c == '.';
      })) {
    return false;
  }
  if (pct == std::string_view::npos) return true;
  const std::string_view zone = s.substr(pct + 1);
  return !zone.empty() && std::all_of(zone.begin(), zone.end(), IsNameChar);
}

std::string Lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// A bare program name looked up on PATH as execvp would; empty if not found.
std::string FindProgram(const std::string& program) {
  if (program.find('/') != std::string::npos) {
    return ::access(program.c_str(), X_OK) == 0 ? program : std::string();
  }
  const char* path = std::getenv("PATH");
  std::string_view dirs = path != nullptr ? path : "/usr/bin:/bin";
  while (true) {
    const auto colon = dirs.find(':');
    std::string dir(dirs.substr(0, colon));
    if (dir.empty()) dir = ".";
    const std::string candidate = dir + "/" + program;
    struct stat st {};
    if (::stat(candidate.c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
        ::access(candidate.c_str(), X_OK) == 0) {
      return candidate;
    }
    if (colon == std::string_view::npos) return {};
    dirs.remove_prefix(colon + 1);
  }
}

// The last non-empty line of ssh's stderr, terminal-safe and bounded.
std::string LastLine(std::string_view text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r' || text.back() == ' ')) {
    text.remove_suffix(1);
  }
  const auto nl = text.find_last_of('\n');
  if (nl != std::string_view::npos) text.remove_prefix(nl + 1);
  while (!text.empty() && text.back() == '\r') text.remove_suffix(1);
  return core::Truncate(core::TerminalSafe(text), kQuotedLineChars);
}

}  // namespace

std::string SshTarget::Url() const {
  std::string out = "ssh://";
  if (!user.empty()) out += user + "@";
  out += host.find(':') != std::string::npos ? "[" + host + "]" : host;
  if (port != 0) out += ":" + std::to_string(port);
  out += path.starts_with("~/") ? "/" + path : path;
  return out;
}

std::string SshTarget::Where() const {
  std::string out;
  if (!user.empty()) out += user + "@";
  const bool v6 = host.find(':') != std::string::npos;
  out += v6 && port != 0 ? "[" + host + "]" : host;
  if (port != 0) out += ":" + std::to_string(port);
  return out;
}

bool IsSshUrl(std::string_view arg) { return Lower(arg.substr(0, 6)) == "ssh://"; }

Result<SshTarget> ParseSshUrl(std::string_view url) {
  if (!IsSshUrl(url)) return UrlError(url, "it does not start with ssh://");
  if (url.find('\0') != std::string_view::npos || HasControl(url)) {
    return UrlError(url, "it contains a control character");
  }
  std::string_view rest = url.substr(6);
  const auto slash = rest.find('/');
  if (slash == std::string_view::npos) {
    return UrlError(url, "there is no path after the host");
  }
  std::string_view authority = rest.substr(0, slash);
  const std::string_view path = rest.substr(slash);
  SshTarget t;
  const auto at = authority.find('@');
  if (at != std::string_view::npos) {
    const std::string_view user = authority.substr(0, at);
    if (auto problem = CheckName("user", user)) return UrlError(url, *problem);
    t.user = user;
    authority.remove_prefix(at + 1);
  }
  std::string_view port;
  bool has_port = false;
  if (authority.starts_with("[")) {
    const auto close = authority.find(']');
    if (close == std::string_view::npos) return UrlError(url, "the '[' of the host is not closed");
    const std::string_view v6 = authority.substr(1, close - 1);
    if (!IsIpv6Literal(v6)) {
      return UrlError(url, "'[" + core::TerminalSafe(v6) + "]' is not an IPv6 address");
    }
    t.host = v6;
    const std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return UrlError(url, "expected ':PORT' or '/' after ']'");
      has_port = true;
      port = after.substr(1);
    }
  } else {
    const auto colon = authority.find(':');
    const std::string_view host = authority.substr(0, colon);
    if (auto problem = CheckName("host", host)) return UrlError(url, *problem);
    t.host = host;
    if (colon != std::string_view::npos) {
      has_port = true;
      port = authority.substr(colon + 1);
    }
  }
  if (has_port) {
    long value = 0;
    const bool digits =
        !port.empty() && port.size() <= 5 &&
        std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; });
    if (digits) value = std::stol(std::string(port));
    if (!digits || value < 1 || value > 65535) {
      return UrlError(url,
                      "the port '" + core::TerminalSafe(port) + "' is not a number in 1..65535");
    }
    t.port = static_cast<int>(value);
  }
  if (path == "/") return UrlError(url, "the path is empty");
  if (path.starts_with("/~")) {
    // Only "~/rest": "~user/..." would name another account's home, and "~" alone a directory.
    if (!path.starts_with("/~/") || path.size() == 3) {
      return UrlError(url, "a path in the remote home is written /~/FILE");
    }
    t.path = path.substr(1);
  } else {
    t.path = path;
  }
  return t;
}

std::string ShellQuote(std::string_view s) {
  std::string out = "'";
  for (const char c : s) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out += c;
    }
  }
  out += "'";
  return out;
}

std::string RemoteCommand(const SshTarget& target, bool follow) {
  const std::string quoted = target.path.starts_with("~/")
                                 ? "~/" + ShellQuote(std::string_view(target.path).substr(2))
                                 : ShellQuote(target.path);
  if (!follow) return "exec env LC_ALL=C cat -- " + quoted;
  // `tail -F` waits for a missing file to appear; the first tail fails at once instead.
  return "env LC_ALL=C tail -c 1 -- " + quoted +
         " >/dev/null && exec env LC_ALL=C tail -F -n +1 -- " + quoted;
}

Result<SshOptions> SshOptionsFromEnv() {
  SshOptions o;
  if (const char* config = std::getenv("DLSYS_SSH_CONFIG"); config != nullptr && *config) {
    if (HasControl(config)) {
      return Fail(Code::kUsage, "DLSYS_SSH_CONFIG contains a control character",
                  {"set it to the path of an ssh_config file"});
    }
    o.config_file = config;
  }
  if (const char* list = std::getenv("DLSYS_SSH_OPTIONS"); list != nullptr) {
    std::string_view rest = list;
    while (!rest.empty()) {
      const auto begin = rest.find_first_not_of(" \t\n");
      if (begin == std::string_view::npos) break;
      rest.remove_prefix(begin);
      const auto end = rest.find_first_of(" \t\n");
      const std::string_view item = rest.substr(0, end);
      rest.remove_prefix(item.size());
      const auto eq = item.find('=');
      const bool key_ok =
          eq != std::string_view::npos && eq > 0 &&
          std::all_of(item.begin(), item.begin() + static_cast<long>(eq),
                      [](char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0; });
      if (!key_ok || eq + 1 == item.size() || HasControl(item)) {
        return Fail(Code::kUsage,
                    "DLSYS_SSH_OPTIONS entry '" + core::TerminalSafe(item) +
                        "' is not an ssh option of the form KEY=VALUE",
                    {"e.g. DLSYS_SSH_OPTIONS='IdentityFile=~/.ssh/ci ProxyJump=bastion' (a value "
                     "with spaces goes in an ssh_config file named by DLSYS_SSH_CONFIG)"});
      }
      o.options.emplace_back(item);
    }
  }
  return o;
}

std::vector<std::string> SshArgv(const SshTarget& target, bool follow, const SshOptions& options) {
  // No tty (-T: the log's bytes arrive unchanged), no agent or X11 forwarding (-a -x: the
  // remote host gets nothing it does not need). -p and -l come from the URL and win over any
  // config; the user's options come before dlsys's defaults because ssh keeps the first value.
  std::vector<std::string> argv = {options.program, "-T", "-a", "-x"};
  if (target.port != 0) argv.insert(argv.end(), {"-p", std::to_string(target.port)});
  if (!target.user.empty()) argv.insert(argv.end(), {"-l", target.user});
  if (!options.config_file.empty()) argv.insert(argv.end(), {"-F", options.config_file});
  for (const auto& o : options.options) argv.insert(argv.end(), {"-o", o});
  // Never prompt (the terminal shows the live view); fail a dead connection within ~30 s
  // (3 unanswered keep-alives, ssh's ServerAliveCountMax default) instead of never; forwardings
  // from ~/.ssh/config are not wanted and could fail on a busy port.
  argv.insert(argv.end(),
              {"-o", "BatchMode=yes", "-o", "ConnectTimeout=10", "-o", "ServerAliveInterval=10",
               "-o", "ClearAllForwardings=yes", "--", target.host, RemoteCommand(target, follow)});
  return argv;
}

// ---------------------------------------------------------------------------------------------

struct RemoteStream::Impl {
  SshTarget target;
  pid_t pid = -1;
  core::UniqueFd out;     // ssh's stdout, read by the caller
  core::UniqueFd pidfd;   // to wait for ssh with a timeout (may be invalid: old kernels)
  core::UniqueFd wake_w;  // written to stop the stderr thread
  core::UniqueFd wake_r;
  core::UniqueFd err;  // ssh's stderr, read by the thread
  std::thread reader;
  mutable std::mutex mu;
  std::condition_variable cv;
  std::string tail;      // guarded by mu
  bool err_eof = false;  // guarded by mu
  bool reaped = false;
  bool stopped = false;
  RemoteExit exit;

  void ReadStderr() {
    char buf[4096];
    for (;;) {
      pollfd p[2] = {{err.get(), POLLIN, 0}, {wake_r.get(), POLLIN, 0}};
      if (::poll(p, 2, -1) < 0) {
        if (errno == EINTR) continue;
        break;
      }
      // What ssh wrote comes first; the wake-up only ends the wait for more.
      if (p[0].revents != 0) {
        const ssize_t n = ::read(err.get(), buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;  // end of file: ssh and its children closed stderr
        std::lock_guard lock(mu);
        tail.append(buf, static_cast<std::size_t>(n));
        if (tail.size() > kStderrTailBytes) tail.erase(0, tail.size() - kStderrTailBytes);
        continue;
      }
      if (p[1].revents != 0) break;
    }
    std::lock_guard lock(mu);
    err_eof = true;
    cv.notify_all();
  }

  void Reap(int options_flags) {
    if (reaped) return;
    int status = 0;
    pid_t r;
    while ((r = ::waitpid(pid, &status, options_flags)) < 0 && errno == EINTR) {
    }
    if (r != pid) return;
    reaped = true;
    if (WIFEXITED(status)) exit.exit_code = WEXITSTATUS(status);
    if (WIFSIGNALED(status)) exit.signal = WTERMSIG(status);
  }

  // Until ssh ends or timeout_ms passes (-1: no limit); true if it ended.
  bool WaitExit(int timeout_ms) {
    if (reaped) return true;
    if (timeout_ms < 0) {
      Reap(0);
      return true;
    }
    if (pidfd) {
      pollfd p{pidfd.get(), POLLIN, 0};
      const auto deadline =
          std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
      for (;;) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                              deadline - std::chrono::steady_clock::now())
                              .count();
        const int r = ::poll(&p, 1, static_cast<int>(std::max<long>(0, left)));
        if (r < 0 && errno == EINTR) continue;
        break;
      }
      Reap(WNOHANG);
      return reaped;
    }
    // No pidfd (Linux before 5.3): look every 10 ms until the deadline.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    for (;;) {
      Reap(WNOHANG);
      if (reaped || std::chrono::steady_clock::now() >= deadline) return reaped;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }

  // After ssh ended: what is left in the stderr pipe, unless a grandchild keeps it open.
  void StopReader() {
    if (!reader.joinable()) return;
    {
      std::unique_lock lock(mu);
      cv.wait_for(lock, std::chrono::milliseconds(kStderrDrainMs), [this] { return err_eof; });
    }
    const char one = 1;
    while (::write(wake_w.get(), &one, 1) < 0 && errno == EINTR) {
    }
    reader.join();
  }
};

RemoteStream::RemoteStream(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
RemoteStream::RemoteStream(RemoteStream&&) noexcept = default;
RemoteStream& RemoteStream::operator=(RemoteStream&& other) noexcept {
  if (this != &other) {
    if (impl_) Stop();
    if (impl_) impl_->StopReader();
    impl_ = std::move(other.impl_);
  }
  return *this;
}

RemoteStream::~RemoteStream() {
  if (!impl_) return;
  Stop();
  impl_->StopReader();
}

int RemoteStream::fd() const { return impl_->out.get(); }
pid_t RemoteStream::pid() const { return impl_->pid; }
const SshTarget& RemoteStream::target() const { return impl_->target; }

std::string RemoteStream::StderrTail() const {
  std::lock_guard lock(impl_->mu);
  return impl_->tail;
}

const RemoteExit& RemoteStream::Wait() {
  Impl& i = *impl_;
  if (!i.reaped) i.WaitExit(-1);
  if (i.reader.joinable()) {
    i.StopReader();
    std::lock_guard lock(i.mu);
    i.exit.stderr_tail = i.tail;
  }
  i.exit.stopped = i.stopped;
  return i.exit;
}

void RemoteStream::Stop(int grace_ms) {
  Impl& i = *impl_;
  if (i.reaped) return;
  i.stopped = true;
  ::kill(i.pid, SIGTERM);  // not reaped yet, so the PID is still ours
  if (!i.WaitExit(grace_ms)) {
    ::kill(i.pid, SIGKILL);
    i.WaitExit(-1);
  }
}

Result<void> RemoteStream::Finish() {
  const RemoteExit& e = Wait();
  if (e.stopped || e.exit_code == 0) return {};
  const SshTarget& t = impl_->target;
  const std::string where = core::TerminalSafe(t.Where());
  const std::string file = "'" + core::TerminalSafe(t.path) + "'";
  const std::string line = LastLine(e.stderr_tail);
  const std::string said = line.empty() ? "" : ": " + line;
  if (e.signal != 0) {
    return Fail(Code::kUnavailable, "cannot read " + file + " on " + where +
                                        ": ssh was killed by signal " + std::to_string(e.signal) +
                                        " (" + strsignal(e.signal) + ")" + said);
  }
  if (e.exit_code == 255) {
    std::string check = "ssh -o BatchMode=yes";
    if (t.port != 0) check += " -p " + std::to_string(t.port);
    check += " " + (t.user.empty() ? "" : t.user + "@") + t.host + " true";
    return Fail(Code::kUnavailable, "cannot connect to " + where + " with ssh (exit 255)" + said,
                {"check that '" + core::TerminalSafe(check) +
                     "' works without a prompt: dlsys never lets ssh ask for a password, a "
                     "passphrase or a new host key (use keys or an agent, and connect once by "
                     "hand to accept the host key)",
                 "ssh reads ~/.ssh/config; DLSYS_SSH_CONFIG names another config file instead, "
                 "DLSYS_SSH_OPTIONS adds -o options (docs/monitoring.md)"});
  }
  if (e.exit_code == 126 || e.exit_code == 127) {
    return Fail(Code::kUnavailable,
                "cannot read " + file + " on " + where + ": the remote host cannot run " +
                    "tail or cat (exit " + std::to_string(e.exit_code) + ")" + said,
                {"dlsys needs only POSIX tail, cat and env on the remote host"});
  }
  if (e.stderr_tail.find("No such file or directory") != std::string::npos) {
    return Fail(Code::kNotFound, "remote file " + file + " not found on " + where + said);
  }
  return Fail(Code::kInvalid, "cannot read " + file + " on " + where + " (exit " +
                                  std::to_string(e.exit_code) + ")" + said);
}

Result<RemoteStream> OpenSsh(const SshTarget& target, bool follow, const SshOptions& options) {
  const std::string program = FindProgram(options.program);
  if (program.empty()) {
    return Fail(Code::kUnavailable,
                "cannot read " + core::TerminalSafe(target.Url()) + ": the ssh client '" +
                    core::TerminalSafe(options.program) + "' is not installed (not found on PATH)",
                {"install the Debian package openssh-client (apt-get install openssh-client)"});
  }
  const std::vector<std::string> args = SshArgv(target, follow, options);
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);

  auto impl = std::make_unique<RemoteStream::Impl>();
  impl->target = target;
  int out[2], err[2], wake[2];
  if (::pipe2(out, O_CLOEXEC) != 0) {
    return Fail(Code::kInternal, "cannot start ssh: pipe: " + core::ErrnoMessage(errno));
  }
  impl->out = core::UniqueFd(out[0]);
  core::UniqueFd out_w(out[1]);
  if (::pipe2(err, O_CLOEXEC) != 0) {
    return Fail(Code::kInternal, "cannot start ssh: pipe: " + core::ErrnoMessage(errno));
  }
  impl->err = core::UniqueFd(err[0]);
  core::UniqueFd err_w(err[1]);
  if (::pipe2(wake, O_CLOEXEC) != 0) {
    return Fail(Code::kInternal, "cannot start ssh: pipe: " + core::ErrnoMessage(errno));
  }
  impl->wake_r = core::UniqueFd(wake[0]);
  impl->wake_w = core::UniqueFd(wake[1]);

  posix_spawn_file_actions_t actions;
  posix_spawnattr_t attr;
  posix_spawn_file_actions_init(&actions);
  posix_spawnattr_init(&attr);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, out_w.get(), STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&actions, err_w.get(), STDERR_FILENO);
  // Descriptors another thread opened without O_CLOEXEC must not reach ssh either.
  posix_spawn_file_actions_addclosefrom_np(&actions, STDERR_FILENO + 1);
  // dlsys blocks SIGTERM/SIGINT/SIGHUP to take them synchronously; ssh must not inherit that
  // mask, or Stop()'s SIGTERM would wait for the SIGKILL. Its own process group keeps a
  // terminal's Ctrl-C for dlsys, which then stops ssh after its last snapshot.
  sigset_t empty, defaults;
  sigemptyset(&empty);
  sigemptyset(&defaults);
  for (int s : {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGPIPE}) sigaddset(&defaults, s);
  posix_spawnattr_setsigmask(&attr, &empty);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  posix_spawnattr_setpgroup(&attr, 0);
  posix_spawnattr_setflags(&attr,
                           POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP);
  pid_t pid = -1;
  const int rc = ::posix_spawn(&pid, program.c_str(), &actions, &attr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) {
    return Fail(Code::kInternal,
                "cannot start '" + core::TerminalSafe(program) + "': " + core::ErrnoMessage(rc));
  }
  impl->pid = pid;
  // glibc 2.36 declares pidfd_open without C linkage, so through syscall(); -1 on kernels
  // before 5.3, where Stop() polls instead.
  impl->pidfd = core::UniqueFd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
  RemoteStream::Impl* raw = impl.get();
  impl->reader = std::thread([raw] { raw->ReadStderr(); });
  return RemoteStream(std::move(impl));
}

}  // namespace dlsys::monitor
