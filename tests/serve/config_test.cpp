#include "serve/config.h"

#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "test_tmp.h"

namespace dlsys::serve {
namespace {

#define EXPECT_HAS(haystack, needle) \
  EXPECT_NE(std::string(haystack).find(needle), std::string::npos) << (haystack)

class ConfigTest : public ::testing::Test {
 protected:
  // Writes `yaml` to a file and loads it over `config`.
  Result<void> Load(const std::string& yaml, ServeConfig& config) {
    dlsys::testing::Spit(path_, yaml);
    return LoadConfigFile(path_, config);
  }
  // The error of loading `yaml`, which must fail with kInvalid naming the file.
  std::string Error(const std::string& yaml) {
    ServeConfig config;
    const ServeConfig before = config;
    auto r = Load(yaml, config);
    if (r) {
      ADD_FAILURE() << "loaded: " << yaml;
      return "";
    }
    EXPECT_EQ(r.error().code, Code::kInvalid) << r.error().message;
    EXPECT_HAS(r.error().message, path_);
    EXPECT_EQ(config.port, before.port) << "a failed load changed the config";
    EXPECT_EQ(config.host, before.host) << "a failed load changed the config";
    return r.error().message;
  }

  dlsys::testing::TempDir dir_;
  std::string path_ = dir_ / "serve.yaml";
};

TEST_F(ConfigTest, DefaultsPassCheck) { EXPECT_TRUE(CheckConfig(ServeConfig{})); }

TEST_F(ConfigTest, FullFile) {
  ServeConfig c;
  auto r = Load(R"(# every setting
host: 0.0.0.0
port: 0
http_threads: 4
max_connections: 1000
idle_timeout_ms: 5000
body_timeout_ms: 2000
max_header_bytes: 8192
max_request_bytes: 17179869184
instances: 2
intra_op_threads: 1
max_batch_size: 32
max_queue_delay_us: 0
queue_capacity: 10
request_timeout_ms: 86400000
grace_period_ms: 1
token_file: /etc/dlsys/token
tls_cert: cert.pem
tls_key: "key.pem"
access_log: "-"
log_sample_rate: 0.25
trust:
  - keys/a.pub
  - /etc/dlsys/keys
allow_unsigned: true
)",
                c);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(c.host, "0.0.0.0");
  EXPECT_EQ(c.port, 0);
  EXPECT_EQ(c.http_threads, 4);
  EXPECT_EQ(c.max_connections, 1000);
  EXPECT_EQ(c.idle_timeout_ms, 5000u);
  EXPECT_EQ(c.body_timeout_ms, 2000u);
  EXPECT_EQ(c.max_header_bytes, 8192u);
  EXPECT_EQ(c.max_request_bytes, 17179869184u);
  EXPECT_EQ(c.instances, 2);
  EXPECT_EQ(c.intra_op_threads, 1);
  EXPECT_EQ(c.max_batch_size, 32);
  EXPECT_EQ(c.max_queue_delay_us, 0u);
  EXPECT_EQ(c.queue_capacity, 10);
  EXPECT_EQ(c.request_timeout_ms, 86400000u);
  EXPECT_EQ(c.grace_period_ms, 1u);
  EXPECT_EQ(c.token_file, "/etc/dlsys/token");
  EXPECT_EQ(c.tls_cert, "cert.pem");
  EXPECT_EQ(c.tls_key, "key.pem");
  EXPECT_EQ(c.access_log, "-");
  EXPECT_EQ(c.log_sample_rate, 0.25);
  EXPECT_EQ(c.trust, (std::vector<std::string>{"keys/a.pub", "/etc/dlsys/keys"}));
  EXPECT_TRUE(c.allow_unsigned);
  EXPECT_TRUE(CheckConfig(c));
}

TEST_F(ConfigTest, AbsentKeysKeepTheirValue) {
  ServeConfig c;
  c.port = 9000;
  c.trust = {"k"};
  ASSERT_TRUE(Load("max_batch_size: 1\n", c));
  EXPECT_EQ(c.port, 9000);
  EXPECT_EQ(c.trust, std::vector<std::string>{"k"});
  EXPECT_EQ(c.max_batch_size, 1);
  ASSERT_TRUE(Load("# nothing but a comment\n", c));
  ASSERT_TRUE(Load("", c));
  EXPECT_EQ(c.port, 9000);
}

TEST_F(ConfigTest, JsonIsYaml) {
  ServeConfig c;
  ASSERT_TRUE(Load(R"({"port": 1234, "trust": []})", c));
  EXPECT_EQ(c.port, 1234);
}

TEST_F(ConfigTest, MissingFileIsNotFound) {
  ServeConfig c;
  auto r = LoadConfigFile(dir_ / "absent.yaml", c);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Code::kNotFound);
  EXPECT_HAS(r.error().message, "absent.yaml");
}

