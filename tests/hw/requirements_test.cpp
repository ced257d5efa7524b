#include "hw/requirements.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

namespace dlsys::hw {
namespace {

constexpr std::uint64_t kGiB = 1ull << 30;
constexpr std::uint64_t kMiB = 1ull << 20;

// ---- ParseRequirements / RequirementsToJson ------------------------------------------------

TEST(RequirementsTest, EmptyObjectMeansCpuAndNothingElse) {
  auto r = ParseRequirements("{}");
  ASSERT_TRUE(r.has_value()) << r.error().message;
  EXPECT_EQ(*r, Requirements{});
  EXPECT_EQ(r->device, "cpu");
  EXPECT_EQ(RequirementsToJson(*r), R"({"device":"cpu"})");
}

TEST(RequirementsTest, ParsesSpecFormWithUnits) {
  auto r = ParseRequirements(R"({"device": "cuda", "min_gpu_compute_capability": 8.6,
      "min_gpu_memory": "16 GiB", "min_memory": "2 GiB", "cpu_features": ["AVX2", "fma"],
      "latency_budget_ms": 10, "max_batch_size": 64})");
  ASSERT_TRUE(r.has_value()) << r.error().message;
  EXPECT_EQ(r->device, "cuda");
  EXPECT_EQ(r->min_gpu_compute_capability, "8.6");
  EXPECT_EQ(r->min_gpu_memory_bytes, 16 * kGiB);
  EXPECT_EQ(r->min_memory_bytes, 2 * kGiB);
  EXPECT_EQ(r->cpu_features, (std::vector<std::string>{"avx2", "fma"}));
  EXPECT_EQ(r->latency_budget_ms, 10.0);
  EXPECT_EQ(r->max_batch_size, 64);
  EXPECT_FALSE(r->measured.has_value());
  EXPECT_EQ(RequirementsToJson(*r),
            R"({"cpu_features":["avx2","fma"],"device":"cuda","latency_budget_ms":10,)"
            R"("max_batch_size":64,"min_gpu_compute_capability":"8.6",)"
            R"("min_gpu_memory_bytes":17179869184,"min_memory_bytes":2147483648})");
}

TEST(RequirementsTest, ParsesManifestFormInBytes) {
  auto r = ParseRequirements(R"j({"min_memory_bytes": 2147483648, "min_gpu_memory_bytes": 1024,
      "min_gpu_compute_capability": "7.5", "measured": {"peak_memory_bytes": 300,
      "weights_bytes": 200, "forward_latency_ms": 1.25, "forward_runs": 20, "threads": 2,
      "example": "basic", "machine": "Intel(R) Xeon(R)"}})j");
  ASSERT_TRUE(r.has_value()) << r.error().message;
  EXPECT_EQ(r->min_memory_bytes, 2 * kGiB);
  EXPECT_EQ(r->min_gpu_memory_bytes, 1024u);
  ASSERT_TRUE(r->measured.has_value());
  EXPECT_EQ(r->measured->peak_memory_bytes, 300u);
  EXPECT_EQ(r->measured->weights_bytes, 200u);
  EXPECT_EQ(r->measured->forward_latency_ms, 1.25);
  EXPECT_EQ(r->measured->forward_runs, 20);
  EXPECT_EQ(r->measured->threads, 2);
  EXPECT_EQ(r->measured->example, "basic");
  EXPECT_EQ(r->measured->machine, "Intel(R) Xeon(R)");
}

TEST(RequirementsTest, RoundTripsThroughCanonicalJson) {
  Requirements full;
  full.device = "cuda";
  full.min_gpu_compute_capability = "8.0";
  full.min_gpu_memory_bytes = 40 * kGiB;
  full.min_memory_bytes = 3 * kGiB + 7;
  full.cpu_features = {"avx2", "avx512f"};
  full.latency_budget_ms = 12.345678901234;
  full.max_batch_size = 128;
  full.measured = Measured{1395864371, 1181116006, 0.1 + 0.2, 50, 4, "basic", "AMD EPYC 7742"};
  Requirements measured_only;
  measured_only.measured = Measured{};
  for (const Requirements& r : {Requirements{}, full, measured_only}) {
    std::string json = RequirementsToJson(r);
    auto back = ParseRequirements(json);
    ASSERT_TRUE(back.has_value()) << back.error().message << "\n" << json;
    EXPECT_EQ(*back, r) << json;
    EXPECT_EQ(RequirementsToJson(*back), json);
  }
}

