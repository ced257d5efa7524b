// The OCI distribution client (docs/oci.md, "Registry protocol"): authentication, retries,
// uploads and verified downloads over internal::Transport.
#include <openssl/crypto.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <map>
#include <thread>

#include "core/encoding.h"
#include "core/internal/json.h"
#include "core/text.h"
#include "oci/internal/credentials.h"
#include "oci/internal/http.h"
#include "oci/oci.h"
#include "signing/digest.h"

namespace dlsys::oci {
namespace {

using internal::Body;
using internal::Failure;
using internal::HttpRequest;
using internal::HttpResponse;
using internal::Transport;

constexpr std::uint64_t kBackoffBaseMs = 200;
constexpr std::uint64_t kBackoffCapMs = 5000;
// A registry's Retry-After is honoured up to this: a rate limit of an hour should fail with a
// message, not hang the command.
constexpr std::uint64_t kRetryAfterCapMs = 30000;
constexpr std::size_t kMaxTokenResponseBytes = 1u << 20;
constexpr std::size_t kMaxTags = 10000;
// Each page holds at least one tag unless the registry misbehaves; this bounds the loop.
constexpr std::size_t kMaxTagPages = 1000;
constexpr std::size_t kMaxQuotedChars = 300;
constexpr std::size_t kMaxQuotedErrors = 3;
constexpr std::string_view kOctetStream = "application/octet-stream";

bool IsLowerHex(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); }
bool IsLowerAlnum(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z'); }

bool IsDigest(std::string_view d) {
  return d.size() == 71 && d.substr(0, 7) == "sha256:" &&
         std::all_of(d.begin() + 7, d.end(), IsLowerHex);
}

// distribution's repository grammar, simplified to what matters for URL safety: '/'-separated
// components of [a-z0-9._-] that start and end with a letter or digit.
bool IsRepository(std::string_view r) {
  if (r.empty() || r.size() > 255) return false;
  std::size_t start = 0;
  while (true) {
    const auto slash = r.find('/', start);
    const std::string_view part = r.substr(start, slash - start);
    if (part.empty() || !IsLowerAlnum(part.front()) || !IsLowerAlnum(part.back())) return false;
    for (char c : part) {
      if (!IsLowerAlnum(c) && c != '.' && c != '_' && c != '-') return false;
    }
    if (slash == std::string_view::npos) return true;
    start = slash + 1;
  }
}

bool IsTag(std::string_view t) {
  if (t.empty() || t.size() > 128) return false;
  const auto ok = [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-';
  };
  return t.front() != '.' && t.front() != '-' && std::all_of(t.begin(), t.end(), ok);
}

std::string Shown(std::string_view s) {
  return core::Truncate(core::TerminalSafe(s), kMaxQuotedChars);
}

std::string DigestOf(std::string_view bytes) {
  return "sha256:" + signing::Sha256Hex(core::AsBytes(bytes));
}

// One WWW-Authenticate challenge: `Bearer realm="...",service="...",scope="..."`.
struct Challenge {
  std::string scheme;  // lower-case
  std::map<std::string, std::string> params;
};

Challenge ParseChallenge(std::string_view h) {
  Challenge c;
  const auto space = h.find(' ');
  for (char ch : h.substr(0, space)) {
    c.scheme += static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  }
  if (space == std::string_view::npos) return c;
  std::size_t i = space + 1;
  while (i < h.size()) {
    while (i < h.size() && (h[i] == ' ' || h[i] == ',')) ++i;
    const auto eq = h.find('=', i);
    if (eq == std::string_view::npos) break;
    std::string key;
    for (char ch : h.substr(i, eq - i)) {
      key += static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    }
    i = eq + 1;
    std::string value;
    if (i < h.size() && h[i] == '"') {
      for (++i; i < h.size() && h[i] != '"'; ++i) {
        if (h[i] == '\\' && i + 1 < h.size()) ++i;
        value += h[i];
      }
      ++i;
    } else {
      while (i < h.size() && h[i] != ',') value += h[i++];
    }
    c.params[key] = value;
  }
  return c;
}

// "CODE: message; CODE: message" from a distribution {"errors":[...]} body, or a short
// excerpt of any other body; bounded and free of control characters.
std::string RegistryErrors(const std::string& body) {
  if (body.empty()) return {};
  auto doc = core::ParseJson(body, core::JsonLimits{internal::kMaxBodyBytes}, "error");
  std::string out;
  if (doc && doc->is_object()) {
    const auto errors = doc->find("errors");
    if (errors != doc->end() && errors->is_array()) {
      std::size_t n = 0;
      for (const auto& e : *errors) {
        if (!e.is_object() || n == kMaxQuotedErrors) break;
        const auto code = e.find("code");
        const auto message = e.find("message");
        std::string one;
        if (code != e.end() && code->is_string()) one = code->get<std::string>();
        if (message != e.end() && message->is_string()) {
          one += (one.empty() ? "" : ": ") + message->get<std::string>();
        }
        if (one.empty()) continue;
        out += (n++ == 0 ? "" : "; ") + one;
      }
    }
  }
  if (out.empty() && !doc) out = body;  // not JSON: an HTML error page, a proxy's text
  return Shown(out);
}

bool IsRetryableStatus(long status) { return status == 429 || status >= 500; }

std::string WithDigestQuery(const std::string& location, const std::string& digest) {
  return location + (location.find('?') == std::string::npos ? "?" : "&") +
         "digest=" + Transport::Escape(digest);
}

}  // namespace

struct Client::Impl {
  Reference ref;
  ClientOptions options;
  std::string base;    // scheme://host, e.g. "https://ghcr.io"
  std::string origin;  // Transport::Origin(base): where registry credentials may go
  internal::Credentials creds;
  std::unique_ptr<Transport> http;