TEST_F(ConfigTest, DirectoryIsInvalid) {
  ServeConfig c;
  auto r = LoadConfigFile(dir_.path().string(), c);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Code::kInvalid);
}

TEST_F(ConfigTest, TooLarge) {
  std::string yaml = "host: localhost\n";
  yaml += "# " + std::string(64 * 1024, 'x') + "\n";
  EXPECT_HAS(Error(yaml), "limit of 65536 bytes");
  // Exactly 64 KiB is fine.
  std::string ok = "port: 1\n#";
  ok += std::string(64 * 1024 - ok.size() - 1, 'x') + "\n";
  ASSERT_EQ(ok.size(), 64u * 1024);
  ServeConfig c;
  EXPECT_TRUE(Load(ok, c));
}

TEST_F(ConfigTest, UnknownKeyListsTheValidOnes) {
  const std::string e = Error("prot: 80\n");
  EXPECT_HAS(e, "key 'prot' is not a known setting");
  EXPECT_HAS(e, "known: host, port, http_threads,");
  EXPECT_HAS(e, "allow_unsigned)");
}

TEST_F(ConfigTest, DuplicateKey) {
  EXPECT_HAS(Error("port: 1\nport: 2\n"), "'port' appears twice");
}

TEST_F(ConfigTest, WrongTypes) {
  EXPECT_HAS(Error("port: abc\n"),
             "key 'port': expected an integer from 0 to 65535, found the "
             "string \"abc\"");
  EXPECT_HAS(Error("port: 1.5\n"), "key 'port': expected an integer");
  EXPECT_HAS(Error("port: 80.0\n"), "key 'port': expected an integer");
  EXPECT_HAS(Error("port: \"8080\"\n"), "key 'port': expected an integer");
  EXPECT_HAS(Error("port:\n"), "key 'port': expected an integer from 0 to 65535, found null");
  EXPECT_HAS(Error("port: [1]\n"), "key 'port'");
  EXPECT_HAS(Error("allow_unsigned: yes\n"), "key 'allow_unsigned': expected true or false");
  EXPECT_HAS(Error("allow_unsigned: 1\n"), "key 'allow_unsigned': expected true or false");
  EXPECT_HAS(Error("allow_unsigned: \"true\"\n"), "key 'allow_unsigned'");
  EXPECT_HAS(Error("host: 127\n"), "key 'host': expected a non-empty string");
  EXPECT_HAS(Error("host: \"\"\n"), "key 'host': expected a non-empty string");
  EXPECT_HAS(Error("tls_cert: true\n"), "key 'tls_cert': expected a string");
  EXPECT_HAS(Error("trust: keys/a.pub\n"), "key 'trust': expected a list");
  EXPECT_HAS(Error("trust: [a, 3]\n"), "key 'trust[1]': expected a non-empty string");
  EXPECT_HAS(Error("trust: [a, \"\"]\n"), "key 'trust[1]'");
  EXPECT_HAS(Error("trust: [[a]]\n"), "key 'trust[0]'");
  EXPECT_HAS(Error("log_sample_rate: half\n"), "key 'log_sample_rate': expected a number");
}