TEST(RequirementsTest, RejectsMalformedFieldsNamingThem) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {R"({"min_memry": "1 GiB"})",
       "requirements field 'min_memry' is not a known field (known: device, "},
      {R"({"device": "tpu"})", "requirements field 'device': expected \"cpu\" or \"cuda\""},
      {R"({"device": 1})", "field 'device'"},
      {R"({"min_gpu_compute_capability": "eight"})", "field 'min_gpu_compute_capability'"},
      {R"({"min_memory": "lots"})", "field 'min_memory'"},
      {R"({"min_memory": -1})", "field 'min_memory'"},
      {R"({"min_memory_bytes": "2 GiB"})", "field 'min_memory_bytes'"},
      {R"({"min_memory": "1 GiB", "min_memory_bytes": 1})", "not both"},
      {R"({"min_gpu_memory_bytes": 1.5})", "field 'min_gpu_memory_bytes'"},
      {R"({"cpu_features": "avx2"})", "field 'cpu_features'"},
      {R"({"cpu_features": [1]})", "field 'cpu_features[0]'"},
      {R"({"latency_budget_ms": 0})", "field 'latency_budget_ms'"},
      {R"({"latency_budget_ms": "fast"})", "field 'latency_budget_ms'"},
      {R"({"max_batch_size": 0})", "field 'max_batch_size'"},
      {R"({"max_batch_size": 2.5})", "field 'max_batch_size'"},
      {R"({"measured": 5})", "field 'measured'"},
      {R"({"measured": {"peak": 1}})", "field 'measured.peak' is not a known field"},
      {R"({"measured": {"peak_memory_bytes": -1}})", "field 'measured.peak_memory_bytes'"},
      {R"({"measured": {"forward_latency_ms": -3}})", "field 'measured.forward_latency_ms'"},
      {R"({"measured": {"forward_runs": 1.5}})", "field 'measured.forward_runs'"},
      {R"([1, 2])", "expected an object"},
      {R"({"device": )", "not valid JSON"},
  };
  for (const auto& [json, needle] : cases) {
    auto r = ParseRequirements(json);
    ASSERT_FALSE(r.has_value()) << json;
    EXPECT_EQ(r.error().code, Code::kInvalid) << json;
    EXPECT_NE(r.error().message.find(needle), std::string::npos)
        << json << " -> " << r.error().message;
  }
}

TEST(RequirementsTest, ParsingIsStrict) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {R"({"device": "cpu", "device": "cuda"})", "requirements: duplicate key 'device' at byte 18"},
      {R"({"measured": {"threads": 1, "threads": 2}})", "duplicate key 'threads'"},
      {"{\"device\": \"cp\xC3\"}", "requirements: invalid UTF-8 at byte 14"},
      {R"({"min_memory_bytes": 18446744073709551615})", "integer 18446744073709551615"},
      {R"({"min_memory_bytes": 9007199254740992})", "integer 9007199254740992"},
      {R"({"min_memory": "16777216 TiB"})", "field 'min_memory'"},
      {R"({"latency_budget_ms": 1e400})", "is not finite"},
      {R"({"device": "cpu"} {})", "not valid JSON"},
      {"{\"cpu_features\": " + std::string(100, '['), "nesting deeper than 16 levels"},
      {R"({"cpu_features": [")" + std::string(65, 'a') + R"("]})", "field 'cpu_features[0]'"},
  };
  for (const auto& [json, needle] : cases) {
    auto r = ParseRequirements(json);
    ASSERT_FALSE(r.has_value()) << json;
    EXPECT_EQ(r.error().code, Code::kInvalid) << json;
    EXPECT_NE(r.error().message.find(needle), std::string::npos)
        << json << " -> " << r.error().message;
  }
  std::string big = R"({"cpu_features": [)";
  for (std::size_t i = 0; i <= kMaxCpuFeatures; ++i)
    big += (i ? ",\"f" : "\"f") + std::to_string(i) + "\"";
  big += "]}";
  auto r = ParseRequirements(big);
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().message.find("at most 1024 strings"), std::string::npos) << r.error().message;
  r = ParseRequirements(std::string(kMaxRequirementsBytes + 1, ' '));
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().message.find("more than the limit"), std::string::npos);
}

