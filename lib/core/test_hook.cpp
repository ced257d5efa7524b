#include "core/test_hook.h"

#include <unistd.h>

#include <charconv>
#include <csignal>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <string_view>

namespace dlsys::core {

void TestHook(const char* point) {
  static const char* const armed = std::getenv("DLSYS_TEST_HOOK");
  if (armed == nullptr || std::strcmp(armed, point) != 0) return;
  const std::string line = std::string("dlsys-test-hook: ") + point + "\n";
  // One write so the test never sees half a line; nothing to do if it fails.
  [[maybe_unused]] const ssize_t n = ::write(STDERR_FILENO, line.data(), line.size());
  std::raise(SIGSTOP);
}

namespace {

struct CrashPlan {
  bool loaded = false;
  bool armed = false;
  std::string name;  // "*" = any point
  std::uint64_t nth = 0;
  std::uint64_t seen = 0;
};

std::mutex crash_mutex;
CrashPlan crash_plan;

// Caller holds crash_mutex.
void LoadCrashPlan() {
  crash_plan = CrashPlan{};
  crash_plan.loaded = true;
  const char* env = std::getenv("DLSYS_TEST_CRASH");
  if (env == nullptr || *env == '\0') return;
  std::string_view text(env);
  std::uint64_t nth = 1;
  if (const auto colon = text.rfind(':'); colon != std::string_view::npos) {
    const std::string_view digits = text.substr(colon + 1);
    const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), nth);
    if (ec != std::errc() || end != digits.data() + digits.size() || digits.empty() || nth == 0) {
      return;
    }
    text = text.substr(0, colon);
  }
  if (text.empty()) return;
  crash_plan.armed = true;
  crash_plan.name = std::string(text);
  crash_plan.nth = nth;
}

}  // namespace

void CrashPoint(const char* name) {
  std::lock_guard<std::mutex> lock(crash_mutex);
  if (!crash_plan.loaded) LoadCrashPlan();
  if (!crash_plan.armed) return;
  if (crash_plan.name != "*" && crash_plan.name != name) return;
  if (++crash_plan.seen == crash_plan.nth) {
    // SIGKILL cannot be caught: no destructor, handler or buffered write runs, as in a crash.
    ::kill(::getpid(), SIGKILL);
  }
}

void ResetCrashPointsForTest() {
  std::lock_guard<std::mutex> lock(crash_mutex);
  LoadCrashPlan();
}

}  // namespace dlsys::core
