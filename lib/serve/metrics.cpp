#include "serve/metrics.h"

#include <unistd.h>

#include <algorithm>
#include <bit>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>

namespace dlsys::serve {
namespace {

constexpr std::array<FailureReason, kFailureReasonCount> kFailureReasons = {
    FailureReason::kBadInput, FailureReason::kModelFailure, FailureReason::kOverloaded,
    FailureReason::kDeadline};

double Seconds(std::uint64_t ns) { return static_cast<double>(ns) / 1e9; }

// A float as Go's strconv.FormatFloat(v, 'g', -1, 64) writes it, which is what the Prometheus
// client libraries put in `le` labels: the shortest digits that round-trip, in exponent form
// only below 1e-4 or from 1e21 up ("5e-05", "0.0001", "2.5", "60", "1e+21").
std::string FormatFloat(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  if (v == 0) return std::signbit(v) ? "-0" : "0";
  char buf[64];
  const auto res = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::scientific);
  const std::string_view sci(buf, static_cast<std::size_t>(res.ptr - buf));  // "-d.ddde+XX"
  const auto e = sci.find('e');
  int exp = 0;
  std::from_chars(sci.data() + e + (sci[e + 1] == '+' ? 2 : 1), sci.data() + sci.size(), exp);
  std::string digits;
  for (char c : sci.substr(0, e)) {
    if (c >= '0' && c <= '9') digits += c;
  }
  const std::string sign = v < 0 ? "-" : "";
  if (exp < -4 || exp >= 21) {
    std::string out = sign + digits.substr(0, 1);
    if (digits.size() > 1) out += "." + digits.substr(1);
    char ebuf[16];
    std::snprintf(ebuf, sizeof ebuf, "e%c%02d", exp < 0 ? '-' : '+', std::abs(exp));
    return out + ebuf;
  }
  if (exp < 0) return sign + "0." + std::string(static_cast<std::size_t>(-exp - 1), '0') + digits;
  const auto int_digits = static_cast<std::size_t>(exp) + 1;
  if (digits.size() <= int_digits) {
    return sign + digits + std::string(int_digits - digits.size(), '0');
  }
  return sign + digits.substr(0, int_digits) + "." + digits.substr(int_digits);
}

// Label values per the text format: backslash, double quote and line feed escaped. Bytes that
// are not UTF-8 pass through unchanged (model names are validated where they are read).
std::string EscapeLabel(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '\\':
        out += "\\\\";
        break;
      case '"':
        out += "\\\"";
        break;
      case '\n':
        out += "\\n";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string Labels(const ModelMetrics& m) {
  return "model=\"" + EscapeLabel(m.model) + "\",version=\"" + EscapeLabel(m.version) + "\"";
}

void Family(std::string& out, const char* name, const char* type, const char* help) {
  out += "# HELP ";
  out += name;
  out += ' ';
  out += help;
  out += "\n# TYPE ";
  out += name;
  out += ' ';
  out += type;
  out += '\n';
}

void Sample(std::string& out, std::string_view name, const std::string& labels,
            const std::string& value) {
  out += name;
  if (!labels.empty()) {
    out += '{';
    out += labels;
    out += '}';
  }
  out += ' ';
  out += value;
  out += '\n';
}

void HistogramSeries(std::string& out, const std::string& name, const std::string& labels,
                     const Histogram& h) {
  const Histogram::Snapshot s = h.Read();
  for (std::size_t i = 0; i < s.cumulative.size(); ++i) {
    const std::string le = i < s.upper_bounds.size() ? FormatFloat(s.upper_bounds[i]) : "+Inf";
    Sample(out, name + "_bucket", labels + ",le=\"" + le + "\"", std::to_string(s.cumulative[i]));
  }
  Sample(out, name + "_sum", labels, FormatFloat(s.sum));
  Sample(out, name + "_count", labels, std::to_string(s.count));
}

nlohmann::json Duration(std::uint64_t count, std::uint64_t ns) {
  return {{"count", count}, {"ns", ns}};
}

// Bounds are the program's choice, not input: make them usable (ascending, unique, finite)
// rather than fail.
std::vector<double> SortedFinite(std::vector<double> b) {
  b.erase(std::remove_if(b.begin(), b.end(), [](double x) { return !std::isfinite(x); }), b.end());
  std::sort(b.begin(), b.end());
  b.erase(std::unique(b.begin(), b.end()), b.end());
  return b;
}

template <typename T>
T Load(const std::atomic<T>& a) {
  return a.load(std::memory_order_relaxed);
}

}  // namespace

const char* FailureReasonName(FailureReason reason) {
  switch (reason) {
    case FailureReason::kBadInput:
      return "bad_input";
    case FailureReason::kModelFailure:
      return "model_failure";
    case FailureReason::kOverloaded:
      return "overloaded";
    case FailureReason::kDeadline:
      return "deadline";
  }
  return "unknown";
}

Histogram::Histogram(std::vector<double> upper_bounds)
    : bounds_(SortedFinite(std::move(upper_bounds))),
      buckets_(std::make_unique<std::atomic<std::uint64_t>[]>(bounds_.size() + 1)) {
  for (std::size_t i = 0; i <= bounds_.size(); ++i) buckets_[i].store(0, std::memory_order_relaxed);
}

void Histogram::Observe(double value) {
  // A NaN would poison the sum for good and belongs in no bucket.
  if (std::isnan(value)) return;
  // Prometheus `le`: the first bucket whose bound is >= value; past the last bound is +Inf.
  const auto i = static_cast<std::size_t>(std::lower_bound(bounds_.begin(), bounds_.end(), value) -
                                          bounds_.begin());
  buckets_[i].fetch_add(1, std::memory_order_relaxed);
  std::uint64_t old_bits = sum_bits_.load(std::memory_order_relaxed);
  while (!sum_bits_.compare_exchange_weak(
      old_bits, std::bit_cast<std::uint64_t>(std::bit_cast<double>(old_bits) + value),
      std::memory_order_relaxed, std::memory_order_relaxed)) {
  }
}

Histogram::Snapshot Histogram::Read() const {
  Snapshot s;
  s.upper_bounds = bounds_;
  s.cumulative.reserve(bounds_.size() + 1);
  // Each bucket is read once and the count is their total, so the snapshot is consistent
  // (cumulative, +Inf == count) even while other threads observe.
  std::uint64_t total = 0;
  for (std::size_t i = 0; i <= bounds_.size(); ++i) {
    total += buckets_[i].load(std::memory_order_relaxed);
    s.cumulative.push_back(total);
  }
  s.count = total;
  s.sum = std::bit_cast<double>(sum_bits_.load(std::memory_order_relaxed));
  return s;
}

std::vector<double> LatencyBucketsSeconds() {
  return {0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
          0.1,     0.25,   0.5,     1,      2.5,   5,      10,    30,   60};
}

std::vector<double> BatchSizeBuckets() {
  std::vector<double> b;
  for (int size = 1; size <= 1024; size *= 2) b.push_back(size);
  return b;
}

ModelMetrics::ModelMetrics()
    : queue_seconds(LatencyBucketsSeconds()),
      compute_seconds(LatencyBucketsSeconds()),
      request_seconds(LatencyBucketsSeconds()),
      batch_size(BatchSizeBuckets()) {}

void ModelMetrics::AddSuccess(std::uint64_t request_ns, std::uint64_t queue_time_ns,
                              std::uint64_t compute_time_ns, std::uint64_t now_unix_ms) {
  constexpr auto kRelaxed = std::memory_order_relaxed;
  success.fetch_add(1, kRelaxed);
  success_ns.fetch_add(request_ns, kRelaxed);
  queue_ns.fetch_add(queue_time_ns, kRelaxed);
  compute_ns.fetch_add(compute_time_ns, kRelaxed);
  // Keep the latest time even when two requests finish out of order.
  std::uint64_t last = last_inference_ms.load(kRelaxed);
  while (last < now_unix_ms &&
         !last_inference_ms.compare_exchange_weak(last, now_unix_ms, kRelaxed, kRelaxed)) {
  }
  request_seconds.Observe(Seconds(request_ns));
  queue_seconds.Observe(Seconds(queue_time_ns));
  compute_seconds.Observe(Seconds(compute_time_ns));
}

void ModelMetrics::AddFailure(FailureReason reason, std::uint64_t request_ns) {
  const auto i = static_cast<std::size_t>(reason);
  if (i >= kFailureReasonCount) return;
  failure[i].fetch_add(1, std::memory_order_relaxed);
  failure_ns.fetch_add(request_ns, std::memory_order_relaxed);
}

void ModelMetrics::AddExecution(std::uint64_t rows) {
  // The execution's compute time reaches the statistics through each request's share
  // (AddSuccess); per batch-size times would need buckets per exact size.
  execution_count.fetch_add(1, std::memory_order_relaxed);
  inference_count.fetch_add(rows, std::memory_order_relaxed);
  batch_size.Observe(static_cast<double>(rows));
}

Metrics::Metrics() {
  start_time_seconds_ =
      std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

Metrics::~Metrics() = default;

ArmMetrics::ArmMetrics() : request_seconds(LatencyBucketsSeconds()) {}

void ArmMetrics::Add(bool ok, std::uint64_t request_ns) {
  (ok ? success : failure).fetch_add(1, std::memory_order_relaxed);
  request_seconds.Observe(static_cast<double>(request_ns) / 1e9);
}

ArmMetrics& Metrics::RegisterArm(std::string_view model, std::string_view version,
                                 std::string_view arm) {
  std::lock_guard lock(mu_);
  for (const auto& a : arms_) {
    if (a->model == model && a->version == version && a->arm == arm) return *a;
  }
  auto a = std::make_unique<ArmMetrics>();
  a->model = std::string(model);
  a->version = std::string(version);
  a->arm = std::string(arm);
  arms_.push_back(std::move(a));
  return *arms_.back();
}

ModelMetrics& Metrics::Register(std::string_view model, std::string_view version) {
  std::lock_guard lock(mu_);
  for (const auto& m : models_) {
    if (m->model == model && m->version == version) return *m;
  }
  auto m = std::make_unique<ModelMetrics>();
  m->model = std::string(model);
  m->version = std::string(version);
  models_.push_back(std::move(m));
  return *models_.back();
}

std::vector<const ModelMetrics*> Metrics::All() const {
  std::lock_guard lock(mu_);
  std::vector<const ModelMetrics*> out;
  out.reserve(models_.size());
  for (const auto& m : models_) out.push_back(m.get());
  return out;
}

std::string Metrics::RenderPrometheus() const {
  std::lock_guard lock(mu_);
  std::string out;
  out.reserve(4096 + models_.size() * 8192);
  std::vector<std::string> labels;
  labels.reserve(models_.size());
  for (const auto& m : models_) labels.push_back(Labels(*m));

  // One family: HELP, TYPE, then the series of every model version, so no family is split.
  auto counter = [&](const char* name, const char* help,
                     const std::atomic<std::uint64_t> ModelMetrics::*member) {
    Family(out, name, "counter", help);
    for (std::size_t i = 0; i < models_.size(); ++i) {
      Sample(out, name, labels[i], std::to_string(Load((*models_[i]).*member)));
    }
  };
  auto histogram = [&](const char* name, const char* help, const Histogram ModelMetrics::*member) {
    Family(out, name, "histogram", help);
    for (std::size_t i = 0; i < models_.size(); ++i) {
      HistogramSeries(out, name, labels[i], (*models_[i]).*member);
    }
  };

  counter("dlsys_inference_request_success_total", "Inference requests that succeeded.",
          &ModelMetrics::success);
  Family(out, "dlsys_inference_request_failure_total", "counter",
         "Inference requests that failed, by reason (bad_input, model_failure, overloaded, "
         "deadline).");
  for (std::size_t i = 0; i < models_.size(); ++i) {
    for (FailureReason r : kFailureReasons) {
      Sample(out, "dlsys_inference_request_failure_total",
             labels[i] + ",reason=\"" + FailureReasonName(r) + "\"",
             std::to_string(Load(models_[i]->failure[static_cast<std::size_t>(r)])));
    }
  }
  counter("dlsys_inference_count_total", "Rows inferred (the sum of executed batch sizes).",
          &ModelMetrics::inference_count);
  counter("dlsys_inference_exec_count_total", "Model executions (batches).",
          &ModelMetrics::execution_count);
  histogram("dlsys_inference_queue_duration_seconds",
            "Time successful requests waited in the queue, in seconds.",
            &ModelMetrics::queue_seconds);
  histogram("dlsys_inference_compute_duration_seconds",
            "Model compute time of successful requests, in seconds.",
            &ModelMetrics::compute_seconds);
  histogram("dlsys_inference_request_duration_seconds",
            "Total time of successful requests, in seconds.", &ModelMetrics::request_seconds);
  histogram("dlsys_inference_batch_size", "Rows per model execution.", &ModelMetrics::batch_size);
  Family(out, "dlsys_inference_queue_depth", "gauge", "Requests waiting in the queue.");
  for (std::size_t i = 0; i < models_.size(); ++i) {
    Sample(out, "dlsys_inference_queue_depth", labels[i],
           std::to_string(Load(models_[i]->queue_depth)));
  }
  Family(out, "dlsys_inference_executing_requests", "gauge",
         "Requests in a model execution that is running now.");
  for (std::size_t i = 0; i < models_.size(); ++i) {
    Sample(out, "dlsys_inference_executing_requests", labels[i],
           std::to_string(Load(models_[i]->executing)));
  }
  Family(out, "dlsys_model_load_duration_seconds", "gauge",
         "Time to load and warm up the model version, in seconds.");
  for (std::size_t i = 0; i < models_.size(); ++i) {
    Sample(out, "dlsys_model_load_duration_seconds", labels[i],
           FormatFloat(Seconds(Load(models_[i]->load_ns))));
  }
  if (!arms_.empty()) {
    std::vector<std::string> arm_labels;
    for (const auto& a : arms_) {
      arm_labels.push_back("model=\"" + EscapeLabel(a->model) + "\",version=\"" +
                           EscapeLabel(a->version) + "\",arm=\"" + EscapeLabel(a->arm) + "\"");
    }
    Family(out, "dlsys_route_requests_total", "counter",
           "Inference requests routed to each arm of a deployment, by outcome.");
    for (std::size_t i = 0; i < arms_.size(); ++i) {
      Sample(out, "dlsys_route_requests_total", arm_labels[i] + ",outcome=\"success\"",
             std::to_string(Load(arms_[i]->success)));
      Sample(out, "dlsys_route_requests_total", arm_labels[i] + ",outcome=\"failure\"",
             std::to_string(Load(arms_[i]->failure)));
    }
    Family(out, "dlsys_route_request_duration_seconds", "histogram",
           "Total time of the requests routed to each arm (successful or not), in seconds.");
    for (std::size_t i = 0; i < arms_.size(); ++i) {
      HistogramSeries(out, "dlsys_route_request_duration_seconds", arm_labels[i],
                      arms_[i]->request_seconds);
    }
  }
  Family(out, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.");
  Sample(out, "process_resident_memory_bytes", "", std::to_string(ResidentMemoryBytes()));
  Family(out, "process_start_time_seconds", "gauge",
         "Start time of the process since unix epoch in seconds.");
  Sample(out, "process_start_time_seconds", "", FormatFloat(start_time_seconds_));
  return out;
}

std::string Metrics::RenderStatsJson(std::string_view model, std::string_view version) const {
  std::lock_guard lock(mu_);
  nlohmann::json stats = nlohmann::json::array();
  for (const auto& m : models_) {
    if (!model.empty() && m->model != model) continue;
    if (!version.empty() && m->version != version) continue;
    const std::uint64_t success = Load(m->success);
    std::uint64_t failures = 0;
    for (const auto& f : m->failure) failures += Load(f);
    stats.push_back({
        {"name", m->model},
        {"version", m->version},
        {"last_inference", Load(m->last_inference_ms)},
        {"inference_count", Load(m->inference_count)},
        {"execution_count", Load(m->execution_count)},
        {"inference_stats",
         {
             {"success", Duration(success, Load(m->success_ns))},
             {"fail", Duration(failures, Load(m->failure_ns))},
             {"queue", Duration(success, Load(m->queue_ns))},
             {"compute_input", Duration(0, 0)},
             {"compute_infer", Duration(success, Load(m->compute_ns))},
             {"compute_output", Duration(0, 0)},
             {"cache_hit", Duration(0, 0)},
             {"cache_miss", Duration(0, 0)},
         }},
        {"batch_stats", nlohmann::json::array()},
    });
  }
  nlohmann::json root = {{"model_stats", std::move(stats)}};
  // Model names are UTF-8 checked where they are read; replace rather than throw regardless.
  return root.dump(-1, ' ', true, nlohmann::json::error_handler_t::replace);
}

std::uint64_t ResidentMemoryBytes() {
  std::FILE* f = std::fopen("/proc/self/statm", "r");
  if (f == nullptr) return 0;
  unsigned long long size_pages = 0, resident_pages = 0;
  const int n = std::fscanf(f, "%llu %llu", &size_pages, &resident_pages);
  std::fclose(f);
  const long page = ::sysconf(_SC_PAGESIZE);
  if (n != 2 || page <= 0) return 0;
  return static_cast<std::uint64_t>(resident_pages) * static_cast<std::uint64_t>(page);
}

}  // namespace dlsys::serve
