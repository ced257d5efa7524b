// The smoke test's child process (package.h, SmokeIsolated): the model runs in a fork, so a
// hang, a crash inside libtorch or runaway memory costs one FAIL row, never the caller.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/file.h"
#include "package/package.h"

namespace dlsys::package {
namespace {

void PutString(std::string& out, const std::string& s) {
  const auto n = static_cast<std::uint32_t>(s.size());
  out.append(reinterpret_cast<const char*>(&n), sizeof n);
  out += s;
}

bool GetString(std::string_view& in, std::string& s) {
  std::uint32_t n = 0;
  if (in.size() < sizeof n) return false;
  std::memcpy(&n, in.data(), sizeof n);
  in.remove_prefix(sizeof n);
  if (in.size() < n) return false;
  s.assign(in.substr(0, n));
  in.remove_prefix(n);
  return true;
}

std::string EncodeRows(const std::vector<Check>& rows) {
  std::string out;
  for (const Check& c : rows) {
    PutString(out, c.check);
    PutString(out, c.subject);
    PutString(out, StatusName(c.status));
    PutString(out, c.message);
    PutString(out, c.expected);
    PutString(out, c.found);
  }
  return out;
}

std::optional<std::vector<Check>> DecodeRows(std::string_view in) {
  std::vector<Check> rows;
  while (!in.empty()) {
    Check c;
    std::string status;
    if (!GetString(in, c.check) || !GetString(in, c.subject) || !GetString(in, status) ||
        !GetString(in, c.message) || !GetString(in, c.expected) || !GetString(in, c.found)) {
      return std::nullopt;
    }
    c.status = status == "PASS" ? Status::kPass : status == "WARN" ? Status::kWarn : Status::kFail;
    rows.push_back(std::move(c));
  }
  return rows;
}

Check SmokeFailure(std::string subject, std::string message) {
  return Check{"smoke", std::move(subject), Status::kFail, std::move(message), "", ""};
}

}  // namespace

std::vector<Check> SmokeIsolated(const VerifiedArchive& archive,
                                 const hw::Requirements& requirements, unsigned timeout_s,
                                 const SmokeOptions& options) {
  constexpr std::size_t kMaxReportBytes = 16 << 20;
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    return {
        SmokeFailure("process", "cannot start the smoke test: pipe: " + core::ErrnoMessage(errno))};
  }
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) {
    const int err = errno;
    ::close(fds[0]);
    ::close(fds[1]);
    return {
        SmokeFailure("process", "cannot start the smoke test: fork: " + core::ErrnoMessage(err))};
  }
  if (pid == 0) {
    // The child: run, report through the pipe, and leave without running the parent's exit
    // handlers or flushing its stdio buffers. It dies with its parent (killed or interrupted),
    // so a model that never returns cannot outlive the command.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(4);  // the parent died before prctl took effect
    ::close(fds[0]);
    const std::string out = EncodeRows(Smoke(archive, requirements, options));
    const char* p = out.data();
    std::size_t left = out.size();
    while (left > 0) {
      const ssize_t n = ::write(fds[1], p, left);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) ::_exit(3);
      p += n;
      left -= static_cast<std::size_t>(n);
    }
    ::_exit(0);
  }
  ::close(fds[1]);
  core::UniqueFd in(fds[0]);
  using Clock = std::chrono::steady_clock;
  const auto deadline = Clock::now() + std::chrono::seconds(timeout_s);
  std::string data;
  bool timed_out = false, too_big = false;
  char buf[65536];
  for (;;) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) {
      timed_out = true;
      break;
    }
    pollfd p{in.get(), POLLIN, 0};
    const int r = ::poll(&p, 1, static_cast<int>(std::min<long long>(left.count(), 1 << 30)));
    if (r < 0 && errno == EINTR) continue;
    if (r == 0) continue;
    const ssize_t n = ::read(in.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    if (data.size() + static_cast<std::size_t>(n) > kMaxReportBytes) {
      too_big = true;
      break;
    }
    data.append(buf, static_cast<std::size_t>(n));
  }
  if (timed_out || too_big) ::kill(pid, SIGKILL);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (timed_out) {
    return {SmokeFailure("timeout", "the smoke test did not finish within " +
                                        std::to_string(timeout_s) +
                                        " s and was stopped (the model hangs or is too slow "
                                        "here; raise the limit with --smoke-timeout)")};
  }
  if (too_big) {
    return {SmokeFailure("process", "the smoke test process sent a report larger than " +
                                        std::to_string(kMaxReportBytes >> 20) + " MiB")};
  }
  if (WIFSIGNALED(status)) {
    const int sig = WTERMSIG(status);
    return {SmokeFailure("process", "the smoke test process was killed by signal " +
                                        std::to_string(sig) + " (" + strsignal(sig) +
                                        ") while loading or running the model")};
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    return {SmokeFailure("process", "the smoke test process failed with exit status " +
                                        std::to_string(WEXITSTATUS(status)))};
  }
  auto rows = DecodeRows(data);
  if (!rows) return {SmokeFailure("process", "the smoke test process sent an unreadable report")};
  return *std::move(rows);
}

}  // namespace dlsys::package
