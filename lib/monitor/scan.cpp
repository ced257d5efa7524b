#include "monitor/scan.h"

#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <memory>
#include <simdjson.h>
#include <string_view>
#include <unordered_map>

#include "core/file.h"
#include "core/text.h"
#include "monitor/drift.h"
#include "core/parallel.h"

namespace dlsys::monitor {
namespace {

// Per read; lines longer than a block are bad. Just over the longest good line (1 MiB): a block
// that fits the core's L2 cache is copied and parsed from there.
constexpr std::size_t kBlockBytes = 1280 << 10;
const std::string kOtherGroup = "(other)";

// ---- time ------------------------------------------------------------------------------

// Days from 1970-01-01 to y-m-d (proleptic Gregorian; Howard Hinnant's days_from_civil).
std::int64_t DaysFromCivil(std::int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
  const auto yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

// The inverse (civil_from_days).
void CivilFromDays(std::int64_t z, std::int64_t& y, unsigned& m, unsigned& d) {
  z += 719468;
  const std::int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const auto doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  d = doy - (153 * mp + 2) / 5 + 1;
  m = mp < 10 ? mp + 3 : mp - 9;
  y = static_cast<std::int64_t>(yoe) + era * 400 + (m <= 2);
}

bool Digits(std::string_view s, std::size_t at, std::size_t n, int& out) {
  if (at + n > s.size()) return false;
  out = 0;
  for (std::size_t i = at; i < at + n; ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
    out = out * 10 + (s[i] - '0');
  }
  return true;
}

// ---- one line --------------------------------------------------------------------------

// What a field of interest is used for (one field may be several, e.g. --by status).
enum Role : unsigned {
  kTimestamp = 1,
  kLevel = 2,
  kStatus = 4,
  kLatency = 8,
  kBatch = 16,
  kText = 32,  // its value as text, for a group key or a filter
  kInput = 64,        // sampled inputs (drift)
  kPrediction = 128,  // sampled predictions (drift)
};

struct Slot {
  std::string name;  // a top-level key, or a JSON Pointer ('/' first)
  unsigned roles = 0;
  bool mapped = false;  // by --field: numbers may be strings, `factor` scales them
  double factor = 1;
};

// The fields of interest, found once per scan.
struct Plan {
  std::vector<Slot> slots;
  std::vector<int> by_slot;                          // per ScanOptions::by
  std::vector<std::pair<int, std::string>> where;    // slot, wanted text
  std::vector<int> pointer_slots;                    // read with at_pointer after the keys
  const std::vector<FieldMap>& fields;
  int SlotOf(const std::string& name) {
    for (std::size_t i = 0; i < slots.size(); ++i) {
      if (slots[i].name == name) return static_cast<int>(i);
    }
    slots.push_back({name, 0});
    return static_cast<int>(slots.size() - 1);
  }
  // The slot that the field monitor knows as `name` is read from (its --field mapping, if any).
  int Role(const std::string& name, unsigned role) {
    const FieldMap* map = nullptr;
    for (const auto& f : fields) {
      if (f.name == name) map = &f;
    }
    const int s = SlotOf(map ? map->path : name);
    Slot& slot = slots[static_cast<std::size_t>(s)];
    slot.roles |= role;
    if (map) {
      slot.mapped = true;
      slot.factor = map->factor;
    }
    return s;
  }
  // Slot names by length, each with its first and last 8 bytes, in one array: most keys of a
  // record are rejected by their length alone, the rest by two word compares (names of up to
  // 16 bytes are then equal; longer ones are compared in full).
  static constexpr std::size_t kIndexedLength = 128;
  struct Key {
    std::uint64_t head = 0, tail = 0;
    int slot = 0;
  };
  std::vector<Key> keys;  // by name length
  std::array<std::uint16_t, kIndexedLength + 1> key_start{};  // keys of length n: [start[n], start[n + 1])
  static void Words(std::string_view s, std::uint64_t& head, std::uint64_t& tail) {
    head = 0;
    if (s.size() < 8) {
      std::memcpy(&head, s.data(), s.size());
      tail = head;
      return;
    }
    std::memcpy(&head, s.data(), 8);
    std::memcpy(&tail, s.data() + s.size() - 8, 8);
  }
  explicit Plan(const ScanOptions& o) : fields(o.fields) {
    Role("@timestamp", kTimestamp);
    Role("log.level", kLevel);
    Role("status", kStatus);
    Role("latency_ms", kLatency);
    Role("batch_size", kBatch);
    if (o.drift_sink) {
      Role("input", kInput);
      Role("prediction", kPrediction);
    }
    for (const auto& f : o.by) by_slot.push_back(Role(f, kText));
    for (const auto& [f, v] : o.where) where.emplace_back(Role(f, kText), v);
    for (std::size_t n = 1; n < kIndexedLength; ++n) {
      key_start[n] = static_cast<std::uint16_t>(keys.size());
      for (std::size_t i = 0; i < slots.size(); ++i) {
        const std::string& name = slots[i].name;
        // A field name of 128 bytes or more is never found (none of ours is that long).
        if (name.size() != n || name.front() == '/') continue;
        Key k;
        Words(name, k.head, k.tail);
        k.slot = static_cast<int>(i);
        keys.push_back(k);
      }
    }
    key_start[kIndexedLength] = static_cast<std::uint16_t>(keys.size());
    for (std::size_t i = 0; i < slots.size(); ++i) {
      if (!slots[i].name.empty() && slots[i].name.front() == '/') {
        pointer_slots.push_back(static_cast<int>(i));
      }
    }
  }
};

// ---- drift features ---------------------------------------------------------------------

constexpr std::size_t kMaxDriftEntries = 64;  // tensors or values per input/prediction object
constexpr std::size_t kMaxDriftValues = 64;   // values per head

bool NumberOf(simdjson::dom::element v, double& out) {
  using simdjson::dom::element_type;
  switch (v.type()) {
    case element_type::INT64: out = static_cast<double>(v.get_int64().value_unsafe()); return true;
    case element_type::UINT64: out = static_cast<double>(v.get_uint64().value_unsafe()); return true;
    case element_type::DOUBLE: out = v.get_double().value_unsafe(); return true;
    default: return false;
  }
}

// One value of a sampled object: a tensor summary (an object with a `head` array) or a plain
// number or string. `name` is the feature's name; argmax: also the index of the largest value.
void AddFeature(DriftSink& sink, std::string& name, simdjson::dom::element v, bool argmax) {
  double d = 0;
  if (NumberOf(v, d)) {
    if (std::isfinite(d)) sink.AddNumber(name, d);
    return;
  }
  std::string_view text;
  if (!v.get_string().get(text)) {
    sink.AddCategory(name, text);
    return;
  }
  simdjson::dom::array head;
  if (v["head"].get_array().get(head)) return;
  // A tensor summary: the same features an archive's examples give (AddTensorFeatures).
  std::array<double, kMaxDriftValues> values;
  std::size_t n = 0;
  for (const auto e : head) {
    if (n == kMaxDriftValues) break;
    values[n++] = NumberOf(e, d) ? d : NAN;  // null: a value that was not finite
  }
  std::uint64_t count = 0;
  if (v["count"].get_uint64().get(count)) count = 0;
  AddTensorFeatures(sink, name, std::span<const double>(values.data(), n), count, argmax);
}

// `input` or `prediction` of one request.
void AddFeatures(DriftSink& sink, std::string& name, std::string_view prefix,
                 simdjson::dom::element v) {
  name.assign(prefix);
  simdjson::dom::object obj;
  if (v.get_object().get(obj)) {
    AddFeature(sink, name, v, false);
    return;
  }
  std::size_t n = 0;
  for (const auto field : obj) {
    if (n++ == kMaxDriftEntries) break;
    name.assign(prefix);
    name += '.';
    name.append(field.key);
    AddFeature(sink, name, field.value, prefix == "prediction");
  }
}

int LevelNumber(std::string_view s) {
  static constexpr std::string_view kNames[] = {"TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"};
  for (int i = 0; i < 6; ++i) {
    if (s == kNames[i]) return i;
  }
  return -1;
}

struct StringHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};

// One thread's parser and totals.
// Aligned to (and a multiple of) two cache lines: each scan thread writes its own counter for
// every line, so two counters must never share a cache line.
class alignas(128) Counter {
 public:
  Counter(const ScanOptions& options, const Plan& plan)
      : options_(options),
        plan_(plan),
        drift_(options.drift_sink ? options.drift_sink() : nullptr),
        tick_us_(options.window_us / kTicksPerWindow),
        text_(plan.slots.size()),
        seen_(plan.slots.size()) {}

