// The runtime module (libdlsys_runtime.so): Runtime and Model on top of libtorch.
//
// This is the only file in dlsys that includes libtorch. It is built as a MODULE and loaded by
// loader.cpp with dlopen; its single exported symbol is dlsys_runtime_create_v2. Every libtorch
// exception is caught here and converted into an Error; none crosses the module boundary.
//
// It includes the narrow libtorch headers it uses, not <torch/script.h>: that one pulls in every
// ATen operator (ATen/ATen.h) and made this file compile about 1.7 times slower.
#include <ATen/Parallel.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/from_blob.h>
#include <c10/core/InferenceMode.h>
#include <caffe2/serialize/inline_container.h>
#include <caffe2/serialize/read_adapter_interface.h>
#include <caffe2/serialize/versions.h>
#include <dlfcn.h>
#include <torch/csrc/jit/api/function_impl.h>
#include <torch/csrc/jit/api/module.h>
#include <torch/csrc/jit/runtime/operator.h>
#include <torch/csrc/jit/serialization/import.h>
#include <torch/cuda.h>
#include <torch/version.h>

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "runtime/runtime.h"

namespace dlsys::runtime {
namespace {

// Reads a model straight from the caller's bytes: no copy of the archive into a stream.
class SpanReadAdapter final : public caffe2::serialize::ReadAdapterInterface {
 public:
  explicit SpanReadAdapter(std::span<const std::byte> bytes) : bytes_(bytes) {}
  size_t size() const override { return bytes_.size(); }
  size_t read(uint64_t pos, void* buf, size_t n, const char* /*what*/) const override {
    if (pos >= bytes_.size()) return 0;
    n = std::min<size_t>(n, bytes_.size() - pos);
    std::memcpy(buf, bytes_.data() + pos, n);
    return n;
  }

