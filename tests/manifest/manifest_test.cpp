#include "manifest/manifest.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
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
  e.outputs = {
      ExampleTensor{T("output0", "float32", {1, 2}), "examples/basic/outputs/output0.bin"}};
  e.rtol = 0.001;
  e.atol = 0.25;
  m.examples = {e};
  // 2 shards and 1000 bytes: 3 shard digests.
  FileRecord big{"data/big.bin", 2 * kShardBytes + 1000,
                 0644,           "",
                 kShardBytes,    {Digest('1'), Digest('2'), Digest('3')}};
  FileRecord x{"examples/basic/inputs/x.bin", 16, 0644, Digest('a'), 0, {}};  // 4 float32
  FileRecord y{"examples/basic/outputs/output0.bin", 8, 0644, Digest('b'), 0, {}};
  FileRecord model{"model.pt", 1234, 0644, Digest('c'), 0, {}};
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

// The canonical text of a manifest (Serialize must succeed).
std::string Text(const Manifest& m) {
  auto text = Serialize(m);
  EXPECT_TRUE(text) << text.error().message;
  return text ? *text : "";
}

std::string ParseError(const Manifest& m) { return ParseError(Text(m)); }

// The text of ValidManifest() with one replacement; the result must be rejected.
std::string EditError(const std::string& from, const std::string& to) {
  return ParseError(ReplaceOnce(Text(ValidManifest()), from, to));
}

// --- Serialize / Parse round trip -----------------------------------------------------------

TEST(ManifestTest, SerializeParseRoundTrip) {
  Manifest m = ValidManifest();
  m.hyperparameters_json = R"({"a":{"layers":[64,32],"lr":0.001},"b":1})";  // canonical form
  const std::string text = Text(m);
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
  auto parsed = Parse(Text(m));
  ASSERT_TRUE(parsed) << parsed.error().message;
  ExpectManifestEq(*parsed, m);
}

TEST(ManifestTest, SerializeIsCanonical) {
  const std::string text = Text(ValidManifest());
  // Keys sorted at every level; no insignificant white space.
  EXPECT_EQ(text.rfind(R"({"created":"2026-01-31T12:00:00Z","dependencies":{},"description":)", 0),
            0u)
      << text.substr(0, 120);
  EXPECT_HAS(text, R"("hyperparameters":{"a":{"layers":[64,32],"lr":0.001},"b":1})");
  EXPECT_HAS(text, R"("entry_point":{"file":"model.pt","method":"forward"})");
  EXPECT_HAS(text, R"({"dtype":"float32","name":"x","shape":[-1,4]})");
  EXPECT_HAS(text, R"({"mode":420,"path":"data/big.bin","shard_bytes":67108864,"shards":[)");
  EXPECT_HAS(text, R"({"mode":420,"path":"model.pt","sha256":")");
  EXPECT_HAS(text, R"("framework":{"format":"torchscript","name":"pytorch"})");
  EXPECT_HAS(text, R"("rtol":0.001)");
  EXPECT_EQ(text.find(": "), std::string::npos);
  EXPECT_EQ(text.find(", "), std::string::npos);
  EXPECT_EQ(text.find('\n'), std::string::npos);
  EXPECT_EQ(text.back(), '}');
  EXPECT_NE(text.find(R"(,"version":"1.2.0-rc.1+build.5"})"), std::string::npos);
}

TEST(ManifestTest, ReserialisingParsedManifestIsByteIdentical) {
  const std::string text = Text(ValidManifest());
  auto parsed = Parse(text);
  ASSERT_TRUE(parsed) << parsed.error().message;
  EXPECT_EQ(Text(*parsed), text);
}

TEST(ManifestTest, SerializeNormalisesFreeFormSections) {
  Manifest m = ValidManifest();
  m.metrics_json = R"({ "z" : 1.0 , "a" : [ 1 , 2e-3 ] })";
  m.training_json = "";  // absent
  const std::string text = Text(m);
  EXPECT_HAS(text, R"("metrics":{"a":[1,0.002],"z":1})");
  EXPECT_HAS(text, R"("training":{})");
}

