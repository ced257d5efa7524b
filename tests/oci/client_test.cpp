// The OCI distribution client against a real registry (Debian's docker-registry, CNCF
// distribution), with the helper servers of registry_helpers.py for tokens, redirects and
// failures. Every server runs in the test's temp dir on a free loopback port and is stopped by
// its own pid.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "core/encoding.h"
#include "oci/internal/credentials.h"
#include "oci/oci.h"
#include "test_tmp.h"

namespace dlsys::oci {
namespace {

using dlsys::testing::RandomBytes;
using dlsys::testing::Slurp;
using dlsys::testing::Spit;
using dlsys::testing::TempDir;

const std::string kHelpers =
    (std::filesystem::path(__FILE__).parent_path() / "registry_helpers.py").string();
constexpr auto kStartDeadline = std::chrono::seconds(20);

std::string Sha256(std::string_view data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EVP_Digest(data.data(), data.size(), out, &n, EVP_sha256(), nullptr);
  return "sha256:" + core::HexEncode(std::as_bytes(std::span(out, n)));
}

// Fails the test (never skips) when a component is missing, naming its Debian package.
bool Need(const std::string& program, const std::string& package) {
  const std::string cmd = "command -v " + program + " >/dev/null 2>&1";
  if (std::system(cmd.c_str()) == 0) return true;
  ADD_FAILURE() << program << " is missing: install the Debian package " << package;
  return false;
}

// A child process, killed (SIGTERM, then SIGKILL) and reaped by its own pid.
class Child {
 public:
  Child(const std::vector<std::string>& argv, const std::string& log) {
    pid_ = ::fork();
    if (pid_ == 0) {
      const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      if (fd >= 0) {
        ::dup2(fd, 1);
        ::dup2(fd, 2);
      }
      std::vector<char*> args;
      for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
      args.push_back(nullptr);
      ::execvp(args[0], args.data());
      ::_exit(127);
    }
  }
  ~Child() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGTERM);
    for (int i = 0; i < 100; ++i) {
      if (::waitpid(pid_, nullptr, WNOHANG) == pid_) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }
  bool Running() const { return pid_ > 0 && ::waitpid(pid_, nullptr, WNOHANG) == 0; }

