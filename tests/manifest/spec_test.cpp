#include "manifest/spec.h"

#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "core/internal/json.h"
#include "manifest/internal/yaml_json.h"
#include "test_tmp.h"

namespace dlsys::manifest {
namespace {

using dlsys::testing::RandomBytes;
using dlsys::testing::Slurp;
using dlsys::testing::Spit;

using dlsys::testing::TempDir;

#define EXPECT_HAS(haystack, needle)                               \
  EXPECT_NE(std::string(haystack).find(needle), std::string::npos) \
      << "'" << (haystack) << "' lacks '" << (needle) << "'"

template <typename T>
std::string LittleEndian(const std::vector<T>& values) {
  std::string out(values.size() * sizeof(T), '\0');
  std::memcpy(out.data(), values.data(), out.size());  // test hosts are little-endian
  return out;
}

Spec MustParse(const std::string& yaml, const std::string& base_dir = "") {
  auto r = ParseSpec(yaml, base_dir);
  EXPECT_TRUE(r) << r.error().message;
  return r ? *r : Spec{};
}

Error MustFail(const std::string& yaml, const std::string& base_dir = "") {
  auto r = ParseSpec(yaml, base_dir);
  EXPECT_FALSE(r) << "accepted:\n" << yaml;
  return r ? Error{} : r.error();
}

// --- scalars and free maps ------------------------------------------------------------------

TEST(SpecTest, FreeMapsKeepYamlCoreSchemaTypes) {
  const Spec s = MustParse(R"(
hyperparameters:
  int: 1
  float: 1.5
  exp: 1.0e-5
  yes: true
  no: False
  quoted_num: "1.0"
  single: '2'
  quoted_bool: "true"
  nothing: ~
  null_word: null
  word: adam
  neg: -3
)");
  EXPECT_EQ(s.hyperparameters_json,
            R"({"exp":0.00001,"float":1.5,"int":1,"neg":-3,"no":false,"nothing":null,)"
            R"("null_word":null,"quoted_bool":"true","quoted_num":"1.0","single":"2",)"
            R"("word":"adam","yes":true})");
}

TEST(SpecTest, FreeMapsRoundTripNestedStructureAsCanonicalJson) {
  const Spec s = MustParse(R"(
lineage: {git_commit: 4f2c9e1, parent_version: 0.9.0}
hyperparameters: {hidden_units: 16, layers: [64, 32], opt: {name: adam, betas: [0.9, 0.999]}}
training: {optimizer: adam, batch_size: 32}
metrics: {accuracy: 0.967}
dependencies: {torch: "1.13"}
requirements: {}
)");
  EXPECT_EQ(s.lineage_json, R"({"git_commit":"4f2c9e1","parent_version":"0.9.0"})");
  EXPECT_EQ(s.hyperparameters_json,
            R"({"hidden_units":16,"layers":[64,32],"opt":{"betas":[0.9,0.999],"name":"adam"}})");
  EXPECT_EQ(s.training_json, R"({"batch_size":32,"optimizer":"adam"})");
  EXPECT_EQ(s.metrics_json, R"({"accuracy":0.967})");
  EXPECT_EQ(s.dependencies_json, R"({"torch":"1.13"})");
  EXPECT_EQ(s.requirements_json, "{}");
  EXPECT_EQ(s.training_json.find(' '), std::string::npos);
}

TEST(SpecTest, FreeMapMustBeAMap) {
  const Error e = MustFail("hyperparameters: [1, 2]\n");
  EXPECT_EQ(e.code, Code::kInvalid);
  EXPECT_HAS(e.message, "'hyperparameters'");
}

TEST(SpecTest, ReadsScalarFields) {
  const Spec s = MustParse(R"(
name: iris-mlp
version: 1.0.0
description: Classifies iris flowers
owner: ml-platform@example.com
license: Apache-2.0
compression: zstd
entry_point: {method: predict}
)");
  EXPECT_EQ(s.name, "iris-mlp");
  EXPECT_EQ(s.version, "1.0.0");
  EXPECT_EQ(s.description, "Classifies iris flowers");
  EXPECT_EQ(s.owner, "ml-platform@example.com");
  EXPECT_EQ(s.license, "Apache-2.0");
  EXPECT_EQ(s.compression, "zstd");
  EXPECT_EQ(s.entry_method, "predict");
}

TEST(SpecTest, QuotedVersionStaysAString) {
  EXPECT_EQ(MustParse("version: \"1.0\"\n").version, "1.0");
}

TEST(SpecTest, VersionAsBareNumberAsksForAString) {
  for (const char* yaml : {"version: 1.2\n", "version: 1\n"}) {
    const Error e = MustFail(yaml);
    EXPECT_EQ(e.code, Code::kInvalid);
    EXPECT_HAS(e.message, "field 'version'");
    EXPECT_HAS(e.message, "a string such as \"1.2.0\"");
  }
  EXPECT_HAS(MustFail("version: 1.2\n").message, "found 1.2");
}

// --- tensors --------------------------------------------------------------------------------

TEST(SpecTest, ReadsInputsAndOutputs) {
  const Spec s = MustParse(R"(
inputs:
  - {name: x, dtype: float32, shape: [-1, 4]}
  - {name: mask, dtype: bool, shape: []}
outputs:
  - {name: probabilities, dtype: FP32, shape: [-1, 3]}
)");
  ASSERT_EQ(s.inputs.size(), 2u);
  EXPECT_EQ(s.inputs[0].name, "x");
  EXPECT_EQ(s.inputs[0].dtype, "float32");
  EXPECT_EQ(s.inputs[0].shape, (std::vector<std::int64_t>{-1, 4}));
  EXPECT_EQ(s.inputs[1].dtype, "bool");
  EXPECT_TRUE(s.inputs[1].shape.empty());
  ASSERT_EQ(s.outputs.size(), 1u);
  EXPECT_EQ(s.outputs[0].dtype, "float32");  // KServe alias normalised
}

TEST(SpecTest, NormalisesDtypeAliases) {
  const Spec s = MustParse(R"(
inputs:
  - {name: a, dtype: FP32, shape: [1]}
  - {name: b, dtype: INT64, shape: [1]}
  - {name: c, dtype: BOOL, shape: [1]}
  - {name: d, dtype: FP16, shape: [1]}
)");
  ASSERT_EQ(s.inputs.size(), 4u);
  EXPECT_EQ(s.inputs[0].dtype, "float32");
  EXPECT_EQ(s.inputs[1].dtype, "int64");
  EXPECT_EQ(s.inputs[2].dtype, "bool");
  EXPECT_EQ(s.inputs[3].dtype, "float16");
}

TEST(SpecTest, RejectsBadTensors) {
  EXPECT_HAS(MustFail("inputs: [{name: x, dtype: float33, shape: [1]}]\n").message,
             "field 'inputs[0].dtype'");
  EXPECT_HAS(MustFail("inputs: [{name: x, dtype: float32, shape: [-2]}]\n").message,
             "field 'inputs[0].shape[0]'");
  EXPECT_HAS(MustFail("outputs: [{name: y, dtype: float32}]\n").message,
             "field 'outputs[0].shape'");
  EXPECT_HAS(MustFail("inputs: [{name: x, dtype: float32, shape: [1]}, "
                      "{name: x, dtype: int64, shape: [1]}]\n")
                 .message,
             "'inputs[1].name'");
  EXPECT_HAS(MustFail("inputs: [{name: x, dtype: float32, shape: [1], dims: 2}]\n").message,
             "'inputs[0].dims'");
}

// --- examples -------------------------------------------------------------------------------

TEST(SpecTest, InlineDataInfersShapeAndEncodesFloat32) {
  const Spec s = MustParse(R"(
inputs: [{name: x, dtype: float32, shape: [-1, 4]}]
examples:
  - name: two-flowers
    inputs:
      x: {data: [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]}
    rtol: 1.0e-3
    atol: 0.5
)");
  ASSERT_EQ(s.examples.size(), 1u);
  const SpecExample& e = s.examples[0];
  EXPECT_EQ(e.name, "two-flowers");
  EXPECT_DOUBLE_EQ(e.rtol, 1e-3);
  EXPECT_DOUBLE_EQ(e.atol, 0.5);
  ASSERT_EQ(e.inputs.size(), 1u);
  EXPECT_EQ(e.inputs[0].tensor.name, "x");
  EXPECT_EQ(e.inputs[0].tensor.dtype, "float32");
  EXPECT_EQ(e.inputs[0].tensor.shape, (std::vector<std::int64_t>{2, 4}));
  EXPECT_EQ(e.inputs[0].bytes,
            LittleEndian<float>({5.1f, 3.5f, 1.4f, 0.2f, 6.7f, 3.0f, 5.2f, 2.3f}));
}

TEST(SpecTest, ExampleDefaultsNameAndTolerances) {
  const Spec s = MustParse("examples: [{inputs: {x: {data: 1}}}]\n");
  ASSERT_EQ(s.examples.size(), 1u);
  EXPECT_EQ(s.examples[0].name, "example0");
  EXPECT_DOUBLE_EQ(s.examples[0].rtol, 1e-5);
  EXPECT_DOUBLE_EQ(s.examples[0].atol, 1e-6);
  ASSERT_EQ(s.examples[0].inputs.size(), 1u);
  EXPECT_TRUE(s.examples[0].inputs[0].tensor.shape.empty());  // a scalar
  EXPECT_EQ(s.examples[0].inputs[0].bytes, LittleEndian<float>({1.0f}));
}

TEST(SpecTest, ExplicitShapeMustMatchData) {
  const Error e = MustFail(R"(
examples:
  - name: a
    inputs:
      x: {shape: [3, 2], data: [[1, 2], [3, 4]]}
)");
  EXPECT_EQ(e.code, Code::kInvalid);
  EXPECT_HAS(e.message, "examples[0].inputs.x");
  EXPECT_HAS(e.message, "needs 24 bytes");
  EXPECT_HAS(e.message, "has 16");
}

TEST(SpecTest, ExplicitShapeMayReshapeData) {
  const Spec s = MustParse("examples: [{inputs: {x: {shape: [4], data: [[1, 2], [3, 4]]}}}]\n");
  ASSERT_EQ(s.examples.size(), 1u);
  EXPECT_EQ(s.examples[0].inputs[0].tensor.shape, (std::vector<std::int64_t>{4}));
}

TEST(SpecTest, RaggedListsAreRejected) {
  for (const char* data : {"[[1, 2], [3]]", "[[1, 2], 3]", "[[[1], [2]], [[3], [4, 5]]]",
                           "[1, [2, 3]]", "[1, []]", "[[], [1]]", "[[1], [[2]]]"}) {
    const Error e = MustFail(std::string("examples: [{inputs: {x: {data: ") + data + "}}}]\n");
    EXPECT_EQ(e.code, Code::kInvalid) << data;
    EXPECT_HAS(e.message, "ragged");
    EXPECT_HAS(e.message, "dlsys.yaml field 'examples[0].inputs.x.data'");
  }
  // The message says which element and why, against the shape of the first elements.
  EXPECT_EQ(MustFail("examples: [{inputs: {x: {data: [1, [2, 3]]}}}]\n").message,
            "dlsys.yaml field 'examples[0].inputs.x.data': nested lists are ragged: element [1] "
            "is a list of 2, expected a number (the first elements give the shape [2])");
  EXPECT_EQ(MustFail("examples: [{inputs: {x: {data: [[1, 2], 3]}}}]\n").message,
            "dlsys.yaml field 'examples[0].inputs.x.data': nested lists are ragged: element [1] "
            "is 3, expected a list of 2 (the first elements give the shape [2, 2])");
  EXPECT_HAS(MustFail("examples: [{inputs: {x: {data: [[1, 2], [3, 4], [5]]}}}]\n").message,
             "element [2] is a list of 1, expected a list of 2");
}

TEST(SpecTest, RegularNestedListsGiveTheirShape) {
  const Spec s = MustParse(R"(
examples:
  - name: shapes
    inputs:
      a: {data: [[[1, 2, 3], [4, 5, 6]]]}
      b: {data: []}
      c: {data: [[], []]}
)");
  ASSERT_EQ(s.examples.size(), 1u);
  ASSERT_EQ(s.examples[0].inputs.size(), 3u);
  EXPECT_EQ(s.examples[0].inputs[0].tensor.shape, (std::vector<std::int64_t>{1, 2, 3}));
  EXPECT_EQ(s.examples[0].inputs[0].bytes, LittleEndian<float>({1, 2, 3, 4, 5, 6}));
  EXPECT_EQ(s.examples[0].inputs[1].tensor.shape, (std::vector<std::int64_t>{0}));
  EXPECT_EQ(s.examples[0].inputs[2].tensor.shape, (std::vector<std::int64_t>{2, 0}));
  EXPECT_TRUE(s.examples[0].inputs[2].bytes.empty());
  // At most 16 dimensions.
  const std::string deep = std::string(17, '[') + "1" + std::string(17, ']');
  EXPECT_HAS(MustFail("examples: [{inputs: {x: {data: " + deep + "}}}]\n").message,
             "more than 16 nested lists");
}

TEST(SpecTest, IntegerDataIsRangeCheckedExactly) {
  // 2^63 is not an int64, although as a double it equals INT64_MAX as a double.
  const Error e =
      MustFail("examples: [{inputs: {x: {dtype: int64, data: [9223372036854775808]}}}]\n");
  EXPECT_HAS(e.message, "field 'examples[0].inputs.x.data'");
  EXPECT_HAS(e.message, "is not a valid int64 value");
  const Spec s = MustParse(
      "examples: [{inputs: {x: {dtype: int64, data: [9223372036854775807, "
      "-9223372036854775808]}}}]\n");
  ASSERT_EQ(s.examples.size(), 1u);
  EXPECT_EQ(s.examples[0].inputs[0].bytes, LittleEndian<std::int64_t>({INT64_MAX, INT64_MIN}));
  EXPECT_HAS(MustFail("examples: [{inputs: {x: {dtype: uint8, data: [256]}}}]\n").message,
             "256 is not a valid uint8 value");
  EXPECT_HAS(MustFail("examples: [{inputs: {x: {dtype: int8, data: [-129]}}}]\n").message,
             "-129 is not a valid int8 value");
  EXPECT_HAS(MustFail("examples: [{inputs: {x: {dtype: int32, data: [1.5]}}}]\n").message,
             "1.5 is not a valid int32 value");
  EXPECT_HAS(MustFail("examples: [{inputs: {x: {data: [1.0e39]}}}]\n").message,
             "is outside the range of float32");
}

TEST(SpecTest, ExampleSizeArithmeticCannotWrap) {
  // 2^40 * 2^40 * 2^40 * 4 bytes wraps to 0 in 64 bits, matching no data at all.
  const Error e = MustFail(
      "examples: [{inputs: {x: {shape: [1099511627776, 1099511627776, 1099511627776], "
      "data: []}}}]\n");
  EXPECT_EQ(e.code, Code::kInvalid);
  EXPECT_HAS(e.message, "field 'examples[0].inputs.x'");
  EXPECT_HAS(e.message, "needs more than 2^64 bytes");
}

TEST(SpecTest, NonNumericDataIsRejected) {
  EXPECT_HAS(MustFail("examples: [{inputs: {x: {data: [1, abc]}}}]\n").message, "expected numbers");
  EXPECT_HAS(MustFail("examples: [{inputs: {x: {dtype: bool, data: [true, 1.5]}}}]\n").message,
             "expected booleans");
}

TEST(SpecTest, BoolAndInt64Data) {
  const Spec s = MustParse(R"(
inputs:
  - {name: mask, dtype: bool, shape: [-1]}
  - {name: ids, dtype: INT64, shape: [-1]}
examples:
  - name: typed
    inputs:
      mask: {data: [true, false, true, 0, 1]}
      ids: {data: [1, -2, 9007199254740993]}
)");
  ASSERT_EQ(s.examples.size(), 1u);
  ASSERT_EQ(s.examples[0].inputs.size(), 2u);
  // Example inputs come out in key order of the YAML map after JSON conversion (sorted).
  const SpecTensor* mask = nullptr;
  const SpecTensor* ids = nullptr;
  for (const auto& t : s.examples[0].inputs) (t.tensor.name == "mask" ? mask : ids) = &t;
  ASSERT_NE(mask, nullptr);
  ASSERT_NE(ids, nullptr);
  EXPECT_EQ(mask->tensor.dtype, "bool");  // taken from the declared input
  EXPECT_EQ(mask->bytes, std::string("\x01\x00\x01\x00\x01", 5));
  EXPECT_EQ(ids->tensor.dtype, "int64");
  EXPECT_EQ(ids->tensor.shape, (std::vector<std::int64_t>{3}));
  EXPECT_EQ(ids->bytes, LittleEndian<std::int64_t>({1, -2, 9007199254740993LL}));
}

TEST(SpecTest, ExplicitDtypeOverridesDeclared) {
  const Spec s = MustParse(R"(
inputs: [{name: x, dtype: float32, shape: [-1]}]
examples: [{inputs: {x: {dtype: float64, data: [0.5, 2]}}}]
)");
  ASSERT_EQ(s.examples.size(), 1u);
  EXPECT_EQ(s.examples[0].inputs[0].tensor.dtype, "float64");
  EXPECT_EQ(s.examples[0].inputs[0].bytes, LittleEndian<double>({0.5, 2.0}));
}

TEST(SpecTest, Float16InlineDataIsRejected) {
  EXPECT_HAS(MustFail("examples: [{inputs: {x: {dtype: float16, data: [1]}}}]\n").message, "file:");
}

TEST(SpecTest, DataAndFileAreExclusive) {
  EXPECT_HAS(MustFail("examples: [{inputs: {x: {shape: [1], data: [1], file: x.bin}}}]\n").message,
             "exactly one of");
  EXPECT_HAS(MustFail("examples: [{inputs: {x: {shape: [1]}}}]\n").message, "exactly one of");
}

TEST(SpecTest, FileDataIsReadRelativeToBaseDir) {
  TempDir dir;
  const std::string bytes = LittleEndian<float>({1.0f, 2.0f, 3.0f, 4.0f, 5.0f, 6.0f});
  Spit(dir / "x.bin", bytes);
  const Spec s = MustParse("examples: [{name: f, inputs: {x: {shape: [2, 3], file: x.bin}}}]\n",
                           dir.path().string());
  ASSERT_EQ(s.examples.size(), 1u);
  ASSERT_EQ(s.examples[0].inputs.size(), 1u);
  EXPECT_EQ(s.examples[0].inputs[0].bytes, bytes);
  EXPECT_EQ(s.examples[0].inputs[0].tensor.shape, (std::vector<std::int64_t>{2, 3}));
}

TEST(SpecTest, FileDataNeedsShape) {
  TempDir dir;
  Spit(dir / "x.bin", std::string(4, '\0'));
  EXPECT_HAS(MustFail("examples: [{inputs: {x: {file: x.bin}}}]\n", dir.path().string()).message,
             "examples[0].inputs.x.shape");
}

TEST(SpecTest, MissingFileIsNotFound) {
  TempDir dir;
  const Error e =
      MustFail("examples: [{inputs: {x: {shape: [1], file: nope.bin}}}]\n", dir.path().string());
  EXPECT_EQ(e.code, Code::kNotFound);
  EXPECT_HAS(e.message, "nope.bin");
  EXPECT_HAS(e.message, "examples[0].inputs.x.file");
}

TEST(SpecTest, FileSizeMustMatchShape) {
  TempDir dir;
  Spit(dir / "x.bin", std::string(10, '\0'));
  const Error e =
      MustFail("examples: [{inputs: {x: {shape: [2, 2], file: x.bin}}}]\n", dir.path().string());
  EXPECT_EQ(e.code, Code::kInvalid);
  EXPECT_HAS(e.message, "needs 16 bytes");
  EXPECT_HAS(e.message, "has 10");
}

TEST(SpecTest, DuplicateExampleNamesAreRejected) {
  const Error e = MustFail(R"(
examples:
  - {name: same, inputs: {x: {data: [1]}}}
  - {name: same, inputs: {x: {data: [2]}}}
)");
  EXPECT_EQ(e.code, Code::kInvalid);
  EXPECT_HAS(e.message, "'examples[1].name'");
  EXPECT_HAS(e.message, "unique");
}

TEST(SpecTest, ExampleNeedsInputs) {
  EXPECT_HAS(MustFail("examples: [{name: a}]\n").message, "'examples[0].inputs'");
  EXPECT_HAS(MustFail("examples: [{name: a, inputs: {}}]\n").message, "'examples[0].inputs'");
  EXPECT_HAS(MustFail("examples: [{name: Bad Name, inputs: {x: {data: 1}}}]\n").message,
             "'examples[0].name'");
}

// --- files ----------------------------------------------------------------------------------

TEST(SpecTest, FilesListWithDefaultAndExplicitArchivePaths) {
  const Spec s = MustParse(R"(
files:
  - labels.txt
  - {path: tokenizer/vocab.json, as: files/vocab.json}
  - {path: /abs/dir/notes.md}
  - sub/dir/readme.txt
)",
                           "/base");
  ASSERT_EQ(s.files.size(), 4u);
  EXPECT_EQ(s.files[0].source, "/base/labels.txt");
  EXPECT_EQ(s.files[0].archive_path, "files/labels.txt");
  EXPECT_EQ(s.files[1].source, "/base/tokenizer/vocab.json");
  EXPECT_EQ(s.files[1].archive_path, "files/vocab.json");
  EXPECT_EQ(s.files[2].source, "/abs/dir/notes.md");
  EXPECT_EQ(s.files[2].archive_path, "files/notes.md");
  EXPECT_EQ(s.files[3].source, "/base/sub/dir/readme.txt");
  EXPECT_EQ(s.files[3].archive_path, "files/readme.txt");
}

TEST(SpecTest, FilesRejectsBadEntries) {
  EXPECT_HAS(MustFail("files: [42]\n").message, "'files[0]'");
  EXPECT_HAS(MustFail("files: [{as: x}]\n").message, "'files[0].path'");
  EXPECT_HAS(MustFail("files: [{path: a, to: b}]\n").message, "'files[0].to'");
}

TEST(SpecTest, DefaultArchivePathUsesBasename) {
  EXPECT_EQ(DefaultArchivePath("a/b/c.txt"), "files/c.txt");
  EXPECT_EQ(DefaultArchivePath("c.txt"), "files/c.txt");
}

// --- document-level errors ------------------------------------------------------------------

TEST(SpecTest, UnknownKeyIsRejected) {
  const Error e = MustFail("name: a\nhyperparameter: {lr: 1}\n");
  EXPECT_EQ(e.code, Code::kInvalid);
  EXPECT_HAS(e.message, "dlsys.yaml field 'hyperparameter'");
  EXPECT_HAS(e.message, "not a known field");
}

TEST(SpecTest, MalformedYamlNamesTheLine) {
  auto r = ParseSpec("name: a\nversion: \"1.0.0\"\ninputs: [a, b\nowner: x\n", "", "my.yaml");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Code::kInvalid);
  EXPECT_HAS(r.error().message, "my.yaml: line ");
  EXPECT_HAS(r.error().message, "not valid YAML");

