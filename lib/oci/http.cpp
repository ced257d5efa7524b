#include "oci/internal/http.h"

#include <curl/curl.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <mutex>

#include "core/text.h"

namespace dlsys::oci::internal {
namespace {

// libcurl's own bounds are 100 KiB per header line; a registry sends a dozen headers.
constexpr std::size_t kMaxHeaderBytes = 256u << 10;
constexpr std::size_t kMaxHeaders = 200;
constexpr long kConnectTimeoutMs = 10000;
// The largest receive buffer libcurl 7.88 accepts (CURL_MAX_READ_SIZE) and its largest upload
// buffer: fewer callbacks and syscalls per blob (docs/oci.md, "Performance").
constexpr long kReceiveBufferBytes = 512L << 10;
constexpr long kUploadBufferBytes = 2L << 20;

std::string Lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() &&
         (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' || s.back() == '\n')) {
    s.remove_suffix(1);
  }
  return s;
}

struct UrlDeleter {
  void operator()(CURLU* u) const { curl_url_cleanup(u); }
};
using UrlPtr = std::unique_ptr<CURLU, UrlDeleter>;

std::string UrlPart(CURLU* u, CURLUPart part, unsigned flags = 0) {
  char* out = nullptr;
  if (curl_url_get(u, part, &out, flags) != CURLUE_OK || out == nullptr) return {};
  std::string s(out);
  curl_free(out);
  return s;
}

// Per-transfer state the callbacks see.
struct Transfer {
  CURL* curl = nullptr;
  const HttpRequest* request = nullptr;
  HttpResponse* response = nullptr;
  std::uint64_t body_pos = 0;
  std::size_t header_bytes = 0;
  bool too_large = false;
  bool aborted = false;
  bool read_failed = false;
  int read_errno = 0;
};

size_t OnHeader(char* data, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  const size_t len = size * n;
  const std::string_view line(data, len);
  if (line.substr(0, 5) == "HTTP/") {  // a new response (after 100 Continue): start over
    t->response->headers.clear();
    t->header_bytes = 0;
    return len;
  }
  t->header_bytes += len;
  if (t->header_bytes > kMaxHeaderBytes || t->response->headers.size() >= kMaxHeaders) {
    t->too_large = true;
    return 0;
  }
  const auto colon = line.find(':');
  if (colon == std::string_view::npos) return len;
  t->response->headers.emplace_back(Lower(Trim(line.substr(0, colon))),
                                    std::string(Trim(line.substr(colon + 1))));
  return len;
}

size_t OnWrite(char* data, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  const size_t len = size * n;
  long status = 0;
  curl_easy_getinfo(t->curl, CURLINFO_RESPONSE_CODE, &status);
  if (status >= 200 && status < 300 && t->request->sink) {
    if (!t->request->sink(status, std::string_view(data, len))) {
      t->aborted = true;
      return 0;
    }
    return len;
  }
  if (status >= 300 && status < 400) return len;  // a redirect's body is not needed
  if (t->response->body.size() + len > kMaxBodyBytes) {
    t->too_large = true;
    return 0;
  }
  t->response->body.append(data, len);
  return len;
}

size_t OnRead(char* buffer, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  const Body& body = *t->request->body;
  const std::uint64_t left = body.length() - t->body_pos;
  const size_t want = static_cast<size_t>(std::min<std::uint64_t>(left, size * n));
  if (want == 0) return 0;
  if (body.fd < 0) {
    std::memcpy(buffer, body.bytes.data() + t->body_pos, want);
    t->body_pos += want;
    return want;
  }
  while (true) {
    const ssize_t got =
        ::pread(body.fd, buffer, want, static_cast<off_t>(body.offset + t->body_pos));
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) {  // an error, or the file shrank under us
      t->read_failed = true;
      t->read_errno = got < 0 ? errno : 0;
      return CURL_READFUNC_ABORT;
    }
    t->body_pos += static_cast<std::uint64_t>(got);
    return static_cast<size_t>(got);
  }
}

// libcurl rewinds the body when it must resend it on a fresh connection.
int OnSeek(void* user, curl_off_t offset, int origin) {
  auto* t = static_cast<Transfer*>(user);
  if (origin != SEEK_SET || offset < 0 ||
      static_cast<std::uint64_t>(offset) > t->request->body->length()) {
    return CURL_SEEKFUNC_CANTSEEK;
  }
  t->body_pos = static_cast<std::uint64_t>(offset);
  return CURL_SEEKFUNC_OK;
}

