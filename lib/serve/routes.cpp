// The HTTP routes of the server: KServe v2 health, metadata, readiness and inference, Triton's
// statistics extension, and Prometheus metrics. Status codes follow Triton's HTTP server.
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <zlib.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <nlohmann/json.hpp>

#include "core/internal/json.h"
#include "log/log.h"
#include "serve/internal/server_impl.h"
#include "serve/internal/shadow.h"

namespace dlsys::serve {
namespace {

using internal::HttpRequest;
using internal::HttpResponse;
using internal::Reply;

HttpResponse Json(int status, std::string body) {
  HttpResponse r;
  r.status = status;
  r.body = std::move(body);
  return r;
}

HttpResponse ErrorResponse(int status, std::string_view message, std::string_view error_type) {
  HttpResponse r = Json(status, EncodeError(message));
  r.note.error_type = std::string(error_type);
  r.note.error_message = std::string(message);
  return r;
}

std::vector<std::string_view> SplitPath(std::string_view path) {
  std::vector<std::string_view> parts;
  while (!path.empty()) {
    if (path.front() == '/') {
      path.remove_prefix(1);
      continue;
    }
    const auto slash = path.find('/');
    parts.push_back(path.substr(0, slash));
    if (slash == std::string_view::npos) break;
    path.remove_prefix(slash);
  }
  return parts;
}

std::uint64_t NsBetween(Clock::time_point a, Clock::time_point b) {
  return static_cast<std::uint64_t>(std::max<std::int64_t>(
      0, std::chrono::duration_cast<std::chrono::nanoseconds>(b - a).count()));
}

std::uint64_t UnixMs() {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                        std::chrono::system_clock::now().time_since_epoch())
                                        .count());
}

const char* ReasonType(FailureReason r) { return FailureReasonName(r); }

int StatusFor(FailureReason r) {
  switch (r) {
    case FailureReason::kBadInput:
      return 400;
    case FailureReason::kModelFailure:
      return 500;
    case FailureReason::kOverloaded:
      return 503;
    case FailureReason::kDeadline:
      return 503;  // Triton: UNAVAILABLE "Request timeout expired"
  }
  return 500;
}

// Inflates a gzip or deflate request body (tritonclient's request_compression_algorithm),
// refusing output beyond `limit` bytes.
tl::expected<std::string, HttpResponse> Inflate(const std::string& in, bool gzip,
                                                std::uint64_t limit) {
  z_stream z{};
  if (inflateInit2(&z, gzip ? 16 + MAX_WBITS : MAX_WBITS) != Z_OK) {
    return tl::unexpected(ErrorResponse(500, "cannot start zlib", "internal"));
  }
  std::string out;
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  z.avail_in = static_cast<uInt>(in.size());
  int rc = Z_OK;
  char chunk[65536];
  while (rc != Z_STREAM_END) {
    z.next_out = reinterpret_cast<Bytef*>(chunk);
    z.avail_out = sizeof chunk;
    rc = inflate(&z, Z_NO_FLUSH);
    if (rc != Z_OK && rc != Z_STREAM_END) break;
    out.append(chunk, sizeof chunk - z.avail_out);
    if (out.size() > limit) {
      inflateEnd(&z);
      return tl::unexpected(ErrorResponse(
          413, "decompressed request body exceeds the limit of " + std::to_string(limit) + " bytes",
          "bad_input"));
    }
    if (rc == Z_OK && z.avail_in == 0 && z.avail_out != 0) break;  // truncated input
  }
  const bool complete = rc == Z_STREAM_END && z.avail_in == 0;
  inflateEnd(&z);
  if (!complete) {
    return tl::unexpected(ErrorResponse(
        400, std::string("request body is not valid ") + (gzip ? "gzip" : "deflate") + " data",
        "bad_input"));
  }
  return out;
}


constexpr std::size_t kMaxSampledTensors = 16;

}  // namespace