 private:
  pid_t pid_ = -1;
};

int FreePort() {
  const int s = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(s, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  ::getsockname(s, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(s);
  return ntohs(addr.sin_port);
}

bool Accepts(int port) {
  const int s = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const bool ok = ::connect(s, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  ::close(s);
  return ok;
}

// Polls until `ready` or the deadline (or the child died).
template <typename F>
bool WaitFor(const Child& child, F ready) {
  const auto deadline = std::chrono::steady_clock::now() + kStartDeadline;
  while (std::chrono::steady_clock::now() < deadline) {
    if (ready()) return true;
    if (!child.Running()) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

// One of registry_helpers.py's servers.
struct Helper {
  std::unique_ptr<Child> child;
  int port = 0;
  std::string log;

  bool Start(const TempDir& dir, const std::string& name, std::vector<std::string> args) {
    const std::string port_file = dir / (name + ".port");
    log = dir / (name + ".log");
    std::vector<std::string> argv{"/usr/bin/python3", kHelpers, args.at(0), "--port-file",
                                  port_file,          "--log",  log};
    argv.insert(argv.end(), args.begin() + 1, args.end());
    child = std::make_unique<Child>(argv, dir / (name + ".stderr"));
    const bool up = WaitFor(*child, [&] { return !Slurp(port_file).empty(); });
    if (!up) {
      ADD_FAILURE() << name << " helper did not start: " << Slurp(dir / (name + ".stderr"));
      return false;
    }
    port = std::stoi(Slurp(port_file));
    return true;
  }
};

// docker-registry serving a fresh storage directory on 127.0.0.1:port.
struct Registry {
  std::unique_ptr<Child> child;
  int port = 0;
  std::string storage;

  bool Start(const TempDir& dir, const std::string& auth_yaml = "") {
    if (!Need("docker-registry", "docker-registry")) return false;
    port = FreePort();
    storage = dir / "storage";
    const std::string config = dir / "registry.yml";
    Spit(config,
         "version: 0.1\n"
         "log:\n  level: error\n  accesslog:\n    disabled: true\n"
         "storage:\n  filesystem:\n    rootdirectory: " +
             storage +
             "\n"
             "  delete:\n    enabled: true\n"
             "http:\n  addr: 127.0.0.1:" +
             std::to_string(port) + "\n" + auth_yaml);
    child = std::make_unique<Child>(std::vector<std::string>{"docker-registry", "serve", config},
                                    dir / "registry.log");
    if (!WaitFor(*child, [&] { return Accepts(port); })) {
      ADD_FAILURE() << "docker-registry did not start: " << Slurp(dir / "registry.log");
      return false;
    }
    return true;
  }
  std::string Host() const { return "127.0.0.1:" + std::to_string(port); }
  // The file distribution keeps a blob's bytes in.
  std::string BlobPath(const std::string& digest) const {
    const std::string hex = digest.substr(7);
    return storage + "/docker/registry/v2/blobs/sha256/" + hex.substr(0, 2) + "/" + hex + "/data";
  }
};

Reference Ref(const std::string& host, const std::string& repository) {
  Reference r;
  r.host = host;
  r.repository = repository;
  return r;
}

ClientOptions Plain() {
  ClientOptions o;
  o.plain_http = true;
  o.auth_file = "-";
  o.retries = 0;
  return o;
}

std::unique_ptr<Client> Make(const std::string& host, ClientOptions options,
                             const std::string& repository = "team/iris") {
  auto c = Client::Create(Ref(host, repository), std::move(options));
  EXPECT_TRUE(c.has_value()) << (c ? "" : c.error().message);
  return c ? std::move(*c) : nullptr;
}

std::string Pull(Client& client, const std::string& repo, const std::string& digest,
                 std::uint64_t size) {
  std::string out;
  auto r = client.PullBlob(repo, digest, size, [&](std::string_view d) -> Result<void> {
    out.append(d);
    return {};
  });
  EXPECT_TRUE(r.has_value()) << (r ? "" : r.error().message);
  return out;
}

// A minimal valid OCI image manifest over a config and a layer.
std::string ManifestFor(const std::string& config, const std::string& layer) {
  return std::string(
             R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",)") +
         R"("artifactType":"application/vnd.dlsys.model.v1","config":{"mediaType":")" +
         std::string(kConfigMediaType) + R"(","digest":")" + Sha256(config) + R"(","size":)" +
         std::to_string(config.size()) + R"(},"layers":[{"mediaType":")" +
         std::string(kLayerMediaType) + R"(","digest":")" + Sha256(layer) + R"(","size":)" +
         std::to_string(layer.size()) + "}]}";
}

std::string AuthFile(const TempDir& dir, const std::string& key, const std::string& user,
                     const std::string& password) {
  const std::string path = dir / "auth.json";
  const std::string plain = user + ":" + password;
  Spit(path, R"({"auths":{")" + key + R"(":{"auth":")" + core::Base64Encode(core::AsBytes(plain)) +
                 "\"}}}");
  return path;
}

// ---------------------------------------------------------------------------------------------
// Anonymous registry

class ClientTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(registry_.Start(dir_)); }
  TempDir dir_;
  Registry registry_;
};

TEST_F(ClientTest, PushesAndPullsASmallBlob) {
  auto client = Make(registry_.Host(), Plain());
  ASSERT_TRUE(client);
  const std::string data = RandomBytes(1000, 1);
  const std::string digest = Sha256(data);
  EXPECT_FALSE(*client->BlobExists("team/iris", digest));
  auto pushed = client->PushBlob("team/iris", data, digest);
  ASSERT_TRUE(pushed.has_value()) << pushed.error().message;
  EXPECT_TRUE(*pushed);
  EXPECT_TRUE(*client->BlobExists("team/iris", digest));
  EXPECT_EQ(Pull(*client, "team/iris", digest, data.size()), data);
  auto fetched = client->FetchBlob("team/iris", digest, data.size(), 4096);
  ASSERT_TRUE(fetched.has_value()) << fetched.error().message;
  EXPECT_EQ(*fetched, data);
  auto too_big = client->FetchBlob("team/iris", digest, data.size(), 10);
  ASSERT_FALSE(too_big.has_value());
  EXPECT_EQ(too_big.error().code, Code::kInvalid);
}