  // A line without its newline; [p, p + capacity) is readable (capacity >= n + padding).
  void Line(const char* p, std::size_t n, std::size_t capacity) {
    while (n > 0 && (p[n - 1] == '\r' || p[n - 1] == ' ' || p[n - 1] == '\t')) --n;
    if (n == 0) return;
    ++totals_.lines;
    if (n > options_.max_line_bytes || !Parse(p, n, capacity)) {
      ++totals_.bad_lines;
      return;
    }
    line_ = std::string_view(p, n);
    Count();
  }

  void BadLine() {
    ++totals_.lines;
    ++totals_.bad_lines;
  }
  void AddBytes(std::uint64_t n) { totals_.bytes += n; }

  // Copies the totals and groups so far into `into` (the counter goes on).
  void SnapshotInto(ScanSummary& into, std::unordered_map<std::string, GroupStats, StringHash,
                                                          std::equal_to<>>& groups) const {
    AddTotalsTo(into);
    for (const auto& [k, g] : groups_) groups.emplace(k, g);
    if (drift_) {
      into.drift = options_.drift_sink();
      into.drift->MergeFrom(*drift_);
    }
  }

  // Moves this thread's totals and groups into `into`.
  void MergeInto(ScanSummary& into, std::unordered_map<std::string, GroupStats, StringHash,
                                                       std::equal_to<>>& groups) {
    last_group_ = nullptr;  // the groups move out
    AddTotalsTo(into);
    for (auto& [k, g] : groups_) {
      auto it = groups.find(k);
      if (it == groups.end()) {
        groups.emplace(k, std::move(g));
      } else {
        it->second.Merge(g, options_.history_ticks);
      }
    }
    if (drift_) {
      if (into.drift) {
        into.drift->MergeFrom(*drift_);
      } else {
        into.drift = std::move(drift_);
      }
    }
  }

 private:
  void AddTotalsTo(ScanSummary& into) const {
    into.bytes += totals_.bytes;
    into.lines += totals_.lines;
    into.requests += totals_.requests;
    into.events += totals_.events;
    into.filtered_out += totals_.filtered_out;
    into.bad_lines += totals_.bad_lines;
    into.groups_capped = into.groups_capped || capped_;
    into.last_us = std::max(into.last_us, totals_.last_us);
  }

  // Reads the fields of interest; false = a bad line. The DOM parser validates the whole
  // line (structure, UTF-8, numbers) and dispatches to the CPU's SIMD kernels at run time.
  bool Parse(const char* p, std::size_t n, std::size_t capacity) {
    (void)capacity;  // >= n + SIMDJSON_PADDING: parse() reads the padding, never past it
    simdjson::dom::element doc;
    if (parser_.parse(p, n, false).get(doc)) return false;
    return Fields(doc);
  }

  // The fields of interest of one parsed line; false = a bad line.
  bool Fields(simdjson::dom::element doc) {
    std::fill(seen_.begin(), seen_.end(), false);
    has_ts_ = has_level_ = has_status_ = has_latency_ = has_batch_ = false;
    has_input_ = has_prediction_ = false;
    simdjson::dom::object obj;
    if (doc.get_object().get(obj)) return false;
    for (const auto field : obj) {
      const int slot = SlotOf(field.key);
      if (slot >= 0 && !Read(static_cast<std::size_t>(slot), field.value)) return false;
    }
    for (const int slot : plan_.pointer_slots) {
      const std::string& pointer = plan_.slots[static_cast<std::size_t>(slot)].name;
      simdjson::dom::element v;
      if (!doc.at_pointer(pointer).get(v) && !Read(static_cast<std::size_t>(slot), v)) {
        return false;
      }
    }
    return true;
  }

  int SlotOf(std::string_view key) const {
    const std::size_t n = key.size();
    if (n == 0 || n >= Plan::kIndexedLength) return -1;
    const std::size_t begin = plan_.key_start[n], end = plan_.key_start[n + 1];
    if (begin == end) return -1;
    std::uint64_t head, tail;
    Plan::Words(key, head, tail);
    for (std::size_t i = begin; i < end; ++i) {
      const Plan::Key& k = plan_.keys[i];
      if (k.head != head || k.tail != tail) continue;
      if (n <= 16 || plan_.slots[static_cast<std::size_t>(k.slot)].name == key) return k.slot;
    }
    return -1;
  }

  bool Read(std::size_t slot, simdjson::dom::element v) {
    using simdjson::dom::element_type;
    const Slot& info = plan_.slots[slot];
    unsigned roles = info.roles;
    if (roles & kInput) {
      input_ = v;
      has_input_ = true;
    }
    if (roles & kPrediction) {
      prediction_ = v;
      has_prediction_ = true;
    }
    roles &= ~(kInput | kPrediction);
    if (roles == 0) return true;
    const element_type type = v.type();
    std::string& text = text_[slot];
    switch (type) {
      case element_type::STRING: {
        const std::string_view sv = v.get_string().value_unsafe();
        if (roles & (kStatus | kLatency | kBatch)) {
          if (!info.mapped) return false;  // a number expected
          ReadMappedNumber(sv, roles, info.factor);
        }
        if (roles & kTimestamp) ReadTimestamp(sv);
        if (roles & kLevel) {
          level_ = LevelNumber(sv);
          has_level_ = level_ >= 0;
        }
        if (roles & kText) text.assign(sv);
        break;
      }
      case element_type::INT64:
      case element_type::UINT64:
      case element_type::DOUBLE: {
        if (roles & (kTimestamp | kLevel)) return false;  // a string expected
        const double d = type == element_type::INT64
                             ? static_cast<double>(v.get_int64().value_unsafe())
                         : type == element_type::UINT64
                             ? static_cast<double>(v.get_uint64().value_unsafe())
                             : v.get_double().value_unsafe();
        if (roles & kStatus) {
          if (type != element_type::INT64) return false;  // an integer expected
          status_ = v.get_int64().value_unsafe();
          has_status_ = true;
        }
        if (roles & kLatency) {
          latency_ = d * info.factor;
          has_latency_ = true;
        }
        if (roles & kBatch) {
          batch_ = d * info.factor;
          has_batch_ = true;
        }
        if (roles & kText) {
          char buf[32];
          const auto r = type == element_type::INT64
                             ? std::to_chars(buf, buf + sizeof buf, v.get_int64().value_unsafe())
                         : type == element_type::UINT64
                             ? std::to_chars(buf, buf + sizeof buf, v.get_uint64().value_unsafe())
                             : std::to_chars(buf, buf + sizeof buf, d);
          text.assign(buf, r.ptr);
        }
        break;
      }
      case element_type::BOOL:
      case element_type::NULL_VALUE:
        if (roles & ~kText) return false;  // every known field has a string or number
        text = type == element_type::NULL_VALUE ? "null"
               : v.get_bool().value_unsafe()    ? "true"
                                                : "false";
        break;
      default:                             // an object or array
        if (roles & ~kText) return false;
        return true;                       // not comparable: as if missing for --by, --where
    }
    if (roles & kText) seen_[slot] = true;
    return true;
  }

