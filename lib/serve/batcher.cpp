#include "serve/batcher.h"

#include <algorithm>
#include <cstring>

#include "core/parallel.h"
#include "serve/internal/protocol_json.h"

namespace dlsys::serve {
namespace {

std::uint64_t Ns(Clock::duration d) {
  return static_cast<std::uint64_t>(
      std::max<std::int64_t>(0, std::chrono::duration_cast<std::chrono::nanoseconds>(d).count()));
}

// Requests can share an execution when every input has the same dimensions after dim 0.
bool SameRowShape(const InferRequest& a, const InferRequest& b) {
  if (a.inputs.size() != b.inputs.size()) return false;
  for (std::size_t i = 0; i < a.inputs.size(); ++i) {
    const auto& sa = a.inputs[i].shape;
    const auto& sb = b.inputs[i].shape;
    if (sa.size() != sb.size() || sa.empty()) return false;
    if (!std::equal(sa.begin() + 1, sa.end(), sb.begin() + 1)) return false;
  }
  return true;
}

std::string ShapeText(std::span<const std::int64_t> shape) {
  std::string s;
  internal::AppendShape(s, shape);
  return s;
}

// The outputs must be what the schema declares: the count, dtypes, rank, fixed dimensions and,
// when batched, `rows` rows. Returns a message naming the first mismatch.
std::optional<std::string> CheckOutputs(const ModelSchema& schema, bool batchable,
                                        std::int64_t rows,
                                        const std::vector<runtime::Tensor>& outputs) {
  if (outputs.size() != schema.outputs.size()) {
    return "the model returned " + std::to_string(outputs.size()) +
           " outputs, its schema declares " + std::to_string(schema.outputs.size());
  }
  for (std::size_t i = 0; i < outputs.size(); ++i) {
    const auto& spec = schema.outputs[i];
    const auto& t = outputs[i];
    const std::string what = "output '" + spec.name + "'";
    if (t.dtype != spec.dtype) {
      return what + " has dtype " + runtime::DTypeName(t.dtype) + ", the schema declares " +
             runtime::DTypeName(spec.dtype);
    }
    bool match = t.shape.size() == spec.shape.size();
    for (std::size_t d = 0; match && d < t.shape.size(); ++d) {
      match = t.shape[d] >= 0 && (spec.shape[d] < 0 || spec.shape[d] == t.shape[d]);
    }
    if (!match) {
      return what + " has shape " + ShapeText(t.shape) + ", the schema declares " +
             ShapeText(spec.shape);
    }
    if (batchable && t.shape[0] != rows) {
      return what + " has " + std::to_string(t.shape[0]) + " rows for a batch of " +
             std::to_string(rows);
    }
    const std::int64_t elements = runtime::ElementCount(t.shape);
    if (elements < 0 ||
        t.data.size() != static_cast<std::uint64_t>(elements) * runtime::DTypeSize(t.dtype)) {
      return what + " holds " + std::to_string(t.data.size()) + " bytes for shape " +
             ShapeText(t.shape);
    }
  }
  return std::nullopt;
}

// Runtime outputs arrive named "output0".. for tensors and tuples, or by key for dicts: put
// them in schema order (by name when every schema name is present, else by position).
std::vector<runtime::Tensor> InSchemaOrder(const ModelSchema& schema,
                                           std::vector<runtime::Tensor> outputs) {
  if (outputs.size() != schema.outputs.size()) return outputs;
  // Find every name before moving any tensor: a partial match falls back to positions with
  // the outputs intact.
  std::vector<std::size_t> source(schema.outputs.size());
  std::vector<bool> used(outputs.size());
  for (std::size_t i = 0; i < schema.outputs.size(); ++i) {
    std::size_t j = 0;
    while (j < outputs.size() &&
           (used[j] || outputs[j].name.empty() || outputs[j].name != schema.outputs[i].name)) {
      ++j;
    }
    if (j == outputs.size()) return outputs;  // positional
    used[j] = true;
    source[i] = j;
  }
  std::vector<runtime::Tensor> ordered(outputs.size());
  for (std::size_t i = 0; i < source.size(); ++i) ordered[i] = std::move(outputs[source[i]]);
  return ordered;
}

}  // namespace

Batcher::Batcher(BatcherOptions options, ModelSchema schema, RunFn run, ModelMetrics* metrics)
    : options_(options), schema_(std::move(schema)), run_(std::move(run)), metrics_(metrics) {
  options_.instances = std::max(1, options_.instances);
  options_.max_batch_size = std::max(1, options_.max_batch_size);
  if (!options_.batchable) options_.max_batch_size = 1;
  if (options_.run_on) {
    // Batches run on the caller's executor (the HTTP threads), one at a time.
    options_.instances = 1;
    inline_ = std::make_shared<Inline>();
    inline_->owner = this;
    return;
  }
  workers_.reserve(static_cast<std::size_t>(options_.instances));
  for (int i = 0; i < options_.instances; ++i) workers_.emplace_back([this] {
      core::NameThisThread("dlsys-infer");
      Worker();
    });
}

Batcher::~Batcher() { Stop(); }

Batcher::Submitted Batcher::Submit(std::unique_ptr<Job> job) {
  {
    std::lock_guard lock(mu_);
    if (!accepting_ || stopping_) return Submitted::kStopped;
    if (queue_.size() >= static_cast<std::size_t>(options_.queue_capacity)) {
      return Submitted::kFull;
    }
    queue_.push_back(std::move(job));
    QueueChanged();
    if (inline_) {
      Schedule();
      return Submitted::kQueued;
    }
  }
  work_cv_.notify_one();
  return Submitted::kQueued;
}

void Batcher::QueueChanged() {
  if (metrics_) metrics_->queue_depth.store(static_cast<std::int64_t>(queue_.size()));
}

std::int64_t Batcher::QueueDepth() const {
  std::lock_guard lock(mu_);
  return static_cast<std::int64_t>(queue_.size());
}

bool Batcher::Drain(Clock::time_point until) {
  std::unique_lock lock(mu_);
  accepting_ = false;
  return idle_cv_.wait_until(lock, until, [this] { return queue_.empty() && running_ == 0; });
}

void Batcher::Stop() {
  std::deque<std::unique_ptr<Job>> left;
  {
    std::lock_guard lock(mu_);
    if (stopping_ && workers_.empty()) return;
    accepting_ = false;
    stopping_ = true;
    left.swap(queue_);
    QueueChanged();
  }
  work_cv_.notify_all();
  for (auto& job : left) {
    JobResult r;
    r.failure = FailureReason::kOverloaded;
    r.message = "the server is shutting down";
    Complete(std::move(job), std::move(r));
  }
  if (inline_) {
    std::lock_guard guard(inline_->mu);  // waits for a running batch
    inline_->owner = nullptr;
  }
  for (auto& w : workers_) {
    if (w.joinable()) w.join();
  }
  workers_.clear();
}

void Batcher::Expire(std::unique_ptr<Job> job) {
  JobResult r;
  r.failure = FailureReason::kDeadline;
  r.message = "the request's deadline passed while it was queued";
  r.queue_ns = Ns(Clock::now() - job->enqueued);
  Complete(std::move(job), std::move(r));
}

void Batcher::Complete(std::unique_ptr<Job> job, JobResult&& result) {
  auto done = std::move(job->done);
  job.reset();  // release the body before answering
  if (done) done(std::move(result));
}

void Batcher::Take(Clock::time_point now, std::vector<std::unique_ptr<Job>>& batch,
                   std::vector<std::unique_ptr<Job>>& expired, std::int64_t& rows) {
  for (auto it = queue_.begin(); it != queue_.end();) {
    if ((*it)->deadline <= now) {
      expired.push_back(std::move(*it));
      it = queue_.erase(it);
      continue;
    }
    const std::int64_t r = (*it)->request.batch_size;
    if (batch.empty() || (rows + r <= options_.max_batch_size &&
                          SameRowShape(batch.front()->request, (*it)->request))) {
      batch.push_back(std::move(*it));
      it = queue_.erase(it);
      rows += r;
    } else {
      ++it;
    }
    if (rows >= options_.max_batch_size) break;
  }
}

void Batcher::Schedule() {
  if (scheduled_ || queue_.empty() || executing_ >= options_.instances || stopping_) return;
  scheduled_ = true;
  options_.run_on([state = inline_] {
    std::lock_guard guard(state->mu);
    if (state->owner) state->owner->RunScheduled();
  });
}

void Batcher::RunScheduled() {
  std::vector<std::unique_ptr<Job>> batch;
  std::vector<std::unique_ptr<Job>> expired;
  std::int64_t rows = 0;
  std::unique_lock lock(mu_);
  scheduled_ = false;
  if (stopping_) return;
  Take(Clock::now(), batch, expired, rows);
  QueueChanged();
  const int taken = static_cast<int>(batch.size() + expired.size());
  running_ += taken;
  if (!batch.empty()) ++executing_;
  lock.unlock();
  for (auto& job : expired) Expire(std::move(job));
  const bool ran = !batch.empty();
  if (ran) RunBatch(batch);
  lock.lock();
  running_ -= taken;
  if (ran) --executing_;
  Schedule();  // what arrived while this batch ran
  if (queue_.empty() && running_ == 0) idle_cv_.notify_all();
}

void Batcher::Worker() {
  std::vector<std::unique_ptr<Job>> batch;
  std::vector<std::unique_ptr<Job>> expired;
  std::unique_lock lock(mu_);
  for (;;) {
    work_cv_.wait(
        lock, [this] { return stopping_ || (!queue_.empty() && executing_ < options_.instances); });
    if (stopping_) return;
    // Take the oldest live request, then fill the batch until it is full or the oldest has
    // waited max_queue_delay.
    std::int64_t rows = 0;
    Clock::time_point flush_at{};
    for (;;) {
      const auto now = Clock::now();
      Take(now, batch, expired, rows);
      if (!batch.empty()) flush_at = batch.front()->enqueued + options_.max_queue_delay;
      if (batch.empty() || rows >= options_.max_batch_size || stopping_ ||
          options_.max_batch_size == 1 || now >= flush_at) {
        break;
      }
      // Wait for more requests, at most until the oldest one's delay is up. Other workers may
      // take the new ones meanwhile: that is fine, they run in parallel.
      const int held = static_cast<int>(batch.size() + expired.size());
      running_ += held;
      work_cv_.wait_until(lock, flush_at);
      running_ -= held;
    }
    QueueChanged();
    running_ += static_cast<int>(batch.size() + expired.size());
    if (!batch.empty()) ++executing_;
    lock.unlock();
    for (auto& job : expired) Expire(std::move(job));
    const int finished = static_cast<int>(batch.size() + expired.size());
    expired.clear();
    const bool ran = !batch.empty();
    if (ran) RunBatch(batch);
    batch.clear();
    lock.lock();
    running_ -= finished;
    if (ran) {
      --executing_;
      if (!queue_.empty()) work_cv_.notify_one();
    }
    if (queue_.empty() && running_ == 0) idle_cv_.notify_all();
  }
}

void Batcher::RunBatch(std::vector<std::unique_ptr<Job>>& jobs) {
  const auto started = Clock::now();
  std::int64_t total_rows = 0;
  for (const auto& j : jobs) total_rows += j->request.batch_size;

  // One request runs on its own bytes; several are concatenated along dim 0 (one copy).
  const auto& first = jobs.front()->request;
  std::vector<std::vector<std::int64_t>> shapes(first.inputs.size());
  std::vector<std::vector<std::byte>> joined(jobs.size() > 1 ? first.inputs.size() : 0);
  std::vector<runtime::TensorView> views(first.inputs.size());
  for (std::size_t i = 0; i < first.inputs.size(); ++i) {
    const InputTensor& in = first.inputs[i];
    shapes[i] = in.shape;
    std::span<const std::byte> data = in.data;
    if (jobs.size() > 1) {
      shapes[i][0] = total_rows;
      std::size_t bytes = 0;
      for (const auto& j : jobs) bytes += j->request.inputs[i].data.size();
      joined[i].resize(bytes);
      std::size_t at = 0;
      for (const auto& j : jobs) {
        const auto src = j->request.inputs[i].data;
        if (!src.empty()) std::memcpy(joined[i].data() + at, src.data(), src.size());
        at += src.size();
      }
      data = joined[i];
    }
    views[i] = runtime::TensorView{in.name, in.dtype, shapes[i], data};
  }

  if (metrics_) metrics_->executing.fetch_add(static_cast<std::int64_t>(jobs.size()));
  // The run function reports failures as values; anything thrown (a bug, std::bad_alloc) fails
  // this batch only, like a model failure, instead of ending the server.
  tl::expected<std::vector<runtime::Tensor>, runtime::RunError> ran;
  try {
    ran = run_(views);
  } catch (const std::exception& e) {
    ran = tl::unexpected(runtime::RunError{runtime::RunFailure::kModelFailure, e.what()});
  }
  if (metrics_) metrics_->executing.fetch_sub(static_cast<std::int64_t>(jobs.size()));
  const auto finished = Clock::now();
  const std::uint64_t compute_ns = Ns(finished - started);
  if (metrics_ && ran) {
    metrics_->AddExecution(static_cast<std::uint64_t>(total_rows));
  }

  std::optional<FailureReason> failure;
  std::string message;
  auto outputs = std::make_shared<BatchOutputs>();
  if (!ran) {
    failure = ran.error().kind == runtime::RunFailure::kBadInput ? FailureReason::kBadInput
                                                                 : FailureReason::kModelFailure;
    message = "the model failed: " + ran.error().message;
  } else {
    outputs->tensors = InSchemaOrder(schema_, std::move(*ran));
    outputs->total_rows = total_rows;
    if (auto problem = CheckOutputs(schema_, options_.batchable, total_rows, outputs->tensors)) {
      failure = FailureReason::kModelFailure;
      message = "the model returned unexpected outputs: " + *problem;
    }
  }
  std::int64_t offset = 0;
  for (auto& job : jobs) {
    JobResult r;
    r.queue_ns = Ns(started - job->enqueued);
    r.compute_ns = compute_ns;
    r.batch_rows = total_rows;
    if (failure) {
      r.failure = failure;
      r.message = message;
    } else {
      r.outputs = outputs;
      r.row_offset = offset;
      r.rows = job->request.batch_size;
    }
    offset += job->request.batch_size;
    Complete(std::move(job), std::move(r));
  }
}

}  // namespace dlsys::serve