 private:
  std::span<const std::byte> bytes_;
};

std::string Trim(std::string s) {
  auto not_space = [](unsigned char c) { return !std::isspace(c); };
  s.erase(s.begin(), std::find_if(s.begin(), s.end(), not_space));
  s.erase(std::find_if(s.rbegin(), s.rend(), not_space).base(), s.end());
  return s;
}

// libtorch messages span many lines (C++ backtraces, TorchScript tracebacks). Keep the line
// that says what went wrong: the first one, except for interpreter tracebacks, whose cause is
// the last line ("RuntimeError: AssertionError: boom").
std::string Headline(const std::string& what) {
  std::vector<std::string> lines;
  std::istringstream in(what);
  for (std::string line; std::getline(in, line);) {
    line = Trim(line);
    if (!line.empty()) lines.push_back(line);
  }
  if (lines.empty()) return "unknown error";
  if (lines.front().find("failed in the TorchScript interpreter") != std::string::npos) {
    return lines.back();
  }
  return lines.front();
}

std::string Headline(const std::exception& e) {
  if (const auto* c10_error = dynamic_cast<const c10::Error*>(&e)) {
    return Headline(c10_error->what_without_backtrace());
  }
  return Headline(std::string(e.what()));
}

std::optional<DType> FromScalarType(at::ScalarType type) {
  switch (type) {
    case at::kFloat:
      return DType::kFloat32;
    case at::kDouble:
      return DType::kFloat64;
    case at::kHalf:
      return DType::kFloat16;
    case at::kBFloat16:
      return DType::kBFloat16;
    case at::kChar:
      return DType::kInt8;
    case at::kByte:
      return DType::kUInt8;
    case at::kShort:
      return DType::kInt16;
    case at::kInt:
      return DType::kInt32;
    case at::kLong:
      return DType::kInt64;
    case at::kBool:
      return DType::kBool;
    default:
      return std::nullopt;
  }
}

at::ScalarType ToScalarType(DType dtype) {
  switch (dtype) {
    case DType::kFloat32:
      return at::kFloat;
    case DType::kFloat64:
      return at::kDouble;
    case DType::kFloat16:
      return at::kHalf;
    case DType::kBFloat16:
      return at::kBFloat16;
    case DType::kInt8:
      return at::kChar;
    case DType::kUInt8:
      return at::kByte;
    case DType::kInt16:
      return at::kShort;
    case DType::kInt32:
      return at::kInt;
    case DType::kInt64:
      return at::kLong;
    case DType::kBool:
      return at::kBool;
  }
  return at::kFloat;
}

std::string ScalarTypeName(at::ScalarType type) {
  if (std::optional<DType> dtype = FromScalarType(type)) return DTypeName(*dtype);
  std::string name = c10::toString(type);
  std::transform(name.begin(), name.end(), name.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return name;
}

std::string ShapeString(std::span<const std::int64_t> shape) {
  std::string out = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i > 0) out += ", ";
    out += std::to_string(shape[i]);
  }
  return out + "]";
}

std::string Join(const std::vector<std::string>& items) {
  std::string out;
  for (const std::string& item : items) {
    if (!out.empty()) out += ", ";
    out += item;
  }
  return out.empty() ? "(none)" : out;
}

// The method's declared arguments without the leading `self`.
std::vector<c10::Argument> UserArguments(const c10::FunctionSchema& schema) {
  std::vector<c10::Argument> args = schema.arguments();
  if (!args.empty() && args.front().name() == "self") args.erase(args.begin());
  return args;
}

void AddTensorStats(const at::Tensor& tensor, TensorGroupStats& stats,
                    std::set<std::string>& devices) {
  stats.count += 1;
  stats.elements += tensor.numel();
  stats.bytes_by_dtype[ScalarTypeName(tensor.scalar_type())] +=
      tensor.numel() * static_cast<std::int64_t>(tensor.element_size());
  devices.insert(tensor.device().str());
}

void CollectOperators(const torch::jit::Block* block, std::set<std::string>& out) {
  for (const torch::jit::Node* node : block->nodes()) {
    std::string kind = node->kind().toQualString();
    // attr::, scope:: and the like name attributes and scopes, not operators.
    if (kind.rfind("attr::", 0) != 0 && kind.rfind("scope::", 0) != 0 &&
        kind.rfind("namespaces::", 0) != 0 && kind.rfind("dimname::", 0) != 0) {
      out.insert(std::move(kind));
    }
    for (const torch::jit::Block* sub : node->blocks()) CollectOperators(sub, out);
  }
}

ModelSummary Summarize(const torch::jit::Module& module, std::int64_t file_format_version) {
  ModelSummary summary;
  for (const torch::jit::Method& method : module.get_methods()) {
    const c10::FunctionSchema& schema = method.function().getSchema();
    std::vector<c10::Argument> args = UserArguments(schema);
    MethodInfo info;
    info.name = method.name();
    for (const c10::Argument& arg : args) info.arg_names.push_back(arg.name());
    std::ostringstream printed;
    printed << schema.cloneWithArguments(std::move(args));
    info.schema = printed.str();
    summary.methods.push_back(std::move(info));
  }
  std::sort(summary.methods.begin(), summary.methods.end(),
            [](const MethodInfo& a, const MethodInfo& b) { return a.name < b.name; });

  std::set<std::string> devices;
  for (const auto& param : module.named_parameters(/*recurse=*/true)) {
    AddTensorStats(param.value, summary.parameters, devices);
  }
  for (const auto& buffer : module.named_buffers(/*recurse=*/true)) {
    AddTensorStats(buffer.value, summary.buffers, devices);
  }
  if (devices.empty()) devices.insert("cpu");
  summary.devices.assign(devices.begin(), devices.end());

  std::set<std::string> operators;
  for (const torch::jit::Module& sub : module.modules()) {
    for (const torch::jit::Method& method : sub.get_methods()) {
      CollectOperators(method.graph()->block(), operators);
    }
  }
  // Free functions the methods call (prim::CallFunction) live only in the compilation unit.
  for (torch::jit::Function* function : module._ivalue()->compilation_unit()->get_functions()) {
    if (function->isGraphFunction()) {
      CollectOperators(torch::jit::toGraphFunction(*function).graph()->block(), operators);
    }
  }
  summary.operators.assign(operators.begin(), operators.end());

  summary.file_format_version = file_format_version;
  summary.runtime_version = std::to_string(TORCH_VERSION_MAJOR) + "." +
                            std::to_string(TORCH_VERSION_MINOR) + "." +
                            std::to_string(TORCH_VERSION_PATCH);
  return summary;
}

// How a run treats its inputs' bytes: Run copies them (the model cannot change the caller's
// tensors); RunViews wraps them in place.
enum class Inputs { kCopy, kBorrow };

TensorView ViewOf(const Tensor& tensor) {
  return TensorView{tensor.name, tensor.dtype, tensor.shape, tensor.data};
}

Result<at::Tensor> ToTorch(const TensorView& tensor, const std::string& name,
                           const c10::Device& device, Inputs mode) {
  std::int64_t elements =
      ElementCount(std::vector<std::int64_t>(tensor.shape.begin(), tensor.shape.end()));
  if (elements < 0) {
    return Fail(Code::kInvalid, "input '" + name + "' has an invalid shape " +
                                    ShapeString(tensor.shape) + " (dimensions must be >= 0)");
  }
  std::size_t expected = static_cast<std::size_t>(elements) * DTypeSize(tensor.dtype);
  if (tensor.data.size() != expected) {
    return Fail(Code::kInvalid, "input '" + name + "' has " + std::to_string(tensor.data.size()) +
                                    " bytes of data, but shape " + ShapeString(tensor.shape) +
                                    " of " + DTypeName(tensor.dtype) + " needs " +
                                    std::to_string(expected));
  }
  const at::IntArrayRef sizes(tensor.shape.data(), tensor.shape.size());
  const at::TensorOptions options = at::TensorOptions().dtype(ToScalarType(tensor.dtype));
  // ATen kernels assume naturally aligned elements, and a GPU model needs its own copy anyway.
  const bool aligned =
      reinterpret_cast<std::uintptr_t>(tensor.data.data()) % DTypeSize(tensor.dtype) == 0;
  if (mode == Inputs::kBorrow && expected > 0 && aligned && device.is_cpu()) {
    // No deleter: the tensor never owns the caller's bytes. from_blob wants a mutable pointer;
    // a model that writes into its input in place writes into the caller's buffer (runtime.h).
    return at::from_blob(const_cast<std::byte*>(tensor.data.data()), sizes, options);
  }
  // at::empty, not torch::empty: both give a tensor that does not require grad, and
  // torch::empty's header is the one that pulls in every ATen operator.
  at::Tensor out = at::empty(sizes, options);
  if (expected > 0) std::memcpy(out.data_ptr(), tensor.data.data(), expected);
  if (device != out.device()) out = out.to(device);
  return out;
}

Result<Tensor> FromTorch(const at::Tensor& value, std::string name) {
  std::optional<DType> dtype = FromScalarType(value.scalar_type());
  if (!dtype) {
    return Fail(Code::kInvalid, "output '" + name + "' has unsupported dtype " +
                                    ScalarTypeName(value.scalar_type()));
  }
  at::Tensor cpu = value.to(at::kCPU).contiguous();
  Tensor out;
  out.name = std::move(name);
  out.dtype = *dtype;
  out.shape = cpu.sizes().vec();
  std::size_t bytes = static_cast<std::size_t>(cpu.numel()) * cpu.element_size();
  out.data.resize(bytes);
  if (bytes > 0) std::memcpy(out.data.data(), cpu.data_ptr(), bytes);
  return out;
}

Result<std::vector<Tensor>> ConvertOutputs(const c10::IValue& result) {
  std::vector<Tensor> outputs;
  auto add = [&](const c10::IValue& value, std::string name) -> Result<void> {
    if (!value.isTensor()) {
      return Fail(Code::kInvalid, "unsupported output type: '" + name + "' is " + value.tagKind() +
                                      ", expected a Tensor");
    }
    DLSYS_ASSIGN_OR_RETURN(Tensor tensor, FromTorch(value.toTensor(), std::move(name)));
    outputs.push_back(std::move(tensor));
    return {};
  };
  if (result.isTensor()) {
    DLSYS_TRY(add(result, "output0"));
  } else if (result.isTuple() || result.isList()) {
    std::vector<c10::IValue> items;
    if (result.isTuple()) {
      const auto& elements = result.toTupleRef().elements();
      items.assign(elements.begin(), elements.end());
    } else {
      items = result.toList().vec();
    }
    for (size_t i = 0; i < items.size(); ++i) {
      DLSYS_TRY(add(items[i], "output" + std::to_string(i)));
    }
  } else if (result.isGenericDict()) {
    // In the dict's own order (TorchScript dicts keep insertion order), not sorted by key:
    // golden outputs are paired with outputs by position, so the order must be the model's.
    for (const auto& entry : result.toGenericDict()) {
      if (!entry.key().isString()) {
        return Fail(Code::kInvalid, "unsupported output type: a dict with " +
                                        entry.key().tagKind() + " keys (only str keys are named)");
      }
      DLSYS_TRY(add(entry.value(), entry.key().toStringRef()));
    }
  } else {
    return Fail(Code::kInvalid, "unsupported output type " + result.tagKind() +
                                    " (expected a Tensor, a tuple or list of Tensors, or a "
                                    "Dict[str, Tensor])");
  }
  return outputs;
}

class TorchModel final : public Model {
 public:
  TorchModel(torch::jit::Module module, c10::Device device, ModelSummary summary)
      : module_(std::move(module)), device_(device), summary_(std::move(summary)) {}

