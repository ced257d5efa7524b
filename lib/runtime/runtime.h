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

// The exact float value of IEEE 754 binary16 / bfloat16 bits.
float HalfBitsToFloat(std::uint16_t bits);
float BFloat16BitsToFloat(std::uint16_t bits);
// Element `i` of row-major `data` of `dtype` as a double (bool as 0 or 1; int64 beyond 2^53
// rounds). `data` must hold at least (i + 1) * DTypeSize(dtype) bytes.
double ElementAsDouble(DType dtype, std::span<const std::byte> data, std::size_t i);

// A tensor that borrows its bytes (no copy); valid for the duration of the call that takes it.
struct TensorView {
  std::string_view name;
  DType dtype = DType::kFloat32;
  std::span<const std::int64_t> shape;
  std::span<const std::byte> data;  // ElementCount(shape) * DTypeSize(dtype) bytes, row-major
};

// Why a run failed, so a server can map it to a status code.
enum class RunFailure { kBadInput, kModelFailure };
struct RunError {
  RunFailure kind = RunFailure::kModelFailure;
  std::string message;
};

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

// A loaded model. Run(), RunViews() and Summary() are safe to call from several threads at once.
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
  // of any other type (non-Tensor elements, dicts with non-str keys, ...). The inputs are
  // copied, so the model cannot change the caller's tensors.
  [[nodiscard]] virtual Result<std::vector<Tensor>> Run(
      std::string_view method, const std::vector<Tensor>& inputs) const = 0;
  // As Run, but the inputs are views: the runtime wraps their bytes without copying
  // (torch::from_blob; the model may not keep references to them after returning) and runs under
  // inference mode. kBadInput: unknown method, missing/extra/wrongly sized inputs; kModelFailure:
  // the model threw or returned an unsupported type. Thread-safe.
  //
  // The bytes are wrapped as if writable: a model that writes into an input in place (x.add_(1))
  // writes into the caller's buffer, so pass buffers the caller may see changed. Data whose
  // address is not a multiple of DTypeSize(dtype) is copied instead (ATen kernels assume aligned
  // elements), as is data for a model loaded on a GPU. Outputs are always fresh copies.
  [[nodiscard]] virtual tl::expected<std::vector<Tensor>, RunError> RunViews(
      std::string_view method, std::span<const TensorView> inputs) const = 0;
};

// The BLAS library libtorch's CPU matmuls go through (Runtime::Blas()).
struct BlasInfo {
  std::string name;        // "openblas", "blis", "mkl", "reference", or "unknown"
  std::string library;     // path of the shared library providing dgemm_/sgemm_, if found
  std::string detail;      // e.g. openblas_get_config() "OpenBLAS 0.3.21 DYNAMIC_ARCH NO_AFFINITY
                           // Haswell MAX_THREADS=64" + threading (openmp/pthread)
  bool reference = false;  // the slow reference implementation (netlib libblas)
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
  // The BLAS library libtorch's CPU matmuls go through: the library that provides `sgemm_` as
  // the runtime module resolves it (on Debian the libblas.so.3 alternative: OpenBLAS, BLIS, or
  // the netlib reference implementation, about 10x slower for batched inference). Never fails:
  // name "unknown" when the library cannot be identified. Thread-safe.
  virtual BlasInfo Blas() const = 0;
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
// 2: Model::RunViews, Runtime::Blas.
inline constexpr int kDlsysRuntimeAbiVersion = 2;
using DlsysRuntimeCreateFn = dlsys::runtime::Runtime* (*)(int abi_version);
}
#define DLSYS_RUNTIME_ENTRY_SYMBOL "dlsys_runtime_create_v2"
