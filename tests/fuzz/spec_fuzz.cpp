// Fuzzes the pack spec parser: the input is dlsys.yaml text. Relative `file:` paths resolve
// under a directory that does not exist, so they fail with kNotFound without reading anything.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "manifest/spec.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view yaml(reinterpret_cast<const char*>(data), size);
  (void)dlsys::manifest::ParseSpec(yaml, "/nonexistent-base", "dlsys.yaml");
  return 0;
}
