#include "hw/profile.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include "core/encoding.h"
#include "test_tmp.h"

namespace dlsys::hw {
namespace {

constexpr std::uint64_t kGiB = 1ull << 30;

// ParseByteSize lives in core; its table is here because target profiles are its main user.
TEST(ParseByteSizeTest, AcceptsBytesSiAndIecUnits) {
  const std::vector<std::pair<std::string, std::uint64_t>> cases = {
      {"0", 0},
      {"1073741824", 1073741824},
      {"4 GiB", 4 * kGiB},
      {"4GiB", 4 * kGiB},
      {"  4 GiB ", 4 * kGiB},
      {"512 MiB", 512ull << 20},
      {"1.5 GB", 1500000000},
      {"1.5GB", 1500000000},
      {"2 kB", 2000},
      {"2 KB", 2000},
      {"3 KiB", 3072},
      {"7 B", 7},
      {"1 TB", 1000000000000},
      {"2 TiB", 2ull << 40},
      {"0.5 KiB", 512},
      {"3.2 GiB", 3435973837},  // rounded to the nearest byte
      {"18446744073709551615", 18446744073709551615ull},
  };
  for (const auto& [text, bytes] : cases) {
    auto r = core::ParseByteSize(text);
    ASSERT_TRUE(r.has_value()) << "'" << text << "': " << r.error().message;
    EXPECT_EQ(*r, bytes) << "'" << text << "'";
  }
}

TEST(ParseByteSizeTest, RejectsOtherText) {
  for (const char* text :
       {"", "lots", "GiB", "-1", "-1 GiB", "4 gib", "4 GiBs", "4 G", "1.5", "1.5 B", "1. GiB",
        ".5 GiB", "4 GiB 2", "18446744073709551616", "16777216 TiB", "0x10", "4,5 GB"}) {
    auto r = core::ParseByteSize(text);
    ASSERT_FALSE(r.has_value()) << "'" << text << "' parsed as " << *r;
    EXPECT_EQ(r.error().code, Code::kInvalid);
    EXPECT_NE(r.error().message.find("is not a byte size"), std::string::npos);
  }
}

constexpr const char* kEdge = R"(
name: edge-pi4
os: linux
arch: aarch64
cpu: {model: "Cortex-A72", cores: 4, features: [NEON, asimd, neon]}
memory: {total: 4 GiB, available: 3.2 GiB}
gpus: []
runtime: {libtorch_version: "1.13.0", max_file_format_version: 10, operators: [aten::mul, aten::add]}
)";

TEST(ProfileTest, ParsesTheDocumentedShape) {
  auto p = ParseProfile(kEdge);
  ASSERT_TRUE(p.has_value()) << p.error().message;
  EXPECT_EQ(p->name, "edge-pi4");
  EXPECT_EQ(p->os, "linux");
  EXPECT_EQ(p->arch, "aarch64");
  EXPECT_EQ(p->cpu_model, "Cortex-A72");
  EXPECT_EQ(p->cores, 4);
  EXPECT_EQ(p->cpu_features, (std::vector<std::string>{"asimd", "neon"}));
  EXPECT_EQ(p->memory_total_bytes, 4 * kGiB);
  EXPECT_EQ(p->memory_available_bytes, 3435973837u);
  ASSERT_TRUE(p->gpus.has_value());
  EXPECT_TRUE(p->gpus->empty());
  ASSERT_TRUE(p->runtime.has_value());
  EXPECT_EQ(p->runtime->libtorch_version, "1.13.0");
  EXPECT_EQ(p->runtime->max_file_format_version, 10);
  EXPECT_EQ(p->runtime->operators, (std::vector<std::string>{"aten::add", "aten::mul"}));
  EXPECT_FALSE(p->runtime->blas.has_value());  // profiles from before the field stay valid
}

TEST(ProfileTest, ParsesTheRuntimeBlas) {
  auto p = ParseProfile(R"(
runtime:
  libtorch_version: "1.13.0"
  blas:
    name: OpenBLAS
    library: /usr/lib/x86_64-linux-gnu/openblas-openmp/libblas.so.3
    detail: "OpenBLAS 0.3.21 DYNAMIC_ARCH NO_AFFINITY Haswell MAX_THREADS=64, threading openmp"
)");
  ASSERT_TRUE(p.has_value()) << p.error().message;
  ASSERT_TRUE(p->runtime.has_value());
  ASSERT_TRUE(p->runtime->blas.has_value());
  EXPECT_EQ(p->runtime->blas->name, "openblas");  // lower-cased
  EXPECT_EQ(p->runtime->blas->library, "/usr/lib/x86_64-linux-gnu/openblas-openmp/libblas.so.3");
  EXPECT_EQ(p->runtime->blas->detail,
            "OpenBLAS 0.3.21 DYNAMIC_ARCH NO_AFFINITY Haswell MAX_THREADS=64, threading openmp");
  EXPECT_FALSE(p->runtime->blas->Reference());

  auto reference = ParseProfile("runtime: {blas: {name: reference}}\n");
  ASSERT_TRUE(reference.has_value()) << reference.error().message;
  EXPECT_TRUE(reference->runtime->blas->Reference());
  EXPECT_TRUE(reference->runtime->blas->library.empty());

  auto empty = ParseProfile("runtime: {blas: {}}\n");  // stated, but says nothing
  ASSERT_TRUE(empty.has_value()) << empty.error().message;
  EXPECT_EQ(empty->runtime->blas, RuntimeBlas{});
}

TEST(ProfileTest, MissingSectionsStayUnknown) {
  auto p = ParseProfile("name: bare\n");
  ASSERT_TRUE(p.has_value()) << p.error().message;
  EXPECT_FALSE(p->cores.has_value());
  EXPECT_FALSE(p->cpu_features.has_value());
  EXPECT_FALSE(p->memory_total_bytes.has_value());
  EXPECT_FALSE(p->gpus.has_value());  // omitted = unknown, unlike gpus: []
  EXPECT_FALSE(p->runtime.has_value());

  auto empty = ParseProfile("{}");
  ASSERT_TRUE(empty.has_value()) << empty.error().message;
  EXPECT_EQ(*empty, TargetProfile{});
}

TEST(ProfileTest, ParsesGpusAndNormalisesComputeCapability) {
  auto p = ParseProfile(R"(
gpus:
  - {name: "NVIDIA A100-SXM4-80GB", memory: 80 GiB, compute_capability: "8.0",
     driver_version: "535.104", cuda_version: "12.2"}
  - {name: a, compute_capability: 8.6}
  - {name: b, compute_capability: 7, memory: 17179869184}
)");
  ASSERT_TRUE(p.has_value()) << p.error().message;
  ASSERT_EQ(p->gpus->size(), 3u);
  const Gpu& a100 = (*p->gpus)[0];
  EXPECT_EQ(a100.name, "NVIDIA A100-SXM4-80GB");
  EXPECT_EQ(a100.memory_bytes, 80 * kGiB);
  EXPECT_EQ(a100.compute_capability, "8.0");
  EXPECT_EQ(a100.driver_version, "535.104");
  EXPECT_EQ(a100.cuda_version, "12.2");
  EXPECT_EQ((*p->gpus)[1].compute_capability, "8.6");
  EXPECT_FALSE((*p->gpus)[1].memory_bytes.has_value());
  EXPECT_EQ((*p->gpus)[2].compute_capability, "7.0");
  EXPECT_EQ((*p->gpus)[2].memory_bytes, 16 * kGiB);

  auto unquoted = ParseProfile("gpus: [{compute_capability: 8.0}]");
  ASSERT_TRUE(unquoted.has_value()) << unquoted.error().message;
  EXPECT_EQ((*unquoted->gpus)[0].compute_capability, "8.0");
}

TEST(ProfileTest, JsonIsAcceptedToo) {
  auto p = ParseProfile(R"({"name": "j", "memory": {"total": 1024}, "gpus": []})", "t.json");
  ASSERT_TRUE(p.has_value()) << p.error().message;
  EXPECT_EQ(p->memory_total_bytes, 1024u);
}

struct BadProfile {
  const char* yaml;
  const char* field;  // must appear in the message
};

// yaml-cpp's parser recurses per level: the converter stops it at the first level too deep,
// before it can overflow the stack, whatever the nesting looks like.
TEST(ProfileTest, AbsurdNestingIsRefusedNotCrashed) {
  std::string dashes = "gpus:\n  ";
  for (int i = 0; i < 100000; ++i) dashes += "- ";
  std::string indented = "runtime:\n";
  for (int i = 0; i < 100000; ++i) indented += std::string(1 + i % 100, ' ') + "k:\n";
  for (const std::string& text :
       {"memory: " + std::string(100000, '[') + std::string(100000, ']'),
        "{\"gpus\": " + std::string(100000, '['), dashes + "x\n", indented}) {
    auto p = ParseProfile(text, "deep.yaml");
    ASSERT_FALSE(p.has_value());
    EXPECT_EQ(p.error().code, Code::kInvalid);
    EXPECT_NE(p.error().message.find("nesting deeper than 64 levels"), std::string::npos)
        << p.error().message;
  }
  // Unterminated: yaml-cpp reads "[[" as a list holding a map keyed by a list; refused too.
  auto p = ParseProfile("memory: " + std::string(100000, '['), "deep.yaml");
  ASSERT_FALSE(p.has_value());
  EXPECT_EQ(p.error().code, Code::kInvalid);
  EXPECT_EQ(p.error().message.rfind("deep.yaml: ", 0), 0u) << p.error().message;
}

TEST(ProfileTest, DuplicateKeysAreRejectedInYamlAndJson) {
  for (const char* text :
       {"name: a\nname: b\n", "cpu: {cores: 4, cores: 8}\n", "gpus:\n  - name: a\n    name: b\n",
        R"({"name": "a", "name": "b"})", R"({"memory": {"total": 1, "total": 2}})",
        R"({"gpus": [{"memory": 1, "memory": 2}]})"}) {
    auto p = ParseProfile(text, "t.yaml");
    ASSERT_FALSE(p.has_value()) << text;
    EXPECT_EQ(p.error().code, Code::kInvalid);
    const std::string& msg = p.error().message;
    EXPECT_TRUE(msg.find("appears twice") != std::string::npos ||
                msg.find("duplicate key") != std::string::npos)
        << msg;
  }
  auto p = ParseProfile(R"({"memory": {"total": 1, "total": 2}})", "t.json");
  ASSERT_FALSE(p.has_value());
  EXPECT_EQ(p.error().message, "t.json: duplicate key 'total' at byte 24");
}

TEST(ProfileTest, TextMustBeUtf8AndSizesExact) {
  auto p = ParseProfile("name: \"caf\xC3\"\n", "t.yaml");
  ASSERT_FALSE(p.has_value());
  EXPECT_EQ(p.error().message, "t.yaml: invalid UTF-8 at byte 10");
  p = ParseProfile("{\"name\": \"\xFF\"}", "t.json");
  ASSERT_FALSE(p.has_value());
  EXPECT_EQ(p.error().message, "t.json: invalid UTF-8 at byte 10");
  // Sizes beyond 2^53 - 1 bytes are refused in every form (JSON would not carry them).
  for (const char* text :
       {"memory: {total: 18446744073709551615}\n", "memory: {total: 9007199254740992}\n",
        "memory: {total: 16 EiB}\n", "memory: {total: 16777216 TiB}\n",
        R"({"memory": {"total": 9007199254740992}})"}) {
    p = ParseProfile(text, "t.yaml");
    ASSERT_FALSE(p.has_value()) << text;
    EXPECT_EQ(p.error().code, Code::kInvalid);
  }
  p = ParseProfile("memory: {total: 9007199254740991}\n");
  ASSERT_TRUE(p.has_value()) << p.error().message;
  EXPECT_EQ(p->memory_total_bytes, 9007199254740991u);
  p = ParseProfile("gpus: [{compute_capability: 18446744073709551615}]\n");
  ASSERT_FALSE(p.has_value());
  EXPECT_NE(p.error().message.find("gpus[0].compute_capability"), std::string::npos);
}

TEST(ProfileTest, MalformedProfilesNameTheField) {
  const std::vector<BadProfile> cases = {
      {"name: x\nmemroy: {total: 1 GiB}\n", "'memroy' is not a known field"},
      {"cpu: {cores: 4, flags: [avx2]}\n", "'cpu.flags' is not a known field"},
      {"gpus: [{name: a, mem: 1 GiB}]\n", "'gpus[0].mem' is not a known field"},
      {"runtime: {version: 1.13.0}\n", "'runtime.version' is not a known field"},
      {"memory: {total: lots}\n", "field 'memory.total'"},
      {"memory: {available: -5}\n", "field 'memory.available'"},
      {"memory: {total: 1.5}\n", "field 'memory.total'"},
      {"memory: 4 GiB\n", "field 'memory'"},
      {"cpu: {cores: -1}\n", "field 'cpu.cores'"},
      {"cpu: {cores: 0}\n", "field 'cpu.cores'"},
      {"cpu: {cores: four}\n", "field 'cpu.cores'"},
      {"cpu: {features: avx2}\n", "field 'cpu.features'"},
      {"cpu: {features: [avx2, 3]}\n", "field 'cpu.features[1]'"},
      {"gpus: [{compute_capability: \"eight\"}]\n", "field 'gpus[0].compute_capability'"},
      {"gpus: [{compute_capability: 8.65}]\n", "field 'gpus[0].compute_capability'"},
      {"gpus: [{memory: lots}]\n", "field 'gpus[0].memory'"},
      {"gpus: none\n", "field 'gpus'"},
      {"gpus: [a100]\n", "field 'gpus[0]'"},
      {"runtime: {max_file_format_version: ten}\n", "field 'runtime.max_file_format_version'"},
      {"runtime: {operators: aten::add}\n", "field 'runtime.operators'"},
      {"runtime: {blas: openblas}\n", "field 'runtime.blas'"},
      {"runtime: {blas: {name: [openblas]}}\n", "field 'runtime.blas.name'"},
      {"runtime: {blas: {name: openblas, threads: 4}}\n", "'runtime.blas.threads' is not a known"},
      {"name: [unclosed\n", "not valid YAML"},
      {"name: a\nname: b\n", "appears twice"},
      {"just a sentence\n", "expected a map of profile fields"},
      {"- a\n- b\n", "expected a map of profile fields"},
  };
  for (const auto& c : cases) {
    auto p = ParseProfile(c.yaml, "edge.yaml");
    ASSERT_FALSE(p.has_value()) << c.yaml;
    EXPECT_EQ(p.error().code, Code::kInvalid) << c.yaml;
    EXPECT_NE(p.error().message.find(c.field), std::string::npos)
        << c.yaml << " -> " << p.error().message;
    EXPECT_EQ(p.error().message.rfind("edge.yaml", 0), 0u) << p.error().message;
  }
}

TEST(ProfileTest, UnknownKeyMessageListsKnownFields) {
  auto p = ParseProfile("nmae: x\n");
  ASSERT_FALSE(p.has_value());
  EXPECT_EQ(p.error().message,
            "target.yaml field 'nmae' is not a known field (known: name, os, arch, cpu, memory, "
            "gpus, runtime)");
}

TargetProfile FullProfile() {
  TargetProfile p;
  p.name = "gpu-box";
  p.os = "linux";
  p.arch = "x86_64";
  p.cpu_model = "AMD EPYC 7742 64-Core Processor";
  p.cores = 128;
  p.cpu_features = std::vector<std::string>{"avx", "avx2", "sse4_2"};
  p.memory_total_bytes = 1024 * kGiB;
  p.memory_available_bytes = 1000 * kGiB + 12345;
  p.gpus = std::vector<Gpu>{
      {"NVIDIA A100-SXM4-80GB", 80 * kGiB, "8.0", "535.104", "12.2"},
      {"", std::nullopt, std::nullopt, "", ""},
  };
  std::vector<std::string> ops;
  for (int i = 0; i < 40; ++i) ops.push_back("aten::op" + std::to_string(100 + i));
  ops.push_back("prim::Constant");
  p.runtime = RuntimeInfo{
      "1.13.1", 10, ops,
      RuntimeBlas{
          "openblas", "/usr/lib/x86_64-linux-gnu/openblas-openmp/libblas.so.3",
          "OpenBLAS 0.3.21 DYNAMIC_ARCH NO_AFFINITY Haswell MAX_THREADS=64, threading openmp"}};
  return p;
}

TEST(ProfileTest, YamlRoundTripIsIdentical) {
  std::vector<TargetProfile> profiles = {FullProfile(), TargetProfile{}};
  TargetProfile tricky;
  tricky.name = "123";  // would read back as a number if not quoted
  tricky.os = "true";
  tricky.arch = "null";
  tricky.cpu_model = "Intel(R) Xeon(R) CPU @ 2.20GHz: #1 - [x]";
  tricky.cpu_features = std::vector<std::string>{};
  tricky.gpus = std::vector<Gpu>{};
  tricky.runtime = RuntimeInfo{};
  tricky.runtime->blas = RuntimeBlas{"reference", "", "1.5"};  // detail would read as a number
  tricky.memory_total_bytes = 0;
  profiles.push_back(tricky);
  auto edge = ParseProfile(kEdge);
  ASSERT_TRUE(edge.has_value());
  profiles.push_back(*edge);

  for (const auto& p : profiles) {
    std::string yaml = ProfileToYaml(p);
    auto back = ParseProfile(yaml);
    ASSERT_TRUE(back.has_value()) << back.error().message << "\n" << yaml;
    EXPECT_EQ(*back, p) << yaml;
    auto from_json = ParseProfile(ProfileToJson(p), "target.json");
    ASSERT_TRUE(from_json.has_value()) << from_json.error().message;
    EXPECT_EQ(*from_json, p) << ProfileToJson(p);
  }
}

// Found by tests/fuzz/profile_fuzz.cpp: yaml-cpp decodes "\N" (NEL) to the lone byte 0x85,
// which then did not read back; and a raw NEL or line separator is a line break to YAML.
TEST(ProfileTest, NonAsciiRoundTripsAndEscapesThatDecodeToBadUtf8AreRefused) {
  TargetProfile p;
  p.cpu_model = "Cort\u00e9x \u0085 \u2028 \u2029 \U0001F600";
  const std::string yaml = ProfileToYaml(p);
  EXPECT_TRUE(std::all_of(yaml.begin(), yaml.end(), [](char c) {
    return static_cast<unsigned char>(c) < 0x80;
  })) << yaml;
  auto back = ParseProfile(yaml);
  ASSERT_TRUE(back.has_value()) << back.error().message << "\n" << yaml;
  EXPECT_EQ(*back, p) << yaml;
  auto bad = ParseProfile("name: \"a\\Nb\"\n");
  ASSERT_FALSE(bad.has_value());
  EXPECT_NE(bad.error().message.find("invalid UTF-8"), std::string::npos) << bad.error().message;
}

TEST(ProfileTest, YamlWritesSizesAsIntegerBytesUnderTheSameKeys) {
  auto p = ParseProfile(kEdge);
  ASSERT_TRUE(p.has_value());
  std::string yaml = ProfileToYaml(*p);
  EXPECT_NE(yaml.find("total: 4294967296"), std::string::npos) << yaml;
  EXPECT_NE(yaml.find("available: 3435973837"), std::string::npos) << yaml;
  EXPECT_NE(yaml.find("gpus: []"), std::string::npos) << yaml;
  EXPECT_EQ(yaml.find("_bytes"), std::string::npos) << yaml;
  std::string json = ProfileToJson(*p);
  EXPECT_NE(json.find("\"total\": 4294967296"), std::string::npos) << json;
}

TEST(ProfileTest, LoadProfileReadsFilesAndReportsMissingOnes) {
  testing::TempDir dir;
  { std::ofstream(dir / "edge.yaml") << kEdge; }
  auto p = LoadProfile(dir / "edge.yaml");
  ASSERT_TRUE(p.has_value()) << p.error().message;
  EXPECT_EQ(p->name, "edge-pi4");

  auto missing = LoadProfile(dir / "nope.yaml");
  ASSERT_FALSE(missing.has_value());
  EXPECT_EQ(missing.error().code, Code::kNotFound);

  { std::ofstream(dir / "bad.yaml") << "cpu: {cores: -1}\n"; }
  auto bad = LoadProfile(dir / "bad.yaml");
  ASSERT_FALSE(bad.has_value());
  EXPECT_NE(bad.error().message.find(dir / "bad.yaml"), std::string::npos);
  EXPECT_NE(bad.error().message.find("cpu.cores"), std::string::npos);
}

}  // namespace
}  // namespace dlsys::hw