TEST_F(ConfigTest, BooleansAreTrueOrFalse) {
  ServeConfig c;
  ASSERT_TRUE(Load("allow_unsigned: true\n", c));
  EXPECT_TRUE(c.allow_unsigned);
  ASSERT_TRUE(Load("allow_unsigned: false\n", c));
  EXPECT_FALSE(c.allow_unsigned);
  for (const char* v : {"yes", "no", "on", "off", "y", "0"}) {
    EXPECT_HAS(Error(std::string("allow_unsigned: ") + v + "\n"), "true or false");
  }
}

TEST_F(ConfigTest, OutOfRange) {
  EXPECT_HAS(Error("port: 65536\n"), "key 'port': expected an integer from 0 to 65535");
  EXPECT_HAS(Error("port: -1\n"), "key 'port'");
  EXPECT_HAS(Error("port: 18446744073709551615\n"), "key 'port'");
  EXPECT_HAS(Error("http_threads: 0\n"), "key 'http_threads'");
  EXPECT_HAS(Error("http_threads: 65\n"), "key 'http_threads'");
  EXPECT_HAS(Error("max_request_bytes: 17179869185\n"), "key 'max_request_bytes'");
  EXPECT_HAS(Error("max_header_bytes: 1023\n"), "key 'max_header_bytes'");
  EXPECT_HAS(Error("request_timeout_ms: 0\n"), "key 'request_timeout_ms'");
  EXPECT_HAS(Error("idle_timeout_ms: 86400001\n"), "key 'idle_timeout_ms'");
  EXPECT_HAS(Error("max_queue_delay_us: 10000001\n"), "key 'max_queue_delay_us'");
  EXPECT_HAS(Error("log_sample_rate: 1.5\n"), "key 'log_sample_rate': expected a number from 0");
  EXPECT_HAS(Error("log_sample_rate: -0.1\n"), "key 'log_sample_rate'");
  EXPECT_HAS(Error("log_sample_rate: .nan\n"), "key 'log_sample_rate'");
}

TEST_F(ConfigTest, MalformedDocuments) {
  EXPECT_HAS(Error("- port\n- 1\n"), "expected a mapping");
  EXPECT_HAS(Error("just a string\n"), "expected a mapping");
  EXPECT_HAS(Error("port: [1\n"), "not valid YAML");
  EXPECT_HAS(Error("port: 1\n---\nport: 2\n"), "more than one YAML document");
  EXPECT_HAS(Error("a: &x 1\nport: *x\n"), "aliases");
  EXPECT_HAS(Error("host: \"\xff\"\n"), "invalid UTF-8");
  EXPECT_HAS(Error("trust: [[[[a]]]]\n"), "nesting deeper");
}

TEST_F(ConfigTest, CheckCrossFieldRules) {
  ServeConfig c;
  c.tls_cert = "cert.pem";
  auto r = CheckConfig(c);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Code::kUsage);
  EXPECT_HAS(r.error().message, "'tls_cert' is set without tls_key");
  c.tls_cert.clear();
  c.tls_key = "key.pem";
  r = CheckConfig(c);
  ASSERT_FALSE(r);
  EXPECT_HAS(r.error().message, "'tls_key' is set without tls_cert");
  c.tls_cert = "cert.pem";
  EXPECT_TRUE(CheckConfig(c));
}

