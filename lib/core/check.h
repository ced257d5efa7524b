// A report row: one check, its subject, PASS/WARN/FAIL and a message with the numbers.
// Shared by verify (integrity, signature), target compatibility and smoke tests.
#pragma once

#include <string>

namespace dlsys {

enum class Status { kPass, kWarn, kFail };
const char* StatusName(Status s);  // "PASS", "WARN", "FAIL"

struct Check {
  std::string check;    // "archive", "manifest", "signature", "file", "memory", "device", ...
  std::string subject;  // file path, field or requirement; may be empty
  Status status = Status::kPass;
  std::string message;  // one line for people: what, where, expected vs found
  std::string expected; // machine-readable, may be empty
  std::string found;
};

}  // namespace dlsys
