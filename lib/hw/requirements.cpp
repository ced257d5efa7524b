#include "hw/requirements.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <set>

#include "core/checked.h"
#include "core/encoding.h"
#include "core/internal/json.h"
#include "hw/internal/read.h"

namespace dlsys::hw {
namespace {

using internal::Json;
using internal::Reader;
using manifest::internal::Join;

constexpr core::JsonLimits kRequirementsLimits{kMaxRequirementsBytes, kMaxRequirementsDepth,
                                               kMaxRequirementsValues};
constexpr std::uint64_t kMaxSafe = static_cast<std::uint64_t>(core::kMaxSafeInteger);

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// A size given either with units (`key: 2 GiB`) or in bytes (`key_bytes: 2147483648`).
Result<std::optional<std::uint64_t>> SizeEitherWay(const Reader& r, const std::string& display,
                                                   const Json& obj, const std::string& key) {
  const std::string path;
  const std::string bytes_key = key + "_bytes";
  DLSYS_ASSIGN_OR_RETURN(auto with_units, internal::ReadSize(r, obj, path, key.c_str()));
  DLSYS_ASSIGN_OR_RETURN(const Json* bytes, r.Get(obj, path, bytes_key.c_str(), false));
  if (bytes == nullptr) return with_units;
  if (with_units) {
    return Fail(Code::kInvalid, display + " field '" + bytes_key + "': give either '" + key +
                                    "' or '" + bytes_key + "', not both");
  }
  if (!bytes->is_number_unsigned() || bytes->get<std::uint64_t>() > kMaxSafe) {
    return r.Bad(Join(path, bytes_key), "a non-negative integer number of bytes", bytes);
  }
  return std::optional<std::uint64_t>(bytes->get<std::uint64_t>());
}

Result<std::uint64_t> Bytes(const Reader& r, const Json& obj, const std::string& path,
                            const char* key) {
  DLSYS_ASSIGN_OR_RETURN(const Json* v, r.Get(obj, path, key, false));
  if (v == nullptr) return std::uint64_t{0};
  if (!v->is_number_unsigned() || v->get<std::uint64_t>() > kMaxSafe) {
    return r.Bad(Join(path, key), "a non-negative integer number of bytes", v);
  }
  return v->get<std::uint64_t>();
}

Result<Measured> ParseMeasured(const Reader& r, const Json& m, const std::string& path) {
  if (!m.is_object()) return r.Bad(path, "an object", &m);
  DLSYS_TRY(r.OnlyKeys(m, path,
                       {"peak_memory_bytes", "weights_bytes", "forward_latency_ms", "forward_runs",
                        "threads", "example", "machine"}));
  Measured out;
  DLSYS_ASSIGN_OR_RETURN(out.peak_memory_bytes, Bytes(r, m, path, "peak_memory_bytes"));
  DLSYS_ASSIGN_OR_RETURN(out.weights_bytes, Bytes(r, m, path, "weights_bytes"));
  DLSYS_ASSIGN_OR_RETURN(out.forward_latency_ms, r.Number(m, path, "forward_latency_ms", false, 0));
  if (!(out.forward_latency_ms >= 0) || !std::isfinite(out.forward_latency_ms)) {
    return r.Bad(Join(path, "forward_latency_ms"), "a number >= 0", &m.at("forward_latency_ms"));
  }
  DLSYS_ASSIGN_OR_RETURN(auto runs, r.Int(m, path, "forward_runs", false, 0, 1 << 30));
  out.forward_runs = static_cast<int>(runs);
  DLSYS_ASSIGN_OR_RETURN(auto threads, r.Int(m, path, "threads", false, 0, 1 << 20));
  out.threads = static_cast<int>(threads);
  DLSYS_ASSIGN_OR_RETURN(out.example, r.String(m, path, "example", false));
  DLSYS_ASSIGN_OR_RETURN(out.machine, r.String(m, path, "machine", false));
  return out;
}

Result<Requirements> FromJson(const Json& root, const std::string& display) {
  Reader r(display);
  if (root.is_null()) return Requirements{};
  if (!root.is_object()) {
    return Fail(Code::kInvalid,
                display + ": expected an object, found " + manifest::internal::TypeName(root));
  }
  DLSYS_TRY(r.OnlyKeys(root, "",
                       {"device", "min_gpu_compute_capability", "min_gpu_memory",
                        "min_gpu_memory_bytes", "min_memory", "min_memory_bytes", "cpu_features",
                        "latency_budget_ms", "max_batch_size", "measured"}));
  Requirements req;
  DLSYS_ASSIGN_OR_RETURN(const Json* device, r.Get(root, "", "device", false));
  if (device != nullptr) {
    if (!device->is_string() || (*device != "cpu" && *device != "cuda")) {
      return r.Bad("device", "\"cpu\" or \"cuda\"", device);
    }
    req.device = device->get<std::string>();
  }
  DLSYS_ASSIGN_OR_RETURN(
      req.min_gpu_compute_capability,
      internal::ReadComputeCapability(r, root, "", "min_gpu_compute_capability"));
  DLSYS_ASSIGN_OR_RETURN(req.min_gpu_memory_bytes,
                         SizeEitherWay(r, display, root, "min_gpu_memory"));
  DLSYS_ASSIGN_OR_RETURN(req.min_memory_bytes, SizeEitherWay(r, display, root, "min_memory"));
  DLSYS_ASSIGN_OR_RETURN(req.cpu_features, r.Strings(root, "", "cpu_features", false,
                                                     kMaxCpuFeatureBytes, kMaxCpuFeatures));
  for (auto& f : req.cpu_features) f = Lower(std::move(f));
  std::sort(req.cpu_features.begin(), req.cpu_features.end());
  req.cpu_features.erase(std::unique(req.cpu_features.begin(), req.cpu_features.end()),
                         req.cpu_features.end());
  DLSYS_ASSIGN_OR_RETURN(const Json* budget, r.Get(root, "", "latency_budget_ms", false));
  if (budget != nullptr) {
    if (!budget->is_number() || !(budget->get<double>() > 0) ||
        !std::isfinite(budget->get<double>())) {
      return r.Bad("latency_budget_ms", "a number of milliseconds > 0", budget);
    }
    req.latency_budget_ms = budget->get<double>();
  }
  DLSYS_ASSIGN_OR_RETURN(const Json* batch, r.Get(root, "", "max_batch_size", false));
  if (batch != nullptr) {
    DLSYS_ASSIGN_OR_RETURN(req.max_batch_size,
                           r.Int(root, "", "max_batch_size", true, 1, std::int64_t{1} << 40));
    // Reader::Int checks only the maximum for non-negative JSON integers.
    if (*req.max_batch_size < 1) return r.Bad("max_batch_size", "an integer >= 1", batch);
  }
  DLSYS_ASSIGN_OR_RETURN(const Json* measured, r.Get(root, "", "measured", false));
  if (measured != nullptr) {
    DLSYS_ASSIGN_OR_RETURN(req.measured, ParseMeasured(r, *measured, "measured"));
  }
  return req;
}

// ---- CheckTarget ----------------------------------------------------------------------------

using core::HumanBytes;

std::string Ms(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, v >= 100 ? "%.0f" : v >= 10 ? "%.1f" : "%.2f", v);
  std::string s = buf;
  if (s.find('.') != std::string::npos) {
    while (s.back() == '0') s.pop_back();
    if (s.back() == '.') s.pop_back();
  }
  return s;
}

std::string JoinList(const std::vector<std::string>& items, std::size_t limit = SIZE_MAX) {
  std::string out;
  for (std::size_t i = 0; i < items.size() && i < limit; ++i) {
    out += (i == 0 ? "" : ", ") + items[i];
  }
  if (items.size() > limit) out += " and " + std::to_string(items.size() - limit) + " more";
  return out;
}

Check Row(const char* check, std::string subject, Status status, std::string message,
          std::string expected = "", std::string found = "") {
  return Check{check,           std::move(subject), status, std::move(message), std::move(expected),
               std::move(found)};
}

// `bytes` in the unit HumanBytes picks for `reference`, so the parts of a sum read alike:
// "1.30 GiB (1.10 GiB weights + 0.20 GiB measured activation)".
std::string BytesLike(std::uint64_t bytes, std::uint64_t reference) {
  static const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int unit = 0;
  for (double r = static_cast<double>(reference); r >= 1024 && unit < 4; r /= 1024) ++unit;
  if (unit == 0) return HumanBytes(bytes);
  double v = static_cast<double>(bytes) / std::pow(1024.0, unit);
  if (v < 0.01) return HumanBytes(bytes);  // too small to show in the total's unit
  char buf[32];
  std::snprintf(buf, sizeof buf, v < 10 ? "%.2f %s" : "%.1f %s", v, kUnits[unit]);
  return buf;
}

core::ByteSize Sum(const std::map<std::string, std::int64_t>& by_dtype) {
  core::ByteSize total;
  for (const auto& [dtype, bytes] : by_dtype) {
    total += core::ByteSize(bytes > 0 ? static_cast<std::uint64_t>(bytes) : 0);
  }
  return total;
}

}  // namespace