  // What the registry asked for at its last 401, sent up front from then on.
  enum class Auth { kAnonymous, kBasic, kBearer } auth = Auth::kAnonymous;
  std::string realm;
  std::string service;
  std::map<std::string, std::string> tokens;  // scope list -> bearer token

  bool last_retryable = false;  // whether the last failed Send may succeed if repeated

  struct Call {
    std::string method = "GET";
    std::string url;
    std::vector<std::string> headers;
    std::optional<Body> body;
    std::function<bool(long, std::string_view)> sink;
    std::string repository;
    bool push = false;
    std::string mount_from;
    int retries = 0;
    std::function<void(HttpRequest&)> before_attempt;
  };

  ~Impl() {
    for (auto& [scope, token] : tokens) OPENSSL_cleanse(token.data(), token.size());
  }

  std::string RepoUrl(const std::string& repository, const std::string& rest) const {
    return base + "/v2/" + repository + "/" + rest;
  }

  std::string CredentialNote() const {
    if (options.auth_file == "-") return "anonymous: the auth file is '-'";
    if (!creds.source.empty()) return "credentials from " + Shown(creds.source);
    return "no credentials for " + Shown(ref.host) + ": docker login " + Shown(ref.host) +
           ", or name an auth file in $REGISTRY_AUTH_FILE";
  }

  std::vector<std::string> Scopes(const Call& call) const {
    std::vector<std::string> s{"repository:" + call.repository +
                               (call.push ? ":pull,push" : ":pull")};
    if (!call.mount_from.empty()) s.push_back("repository:" + call.mount_from + ":pull");
    return s;
  }
  static std::string ScopeKey(const std::vector<std::string>& scopes) {
    std::string key;
    for (const auto& s : scopes) key += (key.empty() ? "" : " ") + s;
    return key;
  }

  std::string BasicValue() const {
    std::string plain = creds.username + ":" + creds.password;
    std::string value = "Basic " + core::Base64Encode(core::AsBytes(plain));
    OPENSSL_cleanse(plain.data(), plain.size());
    return value;
  }

  static std::uint64_t BackoffMs(int attempt, const HttpResponse* response) {
    std::uint64_t ms = std::min(kBackoffCapMs, kBackoffBaseMs << std::min(attempt, 16));
    if (response != nullptr) {
      const std::string after = response->Header("retry-after");
      if (!after.empty() && after.size() <= 6 &&
          std::all_of(after.begin(), after.end(), [](char c) { return c >= '0' && c <= '9'; })) {
        ms = std::max(ms, std::min<std::uint64_t>(kRetryAfterCapMs, std::stoull(after) * 1000));
      }
    }
    return ms;
  }

