// oci:// references: distribution's reference grammar (github.com/distribution/reference,
// regexp.go), restricted to what dlsys accepts: an explicit registry host, a tag or a sha256
// digest (not both), nothing else.
#include <arpa/inet.h>

#include <cstddef>
#include <string>
#include <string_view>

#include "core/text.h"
#include "oci/oci.h"

namespace dlsys::oci {
namespace {

constexpr std::string_view kScheme = "oci://";
constexpr std::size_t kMaxRepositoryBytes = 255;  // distribution's NameTotalLengthMax
constexpr std::size_t kMaxTagBytes = 128;
constexpr std::size_t kMaxHostBytes = 255;  // a DNS name, RFC 1035 section 2.3.4

bool IsLowerAlnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }
bool IsAlnum(char c) { return IsLowerAlnum(c) || (c >= 'A' && c <= 'Z'); }
bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// [a-z0-9]+(([._]|__|-+)[a-z0-9]+)*
bool IsPathComponent(std::string_view s) {
  std::size_t i = 0;
  auto alnum_run = [&] {
    const std::size_t start = i;
    while (i < s.size() && IsLowerAlnum(s[i])) ++i;
    return i > start;
  };
  if (!alnum_run()) return false;
  while (i < s.size()) {
    if (s[i] == '.') {
      ++i;
    } else if (s[i] == '_') {
      ++i;
      if (i < s.size() && s[i] == '_') ++i;
    } else if (s[i] == '-') {
      while (i < s.size() && s[i] == '-') ++i;
    } else {
      return false;
    }
    if (!alnum_run()) return false;
  }
  return true;
}

// [A-Za-z0-9_][A-Za-z0-9._-]{0,127}
bool IsTag(std::string_view s) {
  if (s.empty() || s.size() > kMaxTagBytes) return false;
  if (!IsAlnum(s[0]) && s[0] != '_') return false;
  for (char c : s) {
    if (!IsAlnum(c) && c != '_' && c != '.' && c != '-') return false;
  }
  return true;
}

bool IsLowerHex(char c) { return IsDigit(c) || (c >= 'a' && c <= 'f'); }

// A DNS label: letters, digits and inner hyphens.
bool IsDnsLabel(std::string_view s) {
  if (s.empty() || s.size() > 63 || s.front() == '-' || s.back() == '-') return false;
  for (char c : s) {
    if (!IsAlnum(c) && c != '-') return false;
  }
  return true;
}

bool IsDnsName(std::string_view s) {
  if (s.empty() || s.size() > kMaxHostBytes) return false;
  std::size_t start = 0;
  for (;;) {
    const std::size_t dot = s.find('.', start);
    if (!IsDnsLabel(s.substr(start, dot - start))) return false;
    if (dot == std::string_view::npos) return true;
    start = dot + 1;
  }
}

bool IsIpv4(const std::string& s) {
  in_addr addr{};
  return inet_pton(AF_INET, s.c_str(), &addr) == 1;
}

bool IsIpv6(const std::string& s) {
  in6_addr addr{};
  return inet_pton(AF_INET6, s.c_str(), &addr) == 1;
}

// Splits "HOST[:PORT]" / "[V6][:PORT]" into the host name (brackets kept) and the port text.
struct HostPort {
  std::string_view name;
  std::string_view port;  // empty when absent
};

HostPort SplitHostPort(std::string_view host) {
  std::size_t name_end = host.size();
  if (!host.empty() && host[0] == '[') {
    const std::size_t close = host.find(']');
    name_end = close == std::string_view::npos ? host.size() : close + 1;
  } else if (const std::size_t colon = host.rfind(':'); colon != std::string_view::npos) {
    name_end = colon;
  }
  HostPort hp{host.substr(0, name_end), {}};
  if (name_end < host.size()) hp.port = host.substr(name_end);  // ":PORT" or junk
  return hp;
}

Result<void> CheckHost(std::string_view host, const std::string& shown) {
  auto bad = [&](const std::string& why) {
    return Fail(Code::kUsage, "'" + shown + "' is not an OCI reference: " + why,
                {"expected oci://HOST[:PORT]/REPOSITORY[:TAG|@sha256:DIGEST], e.g. "
                 "oci://registry.example.com/team/iris:1.0.0"});
  };
  if (host.empty()) return bad("the registry host is missing");
  const HostPort hp = SplitHostPort(host);
  if (!hp.port.empty()) {
    const std::string_view digits = hp.port.substr(1);
    bool ok = hp.port[0] == ':' && !digits.empty() && digits.size() <= 5;
    unsigned port = 0;
    for (char c : digits) {
      ok = ok && IsDigit(c);
      port = port * 10 + static_cast<unsigned>(c - '0');
    }
    if (!ok || port == 0 || port > 65535) {
      return bad("the port of host '" + core::TerminalSafe(host) + "' is not 1 to 65535");
    }
  }
  const std::string name(hp.name);
  if (!name.empty() && name.front() == '[') {
    if (name.back() != ']' || !IsIpv6(name.substr(1, name.size() - 2))) {
      return bad("'" + core::TerminalSafe(name) + "' is not a bracketed IPv6 address");
    }
    return {};
  }
  // All digits and dots: meant as an IPv4 address, so it must be one.
  if (name.find_first_not_of("0123456789.") == std::string::npos) {
    if (!IsIpv4(name)) return bad("'" + core::TerminalSafe(name) + "' is not an IPv4 address");
    return {};
  }
  if (!IsDnsName(name)) {
    return bad("'" + core::TerminalSafe(name) +
               "' is not a host name (letters, digits, '-' and '.'), IPv4 or [IPv6] address");
  }
  return {};
}

Result<void> CheckRepository(std::string_view repo, const std::string& shown) {
  auto bad = [&](const std::string& why) {
    return Fail(Code::kUsage, "'" + shown + "' is not an OCI reference: " + why,
                {"repository path components are lower-case letters and digits, separated by "
                 "'.', '_', '__' or dashes, joined by '/' (at most 255 characters)"});
  };
  if (repo.empty()) return bad("the repository is missing");
  if (repo.size() > kMaxRepositoryBytes) {
    return bad("the repository is " + std::to_string(repo.size()) +
               " characters long, at most 255 are allowed");
  }
  std::size_t start = 0;
  for (;;) {
    const std::size_t slash = repo.find('/', start);
    const std::string_view part = repo.substr(start, slash - start);
    if (!IsPathComponent(part)) {
      return bad("repository component '" + core::TerminalSafe(part) + "' is not valid");
    }
    if (slash == std::string_view::npos) return {};
    start = slash + 1;
  }
}

}  // namespace

