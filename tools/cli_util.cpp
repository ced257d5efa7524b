#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <mutex>

#include "cli.h"
#include "core/encoding.h"
#include "core/file.h"

namespace dlsys::cli {

int ExitCodeFor(Code code) {
  switch (code) {
    case Code::kInternal: return kExitInternal;
    case Code::kUsage: return kExitUsage;
    case Code::kExists: return kExitUsage;
    case Code::kNotFound: return kExitNotFound;
    case Code::kInvalid: return kExitInvalid;
    case Code::kVerifyFailed: return kExitVerifyFailed;
    case Code::kUnavailable: return kExitUnavailable;
    case Code::kInterrupted: return kExitInterrupted;
  }
  return kExitInternal;
}

int ReportError(const Error& error) {
  std::fprintf(stderr, "dlsys: error: %s\n", error.message.c_str());
  for (const auto& line : error.details) std::fprintf(stderr, "  %s\n", line.c_str());
  return ExitCodeFor(error.code);
}

int WriteOutputFile(const std::string& path, const std::string& text) {
  auto ok = core::WriteFileAtomic(path, text, /*overwrite=*/true);
  if (!ok) return ReportError(ok.error());
  return kExitOk;
}

bool StderrIsTerminal() { return isatty(STDERR_FILENO) == 1; }

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
  impl_->label = std::move(label);
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

}  // namespace dlsys::cli