  // A --field-mapped number given as a string ("503", "0.004"); anything else (nginx's "-") is
  // as if the field were missing.
  void ReadMappedNumber(std::string_view sv, unsigned roles, double factor) {
    double d = 0;
    const auto [ptr, ec] = std::from_chars(sv.data(), sv.data() + sv.size(), d);
    if (ec != std::errc() || ptr != sv.data() + sv.size() || !std::isfinite(d)) return;
    if ((roles & kStatus) && d == std::floor(d) && d >= 0 && d < 1000) {
      status_ = static_cast<std::int64_t>(d);
      has_status_ = true;
    }
    if (roles & kLatency) {
      latency_ = d * factor;
      has_latency_ = true;
    }
    if (roles & kBatch) {
      batch_ = d * factor;
      has_batch_ = true;
    }
  }

  // Consecutive records share their date and time to the second: parse those 19 characters
  // once per second of log, the fraction and offset per record.
  void ReadTimestamp(std::string_view sv) {
    if (sv.size() >= 20 && sv.size() <= 40 && ts_prefix_len_ == 19 &&
        std::memcmp(sv.data(), ts_prefix_, 19) == 0 && sv[19] == '.' && sv.back() == 'Z') {
      std::int64_t frac = 0;
      int digits = 0;
      std::size_t at = 20;
      for (; at + 1 < sv.size() && sv[at] >= '0' && sv[at] <= '9'; ++at, ++digits) {
        if (digits < 6) frac = frac * 10 + (sv[at] - '0');
      }
      if (digits > 0 && at + 1 == sv.size()) {
        for (; digits < 6; ++digits) frac *= 10;
        ts_us_ = ts_prefix_us_ + frac;
        has_ts_ = true;
        return;
      }
    }
    const auto us = ParseRfc3339Us(sv);
    has_ts_ = us.has_value();
    ts_us_ = us.value_or(0);
    ts_prefix_len_ = 0;
    if (has_ts_ && sv.size() > 20 && sv[19] == '.' && sv.back() == 'Z') {
      // The whole seconds of a UTC stamp: what the prefix stands for.
      if (const auto whole = ParseRfc3339Us(std::string(sv.substr(0, 19)) + "Z")) {
        std::memcpy(ts_prefix_, sv.data(), 19);
        ts_prefix_len_ = 19;
        ts_prefix_us_ = *whole;
      }
    }
  }

  void Count() {
    if (options_.min_level && has_level_ && level_ < *options_.min_level) {
      ++totals_.filtered_out;
      return;
    }
    if (options_.since_us && has_ts_ && ts_us_ < *options_.since_us) {
      ++totals_.filtered_out;
      return;
    }
    if (options_.until_us && has_ts_ && ts_us_ >= *options_.until_us) {
      ++totals_.filtered_out;
      return;
    }
    for (const auto& [slot, want] : plan_.where) {
      const auto s = static_cast<std::size_t>(slot);
      if (!seen_[s] || text_[s] != want) {
        ++totals_.filtered_out;
        return;
      }
    }
    if (options_.on_record) options_.on_record(line_);
    if (!has_status_ && !has_latency_) {
      ++totals_.events;
      return;
    }
    ++totals_.requests;
    if (drift_) {
      if (has_input_) AddFeatures(*drift_, feature_, "input", input_);
      if (has_prediction_) AddFeatures(*drift_, feature_, "prediction", prediction_);
    }
    key_.clear();
    for (std::size_t i = 0; i < plan_.by_slot.size(); ++i) {
      if (i > 0) key_.push_back('\x1f');
      const auto s = static_cast<std::size_t>(plan_.by_slot[i]);
      key_.append(seen_[s] ? std::string_view(text_[s]) : std::string_view("-"));
    }
    GroupStats& g = Group();
    ++g.requests;
    if (has_status_ && status_ >= 400 && status_ < 500) ++g.status_4xx;
    if (has_status_ && status_ >= 500 && status_ < 600) ++g.status_5xx;
    const int bucket = has_latency_ ? QuantileSketch::BucketOf(latency_) : 0;
    if (has_latency_) g.latency_ms.AddAt(bucket, latency_);
    if (has_batch_) {
      g.batch_size_sum += batch_;
      ++g.batch_size_count;
    }
    if (has_ts_) {
      if (g.first_us == 0 || ts_us_ < g.first_us) g.first_us = ts_us_;
      if (g.last_us == 0 || ts_us_ > g.last_us) g.last_us = ts_us_;
      totals_.last_us = std::max(totals_.last_us, ts_us_);
      if (tick_us_ > 0 && g.keeps_ticks) {
        if (TickStats* t = TickFor(g.ticks, TickIndex())) {
          ++t->requests;
          if (has_status_ && status_ >= 400 && status_ < 500) ++t->status_4xx;
          if (has_status_ && status_ >= 500 && status_ < 600) ++t->status_5xx;
          if (has_latency_) t->latency_ms.AddAt(bucket, latency_);
          if (has_batch_) {
            t->batch_size_sum += batch_;
            ++t->batch_size_count;
          }
        }
      }
    }
  }

  // TickOf(ts_us_): the division only when the record left the last record's tick.
  std::int64_t TickIndex() {
    if (ts_us_ < tick_begin_ || ts_us_ >= tick_begin_ + tick_us_) {
      tick_index_ = TickOf(ts_us_, options_.window_us);
      tick_begin_ = tick_index_ * tick_us_;
    }
    return tick_index_;
  }

  // The tick `index` of a group, added if missing; nullptr if it is older than every tick
  // kept while history_ticks are kept. Records come mostly in time order: the newest tick
  // is looked at first.
  TickStats* TickFor(std::vector<TickStats>& ticks, std::int64_t index) const {
    const std::size_t keep = std::max<std::size_t>(1, options_.history_ticks);
    if (ticks.empty() || ticks.back().index < index) {
      ticks.emplace_back().index = index;
      if (ticks.size() > keep) ticks.erase(ticks.begin());
      return &ticks.back();
    }
    if (ticks.back().index == index) return &ticks.back();
    auto it = std::lower_bound(ticks.begin(), ticks.end(), index,
                               [](const TickStats& t, std::int64_t i) { return t.index < i; });
    if (it != ticks.end() && it->index == index) return &*it;
    if (it == ticks.begin() && ticks.size() >= keep) return nullptr;
    it = ticks.insert(it, TickStats{});
    it->index = index;
    if (ticks.size() > keep) {
      ticks.erase(ticks.begin());  // never `it`: it is not the oldest
      return &*std::lower_bound(
          ticks.begin(), ticks.end(), index,
          [](const TickStats& t, std::int64_t i) { return t.index < i; });
    }
    return &*it;
  }

