// Errors as values. Every library function that can fail returns Result<T>.
//
// Code is a small closed set: add a member only when some caller branches on it.
// tools/ maps each code to one process exit code (docs/exit-codes.md).
#pragma once

#include <string>
#include <utility>
#include <vector>

#include <tl/expected.hpp>

namespace dlsys {

enum class Code {
  kInternal,      // a bug or an unexpected system failure
  kUsage,         // the caller asked for something that makes no sense
  kNotFound,      // a named file, key or entry does not exist
  kInvalid,       // input is malformed, corrupt or unsafe
  kVerifyFailed,  // input is well-formed but fails integrity, signature or compatibility checks
  kUnavailable,   // a needed component (e.g. the runtime module) is not present
  kExists,        // the output already exists and overwriting was not allowed
  kInterrupted,   // the user interrupted the work
};

const char* CodeName(Code code);

struct Error {
  Code code = Code::kInternal;
  std::string message;               // one sentence: what went wrong, where, and what to do
  std::vector<std::string> details;  // further lines, e.g. one per failed check

  // Prefixes the message with the operation that failed: "cannot pack 'x': " + message.
  Error&& Wrap(const std::string& prefix) && {
    message = prefix + ": " + message;
    return std::move(*this);
  }
};

template <typename T>
using Result = tl::expected<T, Error>;

inline tl::unexpected<Error> Fail(Code code, std::string message,
                                  std::vector<std::string> details = {}) {
  return tl::unexpected<Error>(Error{code, std::move(message), std::move(details)});
}

}  // namespace dlsys

#define DLSYS_CONCAT_INNER_(a, b) a##b
#define DLSYS_CONCAT_(a, b) DLSYS_CONCAT_INNER_(a, b)

// Returns the error of a Result<void> expression from the enclosing function.
#define DLSYS_TRY(expr)                                                      \
  do {                                                                       \
    auto dlsys_try_result_ = (expr);                                         \
    if (!dlsys_try_result_) return tl::unexpected(std::move(dlsys_try_result_).error()); \
  } while (false)

// DLSYS_ASSIGN_OR_RETURN(auto x, MakeX()); binds the value or returns the error.
#define DLSYS_ASSIGN_OR_RETURN(lhs, expr) \
  DLSYS_ASSIGN_OR_RETURN_IMPL_(DLSYS_CONCAT_(dlsys_result_, __LINE__), lhs, expr)
#define DLSYS_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr)              \
  auto tmp = (expr);                                              \
  if (!tmp) return tl::unexpected(std::move(tmp).error());        \
  lhs = std::move(*tmp)