TEST(RequirementsTest, RequirementsToJsonIsCanonical) {
  Requirements r;
  r.latency_budget_ms = 1e-7;
  r.measured = Measured{};
  r.measured->forward_latency_ms = 0.5;
  r.measured->machine = "caf\xC3\xA9 \"quoted\"";
  EXPECT_EQ(RequirementsToJson(r),
            R"({"device":"cpu","latency_budget_ms":1e-7,"measured":{"example":"",)"
            R"("forward_latency_ms":0.5,"forward_runs":0,"machine":"caf)"
            "\xC3\xA9"
            R"( \"quoted\"","peak_memory_bytes":0,"threads":0,"weights_bytes":0}})");
}

TEST(WeightBytesTest, SumsBothGroupsWithoutWrapping) {
  runtime::ModelSummary s;
  s.parameters.bytes_by_dtype = {{"float32", 40}, {"float16", 2}};
  s.buffers.bytes_by_dtype = {{"int64", 24}};
  EXPECT_EQ(WeightBytes(s), 66u);
  // Three INT64_MAX values wrap to 2^63 - 3 in 64-bit arithmetic; the checked sum saturates.
  s.parameters.bytes_by_dtype = {{"float32", INT64_MAX}, {"float16", INT64_MAX}};
  s.buffers.bytes_by_dtype = {{"int64", INT64_MAX}};
  EXPECT_EQ(WeightBytes(s), UINT64_MAX);
  // ... so the memory check fails instead of passing.
  manifest::Manifest m;
  m.model = s;
  TargetProfile huge;
  huge.memory_total_bytes = std::uint64_t{1} << 62;
  auto rows = CheckTarget(m, Requirements{}, huge);
  ASSERT_FALSE(rows.empty());
  EXPECT_EQ(rows[0].check, "memory");
  EXPECT_EQ(rows[0].status, Status::kFail) << rows[0].message;
  // Negative entries (impossible after manifest::Parse) count as nothing.
  s.parameters.bytes_by_dtype = {{"float32", -5}};
  s.buffers.bytes_by_dtype = {};
  EXPECT_EQ(WeightBytes(s), 0u);
}

// ---- CheckTarget ----------------------------------------------------------------------------

// A model summary as pack would record it.
manifest::Manifest Model(std::uint64_t weights_bytes, std::vector<std::string> operators = {},
                         std::string device = "cpu") {
  manifest::Manifest m;
  m.name = "test-model";
  m.version = "1.0.0";
  m.model.parameters.bytes_by_dtype["float32"] = static_cast<std::int64_t>(weights_bytes * 3 / 4);
  m.model.buffers.bytes_by_dtype["float32"] =
      static_cast<std::int64_t>(weights_bytes - weights_bytes * 3 / 4);
  if (operators.empty()) operators = {"aten::add", "aten::linear", "prim::Constant"};
  std::sort(operators.begin(), operators.end());
  m.model.operators = operators;
  m.model.file_format_version = 10;
  m.model.runtime_version = "1.13.1";
  m.model.devices = {device};
  return m;
}

constexpr const char* kEdgeYaml = R"(
name: edge-tiny
os: linux
arch: aarch64
cpu: {model: Cortex-A53, cores: 4, features: [fp, asimd, neon]}
memory: {total: 1 GiB}
gpus: []
)";

