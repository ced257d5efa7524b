#include <pthread.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <mutex>

#include "cli.h"
#include "core/encoding.h"
#include "core/text.h"
#include "render.h"

namespace dlsys::cli {

int ExitCodeFor(Code code) {
  switch (code) {
    case Code::kInternal:
      return kExitInternal;
    case Code::kUsage:
      return kExitUsage;
    case Code::kExists:
      return kExitUsage;
    case Code::kNotFound:
      return kExitNotFound;
    case Code::kInvalid:
      return kExitInvalid;
    case Code::kVerifyFailed:
      return kExitVerifyFailed;
    case Code::kUnavailable:
      return kExitUnavailable;
    case Code::kInterrupted:
      return kExitInterrupted;
  }
  return kExitInternal;
}

int ReportError(const Error& error, bool json) {
  const int code = ExitCodeFor(error.code);
  std::fprintf(stderr, "dlsys: error: %s\n", core::TerminalSafe(error.message).c_str());
  for (const auto& line : error.details) {
    std::fprintf(stderr, "  %s\n", core::TerminalSafe(line).c_str());
  }
  if (json) {
    const std::string out = RenderErrorJson(error, code);
    std::fwrite(out.data(), 1, out.size(), stdout);
  }
  return code;
}

bool WantsJson(int argc, const char* const* argv) {
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--") == 0) return false;
    if (std::strcmp(argv[i], "--json") == 0 || std::strncmp(argv[i], "--json=", 7) == 0) {
      return true;
    }
  }
  return false;
}

bool StderrIsTerminal() { return isatty(STDERR_FILENO) == 1; }

CLI::Validator NonEmpty(std::string hint) {
  return CLI::Validator(
      [hint](std::string& value) -> std::string {
        if (!value.empty()) return {};
        return "empty value: give " + hint;
      },
      "", "NonEmpty");
}

void AddTrustOptions(CLI::App* sub, std::vector<std::string>& trust, bool& allow_unsigned,
                     const std::string& trust_help, const std::string& allow_help) {
  sub->add_option("--trust", trust,
                  "trusted public key (KEY.pub) or a directory of *.pub" + trust_help +
                      " (repeatable: one value per --trust)")
      ->check(NonEmpty("a public key file or a directory of *.pub"))
      ->allow_extra_args(false);
  sub->add_flag("--allow-unsigned", allow_unsigned, allow_help);
}

CLI::Validator WholeNumberIn(unsigned lo, unsigned hi, std::string hint) {
  return CLI::Validator(
      [lo, hi, hint](std::string& value) -> std::string {
        std::uint64_t n = 0;
        bool ok = !value.empty();
        for (char c : value) {
          if (c < '0' || c > '9') {
            ok = false;
            break;
          }
          if (n <= hi) n = n * 10 + static_cast<unsigned>(c - '0');  // stops before overflow
        }
        if (ok && n >= lo && n <= hi) return {};
        std::string msg = "'" + core::TerminalSafe(core::Truncate(value, 40)) +
                          "' is not valid: give a whole number from " + std::to_string(lo) +
                          " to " + std::to_string(hi);
        if (!hint.empty()) msg += " (" + hint + ")";
        return msg;
      },
      "", "WholeNumberIn");
}

struct ProgressLine::Impl {
  using Clock = std::chrono::steady_clock;
  std::string label;
  Clock::time_point start = Clock::now();
  Clock::time_point last{};
  bool enabled = StderrIsTerminal();
  bool drawn = false;
  std::mutex mu;
};

ProgressLine::ProgressLine(std::string label) : impl_(std::make_unique<Impl>()) {
  // The label names a file the user chose; it is redrawn with \r, so it must not hold controls.
  impl_->label = core::TerminalSafe(core::Truncate(label, 120));
}

ProgressLine::~ProgressLine() {
  if (impl_->drawn) std::fprintf(stderr, "\r\033[K");
}

void ProgressLine::Update(const char* phase, std::uint64_t done, std::uint64_t total) {
  if (!impl_->enabled) return;
  std::lock_guard lock(impl_->mu);
  auto now = Impl::Clock::now();
  using std::chrono::milliseconds;
  if (now - impl_->start < milliseconds(300) || now - impl_->last < milliseconds(100)) return;
  impl_->last = now;
  impl_->drawn = true;
  if (total > 0) {
    std::fprintf(stderr, "\r\033[K%s: %s %s / %s (%d%%)", impl_->label.c_str(), phase,
                 core::HumanBytes(done).c_str(), core::HumanBytes(total).c_str(),
                 static_cast<int>(100.0 * static_cast<double>(done) / static_cast<double>(total)));
  } else {
    std::fprintf(stderr, "\r\033[K%s: %s %s", impl_->label.c_str(), phase,
                 core::HumanBytes(done).c_str());
  }
  std::fflush(stderr);
}

sigset_t BlockStopSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  return set;
}

}  // namespace dlsys::cli