// Compact summary of one tensor for drift detection: shape, count, mean, std, min, max and the
// first values (docs/logging.md, "input" / "prediction").
void Summarize(nlohmann::json& into, std::string_view name, runtime::DType dtype,
               const std::vector<std::int64_t>& shape, std::span<const std::byte> data) {
  const std::size_t n = data.size() / runtime::DTypeSize(dtype);
  auto at = [&](std::size_t i) { return runtime::ElementAsDouble(dtype, data, i); };
  double sum = 0, sq = 0, lo = INFINITY, hi = -INFINITY;
  std::size_t finite = 0;
  nlohmann::json head = nlohmann::json::array();
  for (std::size_t i = 0; i < n; ++i) {
    const double v = at(i);
    if (i < 8) head.push_back(std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr));
    if (!std::isfinite(v)) continue;
    ++finite;
    sum += v;
    sq += v * v;
    lo = std::min(lo, v);
    hi = std::max(hi, v);
  }
  nlohmann::json s;
  s["shape"] = shape;
  s["count"] = n;
  if (finite > 0) {
    const double mean = sum / static_cast<double>(finite);
    s["mean"] = mean;
    s["std"] = std::sqrt(std::max(0.0, sq / static_cast<double>(finite) - mean * mean));
    s["min"] = lo;
    s["max"] = hi;
  }
  s["head"] = std::move(head);
  into[std::string(name)] = std::move(s);
}

std::array<unsigned char, 32> TokenDigest(std::string_view token) {
  std::array<unsigned char, 32> d{};
  SHA256(reinterpret_cast<const unsigned char*>(token.data()), token.size(), d.data());
  return d;
}

bool Server::Impl::Authorized(const HttpRequest& request) const {
  if (!token_digest) return true;
  // "Bearer" TOKEN; the scheme is case-insensitive (RFC 7235).
  std::string_view auth = request.authorization;
  constexpr std::string_view kBearer = "bearer ";
  if (auth.size() <= kBearer.size()) return false;
  for (std::size_t i = 0; i < kBearer.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(auth[i])) != kBearer[i]) return false;
  }
  const auto digest = TokenDigest(auth.substr(kBearer.size()));
  return CRYPTO_memcmp(digest.data(), token_digest->data(), digest.size()) == 0;
}

