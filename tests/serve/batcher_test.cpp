#include "serve/batcher.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <functional>
#include <future>
#include <latch>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <vector>

namespace dlsys::serve {
namespace {

using namespace std::chrono_literals;
using runtime::DType;
using runtime::RunError;
using runtime::RunFailure;
using runtime::Tensor;
using runtime::TensorView;
using RunResult = tl::expected<std::vector<Tensor>, RunError>;

// Generous bound for "this eventually happens"; only reached when the batcher is broken.
constexpr auto kPatience = 60s;

// x: FP32 [-1,-1]; outputs y = 2*x + (row sum of x): FP32 [-1,-1], s = row sum: FP32 [-1,1].
ModelSchema RowSchema() {
  ModelSchema schema;
  schema.inputs = {{"x", DType::kFloat32, {-1, -1}}};
  schema.outputs = {{"y", DType::kFloat32, {-1, -1}}, {"s", DType::kFloat32, {-1, 1}}};
  return schema;
}

Tensor FloatTensor(std::string name, std::vector<std::int64_t> shape,
                   const std::vector<float>& values) {
  Tensor t;
  t.name = std::move(name);
  t.dtype = DType::kFloat32;
  t.shape = std::move(shape);
  t.data.resize(values.size() * sizeof(float));
  if (!values.empty()) std::memcpy(t.data.data(), values.data(), t.data.size());
  return t;
}

// The model behind the RunFn seam: a real row-wise computation over a rank-2 float32 input.
std::vector<Tensor> Compute(std::span<const TensorView> inputs) {
  const TensorView& x = inputs[0];
  const std::int64_t rows = x.shape[0];
  const std::int64_t cols = x.shape[1];
  std::vector<float> in(x.data.size() / sizeof(float));
  if (!in.empty()) std::memcpy(in.data(), x.data.data(), in.size() * sizeof(float));
  std::vector<float> y(static_cast<std::size_t>(rows * cols));
  std::vector<float> s(static_cast<std::size_t>(rows));
  for (std::int64_t r = 0; r < rows; ++r) {
    float sum = 0;
    for (std::int64_t c = 0; c < cols; ++c) sum += in[static_cast<std::size_t>(r * cols + c)];
    s[static_cast<std::size_t>(r)] = sum;
    for (std::int64_t c = 0; c < cols; ++c) {
      const auto i = static_cast<std::size_t>(r * cols + c);
      y[i] = 2 * in[i] + sum;
    }
  }
  std::vector<Tensor> out;
  out.push_back(FloatTensor("output0", {rows, cols}, y));
  out.push_back(FloatTensor("output1", {rows, 1}, s));
  return out;
}

struct CallInfo {
  std::vector<std::int64_t> shape;  // of the (concatenated) input
  float first = 0;                  // x[0][0]: which request's rows came first
  bool size_ok = false;             // data holds exactly ElementCount(shape) floats
};

// Records every call's input and can hold calls at a gate, so tests fill the queue
// deterministically while the worker is busy.
class FakeModel {
 public:
  // Records the call, then waits while the gate is closed.
  void Enter(std::span<const TensorView> inputs) {
    CallInfo info;
    const TensorView& x = inputs[0];
    info.shape.assign(x.shape.begin(), x.shape.end());
    info.size_ok = x.data.size() == static_cast<std::size_t>(runtime::ElementCount(info.shape)) *
                                        runtime::DTypeSize(x.dtype);
    if (x.data.size() >= sizeof(float)) std::memcpy(&info.first, x.data.data(), sizeof(float));
    std::unique_lock lock(mu_);
    calls_.push_back(std::move(info));
    cv_.notify_all();
    cv_.wait(lock, [this] { return open_; });
  }
  RunFn Fn() {
    return [this](std::span<const TensorView> inputs) -> RunResult {
      Enter(inputs);
      return Compute(inputs);
    };
  }
  void Close() {
    std::lock_guard lock(mu_);
    open_ = false;
  }
  void Open() {
    {
      std::lock_guard lock(mu_);
      open_ = true;
    }
    cv_.notify_all();
  }
  // Waits until `n` calls have entered the model.
  [[nodiscard]] bool WaitForCalls(std::size_t n) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, kPatience, [&] { return calls_.size() >= n; });
  }
  std::vector<CallInfo> Calls() const {
    std::lock_guard lock(mu_);
    return calls_;
  }
  std::vector<std::int64_t> CallRows() const {
    std::vector<std::int64_t> rows;
    for (const CallInfo& c : Calls()) rows.push_back(c.shape.empty() ? -1 : c.shape[0]);
    return rows;
  }

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool open_ = true;
  std::vector<CallInfo> calls_;
};

// One submitted request as the test sees it: its input, its expected outputs when run alone,
// and its result.
struct Pending {
  std::vector<std::int64_t> shape;
  std::vector<float> x;
  std::shared_ptr<std::atomic<int>> done_calls = std::make_shared<std::atomic<int>>(0);
  std::shared_ptr<std::atomic<bool>> body_released = std::make_shared<std::atomic<bool>>(false);
  std::future<JobResult> result;