constexpr const char* kServerYaml = R"(
name: cpu-server
os: linux
arch: x86_64
cpu: {model: "Intel(R) Xeon(R) Platinum 8375C", cores: 64, features: [sse4_2, avx, avx2, avx512f]}
memory: {total: 64 GiB, available: 60 GiB}
gpus: []
runtime:
  libtorch_version: "1.13.1"
  max_file_format_version: 10
  operators: [aten::add, aten::linear, aten::relu, aten::softmax, prim::CallMethod,
              prim::Constant, prim::GetAttr, prim::ListConstruct]
  blas: {name: openblas, library: /usr/lib/x86_64-linux-gnu/openblas-openmp/libblas.so.3,
         detail: "OpenBLAS 0.3.21 DYNAMIC_ARCH NO_AFFINITY Haswell MAX_THREADS=64, threading openmp"}
)";

constexpr const char* kGpuYaml = R"(
name: gpu-box
os: linux
arch: x86_64
cpu: {model: AMD EPYC 7742, cores: 128, features: [avx, avx2]}
memory: {total: 512 GiB, available: 480 GiB}
gpus:
  - {name: "NVIDIA A100-SXM4-80GB", memory: 80 GiB, compute_capability: "8.0",
     driver_version: "535.104", cuda_version: "12.2"}
runtime: {libtorch_version: "1.13.1", max_file_format_version: 10}
)";

TargetProfile Load(const char* yaml) {
  auto p = ParseProfile(yaml);
  EXPECT_TRUE(p.has_value()) << p.error().message;
  return p.value_or(TargetProfile{});
}

const Check& Row(const std::vector<Check>& rows, const std::string& name) {
  auto it = std::find_if(rows.begin(), rows.end(), [&](const Check& c) { return c.check == name; });
  if (it == rows.end()) {
    static const Check kMissing{"<missing>", "", Status::kFail, "no row " + name, "", ""};
    ADD_FAILURE() << "no row '" << name << "'";
    return kMissing;
  }
  return *it;
}

std::vector<std::string> Names(const std::vector<Check>& rows) {
  std::vector<std::string> out;
  for (const auto& c : rows) out.push_back(c.check);
  return out;
}

TEST(CheckTargetTest, SmallCpuModelPassesOnTheServer) {
  auto rows = CheckTarget(Model(10 * kMiB), Requirements{}, Load(kServerYaml));
  EXPECT_EQ(Names(rows),
            (std::vector<std::string>{"memory", "device", "cpu_features", "file_format",
                                      "runtime_version", "operators", "blas"}));
  for (const auto& c : rows) EXPECT_EQ(c.status, Status::kPass) << c.check << ": " << c.message;
  EXPECT_EQ(Row(rows, "device").message, "model runs on cpu");
  EXPECT_EQ(Row(rows, "cpu_features").message, "no CPU features required");
  EXPECT_EQ(Row(rows, "operators").message, "all 3 operators provided by target runtime 1.13.1");
  EXPECT_EQ(Row(rows, "file_format").message, "version 10, runtime reads <= 10");
  EXPECT_EQ(Row(rows, "memory").message,
            "needs 10.0 MiB (weights; no measured peak), target has 60.0 GiB");
  EXPECT_EQ(Row(rows, "memory").subject, "memory.available");
  EXPECT_EQ(Row(rows, "memory").expected, std::to_string(10 * kMiB));
  EXPECT_EQ(Row(rows, "memory").found, std::to_string(60 * kGiB));
  EXPECT_EQ(Row(rows, "blas").message,
            "openblas: OpenBLAS 0.3.21 DYNAMIC_ARCH NO_AFFINITY Haswell MAX_THREADS=64, threading "
            "openmp");
  EXPECT_EQ(Row(rows, "blas").subject, "runtime.blas");
}

