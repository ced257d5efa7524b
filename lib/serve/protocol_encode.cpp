// Encoding of inference responses, errors and model metadata (KServe v2 JSON, Triton's binary
// tensor extension). The JSON is written straight into one reserved std::string.
#include <charconv>
#include <cmath>
#include <cstring>

#include "serve/internal/protocol_float.h"
#include "serve/internal/protocol_json.h"
#include "serve/protocol.h"

namespace dlsys::serve {
namespace {

using internal::AppendJsonString;
using internal::AppendShape;
using runtime::DType;

// The most characters one element takes, with its separating comma ("-1.7976931348623157e+308,").
std::size_t MaxCharsPerElement(DType dtype) {
  switch (dtype) {
    case DType::kBool:
      return 6;
    case DType::kInt8:
    case DType::kUInt8:
      return 5;
    case DType::kInt16:
      return 7;
    case DType::kInt32:
      return 12;
    case DType::kInt64:
      return 21;
    case DType::kFloat16:
    case DType::kBFloat16:
    case DType::kFloat32:
      return 16;
    case DType::kFloat64:
      return 25;
  }
  return 25;
}

template <typename T>
T Load(const std::byte* p) {
  T value;
  std::memcpy(&value, p, sizeof value);
  return value;
}

template <typename F>
char* WriteFloat(char* p, F value) {
  if (!std::isfinite(value)) {
    std::memcpy(p, "null", 4);
    return p + 4;
  }
  return std::to_chars(p, p + 32, value).ptr;
}

// Writes `count` elements of `data` as comma-separated JSON values at `p`; returns the end.
char* WriteElements(char* p, DType dtype, const std::byte* data, std::size_t count) {
  const std::size_t size = runtime::DTypeSize(dtype);
  for (std::size_t i = 0; i < count; ++i) {
    if (i) *p++ = ',';
    const std::byte* e = data + i * size;
    switch (dtype) {
      case DType::kBool:
        if (std::to_integer<unsigned>(*e) != 0) {
          std::memcpy(p, "true", 4);
          p += 4;
        } else {
          std::memcpy(p, "false", 5);
          p += 5;
        }
        break;
      case DType::kInt8:
        p = std::to_chars(p, p + 32, static_cast<int>(Load<std::int8_t>(e))).ptr;
        break;
      case DType::kUInt8:
        p = std::to_chars(p, p + 32, static_cast<unsigned>(Load<std::uint8_t>(e))).ptr;
        break;
      case DType::kInt16:
        p = std::to_chars(p, p + 32, Load<std::int16_t>(e)).ptr;
        break;
      case DType::kInt32:
        p = std::to_chars(p, p + 32, Load<std::int32_t>(e)).ptr;
        break;
      case DType::kInt64:
        p = std::to_chars(p, p + 32, Load<std::int64_t>(e)).ptr;
        break;
      case DType::kFloat16:
        p = WriteFloat(p, runtime::HalfBitsToFloat(Load<std::uint16_t>(e)));
        break;
      case DType::kBFloat16:
        p = WriteFloat(p, runtime::BFloat16BitsToFloat(Load<std::uint16_t>(e)));
        break;
      case DType::kFloat32:
        p = WriteFloat(p, Load<float>(e));
        break;
      case DType::kFloat64:
        p = WriteFloat(p, Load<double>(e));
        break;
    }
  }
  return p;
}

// The element count of an output whose data matches its shape and dtype; nullopt otherwise.
std::optional<std::size_t> ValidCount(const OutputView& output) {
  const std::int64_t count = runtime::ElementCount(output.shape);
  if (count < 0) return std::nullopt;
  const auto bytes = static_cast<std::uint64_t>(count) * runtime::DTypeSize(output.dtype);
  if (bytes / runtime::DTypeSize(output.dtype) != static_cast<std::uint64_t>(count) ||
      bytes != output.data.size()) {
    return std::nullopt;
  }
  return static_cast<std::size_t>(count);
}

void AppendTensorHeader(std::string& out, std::string_view name, DType dtype,
                        std::span<const std::int64_t> shape) {
  out += "{\"name\":";
  AppendJsonString(out, name);
  out += ",\"datatype\":\"";
  out += KServeDTypeName(dtype);
  out += "\",\"shape\":";
  AppendShape(out, shape);
}

}  // namespace

EncodedResponse EncodeInferResponse(std::string_view model_name, std::string_view model_version,
                                    std::string_view id,
                                    const std::vector<RequestedOutput>& requested,
                                    std::span<const OutputView> outputs) {
  struct Item {
    const OutputView* view;
    std::size_t count;
    bool binary;
  };
  std::vector<Item> items;
  items.reserve(requested.size());
  std::size_t json_bytes = 64 + 6 * (model_name.size() + model_version.size() + id.size());
  std::size_t binary_bytes = 0;
  for (const RequestedOutput& want : requested) {
    for (const OutputView& view : outputs) {
      if (view.name != want.name) continue;
      const auto count = ValidCount(view);
      if (!count) break;
      items.push_back({&view, *count, want.binary});
      json_bytes += 96 + 6 * view.name.size() + 21 * view.shape.size();
      if (want.binary) {
        binary_bytes += view.data.size();
      } else {
        json_bytes += *count * MaxCharsPerElement(view.dtype);
      }
      break;
    }
  }

  EncodedResponse response;
  std::string& out = response.body;
  out.reserve(json_bytes + binary_bytes);
  out += "{\"model_name\":";
  AppendJsonString(out, model_name);
  out += ",\"model_version\":";
  AppendJsonString(out, model_version);
  if (!id.empty()) {
    out += ",\"id\":";
    AppendJsonString(out, id);
  }
  out += ",\"outputs\":[";
  bool any_binary = false;
  for (std::size_t i = 0; i < items.size(); ++i) {
    const Item& item = items[i];
    if (i) out.push_back(',');
    AppendTensorHeader(out, item.view->name, item.view->dtype, item.view->shape);
    if (item.binary) {
      any_binary = true;
      out += ",\"parameters\":{\"binary_data_size\":";
      char buf[24];
      out.append(buf, std::to_chars(buf, buf + sizeof buf, item.view->data.size()).ptr);
      out += "}}";
      continue;
    }
    out += ",\"data\":[";
    const std::size_t start = out.size();
    out.resize(start + item.count * MaxCharsPerElement(item.view->dtype) + 32);
    char* end =
        WriteElements(out.data() + start, item.view->dtype, item.view->data.data(), item.count);
    out.resize(static_cast<std::size_t>(end - out.data()));
    out += "]}";
  }
  out += "]}";
  if (any_binary) {
    response.json_length = out.size();
    for (const Item& item : items) {
      if (!item.binary) continue;
      out.append(reinterpret_cast<const char*>(item.view->data.data()), item.view->data.size());
    }
  }
  return response;
}

std::string EncodeError(std::string_view message) {
  std::string out;
  out.reserve(message.size() + 16);
  out += "{\"error\":";
  AppendJsonString(out, message);
  out += '}';
  return out;
}

std::string EncodeModelMetadata(std::string_view name, std::span<const std::string> versions,
                                std::string_view platform, const ModelSchema& schema) {
  std::string out;
  out.reserve(256);
  out += "{\"name\":";
  AppendJsonString(out, name);
  out += ",\"versions\":[";
  for (std::size_t i = 0; i < versions.size(); ++i) {
    if (i) out.push_back(',');
    AppendJsonString(out, versions[i]);
  }
  out += "],\"platform\":";
  AppendJsonString(out, platform);
  const auto append_specs = [&out](const std::vector<TensorSpec>& specs) {
    out.push_back('[');
    for (std::size_t i = 0; i < specs.size(); ++i) {
      if (i) out.push_back(',');
      AppendTensorHeader(out, specs[i].name, specs[i].dtype, specs[i].shape);
      out.push_back('}');
    }
    out.push_back(']');
  };
  out += ",\"inputs\":";
  append_specs(schema.inputs);
  out += ",\"outputs\":";
  append_specs(schema.outputs);
  out.push_back('}');
  return out;
}

}  // namespace dlsys::serve