  auto bad_indent = ParseSpec("name: a\n  version: 1\n", "");
  ASSERT_FALSE(bad_indent);
  EXPECT_HAS(bad_indent.error().message, "dlsys.yaml: line 2");
}

TEST(SpecTest, DeepNestingIsRejected) {
  const std::string flow =
      "hyperparameters: {a: " + std::string(100, '[') + std::string(100, ']') + "}\n";
  EXPECT_HAS(MustFail(flow).message, "nesting deeper than");

  std::string block = "hyperparameters:\n";
  for (int i = 0; i < 80; ++i)
    block += std::string(2 * (i + 1), ' ') + "k" + std::to_string(i) + ":\n";
  EXPECT_HAS(MustFail(block).message, "nesting deeper than");

  // Moderate nesting is fine.
  EXPECT_EQ(MustParse("hyperparameters: {a: [[[1]]]}\n").hyperparameters_json, R"({"a":[[[1]]]})");
}

TEST(SpecTest, EmptyDocumentIsAnEmptySpec) {
  for (const char* yaml : {"", "\n", "# only a comment\n", "---\n"}) {
    auto r = ParseSpec(yaml, "");
    ASSERT_TRUE(r) << "'" << yaml << "': " << r.error().message;
    EXPECT_TRUE(r->name.empty());
    EXPECT_TRUE(r->inputs.empty());
    EXPECT_TRUE(r->files.empty());
    EXPECT_EQ(r->hyperparameters_json, "{}");
    EXPECT_EQ(r->entry_method, "forward");
  }
}