  GroupStats& Group() {
    // Consecutive records mostly share their group: compare with the last key before hashing.
    if (last_group_ != nullptr && key_ == last_key_) return *last_group_;
    GroupStats& g = FindGroup();
    last_key_ = key_;
    last_group_ = &g;  // nodes of an unordered_map stay put when it grows
    return g;
  }

  GroupStats& FindGroup() {
    if (auto it = groups_.find(std::string_view(key_)); it != groups_.end()) return it->second;
    if (groups_.size() >= options_.max_groups) {
      capped_ = true;
      auto [it, added] = groups_.try_emplace(kOtherGroup);
      return it->second;
    }
    GroupStats& g = groups_.try_emplace(key_).first->second;
    g.keeps_ticks = groups_.size() <= std::min(options_.window_groups, kMaxWindowGroups);
    return g;
  }

  const ScanOptions options_;  // a copy, like plan_
  const Plan plan_;  // a copy: per thread, so no other thread writes next to what it reads
  std::unique_ptr<DriftSink> drift_;
  std::int64_t tick_us_;
  std::int64_t tick_index_ = 0, tick_begin_ = INT64_MAX;  // the last record's tick
  std::string feature_;       // a drift feature's name being built
  simdjson::dom::parser parser_;
  ScanSummary totals_;  // counters only
  std::unordered_map<std::string, GroupStats, StringHash, std::equal_to<>> groups_;
  bool capped_ = false;
  std::string key_;
  std::string last_key_;
  GroupStats* last_group_ = nullptr;
  // Per line:
  std::vector<std::string> text_;  // per slot with kText: the value as text
  std::vector<bool> seen_;
  bool has_ts_ = false, has_level_ = false, has_status_ = false, has_latency_ = false,
       has_batch_ = false, has_input_ = false, has_prediction_ = false;
  simdjson::dom::element input_, prediction_;
  std::string_view line_;
  std::int64_t ts_us_ = 0;
  char ts_prefix_[19] = {};  // "YYYY-MM-DDTHH:MM:SS" of the last UTC stamp parsed in full
  std::size_t ts_prefix_len_ = 0;
  std::int64_t ts_prefix_us_ = 0;
  int level_ = -1;
  std::int64_t status_ = 0;
  double latency_ = 0;
  double batch_ = 0;
};

// ---- reading ---------------------------------------------------------------------------

// Feeds complete lines from successive reads to `counter`. `read(buf, max)` returns the bytes
// read (0 at the end) or -1 with errno set. `limit` bytes at most are taken as starting lines
// (a line that starts before the limit is read to its end); SIZE_MAX = until the end.
class LineFeeder {
 public:
  // The buffer is not zeroed (the kernel maps pages as reads fill them); only the padding after
  // the last byte a read can fill is, so parsing a final line never looks at stale bytes.
  explicit LineFeeder(Counter& counter)
      : counter_(counter), buf_(std::make_unique_for_overwrite<char[]>(kSize)) {
    std::memset(buf_.get() + kBlockBytes, 0, kPad);
  }

  // Returns false with errno set if a read failed.
  // count_bytes: add what is read to the totals (streams; a file adds its size once).
  bool Run(const std::function<ssize_t(char*, std::size_t)>& read, std::uint64_t limit,
           bool skip_first_partial, bool count_bytes) {
    std::size_t have = 0;        // bytes in buf_
    std::uint64_t consumed = 0;  // bytes before buf_[0]
    bool skipping = skip_first_partial;  // inside a line that belongs to the previous range
    bool oversized = false;              // inside a line longer than a block
    for (;;) {
      const ssize_t got = read(buf_.get() + have, kBlockBytes - have);
      if (got < 0) return false;
      have += static_cast<std::size_t>(got);
      if (count_bytes) counter_.AddBytes(static_cast<std::uint64_t>(got));
      const bool eof = got == 0;
      std::size_t at = 0;
      while (at < have) {
        if (!skipping && !oversized && consumed + at >= limit) return true;
        const char* start = buf_.get() + at;
        const void* nl = std::memchr(start, '\n', have - at);
        if (nl == nullptr) break;
        const auto len = static_cast<std::size_t>(static_cast<const char*>(nl) - start);
        if (skipping) {
          skipping = false;
        } else if (oversized) {
          oversized = false;
          counter_.BadLine();
        } else {
          counter_.Line(start, len, kSize - at);
        }
        at += len + 1;
      }
      if (eof) {
        if (at < have && !skipping && consumed + at < limit) {
          if (oversized) {
            counter_.BadLine();
          } else {
            counter_.Line(buf_.get() + at, have - at, kSize - at);  // no final newline
          }
        } else if (oversized) {
          counter_.BadLine();
        }
        return true;
      }
      // Keep the partial line; a line that fills the whole block is bad: skip to its end.
      if (at == 0 && have == kBlockBytes) {
        if (!skipping) oversized = true;
        consumed += have;
        have = 0;
        continue;
      }
      std::memmove(buf_.get(), buf_.get() + at, have - at);
      consumed += at;
      have -= at;
    }
  }

 private:
  static constexpr std::size_t kPad = simdjson::SIMDJSON_PADDING;
  Counter& counter_;
  static constexpr std::size_t kSize = kBlockBytes + kPad;
  std::unique_ptr<char[]> buf_;
};

ssize_t ReadRetry(int fd, char* buf, std::size_t n) {
  for (;;) {
    const ssize_t r = ::read(fd, buf, n);
    if (r >= 0 || errno != EINTR) return r;
  }
}

// A gzip or zstd stream decoded into the caller's buffer.
class Decoder {
 public:
  enum class Kind { kGzip, kZstd };
  Decoder(int fd, Kind kind) : fd_(fd), kind_(kind), in_(1 << 20) {
    if (kind_ == Kind::kGzip) {
      z_ = std::make_unique<z_stream>();
      std::memset(z_.get(), 0, sizeof(z_stream));
      ok_ = inflateInit2(z_.get(), 16 + MAX_WBITS) == Z_OK;
    } else {
      zd_ = ZSTD_createDStream();
      ok_ = zd_ != nullptr;
    }
  }
  ~Decoder() {
    if (z_) inflateEnd(z_.get());
    if (zd_) ZSTD_freeDStream(zd_);
  }
  const std::string& error() const { return error_; }