TEST_F(ClientTest, PushesInChunksFromAFileAndReportsProgress) {
  const std::string data = RandomBytes((7u << 20) / 2, 2);  // 3.5 MiB
  const std::string digest = Sha256(data);
  const std::string path = dir_ / "layer.bin";
  Spit(path, data);
  std::vector<std::pair<std::uint64_t, std::uint64_t>> calls;
  ClientOptions options = Plain();
  options.chunk_bytes = 1u << 20;
  options.progress = [&](std::uint64_t done, std::uint64_t total) {
    calls.emplace_back(done, total);
  };
  auto client = Make(registry_.Host(), options);
  ASSERT_TRUE(client);
  const int fd = ::open(path.c_str(), O_RDONLY);
  ASSERT_GE(fd, 0);
  const auto before = client->request_count();
  auto pushed = client->PushBlob("team/iris", fd, data.size(), digest);
  ::close(fd);
  ASSERT_TRUE(pushed.has_value()) << pushed.error().message;
  EXPECT_TRUE(*pushed);
  // HEAD, POST, four PATCHes of at most 1 MiB, PUT.
  EXPECT_EQ(client->request_count() - before, 7u);
  const std::vector<std::pair<std::uint64_t, std::uint64_t>> want{{1u << 20, data.size()},
                                                                  {2u << 20, data.size()},
                                                                  {3u << 20, data.size()},
                                                                  {data.size(), data.size()}};
  EXPECT_EQ(calls, want);
  calls.clear();
  EXPECT_EQ(Pull(*client, "team/iris", digest, data.size()), data);
  ASSERT_FALSE(calls.empty());
  EXPECT_EQ(calls.back().first, data.size());
  EXPECT_EQ(calls.back().second, data.size());
  EXPECT_EQ(Slurp(registry_.BlobPath(digest)), data);
}

TEST_F(ClientTest, RepushOfAPresentBlobSendsOnlyAHead) {
  auto client = Make(registry_.Host(), Plain());
  ASSERT_TRUE(client);
  const std::string data = RandomBytes(5000, 3);
  ASSERT_TRUE(*client->PushBlob("team/iris", data, Sha256(data)));
  const auto before = client->request_count();
  auto again = client->PushBlob("team/iris", data, Sha256(data));
  ASSERT_TRUE(again.has_value()) << again.error().message;
  EXPECT_FALSE(*again);
  EXPECT_EQ(client->request_count() - before, 1u);
}

TEST_F(ClientTest, MountsABlobFromAnotherRepository) {
  auto client = Make(registry_.Host(), Plain());
  ASSERT_TRUE(client);
  const std::string data = RandomBytes(3000, 4);
  const std::string digest = Sha256(data);
  const std::string path = dir_ / "blob";
  Spit(path, data);
  const int fd = ::open(path.c_str(), O_RDONLY);
  ASSERT_TRUE(*client->PushBlob("team/iris", fd, data.size(), digest));
  const auto before = client->request_count();
  auto mounted = client->PushBlob("team/other", fd, data.size(), digest, "team/iris");
  ::close(fd);
  ASSERT_TRUE(mounted.has_value()) << mounted.error().message;
  EXPECT_FALSE(*mounted);                           // no bytes sent
  EXPECT_EQ(client->request_count() - before, 2u);  // HEAD, POST ?mount=
  EXPECT_TRUE(*client->BlobExists("team/other", digest));
}