namespace {

// This request's rows of every output of a successful job, in schema order (views into
// result.outputs).
std::vector<OutputView> RowsOf(const ModelSchema& schema, const JobResult& result) {
  std::vector<OutputView> views;
  views.reserve(schema.outputs.size());
  for (std::size_t i = 0; i < schema.outputs.size(); ++i) {
    const runtime::Tensor& t = result.outputs->tensors[i];
    OutputView o;
    o.name = schema.outputs[i].name;
    o.dtype = t.dtype;
    o.shape = t.shape;
    std::span<const std::byte> data(t.data);
    if (result.outputs->total_rows > 0 && !t.shape.empty() &&
        t.shape[0] == result.outputs->total_rows) {
      const std::size_t row_bytes = t.data.size() / static_cast<std::size_t>(t.shape[0]);
      o.shape[0] = result.rows;
      data = data.subspan(static_cast<std::size_t>(result.row_offset) * row_bytes,
                          static_cast<std::size_t>(result.rows) * row_bytes);
    }
    o.data = data;
    views.push_back(std::move(o));
  }
  return views;
}

// Which version answered, and in which arm (docs/deploy.md#serve-follows-the-registry).
void AddVersionHeaders(HttpResponse& r, const std::string& version, const std::string& arm) {
  r.headers.emplace_back("x-dlsys-model-version", version);
  if (!arm.empty()) r.headers.emplace_back("x-dlsys-arm", arm);
}

std::uint64_t SplitMix64(std::uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

}  // namespace

// A/B buckets: FNV-1a 64 of the header value, mixed by SplitMix64's finalizer, modulo 10000.
// Stable across processes and restarts: the same value always lands in the same arm
// (docs/deploy.md#ab).
std::uint32_t AbBucket(std::string_view value) {
  std::uint64_t h = 0xcbf29ce484222325ull;
  for (const char c : value) {
    h ^= static_cast<unsigned char>(c);
    h *= 0x100000001b3ull;
  }
  return static_cast<std::uint32_t>(SplitMix64(h) % 10000);
}

const Arm& Server::Impl::Pick(const RoutedModel& m, const HttpRequest& request,
                              const Arm** shadow) {
  *shadow = nullptr;
  auto draw = [this] {
    return SplitMix64(request_id_seed ^ route_counter.fetch_add(1, std::memory_order_relaxed));
  };
  switch (m.strategy) {
    case deploy::Strategy::kCanary:
      return m.candidate.v && draw() % 10000 < m.weight_bp ? m.candidate : m.stable;
    case deploy::Strategy::kAb:
      for (const auto& [name, value] : request.route_headers) {
        if (name == m.key) return m.candidate.v && AbBucket(value) < m.weight_bp ? m.candidate : m.stable;
      }
      return m.stable;  // no key: the stable arm, counted there
    case deploy::Strategy::kShadow:
      if (m.candidate.v && (m.sample_below == UINT64_MAX || draw() < m.sample_below)) {
        *shadow = &m.candidate;
      }
      return m.stable;
    case deploy::Strategy::kReplace:
    case deploy::Strategy::kBlueGreen:
      break;
  }
  return m.stable;
}

void Server::Impl::Handle(std::shared_ptr<HttpRequest> request, Reply reply) {
  std::string_view target = request->target;
  target = target.substr(0, target.find('?'));
  const auto parts = SplitPath(target);
  const bool get = request->method == "GET";
  const bool post = request->method == "POST";
  auto method_not_allowed = [&](const char* allow) {
    HttpResponse r = ErrorResponse(405,
                                   "method " + request->method + " is not allowed on " +
                                       std::string(target) + "; use " + allow,
                                   "bad_input");
    r.headers.emplace_back("Allow", allow);
    reply(std::move(r));
  };

  // Health: open to everyone (orchestrators probe without credentials); nothing leaks.
  if (parts.size() == 3 && parts[0] == "v2" && parts[1] == "health") {
    if (!get) return method_not_allowed("GET");
    // Empty bodies, as Triton: tritonclient reads only the status (and a body it leaves
    // unread would cost it the keep-alive connection).
    auto empty = [](int status) {
      HttpResponse r;
      r.status = status;
      r.content_type.clear();
      return r;
    };
    if (parts[2] == "live") return reply(empty(200));
    if (parts[2] == "ready") return reply(empty(ready.load() ? 200 : 503));
  }
  if (!Authorized(*request)) {
    HttpResponse r = ErrorResponse(401, "missing or wrong bearer token", "unauthorized");
    r.headers.emplace_back("WWW-Authenticate", "Bearer");
    return reply(std::move(r));
  }
  if (parts.size() == 1 && parts[0] == "metrics") {
    if (!get) return method_not_allowed("GET");
    HttpResponse r = Json(200, metrics.RenderPrometheus());
    r.content_type = "text/plain; version=0.0.4; charset=utf-8";
    return reply(std::move(r));
  }
  if (parts.empty() || parts[0] != "v2") {
    return reply(ErrorResponse(
        404, "no such endpoint: " + std::string(target) + " (see docs/serving.md)", "not_found"));
  }
  if (parts.size() == 1) {
    if (!get) return method_not_allowed("GET");
    nlohmann::json j = {{"name", "dlsys"},
                        {"version", info.version},
                        {"extensions", {"binary_tensor_data", "statistics"}}};
    return reply(Json(200, j.dump(-1, ' ', true)));
  }
  if (parts[1] != "models") {
    return reply(ErrorResponse(404, "no such endpoint: " + std::string(target), "not_found"));
  }
  // /v2/models/stats: every model.
  if (parts.size() == 3 && parts[2] == "stats") {
    if (!get) return method_not_allowed("GET");
    return reply(Json(200, metrics.RenderStatsJson("", "")));
  }
  if (parts.size() < 3) {
    return reply(ErrorResponse(404, "no such endpoint: " + std::string(target), "not_found"));
  }
  const std::string name(parts[2]);
  std::string version;
  std::size_t next = 3;
  if (parts.size() >= 5 && parts[3] == "versions") {
    version = std::string(parts[4]);
    next = 5;
  }
  const std::string_view action = parts.size() > next ? parts[next] : std::string_view();
  if (parts.size() > next + 1 || (parts.size() == 4 && parts[3] == "versions")) {
    return reply(ErrorResponse(404, "no such endpoint: " + std::string(target), "not_found"));
  }
  const std::shared_ptr<const Routing> routes = CurrentRouting();
  const auto routed = routes->models.find(name);
  const RoutedModel* rm = routed == routes->models.end() ? nullptr : &routed->second;
  const Arm* arm = nullptr;
  const Arm* shadow = nullptr;
  if (rm != nullptr && version.empty()) {
    arm = action == "infer" ? &Pick(*rm, *request, &shadow) : &rm->stable;
  } else if (rm != nullptr) {
    for (const Arm& a : rm->all) {
      if (a.v->version == version) arm = &a;
    }
  }
  if (arm == nullptr) {
    // Triton: an unknown name is 400, an unknown version of a known model 404.
    const bool known = rm != nullptr;
    std::string message = "Request for unknown model: '" + name + "' is not found";
    if (known)
      message = "Request for unknown model: '" + name + "' version " + version + " is not found";
    HttpResponse r = ErrorResponse(known ? 404 : 400, message, "not_found");
    r.note.model = name;
    r.note.version = version;
    return reply(std::move(r));
  }
  if (action.empty()) {
    if (!get) return method_not_allowed("GET");
    std::vector<std::string> all;
    for (const Arm& other : rm->all) all.push_back(other.v->version);
    if (!version.empty()) all = {version};
    return reply(
        Json(200, EncodeModelMetadata(arm->v->name, all, "pytorch_libtorch", arm->v->schema)));
  }
  if (action == "ready") {
    if (!get) return method_not_allowed("GET");
    HttpResponse r;
    r.status = ready.load() ? 200 : 503;
    r.content_type.clear();
    return reply(std::move(r));
  }
  if (action == "stats") {
    if (!get) return method_not_allowed("GET");
    return reply(Json(200, metrics.RenderStatsJson(arm->v->name, version)));
  }
  if (action == "infer") {
    if (!post) return method_not_allowed("POST");
    return Infer(*arm, shadow, std::move(request), std::move(reply));
  }
  reply(ErrorResponse(404, "no such endpoint: " + std::string(target), "not_found"));
}

void Server::Impl::Infer(const Arm& arm, const Arm* shadow, std::shared_ptr<HttpRequest> request,
                         Reply reply) {
  const ModelVersion& v = *arm.v;
  const auto received = request->received;
  auto fail = [&](int status, std::string message, FailureReason reason) {
    const std::uint64_t ns = NsBetween(received, Clock::now());
    v.metrics->AddFailure(reason, ns);
    if (arm.metrics) arm.metrics->Add(false, ns);
    HttpResponse r = ErrorResponse(status, message, ReasonType(reason));
    r.note.model = v.name;
    r.note.version = v.version;
    r.note.arm = arm.name;
    AddVersionHeaders(r, v.version, arm.name);
    if (reason == FailureReason::kOverloaded) r.headers.emplace_back("Retry-After", "1");
    reply(std::move(r));
  };
  if (draining.load()) {
    return fail(503, "the server is shutting down; retry on another replica",
                FailureReason::kOverloaded);
  }
  // Compressed bodies (tritonclient's request_compression_algorithm).
  if (!request->content_encoding.empty() && request->content_encoding != "identity") {
    const bool gzip = request->content_encoding == "gzip";
    if (!gzip && request->content_encoding != "deflate") {
      v.metrics->AddFailure(FailureReason::kBadInput, NsBetween(received, Clock::now()));
      if (arm.metrics) arm.metrics->Add(false, NsBetween(received, Clock::now()));
      HttpResponse r =
          ErrorResponse(501,
                        "Unsupported compression type '" + request->content_encoding.substr(0, 64) +
                            "'; use gzip, deflate or none",
                        "bad_input");
      r.headers.emplace_back("Accept-Encoding", "gzip, deflate");
      r.note.arm = arm.name;
      AddVersionHeaders(r, v.version, arm.name);
      return reply(std::move(r));
    }
    auto inflated = Inflate(request->body, gzip, config.max_request_bytes);
    if (!inflated) {
      v.metrics->AddFailure(FailureReason::kBadInput, NsBetween(received, Clock::now()));
      if (arm.metrics) arm.metrics->Add(false, NsBetween(received, Clock::now()));
      inflated.error().note.model = v.name;
      inflated.error().note.version = v.version;
      inflated.error().note.arm = arm.name;
      AddVersionHeaders(inflated.error(), v.version, arm.name);
      return reply(std::move(inflated.error()));
    }
    request->body = std::move(*inflated);
  }
  std::optional<std::size_t> json_length;
  if (request->has_inference_header) {
    const std::string& h = request->inference_header_content_length;
    std::size_t n = 0;
    const auto [end, ec] = std::from_chars(h.data(), h.data() + h.size(), n);
    if (h.empty() || ec != std::errc() || end != h.data() + h.size()) {
      return fail(400,
                  "Inference-Header-Content-Length must be a whole number of bytes, got '" +
                      h.substr(0, 64) + "'",
                  FailureReason::kBadInput);
    }
    json_length = n;
  }
  auto parsed = ParseInferRequest(std::as_bytes(std::span(request->body)), json_length, v.schema);
  if (!parsed) return fail(parsed.error().status, parsed.error().message, FailureReason::kBadInput);

  auto job = std::make_unique<Job>();
  job->request = std::move(*parsed);
  job->enqueued = Clock::now();
  std::uint64_t timeout_us = config.request_timeout_ms * 1000;
  if (job->request.timeout_us && *job->request.timeout_us > 0) {
    timeout_us = std::min(timeout_us, *job->request.timeout_us);
  }
  job->deadline = job->enqueued + std::chrono::microseconds(timeout_us);

  // Drift sampling: summarize the inputs now (the job releases them before answering).
  std::string sample_inputs;
  if (sampler_threshold > 0) {
    const std::uint64_t n = request_counter.fetch_add(1) * 0x9E3779B97F4A7C15ull;
    if ((n >> 34) % 1000000000ull < sampler_threshold) {
      nlohmann::json in = nlohmann::json::object();
      for (std::size_t i = 0; i < job->request.inputs.size() && i < kMaxSampledTensors; ++i) {
        const auto& t = job->request.inputs[i];
        Summarize(in, t.name, t.dtype, t.shape, t.data);
      }
      sample_inputs = in.dump(-1, ' ', true);
    }
  }
  const std::string id = job->request.id;
  auto requested = job->request.outputs;
  job->keep_alive = request;
  const VersionPtr vp = arm.v;
  const std::string model_name = v.name;
  // A shadowed request: the stable answer is kept to compare with the shadow's.
  std::shared_ptr<ShadowPair> pair;
  if (shadow != nullptr) pair = ShadowPair::Make(*this, arm, *shadow, id, request->request_id);
  job->done = [vp, reply, received, id, requested = std::move(requested),
               sample_inputs = std::move(sample_inputs), arm_name = arm.name,
               arm_metrics = arm.metrics, pair](JobResult&& result) {
    const auto now = Clock::now();
    const std::uint64_t total_ns = NsBetween(received, now);
    HttpResponse r;
    r.note.request_id = id;
    r.note.model = vp->name;
    r.note.version = vp->version;
    r.note.queue_ms = static_cast<double>(result.queue_ns) / 1e6;
    r.note.infer_ms = static_cast<double>(result.compute_ns) / 1e6;
    r.note.batch_size = result.batch_rows;
    r.note.arm = arm_name;
    AddVersionHeaders(r, vp->version, arm_name);
    if (arm_metrics) arm_metrics->Add(!result.failure, total_ns);
    if (result.failure) {
      if (pair) pair->Complete(false, FailedSide(StatusFor(*result.failure), result.message, total_ns));
      vp->metrics->AddFailure(*result.failure, total_ns);
      r.status = StatusFor(*result.failure);
      r.body = EncodeError(result.message);
      r.note.error_type = ReasonType(*result.failure);
      r.note.error_message = result.message;
      if (*result.failure == FailureReason::kOverloaded) r.headers.emplace_back("Retry-After", "1");
      return reply(std::move(r));
    }
    const std::vector<OutputView> views = RowsOf(vp->schema, result);
    EncodedResponse encoded = EncodeInferResponse(vp->name, vp->version, id, requested, views);
    r.body = std::move(encoded.body);
    if (encoded.json_length) {
      r.content_type = "application/octet-stream";
      r.headers.emplace_back("Inference-Header-Content-Length",
                             std::to_string(*encoded.json_length));
    }
    if (!sample_inputs.empty()) {
      nlohmann::json pred = nlohmann::json::object();
      for (std::size_t i = 0; i < views.size() && i < kMaxSampledTensors; ++i) {
        Summarize(pred, views[i].name, views[i].dtype, views[i].shape, views[i].data);
      }
      r.note.sample_input = sample_inputs;
      r.note.sample_prediction = pred.dump(-1, ' ', true);
    }
    vp->metrics->AddSuccess(total_ns, result.queue_ns, result.compute_ns, UnixMs());
    if (pair) pair->Complete(false, AnsweredSide(views, result, total_ns));
    reply(std::move(r));
  };
  // Keep what the failure paths below need: `job` moves into the queue.
  switch (v.batcher->Submit(std::move(job))) {
    case Batcher::Submitted::kQueued:
      if (pair) Shadow(*shadow, arm, request, json_length, pair);
      return;
    case Batcher::Submitted::kFull:
      return fail(503,
                  "model " + model_name + " " + v.version + " is overloaded: its queue of " +
                      std::to_string(config.queue_capacity) +
                      " requests is full; retry after a second",
                  FailureReason::kOverloaded);
    case Batcher::Submitted::kStopped:
      return fail(503, "the server is shutting down; retry on another replica",
                  FailureReason::kOverloaded);
  }
}

void Server::Impl::Shadow(const Arm& shadow, const Arm& stable,
                          std::shared_ptr<HttpRequest> request,
                          std::optional<std::size_t> json_length,
                          std::shared_ptr<ShadowPair> pair) {
  (void)stable;
  const ModelVersion& v = *shadow.v;
  const auto received = request->received;
  auto parsed = ParseInferRequest(std::as_bytes(std::span(request->body)), json_length, v.schema);
  if (!parsed) {
    v.metrics->AddFailure(FailureReason::kBadInput, NsBetween(received, Clock::now()));
    pair->Complete(true, FailedSide(parsed.error().status, parsed.error().message,
                                    NsBetween(received, Clock::now())));
    return;
  }
  auto job = std::make_unique<Job>();
  job->request = std::move(*parsed);
  job->enqueued = Clock::now();
  job->deadline = job->enqueued + std::chrono::milliseconds(config.request_timeout_ms);
  job->keep_alive = request;
  const VersionPtr vp = shadow.v;
  ArmMetrics* arm_metrics = shadow.metrics;
  job->done = [vp, received, pair, arm_metrics](JobResult&& result) {
    const std::uint64_t total_ns = NsBetween(received, Clock::now());
    if (arm_metrics) arm_metrics->Add(!result.failure, total_ns);
    if (result.failure) {
      vp->metrics->AddFailure(*result.failure, total_ns);
      pair->Complete(true, FailedSide(StatusFor(*result.failure), result.message, total_ns));
      return;
    }
    vp->metrics->AddSuccess(total_ns, result.queue_ns, result.compute_ns, UnixMs());
    pair->Complete(true, AnsweredSide(RowsOf(vp->schema, result), result, total_ns));
  };
  if (v.batcher->Submit(std::move(job)) != Batcher::Submitted::kQueued) {
    // The client never waits for the shadow: a full queue skips it, and says so.
    v.metrics->AddFailure(FailureReason::kOverloaded, NsBetween(received, Clock::now()));
    if (arm_metrics) arm_metrics->Add(false, NsBetween(received, Clock::now()));
    pair->Complete(true, FailedSide(503, "the shadow version's queue is full; not compared",
                                    NsBetween(received, Clock::now())));
  }
}

namespace {

// W3C Trace Context: version 00-fe, trace-id and parent-id lower-case hex and not all zero.
bool ValidTraceparent(std::string_view tp) {
  const auto lower_hex = [](std::string_view s) {
    return s.find_first_not_of("0123456789abcdef") == std::string_view::npos;
  };
  const auto all_zero = [](std::string_view s) {
    return s.find_first_not_of('0') == std::string_view::npos;
  };
  return tp.size() == 55 && tp[2] == '-' && tp[35] == '-' && tp[52] == '-' &&
         lower_hex(tp.substr(0, 2)) && tp.substr(0, 2) != "ff" && lower_hex(tp.substr(3, 32)) &&
         !all_zero(tp.substr(3, 32)) && lower_hex(tp.substr(36, 16)) &&
         !all_zero(tp.substr(36, 16)) && lower_hex(tp.substr(53, 2));
}

}  // namespace

void Server::Impl::AccessLog(const HttpRequest& request, const HttpResponse& response,
                             std::uint64_t response_body_bytes) {
  const log::Level level = response.status >= 500   ? log::Level::kError
                           : response.status >= 400 ? log::Level::kWarn
                                                    : log::Level::kInfo;
  if (access_log ? !access_log->Enabled(level) : !log::Enabled(level)) return;
  const double ms =
      request.received == Clock::time_point{}
          ? 0.0
          : std::chrono::duration<double, std::milli>(Clock::now() - request.received).count();
  const std::string method = request.method.empty() ? "-" : request.method.substr(0, 16);
  const std::string path = request.target.empty()
                               ? "-"
                               : request.target.substr(0, request.target.find('?')).substr(0, 256);
  const std::string message = method + " " + path + " " + std::to_string(response.status);
  log::Record rec = access_log ? access_log->Make(level, "serve.request", message)
                               : log::Record(level, "serve.request", message);
  // The client's id (X-Request-ID, else the inference request's "id"), else one made here.
  std::string rid = request.request_id.empty() ? response.note.request_id : request.request_id;
  if (rid.empty()) {
    char made[24];
    std::snprintf(made, sizeof made, "%016llx",
                  static_cast<unsigned long long>(
                      request_id_seed ^ (request_counter.fetch_add(1) * 0x9E3779B97F4A7C15ull)));
    rid = made;
  }
  rec.Str("request_id", rid.substr(0, 128));
  if (ValidTraceparent(request.traceparent)) {
    rec.Str("trace.id", request.traceparent.substr(3, 32));
    rec.Str("span.id", request.traceparent.substr(36, 16));
  }
  rec.Str("http.request.method", method)
      .Str("url.path", path)
      .Str("client.address", request.peer_address)
      .Int("client.port", request.peer_port)
      .Int("status", response.status)
      .Num("latency_ms", ms)
      .Int("http.request.body.bytes", static_cast<std::int64_t>(request.body.size()))
      .Int("http.response.body.bytes", static_cast<std::int64_t>(response_body_bytes));
  const auto& n = response.note;
  if (!n.model.empty()) rec.Str("model", n.model);
  if (!n.version.empty()) rec.Str("model_version", n.version);
  if (!n.arm.empty()) rec.Str("variant", n.arm);
  if (n.queue_ms >= 0) rec.Num("queue_ms", n.queue_ms);
  if (n.infer_ms >= 0) rec.Num("infer_ms", n.infer_ms);
  if (n.batch_size > 0) rec.Int("batch_size", n.batch_size);
  if (!n.error_type.empty()) rec.Str("error_type", n.error_type);
  if (!n.error_message.empty()) rec.Str("error.message", n.error_message.substr(0, 1024));
  if (!n.sample_input.empty()) rec.Json("input", n.sample_input);
  if (!n.sample_prediction.empty()) rec.Json("prediction", n.sample_prediction);
  rec.Emit();
}

}  // namespace dlsys::serve
