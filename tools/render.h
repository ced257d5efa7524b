// Pure renderers: results in, text out. No I/O.
//
// Text renderers pass every string that can come from an archive, a spec, a profile, a file
// name or an error message through core::TerminalSafe. JSON renderers escape everything
// outside printable ASCII (\uXXXX), replace malformed UTF-8 with U+FFFD and never throw.
// JUnit XML is always well-formed.
#pragma once

#include <string>

#include "core/error.h"
#include "hw/profile.h"
#include "package/package.h"

namespace dlsys::cli {

// inspect text: a header, rows, and free-form sections of at most kMaxSectionRows rows each
// ("… N more (--json lists all)"); every name, key and value cut to kMaxShownChars with "…".
// Its size is linear in the manifest's.
inline constexpr std::size_t kMaxShownChars = 120;
inline constexpr std::size_t kMaxSectionRows = 50;
std::string RenderInspectText(const std::string& path, const package::InspectResult& r);
std::string RenderInspectJson(const std::string& path, const package::InspectResult& r);

std::string RenderVerifyText(const package::VerifyReport& r);
std::string RenderVerifyJson(const package::VerifyReport& r, int exit_code);
std::string RenderVerifyJUnit(const package::VerifyReport& r);

std::string RenderPackText(const std::string& out, const package::PackResult& r);
std::string RenderPackJson(const std::string& out, const package::PackResult& r);
std::string RenderKeygenText(const std::string& out, const std::string& key_id);
std::string RenderKeygenJson(const std::string& out, const std::string& key_id);
// The profile as JSON in the field order of hw::ProfileToJson, ASCII only.
std::string RenderProfileJson(const hw::TargetProfile& profile);

// {"ok": false, "exit_code": N, "error": {"code", "message", "details"}}
// (schemas/error.schema.json); the verify form adds the report's archive, name, version,
// key_id and an empty checks list, so scripts that read a report's fields keep working.
std::string RenderErrorJson(const Error& error, int exit_code);
std::string RenderVerifyErrorJson(const std::string& archive, const Error& error, int exit_code);

}  // namespace dlsys::cli
