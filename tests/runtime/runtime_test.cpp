// Tests the real runtime module through the torch-free interface (runtime/runtime.h): this
// binary links only dlsys_runtime_api and loads libdlsys_runtime.so with dlopen, as dlsys does.
// Fixtures come from tests/fixtures/make_model.
#include "runtime/runtime.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "test_tmp.h"

extern char** environ;

namespace dlsys::runtime {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

// Runs argv[0] with argv, adding `env` to this process's environment (replacing variables of the
// same name); returns the exit status.
int Spawn(const std::vector<std::string>& argv, const std::vector<std::string>& env = {}) {
  std::vector<char*> args;
  for (const std::string& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
  args.push_back(nullptr);
  std::vector<std::string> env_strings = env;
  auto overridden = [&](std::string_view entry) {
    return std::any_of(env.begin(), env.end(), [&](const std::string& e) {
      return entry.substr(0, entry.find('=') + 1) == e.substr(0, e.find('=') + 1);
    });
  };
  for (char** e = environ; *e != nullptr; ++e) {
    if (!overridden(*e)) env_strings.emplace_back(*e);
  }
  std::vector<char*> envp;
  for (const std::string& e : env_strings) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);
  pid_t pid = 0;
  if (posix_spawn(&pid, args[0], nullptr, nullptr, args.data(), envp.data()) != 0) return -1;
  int status = 0;
  if (waitpid(pid, &status, 0) != pid) return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

std::vector<std::byte> ReadBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::vector<char> chars((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<std::byte> bytes(chars.size());
  if (!chars.empty()) std::memcpy(bytes.data(), chars.data(), chars.size());
  return bytes;
}

// Fixture bytes by kind, generated once per process (make_model takes ~1 s: it loads libtorch).
const std::vector<std::byte>& ModelBytes(const std::string& kind,
                                         const std::vector<std::string>& options = {}) {
  static std::mutex mutex;
  static testing::TempDir dir;
  static std::map<std::string, std::vector<std::byte>> cache;
  std::lock_guard<std::mutex> lock(mutex);
  std::string key = kind;
  for (const std::string& option : options) key += " " + option;
  auto it = cache.find(key);
  if (it != cache.end()) return it->second;
  std::string out = dir / (kind + std::to_string(cache.size()) + ".pt");
  std::vector<std::string> argv = {MAKE_MODEL_BIN, kind, out};
  argv.insert(argv.end(), options.begin(), options.end());
  EXPECT_EQ(Spawn(argv), 0) << "make_model " << key;
  return cache.emplace(key, ReadBytes(out)).first->second;
}

Runtime* Rt() {
  setenv("DLSYS_RUNTIME_MODULE", DLSYS_RUNTIME_MODULE_PATH, 1);
  Result<Runtime*> runtime = GetRuntime();
  if (!runtime) {
    ADD_FAILURE() << runtime.error().message;
    return nullptr;
  }
  return *runtime;
}

std::unique_ptr<Model> LoadKind(const std::string& kind,
                                const std::vector<std::string>& options = {}) {
  Runtime* runtime = Rt();
  if (runtime == nullptr) return nullptr;
  Result<std::unique_ptr<Model>> model = runtime->Load(ModelBytes(kind, options), {});
  if (!model) {
    ADD_FAILURE() << model.error().message;
    return nullptr;
  }
  return std::move(*model);
}

template <typename T>
Tensor MakeTensor(std::string name, DType dtype, std::vector<std::int64_t> shape,
                  const std::vector<T>& values) {
  Tensor tensor{std::move(name), dtype, std::move(shape), {}};
  tensor.data.resize(values.size() * sizeof(T));
  if (!values.empty()) std::memcpy(tensor.data.data(), values.data(), tensor.data.size());
  return tensor;
}

Tensor F32(std::string name, std::vector<std::int64_t> shape, const std::vector<float>& values) {
  return MakeTensor(std::move(name), DType::kFloat32, std::move(shape), values);
}

template <typename T>
std::vector<T> Values(const Tensor& tensor) {
  std::vector<T> values(tensor.data.size() / sizeof(T));
  if (!values.empty()) std::memcpy(values.data(), tensor.data.data(), tensor.data.size());
  return values;
}

// The mlp fixture's weights, as tests/fixtures/make_model.cpp defines them.
std::vector<float> MlpByHand(const std::vector<float>& x, int rows, float scale = 0) {
  std::vector<float> y;
  for (int n = 0; n < rows; ++n) {
    float h[8];
    for (int i = 0; i < 8; ++i) {
      float sum = 0;
      for (int j = 0; j < 4; ++j) sum += x[n * 4 + j] * (((4 * i + j) % 7 - 3) / 4.0f);
      sum += (i % 3 - 1) / 2.0f;
      h[i] = sum > 0 ? sum : 0;
    }
    for (int k = 0; k < 2; ++k) {
      float sum = 0;
      for (int i = 0; i < 8; ++i) sum += h[i] * (((8 * k + i) % 5 - 2) / 2.0f);
      sum += k == 0 ? 0.25f : -0.25f;
      y.push_back(sum + scale);
    }
  }
  return y;
}

const std::vector<float> kMlpInput = {1, 2, 3, 4, -1, 0.5, 0.25, -2, 0, 0, 0, 0};

// --- dtypes -------------------------------------------------------------------------------------

TEST(DTypeTest, ParsesManifestAndKServeNames) {
  struct Row {
    const char* name;
    const char* kserve;
    DType dtype;
    std::size_t size;
  };
  const Row rows[] = {
      {"float32", "FP32", DType::kFloat32, 4}, {"float64", "FP64", DType::kFloat64, 8},
      {"float16", "FP16", DType::kFloat16, 2}, {"bfloat16", "BF16", DType::kBFloat16, 2},
      {"int8", "INT8", DType::kInt8, 1},       {"uint8", "UINT8", DType::kUInt8, 1},
      {"int16", "INT16", DType::kInt16, 2},    {"int32", "INT32", DType::kInt32, 4},
      {"int64", "INT64", DType::kInt64, 8},    {"bool", "BOOL", DType::kBool, 1},
  };
  for (const Row& row : rows) {
    Result<DType> by_name = ParseDType(row.name);
    Result<DType> by_kserve = ParseDType(row.kserve);
    ASSERT_TRUE(by_name) << row.name;
    ASSERT_TRUE(by_kserve) << row.kserve;
    EXPECT_EQ(*by_name, row.dtype) << row.name;
    EXPECT_EQ(*by_kserve, row.dtype) << row.kserve;
    EXPECT_STREQ(DTypeName(row.dtype), row.name);
    EXPECT_EQ(DTypeSize(row.dtype), row.size) << row.name;
  }
}

TEST(DTypeTest, RejectsUnknownNamesListingValidOnes) {
  for (const char* bad : {"float", "", "Float32", "fp32", "complex64"}) {
    Result<DType> dtype = ParseDType(bad);
    ASSERT_FALSE(dtype) << bad;
    EXPECT_EQ(dtype.error().code, Code::kInvalid);
    EXPECT_THAT(dtype.error().message, HasSubstr("float32"));
    EXPECT_THAT(dtype.error().message, HasSubstr("BOOL"));
  }
}

TEST(DTypeTest, ElementCount) {
  EXPECT_EQ(ElementCount({}), 1);
  EXPECT_EQ(ElementCount({3, 4}), 12);
  EXPECT_EQ(ElementCount({0, 5}), 0);
  EXPECT_EQ(ElementCount({-1, 4}), -1);
  EXPECT_EQ(ElementCount({std::int64_t{1} << 40, std::int64_t{1} << 40}), -1);
}

// --- loader (in child processes, so each starts with nothing loaded) ----------------------------

// Runs only when re-executed by LoaderTest with DLSYS_LOADER_CHILD set.
TEST(LoaderChild, Missing) {
  if (std::getenv("DLSYS_LOADER_CHILD") == nullptr) GTEST_SKIP() << "run by LoaderTest";
  EXPECT_FALSE(RuntimeLoaded());
  Result<Runtime*> runtime = GetRuntime();
  ASSERT_FALSE(runtime);
  EXPECT_EQ(runtime.error().code, Code::kUnavailable);
  EXPECT_THAT(runtime.error().message, HasSubstr("runtime module was not found"));
  std::string details;
  for (const std::string& line : runtime.error().details) details += line + "\n";
  EXPECT_THAT(details, HasSubstr("/nonexistent/libdlsys_runtime.so"));
  EXPECT_THAT(details, HasSubstr("No such file"));  // dlerror() text
  EXPECT_THAT(details, HasSubstr("DLSYS_WITH_RUNTIME=ON"));
  EXPECT_FALSE(RuntimeLoaded());
  Result<Runtime*> again = GetRuntime();  // cached
  EXPECT_FALSE(again);
}

TEST(LoaderChild, Present) {
  if (std::getenv("DLSYS_LOADER_CHILD") == nullptr) GTEST_SKIP() << "run by LoaderTest";
  EXPECT_FALSE(RuntimeLoaded());
  Result<Runtime*> runtime = GetRuntime();
  ASSERT_TRUE(runtime) << runtime.error().message;
  EXPECT_TRUE(RuntimeLoaded());
  Result<Runtime*> again = GetRuntime();
  ASSERT_TRUE(again);
  EXPECT_EQ(*again, *runtime);
}

std::string SelfExe() {
  char buf[4096];
  ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  return n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string();
}

TEST(LoaderTest, MissingModuleIsUnavailableAndNamesPaths) {
  EXPECT_EQ(
      Spawn({SelfExe(), "--gtest_filter=LoaderChild.Missing"},
            {"DLSYS_LOADER_CHILD=1", "DLSYS_RUNTIME_MODULE=/nonexistent/libdlsys_runtime.so"}),
      0);
}

TEST(LoaderTest, LoadsModuleOnFirstUseOnly) {
  EXPECT_EQ(Spawn({SelfExe(), "--gtest_filter=LoaderChild.Present"},
                  {"DLSYS_LOADER_CHILD=1",
                   std::string("DLSYS_RUNTIME_MODULE=") + DLSYS_RUNTIME_MODULE_PATH}),
            0);
}

// --- runtime ------------------------------------------------------------------------------------

TEST(RuntimeTest, VersionAndOperators) {
  Runtime* runtime = Rt();
  ASSERT_NE(runtime, nullptr);
  EXPECT_THAT(runtime->Version(), ::testing::MatchesRegex("[0-9]+\\.[0-9]+\\.[0-9]+"));
  std::vector<std::string> ops = runtime->Operators();
  EXPECT_GT(ops.size(), 1000u);
  EXPECT_TRUE(std::is_sorted(ops.begin(), ops.end()));
  EXPECT_EQ(std::adjacent_find(ops.begin(), ops.end()), ops.end());
  EXPECT_TRUE(std::binary_search(ops.begin(), ops.end(), "aten::relu"));
  EXPECT_TRUE(std::binary_search(ops.begin(), ops.end(), "aten::matmul"));
  // Interpreter built-ins are listed too, though they are not registered operators.
  for (const char* op : {"prim::Constant", "prim::GetAttr", "prim::CallMethod", "prim::If",
                         "prim::Loop", "prim::ListConstruct", "prim::TupleConstruct"}) {
    EXPECT_TRUE(std::binary_search(ops.begin(), ops.end(), op)) << op;
  }
}

TEST(RuntimeTest, RejectsEmptyAndGarbageBytes) {
  Runtime* runtime = Rt();
  ASSERT_NE(runtime, nullptr);
  Result<std::unique_ptr<Model>> empty = runtime->Load({}, {});
  ASSERT_FALSE(empty);
  EXPECT_EQ(empty.error().code, Code::kInvalid);
  EXPECT_EQ(empty.error().message, "model file is empty");

  std::string text = "this is not a TorchScript archive";
  std::vector<std::byte> garbage(text.size());
  std::memcpy(garbage.data(), text.data(), text.size());
  Result<std::unique_ptr<Model>> bad = runtime->Load(garbage, {});
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, Code::kInvalid);
  EXPECT_THAT(bad.error().message, HasSubstr("not a loadable TorchScript model: "));
  EXPECT_EQ(bad.error().message.find('\n'), std::string::npos);

  const std::vector<std::byte>& mlp = ModelBytes("mlp");
  std::vector<std::byte> truncated(mlp.begin(), mlp.begin() + mlp.size() / 2);
  Result<std::unique_ptr<Model>> cut = runtime->Load(truncated, {});
  ASSERT_FALSE(cut);
  EXPECT_EQ(cut.error().code, Code::kInvalid);
}

TEST(RuntimeTest, DeviceOptions) {
  Runtime* runtime = Rt();
  ASSERT_NE(runtime, nullptr);
  Result<std::unique_ptr<Model>> tpu = runtime->Load(ModelBytes("mlp"), {.device = "tpu"});
  ASSERT_FALSE(tpu);
  EXPECT_EQ(tpu.error().code, Code::kUsage);
  Result<std::unique_ptr<Model>> cuda = runtime->Load(ModelBytes("mlp"), {.device = "cuda"});
  if (!cuda) {
    EXPECT_EQ(cuda.error().code, Code::kUnavailable) << cuda.error().message;
  }
}

TEST(RuntimeTest, MlpSummary) {
  std::unique_ptr<Model> model = LoadKind("mlp");
  ASSERT_NE(model, nullptr);
  const ModelSummary& summary = model->Summary();
  ASSERT_EQ(summary.methods.size(), 1u);
  EXPECT_EQ(summary.methods[0].name, "forward");
  EXPECT_EQ(summary.methods[0].arg_names, std::vector<std::string>{"x"});
  EXPECT_EQ(summary.methods[0].schema, "forward(Tensor x) -> Tensor");
  EXPECT_EQ(summary.parameters.count, 4);
  EXPECT_EQ(summary.parameters.elements, 8 * 4 + 8 + 2 * 8 + 2);
  EXPECT_EQ(summary.parameters.bytes_by_dtype,
            (std::map<std::string, std::int64_t>{{"float32", (8 * 4 + 8 + 2 * 8 + 2) * 4}}));
  EXPECT_EQ(summary.buffers.count, 0);
  EXPECT_TRUE(summary.buffers.bytes_by_dtype.empty());
  const std::vector<std::string>& ops = summary.operators;
  EXPECT_TRUE(std::is_sorted(ops.begin(), ops.end()));
  for (const char* op : {"aten::relu", "aten::matmul", "aten::t", "aten::add"}) {
    EXPECT_TRUE(std::binary_search(ops.begin(), ops.end(), op)) << op;
  }
  for (const std::string& op : ops) EXPECT_EQ(op.rfind("attr::", 0), std::string::npos) << op;
  EXPECT_GT(summary.file_format_version, 0);
  EXPECT_EQ(summary.runtime_version, Rt()->Version());
  EXPECT_EQ(summary.devices, std::vector<std::string>{"cpu"});
}

TEST(RuntimeTest, BigModelSummaryCountsEveryByte) {
  std::unique_ptr<Model> model = LoadKind("big", {"--weight-bytes", "1048576"});
  ASSERT_NE(model, nullptr);
  EXPECT_EQ(model->Summary().parameters.bytes_by_dtype.at("float32"), 1048576);
  EXPECT_EQ(model->Summary().parameters.elements, 1048576 / 4);
  Result<std::vector<Tensor>> out = model->Run("forward", {F32("x", {2}, {1.5f, -3})});
  ASSERT_TRUE(out) << out.error().message;
  EXPECT_EQ(Values<float>((*out)[0]), (std::vector<float>{1.5f, -3}));
}

TEST(RuntimeTest, MlpRunMatchesHandComputation) {
  std::unique_ptr<Model> model = LoadKind("mlp");
  ASSERT_NE(model, nullptr);
  Result<std::vector<Tensor>> out = model->Run("forward", {F32("x", {3, 4}, kMlpInput)});
  ASSERT_TRUE(out) << out.error().message;
  ASSERT_EQ(out->size(), 1u);
  const Tensor& y = (*out)[0];
  EXPECT_EQ(y.name, "output0");
  EXPECT_EQ(y.dtype, DType::kFloat32);
  EXPECT_EQ(y.shape, (std::vector<std::int64_t>{3, 2}));
  std::vector<float> got = Values<float>(y);
  std::vector<float> want = MlpByHand(kMlpInput, 3);
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) EXPECT_FLOAT_EQ(got[i], want[i]) << i;
}

TEST(RuntimeTest, NoiseAddsScale) {
  std::unique_ptr<Model> model = LoadKind("noise", {"--scale", "0.5"});
  ASSERT_NE(model, nullptr);
  Result<std::vector<Tensor>> out = model->Run("forward", {F32("x", {3, 4}, kMlpInput)});
  ASSERT_TRUE(out) << out.error().message;
  std::vector<float> got = Values<float>((*out)[0]);
  std::vector<float> want = MlpByHand(kMlpInput, 3, 0.5f);
  for (size_t i = 0; i < want.size(); ++i) EXPECT_FLOAT_EQ(got[i], want[i]) << i;
}

TEST(RuntimeTest, RandomDriftsWithinScale) {
  std::unique_ptr<Model> model = LoadKind("random", {"--scale", "0.5"});
  ASSERT_NE(model, nullptr);
  Result<std::vector<Tensor>> first = model->Run("forward", {F32("x", {3, 4}, kMlpInput)});
  Result<std::vector<Tensor>> second = model->Run("forward", {F32("x", {3, 4}, kMlpInput)});
  ASSERT_TRUE(first) << first.error().message;
  ASSERT_TRUE(second) << second.error().message;
  std::vector<float> a = Values<float>((*first)[0]);
  std::vector<float> b = Values<float>((*second)[0]);
  std::vector<float> want = MlpByHand(kMlpInput, 3);
  ASSERT_EQ(a.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_GE(a[i], want[i] - 1e-5f) << i;
    EXPECT_LE(a[i], want[i] + 0.5f + 1e-5f) << i;
  }
  EXPECT_NE(a, b) << "two runs of the random fixture gave identical outputs";
}

// Operators() lists the interpreter's own node kinds (interned prim:: symbols) next to the
// registered operators, but no other interned symbols.
TEST(RuntimeTest, OperatorsListPrimNodeKinds) {
  Runtime* runtime = Rt();
  ASSERT_NE(runtime, nullptr);
  std::vector<std::string> ops = runtime->Operators();
  EXPECT_TRUE(std::is_sorted(ops.begin(), ops.end()));
  EXPECT_EQ(std::adjacent_find(ops.begin(), ops.end()), ops.end()) << "duplicates";
  auto has = [&](const std::string& name) {
    return std::binary_search(ops.begin(), ops.end(), name);
  };
  for (const char* prim :
       {"prim::Constant", "prim::GetAttr", "prim::SetAttr", "prim::If", "prim::Loop",
        "prim::CallMethod", "prim::CallFunction", "prim::TupleConstruct", "prim::ListConstruct",
        "prim::DictConstruct", "prim::Return", "prim::Param"}) {
    EXPECT_TRUE(has(prim)) << prim;
  }
  EXPECT_TRUE(has("aten::linear"));  // a registered operator
  // Interned, but names of attributes ("attr::value"), scopes and namespaces.
  for (const std::string& op : ops) {
    for (const char* prefix : {"attr::", "scope::", "namespaces::", "dimname::"}) {
      EXPECT_NE(op.rfind(prefix, 0), 0u) << op;
    }
  }
}

TEST(RuntimeTest, MaxFileFormatVersionCoversLoadedModels) {
  Runtime* runtime = Rt();
  ASSERT_NE(runtime, nullptr);
  std::unique_ptr<Model> model = LoadKind("mlp");
  ASSERT_NE(model, nullptr);
  EXPECT_GE(runtime->MaxFileFormatVersion(), model->Summary().file_format_version);
  EXPECT_GT(model->Summary().file_format_version, 0);
}

// Every node kind a loadable model's summary lists must be something this runtime provides,
// or a target profile taken from this runtime would reject models it runs.
class OperatorsCoverSummaryTest : public ::testing::TestWithParam<std::vector<std::string>> {};

TEST_P(OperatorsCoverSummaryTest, SummaryOperatorsAreProvided) {
  std::vector<std::string> argv = GetParam();
  std::string kind = argv.front();
  argv.erase(argv.begin());
  Runtime* runtime = Rt();
  ASSERT_NE(runtime, nullptr);
  std::unique_ptr<Model> model = LoadKind(kind, argv);
  ASSERT_NE(model, nullptr);
  std::vector<std::string> provided = runtime->Operators();
  const std::vector<std::string>& used = model->Summary().operators;
  EXPECT_FALSE(used.empty());
  std::vector<std::string> missing;
  std::set_difference(used.begin(), used.end(), provided.begin(), provided.end(),
                      std::back_inserter(missing));
  EXPECT_THAT(missing, ::testing::IsEmpty()) << kind;
}

INSTANTIATE_TEST_SUITE_P(
    EveryFixture, OperatorsCoverSummaryTest,
    ::testing::Values(std::vector<std::string>{"mlp"},
                      std::vector<std::string>{"noise", "--scale", "2"},
                      std::vector<std::string>{"random", "--scale", "1e-9"},
                      std::vector<std::string>{"big", "--weight-bytes", "4096"},
                      std::vector<std::string>{"two_inputs"}, std::vector<std::string>{"dict_out"},
                      std::vector<std::string>{"dict_unsorted"},
                      std::vector<std::string>{"failing"}, std::vector<std::string>{"mlp16"},
                      std::vector<std::string>{"mlp_wide1m"}, std::vector<std::string>{"multi_io"},
                      std::vector<std::string>{"int_bool"}),
    [](const ::testing::TestParamInfo<std::vector<std::string>>& info) {
      return info.param.front();
    });

TEST(RuntimeTest, LoneArgumentTakesAnyName) {
  std::unique_ptr<Model> model = LoadKind("mlp");
  ASSERT_NE(model, nullptr);
  Result<std::vector<Tensor>> out = model->Run("forward", {F32("input__0", {3, 4}, kMlpInput)});
  ASSERT_TRUE(out) << out.error().message;
  EXPECT_EQ((*out)[0].shape, (std::vector<std::int64_t>{3, 2}));
}

TEST(RuntimeTest, BytesMayBeFreedAfterLoad) {
  Runtime* runtime = Rt();
  ASSERT_NE(runtime, nullptr);
  auto copy = std::make_unique<std::vector<std::byte>>(ModelBytes("mlp"));
  Result<std::unique_ptr<Model>> model = runtime->Load(*copy, {});
  ASSERT_TRUE(model) << model.error().message;
  std::fill(copy->begin(), copy->end(), std::byte{0});
  copy.reset();
  Result<std::vector<Tensor>> out = (*model)->Run("forward", {F32("x", {3, 4}, kMlpInput)});
  ASSERT_TRUE(out) << out.error().message;
  EXPECT_FLOAT_EQ(Values<float>((*out)[0])[0], MlpByHand(kMlpInput, 3)[0]);
}

TEST(RuntimeTest, UnknownMethod) {
  std::unique_ptr<Model> model = LoadKind("mlp");
  ASSERT_NE(model, nullptr);
  Result<std::vector<Tensor>> out = model->Run("predict", {F32("x", {1, 4}, {1, 2, 3, 4})});
  ASSERT_FALSE(out);
  EXPECT_EQ(out.error().code, Code::kInvalid);
  EXPECT_EQ(out.error().message, "model has no method 'predict'; it has: forward");
}

TEST(RuntimeTest, WrongShapeFailsInsideModel) {
  std::unique_ptr<Model> model = LoadKind("mlp");
  ASSERT_NE(model, nullptr);
  Result<std::vector<Tensor>> out = model->Run("forward", {F32("x", {1, 3}, {1, 2, 3})});
  ASSERT_FALSE(out);
  EXPECT_EQ(out.error().code, Code::kInvalid);
  EXPECT_THAT(out.error().message, HasSubstr("model failed running 'forward': "));
  EXPECT_EQ(out.error().message.find('\n'), std::string::npos);
}

TEST(RuntimeTest, TwoInputsByName) {
  std::unique_ptr<Model> model = LoadKind("two_inputs");
  ASSERT_NE(model, nullptr);
  EXPECT_EQ(model->Summary().methods[0].arg_names, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(model->Summary().methods[0].schema,
            "forward(Tensor a, Tensor b) -> ((Tensor, Tensor))");  // one tuple-typed return
  Result<std::vector<Tensor>> out =
      model->Run("forward", {MakeTensor<std::int64_t>("b", DType::kInt64, {3}, {4, 5, 6}),
                             MakeTensor<std::int64_t>("a", DType::kInt64, {3}, {1, 2, 3})});
  ASSERT_TRUE(out) << out.error().message;
  ASSERT_EQ(out->size(), 2u);
  EXPECT_EQ((*out)[0].name, "output0");
  EXPECT_EQ((*out)[1].name, "output1");
  EXPECT_EQ((*out)[0].dtype, DType::kInt64);
  EXPECT_EQ(Values<std::int64_t>((*out)[0]), (std::vector<std::int64_t>{5, 7, 9}));
  EXPECT_EQ(Values<std::int64_t>((*out)[1]), (std::vector<std::int64_t>{4, 10, 18}));
}

TEST(RuntimeTest, MissingExtraAndMalformedInputs) {
  std::unique_ptr<Model> model = LoadKind("two_inputs");
  ASSERT_NE(model, nullptr);
  Tensor a = F32("a", {2}, {1, 2});
  Tensor b = F32("b", {2}, {3, 4});

  Result<std::vector<Tensor>> missing = model->Run("forward", {a});
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, Code::kInvalid);
  EXPECT_THAT(missing.error().message, HasSubstr("missing input 'b'"));

  Result<std::vector<Tensor>> extra = model->Run("forward", {a, b, F32("c", {2}, {5, 6})});
  ASSERT_FALSE(extra);
  EXPECT_EQ(extra.error().code, Code::kInvalid);
  EXPECT_THAT(extra.error().message, HasSubstr("unexpected input 'c'"));

  Result<std::vector<Tensor>> twice = model->Run("forward", {a, a, b});
  ASSERT_FALSE(twice);
  EXPECT_THAT(twice.error().message, HasSubstr("'a' is given twice"));

  Tensor short_b = b;
  short_b.data.resize(4);
  Result<std::vector<Tensor>> size = model->Run("forward", {a, short_b});
  ASSERT_FALSE(size);
  EXPECT_EQ(size.error().code, Code::kInvalid);
  EXPECT_THAT(size.error().message, HasSubstr("input 'b' has 4 bytes"));

  Tensor dynamic = F32("b", {-1}, {});
  Result<std::vector<Tensor>> shape = model->Run("forward", {a, dynamic});
  ASSERT_FALSE(shape);
  EXPECT_THAT(shape.error().message, HasSubstr("invalid shape [-1]"));
}

TEST(RuntimeTest, DictOutputsNamedByKey) {
  std::unique_ptr<Model> model = LoadKind("dict_out");
  ASSERT_NE(model, nullptr);
  Result<std::vector<Tensor>> out = model->Run("forward", {F32("x", {2}, {1, -2})});
  ASSERT_TRUE(out) << out.error().message;
  ASSERT_EQ(out->size(), 2u);
  EXPECT_EQ((*out)[0].name, "double");
  EXPECT_EQ((*out)[1].name, "neg");
  EXPECT_EQ(Values<float>((*out)[0]), (std::vector<float>{2, -4}));
  EXPECT_EQ(Values<float>((*out)[1]), (std::vector<float>{-1, 2}));
}

// Dict outputs follow the dict's insertion order, not sorted order: golden outputs are paired
// with outputs by position, so sorting would pair them with the wrong tensors.
TEST(RuntimeTest, DictOutputsKeepDictOrder) {
  std::unique_ptr<Model> model = LoadKind("dict_unsorted");
  ASSERT_NE(model, nullptr);
  Result<std::vector<Tensor>> out = model->Run("forward", {F32("x", {3}, {1, -2, 0.5})});
  ASSERT_TRUE(out) << out.error().message;
  std::vector<std::string> names;
  for (const Tensor& tensor : *out) names.push_back(tensor.name);
  ASSERT_EQ(names, (std::vector<std::string>{"zeta", "alpha"}));
  EXPECT_EQ((*out)[0].dtype, DType::kFloat32);
  EXPECT_EQ((*out)[0].shape, (std::vector<std::int64_t>{3}));
  EXPECT_EQ(Values<float>((*out)[0]), (std::vector<float>{2, -4, 1}));    // 2x
  EXPECT_EQ(Values<float>((*out)[1]), (std::vector<float>{2, -1, 1.5}));  // x + 1
}

TEST(RuntimeTest, FailingModelIsInvalidWithItsMessage) {
  std::unique_ptr<Model> model = LoadKind("failing");
  ASSERT_NE(model, nullptr);
  Result<std::vector<Tensor>> out = model->Run("forward", {F32("x", {1}, {1})});
  ASSERT_FALSE(out);
  EXPECT_EQ(out.error().code, Code::kInvalid);
  EXPECT_THAT(out.error().message, HasSubstr("model failed running 'forward': "));
  EXPECT_THAT(out.error().message, HasSubstr("boom"));
  EXPECT_EQ(out.error().message.find('\n'), std::string::npos) << out.error().message;
}

TEST(RuntimeTest, ConcurrentRunsAgree) {
  std::unique_ptr<Model> model = LoadKind("mlp");
  ASSERT_NE(model, nullptr);
  const Tensor input = F32("x", {3, 4}, kMlpInput);
  Result<std::vector<Tensor>> reference = model->Run("forward", {input});
  ASSERT_TRUE(reference) << reference.error().message;
  std::vector<int> mismatches(8, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 50; ++i) {
        Result<std::vector<Tensor>> out = model->Run("forward", {input});
        if (!out || (*out)[0].data != (*reference)[0].data) ++mismatches[t];
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(mismatches, std::vector<int>(8, 0));
}

TEST(RuntimeTest, SetThreads) {
  Runtime* runtime = Rt();
  ASSERT_NE(runtime, nullptr);
  EXPECT_TRUE(runtime->SetThreads({.intra_op = 1}));
  EXPECT_TRUE(runtime->SetThreads({}));
  Result<void> negative = runtime->SetThreads({.intra_op = -1});
  ASSERT_FALSE(negative);
  EXPECT_EQ(negative.error().code, Code::kUsage);
}

// Inter-op threads are fixed once per process: run in a child so other tests cannot interfere.
TEST(LoaderChild, InterOpThreadsOnce) {
  if (std::getenv("DLSYS_LOADER_CHILD") == nullptr) GTEST_SKIP() << "run by RuntimeTest";
  Runtime* runtime = Rt();
  ASSERT_NE(runtime, nullptr);
  EXPECT_TRUE(runtime->SetThreads({.inter_op = 2}));
  EXPECT_TRUE(runtime->SetThreads({.inter_op = 2}));  // same value again: fine
  Result<void> changed = runtime->SetThreads({.inter_op = 3});
  ASSERT_FALSE(changed);
  EXPECT_EQ(changed.error().code, Code::kUsage);
  EXPECT_THAT(changed.error().message, HasSubstr("inter-op"));
}

TEST(RuntimeTest, InterOpThreadsCanBeSetOnce) {
  EXPECT_EQ(
      Spawn({SelfExe(), "--gtest_filter=LoaderChild.InterOpThreadsOnce"}, {"DLSYS_LOADER_CHILD=1"}),
      0);
}

// --- RunViews -----------------------------------------------------------------------------------

TensorView View(const Tensor& tensor) {
  return TensorView{tensor.name, tensor.dtype, tensor.shape, tensor.data};
}

// RunViews over a vector of owned tensors.
tl::expected<std::vector<Tensor>, RunError> RunViews(const Model& model,
                                                     const std::vector<Tensor>& inputs,
                                                     std::string_view method = "forward") {
  std::vector<TensorView> views;
  for (const Tensor& input : inputs) views.push_back(View(input));
  return model.RunViews(method, views);
}

void ExpectSameOutputs(const std::vector<Tensor>& a, const std::vector<Tensor>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (std::size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].name, b[i].name);
    EXPECT_EQ(a[i].dtype, b[i].dtype);
    EXPECT_EQ(a[i].shape, b[i].shape);
    EXPECT_EQ(a[i].data, b[i].data) << a[i].name;
  }
}