// The BLAS decides speed, not whether the model runs: the row WARNs at worst, never FAILs.
TEST(CheckTargetTest, ReferenceBlasWarns) {
  TargetProfile p = Load(kServerYaml);
  p.runtime->blas = RuntimeBlas{"reference", "/usr/lib/x86_64-linux-gnu/blas/libblas.so.3.11.0",
                                "netlib reference BLAS"};
  auto rows = CheckTarget(Model(kMiB), Requirements{}, p);
  const Check& blas = Row(rows, "blas");
  EXPECT_EQ(blas.status, Status::kWarn);
  EXPECT_EQ(blas.message,
            "reference BLAS: batched inference will be ~10x slower; install libopenblas0-openmp");
  EXPECT_EQ(blas.found, "reference /usr/lib/x86_64-linux-gnu/blas/libblas.so.3.11.0");
  for (const auto& c : rows) {
    if (c.check != "blas") {
      EXPECT_EQ(c.status, Status::kPass) << c.check << ": " << c.message;
    }
  }

  p.runtime->blas = RuntimeBlas{"unknown", "/opt/vendor/libblas.so", ""};
  rows = CheckTarget(Model(kMiB), Requirements{}, p);
  EXPECT_EQ(Row(rows, "blas").status, Status::kWarn);
  EXPECT_EQ(Row(rows, "blas").message,
            "target runtime's BLAS is not identified (/opt/vendor/libblas.so); CPU inference "
            "speed not checked");

  // Not stated (profiles from before the field, hand-written ones): WARN, never a silent PASS.
  p.runtime->blas.reset();
  rows = CheckTarget(Model(kMiB), Requirements{}, p);
  EXPECT_EQ(Row(rows, "blas").status, Status::kWarn);
  EXPECT_NE(Row(rows, "blas").message.find("does not say which BLAS"), std::string::npos);
  rows = CheckTarget(Model(kMiB), Requirements{}, Load(kEdgeYaml));  // no runtime at all
  EXPECT_EQ(Row(rows, "blas").status, Status::kWarn);

  // GPU models do not use the CPU BLAS: no row.
  p.runtime->blas = RuntimeBlas{"reference", "", ""};
  rows = CheckTarget(Model(kMiB, {}, "cuda:0"), Requirements{}, Load(kGpuYaml));
  auto names = Names(rows);
  EXPECT_EQ(std::count(names.begin(), names.end(), "blas"), 0);
}

TEST(CheckTargetTest, ModelTooBigForTheEdgeDeviceFailsWithTheNumbers) {
  Requirements req;
  req.measured = Measured{};
  req.measured->peak_memory_bytes = 1395864371;                      // 1.3 GiB
  auto rows = CheckTarget(Model(1181116006), req, Load(kEdgeYaml));  // 1.1 GiB of weights
  const Check& memory = Row(rows, "memory");
  EXPECT_EQ(memory.status, Status::kFail);
  EXPECT_EQ(
      memory.message,
      "needs 1.30 GiB (1.10 GiB weights + 0.20 GiB measured activation), target has 1.00 GiB");
  EXPECT_EQ(memory.subject, "memory.total");
  EXPECT_EQ(memory.expected, "1395864371");
  EXPECT_EQ(memory.found, std::to_string(kGiB));
  // The edge profile says nothing about its runtime: those rows warn, never pass silently.
  EXPECT_EQ(Row(rows, "file_format").status, Status::kWarn);
  EXPECT_EQ(Row(rows, "runtime_version").status, Status::kWarn);
  EXPECT_EQ(Row(rows, "operators").status, Status::kWarn);
  EXPECT_EQ(Row(rows, "operators").message, "target profile lists no operators; not checked");
  EXPECT_EQ(Row(rows, "device").status, Status::kPass);
}

TEST(CheckTargetTest, SmallModelFitsTheEdgeDevice) {
  auto rows = CheckTarget(Model(100 * kMiB), Requirements{}, Load(kEdgeYaml));
  EXPECT_EQ(Row(rows, "memory").status, Status::kPass) << Row(rows, "memory").message;
  EXPECT_EQ(Row(rows, "device").status, Status::kPass);
  EXPECT_EQ(Row(rows, "cpu_features").status, Status::kPass);
}

