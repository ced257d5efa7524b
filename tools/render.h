// Pure renderers: results in, text out. No I/O.
#pragma once

#include <string>

#include "package/package.h"

namespace dlsys::cli {

std::string RenderInspectText(const std::string& path, const package::InspectResult& r);
std::string RenderInspectJson(const std::string& path, const package::InspectResult& r);
std::string RenderVerifyText(const package::VerifyReport& r);
std::string RenderVerifyJson(const package::VerifyReport& r, int exit_code);
std::string RenderVerifyJUnit(const package::VerifyReport& r);

}  // namespace dlsys::cli
