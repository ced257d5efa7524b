// Server metrics: counters, gauges and fixed-bucket histograms per served model version,
// rendered as Prometheus text format 0.0.4 (/metrics) and as Triton's statistics extension
// JSON (/v2/models/{m}/stats).
//
// Thread-safety: Register* from any thread (a registry deployment loads versions while
// serving; rendering takes the same lock); the Observe/Add calls on a ModelMetrics are lock-free (relaxed atomics) and safe
// from any thread; Render* may run concurrently with them (a scrape sees each counter
// atomically; a histogram's buckets, count and sum are read bucket by bucket, and rendered
// so that +Inf == _count and buckets are cumulative).
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace dlsys::serve {

// Why a request failed: the `reason` label of dlsys_inference_request_failure_total.
enum class FailureReason {
  kBadInput,      // 4xx: validation, framing, unknown output
  kModelFailure,  // 500: the model threw or returned something unexpected
  kOverloaded,    // 503: queue full or server draining
  kDeadline,      // 504/503: the request's deadline passed before it ran
};
inline constexpr std::size_t kFailureReasonCount = 4;
const char* FailureReasonName(FailureReason reason);  // "bad_input", "model_failure", ...

// A histogram with fixed upper bounds (ascending, finite; +Inf is implicit).
class Histogram {
 public:
  explicit Histogram(std::vector<double> upper_bounds);
  void Observe(double value);
  struct Snapshot {
    std::vector<double> upper_bounds;
    std::vector<std::uint64_t> cumulative;  // per bound, then +Inf last (== count)
    std::uint64_t count = 0;
    double sum = 0;
  };
  Snapshot Read() const;

 private:
  std::vector<double> bounds_;
  std::unique_ptr<std::atomic<std::uint64_t>[]> buckets_;  // bounds_.size() + 1, not cumulative
  std::atomic<std::uint64_t> sum_bits_{0};                 // double stored as bits, CAS-added
};

// Default bucket bounds. Latency in seconds from 50 us to 60 s; batch sizes 1..1024 in powers
// of two.
std::vector<double> LatencyBucketsSeconds();
std::vector<double> BatchSizeBuckets();

// Everything measured about one model version.
struct ModelMetrics {
  ModelMetrics();
  std::string model;
  std::string version;
  // Requests.
  std::atomic<std::uint64_t> success{0};
  std::array<std::atomic<std::uint64_t>, kFailureReasonCount> failure{};
  std::atomic<std::uint64_t> success_ns{0};  // total request time of successful requests
  std::atomic<std::uint64_t> failure_ns{0};
  std::atomic<std::uint64_t> queue_ns{0};           // total queue time (successful requests)
  std::atomic<std::uint64_t> compute_ns{0};         // total compute time (per request share)
  std::atomic<std::uint64_t> inference_count{0};    // rows inferred (sum of batch sizes)
  std::atomic<std::uint64_t> execution_count{0};    // model executions (batches)
  std::atomic<std::uint64_t> last_inference_ms{0};  // unix ms of the last success
  std::atomic<std::int64_t> queue_depth{0};         // gauge, maintained by the batcher
  std::atomic<std::int64_t> executing{0};           // gauge: requests in a running execution
  std::atomic<std::uint64_t> load_ns{0};            // load + warm-up time
  Histogram queue_seconds;
  Histogram compute_seconds;
  Histogram request_seconds;
  Histogram batch_size;  // rows per execution

  void AddSuccess(std::uint64_t request_ns, std::uint64_t queue_ns, std::uint64_t compute_ns,
                  std::uint64_t now_unix_ms);
  void AddFailure(FailureReason reason, std::uint64_t request_ns);
  // One model execution of `rows` rows (its time is counted per request by AddSuccess).
  void AddExecution(std::uint64_t rows);
};

// Requests routed to one arm of a deployment (dlsys serve --registry): the same version may
// be "canary" today and "stable" after `deploy finalize`, so these are counted apart from the
// version's own series.
struct ArmMetrics {
  ArmMetrics();
  std::string model;
  std::string version;
  std::string arm;  // stable, canary, shadow, standby
  std::atomic<std::uint64_t> success{0};
  std::atomic<std::uint64_t> failure{0};
  Histogram request_seconds;  // every request, successful or not
  void Add(bool ok, std::uint64_t request_ns);
};

class Metrics {
 public:
  Metrics();
  ~Metrics();
  // Returns the metrics of (model, version), creating them; the reference stays valid for
  // the lifetime of this object.
  ModelMetrics& Register(std::string_view model, std::string_view version);
  ArmMetrics& RegisterArm(std::string_view model, std::string_view version, std::string_view arm);
  // All registered, in registration order.
  std::vector<const ModelMetrics*> All() const;

  // Prometheus text exposition format 0.0.4. Families (each once, HELP + TYPE, one block):
  //   dlsys_inference_request_success_total{model,version}            counter
  //   dlsys_inference_request_failure_total{model,version,reason}     counter (every reason)
  //   dlsys_inference_count_total{model,version}                      counter (rows)
  //   dlsys_inference_exec_count_total{model,version}                 counter (batches)
  //   dlsys_inference_queue_duration_seconds{model,version}           histogram
  //   dlsys_inference_compute_duration_seconds{model,version}         histogram
  //   dlsys_inference_request_duration_seconds{model,version}         histogram
  //   dlsys_inference_batch_size{model,version}                       histogram
  //   dlsys_inference_queue_depth{model,version}                      gauge
  //   dlsys_inference_executing_requests{model,version}               gauge
  //   dlsys_model_load_duration_seconds{model,version}                gauge
  //   dlsys_route_requests_total{model,version,arm,outcome}            counter (registered arms)
  //   dlsys_route_request_duration_seconds{model,version,arm}          histogram
  //   process_resident_memory_bytes, process_start_time_seconds        gauge
  // Label values escaped per the format (\\, \", \n).
  std::string RenderPrometheus() const;

  // Triton statistics extension: {"model_stats": [{"name","version","last_inference",
  // "inference_count","execution_count","inference_stats": {"success","fail","queue",
  // "compute_input","compute_infer","compute_output"} each {"count","ns"}, "batch_stats":[]}]}
  // for the registered versions matching model (and version, if non-empty); model empty = all.
  std::string RenderStatsJson(std::string_view model, std::string_view version) const;

 private:
  mutable std::mutex mu_;  // guards the two lists (not the counters)
  std::vector<std::unique_ptr<ModelMetrics>> models_;
  std::vector<std::unique_ptr<ArmMetrics>> arms_;
  double start_time_seconds_ = 0;
};

// Resident set size of this process in bytes (from /proc/self/statm); 0 if unknown.
std::uint64_t ResidentMemoryBytes();

}  // namespace dlsys::serve