TEST(ManifestTest, SerializeRefusesWhatItCannotWriteExactly) {
  Manifest m = ValidManifest();
  m.hyperparameters_json = R"({"seed":9007199254740993})";
  auto r = Serialize(m);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Code::kInvalid);
  EXPECT_HAS(r.error().message, "'hyperparameters'");
  EXPECT_HAS(r.error().message, "9007199254740993");

  m = ValidManifest();
  m.metrics_json = "[1]";
  r = Serialize(m);
  ASSERT_FALSE(r);
  EXPECT_HAS(r.error().message, "manifest field 'metrics': expected a JSON object");

  m = ValidManifest();
  m.description = "bad \xC3 byte";
  r = Serialize(m);
  ASSERT_FALSE(r);
  EXPECT_HAS(r.error().message, "not valid UTF-8");
  EXPECT_HAS(r.error().message, "/description");

  m = ValidManifest();
  m.files[3].size = std::uint64_t{1} << 60;  // beyond what JSON carries exactly
  r = Serialize(m);
  ASSERT_FALSE(r);
  EXPECT_HAS(r.error().message, "/files/3/size");

  m = ValidManifest();
  m.lineage_json = R"({"pad":")" + std::string(kMaxManifestBytes, 'x') + R"("})";
  r = Serialize(m);
  ASSERT_FALSE(r);
  EXPECT_HAS(r.error().message, "more than the limit");
}

// --- The text must be strict, bounded, canonical JSON ---------------------------------------

TEST(ManifestParseTest, RejectsNonCanonicalText) {
  const std::string text = Text(ValidManifest());
  struct Case {
    std::string from, to;
  };
  for (const Case& c : std::vector<Case>{
           {R"({"created":)", R"({ "created":)"},                        // white space
           {R"("rtol":0.001)", R"("rtol":1e-3)"},                        // number form
           {R"("atol":0.25)", R"("atol":0.250)"},                        // trailing zero
           {R"("name":"mlp")", R"("name":"ml\u0070")"},                  // needless escape
           {R"("license":"Apache-2.0")", R"("license":"Apache\/2.0")"},  // escaped slash
           {R"({"format":"torchscript","name":"pytorch"})",
            R"({"name":"pytorch","format":"torchscript"})"}}) {  // key order
    const std::string edited = ReplaceOnce(text, c.from, c.to);
    const std::string msg = ParseError(edited);
    const auto at =
        std::mismatch(edited.begin(), edited.end(), text.begin()).first - edited.begin();
    EXPECT_HAS(msg, "manifest is not in canonical form (RFC 8785) at byte " + std::to_string(at));
  }
  // A trailing newline is not canonical either.
  EXPECT_HAS(ParseError(text + "\n"), "at byte " + std::to_string(text.size()));
  EXPECT_HAS(ParseError(text + "\n"), "the canonical form has end of text");
}

TEST(ManifestParseTest, RejectsDuplicateKeys) {
  const std::string text = Text(ValidManifest());
  const std::string edited =
      ReplaceOnce(text, R"("name":"mlp",)", R"("name":"mlp","name":"evil",)");
  EXPECT_EQ(ParseError(edited), "manifest: duplicate key 'name' at byte " +
                                    std::to_string(text.find(R"("name":"mlp")") + 13));
  // At depth: inside files[3].
  const std::string deep =
      ReplaceOnce(text, R"("path":"model.pt",)", R"("path":"model.pt","path":"x",)");
  EXPECT_HAS(ParseError(deep), "manifest: duplicate key 'path' at byte ");
}

TEST(ManifestParseTest, RejectsInvalidUtf8) {
  const std::string text = Text(ValidManifest());
  const std::string edited = ReplaceOnce(text, R"("owner":"ml-team)", "\"owner\":\"ml-t\xC0\xAFm");
  EXPECT_EQ(ParseError(edited),
            "manifest: invalid UTF-8 at byte " + std::to_string(text.find("ml-team") + 4));
}

TEST(ManifestParseTest, RejectsTooManyValuesAndDeepNesting) {
  // Serialize refuses such sections too, so edit the text.
  std::string zeros = "[";
  for (std::size_t i = 0; i < kMaxManifestValues; ++i) zeros += i ? ",0" : "0";
  const std::string metrics = R"("metrics":{"accuracy":0.98})";
  EXPECT_HAS(EditError(metrics, R"("metrics":{"v":)" + zeros + "]}"),
             "manifest: more than 100000 values at byte ");
  const std::string deep = std::string(63, '[') + std::string(63, ']');
  EXPECT_HAS(EditError(metrics, R"("metrics":{"v":)" + deep + "}"),
             "manifest: nesting deeper than 64 levels at byte ");
  Manifest m = ValidManifest();
  m.metrics_json = R"({"v":)" + std::string(62, '[') + std::string(62, ']') + "}";
  EXPECT_TRUE(Parse(Text(m)));  // 1 (root) + 1 (metrics) + 62 = 64 levels
}