  // This request's outputs when it runs on its own.
  std::vector<Tensor> Alone() const {
    TensorView view{"x", DType::kFloat32, shape, std::as_bytes(std::span(x))};
    return Compute(std::span(&view, 1));
  }
};

// A job of `rows` x `cols` floats starting at `base` (distinct bases make requests distinct).
std::unique_ptr<Job> MakeJob(Pending& p, std::int64_t rows, std::int64_t cols, float base,
                             Clock::time_point deadline = Clock::now() + 1h) {
  p.shape = {rows, cols};
  p.x.resize(static_cast<std::size_t>(rows * cols));
  for (std::size_t i = 0; i < p.x.size(); ++i) p.x[i] = base + static_cast<float>(i);
  auto body = std::make_shared<std::vector<float>>(p.x);
  auto job = std::make_unique<Job>();
  job->request.batch_size = rows;
  job->request.inputs = {
      InputTensor{"x", DType::kFloat32, p.shape, std::as_bytes(std::span(*body))}};
  job->enqueued = Clock::now();
  job->deadline = deadline;
  std::weak_ptr<void> weak_body = body;
  job->keep_alive = std::move(body);
  auto promise = std::make_shared<std::promise<JobResult>>();
  p.result = promise->get_future();
  job->done = [promise, calls = p.done_calls, released = p.body_released,
               weak_body](JobResult&& r) {
    released->store(weak_body.expired());
    if (calls->fetch_add(1) == 0) promise->set_value(std::move(r));
  };
  return job;
}

std::optional<JobResult> Await(Pending& p) {
  if (p.result.wait_for(kPatience) != std::future_status::ready) return std::nullopt;
  return p.result.get();
}

// The request's rows [row_offset, row_offset + rows) of output `index`.
std::vector<std::byte> RowsOf(const JobResult& r, std::size_t index) {
  const Tensor& t = r.outputs->tensors.at(index);
  const std::size_t row_bytes = t.data.size() / static_cast<std::size_t>(t.shape.at(0));
  const auto begin = t.data.begin() + static_cast<std::ptrdiff_t>(r.row_offset * row_bytes);
  return {begin, begin + static_cast<std::ptrdiff_t>(r.rows * row_bytes)};
}

// Checks a successful result holds exactly the rows the request gets when run alone.
void ExpectOwnRows(const JobResult& r, const Pending& p) {
  ASSERT_FALSE(r.failure) << r.message;
  ASSERT_NE(r.outputs, nullptr);
  EXPECT_EQ(r.rows, p.shape[0]);
  const std::vector<Tensor> alone = p.Alone();
  ASSERT_EQ(r.outputs->tensors.size(), alone.size());
  for (std::size_t i = 0; i < alone.size(); ++i) {
    EXPECT_EQ(RowsOf(r, i), alone[i].data) << "output " << i << " of a request at x=" << p.x[0];
  }
  EXPECT_EQ(p.done_calls->load(), 1);
  EXPECT_TRUE(p.body_released->load()) << "the job's body must be released before done is called";
}

BatcherOptions Options(int max_batch_size, std::chrono::microseconds delay, int instances = 1) {
  BatcherOptions o;
  o.instances = instances;
  o.max_batch_size = max_batch_size;
  o.max_queue_delay = delay;
  return o;
}