std::string Reference::ToString() const {
  std::string out = std::string(kScheme) + host + "/" + repository;
  if (!tag.empty()) out += ":" + tag;
  if (!digest.empty()) out += "@" + digest;
  return out;
}

bool Reference::IsLoopback() const {
  const HostPort hp = SplitHostPort(host);
  std::string name(hp.name);
  if (name == "localhost" || name == "[::1]") return true;
  return IsIpv4(name) && name.rfind("127.", 0) == 0;
}

bool IsOciReference(std::string_view text) { return text.substr(0, kScheme.size()) == kScheme; }

Result<Reference> ParseReference(std::string_view text) {
  const std::string shown = core::Truncate(core::TerminalSafe(text), 300);
  if (!IsOciReference(text)) {
    return Fail(Code::kUsage, "'" + shown + "' is not an OCI reference: it must start with oci://",
                {"e.g. oci://registry.example.com/team/iris:1.0.0"});
  }
  std::string_view rest = text.substr(kScheme.size());
  const std::size_t slash = rest.find('/');
  const std::string_view host = rest.substr(0, slash);
  if (host.size() > kMaxHostBytes + 6) {  // name, ':' and a port
    return Fail(Code::kUsage, "'" + shown + "' is not an OCI reference: the host is too long");
  }
  DLSYS_TRY(CheckHost(host, shown));
  if (slash == std::string_view::npos) DLSYS_TRY(CheckRepository("", shown));
  rest.remove_prefix(slash + 1);

  Reference ref;
  ref.host = std::string(host);
  if (const std::size_t at = rest.find('@'); at != std::string_view::npos) {
    const std::string_view digest = rest.substr(at + 1);
    constexpr std::string_view kAlgo = "sha256:";
    bool ok = digest.size() == kAlgo.size() + 64 && digest.substr(0, kAlgo.size()) == kAlgo;
    for (char c : digest.substr(std::min(kAlgo.size(), digest.size()))) ok = ok && IsLowerHex(c);
    if (!ok) {
      return Fail(Code::kUsage, "'" + shown +
                                    "' is not an OCI reference: the digest must be sha256: and 64 "
                                    "lower-case hex digits");
    }
    ref.digest = std::string(digest);
    rest = rest.substr(0, at);
  }
  // A tag follows the last ':' after the last '/' (a ':' before it would be part of a path).
  const std::size_t last_slash = rest.rfind('/');
  const std::size_t colon = rest.rfind(':');
  if (colon != std::string_view::npos &&
      (last_slash == std::string_view::npos || colon > last_slash)) {
    const std::string_view tag = rest.substr(colon + 1);
    if (!ref.digest.empty()) {
      return Fail(Code::kUsage, "'" + shown +
                                    "' is not an OCI reference: give a tag or a "
                                    "digest, not both");
    }
    if (!IsTag(tag)) {
      return Fail(Code::kUsage,
                  "'" + shown + "' is not an OCI reference: tag '" + core::TerminalSafe(tag) +
                      "' is not 1 to 128 of A-Z a-z 0-9 _ . - (not starting with . or -)");
    }
    ref.tag = std::string(tag);
    rest = rest.substr(0, colon);
  }
  DLSYS_TRY(CheckRepository(rest, shown));
  ref.repository = std::string(rest);
  return ref;
}

}  // namespace dlsys::oci