  // Decoded bytes into out (up to n), 0 at the end, -1 on a read or format error. The input
  // may hold several gzip members or zstd frames back to back; it must end after a whole one.
  ssize_t Read(char* out, std::size_t n) {
    if (!ok_) {
      error_ = "cannot start the decoder";
      return -1;
    }
    std::size_t produced = 0;
    while (produced < n && !done_) {
      if (in_pos_ == in_len_ && !in_eof_) {
        const ssize_t r = ReadRetry(fd_, in_.data(), in_.size());
        if (r < 0) {
          error_ = core::ErrnoMessage(errno);
          return -1;
        }
        in_pos_ = 0;
        in_len_ = static_cast<std::size_t>(r);
        in_eof_ = r == 0;
      }
      const std::size_t produced_before = produced;
      const std::size_t pos_before = in_pos_;
      if (kind_ == Kind::kGzip) {
        z_->next_in = reinterpret_cast<Bytef*>(in_.data() + in_pos_);
        z_->avail_in = static_cast<uInt>(in_len_ - in_pos_);
        z_->next_out = reinterpret_cast<Bytef*>(out + produced);
        z_->avail_out = static_cast<uInt>(n - produced);
        const int rc = inflate(z_.get(), Z_NO_FLUSH);
        const std::size_t used = (in_len_ - in_pos_) - z_->avail_in;
        in_pos_ += used;
        produced = n - z_->avail_out;
        if (rc == Z_STREAM_END) {
          inflateReset(z_.get());  // another member may follow (`cat a.gz b.gz`)
          at_boundary_ = true;
        } else if (rc == Z_OK || rc == Z_BUF_ERROR) {
          if (used > 0) at_boundary_ = false;
        } else {
          error_ = "corrupt gzip data";
          return -1;
        }
      } else {
        ZSTD_inBuffer input{in_.data() + in_pos_, in_len_ - in_pos_, 0};
        ZSTD_outBuffer output{out + produced, n - produced, 0};
        const std::size_t rc = ZSTD_decompressStream(zd_, &output, &input);
        in_pos_ += input.pos;
        produced += output.pos;
        if (ZSTD_isError(rc)) {
          error_ = std::string("corrupt zstd data: ") + ZSTD_getErrorName(rc);
          return -1;
        }
        // rc == 0: a frame is complete and flushed (a call without progress says nothing).
        if (input.pos > 0 || output.pos > 0) at_boundary_ = rc == 0;
      }
      // At the end of the input the decoder may still flush what it holds; once it makes no
      // progress the data must have ended after a whole member or frame.
      if (in_eof_ && produced == produced_before && in_pos_ == pos_before) {
        if (!at_boundary_) {
          error_ = kind_ == Kind::kGzip ? "truncated gzip data" : "truncated zstd data";
          return -1;
        }
        done_ = true;
      }
    }
    return static_cast<ssize_t>(produced);
  }

 private:
  int fd_;
  Kind kind_;
  std::vector<char> in_;
  std::size_t in_pos_ = 0, in_len_ = 0;
  bool at_boundary_ = false;  // between members/frames: the input may end here
  bool in_eof_ = false, done_ = false, ok_ = false;
  std::unique_ptr<z_stream> z_;
  ZSTD_DStream* zd_ = nullptr;
  std::string error_;
};

Result<core::UniqueFd> OpenInput(const std::string& path, struct stat& st) {
  core::UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK));
  if (!fd) {
    const int err = errno;
    return Fail(err == ENOENT ? Code::kNotFound : Code::kInvalid,
                "cannot open the log '" + path + "': " + core::ErrnoMessage(err));
  }
  if (::fstat(fd.get(), &st) != 0) {
    const int err = errno;
    return Fail(Code::kInvalid, "cannot stat the log '" + path + "': " + core::ErrnoMessage(err));
  }
  if (!S_ISREG(st.st_mode) && !S_ISFIFO(st.st_mode)) {
    return Fail(Code::kInvalid, "the log '" + path + "' is " + core::FileKindName(st.st_mode) +
                                    ", not a regular file or a pipe");
  }
  const int flags = ::fcntl(fd.get(), F_GETFL);
  if (flags >= 0) ::fcntl(fd.get(), F_SETFL, flags & ~O_NONBLOCK);
  return fd;
}

std::optional<Decoder::Kind> Sniff(int fd, bool regular) {
  if (!regular) return std::nullopt;  // a pipe cannot be peeked without consuming
  unsigned char magic[4] = {};
  const ssize_t n = ::pread(fd, magic, sizeof magic, 0);
  if (n >= 2 && magic[0] == 0x1f && magic[1] == 0x8b) return Decoder::Kind::kGzip;
  if (n >= 4 && magic[0] == 0x28 && magic[1] == 0xb5 && magic[2] == 0x2f && magic[3] == 0xfd) {
    return Decoder::Kind::kZstd;
  }
  return std::nullopt;
}

// ---- reading a memory-mapped file -------------------------------------------------------
//
// A large plain file is read through a private read-only mapping, without the kernel copying
// it into read buffers (that copy was 14% of the time). If the file shrinks meanwhile
// (copytruncate), touching a page past its new end raises SIGBUS: the handler returns to the
// reading thread's recovery point and the file is read again with pread, which sees what it
// holds now. Only Counter::Line and simdjson's parse touch the mapping, and every frame
// between the recovery point and them holds trivially destructible objects only.

thread_local sigjmp_buf* t_recover = nullptr;
thread_local const char* t_map_begin = nullptr;
thread_local const char* t_map_end = nullptr;

void OnSigbus(int, siginfo_t* info, void*) {
  const char* at = static_cast<const char*>(info->si_addr);
  if (t_recover != nullptr && at >= t_map_begin && at < t_map_end) siglongjmp(*t_recover, 1);
  ::signal(SIGBUS, SIG_DFL);  // not ours: the default action when the access is retried
}

// OnSigbus for its lifetime; the previous action after.
class SigbusGuard {
 public:
  SigbusGuard() {
    struct sigaction sa {};
    sa.sa_sigaction = OnSigbus;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    ::sigaction(SIGBUS, &sa, &old_);
  }
  ~SigbusGuard() { ::sigaction(SIGBUS, &old_, nullptr); }
  SigbusGuard(const SigbusGuard&) = delete;
  SigbusGuard& operator=(const SigbusGuard&) = delete;

 private:
  struct sigaction old_ {};
};

// The lines that start in [begin, end) of a file mapped at [base, base + size), readable up to
// base + readable (the last page's bytes past the end read as zeros). `tail` holds
// kBlockBytes + padding bytes, for a line too close to the end to be parsed in place. Lines
// of kBlockBytes or more are bad, as when reading blocks. false if the file shrank meanwhile.
bool ReadMapped(Counter& counter, const char* base, std::uint64_t size, std::uint64_t readable,
                std::uint64_t begin, std::uint64_t end, char* tail) {
  constexpr std::size_t kPad = simdjson::SIMDJSON_PADDING;
  // Pages read are dropped from the mapping every 8 MiB (they stay in the page cache), so the
  // resident memory does not grow with the file; a page touched again is mapped again.
  constexpr std::uint64_t kReleaseBytes = 8 << 20;
  const auto page = static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));
  sigjmp_buf recover;
  if (sigsetjmp(recover, 1) != 0) {
    t_recover = nullptr;
    return false;
  }
  t_map_begin = base;
  t_map_end = base + readable;
  t_recover = &recover;
  std::uint64_t at = begin;
  if (begin > 0) {  // the line holding byte begin - 1 belongs to the previous range
    const void* nl = std::memchr(base + begin - 1, '\n', size - (begin - 1));
    at = nl ? static_cast<std::uint64_t>(static_cast<const char*>(nl) - base) + 1 : size;
  }
  std::uint64_t released = (begin + page - 1) / page * page;
  while (at < end && at < size) {
    if (at >= released + kReleaseBytes) {
      const std::uint64_t upto = at / page * page;
      ::madvise(const_cast<char*>(base) + released, upto - released, MADV_DONTNEED);
      released = upto;
    }
    const void* nl = std::memchr(base + at, '\n', size - at);
    const std::uint64_t len =
        nl ? static_cast<std::uint64_t>(static_cast<const char*>(nl) - (base + at)) : size - at;
    if (len >= kBlockBytes) {
      counter.BadLine();
    } else if (at + len + kPad <= readable) {
      counter.Line(base + at, len, readable - at);
    } else {
      std::memcpy(tail, base + at, len);
      std::memset(tail + len, 0, kPad);
      counter.Line(tail, len, len + kPad);
    }
    at += len + 1;
  }
  t_recover = nullptr;
  return true;
}