  const ModelSummary& Summary() const override { return summary_; }

  Result<std::vector<Tensor>> Run(std::string_view method_name,
                                  const std::vector<Tensor>& inputs) const override {
    std::vector<TensorView> views;
    views.reserve(inputs.size());
    for (const Tensor& input : inputs) views.push_back(ViewOf(input));
    tl::expected<std::vector<Tensor>, RunError> outputs =
        Execute(method_name, views, Inputs::kCopy);
    if (!outputs) return Fail(Code::kInvalid, std::move(outputs.error().message));
    return std::move(*outputs);
  }

  tl::expected<std::vector<Tensor>, RunError> RunViews(
      std::string_view method_name, std::span<const TensorView> inputs) const override {
    return Execute(method_name, inputs, Inputs::kBorrow);
  }

 private:
  static tl::unexpected<RunError> Failure(RunFailure kind, std::string message) {
    return tl::unexpected<RunError>(RunError{kind, std::move(message)});
  }

  // Run and RunViews: binds the inputs, runs the method under inference mode and copies the
  // outputs out (so no output aliases an input the caller may free).
  tl::expected<std::vector<Tensor>, RunError> Execute(std::string_view method_name,
                                                      std::span<const TensorView> inputs,
                                                      Inputs mode) const {
    const std::string name(method_name);
    try {
      c10::InferenceMode inference_mode;
      c10::optional<torch::jit::Method> method = module_.find_method(name);
      if (!method) {
        std::vector<std::string> names;
        for (const MethodInfo& info : summary_.methods) names.push_back(info.name);
        return Failure(RunFailure::kBadInput,
                       "model has no method '" + name + "'; it has: " + Join(names));
      }
      Result<std::vector<c10::IValue>> stack = Bind(*method, inputs, mode);
      if (!stack) return Failure(RunFailure::kBadInput, std::move(stack.error().message));
      c10::IValue result = (*method)(std::move(*stack));
      Result<std::vector<Tensor>> outputs = ConvertOutputs(result);
      if (!outputs) return Failure(RunFailure::kModelFailure, std::move(outputs.error().message));
      return std::move(*outputs);
    } catch (const std::exception& e) {
      return Failure(RunFailure::kModelFailure,
                     "model failed running '" + name + "': " + Headline(e));
    }
  }