TEST(RunViewsTest, MatchesRunBitForBit) {
  std::unique_ptr<Model> model = LoadKind("mlp");
  ASSERT_NE(model, nullptr);
  const Tensor input = F32("x", {3, 4}, kMlpInput);
  Result<std::vector<Tensor>> run = model->Run("forward", {input});
  ASSERT_TRUE(run) << run.error().message;
  auto views = RunViews(*model, {input});
  ASSERT_TRUE(views) << views.error().message;
  ExpectSameOutputs(*views, *run);
  EXPECT_EQ(Values<float>((*views)[0]), MlpByHand(kMlpInput, 3));
  EXPECT_EQ((*views)[0].name, "output0");
  EXPECT_EQ((*views)[0].shape, (std::vector<std::int64_t>{3, 2}));
}

TEST(RunViewsTest, BindsByNameAndKeepsDictOrder) {
  std::unique_ptr<Model> model = LoadKind("two_inputs");
  ASSERT_NE(model, nullptr);
  const std::vector<Tensor> inputs = {MakeTensor<std::int64_t>("b", DType::kInt64, {3}, {4, 5, 6}),
                                      MakeTensor<std::int64_t>("a", DType::kInt64, {3}, {1, 2, 3})};
  auto views = RunViews(*model, inputs);
  ASSERT_TRUE(views) << views.error().message;
  Result<std::vector<Tensor>> run = model->Run("forward", inputs);
  ASSERT_TRUE(run);
  ExpectSameOutputs(*views, *run);
  EXPECT_EQ(Values<std::int64_t>((*views)[1]), (std::vector<std::int64_t>{4, 10, 18}));

  std::unique_ptr<Model> dict = LoadKind("dict_unsorted");
  ASSERT_NE(dict, nullptr);
  auto out = RunViews(*dict, {F32("x", {3}, {1, -2, 0.5})});
  ASSERT_TRUE(out) << out.error().message;
  ASSERT_EQ(out->size(), 2u);
  EXPECT_EQ((*out)[0].name, "zeta");
  EXPECT_EQ((*out)[1].name, "alpha");
}