std::uint64_t WeightBytes(const runtime::ModelSummary& summary) {
  // Checked: a sum that wrapped around would make the memory requirement pass anywhere.
  return (Sum(summary.parameters.bytes_by_dtype) + Sum(summary.buffers.bytes_by_dtype)).Saturated();
}

std::uint64_t MemoryNeedBytes(const manifest::Manifest& m, const Requirements& req) {
  std::uint64_t weights = WeightBytes(m.model);
  if (weights == 0 && req.measured) weights = req.measured->weights_bytes;
  const std::uint64_t peak = req.measured ? req.measured->peak_memory_bytes : 0;
  return std::max({req.min_memory_bytes.value_or(0), peak, weights});
}

namespace {

Check CheckMemory(const manifest::Manifest& m, const Requirements& req, const TargetProfile& t) {
  std::uint64_t weights = WeightBytes(m.model);
  if (weights == 0 && req.measured) weights = req.measured->weights_bytes;
  std::uint64_t peak = req.measured ? req.measured->peak_memory_bytes : 0;
  std::uint64_t declared = req.min_memory_bytes.value_or(0);
  std::uint64_t need = MemoryNeedBytes(m, req);

  std::string why;
  if (req.min_memory_bytes && declared >= peak && declared >= weights) {
    why = "declared minimum";
  } else if (peak > weights) {
    why = BytesLike(weights, need) + " weights + " + BytesLike(peak - weights, need) +
          " measured activation";
  } else {
    why = req.measured ? "weights; measured peak is lower" : "weights; no measured peak";
  }
  std::string needs = "needs " + HumanBytes(need) + " (" + why + ")";

  bool available = t.memory_available_bytes.has_value();
  std::optional<std::uint64_t> has = available ? t.memory_available_bytes : t.memory_total_bytes;
  std::string subject = available ? "memory.available" : "memory.total";
  if (need == 0) {
    return Row("memory", "memory", Status::kWarn,
               "model records no weight bytes, measured peak or declared minimum; not checked");
  }
  if (!has) {
    return Row("memory", "memory", Status::kWarn, needs + ", target does not state its memory",
               std::to_string(need));
  }
  std::string msg = needs + ", target has " + HumanBytes(*has);
  Status status = Status::kPass;
  if (need > *has) {
    status = Status::kFail;
  } else if (static_cast<double>(need) > 0.9 * static_cast<double>(*has)) {
    status = Status::kWarn;
    msg += " (less than 10% headroom)";
  }
  return Row("memory", subject, status, msg, std::to_string(need), std::to_string(*has));
}

using Cc = std::pair<int, int>;
std::optional<Cc> ParseCc(const std::optional<std::string>& s) {
  if (!s) return std::nullopt;
  int major = 0;
  int minor = 0;
  if (std::sscanf(s->c_str(), "%d.%d", &major, &minor) != 2) return std::nullopt;
  return Cc{major, minor};
}

// The GPU with the highest compute capability, or the first one when none states it.
const Gpu* BestGpu(const std::vector<Gpu>& gpus) {
  const Gpu* best = nullptr;
  for (const Gpu& g : gpus) {
    if (best == nullptr) best = &g;
    auto cc = ParseCc(g.compute_capability);
    auto best_cc = ParseCc(best->compute_capability);
    if (cc && (!best_cc || *cc > *best_cc)) best = &g;
  }
  return best;
}

std::string GpuLabel(const Gpu& g) { return g.name.empty() ? "an unnamed GPU" : g.name; }

bool NeedsCuda(const manifest::Manifest& m, const Requirements& req) {
  if (req.device == "cuda") return true;
  return std::any_of(m.model.devices.begin(), m.model.devices.end(),
                     [](const std::string& d) { return d.rfind("cuda", 0) == 0; });
}

Check CheckDevice(const manifest::Manifest& m, const Requirements& req, const TargetProfile& t) {
  if (!NeedsCuda(m, req)) return Row("device", "device", Status::kPass, "model runs on cpu", "cpu");
  const auto& min = req.min_gpu_compute_capability;
  std::string needs = "model needs cuda" + (min ? " >= " + *min : std::string());
  std::string expected = min ? "cuda>=" + *min : "cuda";
  if (!t.gpus) {
    return Row("device", "gpus", Status::kWarn, needs + ", target does not list its GPUs",
               expected);
  }
  if (t.gpus->empty()) {
    return Row("device", "gpus", Status::kFail, needs + ", target has no GPU", expected, "none");
  }
  const Gpu* best = BestGpu(*t.gpus);
  std::string best_cc = best->compute_capability.value_or("");
  if (!min) {
    return Row("device", "gpus", Status::kPass,
               needs + ", target has " + std::to_string(t.gpus->size()) + " GPU(s), e.g. " +
                   GpuLabel(*best),
               expected, best_cc);
  }
  auto want = ParseCc(min);
  auto have = ParseCc(best->compute_capability);
  if (!have) {
    return Row("device", "gpus", Status::kWarn,
               needs + ", target GPU " + GpuLabel(*best) + " does not state its compute capability",
               expected);
  }
  if (want && *have < *want) {
    return Row(
        "device", "gpus", Status::kFail,
        needs + ", target's best GPU " + GpuLabel(*best) + " has compute capability " + best_cc,
        expected, best_cc);
  }
  return Row("device", "gpus", Status::kPass,
             needs + ", target has " + GpuLabel(*best) + " (" + best_cc + ")", expected, best_cc);
}

std::optional<Check> CheckGpuMemory(const Requirements& req, const TargetProfile& t) {
  if (!req.min_gpu_memory_bytes) return std::nullopt;
  std::uint64_t need = *req.min_gpu_memory_bytes;
  std::string needs = "needs " + HumanBytes(need) + " GPU memory";
  std::string expected = std::to_string(need);
  if (!t.gpus) {
    return Row("gpu_memory", "gpus", Status::kWarn, needs + ", target does not list its GPUs",
               expected);
  }
  if (t.gpus->empty()) {
    return Row("gpu_memory", "gpus", Status::kFail, needs + ", target has no GPU", expected, "0");
  }
  const Gpu* best = nullptr;
  for (const Gpu& g : *t.gpus) {
    if (g.memory_bytes && (best == nullptr || *g.memory_bytes > *best->memory_bytes)) best = &g;
  }
  if (best == nullptr) {
    return Row("gpu_memory", "gpus", Status::kWarn,
               needs + ", target GPUs do not state their memory", expected);
  }
  std::string msg = needs + ", target's largest GPU " + GpuLabel(*best) + " has " +
                    HumanBytes(*best->memory_bytes);
  Status status = need > *best->memory_bytes ? Status::kFail : Status::kPass;
  return Row("gpu_memory", "gpus", status, msg, expected, std::to_string(*best->memory_bytes));
}

Check CheckCpuFeatures(const Requirements& req, const TargetProfile& t) {
  const auto& need = req.cpu_features;
  if (need.empty()) {
    return Row("cpu_features", "cpu.features", Status::kPass, "no CPU features required");
  }
  std::string needs = "needs " + JoinList(need);
  if (!t.cpu_features) {
    return Row("cpu_features", "cpu.features", Status::kWarn,
               needs + "; target does not list its CPU features", JoinList(need));
  }
  std::vector<std::string> missing;
  for (const auto& f : need) {
    if (std::find(t.cpu_features->begin(), t.cpu_features->end(), f) == t.cpu_features->end()) {
      missing.push_back(f);
    }
  }
  if (!missing.empty()) {
    return Row("cpu_features", "cpu.features", Status::kFail,
               needs + "; target lacks " + JoinList(missing), JoinList(need), JoinList(missing));
  }
  return Row("cpu_features", "cpu.features", Status::kPass, needs + "; target has all",
             JoinList(need), JoinList(need));
}

Check CheckFileFormat(const manifest::Manifest& m, const TargetProfile& t) {
  std::int64_t version = m.model.file_format_version;
  std::string v = std::to_string(version);
  const char* subject = "runtime.max_file_format_version";
  if (version <= 0) {
    return Row("file_format", subject, Status::kWarn,
               "manifest records no TorchScript file-format version; not checked");
  }
  if (!t.runtime || !t.runtime->max_file_format_version) {
    return Row("file_format", subject, Status::kWarn,
               "version " + v + ", target does not say which versions its runtime reads", v);
  }
  std::int64_t max = *t.runtime->max_file_format_version;
  std::string msg = "version " + v + ", runtime reads <= " + std::to_string(max);
  return Row("file_format", subject, version > max ? Status::kFail : Status::kPass, msg, v,
             std::to_string(max));
}

Check CheckRuntimeVersion(const manifest::Manifest& m, const TargetProfile& t) {
  const std::string& packed = m.model.runtime_version;
  const char* subject = "runtime.libtorch_version";
  if (packed.empty()) {
    return Row("runtime_version", subject, Status::kWarn,
               "manifest records no libtorch version; not checked");
  }
  std::string msg = "packed with libtorch " + packed;
  if (!t.runtime || t.runtime->libtorch_version.empty()) {
    return Row("runtime_version", subject, Status::kWarn,
               msg + ", target does not state its libtorch version", packed);
  }
  const std::string& has = t.runtime->libtorch_version;
  msg += ", target has " + has;
  Status status = internal::CompareVersions(has, packed) < 0 ? Status::kWarn : Status::kPass;
  return Row("runtime_version", subject, status, msg, packed, has);
}

Check CheckOperators(const manifest::Manifest& m, const TargetProfile& t) {
  const auto& ops = m.model.operators;
  const char* subject = "runtime.operators";
  if (!t.runtime || t.runtime->operators.empty()) {
    return Row("operators", subject, Status::kWarn,
               "target profile lists no operators; not checked");
  }
  // Profiles built in code need not be sorted.
  const std::set<std::string> provided(t.runtime->operators.begin(), t.runtime->operators.end());
  std::vector<std::string> missing;
  for (const auto& op : ops) {
    if (provided.count(op) == 0) missing.push_back(op);
  }
  std::string runtime =
      "target runtime" +
      (t.runtime->libtorch_version.empty() ? std::string() : " " + t.runtime->libtorch_version);
  if (!missing.empty()) {
    return Row("operators", subject, Status::kFail,
               JoinList(missing, 5) + " not provided by " + runtime,
               std::to_string(ops.size()) + " operators", JoinList(missing));
  }
  return Row("operators", subject, Status::kPass,
             "all " + std::to_string(ops.size()) + " operators provided by " + runtime,
             std::to_string(ops.size()) + " operators");
}

// Performance, not compatibility: a model runs on any BLAS, so this row WARNs at worst.
std::optional<Check> CheckBlas(const manifest::Manifest& m, const Requirements& req,
                               const TargetProfile& t) {
  if (NeedsCuda(m, req)) return std::nullopt;  // GPU matmuls do not go through the CPU BLAS
  const char* subject = "runtime.blas";
  if (!t.runtime || !t.runtime->blas || t.runtime->blas->name.empty()) {
    return Row("blas", subject, Status::kWarn,
               "target does not say which BLAS its runtime uses (run dlsys probe there); CPU "
               "inference speed not checked");
  }
  const RuntimeBlas& blas = *t.runtime->blas;
  const std::string found = blas.library.empty() ? blas.name : blas.name + " " + blas.library;
  if (blas.Reference()) {
    return Row("blas", subject, Status::kWarn,
               "reference BLAS: batched inference will be ~10x slower; install "
               "libopenblas0-openmp",
               "optimized", found);
  }
  if (blas.name == "unknown") {
    std::string where = blas.library.empty() ? "" : " (" + blas.library + ")";
    return Row("blas", subject, Status::kWarn,
               "target runtime's BLAS is not identified" + where +
                   "; CPU inference speed not "
                   "checked",
               "optimized", found);
  }
  return Row("blas", subject, Status::kPass,
             blas.name + (blas.detail.empty() ? "" : ": " + blas.detail), "optimized", found);
}

std::optional<Check> CheckLatency(const Requirements& req) {
  if (!req.latency_budget_ms) return std::nullopt;
  double budget = *req.latency_budget_ms;
  const char* subject = "measured.forward_latency_ms";
  std::string expected = Ms(budget);
  if (!req.measured || req.measured->forward_latency_ms <= 0) {
    return Row("latency", subject, Status::kWarn,
               "budget " + Ms(budget) + " ms, but no forward latency was measured at pack time",
               expected);
  }
  double ms = req.measured->forward_latency_ms;
  std::string where = req.measured->machine.empty() ? "the packing machine" : req.measured->machine;
  std::string msg = "measured " + Ms(ms) + " ms on " + where + ", budget " + Ms(budget) + " ms";
  if (ms > budget) {
    return Row("latency", subject, Status::kWarn,
               msg + " (measured on the packing machine, not the target)", expected, Ms(ms));
  }
  return Row("latency", subject, Status::kPass, msg, expected, Ms(ms));
}

}  // namespace

