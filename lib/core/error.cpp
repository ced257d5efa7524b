#include "core/error.h"

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

}  // namespace dlsys