// The caller's buffers are not touched, and outputs are copies that outlive them.
TEST(RunViewsTest, OutputsAreCopiesAndInputsUnchanged) {
  std::unique_ptr<Model> model = LoadKind("big", {"--weight-bytes", "4096"});
  ASSERT_NE(model, nullptr);
  Tensor input = F32("x", {4}, {1, 2, 3, 4});
  const std::vector<std::byte> before = input.data;
  const TensorView view = View(input);  // over input's own bytes
  auto out = model->RunViews("forward", std::span<const TensorView>(&view, 1));
  ASSERT_TRUE(out) << out.error().message;
  EXPECT_EQ(input.data, before);
  std::fill(input.data.begin(), input.data.end(), std::byte{0});
  EXPECT_EQ(Values<float>((*out)[0]), (std::vector<float>{1, 2, 3, 4}));
}

// RunViews wraps the caller's bytes (a model writing into its input writes into them); Run copies.
TEST(RunViewsTest, BorrowsInputsWhereRunCopiesThem) {
  std::unique_ptr<Model> model = LoadKind("inplace");
  ASSERT_NE(model, nullptr);
  Tensor input = F32("x", {3}, {1, 2, 3});  // not const: RunViews writes through
  Result<std::vector<Tensor>> run = model->Run("forward", {input});
  ASSERT_TRUE(run) << run.error().message;
  EXPECT_EQ(Values<float>((*run)[0]), (std::vector<float>{4, 6, 8}));
  EXPECT_EQ(Values<float>(input), (std::vector<float>{1, 2, 3}));  // copied: untouched

  const TensorView view = View(input);  // over input's own bytes
  auto views = model->RunViews("forward", std::span<const TensorView>(&view, 1));
  ASSERT_TRUE(views) << views.error().message;
  EXPECT_EQ(Values<float>((*views)[0]), (std::vector<float>{4, 6, 8}));
  EXPECT_EQ(Values<float>(input), (std::vector<float>{2, 3, 4}));  // borrowed: written through
}