TEST_F(ConfigTest, CheckRanges) {
  auto usage = [](const ServeConfig& c, const std::string& key) {
    auto r = CheckConfig(c);
    ASSERT_FALSE(r) << key;
    EXPECT_EQ(r.error().code, Code::kUsage);
    EXPECT_HAS(r.error().message, "'" + key + "'");
  };
  ServeConfig c;
  c.host = "";
  usage(c, "host");
  c = {};
  c.port = 70000;
  usage(c, "port");
  c = {};
  c.instances = -1;
  usage(c, "instances");
  c = {};
  c.max_batch_size = 4097;
  usage(c, "max_batch_size");
  c = {};
  c.grace_period_ms = 0;
  usage(c, "grace_period_ms");
  c = {};
  c.max_request_bytes = (1ull << 34) + 1;
  usage(c, "max_request_bytes");
  c = {};
  c.log_sample_rate = 2;
  usage(c, "log_sample_rate");
  c = {};
  c.trust = {"a", ""};
  usage(c, "trust");
}

// The schema documents exactly what LoadConfigFile accepts: the same keys, and the same
// bounds for every integer.
TEST_F(ConfigTest, SchemaListsExactlyTheAcceptedKeys) {
  std::ifstream in(std::string(DLSYS_SOURCE_DIR_PATH) + "/schemas/serve-config.schema.json");
  ASSERT_TRUE(in) << "cannot open the schema";
  const auto schema = nlohmann::json::parse(in);
  EXPECT_EQ(schema.at("additionalProperties"), false);
  const auto& props = schema.at("properties");

  // Every schema key, with a valid value, loads.
  nlohmann::json all = nlohmann::json::object();
  std::set<std::string> schema_keys;
  for (const auto& [key, raw] : props.items()) {
    schema_keys.insert(key);
    nlohmann::json p = raw;
    if (p.contains("$ref")) {
      const std::string ref = p["$ref"];
      ASSERT_EQ(ref.rfind("#/$defs/", 0), 0u);
      p.update(schema.at("$defs").at(ref.substr(8)));
    }
    const std::string type = p.at("type");
    SCOPED_TRACE(key);
    if (type == "integer") {
      const auto min = p.at("minimum").get<std::int64_t>();
      const auto max = p.at("maximum").get<std::int64_t>();
      all[key] = min;
      ServeConfig c;
      EXPECT_TRUE(Load(key + ": " + std::to_string(min) + "\n", c));
      EXPECT_TRUE(Load(key + ": " + std::to_string(max) + "\n", c));
      EXPECT_HAS(Error(key + ": " + std::to_string(min - 1) + "\n"), "key '" + key + "'");
      EXPECT_HAS(Error(key + ": " + std::to_string(max + 1) + "\n"), "key '" + key + "'");
    } else if (type == "number") {
      const double min = p.at("minimum"), max = p.at("maximum");
      all[key] = max;
      ServeConfig c;
      EXPECT_TRUE(Load(key + ": " + std::to_string(min) + "\n", c));
      EXPECT_HAS(Error(key + ": " + std::to_string(max + 0.5) + "\n"), "key '" + key + "'");
    } else if (type == "string") {
      all[key] = "x";
    } else if (type == "boolean") {
      all[key] = true;
    } else if (type == "array") {
      EXPECT_EQ(p.at("items").at("type"), "string");
      all[key] = {"x"};
    } else {
      ADD_FAILURE() << "unexpected type " << type;
    }
  }
  ServeConfig c;
  auto r = Load(all.dump(), c);
  EXPECT_TRUE(r) << r.error().message;

  // And the keys LoadConfigFile accepts (as its unknown-key message lists them) are these.
  const std::string e = Error("not_a_setting: 1\n");
  const auto open = e.find("(known: ");
  ASSERT_NE(open, std::string::npos) << e;
  const std::string list = e.substr(open + 8, e.rfind(')') - open - 8);
  std::set<std::string> accepted;
  std::size_t pos = 0;
  while (pos <= list.size()) {
    const auto comma = list.find(", ", pos);
    accepted.insert(list.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos));
    if (comma == std::string::npos) break;
    pos = comma + 2;
  }
  EXPECT_EQ(accepted, schema_keys);
  EXPECT_EQ(accepted.size(), 25u);
}

}  // namespace
}  // namespace dlsys::serve
