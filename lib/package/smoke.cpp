// The smoke test (package.h): load the archive's model here, run its examples, compare with
// the golden outputs, the declared output schema, and the latency and memory recorded at pack
// time.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "archive/archive.h"
#include "core/encoding.h"
#include "package/internal/measure.h"
#include "package/package.h"
#include "runtime/runtime.h"

namespace dlsys::package {
namespace {

constexpr const char* kCheck = "smoke";
// Slower than recorded by less than this is timer and scheduler noise, whatever the ratio:
// tiny models run in microseconds, where 2x is one preemption.
constexpr double kLatencyNoiseMs = 0.1;

Check Row(std::string subject, Status status, std::string message) {
  Check c;
  c.check = kCheck;
  c.subject = std::move(subject);
  c.status = status;
  c.message = std::move(message);
  return c;
}

std::string Num(double v, int digits = 3) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*g", digits, v);
  return buf;
}

std::string Ms(double ms) { return Num(ms) + " ms"; }

// --- decoding example tensors ------------------------------------------------------------

Result<runtime::Tensor> ToTensor(const manifest::ExampleTensor& t, std::string data) {
  DLSYS_ASSIGN_OR_RETURN(runtime::DType dtype, runtime::ParseDType(t.tensor.dtype));
  const std::int64_t elements = runtime::ElementCount(t.tensor.shape);
  std::uint64_t bytes = 0;
  if (elements < 0 ||
      __builtin_mul_overflow(static_cast<std::uint64_t>(elements), runtime::DTypeSize(dtype),
                             &bytes) ||
      bytes != data.size()) {
    return Fail(Code::kInvalid, "'" + t.path + "' holds " + std::to_string(data.size()) +
                                    " bytes, which is not a " + t.tensor.dtype + " " +
                                    manifest::ShapeText(t.tensor.shape) + " tensor");
  }
  runtime::Tensor out;
  out.name = t.tensor.name;
  out.dtype = dtype;
  out.shape = t.tensor.shape;
  const auto* p = reinterpret_cast<const std::byte*>(data.data());
  out.data.assign(p, p + data.size());
  return out;
}

// --- comparing with golden outputs ------------------------------------------------------------

template <typename T>
T Element(const runtime::Tensor& t, std::size_t i) {
  T v;
  std::memcpy(&v, t.data.data() + i * sizeof(T), sizeof(T));
  return v;
}

bool IsFloat(runtime::DType d) {
  using runtime::DType;
  return d == DType::kFloat32 || d == DType::kFloat64 || d == DType::kFloat16 ||
         d == DType::kBFloat16;
}

double FloatAt(const runtime::Tensor& t, std::size_t i) {
  return runtime::ElementAsDouble(t.dtype, t.data, i);
}

std::int64_t IntAt(const runtime::Tensor& t, std::size_t i) {
  using runtime::DType;
  switch (t.dtype) {
    case DType::kInt8:
      return Element<std::int8_t>(t, i);
    case DType::kUInt8:
    case DType::kBool:
      return Element<std::uint8_t>(t, i);
    case DType::kInt16:
      return Element<std::int16_t>(t, i);
    case DType::kInt32:
      return Element<std::int32_t>(t, i);
    case DType::kInt64:
      return Element<std::int64_t>(t, i);
    default:
      return 0;
  }
}

struct Comparison {
  std::optional<std::string> mismatch;  // why the output differs from golden, if it does
  double max_abs_diff = 0;              // over all elements (float outputs)
};

// Compares one output with its golden tensor: dtype, shape, then values, floats within
// |a-b| <= atol + rtol*|b| (NaN matches only NaN), everything else exactly.
Comparison Compare(const runtime::Tensor& got, const runtime::Tensor& golden,
                   const std::string& name, double rtol, double atol) {
  Comparison c;
  const std::string what = "output '" + name + "' ";
  if (got.dtype != golden.dtype) {
    c.mismatch = what + "is " + runtime::DTypeName(got.dtype) + ", golden is " +
                 runtime::DTypeName(golden.dtype);
    return c;
  }
  if (got.shape != golden.shape) {
    c.mismatch = what + "has shape " + manifest::ShapeText(got.shape) + ", golden has " +
                 manifest::ShapeText(golden.shape);
    return c;
  }
  const std::size_t n =
      static_cast<std::size_t>(std::max<std::int64_t>(0, runtime::ElementCount(got.shape)));
  const std::string tolerance = "tolerance atol " + Num(atol) + " rtol " + Num(rtol);
  std::size_t bad = 0;
  std::optional<std::size_t> worst;  // the element outside tolerance with the largest difference
  double worst_diff = -1;
  if (IsFloat(got.dtype)) {
    for (std::size_t i = 0; i < n; ++i) {
      const double a = FloatAt(got, i), b = FloatAt(golden, i);
      if (std::isnan(a) && std::isnan(b)) continue;
      if (a == b) continue;  // also equal infinities
      const double diff = (std::isnan(a) || std::isnan(b)) ? std::numeric_limits<double>::infinity()
                                                           : std::fabs(a - b);
      c.max_abs_diff = std::max(c.max_abs_diff, diff);
      if (diff <= atol + rtol * std::fabs(b)) continue;
      ++bad;
      if (diff > worst_diff) {
        worst_diff = diff;
        worst = i;
      }
    }
    if (worst) {
      c.mismatch = what + "differs from golden: max abs diff " + Num(worst_diff) + " at index " +
                   std::to_string(*worst) + " (got " + Num(FloatAt(got, *worst), 6) + ", golden " +
                   Num(FloatAt(golden, *worst), 6) + "), " + tolerance + " (" +
                   std::to_string(bad) + " of " + std::to_string(n) +
                   " elements outside tolerance)";
    }
    return c;
  }
  for (std::size_t i = 0; i < n; ++i) {
    if (IntAt(got, i) == IntAt(golden, i)) continue;
    if (!worst) worst = i;
    ++bad;
  }
  if (worst) {
    c.mismatch = what + "differs from golden: " + std::to_string(bad) + " of " + std::to_string(n) +
                 " elements differ, first at index " + std::to_string(*worst) + " (got " +
                 std::to_string(IntAt(got, *worst)) + ", golden " +
                 std::to_string(IntAt(golden, *worst)) + "); " + runtime::DTypeName(got.dtype) +
                 " outputs must match exactly";
  }
  return c;
}

Check CompareExample(const manifest::Example& ex, const std::vector<runtime::Tensor>& outputs,
                     const std::vector<runtime::Tensor>& golden) {
  const std::string subject = "example " + ex.name;
  const std::string prefix = "example '" + ex.name + "': ";
  if (outputs.size() != golden.size()) {
    return Row(subject, Status::kFail,
               prefix + "the model returned " + std::to_string(outputs.size()) +
                   " outputs, the golden outputs are " + std::to_string(golden.size()));
  }
  double max_abs_diff = 0;
  for (std::size_t k = 0; k < outputs.size(); ++k) {
    Comparison c = Compare(outputs[k], golden[k], ex.outputs[k].tensor.name, ex.rtol, ex.atol);
    if (c.mismatch) return Row(subject, Status::kFail, prefix + *c.mismatch);
    max_abs_diff = std::max(max_abs_diff, c.max_abs_diff);
  }
  return Row(subject, Status::kPass,
             prefix + std::to_string(outputs.size()) +
                 (outputs.size() == 1 ? " output matches" : " outputs match") +
                 " golden (max abs diff " + Num(max_abs_diff, 2) + ", rtol " + Num(ex.rtol) +
                 ", atol " + Num(ex.atol) + ")");
}

// Checks every example's outputs against the declared output schema (dtype; shape with -1
// matching any size).
Check CheckSchema(const manifest::Manifest& m,
                  const std::vector<std::pair<std::string, std::vector<runtime::Tensor>>>& runs) {
  const std::string subject = "output schema";
  if (m.outputs.empty()) {
    return Row(subject, Status::kWarn, "the manifest declares no outputs: nothing to check");
  }
  for (const auto& [example, outputs] : runs) {
    const std::string prefix = "example '" + example + "': ";
    if (outputs.size() != m.outputs.size()) {
      return Row(subject, Status::kFail,
                 prefix + "the model returned " + std::to_string(outputs.size()) +
                     " outputs, the manifest declares " + std::to_string(m.outputs.size()));
    }
    for (std::size_t k = 0; k < outputs.size(); ++k) {
      const manifest::TensorSpec& d = m.outputs[k];
      const runtime::Tensor& t = outputs[k];
      if (d.dtype != runtime::DTypeName(t.dtype) || !manifest::ShapeFits(d.shape, t.shape)) {
        return Row(subject, Status::kFail,
                   prefix + "output " + std::to_string(k) + " ('" + d.name + "') is " +
                       runtime::DTypeName(t.dtype) + " " + manifest::ShapeText(t.shape) +
                       ", the manifest declares " + d.dtype + " " + manifest::ShapeText(d.shape));
      }
    }
  }
  std::string declared;
  for (const auto& d : m.outputs) {
    declared += (declared.empty() ? "" : ", ") + d.name + " " + d.dtype + " " +
                manifest::ShapeText(d.shape);
  }
  return Row(subject, Status::kPass,
             "outputs of " + std::to_string(runs.size()) + " example" +
                 (runs.size() == 1 ? "" : "s") + " match the declared schema (" + declared + ")");
}

Check CheckLatency(double median_ms, int runs, const std::string& example,
                   const hw::Requirements& req) {
  const std::string measured = "median forward latency " + Ms(median_ms) + " over " +
                               std::to_string(runs) + " run" + (runs == 1 ? "" : "s") +
                               " of example '" + example + "'";
  Check c = Row("latency", Status::kPass, "");
  c.found = Num(median_ms, 6);
  if (req.latency_budget_ms && median_ms > *req.latency_budget_ms) {
    c.status = Status::kFail;
    c.expected = Num(*req.latency_budget_ms, 6);
    c.message = measured + " exceeds the budget of " + Ms(*req.latency_budget_ms);
    return c;
  }
  const double recorded = req.measured ? req.measured->forward_latency_ms : 0;
  std::string pack_time = "not recorded at pack time";
  if (recorded > 0) {
    pack_time = Ms(recorded) + " recorded at pack time";
    if (!req.measured->machine.empty()) pack_time += " on " + req.measured->machine;
  }
  if (recorded > 0 && median_ms > 2 * recorded && median_ms - recorded > kLatencyNoiseMs) {
    c.status = Status::kWarn;
    c.message = measured + " is more than 2x the " + pack_time;
    return c;
  }
  c.message = measured + "; " + pack_time;
  if (req.latency_budget_ms) c.message += "; budget " + Ms(*req.latency_budget_ms);
  return c;
}

Check CheckMemory(std::optional<std::uint64_t> peak, bool with_forward,
                  const hw::Requirements& req) {
  if (!peak) {
    return Row("memory", Status::kWarn,
               "cannot measure memory here: /proc/self/status has no RssAnon");
  }
  const std::string measured = "peak memory growth " + core::HumanBytes(*peak) + " over loading" +
                               (with_forward ? " + one forward pass" : "");
  Check c = Row("memory", Status::kPass, "");
  c.found = std::to_string(*peak);
  const std::uint64_t recorded = req.measured ? req.measured->peak_memory_bytes : 0;
  if (recorded == 0) {
    c.message = measured + "; not recorded at pack time";
    return c;
  }
  c.expected = std::to_string(recorded);
  if (static_cast<double>(*peak) > 1.5 * static_cast<double>(recorded)) {
    c.status = Status::kWarn;
    c.message = measured + " is more than 1.5x the " + core::HumanBytes(recorded) +
                " recorded at pack time";
    return c;
  }
  c.message = measured + "; " + core::HumanBytes(recorded) + " recorded at pack time";
  return c;
}

}  // namespace

