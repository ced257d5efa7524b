// Shadow routes (dlsys serve --env, strategy shadow): a request's stable answer and the
// shadow version's answer to the same request, compared output by output and logged as one
// serve.shadow record once both are in (docs/logging.md). The client only ever sees stable's.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "serve/internal/server_impl.h"

namespace dlsys::serve {

struct ShadowOutput {
  std::string name;
  runtime::DType dtype = runtime::DType::kFloat32;
  std::vector<std::int64_t> shape;
  std::vector<std::byte> data;
};

// One side of a shadowed request: stable's answer or the shadow's.
struct ShadowSide {
  int status = 200;
  std::string error;
  std::vector<ShadowOutput> outputs;
  bool too_large = false;
  double latency_ms = 0;
  double queue_ms = -1;
  double infer_ms = -1;
};

// A side that failed (status, message) or was skipped, `total_ns` after the request arrived.
ShadowSide FailedSide(int status, std::string message, std::uint64_t total_ns);
// A side that answered: its outputs (copied, unless together above 16 MiB) and timings.
ShadowSide AnsweredSide(const std::vector<OutputView>& views, const JobResult& result,
                        std::uint64_t total_ns);

// A shadowed request's two answers; whichever completes second logs the comparison.
struct ShadowPair {
  Server::Impl* impl = nullptr;
  std::string model;
  std::string stable_version;
  std::string shadow_version;
  std::string request_id;
  std::mutex mu;
  std::optional<ShadowSide> stable;  // under mu
  std::optional<ShadowSide> shadow;  // under mu

  // `inference_id` / `header_id`: the request's "id" and X-Request-ID (preferred) for the record.
  static std::shared_ptr<ShadowPair> Make(Server::Impl& impl, const Arm& stable,
                                          const Arm& shadow, const std::string& inference_id,
                                          const std::string& header_id);
  // One side's answer; the second call logs the comparison (serve.shadow). Thread-safe.
  void Complete(bool is_shadow, ShadowSide side);

 private:
  void Log() const;
};

}  // namespace dlsys::serve
