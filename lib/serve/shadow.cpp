// Shadow comparison: see internal/shadow.h.
#include "serve/internal/shadow.h"

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>

#include "core/internal/json.h"
#include "log/log.h"

namespace dlsys::serve {
namespace {

// Outputs larger than this are not kept for the shadow comparison (its record says so).
constexpr std::size_t kMaxShadowCompareBytes = 16u << 20;

// The index of the largest element of row `r` of a [rows, cols] tensor.
std::size_t ArgMax(runtime::DType dtype, const std::vector<std::byte>& data, std::size_t r,
                   std::size_t cols) {
  std::size_t best = 0;
  for (std::size_t c = 1; c < cols; ++c) {
    if (runtime::ElementAsDouble(dtype, data, r * cols + c) >
        runtime::ElementAsDouble(dtype, data, r * cols + best)) {
      best = c;
    }
  }
  return best;
}

struct Comparison {
  bool equal = false;  // both answered, every output byte-identical
  std::size_t compared = 0;  // outputs of the same name, dtype and shape
  double max_abs_diff = 0;   // over the compared outputs' elements (a NaN counts as infinite)
  std::int64_t argmax_rows = 0;  // rows of [rows, classes] outputs
  std::int64_t argmax_same = 0;  // ... whose top class agrees
};

// Output by output: same name, dtype and shape, then element by element.
Comparison Compare(const ShadowSide& a, const ShadowSide& b) {
  Comparison c;
  c.equal = a.status == 200 && b.status == 200 && !a.too_large && !b.too_large &&
            a.outputs.size() == b.outputs.size();
  for (const ShadowOutput& x : a.outputs) {
    const auto match = std::find_if(b.outputs.begin(), b.outputs.end(),
                                    [&](const ShadowOutput& y) { return y.name == x.name; });
    if (match == b.outputs.end() || match->dtype != x.dtype || match->shape != x.shape) {
      c.equal = false;
      continue;
    }
    ++c.compared;
    if (x.data != match->data) c.equal = false;
    const std::size_t n = x.data.size() / runtime::DTypeSize(x.dtype);
    for (std::size_t i = 0; i < n; ++i) {
      const double d = std::fabs(runtime::ElementAsDouble(x.dtype, x.data, i) -
                                 runtime::ElementAsDouble(x.dtype, match->data, i));
      if (std::isnan(d) || d > c.max_abs_diff) c.max_abs_diff = std::isnan(d) ? INFINITY : d;
    }
    // Class scores [rows, classes]: do both pick the same class per row?
    if (x.shape.size() == 2 && x.shape[0] > 0 && x.shape[1] > 1) {
      const auto cols = static_cast<std::size_t>(x.shape[1]);
      for (std::size_t r = 0; r < static_cast<std::size_t>(x.shape[0]); ++r) {
        ++c.argmax_rows;
        if (ArgMax(x.dtype, x.data, r, cols) == ArgMax(x.dtype, match->data, r, cols)) {
          ++c.argmax_same;
        }
      }
    }
  }
  return c;
}

std::string Summaries(const std::vector<ShadowOutput>& outputs) {
  nlohmann::json j = nlohmann::json::object();
  for (const ShadowOutput& o : outputs) Summarize(j, o.name, o.dtype, o.shape, o.data);
  return j.dump(-1, ' ', true);
}

}  // namespace

ShadowSide FailedSide(int status, std::string message, std::uint64_t total_ns) {
  ShadowSide side;
  side.status = status;
  side.error = std::move(message);
  side.latency_ms = static_cast<double>(total_ns) / 1e6;
  return side;
}

ShadowSide AnsweredSide(const std::vector<OutputView>& views, const JobResult& result,
                        std::uint64_t total_ns) {
  ShadowSide side;
  side.latency_ms = static_cast<double>(total_ns) / 1e6;
  side.queue_ms = static_cast<double>(result.queue_ns) / 1e6;
  side.infer_ms = static_cast<double>(result.compute_ns) / 1e6;
  std::size_t bytes = 0;
  for (const auto& v : views) bytes += v.data.size();
  if (bytes > kMaxShadowCompareBytes) {
    side.too_large = true;
    return side;
  }
  for (const auto& v : views) {
    side.outputs.push_back(ShadowOutput{std::string(v.name), v.dtype, v.shape,
                                        std::vector<std::byte>(v.data.begin(), v.data.end())});
  }
  return side;
}

std::shared_ptr<ShadowPair> ShadowPair::Make(Server::Impl& impl, const Arm& stable,
                                             const Arm& shadow, const std::string& inference_id,
                                             const std::string& header_id) {
  auto pair = std::make_shared<ShadowPair>();
  pair->impl = &impl;
  pair->model = stable.v->name;
  pair->stable_version = stable.v->version;
  pair->shadow_version = shadow.v->version;
  pair->request_id = (header_id.empty() ? inference_id : header_id).substr(0, 128);
  return pair;
}

void ShadowPair::Complete(bool is_shadow, ShadowSide side) {
  {
    std::lock_guard lock(mu);
    (is_shadow ? shadow : stable) = std::move(side);
    if (!stable || !shadow) return;
  }
  Log();
}

void ShadowPair::Log() const {
  const ShadowSide& a = *stable;
  const ShadowSide& b = *shadow;
  const Comparison c = Compare(a, b);
  const log::Level level = b.status >= 500 ? log::Level::kWarn : log::Level::kInfo;
  std::string message = "shadow " + model + " " + shadow_version + " vs " + stable_version + ": ";
  if (b.status != 200) {
    message += "shadow failed (" + std::to_string(b.status) + ")";
  } else if (a.status != 200) {
    message += "stable failed (" + std::to_string(a.status) + ")";
  } else {
    message += c.equal ? "identical outputs" : "max |diff| " + core::EcmaScriptNumber(c.max_abs_diff);
  }
  log::Record rec = impl->access_log ? impl->access_log->Make(level, "serve.shadow", message)
                                     : log::Record(level, "serve.shadow", message);
  if (!request_id.empty()) rec.Str("request_id", request_id);
  rec.Str("model", model)
      .Str("model_version", shadow_version)
      .Str("variant", "shadow")
      .Str("stable_version", stable_version)
      .Int("status", b.status)
      .Num("latency_ms", b.latency_ms)
      .Int("stable.status", a.status)
      .Num("stable.latency_ms", a.latency_ms);
  if (b.queue_ms >= 0) rec.Num("queue_ms", b.queue_ms);
  if (b.infer_ms >= 0) rec.Num("infer_ms", b.infer_ms);
  if (!b.error.empty()) rec.Str("error.message", b.error.substr(0, 1024));
  if (a.status == 200 && b.status == 200) {
    rec.Bool("shadow.outputs_equal", c.equal);
    if (a.too_large || b.too_large) {
      rec.Bool("shadow.too_large_to_compare", true);
    } else {
      rec.Int("shadow.outputs_compared", static_cast<std::int64_t>(c.compared));
      rec.Num("shadow.max_abs_diff", c.max_abs_diff);
      if (c.argmax_rows > 0) {
        rec.Num("shadow.argmax_agreement",
                static_cast<double>(c.argmax_same) / static_cast<double>(c.argmax_rows));
      }
      rec.Json("shadow.prediction", Summaries(b.outputs));
      rec.Json("stable.prediction", Summaries(a.outputs));
    }
  }
  rec.Emit();
}

}  // namespace dlsys::serve