// Bytes at an address that is not a multiple of the element size are copied, not wrapped.
TEST(RunViewsTest, MisalignedDataIsStillCorrect) {
  std::unique_ptr<Model> model = LoadKind("mlp");
  ASSERT_NE(model, nullptr);
  const Tensor input = F32("x", {3, 4}, kMlpInput);
  std::vector<std::byte> buffer(input.data.size() + 1);
  std::memcpy(buffer.data() + 1, input.data.data(), input.data.size());
  const std::vector<std::int64_t> shape = {3, 4};
  const TensorView view{"x", DType::kFloat32, shape, std::span<const std::byte>(buffer).subspan(1)};
  auto out = model->RunViews("forward", std::span<const TensorView>(&view, 1));
  ASSERT_TRUE(out) << out.error().message;
  EXPECT_EQ(Values<float>((*out)[0]), MlpByHand(kMlpInput, 3));
}

TEST(RunViewsTest, BadInputsAreKBadInput) {
  std::unique_ptr<Model> model = LoadKind("two_inputs");
  ASSERT_NE(model, nullptr);
  const Tensor a = F32("a", {2}, {1, 2});
  const Tensor b = F32("b", {2}, {3, 4});
  Tensor short_b = b;
  short_b.data.resize(4);
  struct Case {
    std::vector<Tensor> inputs;
    std::string method;
    std::string message;
  };
  const Case cases[] = {
      {{a, b}, "predict", "model has no method 'predict'; it has: forward"},
      {{a}, "forward", "missing input 'b'"},
      {{a, b, F32("c", {2}, {5, 6})}, "forward", "unexpected input 'c'"},
      {{a, a, b}, "forward", "'a' is given twice"},
      {{a, short_b}, "forward", "input 'b' has 4 bytes of data, but shape [2] of float32 needs 8"},
      {{a, F32("b", {-1}, {})}, "forward", "invalid shape [-1]"},
  };
  for (const Case& c : cases) {
    auto out = RunViews(*model, c.inputs, c.method);
    ASSERT_FALSE(out) << c.message;
    EXPECT_EQ(out.error().kind, RunFailure::kBadInput) << out.error().message;
    EXPECT_THAT(out.error().message, HasSubstr(c.message));
    // Run reports the same message, as kInvalid.
    Result<std::vector<Tensor>> run = model->Run(c.method, c.inputs);
    ASSERT_FALSE(run);
    EXPECT_EQ(run.error().code, Code::kInvalid);
    EXPECT_EQ(run.error().message, out.error().message);
  }
}