TEST(CheckTargetTest, MemoryRowSaysWhenTheDeclaredMinimumDominatesOrHeadroomIsThin) {
  Requirements req;
  req.min_memory_bytes = 2 * kGiB;
  auto rows = CheckTarget(Model(10 * kMiB), req, Load(kEdgeYaml));
  EXPECT_EQ(Row(rows, "memory").status, Status::kFail);
  EXPECT_EQ(Row(rows, "memory").message, "needs 2.00 GiB (declared minimum), target has 1.00 GiB");

  req.min_memory_bytes = 950 * kMiB;
  rows = CheckTarget(Model(10 * kMiB), req, Load(kEdgeYaml));
  EXPECT_EQ(Row(rows, "memory").status, Status::kWarn);
  EXPECT_NE(Row(rows, "memory").message.find("less than 10% headroom"), std::string::npos);

  TargetProfile unknown = Load(kEdgeYaml);
  unknown.memory_total_bytes.reset();
  rows = CheckTarget(Model(10 * kMiB), Requirements{}, unknown);
  EXPECT_EQ(Row(rows, "memory").status, Status::kWarn);
  EXPECT_EQ(Row(rows, "memory").message,
            "needs 10.0 MiB (weights; no measured peak), target does not state its memory");
}

Requirements Cuda(const char* min_cc) {
  Requirements req;
  req.device = "cuda";
  if (min_cc != nullptr) req.min_gpu_compute_capability = min_cc;
  return req;
}

TEST(CheckTargetTest, CudaModelOnTheEdgeDeviceFails) {
  auto rows = CheckTarget(Model(10 * kMiB), Cuda("8.0"), Load(kEdgeYaml));
  EXPECT_EQ(Row(rows, "device").status, Status::kFail);
  EXPECT_EQ(Row(rows, "device").message, "model needs cuda >= 8.0, target has no GPU");

  // A model whose tensors live on cuda needs a GPU even without a declared device.
  rows = CheckTarget(Model(10 * kMiB, {}, "cuda:0"), Requirements{}, Load(kEdgeYaml));
  EXPECT_EQ(Row(rows, "device").status, Status::kFail);
  EXPECT_EQ(Row(rows, "device").message, "model needs cuda, target has no GPU");
}

TEST(CheckTargetTest, CudaModelOnTheGpuBoxPasses) {
  Requirements req = Cuda("8.0");
  req.min_gpu_memory_bytes = 40 * kGiB;
  auto rows = CheckTarget(Model(2 * kGiB, {}, "cuda:0"), req, Load(kGpuYaml));
  const Check& device = Row(rows, "device");
  EXPECT_EQ(device.status, Status::kPass) << device.message;
  EXPECT_EQ(device.message, "model needs cuda >= 8.0, target has NVIDIA A100-SXM4-80GB (8.0)");
  EXPECT_EQ(device.found, "8.0");
  const Check& gpu_memory = Row(rows, "gpu_memory");
  EXPECT_EQ(gpu_memory.status, Status::kPass) << gpu_memory.message;
  EXPECT_EQ(gpu_memory.message,
            "needs 40.0 GiB GPU memory, target's largest GPU NVIDIA A100-SXM4-80GB has 80.0 GiB");
  EXPECT_EQ(Names(rows), (std::vector<std::string>{"memory", "device", "gpu_memory", "cpu_features",
                                                   "file_format", "runtime_version", "operators"}));
}

TEST(CheckTargetTest, GpuTooOldOrTooSmallFails) {
  Requirements req = Cuda("9.0");
  req.min_gpu_memory_bytes = 100 * kGiB;
  auto rows = CheckTarget(Model(kGiB), req, Load(kGpuYaml));
  EXPECT_EQ(Row(rows, "device").status, Status::kFail);
  EXPECT_EQ(Row(rows, "device").message,
            "model needs cuda >= 9.0, target's best GPU NVIDIA A100-SXM4-80GB has compute "
            "capability 8.0");
  EXPECT_EQ(Row(rows, "gpu_memory").status, Status::kFail);

  // The best of several GPUs counts.
  TargetProfile mixed = Load(kGpuYaml);
  mixed.gpus->insert(mixed.gpus->begin(), Gpu{"Tesla T4", 16 * kGiB, "7.5", "", ""});
  rows = CheckTarget(Model(kGiB), Cuda("8.0"), mixed);
  EXPECT_EQ(Row(rows, "device").status, Status::kPass) << Row(rows, "device").message;
  rows = CheckTarget(Model(kGiB), Cuda("8.6"), mixed);
  EXPECT_EQ(Row(rows, "device").status, Status::kFail);
  EXPECT_NE(Row(rows, "device").message.find("A100-SXM4-80GB has compute capability 8.0"),
            std::string::npos);
}