// Splits the group keys back into fields and orders the groups (most requests first).
void Finish(const ScanOptions& options,
            std::unordered_map<std::string, GroupStats, StringHash, std::equal_to<>>& groups,
            ScanSummary& summary) {
  for (auto& [key, g] : groups) {
    GroupStats out = std::move(g);
    out.key.clear();
    if (key == kOtherGroup) {
      out.key.assign(options.by.size(), kOtherGroup);
    } else {
      std::size_t at = 0;
      for (std::size_t i = 0; i < options.by.size(); ++i) {
        const std::size_t sep = key.find('\x1f', at);
        out.key.push_back(key.substr(at, sep == std::string::npos ? std::string::npos : sep - at));
        at = sep == std::string::npos ? key.size() : sep + 1;
      }
    }
    summary.groups.push_back(std::move(out));
  }
  std::sort(summary.groups.begin(), summary.groups.end(),
            [](const GroupStats& a, const GroupStats& b) {
              return a.requests != b.requests ? a.requests > b.requests : a.key < b.key;
            });
}

}  // namespace

std::int64_t TickOf(std::int64_t t_us, std::int64_t window_us) {
  const std::int64_t tick = std::max<std::int64_t>(1, window_us / kTicksPerWindow);
  return t_us >= 0 ? t_us / tick : -((-t_us + tick - 1) / tick);
}

GroupStats WindowOf(const GroupStats& g, std::int64_t now_us, std::int64_t window_us) {
  const std::int64_t tick = std::max<std::int64_t>(1, window_us / kTicksPerWindow);
  const std::int64_t end = TickOf(now_us, window_us);
  const std::int64_t begin = end - kTicksPerWindow + 1;
  GroupStats w;
  w.key = g.key;
  w.is_window = true;
  w.first_us = begin * tick;
  w.last_us = std::max(now_us, w.first_us);
  for (const TickStats& t : g.ticks) {
    if (t.index < begin || t.index > end) continue;
    w.requests += t.requests;
    w.status_4xx += t.status_4xx;
    w.status_5xx += t.status_5xx;
    w.latency_ms.Merge(t.latency_ms);
    w.batch_size_sum += t.batch_size_sum;
    w.batch_size_count += t.batch_size_count;
  }
  return w;
}

void GroupStats::Merge(const GroupStats& other, std::size_t max_ticks) {
  keeps_ticks = keeps_ticks || other.keeps_ticks;
  if (!other.ticks.empty()) {
    std::vector<TickStats> out;
    out.reserve(ticks.size() + other.ticks.size());
    std::size_t i = 0, j = 0;
    while (i < ticks.size() || j < other.ticks.size()) {
      if (j == other.ticks.size() || (i < ticks.size() && ticks[i].index < other.ticks[j].index)) {
        out.push_back(std::move(ticks[i++]));
      } else if (i == ticks.size() || other.ticks[j].index < ticks[i].index) {
        out.push_back(other.ticks[j++]);
      } else {
        TickStats t = std::move(ticks[i++]);
        const TickStats& o = other.ticks[j++];
        t.requests += o.requests;
        t.status_4xx += o.status_4xx;
        t.status_5xx += o.status_5xx;
        t.latency_ms.Merge(o.latency_ms);
        t.batch_size_sum += o.batch_size_sum;
        t.batch_size_count += o.batch_size_count;
        out.push_back(std::move(t));
      }
    }
    if (out.size() > max_ticks) {
      out.erase(out.begin(), out.begin() + static_cast<std::ptrdiff_t>(out.size() - max_ticks));
    }
    ticks = std::move(out);
  }
  requests += other.requests;
  status_4xx += other.status_4xx;
  status_5xx += other.status_5xx;
  latency_ms.Merge(other.latency_ms);
  batch_size_sum += other.batch_size_sum;
  batch_size_count += other.batch_size_count;
  if (other.first_us != 0 && (first_us == 0 || other.first_us < first_us)) {
    first_us = other.first_us;
  }
  if (other.last_us > last_us) last_us = other.last_us;
}

double GroupStats::RatePerSecond() const {
  if (is_window) {
    return last_us > first_us
               ? static_cast<double>(requests) * 1e6 / static_cast<double>(last_us - first_us)
               : 0;
  }
  if (requests < 2 || last_us <= first_us) return 0;
  return static_cast<double>(requests - 1) * 1e6 / static_cast<double>(last_us - first_us);
}

std::optional<std::int64_t> ParseRfc3339Us(std::string_view s) {
  int y, mo, d, h, mi, sec;
  if (s.size() < 20 || !Digits(s, 0, 4, y) || s[4] != '-' || !Digits(s, 5, 2, mo) ||
      s[7] != '-' || !Digits(s, 8, 2, d) || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') ||
      !Digits(s, 11, 2, h) || s[13] != ':' || !Digits(s, 14, 2, mi) || s[16] != ':' ||
      !Digits(s, 17, 2, sec)) {
    return std::nullopt;
  }
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60) return std::nullopt;
  std::size_t at = 19;
  std::int64_t frac_us = 0;
  if (at < s.size() && s[at] == '.') {
    ++at;
    int digits = 0;
    while (at < s.size() && s[at] >= '0' && s[at] <= '9') {
      if (digits < 6) frac_us = frac_us * 10 + (s[at] - '0');
      ++digits;
      ++at;
    }
    if (digits == 0) return std::nullopt;
    for (; digits < 6; ++digits) frac_us *= 10;
  }
  std::int64_t offset_s = 0;
  if (at < s.size() && (s[at] == 'Z' || s[at] == 'z')) {
    ++at;
  } else if (at < s.size() && (s[at] == '+' || s[at] == '-')) {
    int oh, om;
    if (!Digits(s, at + 1, 2, oh) || at + 3 >= s.size() || s[at + 3] != ':' ||
        !Digits(s, at + 4, 2, om) || oh > 23 || om > 59) {
      return std::nullopt;
    }
    offset_s = (s[at] == '+' ? 1 : -1) * (oh * 3600 + om * 60);
    at += 6;
  } else {
    return std::nullopt;
  }
  if (at != s.size()) return std::nullopt;
  const std::int64_t days =
      DaysFromCivil(y, static_cast<unsigned>(mo), static_cast<unsigned>(d));
  const std::int64_t secs = days * 86400 + h * 3600 + mi * 60 + sec - offset_s;
  return secs * 1000000 + frac_us;
}

std::string FormatRfc3339Us(std::int64_t us) {
  std::int64_t secs = us / 1000000;
  std::int64_t frac = us % 1000000;
  if (frac < 0) {
    frac += 1000000;
    --secs;
  }
  std::int64_t days = secs / 86400;
  std::int64_t rem = secs % 86400;
  if (rem < 0) {
    rem += 86400;
    --days;
  }
  std::int64_t y = 0;
  unsigned m = 0, d = 0;
  CivilFromDays(days, y, m, d);
  char buf[48];
  std::snprintf(buf, sizeof buf, "%04lld-%02u-%02uT%02d:%02d:%02d.%06lldZ",
                static_cast<long long>(y), m, d, static_cast<int>(rem / 3600),
                static_cast<int>(rem / 60 % 60), static_cast<int>(rem % 60),
                static_cast<long long>(frac));
  return buf;
}

