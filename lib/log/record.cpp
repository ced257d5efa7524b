// Building and emitting one record.
#include <chrono>
#include <cstdio>

#include "core/text.h"
#include "log/internal/format.h"
#include "log/internal/state.h"
#include "log/log.h"

namespace dlsys::log {

struct Record::Impl {
  std::shared_ptr<const internal::State> state;
  Level level;
  std::chrono::system_clock::time_point time;
  std::string event;
  std::string message;
  std::string fields;  // rendered in state->format, each with its leading separator

  bool json() const { return state->format == Format::kJson; }

  void Key(std::string_view key) {
    if (json()) {
      fields.push_back(',');
      core::AppendAsciiJsonString(fields, key);
      fields.push_back(':');
    } else {
      fields.push_back(' ');
      core::AppendTerminalSafe(fields, key);
      fields.push_back('=');
    }
  }

  std::string JsonLine() const {
    std::string line;
    line.reserve(256 + message.size() + fields.size());
    line += "{\"@timestamp\":\"";
    line += internal::FormatTimestamp(time, 6);
    line += "\",\"log.level\":\"";
    line += LevelName(level);
    line += "\",\"message\":";
    core::AppendAsciiJsonString(line, message);
    line += ",\"ecs.version\":\"8.11.0\",\"severity\":";
    line += std::to_string(SeverityNumber(level));
    line += ",\"event\":";
    core::AppendAsciiJsonString(line, event);
    line += ",\"service\":";
    core::AppendAsciiJsonString(line, state->service);
    line += ",\"host\":";
    core::AppendAsciiJsonString(line, state->host);
    line += ",\"pid\":";
    line += std::to_string(state->pid);
    line += fields;
    line.push_back('}');
    return line;
  }

  std::string TextLine() const {
    char level_column[8];
    std::snprintf(level_column, sizeof level_column, "%-5s", LevelName(level));
    std::string line = internal::FormatTimestamp(time, 3);
    line.push_back(' ');
    line += level_column;
    line.push_back(' ');
    core::AppendTerminalSafe(line, event);
    line += ": ";
    core::AppendTerminalSafe(line, message);
    line += fields;
    return line;
  }
};

Record::Record(Level level, std::string_view event, std::string_view message) {
  if (!Enabled(level)) return;
  impl_ = std::make_unique<Impl>();
  impl_->time = std::chrono::system_clock::now();
  impl_->state = internal::CurrentState();
  impl_->level = level;
  impl_->event = event;
  impl_->message = message;
}

Record::Record(std::shared_ptr<const internal::State> state, Level level, std::string_view event,
               std::string_view message) {
  if (!state) return;  // a disabled record
  impl_ = std::make_unique<Impl>();
  impl_->time = std::chrono::system_clock::now();
  impl_->state = std::move(state);
  impl_->level = level;
  impl_->event = event;
  impl_->message = message;
}

Record Channel::Make(Level level, std::string_view event, std::string_view message) const {
  return Record(Enabled(level) ? state_ : nullptr, level, event, message);
}

Record::~Record() = default;
Record::Record(Record&&) noexcept = default;

Record& Record::Str(std::string_view key, std::string_view value) {
  if (!impl_) return *this;
  impl_->Key(key);
  if (impl_->json()) {
    core::AppendAsciiJsonString(impl_->fields, value);
  } else {
    internal::AppendTextValue(impl_->fields, value);
  }
  return *this;
}

Record& Record::Int(std::string_view key, std::int64_t value) {
  if (!impl_) return *this;
  impl_->Key(key);
  impl_->fields += std::to_string(value);
  return *this;
}

Record& Record::Num(std::string_view key, double value) {
  if (!impl_) return *this;
  impl_->Key(key);
  internal::AppendJsonNumber(impl_->fields, value);
  return *this;
}

Record& Record::Bool(std::string_view key, bool value) {
  if (!impl_) return *this;
  impl_->Key(key);
  impl_->fields += value ? "true" : "false";
  return *this;
}

Record& Record::Json(std::string_view key, std::string_view json) {
  if (!impl_) return *this;
  impl_->Key(key);
  if (impl_->json()) {
    internal::AppendJsonVerbatim(impl_->fields, json);
  } else {
    core::AppendTerminalSafe(impl_->fields, json);
  }
  return *this;
}

void Record::Emit() {
  if (!impl_) return;
  const auto impl = std::move(impl_);  // a second Emit writes nothing
  internal::WriteLine(*impl->state, impl->level,
                      impl->json() ? impl->JsonLine() : impl->TextLine());
}

Record Trace(std::string_view event, std::string_view message) {
  return Record(Level::kTrace, event, message);
}
Record Debug(std::string_view event, std::string_view message) {
  return Record(Level::kDebug, event, message);
}
Record Info(std::string_view event, std::string_view message) {
  return Record(Level::kInfo, event, message);
}
Record Warn(std::string_view event, std::string_view message) {
  return Record(Level::kWarn, event, message);
}
Record Error(std::string_view event, std::string_view message) {
  return Record(Level::kError, event, message);
}

}  // namespace dlsys::log