Failure Classify(CURLcode code) {
  switch (code) {
    case CURLE_COULDNT_CONNECT:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
      return Failure::kNetwork;
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_CRL_BADFILE:
      return Failure::kTls;
    default:
      return Failure::kOther;
  }
}

bool IsRedirect(long status) {
  return status == 301 || status == 302 || status == 303 || status == 307 || status == 308;
}

}  // namespace

struct Transport::Handle {
  CURL* curl = nullptr;
  char errbuf[CURL_ERROR_SIZE] = {};
  ~Handle() {
    if (curl != nullptr) curl_easy_cleanup(curl);
  }
};

std::string HttpResponse::Header(std::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (k == name) return v;
  }
  return {};
}

Result<std::unique_ptr<Transport>> Transport::Create(TransportOptions options) {
  static std::once_flag once;
  static CURLcode global = CURLE_OK;
  std::call_once(once, [] { global = curl_global_init(CURL_GLOBAL_DEFAULT); });
  if (global != CURLE_OK) {
    return Fail(Code::kInternal,
                std::string("cannot initialise libcurl: ") + curl_easy_strerror(global));
  }
  std::unique_ptr<Transport> t(new Transport());
  t->options_ = std::move(options);
  t->handle_ = std::make_unique<Handle>();
  t->handle_->curl = curl_easy_init();
  if (t->handle_->curl == nullptr) return Fail(Code::kInternal, "cannot create a libcurl handle");
  return t;
}

Transport::~Transport() = default;

std::string Transport::Origin(const std::string& url) {
  UrlPtr u(curl_url());
  if (!u || curl_url_set(u.get(), CURLUPART_URL, url.c_str(), 0) != CURLUE_OK) return {};
  const std::string scheme = Lower(UrlPart(u.get(), CURLUPART_SCHEME));
  const std::string host = Lower(UrlPart(u.get(), CURLUPART_HOST));
  const std::string port = UrlPart(u.get(), CURLUPART_PORT, CURLU_DEFAULT_PORT);
  if (scheme.empty() || host.empty()) return {};
  return scheme + "://" + host + ":" + port;
}

std::optional<std::string> Transport::Resolve(const std::string& base,
                                              const std::string& reference) {
  UrlPtr u(curl_url());
  if (!u || curl_url_set(u.get(), CURLUPART_URL, base.c_str(), 0) != CURLUE_OK) return std::nullopt;
  // Setting a URL on a handle that holds one resolves a relative reference against it.
  if (curl_url_set(u.get(), CURLUPART_URL, reference.c_str(), 0) != CURLUE_OK) return std::nullopt;
  std::string out = UrlPart(u.get(), CURLUPART_URL);
  if (out.empty()) return std::nullopt;
  return out;
}

std::string Transport::Escape(std::string_view value) {
  char* e = curl_easy_escape(nullptr, value.data(), static_cast<int>(value.size()));
  if (e == nullptr) return {};
  std::string out(e);
  curl_free(e);
  return out;
}

HttpOutcome Transport::Perform(const HttpRequest& request) {
  HttpRequest current = request;
  const std::string start_origin = Origin(request.url);
  for (int hop = 0;; ++hop) {
    const bool send_auth =
        !current.authorization.empty() && Origin(current.url) == current.auth_origin;
    HttpOutcome outcome = PerformOnce(current, send_auth);
    if (outcome.failure != Failure::kNone || !IsRedirect(outcome.response.status)) return outcome;
    const std::string location = outcome.response.Header("location");
    if (location.empty()) return outcome;
    if (hop == kMaxRedirects) {
      outcome.failure = Failure::kRedirect;
      outcome.error = "more than " + std::to_string(kMaxRedirects) + " redirects from " +
                      core::TerminalSafe(start_origin);
      return outcome;
    }
    auto next = Resolve(current.url, location);
    const std::string next_origin = next ? Origin(*next) : "";
    const bool https = next_origin.rfind("https://", 0) == 0;
    const bool http = next_origin.rfind("http://", 0) == 0;
    if (!next || !(https || (http && options_.allow_http))) {
      outcome.failure = Failure::kRedirect;
      outcome.error = "a redirect to '" + core::Truncate(core::TerminalSafe(location), 200) +
                      "', which is not an " + (options_.allow_http ? "http(s)" : "https") + " URL";
      return outcome;
    }
    current.url = *next;
    if (outcome.response.status == 303 && current.method != "HEAD") {
      current.method = "GET";
      current.body.reset();
    }
  }
}