  // Sends `request`, repeating it on network errors, 429 and 5xx up to `retries` times.
  // HTTP answers, including the last 5xx, come back as responses; failures without one as
  // errors (last_retryable says whether the failure was a network one).
  Result<HttpResponse> Exchange(HttpRequest request, int retries,
                                const std::function<void(HttpRequest&)>& before_attempt) {
    for (int attempt = 0;; ++attempt) {
      if (before_attempt) before_attempt(request);
      auto outcome = http->Perform(request);
      last_retryable = false;
      switch (outcome.failure) {
        case Failure::kNone:
          if (IsRetryableStatus(outcome.response.status) && attempt < retries) {
            std::this_thread::sleep_for(
                std::chrono::milliseconds(BackoffMs(attempt, &outcome.response)));
            continue;
          }
          last_retryable = IsRetryableStatus(outcome.response.status);
          return std::move(outcome.response);
        case Failure::kNetwork:
          if (attempt < retries) {
            std::this_thread::sleep_for(std::chrono::milliseconds(BackoffMs(attempt, nullptr)));
            continue;
          }
          last_retryable = true;
          return Fail(Code::kUnavailable, "cannot reach the registry " + Shown(ref.host) + ": " +
                                              outcome.error + " (" + std::to_string(attempt + 1) +
                                              (attempt == 0 ? " attempt)" : " attempts)"));
        case Failure::kTls:
          return Fail(Code::kUnavailable,
                      "TLS connection to " + Shown(ref.host) + " failed: " + outcome.error,
                      {"if the registry's certificate comes from a private CA, give that CA's "
                       "certificate (PEM) with --ca-file FILE"});
        case Failure::kAborted:
          return Fail(Code::kInterrupted, "transfer stopped by its consumer");
        case Failure::kTooLarge:
        case Failure::kRedirect:
          return Fail(Code::kInvalid, "the registry " + Shown(ref.host) + " sent " + outcome.error);
        case Failure::kOther:
          return Fail(Code::kUnavailable,
                      "request to the registry " + Shown(ref.host) + " failed: " + outcome.error);
      }
    }
  }

  // The Authorization value for a call: Basic once the registry asked for it, a bearer token
  // for the call's scopes once it asked for tokens (fetched now if not cached).
  Result<std::string> Authorization(const Call& call) {
    if (auth == Auth::kBasic) return creds.has_basic() ? BasicValue() : std::string();
    if (auth != Auth::kBearer) return std::string();
    const auto scopes = Scopes(call);
    auto it = tokens.find(ScopeKey(scopes));
    if (it == tokens.end() && !call.push && call.mount_from.empty()) {
      // A push token for the repository covers pulls too.
      Call wider = call;
      wider.push = true;
      it = tokens.find(ScopeKey(Scopes(wider)));
    }
    if (it != tokens.end()) return "Bearer " + it->second;
    DLSYS_ASSIGN_OR_RETURN(std::string token, FetchToken(call.repository, scopes));
    std::string value = "Bearer " + token;
    tokens[ScopeKey(scopes)] = std::move(token);
    return value;
  }

  Result<std::string> FetchToken(const std::string& repository,
                                 const std::vector<std::string>& scopes) {
    const std::string realm_origin = Transport::Origin(realm);
    if (realm_origin.empty()) {
      return Fail(Code::kInvalid, "the registry " + Shown(ref.host) + " names a token service '" +
                                      Shown(realm) + "' that is not a URL");
    }
    if (realm_origin.rfind("https://", 0) != 0 && !options.plain_http) {
      return Fail(Code::kUnavailable, "the registry " + Shown(ref.host) +
                                          " names a plain-http token service '" + Shown(realm) +
                                          "': dlsys sends credentials only over https");
    }
    std::string query = "service=" + Transport::Escape(service);
    for (const auto& s : scopes) query += "&scope=" + Transport::Escape(s);
    HttpRequest req;
    req.auth_origin = realm_origin;
    std::string form;
    if (!creds.identity_token.empty()) {
      // The docker CLI's OAuth2 refresh-token grant.
      req.method = "POST";
      req.url = realm;
      req.headers.push_back("Content-Type: application/x-www-form-urlencoded");
      form = "grant_type=refresh_token&client_id=dlsys&" + query +
             "&refresh_token=" + Transport::Escape(creds.identity_token);
      req.body = Body{form};
    } else {
      req.method = "GET";
      req.url = realm + (realm.find('?') == std::string::npos ? "?" : "&") + query;
      if (creds.has_basic()) req.authorization = BasicValue();
    }
    auto response = Exchange(std::move(req), options.retries, nullptr);
    OPENSSL_cleanse(form.data(), form.size());
    if (!response) return tl::unexpected(std::move(response).error());
    const long status = response->status;
    const std::string what = "the token service " + Shown(realm_origin) + " of " + Shown(ref.host);
    if (status == 401 || status == 403) {
      return Fail(Code::kUnavailable,
                  what + " refused access to " + Shown(repository) + " (" + std::to_string(status) +
                      ")" + Suffix(RegistryErrors(response->body)) + " (" + CredentialNote() + ")");
    }
    if (status != 200) {
      return Fail(
          IsRetryableStatus(status) ? Code::kUnavailable : Code::kInvalid,
          what + " answered " + std::to_string(status) + Suffix(RegistryErrors(response->body)));
    }
    if (response->body.size() > kMaxTokenResponseBytes) {
      return Fail(Code::kInvalid, what + " sent a token answer larger than 1 MiB");
    }
    auto doc =
        core::ParseJson(response->body, core::JsonLimits{kMaxTokenResponseBytes}, "token answer");
    OPENSSL_cleanse(response->body.data(), response->body.size());
    if (!doc || !doc->is_object())
      return Fail(Code::kInvalid, what + " sent a token answer that is not a JSON object");
    std::string token;
    for (const char* name : {"token", "access_token"}) {
      const auto it = doc->find(name);
      if (it != doc->end() && it->is_string() && !it->get_ref<const std::string&>().empty()) {
        token = it->get<std::string>();
        break;
      }
    }
    if (token.empty()) return Fail(Code::kInvalid, what + " sent no \"token\" or \"access_token\"");
    // It goes into a header line: visible ASCII only.
    if (!std::all_of(token.begin(), token.end(), [](char c) { return c > 0x20 && c < 0x7f; })) {
      return Fail(Code::kInvalid, what + " sent a token with characters not allowed in a header");
    }
    return token;
  }

