// Parsing and validation of inference requests (KServe v2 JSON, Triton's binary tensor
// extension) with simdjson's DOM parser, which validates the whole text (grammar, UTF-8,
// depth) before we look at it. Tensor data is decoded straight into InferRequest::storage.
#include <simdjson.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>

#include "core/checked.h"
#include "serve/internal/protocol_float.h"
#include "serve/internal/protocol_json.h"
#include "serve/protocol.h"

namespace dlsys::serve {
namespace {

using runtime::DType;
using simdjson::dom::element;
using simdjson::dom::element_type;

// Documents up to this size are parsed by a per-thread parser that keeps its buffers; larger
// ones get a parser of their own, so a thread does not hold on to a huge tape after one big
// request.
constexpr std::size_t kReusedParserMaxBytes = 2u << 20;
// Names quoted in messages are cut to this many bytes.
constexpr std::size_t kMaxQuotedName = 128;

tl::unexpected<ProtocolError> Fail(std::string message, int status = 400) {
  return tl::unexpected(ProtocolError{status, std::move(message)});
}

std::string Quote(std::string_view name) {
  std::string out = "'";
  if (name.size() > kMaxQuotedName) {
    out.append(name.substr(0, kMaxQuotedName));
    out += "...";
  } else {
    out.append(name);
  }
  out += '\'';
  return out;
}

std::string ShapeText(std::span<const std::int64_t> shape) {
  std::string out;
  internal::AppendShape(out, shape);
  return out;
}

std::string Number(std::uint64_t value) { return std::to_string(value); }

std::string NumberText(double value) {
  char buf[32];
  return std::string(buf, std::to_chars(buf, buf + sizeof buf, value).ptr);
}

// By value: value_unsafe() on a temporary result returns a reference into it, which a range-for
// over the expression would keep past the temporary's life.
simdjson::dom::array AsArray(element value) { return value.get_array().value_unsafe(); }
simdjson::dom::object AsObject(element value) { return value.get_object().value_unsafe(); }

const char* TypeNoun(element_type type) {
  switch (type) {
    case element_type::ARRAY:
      return "an array";
    case element_type::OBJECT:
      return "an object";
    case element_type::STRING:
      return "a string";
    case element_type::NULL_VALUE:
      return "null";
    case element_type::BOOL:
      return "a boolean";
    case element_type::INT64:
    case element_type::UINT64:
    case element_type::DOUBLE:
      return "a number";
  }
  return "a value";
}

// The first key that appears twice in `object`, if any.
std::optional<std::string_view> DuplicateKey(simdjson::dom::object object) {
  std::array<std::string_view, 16> small;
  std::size_t n = 0;
  std::vector<std::string_view> many;
  for (const auto field : object) {
    if (n < small.size()) {
      for (std::size_t i = 0; i < n; ++i) {
        if (small[i] == field.key) return field.key;
      }
      small[n++] = field.key;
    } else {
      many.push_back(field.key);
    }
  }
  if (many.empty()) return std::nullopt;
  many.insert(many.end(), small.begin(), small.end());
  std::sort(many.begin(), many.end());
  const auto it = std::adjacent_find(many.begin(), many.end());
  if (it != many.end()) return *it;
  return std::nullopt;
}

// A non-negative JSON integer.
std::optional<std::uint64_t> NonNegativeInteger(element value) {
  if (value.type() == element_type::UINT64) return value.get_uint64().value_unsafe();
  if (value.type() == element_type::INT64) {
    const std::int64_t v = value.get_int64().value_unsafe();
    if (v >= 0) return static_cast<std::uint64_t>(v);
  }
  return std::nullopt;
}

// One entry of "inputs", before it is matched to the schema. Views point into the parser.
struct RawInput {
  std::string_view name;
  std::string_view datatype;
  std::vector<std::int64_t> shape;
  std::optional<std::uint64_t> binary_size;
  std::optional<element> data;
  // Filled in by validation.
  DType dtype = DType::kFloat32;
  std::uint64_t count = 0;
  std::uint64_t bytes = 0;
};

tl::expected<RawInput, ProtocolError> ReadInput(element value, std::size_t index,
                                                bool has_binary_section) {
  RawInput input;
  const auto where = [index] { return "input #" + Number(index); };
  if (value.type() != element_type::OBJECT) return Fail(where() + " must be a JSON object");
  const auto object = AsObject(value);
  if (const auto key = DuplicateKey(object)) {
    return Fail(where() + ": duplicate key \"" + std::string(*key) + "\"");
  }
  element name, datatype, shape, parameters;
  bool has_name = false, has_datatype = false, has_shape = false, has_parameters = false;
  for (const auto field : object) {
    if (field.key == "name") {
      name = field.value;
      has_name = true;
    } else if (field.key == "datatype") {
      datatype = field.value;
      has_datatype = true;
    } else if (field.key == "shape") {
      shape = field.value;
      has_shape = true;
    } else if (field.key == "parameters") {
      parameters = field.value;
      has_parameters = true;
    } else if (field.key == "data") {
      input.data = field.value;
    }
  }
  if (!has_name) return Fail(where() + ": missing \"name\"");
  if (name.type() != element_type::STRING) return Fail(where() + ": \"name\" must be a string");
  input.name = name.get_string().value_unsafe();
  const auto label = [&input] { return "input " + Quote(input.name); };
  if (!has_datatype) return Fail(label() + ": missing \"datatype\"");
  if (datatype.type() != element_type::STRING) {
    return Fail(label() + ": \"datatype\" must be a string");
  }
  input.datatype = datatype.get_string().value_unsafe();
  if (!has_shape) return Fail(label() + ": missing \"shape\"");
  if (shape.type() != element_type::ARRAY) {
    return Fail(label() + ": \"shape\" must be an array of integers");
  }
  for (const element dim : AsArray(shape)) {
    if (dim.type() == element_type::INT64) {
      input.shape.push_back(dim.get_int64().value_unsafe());
    } else if (dim.type() == element_type::UINT64) {
      return Fail(label() + ": \"shape\" dimension " + Number(dim.get_uint64().value_unsafe()) +
                  " is too large");
    } else {
      return Fail(label() + ": \"shape\" must be an array of integers, found " +
                  TypeNoun(dim.type()));
    }
  }
  for (const std::int64_t dim : input.shape) {
    if (dim < 0) {
      return Fail(label() + ": shape " + ShapeText(input.shape) + " has a negative dimension");
    }
  }
  if (has_parameters) {
    if (parameters.type() != element_type::OBJECT) {
      return Fail(label() + ": \"parameters\" must be a JSON object");
    }
    const auto params = AsObject(parameters);
    if (const auto key = DuplicateKey(params)) {
      return Fail(label() + ": duplicate key \"" + std::string(*key) + "\" in \"parameters\"");
    }
    for (const auto field : params) {
      if (field.key != "binary_data_size") continue;
      input.binary_size = NonNegativeInteger(field.value);
      if (!input.binary_size) {
        return Fail(label() + ": \"binary_data_size\" must be a non-negative integer");
      }
    }
  }
  if (input.binary_size) {
    if (input.data) {
      return Fail(label() + ": both \"data\" and \"binary_data_size\" given; send one of them");
    }
    if (!has_binary_section) {
      return Fail(label() +
                  ": binary_data_size given without Inference-Header-Content-Length header");
    }
  } else if (!input.data) {
    return Fail(label() + ": no \"data\" and no \"binary_data_size\" parameter");
  } else if (input.data->type() != element_type::ARRAY) {
    return Fail(label() + ": \"data\" must be an array, found " + TypeNoun(input.data->type()));
  }
  return input;
}

std::string NameList(const std::vector<TensorSpec>& specs) {
  std::string out;
  for (const TensorSpec& spec : specs) {
    if (!out.empty()) out += ", ";
    out += spec.name;
  }
  return specs.empty() ? "(none)" : out;
}

std::uint64_t CountLeaves(simdjson::dom::array array) {
  std::uint64_t count = 0;
  for (const element child : array) {
    count += child.type() == element_type::ARRAY ? CountLeaves(AsArray(child)) : 1;
  }
  return count;
}

// Decodes the leaves of one input's "data" into `out` (room for `expected` elements of T),
// counting every leaf so a wrong count can be reported after the walk.
template <DType kDType, typename T>
class DataDecoder {
 public:
  DataDecoder(const RawInput& input, std::byte* out) : input_(input), out_(out) {}

