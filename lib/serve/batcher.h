// Dynamic batching for one model version: a bounded queue of validated requests and
// `instances` worker threads. Each worker takes the oldest request, adds queued requests whose
// rows fit (same non-batch dimensions) until max_batch_size rows or until max_queue_delay has
// passed since the oldest was queued, concatenates their inputs along dimension 0, runs one
// forward, checks the outputs against the schema and hands each request its rows.
//
// Requests whose deadline passed are completed with kDeadline before they run; a full queue
// refuses at once (kOverloaded) so the caller can answer 503 + Retry-After. A model that throws
// or returns the wrong outputs fails only the requests of that batch (kModelFailure).
//
// With BatcherOptions::run_on there are no worker threads: a batch of what is queued runs as a
// task handed to run_on (the server's HTTP event loop), one at a time. For a model whose forward
// takes microseconds that saves two thread hand-offs per request (docs/performance.md).
//
// Thread-safety: Submit, Drain, Stop and QueueDepth from any thread. Completion callbacks run
// on a worker thread or a run_on task (or the caller's thread for immediate refusals): keep
// them short.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "runtime/runtime.h"
#include "serve/metrics.h"
#include "serve/protocol.h"

namespace dlsys::serve {

using Clock = std::chrono::steady_clock;

// The outputs of one execution, shared by the requests of the batch.
struct BatchOutputs {
  std::vector<runtime::Tensor> tensors;  // in ModelSchema::outputs order, dim 0 = total rows
  std::int64_t total_rows = 0;
};

struct JobResult {
  // Success: the request's rows [row_offset, row_offset + rows) of every output.
  std::shared_ptr<const BatchOutputs> outputs;
  std::int64_t row_offset = 0;
  std::int64_t rows = 0;
  // Failure: reason + message (outputs is null).
  std::optional<FailureReason> failure;
  std::string message;
  // Timings.
  std::uint64_t queue_ns = 0;
  std::uint64_t compute_ns = 0;
  std::int64_t batch_rows = 0;  // rows in the execution this request ran in
};

struct Job {
  InferRequest request;
  std::shared_ptr<const void> keep_alive;  // owns the bytes request.inputs view (the body)
  Clock::time_point enqueued;
  Clock::time_point deadline;
  std::function<void(JobResult&&)> done;  // called exactly once
};

// Runs one (possibly batched) execution. The real one calls runtime::Model::RunViews.
using RunFn = std::function<tl::expected<std::vector<runtime::Tensor>, runtime::RunError>(
    std::span<const runtime::TensorView> inputs)>;

struct BatcherOptions {
  int instances = 1;
  int max_batch_size = 8;  // rows; 1 disables batching
  std::chrono::microseconds max_queue_delay{500};
  int queue_capacity = 1024;  // requests
  bool batchable = true;      // the schema's dim 0 is -1 for every input and output
  // When set, no worker threads: batches run as tasks given to run_on (the HTTP threads'
  // executor), one at a time (instances is ignored), each taking what is queued when it
  // starts (max_queue_delay is ignored). run_on must run tasks later, never inside the call.
  std::function<void(std::function<void()>)> run_on;
};

class Batcher {
 public:
  Batcher(BatcherOptions options, ModelSchema schema, RunFn run, ModelMetrics* metrics);
  ~Batcher();  // Stop()
  Batcher(const Batcher&) = delete;
  Batcher& operator=(const Batcher&) = delete;

  enum class Submitted { kQueued, kFull, kStopped };
  // Queues `job` (kQueued: `done` will be called later), or refuses it without calling done.
  Submitted Submit(std::unique_ptr<Job> job);
  // Refuses new jobs and waits until every queued and running job completed or `until`
  // passed. Returns true if everything completed.
  bool Drain(Clock::time_point until);
  // Fails every queued job with kOverloaded and joins the workers.
  void Stop();
  std::int64_t QueueDepth() const;

 private:
  void Worker();
  void RunBatch(std::vector<std::unique_ptr<Job>>& jobs);
  void Complete(std::unique_ptr<Job> job, JobResult&& result);
  void Expire(std::unique_ptr<Job> job);  // completes with kDeadline
  void QueueChanged();                    // under mu_: publishes the queue depth
  // Under mu_: moves expired jobs to `expired` and the oldest live jobs that fit to `batch`.
  void Take(Clock::time_point now, std::vector<std::unique_ptr<Job>>& batch,
            std::vector<std::unique_ptr<Job>>& expired, std::int64_t& rows);
  void Schedule();      // under mu_, run_on mode: gives run_on a RunScheduled task if needed
  void RunScheduled();  // run_on mode: one batch of what is queued now

  BatcherOptions options_;
  ModelSchema schema_;
  RunFn run_;
  ModelMetrics* metrics_;
  mutable std::mutex mu_;
  std::condition_variable work_cv_;
  std::condition_variable idle_cv_;
  std::deque<std::unique_ptr<Job>> queue_;
  int running_ = 0;    // jobs taken by workers, not yet completed
  int executing_ = 0;  // executions in progress, at most instances
  bool accepting_ = true;
  bool stopping_ = false;
  std::vector<std::thread> workers_;
  // run_on mode: tasks reach the batcher through this; Stop() clears owner (under mu, which a
  // running task holds) so tasks that run later do nothing.
  struct Inline {
    std::mutex mu;
    Batcher* owner = nullptr;
  };
  std::shared_ptr<Inline> inline_;
  bool scheduled_ = false;  // a RunScheduled task is pending (under mu_)
};

}  // namespace dlsys::serve
