// The model runtime: loads TorchScript models and runs their methods.
//
// This header is the whole interface between dlsys and libtorch. The implementation lives in
// a module (libdlsys_runtime.so) that is loaded with dlopen on the first call to GetRuntime(),
// so commands that never run a model never pay libtorch's start-up cost. No torch type
// crosses this interface: tensors travel as dtype + shape + contiguous little-endian bytes.
//
// Users: pack's load check, verify's smoke test, the server's batched inference.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"

namespace dlsys::runtime {

enum class DType {
  kFloat32,
  kFloat64,
  kFloat16,
  kBFloat16,
  kInt8,
  kUInt8,
  kInt16,
  kInt32,
  kInt64,
  kBool
};

// "float32", "int64", ... (the names used in manifests and the KServe protocol mapping).
const char* DTypeName(DType dtype);
// Parses a dtype name; also accepts KServe names (FP32, INT64, BOOL, ...). kInvalid otherwise.
[[nodiscard]] Result<DType> ParseDType(std::string_view name);
std::size_t DTypeSize(DType dtype);

// A dense tensor. `data` holds ElementCount(shape) * DTypeSize(dtype) bytes, row-major.
struct Tensor {
  std::string name;
  DType dtype = DType::kFloat32;
  std::vector<std::int64_t> shape;
  std::vector<std::byte> data;
};
std::int64_t ElementCount(const std::vector<std::int64_t>& shape);

struct MethodInfo {
  std::string name;                    // "forward"
  std::string schema;                  // "forward(Tensor x) -> Tensor"
  std::vector<std::string> arg_names;  // without self: {"x"}
};

struct TensorGroupStats {
  std::int64_t count = 0;                              // number of tensors
  std::int64_t elements = 0;                           // total elements
  std::map<std::string, std::int64_t> bytes_by_dtype;  // "float32" -> bytes
};

// What a loaded model is, as recorded in the manifest's model summary.
struct ModelSummary {
  std::vector<MethodInfo> methods;       // sorted by name
  TensorGroupStats parameters;           // module parameters (recursively)
  TensorGroupStats buffers;              // module buffers (recursively)
  std::vector<std::string> operators;    // sorted, unique, e.g. "aten::linear", "prim::Constant"
  std::int64_t file_format_version = 0;  // TorchScript zip "version" record
  std::string runtime_version;           // libtorch version that loaded it, e.g. "1.13.1"
  std::vector<std::string> devices;      // devices parameters and buffers live on, e.g. "cpu"
};

struct LoadOptions {
  std::string device = "cpu";  // where to place the model
};

// A loaded model. Run() and Describe() are safe to call from several threads at once.
class Model {
 public:
  virtual ~Model() = default;
  virtual const ModelSummary& Summary() const = 0;
  // Runs `method` with inputs bound to its arguments by name (MethodInfo::arg_names; a single
  // argument may also be bound by any one tensor). The outputs are an ordered list of named
  // tensors, whose order callers may rely on (golden outputs are matched by position):
  //   - a Tensor gives one output, "output0";
  //   - a tuple or list of N Tensors gives "output0" .. "output{N-1}", in order;
  //   - a Dict[str, Tensor] gives one output per key, named by the key, in the dict's own
  //     iteration order (TorchScript dicts keep insertion order), NOT sorted by key.
  // kInvalid for unknown methods, missing/extra inputs, failures inside the model, or outputs
  // of any other type (non-Tensor elements, dicts with non-str keys, ...).
  [[nodiscard]] virtual Result<std::vector<Tensor>> Run(
      std::string_view method, const std::vector<Tensor>& inputs) const = 0;
};

struct ThreadSettings {
  int intra_op = 0;  // 0 = leave libtorch's default
  int inter_op = 0;  // 0 = leave libtorch's default; can only be set before the first run
};

class Runtime {
 public:
  virtual ~Runtime() = default;
  // libtorch version, e.g. "1.13.1".
  virtual std::string Version() const = 0;
  // Every operator this runtime provides (sorted, unique), for target profiles: the registered
  // operators plus the node kinds the TorchScript interpreter executes itself (prim::Constant,
  // prim::GetAttr, prim::If, ...), so the ModelSummary::operators of any model this runtime can
  // load are a subset of it.
  virtual std::vector<std::string> Operators() const = 0;
  // Loads a TorchScript model from bytes in memory (the bytes may be freed afterwards).
  // kInvalid if the bytes are not a loadable TorchScript model (message says why).
  [[nodiscard]] virtual Result<std::unique_ptr<Model>> Load(std::span<const std::byte> bytes,
                                                            const LoadOptions& options) const = 0;
  [[nodiscard]] virtual Result<void> SetThreads(const ThreadSettings& settings) = 0;
  // The newest TorchScript file-format version this runtime reads (ModelSummary's
  // file_format_version of a loadable model is at most this).
  virtual std::int64_t MaxFileFormatVersion() const = 0;
};

// Loads the runtime module on first call and returns the process-wide runtime (thread-safe).
// The module is found at $DLSYS_RUNTIME_MODULE if set, else next to the executable, else in
// ../lib/dlsys/ relative to it. kUnavailable, naming where it looked, if it cannot be loaded.
[[nodiscard]] Result<Runtime*> GetRuntime();

// True if the runtime module has already been loaded in this process (for tests that prove a
// command did not load libtorch).
bool RuntimeLoaded();

}  // namespace dlsys::runtime

// The module's single entry point, version-checked by the loader.
extern "C" {
inline constexpr int kDlsysRuntimeAbiVersion = 1;
using DlsysRuntimeCreateFn = dlsys::runtime::Runtime* (*)(int abi_version);
}
#define DLSYS_RUNTIME_ENTRY_SYMBOL "dlsys_runtime_create_v1"