  bool Walk(simdjson::dom::array array) {
    for (const element child : array) {
      const element_type type = child.type();
      if (type == element_type::ARRAY) {
        if (!Walk(AsArray(child))) return false;
        continue;
      }
      T value;
      if (!Convert(child, type, value)) return false;
      if (index_ < input_.count) std::memcpy(out_ + index_ * sizeof(T), &value, sizeof(T));
      ++index_;
    }
    return true;
  }

  std::uint64_t count() const { return index_; }
  std::string& error() { return error_; }

 private:
  std::string Label() const {
    return "input " + Quote(input_.name) + ": element " + Number(index_);
  }
  bool Mismatch(element_type type, const char* expected) {
    error_ = Label() + " is " + TypeNoun(type) + "; " + KServeDTypeName(kDType) + " data must be " +
             expected;
    return false;
  }
  bool OutOfRange(const std::string& text) {
    error_ = Label() + " (" + text + ") is out of range for " + KServeDTypeName(kDType);
    return false;
  }

  // FP16 and BF16 are stored as uint16_t bits but read like any float.
  static constexpr bool kIsFloat = kDType == DType::kFloat16 || kDType == DType::kBFloat16 ||
                                   kDType == DType::kFloat32 || kDType == DType::kFloat64;

  bool Convert(element child, element_type type, T& value) {
    if constexpr (kDType == DType::kBool) {
      if (type != element_type::BOOL) return Mismatch(type, "true or false");
      value = child.get_bool().value_unsafe() ? 1 : 0;
      return true;
    } else if constexpr (!kIsFloat) {
      if (type == element_type::INT64) {
        const std::int64_t v = child.get_int64().value_unsafe();
        if (v < std::numeric_limits<T>::min() || v > std::numeric_limits<T>::max()) {
          return OutOfRange(std::to_string(v));
        }
        value = static_cast<T>(v);
        return true;
      }
      if (type == element_type::UINT64) {
        return OutOfRange(std::to_string(child.get_uint64().value_unsafe()));
      }
      if (type == element_type::DOUBLE) {
        error_ = Label() + " (" + NumberText(child.get_double().value_unsafe()) +
                 ") is not an integer; " + KServeDTypeName(kDType) + " data must be integers";
        return false;
      }
      return Mismatch(type, "integers");
    } else {
      double d;
      if (type == element_type::DOUBLE) {
        d = child.get_double().value_unsafe();
      } else if (type == element_type::INT64) {
        d = static_cast<double>(child.get_int64().value_unsafe());
      } else if (type == element_type::UINT64) {
        d = static_cast<double>(child.get_uint64().value_unsafe());
      } else {
        return Mismatch(type, "numbers");
      }
      if constexpr (kDType == DType::kFloat64) {
        value = d;
      } else if constexpr (kDType == DType::kFloat32) {
        value = static_cast<float>(d);
        if (std::isinf(value)) return OutOfRange(NumberText(d));
      } else {
        const auto bits = kDType == DType::kFloat16 ? internal::DoubleToHalfBits(d)
                                                    : internal::DoubleToBFloat16Bits(d);
        if (!bits) return OutOfRange(NumberText(d));
        value = *bits;
      }
      return true;
    }
  }