  static std::string Suffix(const std::string& errors) {
    return errors.empty() ? "" : ": " + errors;
  }

  // After a 401: true if the request should be repeated with new credentials.
  Result<bool> OnChallenge(const HttpResponse& response, const Call& call) {
    const Challenge c = ParseChallenge(response.Header("www-authenticate"));
    if (c.scheme == "basic") {
      if (auth == Auth::kBasic || !creds.has_basic()) return false;
      auth = Auth::kBasic;
      return true;
    }
    if (c.scheme == "bearer") {
      const auto realm_it = c.params.find("realm");
      if (realm_it == c.params.end()) return false;
      realm = realm_it->second;
      const auto service_it = c.params.find("service");
      service = service_it != c.params.end() ? service_it->second : "";
      auth = Auth::kBearer;
      const auto scopes = Scopes(call);
      tokens.erase(ScopeKey(scopes));
      DLSYS_ASSIGN_OR_RETURN(std::string token, FetchToken(call.repository, scopes));
      tokens[ScopeKey(scopes)] = std::move(token);
      return true;
    }
    return false;
  }

  // One registry request with authentication: anonymous first, then what a 401 asks for.
  Result<HttpResponse> Send(const Call& call) {
    bool challenged = false;
    while (true) {
      HttpRequest req;
      req.method = call.method;
      req.url = call.url;
      req.headers = call.headers;
      req.body = call.body;
      req.sink = call.sink;
      req.auth_origin = origin;
      DLSYS_ASSIGN_OR_RETURN(req.authorization, Authorization(call));
      DLSYS_ASSIGN_OR_RETURN(HttpResponse response,
                             Exchange(std::move(req), call.retries, call.before_attempt));
      if (response.status != 401 || challenged) return response;
      challenged = true;
      DLSYS_ASSIGN_OR_RETURN(const bool again, OnChallenge(response, call));
      if (!again) return response;
    }
  }

  // The error for an unexpected status. `what` names the object ("manifest team/iris:1.0").
  Error StatusError(const HttpResponse& r, const std::string& method, const std::string& what,
                    const std::string& repository, const std::string& range = "") {
    const std::string errors = RegistryErrors(r.body);
    const std::string status = std::to_string(r.status);
    last_retryable = IsRetryableStatus(r.status);
    if (r.status == 401 || r.status == 403) {
      return Error{Code::kUnavailable,
                   Shown(ref.host) + " refused access to " + Shown(repository) + " (" + status +
                       ")" + Suffix(errors) + " (" + CredentialNote() + ")",
                   {}};
    }
    if (r.status == 404) {
      return Error{Code::kNotFound, what + " not found in " + Shown(ref.host) + Suffix(errors), {}};
    }
    if (r.status == 416) {
      return Error{Code::kInvalid,
                   Shown(ref.host) + " refused the range " + range + " of " + what + " (416)" +
                       Suffix(errors),
                   {}};
    }
    if (IsRetryableStatus(r.status)) {
      return Error{Code::kUnavailable,
                   Shown(ref.host) + " answered " + status + " to " + method + " of " + what +
                       " after " + std::to_string(options.retries + 1) + " attempts" +
                       Suffix(errors),
                   {}};
    }
    return Error{Code::kInvalid,
                 Shown(ref.host) + " refused " + method + " of " + what + " (" + status + ")" +
                     Suffix(errors),
                 {}};
  }

  Result<void> CheckNames(const std::string& repository, const std::string& digest) const {
    if (!IsRepository(repository)) {
      return Fail(Code::kUsage, "'" + Shown(repository) +
                                    "' is not a repository name (lower-case "
                                    "letters, digits, '.', '_', '-', separated by '/')");
    }
    if (!digest.empty() && !IsDigest(digest)) {
      return Fail(Code::kInvalid,
                  "'" + Shown(digest) + "' is not a digest of the form sha256:<64 hex>");
    }
    return {};
  }

