// Fuzzes the inference request parser (serve's network input): the first byte picks whether
// the rest is plain JSON or uses the binary extension (then the next two bytes, little-endian,
// are the Inference-Header-Content-Length value); the rest is the body.
//
// Invariants checked on every request that parses: every input's bytes are exactly
// ElementCount(shape) * DTypeSize(dtype) and lie inside the body or the request's own storage,
// dim 0 agrees with batch_size when batching, and encoding the inputs back as a response works.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <span>
#include <vector>

#include "serve/protocol.h"

namespace {

using dlsys::runtime::DType;

const dlsys::serve::ModelSchema& Schema() {
  static const auto* schema = new dlsys::serve::ModelSchema{
      {{"x", DType::kFloat32, {-1, 4}},
       {"ids", DType::kInt64, {-1, -1}},
       {"mask", DType::kBool, {-1, 4}},
       {"h", DType::kFloat16, {-1, 2}}},
      {{"y", DType::kFloat32, {-1, 4}}, {"z", DType::kBFloat16, {-1, 2}}}};
  return *schema;
}

void Check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "infer_fuzz: invariant broken: %s\n", what);
    __builtin_trap();
  }
}

bool Inside(std::span<const std::byte> part, std::span<const std::byte> whole) {
  return part.empty() ||
         (part.data() >= whole.data() && part.data() + part.size() <= whole.data() + whole.size());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  const bool binary = data[0] & 1;
  std::size_t at = 1;
  std::optional<std::size_t> json_length;
  if (binary) {
    if (size < 3) return 0;
    json_length = static_cast<std::size_t>(data[1]) | (static_cast<std::size_t>(data[2]) << 8);
    at = 3;
  }
  const std::vector<std::byte> body(reinterpret_cast<const std::byte*>(data) + at,
                                    reinterpret_cast<const std::byte*>(data) + size);
  dlsys::serve::ParseLimits limits;
  limits.max_elements = 1u << 16;
  auto parsed = dlsys::serve::ParseInferRequest(body, json_length, Schema(), limits);
  if (!parsed) {
    Check(parsed.error().status >= 400 && parsed.error().status < 600, "status is an error");
    Check(!parsed.error().message.empty(), "error has a message");
    return 0;
  }
  const auto& r = *parsed;
  Check(r.inputs.size() == Schema().inputs.size(), "every schema input present");
  std::vector<dlsys::serve::OutputView> echo;
  for (std::size_t i = 0; i < r.inputs.size(); ++i) {
    const auto& in = r.inputs[i];
    const std::int64_t n = dlsys::runtime::ElementCount(in.shape);
    Check(n >= 0, "element count");
    Check(in.data.size() == static_cast<std::size_t>(n) * dlsys::runtime::DTypeSize(in.dtype),
          "input bytes match the shape");
    Check(Inside(in.data, body) || Inside(in.data, r.storage), "input bytes inside the request");
    Check(!in.shape.empty() && in.shape[0] == r.batch_size, "dim 0 is the batch size");
    echo.push_back({Schema().outputs[i % 2].name, in.dtype, in.shape, in.data});
  }
  std::vector<dlsys::serve::RequestedOutput> requested;
  for (std::size_t i = 0; i < echo.size(); ++i) {
    requested.push_back({std::string(echo[i].name), (i % 2) == 0});
  }
  const auto encoded = dlsys::serve::EncodeInferResponse("m", "1.0.0", r.id, requested, echo);
  Check(!encoded.body.empty(), "response encoded");
  return 0;
}
