// Filter mode of dlsys monitor: one log record (a JSON object per line, already validated by
// the scan) rendered for a terminal the way dlsys writes text logs (docs/logging.md):
//
//   2026-12-01T15:47:28.123Z INFO  serve.request: POST /v2/models/mlp/infer 200 status=200 ...
//
// `@timestamp` cut to milliseconds, the level padded to 5, `event: message`, then key=value for
// every other field in the record's order, except the fixed noise (ecs.version, severity,
// service, host, pid) and the drift samples (input, prediction). Nested values are shown as
// compact JSON. Every foreign string passes through core::TerminalSafe; a value holding a
// space, '"', '=' or '\' (or empty) is quoted. Colour (ANSI SGR) only when asked for.
#pragma once

#include <string>
#include <string_view>

namespace dlsys::monitor {

// Appends the rendered record and a newline to `out`; a line that is not a JSON object is
// appended as TerminalSafe text.
void RenderRecord(std::string& out, std::string_view json_line, bool color);

}  // namespace dlsys::monitor