  Result<bool> Exists(const std::string& repository, const std::string& digest, bool push) {
    DLSYS_TRY(CheckNames(repository, digest));
    Call call;
    call.method = "HEAD";
    call.url = RepoUrl(repository, "blobs/" + digest);
    call.repository = repository;
    call.push = push;
    call.retries = options.retries;
    DLSYS_ASSIGN_OR_RETURN(HttpResponse r, Send(call));
    if (r.status == 200) return true;
    if (r.status == 404) return false;
    return tl::unexpected(
        StatusError(r, "HEAD", "blob " + digest + " of " + repository, repository));
  }

  // One upload session: POST (unless `location` is an open session), then one PUT or PATCHes
  // and a closing PUT. Every request is sent once: on failure the caller starts over.
  Result<void> UploadOnce(const std::string& repository, const Body& body,
                          const std::string& digest, std::string location) {
    const std::string what = "blob " + digest + " of " + repository;
    Call call;
    call.repository = repository;
    call.push = true;
    if (location.empty()) {
      call.method = "POST";
      call.url = RepoUrl(repository, "blobs/uploads/");
      DLSYS_ASSIGN_OR_RETURN(HttpResponse r, Send(call));
      if (r.status != 202)
        return tl::unexpected(
            StatusError(r, "POST", "an upload to " + Shown(repository), repository));
      DLSYS_ASSIGN_OR_RETURN(location, NextLocation(r, call.url));
    }
    const std::uint64_t total = body.length();
    const std::uint64_t chunk = std::max<std::uint64_t>(1, options.chunk_bytes);
    if (total > chunk) {
      for (std::uint64_t done = 0; done < total;) {
        const std::uint64_t n = std::min(chunk, total - done);
        call.method = "PATCH";
        call.url = location;
        call.headers = {
            "Content-Type: " + std::string(kOctetStream),
            "Content-Range: " + std::to_string(done) + "-" + std::to_string(done + n - 1)};
        call.body = body.fd >= 0 ? Body{{}, body.fd, body.offset + done, n}
                                 : Body{body.bytes.substr(done, n)};
        DLSYS_ASSIGN_OR_RETURN(HttpResponse r, Send(call));
        if (r.status != 202) {
          return tl::unexpected(
              StatusError(r, "PATCH", what, repository,
                          "bytes " + std::to_string(done) + "-" + std::to_string(done + n - 1)));
        }
        DLSYS_ASSIGN_OR_RETURN(location, NextLocation(r, location));
        done += n;
        if (options.progress) options.progress(done, total);
      }
      call.body.reset();
    } else {
      call.body = body;
    }
    call.method = "PUT";
    call.url = WithDigestQuery(location, digest);
    call.headers = {"Content-Type: " + std::string(kOctetStream)};
    DLSYS_ASSIGN_OR_RETURN(HttpResponse r, Send(call));
    if (r.status != 201) return tl::unexpected(StatusError(r, "PUT", what, repository));
    if (total <= chunk && options.progress) options.progress(total, total);
    return {};
  }

  Result<std::string> NextLocation(const HttpResponse& r, const std::string& request_url) {
    const std::string location = r.Header("location");
    auto resolved = location.empty() ? std::nullopt : Transport::Resolve(request_url, location);
    if (!resolved) {
      return Fail(Code::kInvalid, "the registry " + Shown(ref.host) +
                                      " opened an upload without a usable Location ('" +
                                      Shown(location) + "')");
    }
    return *resolved;
  }

