// Fuzzes the target profile parser: the input is target.yaml text.
//
// Invariant (lib/hw/profile.h): ProfileToYaml writes YAML that ParseProfile reads back
// identically; ProfileToJson too, since JSON is valid profile input. A broken invariant traps
// after saying which on stderr.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

#include "hw/profile.h"

namespace {

void RoundTrip(const dlsys::hw::TargetProfile& profile, const std::string& text, const char* how) {
  auto back = dlsys::hw::ParseProfile(text, "roundtrip.yaml");
  if (!back) {
    std::fprintf(stderr, "profile_fuzz: %s output does not parse: %s\n--- text:\n%s\n", how,
                 back.error().message.c_str(), text.c_str());
    __builtin_trap();
  }
  if (!(*back == profile)) {
    // JSON escapes control characters, so the difference shows even in white space.
    std::fprintf(stderr,
                 "profile_fuzz: %s output parses to a different profile\n--- text:\n%s\n"
                 "--- parsed (as JSON):\n%s\n--- read back (as JSON):\n%s\n",
                 how, text.c_str(), dlsys::hw::ProfileToJson(profile).c_str(),
                 dlsys::hw::ProfileToJson(*back).c_str());
    __builtin_trap();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view yaml(reinterpret_cast<const char*>(data), size);
  auto profile = dlsys::hw::ParseProfile(yaml, "target.yaml");
  if (!profile) return 0;
  RoundTrip(*profile, dlsys::hw::ProfileToYaml(*profile), "ProfileToYaml");
  RoundTrip(*profile, dlsys::hw::ProfileToJson(*profile), "ProfileToJson");
  return 0;
}