// A stand-in for the HTTP event loop: one thread running posted tasks in order.
class EventLoop {
 public:
  EventLoop() : thread_([this] { Run(); }) {}
  ~EventLoop() {
    {
      std::lock_guard lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  void Post(std::function<void()> task) {
    {
      std::lock_guard lock(mu_);
      tasks_.push_back(std::move(task));
    }
    cv_.notify_all();
  }
  std::thread::id id() const { return thread_.get_id(); }

 private:
  void Run() {
    std::unique_lock lock(mu_);
    for (;;) {
      cv_.wait(lock, [this] { return stop_ || !tasks_.empty(); });
      if (tasks_.empty()) return;
      auto task = std::move(tasks_.front());
      tasks_.pop_front();
      lock.unlock();
      task();
      lock.lock();
    }
  }
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> tasks_;
  bool stop_ = false;
  std::thread thread_;
};

// Where batches run: the batcher's worker threads, or tasks posted to an event loop (run_on).
enum class Executor { kThreads, kEventLoop };

class BatcherTest : public ::testing::TestWithParam<Executor> {
 protected:
  ~BatcherTest() override {
    model_.Open();  // a worker blocked at the gate would deadlock the destructor's join
    batcher_.reset();
  }
  BatcherOptions OnExecutor(BatcherOptions options) {
    if (GetParam() == Executor::kEventLoop) {
      options.run_on = [this](std::function<void()> task) { loop_.Post(std::move(task)); };
    }
    return options;
  }
  Batcher& Start(BatcherOptions options, RunFn run = {}, ModelSchema schema = RowSchema()) {
    batcher_ = std::make_unique<Batcher>(OnExecutor(std::move(options)), std::move(schema),
                                         run ? run : model_.Fn(), &metrics_);
    return *batcher_;
  }
  // Submits a one-row job and waits until the worker is inside the model, held at the gate.
  void BlockWorker(Pending& blocker, std::int64_t rows = 1, std::int64_t cols = 3) {
    model_.Close();
    const std::size_t before = model_.Calls().size();
    ASSERT_EQ(batcher_->Submit(MakeJob(blocker, rows, cols, -1000)), Batcher::Submitted::kQueued);
    ASSERT_TRUE(model_.WaitForCalls(before + 1));
  }

  // Opens the gate when it goes out of scope: declare it after a future whose destructor
  // waits for Stop or Drain, so a failed assertion cannot leave the worker held forever.
  struct OpenGateOnExit {
    FakeModel& model;
    ~OpenGateOnExit() { model.Open(); }
  };

  FakeModel model_;
  ModelMetrics metrics_;
  EventLoop loop_;  // outlives batcher_
  std::unique_ptr<Batcher> batcher_;
};

std::string ExecutorName(const ::testing::TestParamInfo<Executor>& info) {
  return info.param == Executor::kThreads ? "Threads" : "EventLoop";
}

INSTANTIATE_TEST_SUITE_P(Executors, BatcherTest,
                         ::testing::Values(Executor::kThreads, Executor::kEventLoop),
                         ExecutorName);

// Behaviour of worker threads only: waiting max_queue_delay for company (an event loop never
// waits; it runs what is queued).
class BatcherThreadsTest : public BatcherTest {};
INSTANTIATE_TEST_SUITE_P(Executors, BatcherThreadsTest, ::testing::Values(Executor::kThreads),
                         ExecutorName);

TEST_P(BatcherTest, ConcatenatesMixedRequestsUpToMaxBatchAndSplitsRowsBack) {
  Batcher& b = Start(Options(8, 0us));
  Pending blocker;
  BlockWorker(blocker);
  // Queued while the worker is busy, so each batch is formed from a full queue (first fit).
  const std::vector<std::int64_t> rows = {1, 2, 3, 2, 3, 1, 2, 2, 1, 2};
  std::vector<Pending> jobs(rows.size());
  for (std::size_t i = 0; i < rows.size(); ++i) {
    ASSERT_EQ(b.Submit(MakeJob(jobs[i], rows[i], 3, 100.0f * static_cast<float>(i + 1))),
              Batcher::Submitted::kQueued);
  }
  model_.Open();
  ASSERT_TRUE(Await(blocker));
  for (std::size_t i = 0; i < jobs.size(); ++i) {
    SCOPED_TRACE("request " + std::to_string(i));
    auto r = Await(jobs[i]);
    ASSERT_TRUE(r);
    ExpectOwnRows(*r, jobs[i]);
    EXPECT_EQ(r->batch_rows, i < 8 ? 8 : 3);
  }
  EXPECT_EQ(model_.CallRows(), (std::vector<std::int64_t>{1, 8, 8, 3}));
  const auto calls = model_.Calls();
  for (const CallInfo& c : calls) EXPECT_TRUE(c.size_ok);
  EXPECT_EQ(calls[1].first, 100.0f) << "a batch keeps the requests' queue order";
  EXPECT_EQ(calls[2].first, 500.0f);
}

TEST_P(BatcherTest, BatchesRunOnTheEventLoopOrOnAWorkerButNeverOnTheSubmitter) {
  std::mutex mu;
  std::vector<std::thread::id> ran_on;
  Batcher& b = Start(Options(8, 0us), [&](std::span<const TensorView> in) -> RunResult {
    std::lock_guard lock(mu);
    ran_on.push_back(std::this_thread::get_id());
    return Compute(in);
  });
  std::vector<Pending> jobs(3);
  for (std::size_t i = 0; i < jobs.size(); ++i) {
    ASSERT_EQ(b.Submit(MakeJob(jobs[i], 1, 2, static_cast<float>(i))), Batcher::Submitted::kQueued);
    auto r = Await(jobs[i]);
    ASSERT_TRUE(r);
    ExpectOwnRows(*r, jobs[i]);
  }
  std::lock_guard lock(mu);
  ASSERT_EQ(ran_on.size(), 3u);
  for (const auto& id : ran_on) {
    EXPECT_NE(id, std::this_thread::get_id());
    if (GetParam() == Executor::kEventLoop) {
      EXPECT_EQ(id, loop_.id());
    } else {
      EXPECT_NE(id, loop_.id());
    }
  }
}

TEST_P(BatcherThreadsTest, LongDelayWaitsUntilTheBatchIsFull) {
  // The delay is far longer than submitting 8 requests takes; the batch flushes when full.
  Batcher& b = Start(Options(8, 10s));
  std::vector<Pending> jobs(8);
  ASSERT_EQ(b.Submit(MakeJob(jobs[0], 1, 4, 0)), Batcher::Submitted::kQueued);
  // Once the worker holds the first request (the queue is empty) it must wait for company.
  const auto give_up = Clock::now() + kPatience;
  while (b.QueueDepth() != 0 && Clock::now() < give_up) std::this_thread::yield();
  ASSERT_EQ(b.QueueDepth(), 0);
  for (std::size_t i = 1; i < jobs.size(); ++i) {
    ASSERT_EQ(b.Submit(MakeJob(jobs[i], 1, 4, 10.0f * static_cast<float>(i))),
              Batcher::Submitted::kQueued);
  }
  for (auto& p : jobs) {
    auto r = Await(p);
    ASSERT_TRUE(r);
    ExpectOwnRows(*r, p);
    EXPECT_EQ(r->batch_rows, 8);
  }
  EXPECT_EQ(model_.CallRows(), (std::vector<std::int64_t>{8}));
}

TEST_P(BatcherTest, ZeroDelayRunsASingleRequestAlone) {
  Batcher& b = Start(Options(8, 0us));
  Pending p;
  ASSERT_EQ(b.Submit(MakeJob(p, 1, 4, 1)), Batcher::Submitted::kQueued);
  auto r = Await(p);  // nothing else is submitted: it must not wait for company
  ASSERT_TRUE(r);
  ExpectOwnRows(*r, p);
  EXPECT_EQ(r->batch_rows, 1);
  EXPECT_EQ(model_.CallRows(), (std::vector<std::int64_t>{1}));
}

TEST_P(BatcherThreadsTest, PartialBatchRunsOnceTheOldestWaitedTheDelay) {
  constexpr auto kDelay = 50ms;
  Batcher& b = Start(Options(8, kDelay));
  std::vector<Pending> jobs(3);
  for (std::size_t i = 0; i < jobs.size(); ++i) {
    ASSERT_EQ(b.Submit(MakeJob(jobs[i], 1, 2, static_cast<float>(i))), Batcher::Submitted::kQueued);
  }
  std::int64_t rows = 0;
  for (std::size_t i = 0; i < jobs.size(); ++i) {
    auto r = Await(jobs[i]);
    ASSERT_TRUE(r);
    ExpectOwnRows(*r, jobs[i]);
    // The oldest request of a batch that never filled ran only after max_queue_delay.
    if (i == 0) {
      EXPECT_GE(r->queue_ns, static_cast<std::uint64_t>(std::chrono::nanoseconds(kDelay).count()));
    }
  }
  for (std::int64_t n : model_.CallRows()) rows += n;
  EXPECT_EQ(rows, 3);
}

TEST_P(BatcherTest, RequestsWithDifferentRowShapesNeverShareACall) {
  Batcher& b = Start(Options(8, 0us));
  Pending blocker;
  BlockWorker(blocker, 1, 4);
  std::vector<Pending> jobs(6);
  for (std::size_t i = 0; i < jobs.size(); ++i) {
    const std::int64_t cols = i % 2 == 0 ? 4 : 5;
    ASSERT_EQ(b.Submit(MakeJob(jobs[i], 1, cols, 100.0f * static_cast<float>(i + 1))),
              Batcher::Submitted::kQueued);
  }
  model_.Open();
  for (auto& p : jobs) {
    auto r = Await(p);
    ASSERT_TRUE(r);
    ExpectOwnRows(*r, p);
  }
  const auto calls = model_.Calls();
  ASSERT_EQ(calls.size(), 3u);
  EXPECT_EQ(calls[1].shape, (std::vector<std::int64_t>{3, 4}));
  EXPECT_EQ(calls[2].shape, (std::vector<std::int64_t>{3, 5}));
  for (const CallInfo& c : calls) EXPECT_TRUE(c.size_ok);
}

TEST_P(BatcherTest, NotBatchableRunsEveryRequestOnItsOwn) {
  ModelSchema fixed;
  fixed.inputs = {{"x", DType::kFloat32, {2, 3}}};
  fixed.outputs = {{"y", DType::kFloat32, {2, 3}}, {"s", DType::kFloat32, {2, 1}}};
  BatcherOptions o = Options(8, 10s);
  o.batchable = false;
  Batcher& b = Start(o, {}, fixed);
  // The protocol gives every request of a model without a batch dimension batch_size 1.
  auto job_of = [](Pending& p, float base) {
    auto job = MakeJob(p, 2, 3, base);
    job->request.batch_size = 1;
    return job;
  };
  model_.Close();
  Pending blocker;
  ASSERT_EQ(b.Submit(job_of(blocker, -1)), Batcher::Submitted::kQueued);
  ASSERT_TRUE(model_.WaitForCalls(1));
  std::vector<Pending> jobs(4);
  for (std::size_t i = 0; i < jobs.size(); ++i) {
    ASSERT_EQ(b.Submit(job_of(jobs[i], 10.0f * static_cast<float>(i))),
              Batcher::Submitted::kQueued);
  }
  model_.Open();
  for (auto& p : jobs) {
    auto r = Await(p);
    ASSERT_TRUE(r);
    ASSERT_FALSE(r->failure) << r->message;
    EXPECT_EQ(r->batch_rows, 1);
    const auto alone = p.Alone();
    ASSERT_EQ(r->outputs->tensors.size(), 2u);
    EXPECT_EQ(r->outputs->tensors[0].data, alone[0].data);
    EXPECT_EQ(r->outputs->tensors[1].data, alone[1].data);
  }
  const auto calls = model_.Calls();
  ASSERT_EQ(calls.size(), 5u);
  for (const CallInfo& c : calls) {
    EXPECT_EQ(c.shape, (std::vector<std::int64_t>{2, 3}));
    EXPECT_TRUE(c.size_ok);
  }
}

TEST_P(BatcherTest, ExpiredJobsFailWithDeadlineAndNeverRun) {
  Batcher& b = Start(Options(8, 0us));
  Pending blocker;
  BlockWorker(blocker);
  Pending passed, passes_while_blocked, live;
  ASSERT_EQ(b.Submit(MakeJob(passed, 1, 3, 10, Clock::now() - 1s)), Batcher::Submitted::kQueued);
  const auto soon = Clock::now() + 20ms;
  ASSERT_EQ(b.Submit(MakeJob(passes_while_blocked, 1, 3, 20, soon)), Batcher::Submitted::kQueued);
  ASSERT_EQ(b.Submit(MakeJob(live, 1, 3, 30)), Batcher::Submitted::kQueued);
  std::this_thread::sleep_until(soon + 1ms);  // lets the clock pass the deadline, no sync
  model_.Open();
  for (Pending* p : {&passed, &passes_while_blocked}) {
    auto r = Await(*p);
    ASSERT_TRUE(r);
    ASSERT_TRUE(r->failure);
    EXPECT_EQ(*r->failure, FailureReason::kDeadline);
    EXPECT_EQ(r->outputs, nullptr);
    EXPECT_NE(r->message.find("deadline"), std::string::npos) << r->message;
    EXPECT_EQ(p->done_calls->load(), 1);
  }
  auto r = Await(live);
  ASSERT_TRUE(r);
  ExpectOwnRows(*r, live);
  const auto calls = model_.Calls();
  ASSERT_EQ(calls.size(), 2u) << "expired jobs must not reach the model";
  EXPECT_EQ(calls[1].shape, (std::vector<std::int64_t>{1, 3}));
  EXPECT_EQ(calls[1].first, 30.0f);
}

TEST_P(BatcherTest, FullQueueRefusesWithoutCallingDone) {
  BatcherOptions o = Options(8, 0us);
  o.queue_capacity = 3;
  Batcher& b = Start(o);
  Pending blocker;
  BlockWorker(blocker);
  std::vector<Pending> jobs(3);
  for (std::size_t i = 0; i < jobs.size(); ++i) {
    ASSERT_EQ(b.Submit(MakeJob(jobs[i], 1, 3, static_cast<float>(i))), Batcher::Submitted::kQueued);
  }
  EXPECT_EQ(b.QueueDepth(), 3);
  EXPECT_EQ(metrics_.queue_depth.load(), 3);
  Pending refused;
  EXPECT_EQ(b.Submit(MakeJob(refused, 1, 3, 99)), Batcher::Submitted::kFull);
  EXPECT_EQ(b.QueueDepth(), 3);
  model_.Open();
  for (auto& p : jobs) {
    auto r = Await(p);
    ASSERT_TRUE(r);
    ExpectOwnRows(*r, p);
  }
  ASSERT_TRUE(b.Drain(Clock::now() + kPatience));
  EXPECT_EQ(refused.done_calls->load(), 0);
  EXPECT_EQ(b.QueueDepth(), 0);
  EXPECT_EQ(metrics_.queue_depth.load(), 0);
}

constexpr float kPoison = -999;

TEST_P(BatcherTest, ModelFailureFailsOnlyThatBatch) {
  Batcher& b = Start(Options(8, 0us), [this](std::span<const TensorView> in) -> RunResult {
    model_.Enter(in);
    const std::size_t n = in[0].data.size() / sizeof(float);
    for (std::size_t i = 0; i < n; ++i) {
      float v;
      std::memcpy(&v, in[0].data.data() + i * sizeof(float), sizeof v);
      if (v == kPoison) {
        return tl::unexpected(RunError{RunFailure::kModelFailure, "boom: tensor exploded"});
      }
    }
    return Compute(in);
  });
  Pending blocker;
  BlockWorker(blocker);
  Pending poisoned, neighbour, other_shape;
  ASSERT_EQ(b.Submit(MakeJob(poisoned, 1, 3, kPoison)), Batcher::Submitted::kQueued);
  ASSERT_EQ(b.Submit(MakeJob(neighbour, 2, 3, 10)), Batcher::Submitted::kQueued);
  ASSERT_EQ(b.Submit(MakeJob(other_shape, 1, 4, 20)), Batcher::Submitted::kQueued);
  model_.Open();
  for (Pending* p : {&poisoned, &neighbour}) {
    auto r = Await(*p);
    ASSERT_TRUE(r);
    ASSERT_TRUE(r->failure);
    EXPECT_EQ(*r->failure, FailureReason::kModelFailure);
    EXPECT_NE(r->message.find("boom: tensor exploded"), std::string::npos) << r->message;
    EXPECT_EQ(r->outputs, nullptr);
    EXPECT_EQ(r->batch_rows, 3);
  }
  auto r = Await(other_shape);  // a separate batch
  ASSERT_TRUE(r);
  ExpectOwnRows(*r, other_shape);
  Pending next;  // the batcher keeps serving after a failure
  ASSERT_EQ(b.Submit(MakeJob(next, 2, 3, 30)), Batcher::Submitted::kQueued);
  r = Await(next);
  ASSERT_TRUE(r);
  ExpectOwnRows(*r, next);
  EXPECT_EQ(model_.CallRows(), (std::vector<std::int64_t>{1, 3, 1, 2}));
}

TEST_P(BatcherTest, BadInputFromTheModelMapsToBadInput) {
  Batcher& b = Start(Options(8, 0us), [](std::span<const TensorView>) -> RunResult {
    return tl::unexpected(RunError{RunFailure::kBadInput, "input 'x' has the wrong size"});
  });
  Pending p;
  ASSERT_EQ(b.Submit(MakeJob(p, 1, 3, 0)), Batcher::Submitted::kQueued);
  auto r = Await(p);
  ASSERT_TRUE(r);
  ASSERT_TRUE(r->failure);
  EXPECT_EQ(*r->failure, FailureReason::kBadInput);
  EXPECT_NE(r->message.find("input 'x' has the wrong size"), std::string::npos) << r->message;
}

TEST_P(BatcherTest, WrongOutputsFailWithAMessageNamingTheOutput) {
  struct Case {
    const char* what;
    void (*mutate)(std::vector<Tensor>&);
    std::vector<std::string> message_parts;
  };
  const std::vector<Case> cases = {
      {"too few outputs",
       [](std::vector<Tensor>& o) { o.pop_back(); },
       {"returned 1 outputs", "declares 2"}},
      {"too many outputs",
       [](std::vector<Tensor>& o) { o.push_back(o[1]); },
       {"returned 3 outputs", "declares 2"}},
      {"wrong dtype",
       [](std::vector<Tensor>& o) { o[1].dtype = DType::kInt32; },
       {"output 's'", "dtype int32", "float32"}},
      {"wrong row count",
       [](std::vector<Tensor>& o) {
         o[0].shape[0] += 1;
         o[0].data.resize(o[0].data.size() + 3 * sizeof(float));
       },
       {"output 'y'", "3 rows for a batch of 2"}},
      {"wrong rank",
       [](std::vector<Tensor>& o) { o[1].shape = {o[1].shape[0]}; },
       {"output 's'", "shape [2]"}},
      {"wrong byte count",
       [](std::vector<Tensor>& o) { o[0].data.pop_back(); },
       {"output 'y'", "bytes"}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    Batcher b(
        OnExecutor(Options(8, 0us)), RowSchema(),
        [&c](std::span<const TensorView> in) -> RunResult {
          auto out = Compute(in);
          c.mutate(out);
          return out;
        },
        nullptr);
    Pending p;
    ASSERT_EQ(b.Submit(MakeJob(p, 2, 3, 0)), Batcher::Submitted::kQueued);
    auto r = Await(p);
    ASSERT_TRUE(r);
    ASSERT_TRUE(r->failure);
    EXPECT_EQ(*r->failure, FailureReason::kModelFailure);
    EXPECT_EQ(r->outputs, nullptr);
    for (const std::string& part : c.message_parts) {
      EXPECT_NE(r->message.find(part), std::string::npos) << r->message;
    }
  }
}

// Runs one request with the model's outputs renamed/reordered by `shape_outputs`.
JobResult RunWithOutputs(void (*shape_outputs)(std::vector<Tensor>&), Pending& p) {
  Batcher b(
      Options(8, 0us), RowSchema(),
      [shape_outputs](std::span<const TensorView> in) -> RunResult {
        auto out = Compute(in);
        shape_outputs(out);
        return out;
      },
      nullptr);
  EXPECT_EQ(b.Submit(MakeJob(p, 2, 3, 5)), Batcher::Submitted::kQueued);
  auto r = Await(p);
  EXPECT_TRUE(r);
  return r ? std::move(*r) : JobResult{};
}

TEST_P(BatcherTest, OutputsNamedByKeyAreReorderedToSchemaOrder) {
  Pending p;
  JobResult r = RunWithOutputs(
      [](std::vector<Tensor>& o) {  // a dict {"s": ..., "y": ...}
        o[0].name = "y";
        o[1].name = "s";
        std::swap(o[0], o[1]);
      },
      p);
  ASSERT_FALSE(r.failure) << r.message;
  EXPECT_EQ(r.outputs->tensors[0].name, "y");
  EXPECT_EQ(r.outputs->tensors[1].name, "s");
  ExpectOwnRows(r, p);
}

TEST_P(BatcherTest, OutputsNamedOutputNAreTakenByPosition) {
  Pending p;
  JobResult r = RunWithOutputs([](std::vector<Tensor>&) {}, p);  // "output0", "output1"
  ASSERT_FALSE(r.failure) << r.message;
  EXPECT_EQ(r.outputs->tensors[0].name, "output0");
  ExpectOwnRows(r, p);
}

TEST_P(BatcherTest, OutputsMatchingOnlySomeSchemaNamesAreTakenByPosition) {
  // Only "y" matches a schema name: the rule is by name when every name is present, else by
  // position, so the matched tensor must not be lost on the way to the positional fallback.
  Pending p;
  JobResult r = RunWithOutputs([](std::vector<Tensor>& o) { o[0].name = "y"; }, p);
  ASSERT_FALSE(r.failure) << r.message;
  ExpectOwnRows(r, p);
}

TEST_P(BatcherTest, DrainRefusesNewJobsAndWaitsForQueuedAndRunningOnes) {
  Batcher& b = Start(Options(8, 0us));
  Pending blocker;
  BlockWorker(blocker);
  std::vector<Pending> jobs(3);
  for (std::size_t i = 0; i < jobs.size(); ++i) {
    ASSERT_EQ(b.Submit(MakeJob(jobs[i], 1, 3, static_cast<float>(i))), Batcher::Submitted::kQueued);
  }
  auto drained = std::async(std::launch::async, [&b] { return b.Drain(Clock::now() + kPatience); });
  OpenGateOnExit open_gate{model_};
  // While the model is held, Drain cannot have finished (always true when Drain is correct).
  EXPECT_EQ(drained.wait_for(50ms), std::future_status::timeout);
  model_.Open();
  ASSERT_EQ(drained.wait_for(kPatience), std::future_status::ready);
  EXPECT_TRUE(drained.get());
  // Everything completed by the time Drain returned.
  EXPECT_EQ(blocker.done_calls->load(), 1);
  for (auto& p : jobs) EXPECT_EQ(p.done_calls->load(), 1);
  for (auto& p : jobs) {
    auto r = Await(p);
    ASSERT_TRUE(r);
    ExpectOwnRows(*r, p);
  }
  Pending late;
  EXPECT_EQ(b.Submit(MakeJob(late, 1, 3, 0)), Batcher::Submitted::kStopped);
  EXPECT_EQ(late.done_calls->load(), 0);
  EXPECT_EQ(b.QueueDepth(), 0);
}

TEST_P(BatcherTest, DrainWhileIdleSucceedsAndRefusesAfterwards) {
  Batcher& b = Start(Options(8, 0us));
  EXPECT_TRUE(b.Drain(Clock::now() - 1ms));  // nothing to wait for
  Pending p;
  EXPECT_EQ(b.Submit(MakeJob(p, 1, 3, 0)), Batcher::Submitted::kStopped);
  EXPECT_EQ(p.done_calls->load(), 0);
}

TEST_P(BatcherTest, DrainReturnsFalseWhenUntilPassesFirst) {
  Batcher& b = Start(Options(8, 0us));
  Pending blocker, queued;
  BlockWorker(blocker);
  ASSERT_EQ(b.Submit(MakeJob(queued, 1, 3, 1)), Batcher::Submitted::kQueued);
  EXPECT_FALSE(b.Drain(Clock::now() - 1ms));
  EXPECT_FALSE(b.Drain(Clock::now() + 10ms));
  Pending late;
  EXPECT_EQ(b.Submit(MakeJob(late, 1, 3, 0)), Batcher::Submitted::kStopped);
  model_.Open();
  EXPECT_TRUE(b.Drain(Clock::now() + kPatience));
  auto r = Await(queued);  // draining still runs what was queued
  ASSERT_TRUE(r);
  ExpectOwnRows(*r, queued);
}

TEST_P(BatcherTest, StopFailsQueuedJobsAsOverloadedAndJoins) {
  Batcher& b = Start(Options(8, 0us));
  Pending blocker;
  BlockWorker(blocker);
  std::vector<Pending> jobs(3);
  for (std::size_t i = 0; i < jobs.size(); ++i) {
    ASSERT_EQ(b.Submit(MakeJob(jobs[i], 1, 3, static_cast<float>(i))), Batcher::Submitted::kQueued);
  }
  auto stopped = std::async(std::launch::async, [&b] { b.Stop(); });
  OpenGateOnExit open_gate{model_};
  for (auto& p : jobs) {
    auto r = Await(p);
    ASSERT_TRUE(r);
    ASSERT_TRUE(r->failure);
    EXPECT_EQ(*r->failure, FailureReason::kOverloaded);
    EXPECT_EQ(p.done_calls->load(), 1);
  }
  // Stop joins the worker, which is still inside the model (always true when Stop is correct).
  EXPECT_EQ(stopped.wait_for(50ms), std::future_status::timeout);
  model_.Open();
  ASSERT_EQ(stopped.wait_for(kPatience), std::future_status::ready);
  stopped.get();
  // The running job finished normally before Stop returned.
  EXPECT_EQ(blocker.done_calls->load(), 1);
  auto r = Await(blocker);
  ASSERT_TRUE(r);
  ExpectOwnRows(*r, blocker);
  Pending late;
  EXPECT_EQ(b.Submit(MakeJob(late, 1, 3, 0)), Batcher::Submitted::kStopped);
  EXPECT_EQ(late.done_calls->load(), 0);
  EXPECT_EQ(metrics_.queue_depth.load(), 0);
  EXPECT_EQ(model_.Calls().size(), 1u);
  b.Stop();  // again: a no-op
}

TEST_P(BatcherTest, ConcurrentSubmittersEachGetTheirOwnRowsExactlyOnce) {
  constexpr int kThreads = 8;
  constexpr int kPerThread = 500;
  constexpr int kCols = 4;
  BatcherOptions o = Options(8, 200us, 2);
  o.queue_capacity = kThreads * kPerThread;
  std::atomic<std::int64_t> call_count{0};
  std::atomic<std::int64_t> call_rows{0};
  std::atomic<std::int64_t> oversized_calls{0};
  Batcher& b = Start(o, [&](std::span<const TensorView> in) -> RunResult {
    call_count.fetch_add(1);
    call_rows.fetch_add(in[0].shape[0]);
    if (in[0].shape[0] > 8) oversized_calls.fetch_add(1);
    return Compute(in);
  });

  struct Slot {
    std::vector<float> x;
    std::vector<std::vector<std::byte>> expected;
    std::atomic<int> done_calls{0};
    std::atomic<bool> ok{false};
  };
  std::vector<Slot> slots(kThreads * kPerThread);
  std::latch all_done(kThreads * kPerThread);
  std::atomic<int> refused{0};
  std::atomic<std::int64_t> submitted_rows{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        const int id = t * kPerThread + i;
        Slot& slot = slots[static_cast<std::size_t>(id)];
        const std::int64_t rows = 1 + (id % 3);
        Pending p;
        auto job = MakeJob(p, rows, kCols, static_cast<float>(id) * 16);
        for (const Tensor& out : p.Alone()) slot.expected.push_back(out.data);
        job->done = [&slot, &all_done](JobResult&& r) {
          bool ok = !r.failure && r.outputs && r.outputs->tensors.size() == slot.expected.size();
          for (std::size_t k = 0; ok && k < slot.expected.size(); ++k) {
            ok = RowsOf(r, k) == slot.expected[k];
          }
          slot.ok.store(ok);
          slot.done_calls.fetch_add(1);
          all_done.count_down();
        };
        submitted_rows.fetch_add(rows);
        if (b.Submit(std::move(job)) != Batcher::Submitted::kQueued) {
          refused.fetch_add(1);
          all_done.count_down();
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  ASSERT_EQ(refused.load(), 0);
  all_done.wait();
  ASSERT_TRUE(b.Drain(Clock::now() + kPatience));

  int wrong = 0;
  for (const Slot& s : slots) {
    EXPECT_EQ(s.done_calls.load(), 1);
    if (!s.ok.load()) ++wrong;
  }
  EXPECT_EQ(wrong, 0);
  EXPECT_EQ(oversized_calls.load(), 0);
  EXPECT_EQ(call_rows.load(), submitted_rows.load());
  EXPECT_EQ(metrics_.execution_count.load(), static_cast<std::uint64_t>(call_count.load()));
  EXPECT_EQ(metrics_.inference_count.load(), static_cast<std::uint64_t>(submitted_rows.load()));
  EXPECT_EQ(metrics_.queue_depth.load(), 0);
  EXPECT_EQ(b.QueueDepth(), 0);
}

TEST_P(BatcherTest, MetricsCountExecutionsAndQueueDepthReturnsToZero) {
  Batcher& b = Start(Options(8, 0us));
  Pending blocker;
  BlockWorker(blocker);
  std::vector<Pending> jobs(3);
  for (std::size_t i = 0; i < jobs.size(); ++i) {
    ASSERT_EQ(
        b.Submit(MakeJob(jobs[i], static_cast<std::int64_t>(i + 1), 3, static_cast<float>(i) * 10)),
        Batcher::Submitted::kQueued);
  }
  EXPECT_EQ(metrics_.queue_depth.load(), 3);
  model_.Open();
  ASSERT_TRUE(b.Drain(Clock::now() + kPatience));
  EXPECT_EQ(model_.CallRows(), (std::vector<std::int64_t>{1, 6}));
  EXPECT_EQ(metrics_.queue_depth.load(), 0);
  EXPECT_EQ(metrics_.execution_count.load(), 2u);
  EXPECT_EQ(metrics_.inference_count.load(), 7u);
  const auto batch_sizes = metrics_.batch_size.Read();
  EXPECT_EQ(batch_sizes.count, 2u);
  EXPECT_DOUBLE_EQ(batch_sizes.sum, 7.0);
  for (auto& p : jobs) {
    auto r = Await(p);
    ASSERT_TRUE(r);
    ExpectOwnRows(*r, p);
    EXPECT_EQ(r->batch_rows, 6);
  }
}

}  // namespace
}  // namespace dlsys::serve

