#include "core/test_hook.h"

#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <cstring>
#include <string>

namespace dlsys::core {

void TestHook(const char* point) {
  static const char* const armed = std::getenv("DLSYS_TEST_HOOK");
  if (armed == nullptr || std::strcmp(armed, point) != 0) return;
  const std::string line = std::string("dlsys-test-hook: ") + point + "\n";
  // One write so the test never sees half a line; nothing to do if it fails.
  [[maybe_unused]] const ssize_t n = ::write(STDERR_FILENO, line.data(), line.size());
  std::raise(SIGSTOP);
}

}  // namespace dlsys::core