std::vector<Check> Smoke(const VerifiedArchive& archive, const hw::Requirements& req,
                         const SmokeOptions& options) {
  const manifest::Manifest& m = archive.manifest;
  std::vector<Check> rows;
  auto rt = runtime::GetRuntime();
  if (!rt) {
    rows.push_back(Row("runtime", Status::kFail, rt.error().message));
    return rows;
  }
  // The verified bytes; a copy per tensor, as the archive stays the caller's.
  auto entry = [&](const std::string& path) -> std::string {
    auto it = archive.files.find(path);
    return it == archive.files.end() ? std::string() : it->second;
  };
  if (!archive.files.count(m.entry_file)) {
    rows.push_back(
        Row("load", Status::kFail, "the verified archive holds no '" + m.entry_file + "'"));
    return rows;
  }

  // Example tensors are decoded before memory sampling starts: they are ours, not the model's.
  struct Prepared {
    const manifest::Example* example;
    std::vector<runtime::Tensor> inputs;
    std::vector<runtime::Tensor> golden;
  };
  std::vector<Prepared> examples;
  for (const auto& ex : m.examples) {
    Prepared p{&ex, {}, {}};
    Result<void> ok;
    for (const auto& t : ex.inputs) {
      auto tensor = ToTensor(t, entry(t.path));
      if (!tensor) {
        ok = tl::unexpected(std::move(tensor.error()));
        break;
      }
      p.inputs.push_back(std::move(*tensor));
    }
    for (const auto& t : ex.outputs) {
      if (!ok) break;
      auto tensor = ToTensor(t, entry(t.path));
      if (!tensor) {
        ok = tl::unexpected(std::move(tensor.error()));
        break;
      }
      p.golden.push_back(std::move(*tensor));
    }
    if (!ok) {
      rows.push_back(Row("example " + ex.name, Status::kFail,
                         "example '" + ex.name + "': " + ok.error().message));
      continue;
    }
    examples.push_back(std::move(p));
  }
  const std::string& model_bytes = archive.files.at(m.entry_file);

  internal::MemorySampler sampler;
  const auto load_start = std::chrono::steady_clock::now();
  auto model = (*rt)->Load(core::AsBytes(model_bytes), runtime::LoadOptions{.device = req.device});
  const auto load_stop = std::chrono::steady_clock::now();
  if (!model) {
    sampler.Stop();
    rows.push_back(
        Row("load", Status::kFail, "cannot load '" + m.entry_file + "': " + model.error().message));
    return rows;
  }
  rows.push_back(
      Row("load", Status::kPass,
          "loaded " + m.entry_file + " (" + core::HumanBytes(model_bytes.size()) +
              ") with libtorch " + (*rt)->Version() + " on " + req.device + " in " +
              Ms(std::chrono::duration<double, std::milli>(load_stop - load_start).count())));

  // The first example's run is the one forward pass of the memory figure and the warm-up of
  // the latency runs.
  std::optional<std::uint64_t> peak;
  bool sampled_forward = false;
  std::vector<std::pair<std::string, std::vector<runtime::Tensor>>> runs;
  for (std::size_t e = 0; e < examples.size(); ++e) {
    const manifest::Example& ex = *examples[e].example;
    auto outputs = (*model)->Run(m.entry_method, examples[e].inputs);
    if (e == 0) {
      peak = sampler.Stop();
      sampled_forward = true;
    }
    if (!outputs) {
      rows.push_back(Row("example " + ex.name, Status::kFail,
                         "example '" + ex.name + "': " + outputs.error().message));
      continue;
    }
    rows.push_back(CompareExample(ex, *outputs, examples[e].golden));
    runs.emplace_back(ex.name, std::move(*outputs));
  }
  if (!sampled_forward) peak = sampler.Stop();
  if (m.examples.empty()) {
    rows.push_back(Row("examples", Status::kWarn,
                       "the archive has no examples: the model loads, but no outputs were "
                       "compared and no latency was measured"));
  }
  if (!runs.empty()) rows.push_back(CheckSchema(m, runs));

  if (!examples.empty() && !runs.empty() && runs.front().first == examples[0].example->name) {
    const int n = std::max(1, options.latency_runs);
    auto median_ms = internal::MedianLatencyMs(**model, m.entry_method, examples[0].inputs, n);
    if (!median_ms) {
      rows.push_back(Row("latency", Status::kFail,
                         "a timed run of example '" + examples[0].example->name +
                             "' failed: " + median_ms.error().message));
    } else {
      rows.push_back(CheckLatency(*median_ms, n, examples[0].example->name, req));
    }
  } else if (req.latency_budget_ms) {
    rows.push_back(Row("latency", Status::kWarn,
                       "cannot check the latency budget of " + Ms(*req.latency_budget_ms) +
                           ": the first example did not run"));
  }
  rows.push_back(CheckMemory(peak, sampled_forward, req));
  return rows;
}

}  // namespace dlsys::package
