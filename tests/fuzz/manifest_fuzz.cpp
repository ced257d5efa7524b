// Fuzzes the manifest parser: the input is manifest.json text.
//
// Invariants checked on every manifest that parses: its serialisation parses again, and
// serialising is a fixed point (Serialize(Parse(Serialize(m))) == Serialize(m)), since the
// canonical form is what gets signed. A broken invariant traps after saying which on stderr.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>
#include <type_traits>

#include "manifest/manifest.h"

namespace {

// Serialize returns std::string today; also accept a Result<std::string> should it become one.
template <typename T>
std::string Text(T&& serialized) {
  if constexpr (std::is_convertible_v<T, std::string>) {
    return std::string(std::forward<T>(serialized));
  } else {
    if (!serialized) {
      std::fprintf(stderr, "manifest_fuzz: Serialize failed on a parsed manifest: %s\n",
                   serialized.error().message.c_str());
      __builtin_trap();
    }
    return std::string(*serialized);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view json(reinterpret_cast<const char*>(data), size);
  auto parsed = dlsys::manifest::Parse(json);
  if (!parsed) return 0;

  const std::string once = Text(dlsys::manifest::Serialize(*parsed));
  auto reparsed = dlsys::manifest::Parse(once);
  if (!reparsed) {
    std::fprintf(stderr, "manifest_fuzz: serialised manifest does not parse: %s\n--- text:\n%s\n",
                 reparsed.error().message.c_str(), once.c_str());
    __builtin_trap();
  }
  const std::string twice = Text(dlsys::manifest::Serialize(*reparsed));
  if (twice != once) {
    std::fprintf(stderr,
                 "manifest_fuzz: Serialize is not a fixed point\n--- once:\n%s\n--- twice:\n%s\n",
                 once.c_str(), twice.c_str());
    __builtin_trap();
  }
  return 0;
}