Result<Requirements> ParseRequirements(std::string_view json, const std::string& display) {
  DLSYS_ASSIGN_OR_RETURN(Json root, core::ParseJson(json, kRequirementsLimits, display));
  return FromJson(root, display);
}

std::string RequirementsToJson(const Requirements& r) {
  Json j = Json::object();
  j["device"] = r.device;
  if (r.min_gpu_compute_capability) j["min_gpu_compute_capability"] = *r.min_gpu_compute_capability;
  if (r.min_gpu_memory_bytes) j["min_gpu_memory_bytes"] = *r.min_gpu_memory_bytes;
  if (r.min_memory_bytes) j["min_memory_bytes"] = *r.min_memory_bytes;
  if (!r.cpu_features.empty()) j["cpu_features"] = r.cpu_features;
  if (r.latency_budget_ms) j["latency_budget_ms"] = *r.latency_budget_ms;
  if (r.max_batch_size) j["max_batch_size"] = *r.max_batch_size;
  if (r.measured) {
    const Measured& m = *r.measured;
    j["measured"] = Json{{"peak_memory_bytes", m.peak_memory_bytes},
                         {"weights_bytes", m.weights_bytes},
                         {"forward_latency_ms", m.forward_latency_ms},
                         {"forward_runs", m.forward_runs},
                         {"threads", m.threads},
                         {"example", m.example},
                         {"machine", m.machine}};
  }
  if (auto canonical = core::CanonicalJson(j)) return *std::move(canonical);
  // Only hand-built values that JSON cannot carry exactly get here (ParseRequirements never
  // yields them); this text then fails manifest::Serialize, which names the field.
  return j.dump(-1, ' ', false, Json::error_handler_t::replace);
}

std::vector<Check> CheckTarget(const manifest::Manifest& manifest, const Requirements& req,
                               const TargetProfile& target) {
  std::vector<Check> rows;
  rows.push_back(CheckMemory(manifest, req, target));
  rows.push_back(CheckDevice(manifest, req, target));
  if (auto row = CheckGpuMemory(req, target)) rows.push_back(std::move(*row));
  rows.push_back(CheckCpuFeatures(req, target));
  rows.push_back(CheckFileFormat(manifest, target));
  rows.push_back(CheckRuntimeVersion(manifest, target));
  rows.push_back(CheckOperators(manifest, target));
  if (auto row = CheckBlas(manifest, req, target)) rows.push_back(std::move(*row));
  if (auto row = CheckLatency(req)) rows.push_back(std::move(*row));
  return rows;
}

}  // namespace dlsys::hw