TEST(ManifestParseTest, RejectsTextOverTheLimit) {
  // A canonical manifest padded (in a free-form section) to exactly the limit is fine; a
  // byte more is refused for its size.
  Manifest m = ValidManifest();
  m.lineage_json = R"({"pad":""})";
  const std::size_t base = Text(m).size();
  m.lineage_json = R"({"pad":")" + std::string(kMaxManifestBytes - base, 'x') + R"("})";
  std::string text = Text(m);
  ASSERT_EQ(text.size(), kMaxManifestBytes);
  EXPECT_TRUE(Parse(text)) << Parse(text).error().message;
  text = ReplaceOnce(text, R"("pad":"x)", R"("pad":"xx)");
  ASSERT_EQ(text.size(), kMaxManifestBytes + 1);
  const std::string msg = ParseError(text);
  EXPECT_HAS(msg, "limit");
  EXPECT_HAS(msg, std::to_string(kMaxManifestBytes));
}

TEST(ManifestParseTest, RejectsNonJson) {
  for (const char* text : {"", "not json", "{\"name\":", "[1,2]", "null"}) {
    const std::string msg = ParseError(text);
    EXPECT_HAS(msg, "manifest");
  }
  EXPECT_HAS(ParseError("{\"name\":"), "not valid JSON");
}

TEST(ManifestParseTest, RejectsIntegersBeyondIJson) {
  // 2^64 - 1 used to come back as the dynamic dimension -1.
  EXPECT_HAS(EditError(R"("shape":[-1,4])", R"("shape":[18446744073709551615,4])"),
             "integer 18446744073709551615 is outside");
  EXPECT_HAS(EditError(R"("shape":[-1,4])", R"("shape":[9007199254740992,4])"), "at byte ");
  EXPECT_HAS(EditError(R"("size":1234)", R"("size":1e400)"), "is not finite");
}

// --- Fields ---------------------------------------------------------------------------------

TEST(ManifestParseTest, RejectsOtherFormatVersion) {
  const std::string msg = EditError(R"("format_version":1,)", R"("format_version":2,)");
  EXPECT_HAS(msg, "format_version");
  EXPECT_HAS(msg, "2");
}