  // Binds inputs to the method's arguments by name; a lone argument takes a lone input whatever
  // its name. Arguments with defaults may be left out.
  Result<std::vector<c10::IValue>> Bind(const torch::jit::Method& method,
                                        std::span<const TensorView> inputs, Inputs mode) const {
    std::vector<c10::Argument> args = UserArguments(method.function().getSchema());
    std::vector<std::string> arg_names;
    for (const c10::Argument& arg : args) arg_names.push_back(arg.name());
    const std::string takes = "method '" + method.name() + "' takes: " + Join(arg_names);

    std::vector<c10::IValue> stack;
    if (args.size() == 1 && inputs.size() == 1) {
      DLSYS_ASSIGN_OR_RETURN(at::Tensor tensor,
                             ToTorch(inputs[0], std::string(inputs[0].name), device_, mode));
      stack.emplace_back(std::move(tensor));
      return stack;
    }
    std::map<std::string_view, const TensorView*> by_name;
    for (const TensorView& input : inputs) {
      const std::string input_name(input.name);
      if (std::find(arg_names.begin(), arg_names.end(), input_name) == arg_names.end()) {
        return Fail(Code::kInvalid, "unexpected input '" + input_name + "'; " + takes);
      }
      if (!by_name.emplace(input.name, &input).second) {
        return Fail(Code::kInvalid, "input '" + input_name + "' is given twice");
      }
    }
    for (const c10::Argument& arg : args) {
      auto it = by_name.find(arg.name());
      if (it != by_name.end()) {
        DLSYS_ASSIGN_OR_RETURN(at::Tensor tensor, ToTorch(*it->second, arg.name(), device_, mode));
        stack.emplace_back(std::move(tensor));
      } else if (arg.default_value()) {
        stack.push_back(*arg.default_value());
      } else {
        return Fail(Code::kInvalid, "missing input '" + arg.name() + "'; " + takes);
      }
    }
    return stack;
  }