TEST(RunViewsTest, FailuresInsideTheModelAreKModelFailure) {
  std::unique_ptr<Model> failing = LoadKind("failing");
  ASSERT_NE(failing, nullptr);
  auto out = RunViews(*failing, {F32("x", {1}, {1})});
  ASSERT_FALSE(out);
  EXPECT_EQ(out.error().kind, RunFailure::kModelFailure);
  EXPECT_THAT(out.error().message, StartsWith("model failed running 'forward': "));
  EXPECT_THAT(out.error().message, HasSubstr("boom"));
  EXPECT_EQ(out.error().message.find('\n'), std::string::npos) << out.error().message;

  // A shape the model's matmul rejects is the model's failure: the runtime cannot know shapes.
  std::unique_ptr<Model> mlp = LoadKind("mlp");
  ASSERT_NE(mlp, nullptr);
  auto shape = RunViews(*mlp, {F32("x", {1, 3}, {1, 2, 3})});
  ASSERT_FALSE(shape);
  EXPECT_EQ(shape.error().kind, RunFailure::kModelFailure);
}

TEST(RunViewsTest, ConcurrentRunViewsAgree) {
  std::unique_ptr<Model> model = LoadKind("mlp16");
  ASSERT_NE(model, nullptr);
  std::vector<float> x(8 * 16);
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>(i % 7) - 3;
  const Tensor input = F32("x", {8, 16}, x);
  Result<std::vector<Tensor>> reference = model->Run("forward", {input});
  ASSERT_TRUE(reference) << reference.error().message;
  std::vector<int> mismatches(4, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 50; ++i) {
        auto out = RunViews(*model, {input});
        if (!out || (*out)[0].data != (*reference)[0].data) ++mismatches[t];
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(mismatches, std::vector<int>(4, 0));
}

// --- serving fixtures ---------------------------------------------------------------------------

TEST(ServingFixturesTest, Mlp16) {
  std::unique_ptr<Model> model = LoadKind("mlp16");
  ASSERT_NE(model, nullptr);
  EXPECT_EQ(model->Summary().methods[0].arg_names, std::vector<std::string>{"x"});
  EXPECT_EQ(model->Summary().parameters.elements, 16 * 64 + 64 + 64 * 4 + 4);
  auto out = RunViews(*model, {F32("x", {2, 16}, std::vector<float>(32, 0.5f))});
  ASSERT_TRUE(out) << out.error().message;
  ASSERT_EQ(out->size(), 1u);
  EXPECT_EQ((*out)[0].name, "output0");
  EXPECT_EQ((*out)[0].dtype, DType::kFloat32);
  EXPECT_EQ((*out)[0].shape, (std::vector<std::int64_t>{2, 4}));
  std::vector<float> y = Values<float>((*out)[0]);
  EXPECT_TRUE(std::equal(y.begin(), y.begin() + 4, y.begin() + 4));  // same row, same output
  // Deterministic weights: a second build of the fixture is byte-identical in its outputs.
  std::unique_ptr<Model> again = LoadKind("mlp16", {"--verbose"});
  ASSERT_NE(again, nullptr);
  auto out2 = RunViews(*again, {F32("x", {2, 16}, std::vector<float>(32, 0.5f))});
  ASSERT_TRUE(out2);
  EXPECT_EQ((*out2)[0].data, (*out)[0].data);
}

TEST(ServingFixturesTest, MlpHeavy) {
  std::unique_ptr<Model> model = LoadKind("mlp_heavy");
  ASSERT_NE(model, nullptr);
  EXPECT_EQ(model->Summary().parameters.elements,
            1024 * 2048 + 2048 + 2048 * 2048 + 2048 + 2048 * 1024 + 1024);  // 8,393,728
  auto out = RunViews(*model, {F32("x", {2, 1024}, std::vector<float>(2048, 0.25f))});
  ASSERT_TRUE(out) << out.error().message;
  EXPECT_EQ((*out)[0].shape, (std::vector<std::int64_t>{2, 1024}));
  for (float v : Values<float>((*out)[0])) ASSERT_TRUE(std::isfinite(v));
}

TEST(ServingFixturesTest, MlpWide1m) {
  std::unique_ptr<Model> model = LoadKind("mlp_wide1m");
  ASSERT_NE(model, nullptr);
  std::vector<float> x(2 * 262144, 1.0f);
  std::fill(x.begin() + 262144, x.end(), 0.5f);
  const Tensor input = F32("x", {2, 262144}, x);
  EXPECT_EQ(input.data.size(), 2u << 20);  // 1 MiB per row
  auto out = RunViews(*model, {input});
  ASSERT_TRUE(out) << out.error().message;
  EXPECT_EQ((*out)[0].shape, (std::vector<std::int64_t>{2, 1}));
  EXPECT_EQ(Values<float>((*out)[0]), (std::vector<float>{131072, 65536}));  // sum * 0.5
}

TEST(ServingFixturesTest, MultiIo) {
  std::unique_ptr<Model> model = LoadKind("multi_io");
  ASSERT_NE(model, nullptr);
  EXPECT_EQ(model->Summary().methods[0].arg_names, (std::vector<std::string>{"a", "b"}));
  auto out = RunViews(*model, {F32("b", {1, 3}, {4, 5, 6}), F32("a", {1, 3}, {1, 2, 3})});
  ASSERT_TRUE(out) << out.error().message;
  ASSERT_EQ(out->size(), 2u);
  EXPECT_EQ((*out)[0].name, "sum");
  EXPECT_EQ((*out)[1].name, "prod");
  EXPECT_EQ((*out)[0].shape, (std::vector<std::int64_t>{1, 3}));
  EXPECT_EQ(Values<float>((*out)[0]), (std::vector<float>{5, 7, 9}));
  EXPECT_EQ(Values<float>((*out)[1]), (std::vector<float>{4, 10, 18}));
}

TEST(ServingFixturesTest, IntBool) {
  std::unique_ptr<Model> model = LoadKind("int_bool");
  ASSERT_NE(model, nullptr);
  EXPECT_EQ(model->Summary().methods[0].arg_names, (std::vector<std::string>{"ids", "mask"}));
  auto out =
      RunViews(*model, {MakeTensor<std::int64_t>("ids", DType::kInt64, {1, 4}, {7, 8, 9, 10}),
                        MakeTensor<std::uint8_t>("mask", DType::kBool, {1, 4}, {1, 0, 1, 0})});
  ASSERT_TRUE(out) << out.error().message;
  EXPECT_EQ((*out)[0].name, "output0");
  EXPECT_EQ((*out)[0].dtype, DType::kFloat32);
  EXPECT_EQ((*out)[0].shape, (std::vector<std::int64_t>{1, 4}));
  EXPECT_EQ(Values<float>((*out)[0]), (std::vector<float>{7, 0, 9, 0}));
}

// --- BLAS ---------------------------------------------------------------------------------------

// scripts/install-deps.sh installs libopenblas0-openmp, which takes over the libblas.so.3
// alternative: libtorch's matmuls then go through OpenBLAS.
TEST(BlasTest, LibtorchUsesOpenBlas) {
  Runtime* runtime = Rt();
  ASSERT_NE(runtime, nullptr);
  BlasInfo blas = runtime->Blas();
  EXPECT_EQ(blas.name, "openblas") << blas.library << ": " << blas.detail;
  EXPECT_FALSE(blas.reference);
  EXPECT_TRUE(std::filesystem::path(blas.library).is_absolute()) << blas.library;
  EXPECT_TRUE(std::filesystem::exists(blas.library)) << blas.library;
  EXPECT_THAT(blas.detail, StartsWith("OpenBLAS "));
  EXPECT_THAT(blas.detail, ::testing::ContainsRegex("threading (sequential|pthread|openmp)"));
  EXPECT_EQ(runtime->Blas().library, blas.library);  // stable
}

// Debian's reference BLAS lives in <multiarch>/blas/; with that directory first on the library
// path libtorch binds to it, and Blas() must say so.
std::string ReferenceBlasDir() {
  for (const char* dir : {"/usr/lib/x86_64-linux-gnu/blas", "/usr/lib/aarch64-linux-gnu/blas"}) {
    if (std::filesystem::exists(std::string(dir) + "/libblas.so.3")) return dir;
  }
  return "";
}

TEST(LoaderChild, ReferenceBlas) {
  if (std::getenv("DLSYS_LOADER_CHILD") == nullptr) GTEST_SKIP() << "run by BlasTest";
  Runtime* runtime = Rt();
  ASSERT_NE(runtime, nullptr);
  BlasInfo blas = runtime->Blas();
  EXPECT_EQ(blas.name, "reference") << blas.library << ": " << blas.detail;
  EXPECT_TRUE(blas.reference);
  EXPECT_THAT(blas.library, StartsWith(ReferenceBlasDir() + "/"));
  // And the model still runs on it.
  std::unique_ptr<Model> model = LoadKind("mlp");
  ASSERT_NE(model, nullptr);
  auto out = RunViews(*model, {F32("x", {3, 4}, kMlpInput)});
  ASSERT_TRUE(out) << out.error().message;
  EXPECT_EQ(Values<float>((*out)[0]), MlpByHand(kMlpInput, 3));
}

TEST(BlasTest, RecognisesTheReferenceBlas) {
  const std::string dir = ReferenceBlasDir();
  if (dir.empty()) GTEST_SKIP() << "the reference BLAS (libblas3) is not installed";
  EXPECT_EQ(Spawn({SelfExe(), "--gtest_filter=LoaderChild.ReferenceBlas"},
                  {"DLSYS_LOADER_CHILD=1", "LD_LIBRARY_PATH=" + dir}),
            0);
}

}  // namespace
}  // namespace dlsys::runtime