TEST_F(ClientTest, PushesAndFetchesManifestsByTagAndDigestAndListsTags) {
  auto client = Make(registry_.Host(), Plain());
  ASSERT_TRUE(client);
  const std::string config = R"({"name":"iris"})";
  const std::string layer = RandomBytes(2000, 5);
  ASSERT_TRUE(client->PushBlob("team/iris", config, Sha256(config)).has_value());
  ASSERT_TRUE(client->PushBlob("team/iris", layer, Sha256(layer)).has_value());
  const std::string manifest = ManifestFor(config, layer);
  auto digest = client->PushManifest("team/iris", "1.0.0", manifest);
  ASSERT_TRUE(digest.has_value()) << digest.error().message;
  EXPECT_EQ(*digest, Sha256(manifest));
  ASSERT_TRUE(client->PushManifest("team/iris", "latest", manifest).has_value());
  ASSERT_TRUE(client->PushManifest("team/iris", *digest, manifest).has_value());

  auto by_tag = client->FetchManifest("team/iris", "1.0.0");
  ASSERT_TRUE(by_tag.has_value()) << by_tag.error().message;
  EXPECT_EQ(by_tag->bytes, manifest);
  EXPECT_EQ(by_tag->digest, *digest);
  EXPECT_EQ(by_tag->media_type, kManifestMediaType);
  auto by_digest = client->FetchManifest("team/iris", *digest);
  ASSERT_TRUE(by_digest.has_value()) << by_digest.error().message;
  EXPECT_EQ(by_digest->bytes, manifest);

  auto tags = client->ListTags("team/iris");
  ASSERT_TRUE(tags.has_value()) << tags.error().message;
  EXPECT_EQ(*tags, (std::vector<std::string>{"1.0.0", "latest"}));

  auto bad = client->PushManifest("team/iris", Sha256("other"), manifest);
  ASSERT_FALSE(bad.has_value());
  EXPECT_EQ(bad.error().code, Code::kUsage);
}

TEST_F(ClientTest, MissingThingsAreNotFoundNamingRepositoryAndReference) {
  auto client = Make(registry_.Host(), Plain());
  ASSERT_TRUE(client);
  auto manifest = client->FetchManifest("team/iris", "9.9.9");
  ASSERT_FALSE(manifest.has_value());
  EXPECT_EQ(manifest.error().code, Code::kNotFound);
  EXPECT_NE(manifest.error().message.find("team/iris:9.9.9"), std::string::npos)
      << manifest.error().message;
  const std::string digest = Sha256("absent");
  auto blob =
      client->PullBlob("team/iris", digest, 6, [](std::string_view) -> Result<void> { return {}; });
  ASSERT_FALSE(blob.has_value());
  EXPECT_EQ(blob.error().code, Code::kNotFound);
  EXPECT_NE(blob.error().message.find(digest), std::string::npos) << blob.error().message;
  auto tags = client->ListTags("team/nothing");
  ASSERT_FALSE(tags.has_value());
  EXPECT_EQ(tags.error().code, Code::kNotFound);
  EXPECT_NE(tags.error().message.find("team/nothing"), std::string::npos) << tags.error().message;
  auto bad_digest = client->BlobExists("team/iris", "sha256:../../etc");
  ASSERT_FALSE(bad_digest.has_value());
  EXPECT_EQ(bad_digest.error().code, Code::kInvalid);
}

TEST_F(ClientTest, ABlobCorruptedInTheRegistryIsVerifyFailed) {
  auto client = Make(registry_.Host(), Plain());
  ASSERT_TRUE(client);
  const std::string data = RandomBytes(4096, 6);
  const std::string digest = Sha256(data);
  ASSERT_TRUE(*client->PushBlob("team/iris", data, digest));
  std::string corrupt = data;
  corrupt[100] = static_cast<char>(corrupt[100] ^ 1);
  ASSERT_EQ(Slurp(registry_.BlobPath(digest)), data);
  Spit(registry_.BlobPath(digest), corrupt);
  auto r = client->PullBlob("team/iris", digest, data.size(),
                            [](std::string_view) -> Result<void> { return {}; });
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, Code::kVerifyFailed);
  EXPECT_NE(r.error().message.find("has digest " + Sha256(corrupt)), std::string::npos)
      << r.error().message;
  EXPECT_NE(r.error().message.find("the registry's copy is corrupt"), std::string::npos);

  // A descriptor that understates the size stops the download past it.
  const std::string other = RandomBytes(4096, 7);
  ASSERT_TRUE(*client->PushBlob("team/iris", other, Sha256(other)));
  std::uint64_t received = 0;
  auto shorter =
      client->PullBlob("team/iris", Sha256(other), 1000, [&](std::string_view d) -> Result<void> {
        received += d.size();
        return {};
      });
  ASSERT_FALSE(shorter.has_value());
  EXPECT_EQ(shorter.error().code, Code::kVerifyFailed);
  EXPECT_LE(received, 1000u);
}