  torch::jit::Module module_;
  c10::Device device_;
  ModelSummary summary_;
};

// Finds the BLAS behind libtorch's CPU matmuls: the library that provides sgemm_ as this module
// resolves it. On Debian that is the libblas.so.3 alternative (OpenBLAS, BLIS or the netlib
// reference), whatever else is loaded: liblapack.so.3 may pull in libopenblas.so.0 even when
// libblas.so.3 is the reference one, so vendor queries are asked of the sgemm_ library and its
// own dependencies (Debian's OpenBLAS libblas.so.3 is a thin front for libopenblas.so.0), never
// of the whole process.
BlasInfo DetectBlas() {
  BlasInfo info;
  info.name = "unknown";
  void* gemm = dlsym(RTLD_DEFAULT, "sgemm_");
  if (gemm == nullptr) gemm = dlsym(RTLD_DEFAULT, "dgemm_");
  Dl_info where{};
  if (gemm == nullptr || dladdr(gemm, &where) == 0 || where.dli_fname == nullptr) {
    info.detail = "no shared library provides sgemm_ to libtorch (a static or built-in BLAS)";
    return info;
  }
  info.library = where.dli_fname;
  if (char* resolved = realpath(where.dli_fname, nullptr)) {  // through the alternatives links
    info.library = resolved;
    std::free(resolved);
  }

  struct DlCloser {
    void operator()(void* handle) const { dlclose(handle); }
  };
  // Already loaded (it provided sgemm_): RTLD_NOLOAD only takes another reference to it.
  std::unique_ptr<void, DlCloser> lib(dlopen(where.dli_fname, RTLD_LAZY | RTLD_NOLOAD));
  auto symbol = [&](const char* name) { return lib ? dlsym(lib.get(), name) : nullptr; };

  if (void* get_config = symbol("openblas_get_config")) {
    info.name = "openblas";
    info.detail = Trim(reinterpret_cast<char* (*)()>(get_config)());
    if (void* get_parallel = symbol("openblas_get_parallel")) {
      // 0 sequential, 1 pthreads, 2 OpenMP (openblas_config.h).
      static constexpr const char* kThreading[] = {"sequential", "pthread", "openmp"};
      int parallel = reinterpret_cast<int (*)()>(get_parallel)();
      info.detail += std::string(", threading ") +
                     (parallel >= 0 && parallel <= 2 ? kThreading[parallel] : "unknown");
    }
    return info;
  }
  if (void* version = symbol("bli_info_get_version_str")) {
    info.name = "blis";
    info.detail = std::string("BLIS ") + reinterpret_cast<const char* (*)()>(version)();
    return info;
  }
  if (void* version = symbol("mkl_get_version_string")) {
    info.name = "mkl";
    char buf[256] = {};
    reinterpret_cast<void (*)(char*, int)>(version)(buf, sizeof(buf) - 1);
    info.detail = Trim(buf);
    return info;
  }
  // Debian and Ubuntu install the netlib reference as the alternative in .../blas/; other
  // distributions (Fedora's blas package) install it as a plain libblas.so.3 in the lib dir.
  const std::filesystem::path path(info.library);
  const std::string dir = path.parent_path().filename().string();
  const std::string file = path.filename().string();
  if (dir == "blas" || (file.starts_with("libblas.so") && (dir == "lib" || dir == "lib64"))) {
    info.name = "reference";
    info.reference = true;
    info.detail = "netlib reference BLAS (unoptimised, single-threaded)";
    return info;
  }
  info.detail = "no OpenBLAS, BLIS or MKL version query in " + file;
  return info;
}

// Every interned symbol, as "ns::name". A table of literals, filtered at run time, because
// expanding FORALL_NS_SYMBOLS (thousands of entries) into one statement per symbol made this
// file take minutes to compile.
#define DLSYS_QUALIFIED_SYMBOL(ns, s) #ns "::" #s,
constexpr std::string_view kInternedSymbols[] = {FORALL_NS_SYMBOLS(DLSYS_QUALIFIED_SYMBOL)};
#undef DLSYS_QUALIFIED_SYMBOL

class TorchRuntime final : public Runtime {
 public:
  std::string Version() const override {
    return std::to_string(TORCH_VERSION_MAJOR) + "." + std::to_string(TORCH_VERSION_MINOR) + "." +
           std::to_string(TORCH_VERSION_PATCH);
  }

