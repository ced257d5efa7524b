#include "core/error.h"

#include "core/check.h"

namespace dlsys {

const char* CodeName(Code code) {
  switch (code) {
    case Code::kInternal: return "internal";
    case Code::kUsage: return "usage";
    case Code::kNotFound: return "not_found";
    case Code::kInvalid: return "invalid";
    case Code::kVerifyFailed: return "verify_failed";
    case Code::kUnavailable: return "unavailable";
    case Code::kExists: return "exists";
    case Code::kInterrupted: return "interrupted";
  }
  return "internal";
}

const char* StatusName(Status s) {
  switch (s) {
    case Status::kPass: return "PASS";
    case Status::kWarn: return "WARN";
    case Status::kFail: return "FAIL";
  }
  return "FAIL";
}

}  // namespace dlsys