HttpOutcome Transport::PerformOnce(const HttpRequest& request, bool send_auth) {
  CURL* c = handle_->curl;
  curl_easy_reset(c);  // keeps the connection cache: the next request reuses the connection
  HttpOutcome outcome;
  Transfer t;
  t.curl = c;
  t.request = &request;
  t.response = &outcome.response;
  handle_->errbuf[0] = '\0';

  curl_slist* headers = nullptr;
  struct SlistFree {
    curl_slist** l;
    ~SlistFree() { curl_slist_free_all(*l); }
  } free_headers{&headers};
  for (const auto& h : request.headers) headers = curl_slist_append(headers, h.c_str());
  // libcurl would otherwise wait for "100 Continue" before a large body.
  headers = curl_slist_append(headers, "Expect:");
  std::string auth_line;
  if (send_auth) {
    auth_line = "Authorization: " + request.authorization;
    headers = curl_slist_append(headers, auth_line.c_str());
  }

  curl_easy_setopt(c, CURLOPT_URL, request.url.c_str());
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, options_.allow_http ? "http,https" : "https");
  curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, kConnectTimeoutMs);
  curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
  curl_easy_setopt(
      c, CURLOPT_LOW_SPEED_TIME,
      static_cast<long>(std::max<std::uint64_t>(1, (options_.timeout_ms + 999) / 1000)));
  curl_easy_setopt(c, CURLOPT_BUFFERSIZE, kReceiveBufferBytes);
  curl_easy_setopt(c, CURLOPT_UPLOAD_BUFFERSIZE, kUploadBufferBytes);
  curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(c, CURLOPT_USERAGENT, "dlsys");
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, handle_->errbuf);
  if (!options_.ca_file.empty()) curl_easy_setopt(c, CURLOPT_CAINFO, options_.ca_file.c_str());
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, OnHeader);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, &t);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, OnWrite);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &t);

  const curl_off_t body_size = request.body ? static_cast<curl_off_t>(request.body->length()) : 0;
  if (request.body) {
    curl_easy_setopt(c, CURLOPT_READFUNCTION, OnRead);
    curl_easy_setopt(c, CURLOPT_READDATA, &t);
    curl_easy_setopt(c, CURLOPT_SEEKFUNCTION, OnSeek);
    curl_easy_setopt(c, CURLOPT_SEEKDATA, &t);
  }
  const std::string& m = request.method;
  if (m == "GET") {
    curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
  } else if (m == "HEAD") {
    curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
  } else if (m == "POST") {
    curl_easy_setopt(c, CURLOPT_POST, 1L);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, body_size);
    if (!request.body) curl_easy_setopt(c, CURLOPT_POSTFIELDS, "");
  } else if (m == "PUT" || m == "PATCH") {
    curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, body_size);
    if (!request.body) {
      // An empty body: a read function that ends at once.
      curl_easy_setopt(c, CURLOPT_READFUNCTION,
                       static_cast<curl_read_callback>(
                           [](char*, size_t, size_t, void*) -> size_t { return 0; }));
    }
    if (m == "PATCH") curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, "PATCH");
  } else {
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, m.c_str());
  }

  ++requests_;
  const CURLcode code = curl_easy_perform(c);
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &outcome.response.status);
  outcome.response.url = request.url;
  if (code == CURLE_OK) return outcome;

  if (t.aborted) {
    outcome.failure = Failure::kAborted;
  } else if (t.too_large) {
    outcome.failure = Failure::kTooLarge;
    outcome.error = "the answer is larger than " + std::to_string(kMaxBodyBytes >> 20) +
                    " MiB or has too many headers";
  } else if (t.read_failed) {
    outcome.failure = Failure::kOther;
    outcome.error = t.read_errno != 0 ? std::string("cannot read the file to upload: ") +
                                            std::strerror(t.read_errno)
                                      : "the file to upload got shorter while it was sent";
  } else {
    outcome.failure = Classify(code);
    outcome.error = handle_->errbuf[0] != '\0' ? handle_->errbuf : curl_easy_strerror(code);
    outcome.error = core::Truncate(core::TerminalSafe(outcome.error), 300);
  }
  return outcome;
}

}  // namespace dlsys::oci::internal