TEST(SpecTest, NonMapDocumentIsRejected) { EXPECT_HAS(MustFail("- a\n- b\n").message, "'(root)'"); }

TEST(SpecTest, JsonSpecsAreStrictToo) {
  const Error dup = MustFail(R"({"name": "a", "owner": "x", "name": "b"})");
  EXPECT_EQ(dup.code, Code::kInvalid);
  EXPECT_EQ(dup.message, "dlsys.yaml: duplicate key 'name' at byte 28");
  EXPECT_HAS(MustFail(R"({"hyperparameters": {"lr": 1, "lr": 2}})").message, "duplicate key 'lr'");
  EXPECT_HAS(MustFail("{\"name\": \"caf\xC3\"}").message, "dlsys.yaml: invalid UTF-8 at byte 13");
  EXPECT_HAS(MustFail(R"({"hyperparameters": {"seed": 9007199254740993}})").message,
             "integer 9007199254740993");
  EXPECT_HAS(MustFail("{\"hyperparameters\": " + std::string(100000, '[')).message,
             "nesting deeper than 64 levels");
  EXPECT_EQ(MustParse(R"({"name": "a", "version": "1.0.0"})").name, "a");
}

TEST(SpecTest, YamlMustBeUtf8WithoutControlCharacters) {
  EXPECT_EQ(MustFail("name: a\nowner: \"caf\xC3\"\n").message,
            "dlsys.yaml: invalid UTF-8 at byte 19");
  EXPECT_EQ(MustFail("name: \xED\xA0\x80\n").message, "dlsys.yaml: invalid UTF-8 at byte 6");
  EXPECT_EQ(MustFail("caf\xC3\xA9: \xF4\x90\x80\x80\n").message,
            "dlsys.yaml: invalid UTF-8 at byte 7");
  EXPECT_EQ(MustFail(std::string("name: a\0b\n", 10)).message,
            "dlsys.yaml: control character 0x00 at byte 7");
  EXPECT_EQ(MustFail("name: \x1b[31mred\n").message,
            "dlsys.yaml: control character 0x1b at byte 6");
  EXPECT_EQ(MustParse("description: \"caf\xC3\xA9\\ttab\"\n").description, "caf\xC3\xA9\ttab");
}