std::optional<std::int64_t> ParseDurationUs(std::string_view s) {
  if (s.empty()) return std::nullopt;
  std::int64_t total = 0;
  while (!s.empty()) {
    std::int64_t n = 0;
    const auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
    if (ec != std::errc() || ptr == s.data() || n < 0) return std::nullopt;
    s.remove_prefix(static_cast<std::size_t>(ptr - s.data()));
    std::int64_t unit = 0;
    if (s.starts_with("ms")) {
      unit = 1000;
      s.remove_prefix(2);
    } else if (!s.empty()) {
      switch (s.front()) {
        case 's': unit = 1000000; break;
        case 'm': unit = 60ll * 1000000; break;
        case 'h': unit = 3600ll * 1000000; break;
        case 'd': unit = 86400ll * 1000000; break;
        default: return std::nullopt;
      }
      s.remove_prefix(1);
    } else {
      return std::nullopt;  // a unit is required
    }
    if (n > INT64_MAX / unit || total > INT64_MAX - n * unit) return std::nullopt;
    total += n * unit;
  }
  if (total == 0) return std::nullopt;
  return total;
}

Result<FieldMap> ParseFieldMap(std::string_view text) {
  const auto usage = [&](const std::string& what) {
    return Fail(Code::kUsage, "--field '" + core::TerminalSafe(text) + "': " + what,
                {"give NAME=PATH[*FACTOR]: the field monitor knows (status, latency_ms, "
                 "@timestamp, log.level, batch_size, or one named by --by/--where) and where "
                 "the log has it, e.g. --field latency_ms=request_time*1000 --field "
                 "model=/labels/app"});
  };
  const std::size_t eq = text.find('=');
  if (eq == std::string_view::npos || eq == 0) return usage("expected NAME=PATH");
  FieldMap map;
  map.name = std::string(text.substr(0, eq));
  std::string_view path = text.substr(eq + 1);
  if (const std::size_t star = path.rfind('*'); star != std::string_view::npos) {
    const std::string_view f = path.substr(star + 1);
    const auto [ptr, ec] = std::from_chars(f.data(), f.data() + f.size(), map.factor);
    if (ec != std::errc() || ptr != f.data() + f.size() || !std::isfinite(map.factor) ||
        map.factor == 0) {
      return usage("the factor after '*' must be a non-zero number");
    }
    if (map.name == "status" || map.name == "@timestamp" || map.name == "log.level") {
      return usage("only numbers such as latency_ms and batch_size can be scaled");
    }
    path = path.substr(0, star);
  }
  if (path.empty()) return usage("the PATH is empty");
  if (path.front() == '/' && path.size() == 1) return usage("the JSON Pointer '/' names nothing");
  map.path = std::string(path);
  return map;
}

Result<ScanSummary> Scan(const std::vector<std::string>& paths, const ScanOptions& options) {
  const Plan plan(options);
  // Filter mode prints records in file order: one thread.
  const unsigned threads =
      options.on_record ? 1u
                        : std::max(1u, options.threads ? options.threads : core::WorkerCount());
  ScanSummary summary;
  summary.threads = 1;
  std::unordered_map<std::string, GroupStats, StringHash, std::equal_to<>> groups;

  for (const std::string& path : paths) {
    core::UniqueFd owned;
    int fd = STDIN_FILENO;
    struct stat st {};
    if (path == "-") {
      if (::fstat(fd, &st) != 0) st.st_mode = S_IFIFO;
    } else {
      DLSYS_ASSIGN_OR_RETURN(owned, OpenInput(path, st));
      fd = owned.get();
    }
    const bool regular = S_ISREG(st.st_mode);
    const std::string name = path == "-" ? "standard input" : "'" + path + "'";
    if (auto kind = Sniff(fd, regular)) {
      Counter counter(options, plan);
      Decoder decoder(fd, *kind);
      LineFeeder feeder(counter);
      const bool ok = feeder.Run([&](char* b, std::size_t n) { return decoder.Read(b, n); },
                                 UINT64_MAX, false, true);
      counter.MergeInto(summary, groups);
      if (!ok) {
        return Fail(Code::kInvalid, "cannot read the log " + name + ": " + decoder.error(),
                    {"check the file with 'gzip -t' or 'zstd -t'"});
      }
      continue;
    }
    auto size = static_cast<std::uint64_t>(regular ? st.st_size : 0);
    const unsigned n =
        regular ? static_cast<unsigned>(std::clamp<std::uint64_t>(size / std::max<std::uint64_t>(1, options.min_range_bytes), 1,
                                                           threads))
                : 1;
    summary.threads = std::max(summary.threads, n);
    if (regular && size > 0 && size >= options.map_min_bytes && !options.on_record) {
      void* map = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
      if (map != MAP_FAILED) {
        const auto page = static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));
        const std::uint64_t readable = (size + page - 1) / page * page;
        if (options.on_mapped) options.on_mapped();
        std::vector<std::unique_ptr<Counter>> counters(n);
        std::vector<char> whole(n, 0);
        {
          SigbusGuard guard;
          core::ParallelFor(n, n, [&](std::size_t i) {
            counters[i] = std::make_unique<Counter>(options, plan);
            const auto tail =
                std::make_unique_for_overwrite<char[]>(kBlockBytes + simdjson::SIMDJSON_PADDING);
            whole[i] = ReadMapped(*counters[i], static_cast<const char*>(map), size, readable,
                                  size * i / n, size * (i + 1) / n, tail.get());
          });
        }
        ::munmap(map, size);
        if (std::all_of(whole.begin(), whole.end(), [](char w) { return w != 0; })) {
          for (auto& c : counters) c->MergeInto(summary, groups);
          summary.bytes += size;
          continue;
        }
        // The file shrank while mapped: read it again as it is now.
        if (::fstat(fd, &st) != 0) {
          return Fail(Code::kInvalid, "cannot stat the log " + name + ": " + core::ErrnoMessage(errno));
        }
        size = static_cast<std::uint64_t>(st.st_size);
      }
    }
    std::vector<std::unique_ptr<Counter>> counters(n);
    std::vector<int> errors(n, 0);
    core::ParallelFor(n, n, [&](std::size_t i) {
      // Made by the thread that uses it: its per-line state (field texts, flags) then comes
      // from that thread's heap arena, never a cache line another thread writes (made side by
      // side by one thread, they cost 25% of the wall time with two threads: false sharing).
      counters[i] = std::make_unique<Counter>(options, plan);
      LineFeeder feeder(*counters[i]);
      if (!regular) {
        if (!feeder.Run([&](char* b, std::size_t len) { return ReadRetry(fd, b, len); },
                        UINT64_MAX, false, true)) {
          errors[i] = errno;
        }
        return;
      }
      // Range i: the lines that start in [begin, end). A range after the first starts one byte
      // early so that a line starting exactly at `begin` is seen to start there.
      const std::uint64_t begin = size * i / n;
      const std::uint64_t end = size * (i + 1) / n;
      std::uint64_t offset = begin == 0 ? 0 : begin - 1;
      const std::uint64_t limit = end - offset;
      const bool ok = feeder.Run(
          [&](char* b, std::size_t len) {
            for (;;) {
              const ssize_t r = ::pread(fd, b, len, static_cast<off_t>(offset));
              if (r < 0 && errno == EINTR) continue;
              if (r > 0) offset += static_cast<std::uint64_t>(r);
              return r;
            }
          },
          limit, begin != 0, false);
      if (!ok) errors[i] = errno;
    });
    for (auto& c : counters) c->MergeInto(summary, groups);
    summary.bytes += size;
    for (int err : errors) {
      if (err != 0) {
        return Fail(Code::kInvalid,
                    "cannot read the log " + name + ": " + core::ErrnoMessage(err));
      }
    }
  }
  Finish(options, groups, summary);
  return summary;
}