TEST_F(ClientTest, AFailedUploadRestartsFromThePostAndABrokenDownloadResumes) {
  ASSERT_TRUE(Need("python3", "python3"));
  Helper proxy;
  ASSERT_TRUE(proxy.Start(dir_, "proxy",
                          {"proxy", "--upstream", registry_.Host(), "--fail-method", "PATCH",
                           "--fail-first", "1", "--cut-first-blob"}));
  ClientOptions options = Plain();
  options.retries = 2;
  options.chunk_bytes = 1u << 20;
  auto client = Make("127.0.0.1:" + std::to_string(proxy.port), options);
  ASSERT_TRUE(client);
  const std::string data = RandomBytes(3u << 20, 11);
  const std::string digest = Sha256(data);
  auto pushed = client->PushBlob("team/iris", data, digest);
  ASSERT_TRUE(pushed.has_value()) << pushed.error().message;
  EXPECT_EQ(Slurp(registry_.BlobPath(digest)), data);
  EXPECT_EQ(Pull(*client, "team/iris", digest, data.size()), data);
  const std::string log = Slurp(proxy.log);
  std::size_t posts = 0;
  for (auto at = log.find("POST /v2/team/iris/blobs/uploads/"); at != std::string::npos;
       at = log.find("POST /v2/team/iris/blobs/uploads/", at + 1)) {
    ++posts;
  }
  EXPECT_EQ(posts, 2u) << log;
  EXPECT_NE(log.find("range=bytes=" + std::to_string(data.size() / 2) + "-"), std::string::npos)
      << log;
}

TEST_F(ClientTest, HttpsToAPlainHttpRegistryNamesCaFile) {
  ClientOptions options = Plain();
  options.plain_http = false;
  auto client = Make(registry_.Host(), options);
  ASSERT_TRUE(client);
  auto r = client->BlobExists("team/iris", Sha256("x"));
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, Code::kUnavailable);
  ASSERT_FALSE(r.error().details.empty()) << r.error().message;
  EXPECT_NE(r.error().details[0].find("--ca-file"), std::string::npos);
}

// ---------------------------------------------------------------------------------------------
// Without a registry

TEST(ClientPlainHttp, IsRefusedForANonLoopbackHost) {
  ClientOptions options = Plain();
  auto r = Client::Create(Ref("registry.example.com", "team/iris"), options);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, Code::kUsage);
  EXPECT_NE(r.error().message.find("--plain-http"), std::string::npos) << r.error().message;
  options.plain_http_anywhere = true;
  EXPECT_TRUE(Client::Create(Ref("registry.example.com", "team/iris"), options).has_value());
  options.plain_http_anywhere = false;
  for (const char* host : {"127.0.0.1:5000", "localhost", "[::1]:5000", "127.1.2.3"}) {
    EXPECT_TRUE(Client::Create(Ref(host, "team/iris"), options).has_value()) << host;
  }
  EXPECT_FALSE(Client::Create(Ref("127.0.0.1.example.com", "team/iris"), options).has_value());
}

TEST(ClientRetry, NetworkErrorsAreRetriedThenUnavailable) {
  const int port = FreePort();  // nothing listens there
  ClientOptions options = Plain();
  options.retries = 2;
  auto client = Make("127.0.0.1:" + std::to_string(port), options);
  ASSERT_TRUE(client);
  auto r = client->BlobExists("team/iris", Sha256("x"));
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, Code::kUnavailable);
  EXPECT_NE(r.error().message.find("3 attempts"), std::string::npos) << r.error().message;
  EXPECT_EQ(client->request_count(), 3u);
}

