// Fuzzes the reading of a deploy registry's files (hostile: anyone who can write the directory
// can put anything there): registry.json through deploy::ParseState and one history.jsonl line
// through deploy::ParseHistoryLine. The first byte chooses which; the rest is the text.
//
// Invariants: whatever parses is canonical, so writing it back gives the same bytes, and those
// parse again (a fixed point).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "deploy/registry.h"
#include "invariant.h"

using dlsys::fuzz::Check;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::string_view text(reinterpret_cast<const char*>(data) + 1, size - 1);
  if (data[0] % 2 == 0) {
    auto state = dlsys::deploy::ParseState(text, "registry.json");
    if (!state) return 0;
    const std::string again = dlsys::deploy::SerializeState(*state);
    Check(again == text, "a parsed registry.json serializes to its own bytes");
    Check(dlsys::deploy::ParseState(again, "again").has_value(), "serialized state parses");
  } else {
    auto entry = dlsys::deploy::ParseHistoryLine(text, "history.jsonl line 1");
    if (!entry) return 0;
    const std::string again = dlsys::deploy::SerializeHistoryEntry(*entry);
    Check(again == text, "a parsed history line serializes to its own bytes");
    Check(dlsys::deploy::ParseHistoryLine(again, "again").has_value(), "serialized line parses");
  }
  return 0;
}
