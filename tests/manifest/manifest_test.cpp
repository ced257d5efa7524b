#include "manifest/manifest.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

namespace dlsys::manifest {
namespace {

#define EXPECT_HAS(haystack, needle)                               \
  EXPECT_NE(std::string(haystack).find(needle), std::string::npos) \
      << "'" << (haystack) << "' lacks '" << (needle) << "'"

std::string Digest(char c) { return std::string(64, c); }

TensorSpec T(std::string name, std::string dtype, std::vector<std::int64_t> shape) {
  return TensorSpec{std::move(name), std::move(dtype), std::move(shape)};
}

// A manifest that passes every rule: a sharded file, an example payload and the model.
Manifest ValidManifest() {
  Manifest m;
  m.name = "mlp";
  m.version = "1.2.0-rc.1+build.5";
  m.description = "A small MLP";
  m.owner = "ml-team@example.com";
  m.license = "Apache-2.0";
  m.created = "2026-01-31T12:00:00Z";
  m.lineage_json = R"({"dataset":"mnist"})";
  m.hyperparameters_json = R"({"b":1,"a":{"lr":0.001,"layers":[64,32]}})";
  m.training_json = R"({"epochs":10})";
  m.metrics_json = R"({"accuracy":0.98})";
  m.dependencies_json = "{}";
  m.requirements_json = R"({"min_memory_bytes":1048576})";
  m.entry_file = "model.pt";
  m.entry_method = "forward";
  m.inputs = {T("x", "float32", {-1, 4})};
  m.outputs = {T("output0", "float32", {-1, 2})};
  m.model.methods = {{"forward", "forward(Tensor x) -> Tensor", {"x"}}};
  m.model.parameters = {2, 10, {{"float32", 40}}};
  m.model.buffers = {1, 3, {{"int64", 24}}};
  m.model.operators = {"aten::linear", "aten::relu"};
  m.model.file_format_version = 8;
  m.model.runtime_version = "1.13.1";
  m.model.devices = {"cpu"};
  Example e;
  e.name = "basic";
  e.inputs = {ExampleTensor{T("x", "float32", {1, 4}), "examples/basic/inputs/x.bin"}};
  e.outputs = {ExampleTensor{T("output0", "float32", {1, 2}), "examples/basic/outputs/output0.bin"}};
  e.rtol = 0.001;
  e.atol = 0.25;
  m.examples = {e};
  FileRecord big{"data/big.bin", 3000, 0644, "", 1024, {Digest('1'), Digest('2'), Digest('3')}};
  FileRecord x{"examples/basic/inputs/x.bin", 16, 0644, Digest('a'), 0, {}};
  FileRecord y{"examples/basic/outputs/output0.bin", 8, 0644, Digest('b'), 0, {}};
  FileRecord model{"model.pt", 1234, 0600, Digest('c'), 0, {}};
  m.files = {big, x, y, model};
  m.tool_version = "0.1.0";
  return m;
}

void ExpectTensorEq(const TensorSpec& a, const TensorSpec& b) {
  EXPECT_EQ(a.name, b.name);
  EXPECT_EQ(a.dtype, b.dtype);
  EXPECT_EQ(a.shape, b.shape);
}

void ExpectManifestEq(const Manifest& a, const Manifest& b) {
  EXPECT_EQ(a.format_version, b.format_version);
  EXPECT_EQ(a.name, b.name);
  EXPECT_EQ(a.version, b.version);
  EXPECT_EQ(a.description, b.description);
  EXPECT_EQ(a.owner, b.owner);
  EXPECT_EQ(a.license, b.license);
  EXPECT_EQ(a.created, b.created);
  EXPECT_EQ(a.lineage_json, b.lineage_json);
  EXPECT_EQ(a.hyperparameters_json, b.hyperparameters_json);
  EXPECT_EQ(a.training_json, b.training_json);
  EXPECT_EQ(a.metrics_json, b.metrics_json);
  EXPECT_EQ(a.dependencies_json, b.dependencies_json);
  EXPECT_EQ(a.requirements_json, b.requirements_json);
  EXPECT_EQ(a.entry_file, b.entry_file);
  EXPECT_EQ(a.entry_method, b.entry_method);
  ASSERT_EQ(a.inputs.size(), b.inputs.size());
  for (std::size_t i = 0; i < a.inputs.size(); ++i) ExpectTensorEq(a.inputs[i], b.inputs[i]);
  ASSERT_EQ(a.outputs.size(), b.outputs.size());
  for (std::size_t i = 0; i < a.outputs.size(); ++i) ExpectTensorEq(a.outputs[i], b.outputs[i]);
  ASSERT_EQ(a.model.methods.size(), b.model.methods.size());
  for (std::size_t i = 0; i < a.model.methods.size(); ++i) {
    EXPECT_EQ(a.model.methods[i].name, b.model.methods[i].name);
    EXPECT_EQ(a.model.methods[i].schema, b.model.methods[i].schema);
    EXPECT_EQ(a.model.methods[i].arg_names, b.model.methods[i].arg_names);
  }
  EXPECT_EQ(a.model.parameters.count, b.model.parameters.count);
  EXPECT_EQ(a.model.parameters.elements, b.model.parameters.elements);
  EXPECT_EQ(a.model.parameters.bytes_by_dtype, b.model.parameters.bytes_by_dtype);
  EXPECT_EQ(a.model.buffers.count, b.model.buffers.count);
  EXPECT_EQ(a.model.buffers.elements, b.model.buffers.elements);
  EXPECT_EQ(a.model.buffers.bytes_by_dtype, b.model.buffers.bytes_by_dtype);
  EXPECT_EQ(a.model.operators, b.model.operators);
  EXPECT_EQ(a.model.file_format_version, b.model.file_format_version);
  EXPECT_EQ(a.model.runtime_version, b.model.runtime_version);
  EXPECT_EQ(a.model.devices, b.model.devices);
  ASSERT_EQ(a.examples.size(), b.examples.size());
  for (std::size_t i = 0; i < a.examples.size(); ++i) {
    const Example &x = a.examples[i], &y = b.examples[i];
    EXPECT_EQ(x.name, y.name);
    EXPECT_DOUBLE_EQ(x.rtol, y.rtol);
    EXPECT_DOUBLE_EQ(x.atol, y.atol);
    ASSERT_EQ(x.inputs.size(), y.inputs.size());
    for (std::size_t k = 0; k < x.inputs.size(); ++k) {
      ExpectTensorEq(x.inputs[k].tensor, y.inputs[k].tensor);
      EXPECT_EQ(x.inputs[k].path, y.inputs[k].path);
    }
    ASSERT_EQ(x.outputs.size(), y.outputs.size());
    for (std::size_t k = 0; k < x.outputs.size(); ++k) {
      ExpectTensorEq(x.outputs[k].tensor, y.outputs[k].tensor);
      EXPECT_EQ(x.outputs[k].path, y.outputs[k].path);
    }
  }
  ASSERT_EQ(a.files.size(), b.files.size());
  for (std::size_t i = 0; i < a.files.size(); ++i) {
    const FileRecord &x = a.files[i], &y = b.files[i];
    EXPECT_EQ(x.path, y.path);
    EXPECT_EQ(x.size, y.size);
    EXPECT_EQ(x.mode, y.mode);
    EXPECT_EQ(x.sha256, y.sha256);
    EXPECT_EQ(x.shard_bytes, y.shard_bytes);
    EXPECT_EQ(x.shards, y.shards);
  }
  EXPECT_EQ(a.tool_version, b.tool_version);
}

// Replaces the one occurrence of `from` in `text` (the test fails if it is not exactly once).
std::string ReplaceOnce(std::string text, const std::string& from, const std::string& to) {
  const auto pos = text.find(from);
  EXPECT_NE(pos, std::string::npos) << "'" << from << "' not in the manifest text";
  if (pos == std::string::npos) return text;
  EXPECT_EQ(text.find(from, pos + 1), std::string::npos) << "'" << from << "' occurs twice";
  return text.replace(pos, from.size(), to);
}

// Parses text that must be rejected; returns the message (kInvalid is asserted).
std::string ParseError(const std::string& text) {
  auto r = Parse(text);
  EXPECT_FALSE(r) << "accepted: " << text.substr(0, 200);
  if (r) return "";
  EXPECT_EQ(r.error().code, Code::kInvalid) << r.error().message;
  return r.error().message;
}

std::string ParseError(const Manifest& m) { return ParseError(Serialize(m)); }

// --- Serialize / Parse round trip -----------------------------------------------------------

TEST(ManifestTest, SerializeParseRoundTrip) {
  Manifest m = ValidManifest();
  m.hyperparameters_json = R"({"a":{"layers":[64,32],"lr":0.001},"b":1})";  // canonical form
  const std::string text = Serialize(m);
  auto parsed = Parse(text);
  ASSERT_TRUE(parsed) << parsed.error().message;
  ExpectManifestEq(*parsed, m);
}

TEST(ManifestTest, RoundTripWithoutOptionalSections) {
  Manifest m = ValidManifest();
  m.examples.clear();
  m.inputs.clear();
  m.outputs.clear();
  m.description.clear();
  m.owner.clear();
  m.license.clear();
  m.files = {m.files.back()};  // just model.pt
  m.model.devices.clear();
  m.hyperparameters_json = "{}";
  auto parsed = Parse(Serialize(m));
  ASSERT_TRUE(parsed) << parsed.error().message;
  ExpectManifestEq(*parsed, m);
}

TEST(ManifestTest, SerializeIsCanonical) {
  const std::string text = Serialize(ValidManifest());
  // Keys sorted by byte value at every level; no insignificant white space.
  EXPECT_EQ(text.rfind(R"({"created":"2026-01-31T12:00:00Z","dependencies":{},"description":)", 0),
            0u)
      << text.substr(0, 120);
  EXPECT_HAS(text, R"("hyperparameters":{"a":{"layers":[64,32],"lr":0.001},"b":1})");
  EXPECT_HAS(text, R"("entry_point":{"file":"model.pt","method":"forward"})");
  EXPECT_HAS(text, R"({"dtype":"float32","name":"x","shape":[-1,4]})");
  EXPECT_HAS(text, R"({"mode":420,"path":"data/big.bin","shard_bytes":1024,"shards":[)");
  EXPECT_HAS(text, R"({"mode":384,"path":"model.pt","sha256":")");  // mode 0600 is 384
  EXPECT_EQ(text.find(": "), std::string::npos);
  EXPECT_EQ(text.find(", "), std::string::npos);
  EXPECT_EQ(text.find('\n'), std::string::npos);
  EXPECT_EQ(text.back(), '}');
  EXPECT_NE(text.find(R"(,"version":"1.2.0-rc.1+build.5"})"), std::string::npos);
}

TEST(ManifestTest, ReserialisingParsedManifestIsByteIdentical) {
  const std::string text = Serialize(ValidManifest());
  auto parsed = Parse(text);
  ASSERT_TRUE(parsed) << parsed.error().message;
  EXPECT_EQ(Serialize(*parsed), text);
}

TEST(ManifestTest, SerializeNormalisesFreeFormSections) {
  Manifest m = ValidManifest();
  m.metrics_json = R"({ "z" : 1 , "a" : [ 1 , 2 ] })";
  m.training_json = "";  // absent
  const std::string text = Serialize(m);
  EXPECT_HAS(text, R"("metrics":{"a":[1,2],"z":1})");
  EXPECT_HAS(text, R"("training":{})");
}

// --- Parse errors ---------------------------------------------------------------------------

TEST(ManifestParseTest, RejectsOtherFormatVersion) {
  const std::string text = Serialize(ValidManifest());
  const std::string msg = ParseError(ReplaceOnce(text, R"("format_version":1,)",
                                                 R"("format_version":2,)"));
  EXPECT_HAS(msg, "format_version");
  EXPECT_HAS(msg, "2");
}

TEST(ManifestParseTest, RejectsNonIntegerFormatVersion) {
  const std::string text = Serialize(ValidManifest());
  EXPECT_HAS(ParseError(ReplaceOnce(text, R"("format_version":1,)", R"("format_version":"1",)")),
             "manifest field 'format_version'");
}

TEST(ManifestParseTest, RejectsBadName) {
  Manifest m = ValidManifest();
  m.name = "My Model";
  const std::string msg = ParseError(m);
  EXPECT_HAS(msg, "manifest field 'name'");
  EXPECT_HAS(msg, "My Model");
}

TEST(ManifestParseTest, RejectsBadVersion) {
  Manifest m = ValidManifest();
  m.version = "1.2";
  const std::string msg = ParseError(m);
  EXPECT_HAS(msg, "manifest field 'version'");
  EXPECT_HAS(msg, "SemVer");
}

TEST(ManifestParseTest, RejectsBadCreated) {
  for (const char* created : {"2026-01-31 12:00:00", "2026-01-31T12:00:00+01:00", "yesterday", ""}) {
    Manifest m = ValidManifest();
    m.created = created;
    EXPECT_HAS(ParseError(m), "manifest field 'created'");
  }
}

TEST(ManifestParseTest, RejectsMissingEntryPoint) {
  const std::string text = Serialize(ValidManifest());
  const std::string msg = ParseError(
      ReplaceOnce(text, R"("entry_point":{"file":"model.pt","method":"forward"},)", ""));
  EXPECT_HAS(msg, "manifest field 'entry_point'");
  EXPECT_HAS(msg, "missing");
}

TEST(ManifestParseTest, RejectsEntryFileNotInFiles) {
  Manifest m = ValidManifest();
  m.entry_file = "other.pt";
  const std::string msg = ParseError(m);
  EXPECT_HAS(msg, "'entry_point.file'");
  EXPECT_HAS(msg, "other.pt");
}

TEST(ManifestParseTest, RejectsUnsortedFiles) {
  Manifest m = ValidManifest();
  std::swap(m.files[1], m.files[2]);
  const std::string msg = ParseError(m);
  EXPECT_HAS(msg, "'files[2].path'");
  EXPECT_HAS(msg, "sorted");
}

TEST(ManifestParseTest, RejectsDuplicateFiles) {
  Manifest m = ValidManifest();
  m.files.insert(m.files.begin() + 1, m.files[1]);
  const std::string msg = ParseError(m);
  EXPECT_HAS(msg, "'files[2].path'");
  EXPECT_HAS(msg, "examples/basic/inputs/x.bin");
}

TEST(ManifestParseTest, RejectsReservedPaths) {
  Manifest m = ValidManifest();
  m.files.push_back(FileRecord{"manifest.json", 1, 0644, Digest('d'), 0, {}});
  std::sort(m.files.begin(), m.files.end(),
            [](const FileRecord& a, const FileRecord& b) { return a.path < b.path; });
  EXPECT_HAS(ParseError(m), "reserved");
}

TEST(ManifestParseTest, RejectsBadSha256) {
  for (const std::string& bad : {Digest('A'), Digest('g'), std::string(63, 'a'), std::string()}) {
    Manifest m = ValidManifest();
    m.files[3].sha256 = bad;
    EXPECT_HAS(ParseError(m), "manifest field 'files[3].sha256'");
  }
}

TEST(ManifestParseTest, RejectsBadShardDigest) {
  Manifest m = ValidManifest();
  m.files[0].shards[1] = Digest('X');
  EXPECT_HAS(ParseError(m), "manifest field 'files[0].shards[1]'");
}

TEST(ManifestParseTest, RejectsShardCountMismatch) {
  Manifest m = ValidManifest();
  m.files[0].shards.pop_back();  // 3000 bytes in 1024-byte shards need 3
  std::string msg = ParseError(m);
  EXPECT_HAS(msg, "'files[0].shards'");
  EXPECT_HAS(msg, "needs 3");
  EXPECT_HAS(msg, "found 2");

  m = ValidManifest();
  m.files[0].shards.push_back(Digest('4'));
  EXPECT_HAS(ParseError(m), "'files[0].shards'");
}

TEST(ManifestParseTest, RejectsShardingOfASmallFile) {
  Manifest m = ValidManifest();
  m.files[0].size = 1024;  // fits in one shard: must use sha256
  m.files[0].shards = {Digest('1')};
  EXPECT_HAS(ParseError(m), "'files[0].shards'");
}

TEST(ManifestParseTest, RejectsZeroShardBytes) {
  const std::string text = Serialize(ValidManifest());
  const std::string msg =
      ParseError(ReplaceOnce(text, R"("shard_bytes":1024,)", R"("shard_bytes":0,)"));
  EXPECT_HAS(msg, "manifest field 'files[0].shard_bytes'");
}

TEST(ManifestParseTest, RejectsExamplePathNotInFiles) {
  Manifest m = ValidManifest();
  m.examples[0].inputs[0].path = "examples/basic/inputs/y.bin";
  const std::string msg = ParseError(m);
  EXPECT_HAS(msg, "'examples[0].inputs[0].path'");
  EXPECT_HAS(msg, "examples/basic/inputs/y.bin");
}

TEST(ManifestParseTest, RejectsDynamicDimensionInExample) {
  Manifest m = ValidManifest();
  m.examples[0].outputs[0].tensor.shape = {-1, 2};
  EXPECT_HAS(ParseError(m), "manifest field 'examples[0].outputs[0].shape[0]'");
}

TEST(ManifestParseTest, RejectsUnknownTopLevelKey) {
  const std::string text = Serialize(ValidManifest());
  const std::string msg = ParseError(ReplaceOnce(text, R"({"created":)", R"({"bogus":1,"created":)"));
  EXPECT_HAS(msg, "'bogus'");
  EXPECT_HAS(msg, "not a known field");
}

TEST(ManifestParseTest, RejectsInvalidDtype) {
  Manifest m = ValidManifest();
  m.inputs[0].dtype = "float33";
  const std::string msg = ParseError(m);
  EXPECT_HAS(msg, "manifest field 'inputs[0].dtype'");
  EXPECT_HAS(msg, "float33");
}

TEST(ManifestParseTest, RejectsShapeBelowMinusOne) {
  Manifest m = ValidManifest();
  m.outputs[0].shape = {4, -2};
  const std::string msg = ParseError(m);
  EXPECT_HAS(msg, "manifest field 'outputs[0].shape[1]'");
  EXPECT_HAS(msg, "-2");
}

TEST(ManifestParseTest, RejectsDuplicateTensorNames) {
  Manifest m = ValidManifest();
  m.inputs.push_back(m.inputs[0]);
  EXPECT_HAS(ParseError(m), "'inputs[1].name'");
}

TEST(ManifestParseTest, RejectsNonJson) {
  for (const char* text : {"", "not json", "{\"name\":", "[1,2]", "null"}) {
    const std::string msg = ParseError(text);
    EXPECT_HAS(msg, "manifest");
  }
  EXPECT_HAS(ParseError("{\"name\":"), "not valid JSON");
}

TEST(ManifestParseTest, RejectsTextOverTheLimit) {
  // Valid JSON padded with white space to one byte over the limit: rejected for its size.
  std::string text = Serialize(ValidManifest());
  text.append(kMaxManifestBytes + 1 - text.size(), ' ');
  ASSERT_EQ(text.size(), kMaxManifestBytes + 1);
  const std::string msg = ParseError(text);
  EXPECT_HAS(msg, "limit");
  text.pop_back();
  EXPECT_TRUE(Parse(text));
}

TEST(ManifestParseTest, RejectsMissingModelSummary) {
  const std::string text = Serialize(ValidManifest());
  EXPECT_HAS(ParseError(ReplaceOnce(text, R"("runtime_version":"1.13.1")", R"("runtime_version":7)")),
             "manifest field 'model.runtime_version'");
}

// --- CheckName / FindFile -------------------------------------------------------------------

TEST(CheckNameTest, AcceptsValidNames) {
  for (const std::string& name : {std::string("a"), std::string("mlp"), std::string("resnet-50"),
                                  std::string("my_model.v2"), std::string("0abc"),
                                  std::string(128, 'x')}) {
    EXPECT_TRUE(CheckName(name)) << name;
  }
}

TEST(CheckNameTest, RejectsInvalidNames) {
  for (const std::string& name :
       {std::string(""), std::string("-abc"), std::string(".abc"), std::string("_abc"),
        std::string("ABC"), std::string("a b"), std::string("a/b"), std::string("caf\xc3\xa9"),
        std::string(129, 'x'), std::string("a\n")}) {
    auto r = CheckName(name);
    ASSERT_FALSE(r) << "'" << name << "'";
    EXPECT_EQ(r.error().code, Code::kUsage);
    EXPECT_HAS(r.error().message, "a-z 0-9");
  }
}

TEST(FindFileTest, FindsExactPathsOnly) {
  const Manifest m = ValidManifest();
  const FileRecord* f = FindFile(m, "model.pt");
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(f->path, "model.pt");
  EXPECT_EQ(f->size, 1234u);
  ASSERT_NE(FindFile(m, "data/big.bin"), nullptr);
  EXPECT_EQ(FindFile(m, "data/big.bin")->shards.size(), 3u);
  EXPECT_EQ(FindFile(m, "model"), nullptr);
  EXPECT_EQ(FindFile(m, "model.pt2"), nullptr);
  EXPECT_EQ(FindFile(m, "aaa"), nullptr);
  EXPECT_EQ(FindFile(m, "zzz"), nullptr);
  EXPECT_EQ(FindFile(Manifest{}, "model.pt"), nullptr);
}

}  // namespace
}  // namespace dlsys::manifest
