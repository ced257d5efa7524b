#include "oci/internal/credentials.h"

#include <openssl/crypto.h>

#include <cstdlib>
#include <optional>
#include <string>

#include "core/encoding.h"
#include "core/file.h"
#include "core/internal/json.h"
#include "core/text.h"

namespace dlsys::oci::internal {
namespace {

// An auth file holds a handful of entries; a larger one is not an auth file.
constexpr std::size_t kMaxAuthFileBytes = 4u << 20;

void Wipe(std::string& s) {
  if (!s.empty()) OPENSSL_cleanse(s.data(), s.size());
  s.clear();
}

bool IsDockerHub(std::string_view host) {
  return host == "docker.io" || host == "index.docker.io" || host == "registry-1.docker.io";
}

bool SameHost(std::string_view a, std::string_view b) {
  return a == b || (IsDockerHub(a) && IsDockerHub(b));
}

// How well an "auths" key matches: -1 not at all, else the length of its repository path
// (Podman allows "host/namespace" keys; the most specific one wins, as in Podman).
// Docker writes "https://host[:port]" and "https://index.docker.io/v1/": with a scheme, the
// path is an API version, not a namespace.
int MatchKey(std::string_view key, std::string_view host, std::string_view repository) {
  bool had_scheme = false;
  for (std::string_view scheme : {"https://", "http://"}) {
    if (key.substr(0, scheme.size()) == scheme) {
      key.remove_prefix(scheme.size());
      had_scheme = true;
    }
  }
  const auto slash = key.find('/');
  const std::string_view key_host = key.substr(0, slash);
  if (!SameHost(key_host, host)) return -1;
  if (slash == std::string_view::npos || had_scheme) return 0;
  std::string_view path = key.substr(slash + 1);
  while (!path.empty() && path.back() == '/') path.remove_suffix(1);
  if (path.empty()) return 0;
  if (repository == path ||
      (repository.size() > path.size() && repository.substr(0, path.size()) == path &&
       repository[path.size()] == '/')) {
    return static_cast<int>(path.size());
  }
  return -1;
}

std::optional<std::string> StringField(const nlohmann::json& entry, const char* name) {
  const auto it = entry.find(name);
  if (it == entry.end() || !it->is_string()) return std::nullopt;
  return it->get<std::string>();
}

}  // namespace

Credentials::~Credentials() {
  Wipe(username);
  Wipe(password);
  Wipe(identity_token);
}

Result<Credentials> CredentialsFromAuthJson(std::string_view text, const std::string& path,
                                            std::string_view host, std::string_view repository,
                                            bool* found) {
  *found = false;
  const std::string shown = core::TerminalSafe(path);
  // The parser's message quotes no input text, only offsets: safe with secrets inside.
  auto doc = core::ParseJson(text, core::JsonLimits{kMaxAuthFileBytes}, "auth file " + shown);
  if (!doc) return tl::unexpected(std::move(doc).error());
  if (!doc->is_object())
    return Fail(Code::kInvalid, "auth file " + shown + " is not a JSON object");

  if (const auto helpers = doc->find("credHelpers");
      helpers != doc->end() && helpers->is_object()) {
    for (const auto& [key, value] : helpers->items()) {
      if (MatchKey(key, host, repository) < 0) continue;
      const std::string helper = value.is_string() ? value.get<std::string>() : "?";
      return Fail(
          Code::kUnavailable,
          "auth file " + shown + " keeps the credentials for " + core::TerminalSafe(host) +
              " in the credential helper docker-credential-" + core::TerminalSafe(helper) +
              ", which dlsys does not run",
          {"write them to an auth file dlsys can read: REGISTRY_AUTH_FILE=FILE podman login " +
           core::TerminalSafe(host) + " (or skopeo login --authfile FILE)"});
    }
  }

  const auto auths = doc->find("auths");
  if (auths == doc->end()) return Credentials{};
  if (!auths->is_object())
    return Fail(Code::kInvalid, "auth file " + shown + ": \"auths\" is not an object");
  const nlohmann::json* best = nullptr;
  std::string best_key;
  int best_score = -1;
  for (const auto& [key, value] : auths->items()) {
    const int score = MatchKey(key, host, repository);
    if (score > best_score) {
      best_score = score;
      best = &value;
      best_key = key;
    }
  }
  if (best == nullptr) return Credentials{};
  *found = true;
  const std::string where =
      "auth file " + shown + ", entry \"" + core::TerminalSafe(best_key) + "\"";
  if (!best->is_object()) return Fail(Code::kInvalid, where + " is not an object");

  Credentials creds;
  creds.source = path;
  if (auto auth = StringField(*best, "auth"); auth && !auth->empty()) {
    auto decoded = core::Base64Decode(*auth);
    Wipe(*auth);
    if (!decoded) return Fail(Code::kInvalid, where + ": \"auth\" is not base64");
    const auto colon = decoded->find(':');
    if (colon == std::string::npos) {
      Wipe(*decoded);
      return Fail(Code::kInvalid, where + ": \"auth\" is not base64 of USER:PASSWORD");
    }
    creds.username = decoded->substr(0, colon);
    creds.password = decoded->substr(colon + 1);
    Wipe(*decoded);
  } else {
    if (auto user = StringField(*best, "username")) creds.username = std::move(*user);
    if (auto pass = StringField(*best, "password")) creds.password = std::move(*pass);
  }
  if (auto token = StringField(*best, "identitytoken")) creds.identity_token = std::move(*token);

  if (creds.empty()) {
    // docker login with a credsStore leaves an empty entry here and the secret in the store.
    if (const auto store = StringField(*doc, "credsStore"); store && !store->empty()) {
      return Fail(
          Code::kUnavailable,
          "auth file " + shown + " keeps the credentials for " + core::TerminalSafe(host) +
              " in the credential store docker-credential-" + core::TerminalSafe(*store) +
              ", which dlsys does not run",
          {"write them to an auth file dlsys can read: REGISTRY_AUTH_FILE=FILE podman login " +
           core::TerminalSafe(host) + " (or skopeo login --authfile FILE)"});
    }
    *found = false;  // an empty entry is no entry: keep searching
  }
  return creds;
}

Result<Credentials> LoadCredentials(std::string_view host, std::string_view repository,
                                    const std::string& auth_file) {
  if (auth_file == "-") return Credentials{};
  std::vector<std::string> candidates;
  if (!auth_file.empty()) {
    candidates.push_back(auth_file);
  } else {
    const auto env = [](const char* name) -> std::string {
      const char* v = std::getenv(name);
      return v != nullptr ? v : "";
    };
    if (const auto f = env("REGISTRY_AUTH_FILE"); !f.empty()) candidates.push_back(f);
    if (const auto d = env("XDG_RUNTIME_DIR"); !d.empty()) {
      candidates.push_back(d + "/containers/auth.json");
    }
    if (const auto d = env("DOCKER_CONFIG"); !d.empty()) candidates.push_back(d + "/config.json");
    if (const auto h = env("HOME"); !h.empty()) candidates.push_back(h + "/.docker/config.json");
  }
  for (const auto& path : candidates) {
    auto text = core::ReadFile(path, kMaxAuthFileBytes);
    if (!text) {
      if (text.error().code == Code::kNotFound && auth_file.empty()) continue;
      return tl::unexpected(std::move(text).error().Wrap("cannot read the registry auth file"));
    }
    bool found = false;
    auto creds = CredentialsFromAuthJson(*text, path, host, repository, &found);
    Wipe(*text);
    if (!creds) return creds;
    if (found) return creds;
  }
  return Credentials{};
}

}  // namespace dlsys::oci::internal