TEST(ClientCredentials, FindsTheEntryForTheHost) {
  const auto b64 = [](std::string_view s) { return core::Base64Encode(core::AsBytes(s)); };
  bool found = false;
  const std::string text =
      R"({"auths":{"https://reg.example.com:5000":{"auth":")" + b64("alice:s3cr:et") +
      R"("},"other.example.com":{"username":"bob","password":"pw"},)"
      R"("https://index.docker.io/v1/":{"auth":")" +
      b64("carol:hub") + R"("},"other.example.com/team":{"identitytoken":"refresh"}}})";
  auto a = internal::CredentialsFromAuthJson(text, "f", "reg.example.com:5000", "x", &found);
  ASSERT_TRUE(a.has_value()) << a.error().message;
  EXPECT_TRUE(found);
  EXPECT_EQ(a->username, "alice");
  EXPECT_EQ(a->password, "s3cr:et");
  auto b = internal::CredentialsFromAuthJson(text, "f", "other.example.com", "solo", &found);
  ASSERT_TRUE(b.has_value());
  EXPECT_EQ(b->username, "bob");
  auto team =
      internal::CredentialsFromAuthJson(text, "f", "other.example.com", "team/iris", &found);
  ASSERT_TRUE(team.has_value());
  EXPECT_EQ(team->identity_token, "refresh");  // the more specific Podman-style key
  auto hub = internal::CredentialsFromAuthJson(text, "f", "docker.io", "library/x", &found);
  ASSERT_TRUE(hub.has_value());
  EXPECT_EQ(hub->username, "carol");
  auto none = internal::CredentialsFromAuthJson(text, "f", "reg.example.com", "x", &found);
  ASSERT_TRUE(none.has_value());
  EXPECT_FALSE(found);

  auto helper = internal::CredentialsFromAuthJson(
      R"({"credHelpers":{"reg.example.com":"ecr-login"}})", "f", "reg.example.com", "x", &found);
  ASSERT_FALSE(helper.has_value());
  EXPECT_EQ(helper.error().code, Code::kUnavailable);
  EXPECT_NE(helper.error().message.find("docker-credential-ecr-login"), std::string::npos);
  auto store = internal::CredentialsFromAuthJson(
      R"({"auths":{"reg.example.com":{}},"credsStore":"desktop"})", "f", "reg.example.com", "x",
      &found);
  ASSERT_FALSE(store.has_value());
  EXPECT_NE(store.error().message.find("docker-credential-desktop"), std::string::npos);
  auto bad = internal::CredentialsFromAuthJson(R"({"auths":{"reg.example.com":{"auth":"!!"}}})",
                                               "f", "reg.example.com", "x", &found);
  ASSERT_FALSE(bad.has_value());
  EXPECT_EQ(bad.error().code, Code::kInvalid);

  TempDir dir;
  auto missing = internal::LoadCredentials("reg.example.com", "x", dir / "absent.json");
  ASSERT_FALSE(missing.has_value());
  EXPECT_EQ(missing.error().code, Code::kNotFound);
}

// ---------------------------------------------------------------------------------------------
// Basic auth (htpasswd), redirects and retries through a proxy

class ClientBasicAuth : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(Need("htpasswd", "apache2-utils"));
    const std::string htpasswd = dir_ / "htpasswd";
    const std::string cmd = "htpasswd -Bbn user 'pa55-word' > " + htpasswd;
    ASSERT_EQ(std::system(cmd.c_str()), 0);
    ASSERT_TRUE(registry_.Start(
        dir_, "auth:\n  htpasswd:\n    realm: dlsys-test\n    path: " + htpasswd + "\n"));
  }
  TempDir dir_;
  Registry registry_;
};