// ---- following one file ----------------------------------------------------------------

struct Follower::Impl {
  ScanOptions options;
  Plan plan;
  Counter counter;
  std::string path;
  core::UniqueFd fd;
  dev_t dev = 0;
  ino_t ino = 0;
  std::uint64_t offset = 0;  // bytes of the current file read so far
  static constexpr std::size_t kPad = simdjson::SIMDJSON_PADDING;
  std::unique_ptr<char[]> buf = std::make_unique_for_overwrite<char[]>(kBlockBytes + kPad);
  std::size_t have = 0;    // bytes of a partial line in buf
  bool oversized = false;  // inside a line longer than a block
  std::uint64_t rotations = 0;
  std::uint64_t truncations = 0;
  bool stream = false;  // a pipe: no rotation or truncation, it ends when its writer closes it
  bool ended = false;

  Impl(const std::string& p, const ScanOptions& o) : options(o), plan(options), counter(options, plan), path(p) {
    std::memset(buf.get() + kBlockBytes, 0, kPad);
  }

  Result<void> OpenPath() {
    struct stat st {};
    DLSYS_ASSIGN_OR_RETURN(fd, OpenInput(path, st));
    if (!S_ISREG(st.st_mode)) {
      return Fail(Code::kInvalid, "cannot follow '" + path + "': it is " +
                                      core::FileKindName(st.st_mode) + ", not a regular file",
                  {"follow the log file itself"});
    }
    if (Sniff(fd.get(), true)) {
      return Fail(Code::kInvalid, "cannot follow '" + path + "': it is compressed",
                  {"summarize it without --follow"});
    }
    dev = st.st_dev;
    ino = st.st_ino;
    offset = 0;
    have = 0;
    oversized = false;
    return {};
  }

  // Reads what the file holds now; complete lines are counted, a partial one is kept.
  Result<std::uint64_t> ReadAvailable() {
    std::uint64_t total = 0;
    for (;;) {
      const ssize_t got = ReadRetry(fd.get(), buf.get() + have, kBlockBytes - have);
      if (got < 0 && stream && (errno == EAGAIN || errno == EWOULDBLOCK)) return total;
      if (got < 0) {
        return Fail(Code::kInvalid,
                    "cannot read the log '" + path + "': " + core::ErrnoMessage(errno));
      }
      if (got == 0) {
        if (stream && !ended) {
          ended = true;
          FlushPartial();
        }
        return total;
      }
      total += static_cast<std::uint64_t>(got);
      offset += static_cast<std::uint64_t>(got);
      counter.AddBytes(static_cast<std::uint64_t>(got));
      have += static_cast<std::size_t>(got);
      std::size_t at = 0;
      while (at < have) {
        const void* nl = std::memchr(buf.get() + at, '\n', have - at);
        if (nl == nullptr) break;
        const auto len = static_cast<std::size_t>(static_cast<const char*>(nl) - (buf.get() + at));
        if (oversized) {
          oversized = false;
          counter.BadLine();
        } else {
          counter.Line(buf.get() + at, len, kBlockBytes + kPad - at);
        }
        at += len + 1;
      }
      if (at == 0 && have == kBlockBytes) {  // a line longer than the buffer: bad, skip it
        oversized = true;
        have = 0;
        continue;
      }
      std::memmove(buf.get(), buf.get() + at, have - at);
      have -= at;
    }
  }

  // The file ended for good (rotated away): a last line without a newline still counts.
  void FlushPartial() {
    if (oversized) {
      counter.BadLine();
    } else if (have > 0) {
      counter.Line(buf.get(), have, kBlockBytes + kPad);
    }
    have = 0;
    oversized = false;
  }
};

Result<std::unique_ptr<Follower>> Follower::Open(const std::string& path,
                                                 const ScanOptions& options) {
  auto f = std::unique_ptr<Follower>(new Follower());
  f->impl_ = std::make_unique<Impl>(path, options);
  DLSYS_TRY(f->impl_->OpenPath());
  return f;
}

Result<std::unique_ptr<Follower>> Follower::OpenStream(int fd, const std::string& name,
                                                       const ScanOptions& options) {
  auto f = std::unique_ptr<Follower>(new Follower());
  f->impl_ = std::make_unique<Impl>(name, options);
  Impl& m = *f->impl_;
  m.stream = true;
  m.fd = core::UniqueFd(::fcntl(fd, F_DUPFD_CLOEXEC, 0));
  if (!m.fd) {
    return Fail(Code::kInvalid, "cannot read " + name + ": " + core::ErrnoMessage(errno));
  }
  const int flags = ::fcntl(m.fd.get(), F_GETFL);
  if (flags < 0 || ::fcntl(m.fd.get(), F_SETFL, flags | O_NONBLOCK) != 0) {
    return Fail(Code::kInvalid, "cannot read " + name + ": " + core::ErrnoMessage(errno));
  }
  return f;
}

bool Follower::ended() const { return impl_->ended; }

Follower::~Follower() = default;

Result<std::uint64_t> Follower::Poll() {
  Impl& m = *impl_;
  if (m.stream) return m.ended ? 0 : m.ReadAvailable();
  struct stat st {};
  if (::fstat(m.fd.get(), &st) == 0 && static_cast<std::uint64_t>(st.st_size) < m.offset) {
    // Truncated (copytruncate, `> log`): what was read stays counted; start over at 0.
    if (::lseek(m.fd.get(), 0, SEEK_SET) != 0) {
      return Fail(Code::kInvalid, "cannot rewind the truncated log '" + m.path + "'");
    }
    m.offset = 0;
    m.have = 0;
    m.oversized = false;
    ++m.truncations;
  }
  DLSYS_ASSIGN_OR_RETURN(std::uint64_t n, m.ReadAvailable());
  // Rotated: the path names another file now. The old one was just read to its end.
  if (::stat(m.path.c_str(), &st) == 0 && (st.st_ino != m.ino || st.st_dev != m.dev)) {
    // What the writer appended to the old file between that read and the rename.
    DLSYS_ASSIGN_OR_RETURN(std::uint64_t last, m.ReadAvailable());
    n += last;
    m.FlushPartial();
    DLSYS_TRY(m.OpenPath());
    ++m.rotations;
    DLSYS_ASSIGN_OR_RETURN(std::uint64_t more, m.ReadAvailable());
    n += more;
  }
  return n;
}

ScanSummary Follower::Summary() const {
  ScanSummary summary;
  std::unordered_map<std::string, GroupStats, StringHash, std::equal_to<>> groups;
  impl_->counter.SnapshotInto(summary, groups);
  Finish(impl_->options, groups, summary);
  return summary;
}

std::uint64_t Follower::rotations() const { return impl_->rotations; }
std::uint64_t Follower::truncations() const { return impl_->truncations; }

}  // namespace dlsys::monitor