TEST(ManifestParseTest, RejectsNonIntegerFormatVersion) {
  EXPECT_HAS(EditError(R"("format_version":1,)", R"("format_version":"1",)"),
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
  for (const char* created :
       {"2026-01-31 12:00:00", "2026-01-31T12:00:00+01:00", "yesterday", "", "2026-02-30T00:00:00Z",
        "2026-01-31T24:00:00Z", "2026-13-01T00:00:00Z", "2026-00-10T00:00:00Z",
        "2026-01-00T00:00:00Z", "2026-04-31T00:00:00Z", "2100-02-29T00:00:00Z",
        "2026-01-31T23:60:00Z", "2016-12-31T23:59:60Z", "1969-12-31T23:59:59Z",
        "2242-03-16T12:56:32Z", "9999-12-31T23:59:59Z", "2026-01-31T12:00:00.5Z",
        "2026-1-31T12:00:00Z"}) {
    Manifest m = ValidManifest();
    m.created = created;
    const std::string msg = ParseError(m);
    EXPECT_HAS(msg, "manifest field 'created'");
    auto epoch = CreatedEpoch(m);
    ASSERT_FALSE(epoch) << created;
    EXPECT_EQ(epoch.error().code, Code::kInvalid);
    EXPECT_HAS(epoch.error().message, "manifest field 'created'");
  }
}

TEST(ManifestParseTest, CreatedEpochCoversTheTarRange) {
  const std::vector<std::pair<const char*, std::int64_t>> cases = {
      {"1970-01-01T00:00:00Z", 0},
      {"2000-02-29T00:00:00Z", 951782400},
      {"2024-02-29T23:59:59Z", 1709251199},
      {"2026-01-31T12:00:00Z", 1769860800},
      {"2242-03-16T12:56:31Z", kMaxCreatedEpoch},
  };
  EXPECT_EQ(kMaxCreatedEpoch, 8589934591);  // 8^11 - 1
  for (const auto& [created, epoch] : cases) {
    Manifest m = ValidManifest();
    m.created = created;
    auto r = CreatedEpoch(m);
    ASSERT_TRUE(r) << created << ": " << r.error().message;
    EXPECT_EQ(*r, epoch) << created;
    EXPECT_TRUE(Parse(Text(m))) << created;
  }
}

TEST(ManifestParseTest, RejectsMissingEntryPoint) {
  const std::string msg = EditError(R"("entry_point":{"file":"model.pt","method":"forward"},)", "");
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

// pack always stores the model as model.pt: a manifest naming another listed file as the
// entry point would make --smoke load, say, the labels file as the model.
TEST(ManifestParseTest, RejectsEntryFileOtherThanModelPtEvenIfListed) {
  Manifest m = ValidManifest();
  m.entry_file = m.files.front().path == "model.pt" ? m.files.back().path : m.files.front().path;
  ASSERT_NE(m.entry_file, "model.pt");
  const std::string msg = ParseError(m);
  EXPECT_HAS(msg, "'entry_point.file'");
  EXPECT_HAS(msg, "is not 'model.pt'");
}

TEST(ManifestParseTest, RejectsEntryMethodNotAmongMethods) {
  Manifest m = ValidManifest();
  m.entry_method = "predict";
  const std::string msg = ParseError(m);
  EXPECT_HAS(msg, "manifest field 'entry_point.method'");
  EXPECT_HAS(msg, "'predict' is not among model.methods");
}

TEST(ManifestParseTest, RejectsNulls) {
  EXPECT_EQ(EditError(R"("description":"A small MLP")", R"("description":null)"),
            "manifest field 'description': expected a value, found null");
  EXPECT_HAS(EditError(R"("lineage":{"dataset":"mnist"})", R"("lineage":null)"),
             "manifest field 'lineage': expected a value, found null");
  EXPECT_HAS(EditError(R"("schema":"forward(Tensor x) -> Tensor")", R"("schema":null)"),
             "manifest field 'model.methods[0].schema': expected a value, found null");
}

// Every object has exactly its keys: an extra key and a missing key are both named.
TEST(ManifestParseTest, EveryObjectHasExactlyItsKeys) {
  struct Case {
    std::string from, to, field;
  };
  const std::vector<Case> extra = {
      {R"({"created":)", R"({"bogus":1,"created":)", "'bogus' is not a known field"},
      {R"({"file":"model.pt",)", R"({"args":[],"file":"model.pt",)", "'entry_point.args'"},
      {R"("name":"dlsys",)", R"("name":"dlsys","url":"x",)", "'tool.url'"},
      {R"("name":"pytorch"})", R"("name":"pytorch","v":1})", "'framework.v'"},
      {R"("methods":[{"args":["x"],)", R"("methods":[{"args":["x"],"doc":"",)",
       "'model.methods[0].doc'"},
      {R"({"buffers":)", R"({"a":1,"buffers":)", "'model.a'"},
      {R"("parameters":{"bytes_by_dtype":{"float32":40},"count":2,)",
       R"("parameters":{"bytes_by_dtype":{"float32":40},"bytes":1,"count":2,)",
       "'model.parameters.bytes'"},
      {R"([{"dtype":"float32","name":"x","shape":[-1,4]}])",
       R"([{"dtype":"float32","doc":"","name":"x","shape":[-1,4]}])", "'inputs[0].doc'"},
      {R"("examples":[{"atol":0.25,)", R"("examples":[{"atol":0.25,"extra":[],)",
       "'examples[0].extra'"},
      {R"("inputs":[{"dtype":"float32","name":"x","path")",
       R"("inputs":[{"dtype":"float32","layout":"nchw","name":"x","path")",
       "'examples[0].inputs[0].layout'"},
      {R"({"mode":420,"path":"model.pt",)", R"({"mode":420,"owner":0,"path":"model.pt",)",
       "'files[3].owner'"},
  };
  for (const Case& c : extra) {
    const std::string msg = EditError(c.from, c.to);
    EXPECT_HAS(msg, "manifest field " + c.field);
    EXPECT_HAS(msg, "not a known field");
  }
  const std::vector<Case> missing = {
      {R"("owner":"ml-team@example.com",)", "", "'owner'"},
      {R"("hyperparameters":{"a":{"layers":[64,32],"lr":0.001},"b":1},)", "", "'hyperparameters'"},
      {R"("tool":{"name":"dlsys","version":"0.1.0"},)", "", "'tool'"},
      {R"(,"version":"0.1.0"})", "}", "'tool.version'"},
      {R"("framework":{"format":"torchscript","name":"pytorch"},)", "", "'framework'"},
      {R"({"file":"model.pt","method":"forward"})", R"({"file":"model.pt"})",
       "'entry_point.method'"},
      {R"("devices":["cpu"],)", "", "'model.devices'"},
      {R"(,"schema":"forward(Tensor x) -> Tensor")", "", "'model.methods[0].schema'"},
      {R"(,"runtime_version":"1.13.1")", "", "'model.runtime_version'"},
      {R"("count":1,)", "", "'model.buffers.count'"},
      {R"("examples":[{"atol":0.25,)", R"("examples":[{)", "'examples[0].atol'"},
      {R"(,"rtol":0.001)", "", "'examples[0].rtol'"},
      {R"(,"outputs":[{"dtype":"float32","name":"output0","path":"examples/basic/outputs/output0.bin","shape":[1,2]}])",
       "", "'examples[0].outputs'"},
      {R"("examples/basic/inputs/x.bin","shape":[1,4])", R"("examples/basic/inputs/x.bin")",
       "'examples[0].inputs[0].shape'"},
      {R"("inputs":[{"dtype":"float32","name":"x","shape":[-1,4]}],)", "", "'inputs'"},
      {R"({"mode":420,"path":"model.pt",)", R"({"path":"model.pt",)", "'files[3].mode'"},
  };
  for (const Case& c : missing) {
    const std::string msg = EditError(c.from, c.to);
    EXPECT_HAS(msg, "manifest field " + c.field);
    EXPECT_HAS(msg, "missing");
  }
}

TEST(ManifestParseTest, RejectsWrongFrameworkAndTool) {
  EXPECT_HAS(EditError(R"("name":"pytorch")", R"("name":"tensorflow")"),
             "manifest field 'framework.name': expected \"pytorch\"");
  EXPECT_HAS(EditError(R"("format":"torchscript")", R"("format":"onnx")"),
             "manifest field 'framework.format'");
  EXPECT_HAS(EditError(R"("name":"dlsys")", R"("name":"other")"), "manifest field 'tool.name'");
}

TEST(ManifestParseTest, RejectsLongStrings) {
  Manifest m = ValidManifest();
  m.description = std::string(kMaxDescriptionBytes + 1, 'd');
  EXPECT_HAS(ParseError(m), "manifest field 'description': expected a string of at most 65536");
  m = ValidManifest();
  m.owner = std::string(kMaxTextBytes + 1, 'o');
  EXPECT_HAS(ParseError(m), "manifest field 'owner'");
  m = ValidManifest();
  m.inputs[0].name = std::string(kMaxIdentifierBytes + 1, 'n');
  EXPECT_HAS(ParseError(m), "manifest field 'inputs[0].name'");
  m = ValidManifest();
  m.inputs[0].name = "";
  EXPECT_HAS(ParseError(m), "manifest field 'inputs[0].name': expected a non-empty string");
  m = ValidManifest();
  m.model.operators.push_back("aten::" + std::string(kMaxIdentifierBytes, 'z'));
  EXPECT_HAS(ParseError(m), "manifest field 'model.operators[2]'");
  m = ValidManifest();
  m.tool_version = std::string(kMaxToolVersionBytes + 1, '1');
  EXPECT_HAS(ParseError(m), "manifest field 'tool.version'");
}

// --- Tensors --------------------------------------------------------------------------------

TEST(ManifestParseTest, RejectsInvalidDtype) {
  Manifest m = ValidManifest();
  m.inputs[0].dtype = "float33";
  std::string msg = ParseError(m);
  EXPECT_HAS(msg, "manifest field 'inputs[0].dtype'");
  EXPECT_HAS(msg, "float33");
  m.inputs[0].dtype = "FP32";  // a KServe alias: specs accept it, manifests hold dtype names
  EXPECT_HAS(ParseError(m), "manifest field 'inputs[0].dtype'");
}

TEST(ManifestParseTest, RejectsShapeBelowMinusOne) {
  Manifest m = ValidManifest();
  m.outputs[0].shape = {4, -2};
  const std::string msg = ParseError(m);
  EXPECT_HAS(msg, "manifest field 'outputs[0].shape[1]'");
  EXPECT_HAS(msg, "-2");
}

TEST(ManifestParseTest, RejectsBadShapes) {
  Manifest m = ValidManifest();
  m.inputs[0].shape.assign(kMaxShapeRank + 1, 1);
  EXPECT_HAS(ParseError(m), "manifest field 'inputs[0].shape': expected an array of at most 16");
  m.inputs[0].shape.assign(kMaxShapeRank, 1);
  EXPECT_TRUE(Parse(Text(m)));
  EXPECT_HAS(EditError(R"("shape":[-1,4])", R"("shape":[-1,4.5])"),
             "manifest field 'inputs[0].shape[1]'");
  EXPECT_HAS(EditError(R"("shape":[-1,4])", R"("shape":[-1,"4"])"),
             "manifest field 'inputs[0].shape[1]'");
  EXPECT_HAS(EditError(R"("shape":[-1,4])", R"("shape":4)"), "manifest field 'inputs[0].shape'");
  m = ValidManifest();
  m.inputs[0].shape = {-1, 9007199254740991};  // the largest size JSON carries exactly
  EXPECT_TRUE(Parse(Text(m)));
}

TEST(ManifestParseTest, RejectsDynamicDimensionInExample) {
  Manifest m = ValidManifest();
  m.examples[0].outputs[0].tensor.shape = {-1, 2};
  EXPECT_HAS(ParseError(m), "manifest field 'examples[0].outputs[0].shape[0]'");
}

TEST(ManifestParseTest, RejectsDuplicateTensorNames) {
  Manifest m = ValidManifest();
  m.inputs.push_back(m.inputs[0]);
  EXPECT_HAS(ParseError(m), "'inputs[1].name'");
  m = ValidManifest();
  m.examples[0].inputs.push_back(m.examples[0].inputs[0]);
  EXPECT_HAS(ParseError(m), "'examples[0].inputs[1].name'");
}

TEST(ManifestParseTest, ExampleFileSizeMustMatchItsShape) {
  Manifest m = ValidManifest();
  m.examples[0].inputs[0].tensor.shape = {1, 5};  // 20 bytes, the file has 16
  std::string msg = ParseError(m);
  EXPECT_HAS(msg, "manifest field 'examples[0].inputs[0].shape'");
  EXPECT_HAS(msg, "needs 20 bytes");
  EXPECT_HAS(msg, "has 16");

  m = ValidManifest();
  m.examples[0].outputs[0].tensor.dtype = "float64";  // 16 bytes, the file has 8
  EXPECT_HAS(ParseError(m), "manifest field 'examples[0].outputs[0].shape'");

  // A product that overflows 64 bits cannot wrap around to the file's size.
  m = ValidManifest();
  m.examples[0].inputs[0].tensor.shape = {9007199254740991, 9007199254740991, 4};
  msg = ParseError(m);
  EXPECT_HAS(msg, "needs more than 2^64 bytes");

  // Zero elements: an empty file.
  m = ValidManifest();
  m.examples[0].inputs[0].tensor.shape = {0, 4};
  m.files[1].size = 0;
  EXPECT_TRUE(Parse(Text(m))) << Parse(Text(m)).error().message;
}

TEST(ManifestParseTest, RejectsExamplePathNotInFiles) {
  Manifest m = ValidManifest();
  m.examples[0].inputs[0].path = "examples/basic/inputs/y.bin";
  const std::string msg = ParseError(m);
  EXPECT_HAS(msg, "'examples[0].inputs[0].path'");
  EXPECT_HAS(msg, "examples/basic/inputs/y.bin");
}

TEST(ManifestParseTest, RejectsBadExampleNamesAndTolerances) {
  Manifest m = ValidManifest();
  m.examples.push_back(m.examples[0]);
  EXPECT_HAS(ParseError(m), "manifest field 'examples[1].name'");
  m = ValidManifest();
  m.examples[0].name = "Bad Name";
  EXPECT_HAS(ParseError(m), "manifest field 'examples[0].name'");
  m = ValidManifest();
  m.examples[0].rtol = -0.001;
  EXPECT_HAS(ParseError(m), "manifest field 'examples[0].rtol': expected a finite number >= 0");
  m = ValidManifest();
  m.examples[0].atol = -1;
  EXPECT_HAS(ParseError(m), "manifest field 'examples[0].atol'");
  EXPECT_HAS(EditError(R"("rtol":0.001)", R"("rtol":"0.001")"),
             "manifest field 'examples[0].rtol'");
}

// --- Model summary --------------------------------------------------------------------------

TEST(ManifestParseTest, RejectsMissingModelSummary) {
  EXPECT_HAS(EditError(R"("runtime_version":"1.13.1")", R"("runtime_version":7)"),
             "manifest field 'model.runtime_version'");
}

TEST(ManifestParseTest, RejectsBadBytesByDtype) {
  Manifest m = ValidManifest();
  m.model.parameters.bytes_by_dtype = {{"FP32", 40}};
  EXPECT_HAS(ParseError(m), "manifest field 'model.parameters.bytes_by_dtype.FP32'");
  m.model.parameters.bytes_by_dtype = {{"weights", 40}};
  EXPECT_HAS(ParseError(m), "is not a dtype name");
  m.model.parameters.bytes_by_dtype = {{"float32", -1}};
  EXPECT_HAS(ParseError(m), "manifest field 'model.parameters.bytes_by_dtype.float32'");
  m.model.parameters.count = -1;
  m.model.parameters.bytes_by_dtype = {{"float32", 4}};
  EXPECT_HAS(ParseError(m), "manifest field 'model.parameters.count'");
}

TEST(ManifestParseTest, RejectsWeightTotalsThatDoNotFit) {
  // Each value is exact in JSON; the sum over both groups is not (checked arithmetic).
  Manifest m = ValidManifest();
  m.model.parameters.bytes_by_dtype = {{"float32", 9007199254740991}, {"float16", 0}};
  m.model.buffers.bytes_by_dtype = {{"int64", 1}};
  const std::string msg = ParseError(m);
  EXPECT_HAS(msg, "manifest field 'model.buffers.bytes_by_dtype'");
  EXPECT_HAS(msg, "more than 9007199254740991 bytes");
  m.model.buffers.bytes_by_dtype = {{"int64", 0}};
  EXPECT_TRUE(Parse(Text(m)));
}

TEST(ManifestParseTest, RejectsUnsortedOrDuplicateOperatorsAndMethods) {
  Manifest m = ValidManifest();
  m.model.operators = {"aten::relu", "aten::linear"};
  EXPECT_HAS(ParseError(m), "manifest field 'model.operators[1]'");
  m.model.operators = {"aten::linear", "aten::linear"};
  EXPECT_HAS(ParseError(m), "sorted without duplicates");
  m = ValidManifest();
  m.model.methods.push_back(m.model.methods[0]);
  EXPECT_HAS(ParseError(m), "manifest field 'model.methods[1].name'");
}

// --- Files ----------------------------------------------------------------------------------

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

void InsertSorted(Manifest& m, FileRecord f) {
  m.files.push_back(std::move(f));
  std::sort(m.files.begin(), m.files.end(),
            [](const FileRecord& a, const FileRecord& b) { return a.path < b.path; });
}

TEST(ManifestParseTest, RejectsReservedPaths) {
  Manifest m = ValidManifest();
  InsertSorted(m, FileRecord{"manifest.json", 1, 0644, Digest('d'), 0, {}});
  EXPECT_HAS(ParseError(m), "reserved");
}

TEST(ManifestParseTest, PathsFollowTheArchiveRules) {
  for (const std::string& bad :
       {std::string("files/../../etc/passwd"), std::string("/etc/passwd"), std::string("a//b"),
        std::string("./a"), std::string("files/a\\b"), std::string("files/x/"),
        std::string("files/\x1b[31mred"), std::string("caf\xC3\xA9"), std::string(1025, 'p')}) {
    Manifest m = ValidManifest();
    InsertSorted(m, FileRecord{bad, 1, 0644, Digest('d'), 0, {}});
    std::size_t index = 0;
    while (m.files[index].path != bad) ++index;
    const std::string msg = ParseError(m);
    EXPECT_HAS(msg, "manifest field 'files[" + std::to_string(index) + "].path'");
    EXPECT_EQ(msg.find('\x1b'), std::string::npos) << msg;
  }
}

TEST(ManifestParseTest, RejectsAFileThatIsAlsoADirectory) {
  Manifest m = ValidManifest();
  InsertSorted(m, FileRecord{"data", 1, 0644, Digest('d'), 0, {}});
  const std::string msg = ParseError(m);
  EXPECT_EQ(msg,
            "manifest field 'files': 'data' is a file, but 'data/big.bin' needs it to be "
            "a directory");
  // Not a prefix in the path sense: fine.
  m = ValidManifest();
  InsertSorted(m, FileRecord{"data-big.bin", 1, 0644, Digest('d'), 0, {}});
  InsertSorted(m, FileRecord{"dat", 1, 0644, Digest('d'), 0, {}});
  EXPECT_TRUE(Parse(Text(m))) << Parse(Text(m)).error().message;
}

TEST(ManifestParseTest, RejectsTooManyFiles) {
  Manifest m = ValidManifest();
  for (std::size_t i = 0; m.files.size() <= kMaxFiles; ++i) {
    m.files.push_back(FileRecord{"z/" + std::to_string(100000 + i), 0, 0644, Digest('e'), 0, {}});
  }
  EXPECT_HAS(ParseError(m), "manifest field 'files': expected an array of 1 to 10000 files");
  m.files.pop_back();
  EXPECT_TRUE(Parse(Text(m))) << Parse(Text(m)).error().message;
}

TEST(ManifestParseTest, ModeMustBe0644) {
  for (unsigned mode : {0600u, 0755u, 0u, 04644u}) {
    Manifest m = ValidManifest();
    m.files[3].mode = mode;
    const std::string msg = ParseError(m);
    EXPECT_HAS(msg, "manifest field 'files[3].mode': expected 420");
  }
}

TEST(ManifestParseTest, RejectsFileLargerThanTheArchiveAllows) {
  Manifest m = ValidManifest();
  m.files[0].size = kMaxFileBytes + 1;
  m.files[0].shards.assign(m.files[0].size / kShardBytes + 1, Digest('1'));
  EXPECT_HAS(ParseError(m), "manifest field 'files[0].size'");
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
  m.files[0].shards.pop_back();  // 2 shards and 1000 bytes need 3 digests
  std::string msg = ParseError(m);
  EXPECT_HAS(msg, "'files[0].shards'");
  EXPECT_HAS(msg, "needs 3");
  EXPECT_HAS(msg, "found 2");

  m = ValidManifest();
  m.files[0].shards.push_back(Digest('4'));
  EXPECT_HAS(ParseError(m), "'files[0].shards'");

  m = ValidManifest();
  m.files[0].size = 2 * kShardBytes;  // exactly two shards
  m.files[0].shards.pop_back();
  EXPECT_TRUE(Parse(Text(m)));
}

TEST(ManifestParseTest, RejectsShardingOfASmallFile) {
  Manifest m = ValidManifest();
  m.files[0].size = kShardBytes;  // fits in one shard: must use sha256
  m.files[0].shards = {Digest('1')};
  EXPECT_HAS(ParseError(m), "'files[0].shards'");
}

TEST(ManifestParseTest, RejectsSha256OnALargeFile) {
  Manifest m = ValidManifest();
  m.files[0].shard_bytes = 0;
  m.files[0].shards.clear();
  m.files[0].sha256 = Digest('f');
  const std::string msg = ParseError(m);
  EXPECT_HAS(msg, "manifest field 'files[0].sha256'");
  EXPECT_HAS(msg, "has 'shard_bytes' and 'shards', not 'sha256'");
}

TEST(ManifestParseTest, RejectsBothDigestForms) {
  EXPECT_HAS(EditError(R"("path":"data/big.bin",)",
                       R"("path":"data/big.bin","sha256":")" + Digest('f') + R"(",)"),
             "manifest field 'files[0].sha256'");
  EXPECT_HAS(EditError(R"("path":"model.pt","sha256")",
                       R"("path":"model.pt","shard_bytes":67108864,"sha256")"),
             "manifest field 'files[3].shards'");
}

TEST(ManifestParseTest, ShardBytesMustBe64MiB) {
  for (const char* sb : {"0", "1024", "67108865", "134217728"}) {
    const std::string msg =
        EditError(R"("shard_bytes":67108864,)", std::string(R"("shard_bytes":)") + sb + ",");
    EXPECT_HAS(msg, "manifest field 'files[0].shard_bytes': expected 67108864");
  }
}

// --- CheckPathSet / CheckName / FindFile ----------------------------------------------------

TEST(CheckPathSetTest, AcceptsSortedDisjointPaths) {
  EXPECT_TRUE(CheckPathSet({}));
  EXPECT_TRUE(CheckPathSet({"a"}));
  EXPECT_TRUE(CheckPathSet({"a-b", "a.txt", "a/b", "a/c/d", "ab"}));
  EXPECT_TRUE(CheckPathSet({"files/a", "files/a.b", "files/ab", "model.pt"}));
}

TEST(CheckPathSetTest, RejectsDuplicatesDisorderAndFileDirectoryClashes) {
  struct Case {
    std::vector<std::string> paths;
    std::string message;
  };
  for (const Case& c : std::vector<Case>{
           {{"a", "a"}, "sorted by byte order without duplicates, but 'a' follows 'a'"},
           {{"b", "a"}, "but 'a' follows 'b'"},
           {{"a", "a/b"}, "'a' is a file, but 'a/b' needs it to be a directory"},
           {{"a", "a-b", "a.c", "a/b"}, "'a' is a file, but 'a/b' needs it to be a directory"},
           {{"x/a/b", "x/a/b/c/d"}, "'x/a/b' is a file, but 'x/a/b/c/d' needs it"},
       }) {
    auto r = CheckPathSet(c.paths);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, Code::kInvalid);
    EXPECT_HAS(r.error().message, c.message);
  }
}

TEST(CheckPathSetTest, ScalesToManyPaths) {
  std::vector<std::string> paths;
  for (int i = 0; i < 100000; ++i) paths.push_back("d" + std::to_string(1000000 + i) + "/f");
  EXPECT_TRUE(CheckPathSet(paths));
  paths.push_back("d1099999/f/g");  // sorts last
  EXPECT_FALSE(CheckPathSet(paths));
}

TEST(CheckNameTest, AcceptsValidNames) {
  for (const std::string& name :
       {std::string("a"), std::string("mlp"), std::string("resnet-50"), std::string("my_model.v2"),
        std::string("0abc"), std::string(128, 'x')}) {
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