TEST_F(ClientBasicAuth, UsesTheAuthFileAndNeverShowsThePassword) {
  ClientOptions options = Plain();
  options.auth_file = AuthFile(dir_, "https://" + registry_.Host(), "user", "pa55-word");
  auto client = Make(registry_.Host(), options);
  ASSERT_TRUE(client);
  const std::string data = RandomBytes(2048, 8);
  auto pushed = client->PushBlob("team/iris", data, Sha256(data));
  ASSERT_TRUE(pushed.has_value()) << pushed.error().message;
  EXPECT_EQ(Pull(*client, "team/iris", Sha256(data), data.size()), data);
  // One 401 taught the client to send Basic up front: HEAD (401), HEAD, POST, PUT, GET.
  EXPECT_EQ(client->request_count(), 5u);

  auto anonymous = Make(registry_.Host(), Plain());
  auto a = anonymous->BlobExists("team/iris", Sha256(data));
  ASSERT_FALSE(a.has_value());
  EXPECT_EQ(a.error().code, Code::kUnavailable);
  EXPECT_NE(a.error().message.find("refused access to team/iris (401)"), std::string::npos)
      << a.error().message;

  options.auth_file = AuthFile(dir_, registry_.Host(), "user", "wrong-Secret-42");
  auto wrong = Make(registry_.Host(), options);
  auto w = wrong->BlobExists("team/iris", Sha256(data));
  ASSERT_FALSE(w.has_value());
  EXPECT_EQ(w.error().code, Code::kUnavailable);
  EXPECT_NE(w.error().message.find("credentials from " + options.auth_file), std::string::npos)
      << w.error().message;
  EXPECT_EQ(w.error().message.find("wrong-Secret-42"), std::string::npos);
  EXPECT_EQ(w.error().message.find(core::Base64Encode(core::AsBytes("user:wrong-Secret-42"))),
            std::string::npos);
}

TEST_F(ClientBasicAuth, ARedirectToAnotherHostGetsNoAuthorization) {
  ASSERT_TRUE(Need("python3", "python3"));
  const std::string blobs = dir_ / "blobs";
  std::filesystem::create_directories(blobs);
  const std::string data = RandomBytes(100000, 9);
  const std::string digest = Sha256(data);
  Spit(blobs + "/" + digest, data);
  Helper storage;
  ASSERT_TRUE(storage.Start(dir_, "storage", {"blobhost", "--bind", "127.0.0.2", "--dir", blobs}));
  Helper proxy;
  ASSERT_TRUE(proxy.Start(dir_, "proxy",
                          {"proxy", "--upstream", registry_.Host(), "--redirect-blobs",
                           "http://127.0.0.2:" + std::to_string(storage.port) + "/b"}));
  const std::string host = "127.0.0.1:" + std::to_string(proxy.port);
  ClientOptions options = Plain();
  options.auth_file = AuthFile(dir_, host, "user", "pa55-word");
  auto client = Make(host, options);
  ASSERT_TRUE(client);
  ASSERT_TRUE(client->PushBlob("team/iris", data, digest).has_value());
  EXPECT_EQ(Pull(*client, "team/iris", digest, data.size()), data);
  const std::string storage_log = Slurp(storage.log);
  EXPECT_NE(storage_log.find("GET /b/" + digest + " authorization=no"), std::string::npos)
      << storage_log;
  EXPECT_EQ(storage_log.find("authorization=yes"), std::string::npos) << storage_log;
  const std::string proxy_log = Slurp(proxy.log);
  EXPECT_NE(proxy_log.find("GET /v2/team/iris/blobs/" + digest + " authorization=yes"),
            std::string::npos)
      << proxy_log;
}

TEST_F(ClientBasicAuth, Retries503ThenSucceedsOrGivesUp) {
  ASSERT_TRUE(Need("python3", "python3"));
  Helper proxy;
  ASSERT_TRUE(
      proxy.Start(dir_, "proxy", {"proxy", "--upstream", registry_.Host(), "--fail-first", "2"}));
  const std::string host = "127.0.0.1:" + std::to_string(proxy.port);
  ClientOptions options = Plain();
  options.auth_file = AuthFile(dir_, host, "user", "pa55-word");
  options.retries = 2;
  auto client = Make(host, options);
  ASSERT_TRUE(client);
  auto r = client->BlobExists("team/iris", Sha256("x"));
  ASSERT_TRUE(r.has_value()) << r.error().message;
  EXPECT_FALSE(*r);
  EXPECT_EQ(client->request_count(), 4u);  // 503, 503, 401, then HEAD with Basic credentials

  Helper flaky;
  ASSERT_TRUE(
      flaky.Start(dir_, "flaky", {"proxy", "--upstream", registry_.Host(), "--fail-first", "100"}));
  options.retries = 1;
  auto failing = Make("127.0.0.1:" + std::to_string(flaky.port), options);
  auto f = failing->FetchManifest("team/iris", "1.0.0");
  ASSERT_FALSE(f.has_value());
  EXPECT_EQ(f.error().code, Code::kUnavailable);
  EXPECT_NE(f.error().message.find("503"), std::string::npos) << f.error().message;
  EXPECT_NE(f.error().message.find("UNAVAILABLE: try later"), std::string::npos)
      << f.error().message;
  EXPECT_EQ(failing->request_count(), 2u);
}