TEST(SpecTest, FreeMapsMustFitCanonicalJson) {
  const Error e = MustFail("hyperparameters: {seed: 9007199254740993}\n");
  EXPECT_EQ(e.code, Code::kInvalid);
  EXPECT_HAS(e.message, "dlsys.yaml field 'hyperparameters'");
  EXPECT_HAS(e.message, "9007199254740993");
  EXPECT_HAS(e.message, "/seed");
  EXPECT_HAS(MustFail("metrics: {big: 1.0e17}\n").message, "dlsys.yaml field 'metrics'");
  EXPECT_EQ(MustParse("metrics: {big: 1.0e21, seed: 9007199254740991}\n").metrics_json,
            R"({"big":1e+21,"seed":9007199254740991})");
}

TEST(SpecTest, NumbersOutOfRangeAreRejected) {
  EXPECT_HAS(MustFail("hyperparameters: {x: 1.0e400}\n").message, "number 1.0e400 is out of range");
  EXPECT_HAS(MustFail("hyperparameters: {x: 99999999999999999999}\n").message,
             "dlsys.yaml: line 1, column 22: number 99999999999999999999 is out of range");
}

TEST(SpecTest, OnlyOneDocument) {
  EXPECT_HAS(MustFail("name: a\n---\nname: b\n").message, "more than one YAML document");
  EXPECT_HAS(MustFail("name: a\n---\n").message, "more than one YAML document");
  EXPECT_HAS(MustFail("name: a\n---\n- [1\n").message, "dlsys.yaml: ");
  EXPECT_EQ(MustParse("---\nname: a\n...\n").name, "a");
}