  std::vector<std::string> Operators() const override {
    std::set<std::string> names;
    for (const auto& op : torch::jit::getAllOperators()) names.insert(op->schema().name());
    // Node kinds the interpreter runs itself (constants, attribute access, control flow,
    // container construction, calls) are not registered operators, yet they appear in every
    // graph's operator list (CollectOperators). They are all interned prim:: symbols.
    for (std::string_view symbol : kInternedSymbols) {
      if (symbol.starts_with("prim::")) names.emplace(symbol);
    }
    return {names.begin(), names.end()};
  }

  Result<std::unique_ptr<Model>> Load(std::span<const std::byte> bytes,
                                      const LoadOptions& options) const override {
    if (bytes.empty()) return Fail(Code::kInvalid, "model file is empty");
    std::optional<c10::Device> device;
    try {
      device.emplace(options.device);
    } catch (const std::exception& e) {
      return Fail(Code::kUsage, "unknown device '" + options.device + "' (use cpu or cuda)");
    }
    if (device->is_cuda() && !torch::cuda::is_available()) {
      return Fail(Code::kUnavailable, "device '" + options.device +
                                          "' requested, but CUDA is not available to libtorch "
                                          "on this machine; use --device cpu");
    }
    if (!device->is_cpu() && !device->is_cuda()) {
      return Fail(Code::kUsage, "unsupported device '" + options.device + "' (use cpu or cuda)");
    }
    try {
      auto adapter = std::make_shared<SpanReadAdapter>(bytes);
      std::int64_t file_format_version = 0;
      {
        caffe2::serialize::PyTorchStreamReader reader(adapter);
        file_format_version = static_cast<std::int64_t>(reader.version());
      }
      // import reads every record eagerly, so the bytes are not needed after this call.
      torch::jit::Module module = torch::jit::load(adapter, *device);
      module.eval();
      ModelSummary summary = Summarize(module, file_format_version);
      return std::make_unique<TorchModel>(std::move(module), *device, std::move(summary));
    } catch (const std::exception& e) {
      return Fail(Code::kInvalid, "not a loadable TorchScript model: " + Headline(e));
    }
  }

  BlasInfo Blas() const override {
    static const BlasInfo blas = DetectBlas();  // the process's libraries never change
    return blas;
  }

  std::int64_t MaxFileFormatVersion() const override {
    return static_cast<std::int64_t>(caffe2::serialize::kMaxSupportedFileFormatVersion);
  }

  Result<void> SetThreads(const ThreadSettings& settings) override {
    if (settings.intra_op < 0 || settings.inter_op < 0) {
      return Fail(Code::kUsage, "thread counts must be >= 0 (0 keeps libtorch's default)");
    }
    std::lock_guard<std::mutex> lock(mutex_);
    try {
      if (settings.intra_op > 0) at::set_num_threads(settings.intra_op);
      // libtorch accepts one inter-op setting per process, before its pool starts; repeating
      // the value already set is harmless, so accept it.
      if (settings.inter_op > 0 && settings.inter_op != inter_op_set_) {
        at::set_num_interop_threads(settings.inter_op);
        inter_op_set_ = settings.inter_op;
      }
    } catch (const std::exception& e) {
      return Fail(Code::kUsage,
                  "cannot set inter-op threads to " + std::to_string(settings.inter_op) +
                      ": libtorch fixes the inter-op pool size when it first runs parallel work "
                      "or when it was already set; set threads once, before running any model",
                  {Headline(e)});
    }
    return {};
  }

 private:
  std::mutex mutex_;
  int inter_op_set_ = 0;
};

}  // namespace
}  // namespace dlsys::runtime

extern "C" __attribute__((visibility("default"))) dlsys::runtime::Runtime* dlsys_runtime_create_v2(
    int abi_version) {
  if (abi_version != kDlsysRuntimeAbiVersion) return nullptr;
  static dlsys::runtime::TorchRuntime runtime;
  return &runtime;
}