// ---------------------------------------------------------------------------------------------
// Bearer tokens

class ClientBearer : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(Need("python3", "python3"));
    ASSERT_EQ(std::system("/usr/bin/python3 -c 'import cryptography' 2>/dev/null"), 0)
        << "python3-cryptography is missing: install the Debian package python3-cryptography";
    const std::string key = dir_ / "token.key";
    const std::string cert = dir_ / "token.crt";
    const std::string cmd =
        "/usr/bin/python3 " + kHelpers + " keygen --key " + key + " --cert " + cert;
    ASSERT_EQ(std::system(cmd.c_str()), 0);
    ASSERT_TRUE(tokens_.Start(dir_, "token",
                              {"token", "--key", key, "--user", "user:t0k3n-pass", "--service",
                               "dlsys-test-registry", "--issuer", "dlsys-test-issuer"}));
    ASSERT_TRUE(registry_.Start(
        dir_, "auth:\n  token:\n    realm: http://127.0.0.1:" + std::to_string(tokens_.port) +
                  "/token\n"
                  "    service: dlsys-test-registry\n"
                  "    issuer: dlsys-test-issuer\n"
                  "    rootcertbundle: " +
                  cert + "\n"));
  }
  TempDir dir_;
  Helper tokens_;
  Registry registry_;
};

TEST_F(ClientBearer, FetchesOneTokenPerScopeAndUsesIt) {
  ClientOptions options = Plain();
  options.auth_file = AuthFile(dir_, registry_.Host(), "user", "t0k3n-pass");
  auto client = Make(registry_.Host(), options);
  ASSERT_TRUE(client);
  const std::string config = R"({"name":"iris"})";
  const std::string layer = RandomBytes(3000, 10);
  ASSERT_TRUE(client->PushBlob("team/iris", config, Sha256(config)).has_value());
  auto pushed = client->PushBlob("team/iris", layer, Sha256(layer));
  ASSERT_TRUE(pushed.has_value()) << pushed.error().message;
  auto digest = client->PushManifest("team/iris", "1.0.0", ManifestFor(config, layer));
  ASSERT_TRUE(digest.has_value()) << digest.error().message;
  auto fetched = client->FetchManifest("team/iris", "1.0.0");
  ASSERT_TRUE(fetched.has_value()) << fetched.error().message;
  EXPECT_EQ(Pull(*client, "team/iris", Sha256(layer), layer.size()), layer);
  const std::string log = Slurp(tokens_.log);
  // One token for pull,push served the whole push and the pulls after it.
  std::size_t token_requests = 0;
  for (std::size_t at = log.find("GET /token"); at != std::string::npos;
       at = log.find("GET /token", at + 1)) {
    ++token_requests;
  }
  EXPECT_EQ(token_requests, 1u) << log;
  EXPECT_NE(log.find("scopes repository:team/iris:pull,push"), std::string::npos) << log;

  options.auth_file = AuthFile(dir_, registry_.Host(), "user", "Not-The-Pass-7");
  auto wrong = Make(registry_.Host(), options);
  auto w = wrong->FetchManifest("team/iris", "1.0.0");
  ASSERT_FALSE(w.has_value());
  EXPECT_EQ(w.error().code, Code::kUnavailable);
  EXPECT_NE(w.error().message.find("refused access to team/iris (401)"), std::string::npos)
      << w.error().message;
  EXPECT_EQ(w.error().message.find("Not-The-Pass-7"), std::string::npos);
}

}  // namespace
}  // namespace dlsys::oci