  const RawInput& input_;
  std::byte* out_;
  std::uint64_t index_ = 0;
  std::string error_;
};

template <DType kDType, typename T>
tl::expected<void, ProtocolError> DecodeAs(const RawInput& input, std::byte* out) {
  DataDecoder<kDType, T> decoder(input, out);
  if (!decoder.Walk(AsArray(*input.data))) {
    return Fail(std::move(decoder.error()));
  }
  if (decoder.count() != input.count) {
    return Fail("input " + Quote(input.name) + ": \"data\" has " + Number(decoder.count()) +
                " elements but shape " + ShapeText(input.shape) + " needs " + Number(input.count));
  }
  return {};
}

tl::expected<void, ProtocolError> Decode(const RawInput& input, std::byte* out) {
  switch (input.dtype) {
    case DType::kBool:
      return DecodeAs<DType::kBool, std::uint8_t>(input, out);
    case DType::kUInt8:
      return DecodeAs<DType::kUInt8, std::uint8_t>(input, out);
    case DType::kInt8:
      return DecodeAs<DType::kInt8, std::int8_t>(input, out);
    case DType::kInt16:
      return DecodeAs<DType::kInt16, std::int16_t>(input, out);
    case DType::kInt32:
      return DecodeAs<DType::kInt32, std::int32_t>(input, out);
    case DType::kInt64:
      return DecodeAs<DType::kInt64, std::int64_t>(input, out);
    case DType::kFloat16:
      return DecodeAs<DType::kFloat16, std::uint16_t>(input, out);
    case DType::kBFloat16:
      return DecodeAs<DType::kBFloat16, std::uint16_t>(input, out);
    case DType::kFloat32:
      return DecodeAs<DType::kFloat32, float>(input, out);
    case DType::kFloat64:
      return DecodeAs<DType::kFloat64, double>(input, out);
  }
  return Fail("unsupported dtype", 500);
}

// Checks one input against its schema entry and fills dtype, count and bytes.
tl::expected<void, ProtocolError> Validate(RawInput& input, const TensorSpec& spec,
                                           const ParseLimits& limits) {
  const auto label = [&input] { return "input " + Quote(input.name); };
  const auto dtype = ParseKServeDType(input.datatype);
  if (!dtype) {
    static constexpr std::string_view kUnsupported[] = {"UINT16", "UINT32", "UINT64", "BYTES"};
    const bool known = std::find(std::begin(kUnsupported), std::end(kUnsupported),
                                 input.datatype) != std::end(kUnsupported);
    return Fail(label() + ": datatype " + Quote(input.datatype) +
                (known ? " is not supported" : " is unknown") +
                "; supported: BOOL, UINT8, INT8, INT16, INT32, INT64, FP16, FP32, FP64, BF16 "
                "(the model's is " +
                KServeDTypeName(spec.dtype) + ")");
  }
  if (*dtype != spec.dtype) {
    return Fail(label() + ": datatype " + std::string(input.datatype) +
                " does not match the model's " + KServeDTypeName(spec.dtype));
  }
  input.dtype = *dtype;
  bool shape_ok = input.shape.size() == spec.shape.size();
  for (std::size_t i = 0; shape_ok && i < spec.shape.size(); ++i) {
    shape_ok = spec.shape[i] < 0 || spec.shape[i] == input.shape[i];
  }
  if (!shape_ok) {
    return Fail(label() + ": shape " + ShapeText(input.shape) + " does not match " +
                ShapeText(spec.shape));
  }
  std::optional<std::uint64_t> count = 1;
  for (const std::int64_t dim : input.shape) {
    count = core::CheckedMul(*count, static_cast<std::uint64_t>(dim));
    if (!count) break;
  }
  if (!count || *count > limits.max_elements) {
    return Fail(label() + ": shape " + ShapeText(input.shape) + " has " +
                (count ? Number(*count) : std::string("too many")) +
                " elements, more than the limit of " + Number(limits.max_elements));
  }
  input.count = *count;
  const auto bytes = core::CheckedMul(*count, runtime::DTypeSize(*dtype));
  if (!bytes || *bytes > std::numeric_limits<std::size_t>::max() / 2) {
    return Fail(label() + ": shape " + ShapeText(input.shape) + " is too large");
  }
  input.bytes = *bytes;
  return {};
}

struct RequestParams {
  bool binary_output = false;
  std::optional<std::uint64_t> timeout_us;
};

tl::expected<RequestParams, ProtocolError> ReadRequestParameters(element value) {
  RequestParams params;
  if (value.type() != element_type::OBJECT) return Fail("\"parameters\" must be a JSON object");
  const auto object = AsObject(value);
  if (const auto key = DuplicateKey(object)) {
    return Fail("duplicate key \"" + std::string(*key) + "\" in \"parameters\"");
  }
  for (const auto field : object) {
    if (field.key == "binary_data_output") {
      if (field.value.type() != element_type::BOOL) {
        return Fail("parameter \"binary_data_output\" must be true or false");
      }
      params.binary_output = field.value.get_bool().value_unsafe();
    } else if (field.key == "timeout") {
      params.timeout_us = NonNegativeInteger(field.value);
      if (!params.timeout_us) {
        return Fail("parameter \"timeout\" must be a non-negative integer (microseconds)");
      }
    }
  }
  return params;
}

tl::expected<std::vector<RequestedOutput>, ProtocolError> ReadOutputs(std::optional<element> value,
                                                                      const ModelSchema& schema,
                                                                      bool binary_default) {
  std::vector<RequestedOutput> result;
  if (value && value->type() != element_type::ARRAY) {
    return Fail("\"outputs\" must be an array");
  }
  if (!value || AsArray(*value).size() == 0) {
    result.reserve(schema.outputs.size());
    for (const TensorSpec& spec : schema.outputs) result.push_back({spec.name, binary_default});
    return result;
  }
  std::vector<signed char> binary(schema.outputs.size(), -1);  // -1: not requested
  std::size_t index = 0;
  for (const element entry : AsArray(*value)) {
    const std::size_t position = index++;
    const auto where = [position] { return "output #" + Number(position); };
    if (entry.type() != element_type::OBJECT) return Fail(where() + " must be a JSON object");
    const auto object = AsObject(entry);
    if (const auto key = DuplicateKey(object)) {
      return Fail(where() + ": duplicate key \"" + std::string(*key) + "\"");
    }
    std::optional<element> name, parameters;
    for (const auto field : object) {
      if (field.key == "name") name = field.value;
      if (field.key == "parameters") parameters = field.value;
    }
    if (!name) return Fail(where() + ": missing \"name\"");
    if (name->type() != element_type::STRING) return Fail(where() + ": \"name\" must be a string");
    const std::string_view output_name = name->get_string().value_unsafe();
    const auto label = [output_name] { return "output " + Quote(output_name); };
    std::size_t slot = 0;
    while (slot < schema.outputs.size() && schema.outputs[slot].name != output_name) ++slot;
    if (slot == schema.outputs.size()) {
      return Fail("unknown output " + Quote(output_name) +
                  "; model outputs: " + NameList(schema.outputs));
    }
    if (binary[slot] >= 0) return Fail(label() + " is requested twice");
    bool is_binary = binary_default;
    if (parameters) {
      if (parameters->type() != element_type::OBJECT) {
        return Fail(label() + ": \"parameters\" must be a JSON object");
      }
      const auto params = AsObject(*parameters);
      if (const auto key = DuplicateKey(params)) {
        return Fail(label() + ": duplicate key \"" + std::string(*key) + "\" in \"parameters\"");
      }
      for (const auto field : params) {
        if (field.key == "binary_data") {
          if (field.value.type() != element_type::BOOL) {
            return Fail(label() + ": \"binary_data\" must be true or false");
          }
          is_binary = field.value.get_bool().value_unsafe();
        } else if (field.key == "classification") {
          return Fail(label() + ": classification is not supported");
        }
      }
    }
    binary[slot] = is_binary ? 1 : 0;
  }
  for (std::size_t i = 0; i < schema.outputs.size(); ++i) {
    if (binary[i] >= 0) result.push_back({schema.outputs[i].name, binary[i] == 1});
  }
  return result;
}

std::string JsonErrorMessage(simdjson::error_code code, const ParseLimits& limits) {
  switch (code) {
    case simdjson::DEPTH_ERROR:
      return "request JSON is nested deeper than the limit of " + Number(limits.max_json_depth) +
             " levels";
    case simdjson::UTF8_ERROR:
      return "request JSON is not valid UTF-8";
    case simdjson::EMPTY:
      return "request JSON is empty";
    default:
      return std::string("request is not valid JSON: ") + simdjson::error_message(code);
  }
}

}  // namespace

tl::expected<InferRequest, ProtocolError> ParseInferRequest(std::span<const std::byte> body,
                                                            std::optional<std::size_t> json_length,
                                                            const ModelSchema& schema,
                                                            const ParseLimits& limits) {
  if (json_length && *json_length > body.size()) {
    return Fail("Inference-Header-Content-Length is " + Number(*json_length) +
                " but the body has only " + Number(body.size()) + " bytes");
  }
  const std::size_t json_size = json_length.value_or(body.size());
  if (json_size == 0) {
    return Fail(
        "the request JSON is empty: send an inference request object "
        "({\"inputs\": [...]})");
  }
  if (json_size > limits.max_json_bytes) {
    return Fail("the request's JSON is " + Number(json_size) + " bytes, more than the limit of " +
                    Number(limits.max_json_bytes),
                413);
  }
  const std::span<const std::byte> binary = body.subspan(json_size);

  // simdjson reads up to SIMDJSON_PADDING bytes past the JSON: the binary section serves when it
  // is long enough; otherwise the parser copies the JSON into its own padded buffer.
  thread_local simdjson::dom::parser reused_parser;
  std::unique_ptr<simdjson::dom::parser> own_parser;
  simdjson::dom::parser* parser = &reused_parser;
  if (json_size > kReusedParserMaxBytes) {
    own_parser = std::make_unique<simdjson::dom::parser>();
    parser = own_parser.get();
  }
  const std::size_t depth = std::max<std::size_t>(limits.max_json_depth, 1);
  if (parser->max_depth() != depth || parser->capacity() < json_size) {
    if (parser->allocate(std::max(parser->capacity(), json_size), depth) != simdjson::SUCCESS) {
      return Fail("cannot allocate memory to parse the request", 500);
    }
  }
  const bool padded = binary.size() >= simdjson::SIMDJSON_PADDING;
  element root;
  if (const auto error =
          parser->parse(reinterpret_cast<const std::uint8_t*>(body.data()), json_size, !padded)
              .get(root)) {
    if (error == simdjson::MEMALLOC)
      return Fail("cannot allocate memory to parse the request", 500);
    return Fail(JsonErrorMessage(error, limits));
  }
  if (root.type() != element_type::OBJECT) return Fail("the request must be a JSON object");
  const auto object = AsObject(root);
  if (const auto key = DuplicateKey(object)) {
    return Fail("duplicate key \"" + std::string(*key) + "\" in the request");
  }

  InferRequest request;
  std::optional<element> inputs_value, outputs_value;
  RequestParams params;
  for (const auto field : object) {
    if (field.key == "id") {
      if (field.value.type() != element_type::STRING) return Fail("\"id\" must be a string");
      request.id = field.value.get_string().value_unsafe();
    } else if (field.key == "parameters") {
      auto read = ReadRequestParameters(field.value);
      if (!read) return tl::unexpected(std::move(read).error());
      params = *read;
    } else if (field.key == "inputs") {
      inputs_value = field.value;
    } else if (field.key == "outputs") {
      outputs_value = field.value;
    }
  }
  request.timeout_us = params.timeout_us;
  if (!inputs_value) return Fail("missing \"inputs\"");
  if (inputs_value->type() != element_type::ARRAY) return Fail("\"inputs\" must be an array");

  // Inputs in request order (the order of the binary section), then matched to the schema.
  std::vector<RawInput> raw;
  raw.reserve(schema.inputs.size());
  std::vector<std::size_t> slot_of(schema.inputs.size(), SIZE_MAX);  // schema index -> raw
  for (const element entry : AsArray(*inputs_value)) {
    auto input = ReadInput(entry, raw.size(), json_length.has_value());
    if (!input) return tl::unexpected(std::move(input).error());
    std::size_t slot = 0;
    while (slot < schema.inputs.size() && schema.inputs[slot].name != input->name) ++slot;
    if (slot == schema.inputs.size()) {
      return Fail("unknown input " + Quote(input->name) +
                  "; model inputs: " + NameList(schema.inputs));
    }
    if (slot_of[slot] != SIZE_MAX) return Fail("input " + Quote(input->name) + " is given twice");
    if (auto valid = Validate(*input, schema.inputs[slot], limits); !valid) {
      return tl::unexpected(std::move(valid).error());
    }
    slot_of[slot] = raw.size();
    raw.push_back(std::move(*input));
  }
  for (std::size_t i = 0; i < schema.inputs.size(); ++i) {
    if (slot_of[i] == SIZE_MAX) {
      return Fail("missing input " + Quote(schema.inputs[i].name) +
                  "; model inputs: " + NameList(schema.inputs));
    }
  }

  // Batching: only when every input's first dimension is declared variable.
  const bool batched =
      !schema.inputs.empty() &&
      std::all_of(schema.inputs.begin(), schema.inputs.end(),
                  [](const TensorSpec& spec) { return !spec.shape.empty() && spec.shape[0] < 0; });
  if (batched) {
    const RawInput& first = raw[slot_of[0]];
    request.batch_size = first.shape[0];
    for (std::size_t i = 1; i < schema.inputs.size(); ++i) {
      const RawInput& other = raw[slot_of[i]];
      if (other.shape[0] != request.batch_size) {
        return Fail("input " + Quote(other.name) + ": dim 0 (the batch size) is " +
                    std::to_string(other.shape[0]) + " but input " + Quote(first.name) + " has " +
                    std::to_string(request.batch_size));
      }
    }
  }

  auto outputs = ReadOutputs(outputs_value, schema, params.binary_output);
  if (!outputs) return tl::unexpected(std::move(outputs).error());
  request.outputs = std::move(*outputs);

  // The binary section: inputs with binary_data_size take consecutive bytes in request order.
  std::uint64_t binary_total = 0;
  for (const RawInput& input : raw) {
    if (!input.binary_size) continue;
    if (*input.binary_size != input.bytes) {
      return Fail("input " + Quote(input.name) + ": binary_data_size is " +
                  Number(*input.binary_size) + " but shape " + ShapeText(input.shape) + " of " +
                  KServeDTypeName(input.dtype) + " needs " + Number(input.bytes) + " bytes");
    }
    binary_total += input.bytes;  // each <= SIZE_MAX / 2 and <= the body: no overflow
    if (binary_total > binary.size()) break;
  }
  if (binary_total != binary.size()) {
    return Fail("the binary section after the JSON (Inference-Header-Content-Length " +
                Number(json_size) + ") is " + Number(binary.size()) +
                " bytes but the inputs' binary_data_size add up to " +
                (binary_total > binary.size() ? "more" : Number(binary_total)));
  }

  // One allocation for every JSON-encoded input, 8-byte aligned each. A JSON array of n numbers
  // takes at least 2n - 1 bytes, so a shape the text cannot possibly fill is refused before
  // anything is allocated.
  core::ByteSize storage_size;
  for (const std::size_t r : slot_of) {
    const RawInput& input = raw[r];
    if (input.binary_size) continue;
    if (input.count > json_size / 2 + 1) {
      return Fail("input " + Quote(input.name) + ": \"data\" has " +
                  Number(CountLeaves(AsArray(*input.data))) + " elements but shape " +
                  ShapeText(input.shape) + " needs " + Number(input.count));
    }
    storage_size += core::ByteSize((input.bytes + 7) & ~std::uint64_t{7});
  }
  if (!storage_size.FitsIn(std::numeric_limits<std::size_t>::max() / 2)) {
    return Fail("the request's tensors are too large");
  }
  try {
    request.storage.resize(static_cast<std::size_t>(*storage_size.value()));
  } catch (const std::bad_alloc&) {
    return Fail("cannot allocate memory for the request's tensors", 500);
  }

  request.inputs.reserve(schema.inputs.size());
  std::size_t offset = 0;
  std::size_t binary_offset = 0;
  std::vector<std::size_t> binary_offsets(raw.size());
  for (std::size_t r = 0; r < raw.size(); ++r) {
    if (!raw[r].binary_size) continue;
    binary_offsets[r] = binary_offset;
    binary_offset += raw[r].bytes;
  }
  for (std::size_t i = 0; i < schema.inputs.size(); ++i) {
    RawInput& input = raw[slot_of[i]];
    InputTensor tensor;
    tensor.name = schema.inputs[i].name;
    tensor.dtype = input.dtype;
    if (input.binary_size) {
      tensor.data = binary.subspan(binary_offsets[slot_of[i]], input.bytes);
    } else {
      std::byte* out = request.storage.data() + offset;
      if (auto decoded = Decode(input, out); !decoded) {
        return tl::unexpected(std::move(decoded).error());
      }
      tensor.data = std::span<const std::byte>(out, input.bytes);
      offset += (input.bytes + 7) & ~std::size_t{7};
    }
    tensor.shape = std::move(input.shape);
    request.inputs.push_back(std::move(tensor));
  }
  return request;
}

}  // namespace dlsys::serve