TEST(CheckTargetTest, UnstatedGpusWarn) {
  TargetProfile p = Load(kServerYaml);
  p.gpus.reset();
  Requirements req = Cuda("8.0");
  req.min_gpu_memory_bytes = kGiB;
  auto rows = CheckTarget(Model(kGiB), req, p);
  EXPECT_EQ(Row(rows, "device").status, Status::kWarn);
  EXPECT_EQ(Row(rows, "device").message, "model needs cuda >= 8.0, target does not list its GPUs");
  EXPECT_EQ(Row(rows, "gpu_memory").status, Status::kWarn);

  p = Load(kGpuYaml);
  p.gpus->front().compute_capability.reset();
  rows = CheckTarget(Model(kGiB), Cuda("8.0"), p);
  EXPECT_EQ(Row(rows, "device").status, Status::kWarn);
}

TEST(CheckTargetTest, MissingCpuFeaturesFail) {
  Requirements req;
  req.cpu_features = {"avx2", "avx512f"};
  auto rows = CheckTarget(Model(kMiB), req, Load(kEdgeYaml));
  EXPECT_EQ(Row(rows, "cpu_features").status, Status::kFail);
  EXPECT_EQ(Row(rows, "cpu_features").message, "needs avx2, avx512f; target lacks avx2, avx512f");

  rows = CheckTarget(Model(kMiB), req, Load(kGpuYaml));
  EXPECT_EQ(Row(rows, "cpu_features").message, "needs avx2, avx512f; target lacks avx512f");
  EXPECT_EQ(Row(rows, "cpu_features").found, "avx512f");

  rows = CheckTarget(Model(kMiB), req, Load(kServerYaml));
  EXPECT_EQ(Row(rows, "cpu_features").status, Status::kPass);

  TargetProfile unknown = Load(kServerYaml);
  unknown.cpu_features.reset();
  rows = CheckTarget(Model(kMiB), req, unknown);
  EXPECT_EQ(Row(rows, "cpu_features").status, Status::kWarn);
}

TEST(CheckTargetTest, MissingOperatorFailsNamingIt) {
  auto m = Model(kMiB, {"aten::linear", "aten::scaled_dot_product_attention", "prim::Constant"});
  auto rows = CheckTarget(m, Requirements{}, Load(kServerYaml));
  const Check& ops = Row(rows, "operators");
  EXPECT_EQ(ops.status, Status::kFail);
  EXPECT_EQ(ops.message,
            "aten::scaled_dot_product_attention not provided by target runtime 1.13.1");
  EXPECT_EQ(ops.found, "aten::scaled_dot_product_attention");

  std::vector<std::string> many = {"aten::add"};
  for (char c = 'a'; c <= 'h'; ++c) many.push_back(std::string("aten::missing_") + c);
  rows = CheckTarget(Model(kMiB, many), Requirements{}, Load(kServerYaml));
  EXPECT_EQ(Row(rows, "operators").message,
            "aten::missing_a, aten::missing_b, aten::missing_c, aten::missing_d, aten::missing_e "
            "and 3 more not provided by target runtime 1.13.1");
}

TEST(CheckTargetTest, GraphNodeKindsAreCheckedStrictly) {
  // prim:: kinds are operators the runtime must list too.
  auto m = Model(kMiB, {"aten::add", "prim::If", "prim::Constant"});
  auto rows = CheckTarget(m, Requirements{}, Load(kServerYaml));
  EXPECT_EQ(Row(rows, "operators").status, Status::kFail);
  EXPECT_EQ(Row(rows, "operators").message, "prim::If not provided by target runtime 1.13.1");
}