// yaml-cpp's parser recurses per nesting level: the converter stops it at the first level too
// deep, whatever the nesting looks like.
TEST(SpecTest, DeepBlockNestingIsRefusedNotCrashed) {
  std::string dashes = "hyperparameters:\n  a:\n    ";
  for (int i = 0; i < 100000; ++i) dashes += "- ";
  dashes += "x\n";
  EXPECT_HAS(MustFail(dashes).message, "nesting deeper than 64 levels");

  std::string top_dashes;
  for (int i = 0; i < 100000; ++i) top_dashes += "- ";
  EXPECT_HAS(MustFail(top_dashes + "x\n").message, "nesting deeper than 64 levels");

  // Lines of ever deeper indentation (as deep as the 16 MiB limit allows).
  std::string maps = "hyperparameters:\n";
  for (int i = 0; i < 5000; ++i) maps += std::string(i + 1, ' ') + "k:\n";
  EXPECT_HAS(MustFail(maps).message, "nesting deeper than 64 levels");
  std::string seqs;
  for (int i = 0; i < 5000; ++i) seqs += std::string(i, ' ') + "-\n";
  EXPECT_HAS(MustFail(seqs).message, "nesting deeper than 64 levels");

  // 100,000 lines of increasing indentation, one column at a time, cycled to stay in bounds.
  std::string lines = "hyperparameters:\n";
  for (int i = 0; i < 100000; ++i)
    lines += std::string(1 + i % 100, ' ') + "k" + std::to_string(i) + ":\n";
  EXPECT_HAS(MustFail(lines).message, "nesting deeper than 64 levels");
}

