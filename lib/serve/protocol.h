// The KServe v2 / Open Inference Protocol inference messages, with Triton's binary tensor
// extension: request parsing with validation against a model's declared tensor schema, and
// response encoding. No HTTP here: callers pass the body bytes and the value of the
// Inference-Header-Content-Length header, and get back the bytes and header value to send.
//
// Wire format (docs/serving.md is the user-facing spec):
//   request  = JSON header [+ binary section]; with the binary extension the first
//              `json_length` bytes are the JSON object and the rest are the raw little-endian
//              bytes of every input whose "parameters" has "binary_data_size", in input order.
//   {"id": "...", "parameters": {...}, "inputs": [{"name","datatype","shape","data"|params}],
//    "outputs": [{"name", "parameters": {"binary_data": bool}}]}
//
// Thread-safety: free functions, no shared state.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/runtime.h"

namespace dlsys::serve {

// One declared tensor of a model (from the manifest), with its dtype resolved.
struct TensorSpec {
  std::string name;
  runtime::DType dtype = runtime::DType::kFloat32;
  std::vector<std::int64_t> shape;  // -1 = any size
};

struct ModelSchema {
  std::vector<TensorSpec> inputs;
  std::vector<TensorSpec> outputs;
};

// "FP32", "INT64", "BOOL", ... (KServe v2 datatype names). ParseDType accepts these too.
const char* KServeDTypeName(runtime::DType dtype);
// The dtype of a KServe v2 datatype name ("FP32", ...); nullopt for any other name, including
// the v2 names our runtime lacks (UINT16, UINT32, UINT64, BYTES) and manifest names ("float32").
std::optional<runtime::DType> ParseKServeDType(std::string_view name);

// An error the client caused (or the server's state), as the HTTP status Triton uses and a
// message naming the field: {"error": message}.
struct ProtocolError {
  int status = 400;
  std::string message;
};

struct ParseLimits {
  std::size_t max_json_bytes = 64u << 20;   // the JSON part of a request
  std::size_t max_json_depth = 64;          // nesting of "data" arrays and objects
  std::uint64_t max_elements = 1ull << 30;  // per input tensor
};

// One validated input, in the order of ModelSchema::inputs. `data` views either the request
// body (binary extension) or InferRequest::storage (decoded JSON): it stays valid as long as
// both the body and the InferRequest live, and is ElementCount(shape) * DTypeSize(dtype) bytes.
struct InputTensor {
  std::string name;
  runtime::DType dtype = runtime::DType::kFloat32;
  std::vector<std::int64_t> shape;
  std::span<const std::byte> data;
};

struct RequestedOutput {
  std::string name;
  bool binary = false;  // "parameters": {"binary_data": true}
};

struct InferRequest {
  std::string id;                           // echoed in the response; "" when absent
  std::vector<InputTensor> inputs;          // exactly the schema's inputs, in schema order
  std::vector<RequestedOutput> outputs;     // the outputs to return, in schema order
  std::int64_t batch_size = 1;              // shape[0] of the inputs when the schema's dim 0 is -1
  std::optional<std::uint64_t> timeout_us;  // "parameters": {"timeout": N} (Triton), if sent
  std::vector<std::byte> storage;           // owns decoded JSON tensor data
};

// Parses and validates one inference request against `schema`:
//   - body framing: json_length (the Inference-Header-Content-Length value) must be <= body
//     size; the binary section must hold exactly the sum of every binary_data_size;
//   - JSON: an object; "id" a string; "parameters" an object (binary_data_output: bool,
//     timeout: integer us; other keys tolerated); "inputs" required, each input named once,
//     every schema input present, no unknown input; "datatype" equal to the schema's;
//     "shape" of the schema's rank, every fixed dimension equal, dim 0 the same across inputs
//     when batched; "data" flat or nested row-major numbers/bools of exactly ElementCount
//     elements in range for the dtype (FP16/BF16 converted); "outputs" names known, each once;
//   - when no "outputs" are listed, all schema outputs are returned, binary iff
//     binary_data_output.
// Errors are 400 with a message naming the field, e.g. "input 'x': shape [2,5] does not match
// [-1,4]", or 413 "request body ... exceeds" is the caller's business (HTTP layer).
// A JSON part longer than limits.max_json_bytes is 413; a failed allocation is 500.
// JSON numbers that do not fit the dtype (300 for INT8, 1e39 for FP32, 70000 for FP16) are 400;
// FP16 and BF16 are rounded from the double value, to nearest, ties to even.
// The returned request must not be copied (InputTensor::data would still view the original's
// storage); moving it is fine. Binary inputs view `body` unaligned: copy before casting.
[[nodiscard]] tl::expected<InferRequest, ProtocolError> ParseInferRequest(
    std::span<const std::byte> body, std::optional<std::size_t> json_length,
    const ModelSchema& schema, const ParseLimits& limits = {});

// One output of a model run for one request: `data` views the runtime's output tensor (rows
// of this request only).
struct OutputView {
  std::string_view name;
  runtime::DType dtype = runtime::DType::kFloat32;
  std::vector<std::int64_t> shape;
  std::span<const std::byte> data;
};

struct EncodedResponse {
  std::string body;
  // Set when the body has a binary section: the value of Inference-Header-Content-Length
  // (and the Content-Type is application/octet-stream rather than application/json).
  std::optional<std::size_t> json_length;
};

// JSON text conventions of every Encode* function: strings are escaped to pure ASCII (\uXXXX
// for non-ASCII, U+FFFD for bytes that are not UTF-8); floats are printed shortest round-trip
// (FP16/BF16 via their exact float value); NaN and infinities, which JSON cannot express, are
// written as null; BOOL as true/false. Requested outputs missing from `outputs`, or whose
// data size does not match their shape and dtype (a caller bug), are left out.
//
// {"model_name", "model_version", "id" (only if non-empty), "outputs": [...]}: each requested
// output (in `requested` order), as JSON "data" (flat, row-major) or, if binary, as
// "parameters": {"binary_data_size": N} with the bytes appended after the JSON in order.
// Floats are printed with the shortest representation that round-trips.
EncodedResponse EncodeInferResponse(std::string_view model_name, std::string_view model_version,
                                    std::string_view id,
                                    const std::vector<RequestedOutput>& requested,
                                    std::span<const OutputView> outputs);

// {"error": message}, message escaped.
std::string EncodeError(std::string_view message);

// KServe v2 model metadata: {"name", "versions": [...], "platform", "inputs": [{"name",
// "datatype", "shape"}], "outputs": [...]}, shapes with -1 for any size.
std::string EncodeModelMetadata(std::string_view name, std::span<const std::string> versions,
                                std::string_view platform, const ModelSchema& schema);

}  // namespace dlsys::serve