TEST(CheckTargetTest, FileFormatTooNewFails) {
  auto m = Model(kMiB);
  m.model.file_format_version = 11;
  auto rows = CheckTarget(m, Requirements{}, Load(kServerYaml));
  EXPECT_EQ(Row(rows, "file_format").status, Status::kFail);
  EXPECT_EQ(Row(rows, "file_format").message, "version 11, runtime reads <= 10");

  m.model.file_format_version = 10;
  TargetProfile old_runtime = Load(kServerYaml);
  old_runtime.runtime->max_file_format_version = 8;
  rows = CheckTarget(m, Requirements{}, old_runtime);
  EXPECT_EQ(Row(rows, "file_format").status, Status::kFail);
  EXPECT_EQ(Row(rows, "file_format").message, "version 10, runtime reads <= 8");
  EXPECT_EQ(Row(rows, "file_format").expected, "10");
  EXPECT_EQ(Row(rows, "file_format").found, "8");

  old_runtime.runtime->max_file_format_version.reset();
  rows = CheckTarget(m, Requirements{}, old_runtime);
  EXPECT_EQ(Row(rows, "file_format").status, Status::kWarn);
}

TEST(CheckTargetTest, OlderTargetLibtorchWarns) {
  auto m = Model(kMiB);
  m.model.runtime_version = "1.13.0";
  TargetProfile p = Load(kServerYaml);
  p.runtime->libtorch_version = "1.12.1";
  auto rows = CheckTarget(m, Requirements{}, p);
  EXPECT_EQ(Row(rows, "runtime_version").status, Status::kWarn);
  EXPECT_EQ(Row(rows, "runtime_version").message, "packed with libtorch 1.13.0, target has 1.12.1");

  p.runtime->libtorch_version = "1.13.0+cpu";
  rows = CheckTarget(m, Requirements{}, p);
  EXPECT_EQ(Row(rows, "runtime_version").status, Status::kPass);
  p.runtime->libtorch_version = "1.9.0";  // numeric, not lexical: 9 < 13
  rows = CheckTarget(m, Requirements{}, p);
  EXPECT_EQ(Row(rows, "runtime_version").status, Status::kWarn);
  p.runtime->libtorch_version = "2.0.0";
  rows = CheckTarget(m, Requirements{}, p);
  EXPECT_EQ(Row(rows, "runtime_version").status, Status::kPass);
}

TEST(CheckTargetTest, LatencyIsCheckedOnlyAgainstADeclaredBudget) {
  Requirements req;
  req.measured = Measured{};
  req.measured->forward_latency_ms = 12.3;
  req.measured->machine = "Intel(R) Xeon(R) CPU @ 2.20GHz";
  auto rows = CheckTarget(Model(kMiB), req, Load(kServerYaml));
  auto names = Names(rows);
  EXPECT_EQ(std::count(names.begin(), names.end(), "latency"), 0);

  req.latency_budget_ms = 10;
  rows = CheckTarget(Model(kMiB), req, Load(kServerYaml));
  const Check& latency = Row(rows, "latency");
  EXPECT_EQ(latency.status, Status::kWarn);
  EXPECT_EQ(
      latency.message.rfind("measured 12.3 ms on Intel(R) Xeon(R) CPU @ 2.20GHz, budget 10 ms", 0),
      0u)
      << latency.message;

  req.latency_budget_ms = 20;
  rows = CheckTarget(Model(kMiB), req, Load(kServerYaml));
  EXPECT_EQ(Row(rows, "latency").status, Status::kPass);

  req.measured.reset();
  rows = CheckTarget(Model(kMiB), req, Load(kServerYaml));
  EXPECT_EQ(Row(rows, "latency").status, Status::kWarn);
}

TEST(CheckTargetTest, EmptyProfileWarnsInsteadOfPassing) {
  Requirements req;
  req.cpu_features = {"avx2"};
  auto rows = CheckTarget(Model(kMiB), req, TargetProfile{});
  for (const auto& c : rows) {
    if (c.check == "device") {
      EXPECT_EQ(c.status, Status::kPass);  // a cpu model needs nothing from the target
    } else {
      EXPECT_EQ(c.status, Status::kWarn) << c.check << ": " << c.message;
    }
  }
}

}  // namespace
}  // namespace dlsys::hw