  Result<bool> Push(const std::string& repository, const Body& body, const std::string& digest,
                    const std::string& mount_from) {
    DLSYS_TRY(CheckNames(repository, digest));
    DLSYS_ASSIGN_OR_RETURN(const bool present, Exists(repository, digest, true));
    if (present) return false;
    std::string session;
    if (!mount_from.empty() && mount_from != repository) {
      DLSYS_TRY(CheckNames(mount_from, ""));
      Call call;
      call.method = "POST";
      call.url = RepoUrl(repository, "blobs/uploads/?mount=" + Transport::Escape(digest) +
                                         "&from=" + Transport::Escape(mount_from));
      call.repository = repository;
      call.push = true;
      call.mount_from = mount_from;
      call.retries = options.retries;
      DLSYS_ASSIGN_OR_RETURN(HttpResponse r, Send(call));
      if (r.status == 201) return false;  // mounted: no bytes sent
      // 202: the registry could not mount and opened an ordinary upload session instead.
      if (r.status == 202) {
        DLSYS_ASSIGN_OR_RETURN(session, NextLocation(r, call.url));
      } else if (r.status == 401 || r.status == 403 || IsRetryableStatus(r.status)) {
        return tl::unexpected(StatusError(
            r, "POST", "a mount of " + digest + " into " + Shown(repository), repository));
      }
    }
    for (int attempt = 0;; ++attempt) {
      auto done = UploadOnce(repository, body, digest, attempt == 0 ? session : "");
      if (done) return true;
      if (!last_retryable || attempt >= options.retries)
        return tl::unexpected(std::move(done).error());
      std::this_thread::sleep_for(std::chrono::milliseconds(BackoffMs(attempt, nullptr)));
    }
  }
};

Client::Client() : impl_(std::make_unique<Impl>()) {}
Client::~Client() = default;

Result<std::unique_ptr<Client>> Client::Create(const Reference& ref, ClientOptions options) {
  const bool bad_host =
      ref.host.empty() || std::any_of(ref.host.begin(), ref.host.end(), [](char c) {
        const auto u = static_cast<unsigned char>(c);
        return u <= 0x20 || u >= 0x7f || c == '/' || c == '?' || c == '#' || c == '@' || c == '\\';
      });
  if (bad_host)
    return Fail(Code::kUsage, "'" + Shown(ref.host) + "' is not a registry host[:port]");
  if (!IsRepository(ref.repository)) {
    return Fail(Code::kUsage, "'" + Shown(ref.repository) + "' is not a repository name");
  }
  if (options.plain_http && !ref.IsLoopback() && !options.plain_http_anywhere) {
    return Fail(
        Code::kUsage,
        "--plain-http is allowed only for a registry on this machine (127.0.0.0/8, ::1, "
        "localhost), not for " +
            Shown(ref.host) + ": credentials and archives would cross the network unencrypted",
        {"use https; for a registry with a private CA, give its certificate with --ca-file FILE"});
  }
  std::unique_ptr<Client> client(new Client());
  Impl& impl = *client->impl_;
  impl.ref = ref;
  impl.options = std::move(options);
  // Docker Hub's API lives on another name than the one people write.
  const std::string api_host = (ref.host == "docker.io" || ref.host == "index.docker.io")
                                   ? "registry-1.docker.io"
                                   : ref.host;
  impl.base = std::string(impl.options.plain_http ? "http://" : "https://") + api_host;
  impl.origin = Transport::Origin(impl.base + "/");
  if (impl.origin.empty())
    return Fail(Code::kUsage, "'" + Shown(ref.host) + "' is not a registry host[:port]");
  DLSYS_ASSIGN_OR_RETURN(
      impl.creds, internal::LoadCredentials(ref.host, ref.repository, impl.options.auth_file));
  internal::TransportOptions topts;
  topts.ca_file = impl.options.ca_file;
  topts.allow_http = impl.options.plain_http;
  topts.timeout_ms = impl.options.timeout_ms;
  DLSYS_ASSIGN_OR_RETURN(impl.http, Transport::Create(std::move(topts)));
  return client;
}

Result<bool> Client::BlobExists(const std::string& repository, const std::string& digest) {
  return impl_->Exists(repository, digest, false);
}

Result<bool> Client::PushBlob(const std::string& repository, int fd, std::uint64_t size,
                              const std::string& digest, const std::string& mount_from) {
  return impl_->Push(repository, Body{{}, fd, 0, size}, digest, mount_from);
}

Result<bool> Client::PushBlob(const std::string& repository, std::string_view bytes,
                              const std::string& digest) {
  return impl_->Push(repository, Body{bytes}, digest, "");
}

Result<void> Client::PullBlob(const std::string& repository, const std::string& digest,
                              std::uint64_t size,
                              const std::function<Result<void>(std::string_view)>& sink) {
  Impl& impl = *impl_;
  DLSYS_TRY(impl.CheckNames(repository, digest));
  const std::string what = "blob " + digest + " of " + repository;
  signing::Sha256Hasher hash;
  std::uint64_t done = 0;
  std::uint64_t skip = 0;  // bytes already delivered that a 200 answer to a resume repeats
  bool too_long = false;
  std::optional<Error> sink_error;
  Impl::Call call;
  call.url = impl.RepoUrl(repository, "blobs/" + digest);
  call.repository = repository;
  call.retries = impl.options.retries;
  // A retry after a broken transfer resumes where it stopped.
  call.before_attempt = [&](HttpRequest& req) {
    req.headers.clear();
    if (done > 0) req.headers.push_back("Range: bytes=" + std::to_string(done) + "-");
    skip = done;
  };
  call.sink = [&](long status, std::string_view data) {
    if (status != 206 && skip > 0) {
      const auto n = std::min<std::uint64_t>(skip, data.size());
      data.remove_prefix(n);
      skip -= n;
    }
    if (data.empty()) return true;
    if (data.size() > size - done) {
      too_long = true;
      return false;
    }
    hash.Update(core::AsBytes(data));
    if (auto r = sink(data); !r) {
      sink_error = std::move(r).error();
      return false;
    }
    done += data.size();
    if (impl.options.progress) impl.options.progress(done, size);
    return true;
  };
  auto response = impl.Send(call);
  if (sink_error) return tl::unexpected(std::move(*sink_error));
  if (too_long) {
    return Fail(Code::kVerifyFailed, what + " from " + Shown(impl.ref.host) +
                                         " is longer than the " + std::to_string(size) +
                                         " bytes its descriptor says");
  }
  if (!response) return tl::unexpected(std::move(response).error());
  if (response->status != 200 && response->status != 206) {
    return tl::unexpected(impl.StatusError(*response, "GET", what, repository,
                                           "bytes=" + std::to_string(done) + "-"));
  }
  if (done != size) {
    return Fail(Code::kVerifyFailed, what + " from " + Shown(impl.ref.host) + " has " +
                                         std::to_string(done) + " bytes, its descriptor says " +
                                         std::to_string(size));
  }
  const std::string actual = "sha256:" + hash.FinishHex();
  if (actual != digest) {
    return Fail(Code::kVerifyFailed, "blob " + digest + " from " + Shown(impl.ref.host) +
                                         " has digest " + actual +
                                         ": the registry's copy is corrupt");
  }
  return {};
}

Result<std::string> Client::FetchBlob(const std::string& repository, const std::string& digest,
                                      std::uint64_t size, std::uint64_t max_bytes) {
  if (size > max_bytes) {
    return Fail(Code::kInvalid, "blob " + Shown(digest) + " of " + Shown(repository) + " is " +
                                    std::to_string(size) + " bytes, more than the " +
                                    std::to_string(max_bytes) + " allowed here");
  }
  std::string out;
  out.reserve(static_cast<std::size_t>(size));
  DLSYS_TRY(PullBlob(repository, digest, size, [&out](std::string_view data) -> Result<void> {
    out.append(data);
    return {};
  }));
  return out;
}

Result<std::string> Client::PushManifest(const std::string& repository,
                                         const std::string& reference,
                                         std::string_view manifest_json) {
  Impl& impl = *impl_;
  DLSYS_TRY(impl.CheckNames(repository, ""));
  if (!IsTag(reference) && !IsDigest(reference)) {
    return Fail(Code::kUsage, "'" + Shown(reference) + "' is neither a tag nor a sha256 digest");
  }
  if (manifest_json.size() > internal::kMaxBodyBytes) {
    return Fail(Code::kInvalid, "the manifest is larger than 4 MiB, which registries refuse");
  }
  // Content-Type must be the body's mediaType, or the registry refuses it.
  std::string media_type(kManifestMediaType);
  auto doc = core::ParseJson(manifest_json, core::JsonLimits{internal::kMaxBodyBytes}, "manifest");
  if (!doc) return tl::unexpected(std::move(doc).error());
  if (doc->is_object()) {
    const auto it = doc->find("mediaType");
    if (it != doc->end() && it->is_string()) media_type = it->get<std::string>();
  }
  if (media_type.empty() || std::any_of(media_type.begin(), media_type.end(), [](char c) {
        return static_cast<unsigned char>(c) < 0x20 || c == 0x7f;
      })) {
    return Fail(Code::kInvalid, "the manifest's mediaType is not a media type");
  }
  const std::string digest = DigestOf(manifest_json);
  if (IsDigest(reference) && reference != digest) {
    return Fail(Code::kUsage, "the manifest's digest is " + digest + ", not " + reference);
  }
  Impl::Call call;
  call.method = "PUT";
  call.url = impl.RepoUrl(repository, "manifests/" + reference);
  call.headers = {"Content-Type: " + media_type};
  call.body = Body{manifest_json};
  call.repository = repository;
  call.push = true;
  call.retries = impl.options.retries;
  DLSYS_ASSIGN_OR_RETURN(HttpResponse r, impl.Send(call));
  const std::string what =
      "manifest " + Shown(repository) + (IsDigest(reference) ? "@" : ":") + reference;
  if (r.status != 201) return tl::unexpected(impl.StatusError(r, "PUT", what, repository));
  const std::string reported = r.Header("docker-content-digest");
  if (!reported.empty() && reported != digest) {
    return Fail(Code::kVerifyFailed, Shown(impl.ref.host) + " stored " + what + " with digest " +
                                         Shown(reported) + ", but its bytes have digest " + digest);
  }
  return digest;
}

Result<Client::Fetched> Client::FetchManifest(const std::string& repository,
                                              const std::string& reference) {
  Impl& impl = *impl_;
  DLSYS_TRY(impl.CheckNames(repository, ""));
  const bool by_digest = IsDigest(reference);
  if (!IsTag(reference) && !by_digest) {
    return Fail(Code::kUsage, "'" + Shown(reference) + "' is neither a tag nor a sha256 digest");
  }
  const std::string what = "manifest " + Shown(repository) + (by_digest ? "@" : ":") + reference;
  Impl::Call call;
  call.url = impl.RepoUrl(repository, "manifests/" + reference);
  call.headers = {"Accept: " + std::string(kManifestMediaType)};
  call.repository = repository;
  call.retries = impl.options.retries;
  DLSYS_ASSIGN_OR_RETURN(HttpResponse r, impl.Send(call));
  if (r.status != 200) return tl::unexpected(impl.StatusError(r, "GET", what, repository));
  Fetched out;
  out.digest = DigestOf(r.body);
  if (by_digest && out.digest != reference) {
    return Fail(Code::kVerifyFailed, what + " from " + Shown(impl.ref.host) + " has digest " +
                                         out.digest + ": the registry's copy is corrupt");
  }
  const std::string reported = r.Header("docker-content-digest");
  if (!reported.empty() && reported != out.digest) {
    return Fail(Code::kVerifyFailed, what + " from " + Shown(impl.ref.host) + " has digest " +
                                         out.digest + ", but the registry says " + Shown(reported));
  }
  const std::string type = r.Header("content-type");
  out.media_type = Shown(type.substr(0, type.find(';')));
  out.bytes = std::move(r.body);
  return out;
}

Result<std::vector<std::string>> Client::ListTags(const std::string& repository) {
  Impl& impl = *impl_;
  DLSYS_TRY(impl.CheckNames(repository, ""));
  std::vector<std::string> tags;
  std::string url = impl.RepoUrl(repository, "tags/list");
  for (std::size_t page = 0;; ++page) {
    if (page == kMaxTagPages) {
      return Fail(Code::kInvalid, Shown(impl.ref.host) + " sent more than " +
                                      std::to_string(kMaxTagPages) + " pages of tags for " +
                                      Shown(repository));
    }
    Impl::Call call;
    call.url = url;
    call.repository = repository;
    call.retries = impl.options.retries;
    DLSYS_ASSIGN_OR_RETURN(HttpResponse r, impl.Send(call));
    if (r.status != 200) {
      return tl::unexpected(
          impl.StatusError(r, "GET", "repository " + Shown(repository), repository));
    }
    auto doc = core::ParseJson(r.body, core::JsonLimits{internal::kMaxBodyBytes}, "tag list");
    if (!doc)
      return tl::unexpected(
          std::move(doc).error().Wrap("the tag list from " + Shown(impl.ref.host)));
    const auto list = doc->is_object() ? doc->find("tags") : doc->end();
    if (doc->is_object() && list != doc->end() && list->is_array()) {
      for (const auto& t : *list) {
        if (!t.is_string() || !IsTag(t.get_ref<const std::string&>())) {
          return Fail(Code::kInvalid, "the tag list from " + Shown(impl.ref.host) +
                                          " holds a tag that is not a tag name");
        }
        if (tags.size() == kMaxTags) {
          return Fail(Code::kInvalid, Shown(repository) + " in " + Shown(impl.ref.host) +
                                          " has more than " + std::to_string(kMaxTags) + " tags");
        }
        tags.push_back(t.get<std::string>());
      }
    } else if (!doc->is_object() || (list != doc->end() && !list->is_null())) {
      return Fail(Code::kInvalid,
                  "the tag list from " + Shown(impl.ref.host) + " is not {\"tags\": [...]}");
    }
    // Link: <URL>; rel="next"
    const std::string link = r.Header("link");
    const auto open = link.find('<');
    const auto close = link.find('>');
    if (open == std::string::npos || close == std::string::npos || close < open ||
        link.find("rel=\"next\"", close) == std::string::npos) {
      break;
    }
    auto next = Transport::Resolve(r.url, link.substr(open + 1, close - open - 1));
    if (!next || Transport::Origin(*next) != impl.origin) {
      return Fail(Code::kInvalid, "the tag list from " + Shown(impl.ref.host) +
                                      " links to a next page elsewhere: '" + Shown(link) + "'");
    }
    url = *next;
  }
  std::sort(tags.begin(), tags.end());
  tags.erase(std::unique(tags.begin(), tags.end()), tags.end());
  return tags;
}

std::uint64_t Client::request_count() const { return impl_->http->requests(); }

}  // namespace dlsys::oci