TEST(YamlToJsonTest, EnforcesTheLimits) {
  using internal::YamlToJsonValue;
  // Values: the map, the list, 1, 2, 3 and x.
  auto r = YamlToJsonValue("a: [1, 2, 3]\nb: x\n", "t.yaml", core::JsonLimits{100, 64, 6});
  ASSERT_TRUE(r) << r.error().message;
  r = YamlToJsonValue("a: [1, 2, 3]\nb: x\nc: y\n", "t.yaml", core::JsonLimits{100, 64, 6});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message, "t.yaml: line 3, column 4: more than 6 values");
  r = YamlToJsonValue("a: [[1]]\n", "t.yaml", core::JsonLimits{100, 2, 100});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message, "t.yaml: line 1, column 5: nesting deeper than 2 levels");
  r = YamlToJsonValue("a: 1\n", "t.yaml", core::JsonLimits{4, 64, 100});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message, "t.yaml: 5 bytes is more than the limit of 4 bytes");
}

TEST(SpecTest, DuplicateKeyIsRejectedWithLine) {
  const Error e = MustFail("name: a\nowner: x\nname: b\n");
  EXPECT_EQ(e.code, Code::kInvalid);
  EXPECT_HAS(e.message, "line 3");
  EXPECT_HAS(e.message, "'name' appears twice");

  EXPECT_HAS(MustFail("hyperparameters: {lr: 1, lr: 2}\n").message, "'lr' appears twice");
}

TEST(SpecTest, LoadSpecResolvesAgainstSpecDirectory) {
  TempDir dir;
  Spit(dir / "x.bin", LittleEndian<float>({7.0f}));
  Spit(dir / "dlsys.yaml",
       "name: m\nexamples: [{inputs: {x: {shape: [1], file: x.bin}}}]\n"
       "files: [labels.txt]\n");
  auto s = LoadSpec(dir / "dlsys.yaml");
  ASSERT_TRUE(s) << s.error().message;
  EXPECT_EQ(s->name, "m");
  ASSERT_EQ(s->examples.size(), 1u);
  EXPECT_EQ(s->examples[0].inputs[0].bytes, LittleEndian<float>({7.0f}));
  ASSERT_EQ(s->files.size(), 1u);
  EXPECT_EQ(s->files[0].source, dir / "labels.txt");

  auto missing = LoadSpec(dir / "nope.yaml");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, Code::kNotFound);
}

}  // namespace
}  // namespace dlsys::manifest
