#include "core/encoding.h"

#include <cstdint>
#include <cstdio>
#include <regex>
#include <vector>

namespace dlsys::core {
namespace {
constexpr char kHex[] = "0123456789abcdef";
constexpr char kB64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int B64Value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}
}  // namespace

std::string HexEncode(std::span<const std::byte> bytes) {
  std::string out;
  out.reserve(bytes.size() * 2);
  for (std::byte b : bytes) {
    auto v = static_cast<unsigned>(b);
    out.push_back(kHex[v >> 4]);
    out.push_back(kHex[v & 15]);
  }
  return out;
}

std::string Base64Encode(std::span<const std::byte> bytes) {
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 2 < bytes.size(); i += 3) {
    uint32_t v = (uint32_t(bytes[i]) << 16) | (uint32_t(bytes[i + 1]) << 8) | uint32_t(bytes[i + 2]);
    out += {kB64[v >> 18], kB64[(v >> 12) & 63], kB64[(v >> 6) & 63], kB64[v & 63]};
  }
  if (std::size_t rest = bytes.size() - i; rest > 0) {
    uint32_t v = uint32_t(bytes[i]) << 16;
    if (rest == 2) v |= uint32_t(bytes[i + 1]) << 8;
    out += kB64[v >> 18];
    out += kB64[(v >> 12) & 63];
    out += rest == 2 ? kB64[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

std::optional<std::string> Base64Decode(std::string_view text) {
  if (text.size() % 4 != 0) return std::nullopt;
  std::string out;
  out.reserve(text.size() / 4 * 3);
  for (std::size_t i = 0; i < text.size(); i += 4) {
    int v[4];
    int pad = 0;
    for (int k = 0; k < 4; ++k) {
      char c = text[i + k];
      if (c == '=' && i + 4 == text.size() && k >= 2) {
        v[k] = 0;
        ++pad;
      } else if (pad > 0 || (v[k] = B64Value(c)) < 0) {
        return std::nullopt;
      }
    }
    uint32_t n = (uint32_t(v[0]) << 18) | (uint32_t(v[1]) << 12) | (uint32_t(v[2]) << 6) | v[3];
    out.push_back(static_cast<char>(n >> 16));
    if (pad < 2) out.push_back(static_cast<char>((n >> 8) & 255));
    if (pad < 1) out.push_back(static_cast<char>(n & 255));
  }
  return out;
}

bool IsSemver(std::string_view version) {
  // The regular expression suggested by semver.org, without named groups.
  static const std::regex kSemver(
      R"(^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*))"
      R"((?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?)"
      R"((?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$)");
  return version.size() <= 256 && std::regex_match(version.begin(), version.end(), kSemver);
}

std::string HumanBytes(std::uint64_t bytes) {
  static const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(bytes);
  int unit = 0;
  while (v >= 1024 && unit < 4) {
    v /= 1024;
    ++unit;
  }
  char buf[32];
  if (unit == 0) {
    std::snprintf(buf, sizeof buf, "%llu B", static_cast<unsigned long long>(bytes));
  } else {
    std::snprintf(buf, sizeof buf, v < 10 ? "%.2f %s" : "%.1f %s", v, kUnits[unit]);
  }
  return buf;
}

Result<std::uint64_t> ParseByteSize(std::string_view text) {
  auto bad = [&] {
    return Fail(Code::kInvalid,
                "'" + std::string(text.substr(0, 64)) +
                    "' is not a byte size (expected an integer number of bytes or a "
                    "number with a unit: B, kB, MB, GB, TB, KiB, MiB, GiB, TiB; "
                    "e.g. \"4 GiB\")");
  };
  std::string_view s = text;
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  std::size_t i = 0;
  unsigned __int128 whole = 0;
  constexpr unsigned __int128 kMax = ~std::uint64_t{0};
  for (; i < s.size() && s[i] >= '0' && s[i] <= '9'; ++i) {
    whole = whole * 10 + static_cast<unsigned>(s[i] - '0');
    if (whole > kMax) return bad();
  }
  if (i == 0) return bad();
  unsigned __int128 frac = 0;
  unsigned __int128 frac_den = 1;
  if (i < s.size() && s[i] == '.') {
    std::size_t start = ++i;
    for (; i < s.size() && s[i] >= '0' && s[i] <= '9'; ++i) {
      if (i - start < 18) {  // further digits cannot change the rounded byte count
        frac = frac * 10 + static_cast<unsigned>(s[i] - '0');
        frac_den *= 10;
      }
    }
    if (i == start) return bad();
  }
  std::string_view unit = s.substr(i);
  while (!unit.empty() && unit.front() == ' ') unit.remove_prefix(1);
  struct Unit {
    std::string_view name;
    std::uint64_t factor;
  };
  static constexpr Unit kUnits[] = {
      {"", 1},
      {"B", 1},
      {"kB", 1000ull},
      {"KB", 1000ull},
      {"MB", 1000ull * 1000},
      {"GB", 1000ull * 1000 * 1000},
      {"TB", 1000ull * 1000 * 1000 * 1000},
      {"KiB", 1ull << 10},
      {"MiB", 1ull << 20},
      {"GiB", 1ull << 30},
      {"TiB", 1ull << 40},
  };
  const Unit* found = nullptr;
  for (const Unit& u : kUnits) {
    if (u.name == unit) found = &u;
  }
  if (found == nullptr) return bad();
  // A bare number of bytes must be whole; "1.5" bytes is a mistake, not a size.
  if (found->factor == 1 && frac_den != 1) return bad();
  unsigned __int128 bytes = whole * found->factor;
  bytes += (frac * found->factor + frac_den / 2) / frac_den;
  if (bytes > kMax) return bad();
  return static_cast<std::uint64_t>(bytes);
}

namespace {

std::vector<std::string_view> SplitOn(std::string_view s, char sep) {
  std::vector<std::string_view> parts;
  std::size_t start = 0;
  for (;;) {
    const std::size_t at = s.find(sep, start);
    parts.push_back(s.substr(start, at == std::string_view::npos ? std::string_view::npos
                                                                 : at - start));
    if (at == std::string_view::npos) return parts;
    start = at + 1;
  }
}

bool AllDigits(std::string_view s) {
  return !s.empty() && s.find_first_not_of("0123456789") == std::string_view::npos;
}

// Numeric identifiers have no leading zeros (IsSemver), so length then text orders them.
int CompareNumeric(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return a.size() < b.size() ? -1 : 1;
  return a.compare(b) < 0 ? -1 : (a == b ? 0 : 1);
}

}  // namespace

int CompareSemver(std::string_view a, std::string_view b) {
  a = a.substr(0, a.find('+'));
  b = b.substr(0, b.find('+'));
  const std::size_t da = a.find('-');
  const std::size_t db = b.find('-');
  const auto core_a = SplitOn(a.substr(0, da), '.');
  const auto core_b = SplitOn(b.substr(0, db), '.');
  for (std::size_t i = 0; i < std::min(core_a.size(), core_b.size()); ++i) {
    if (int c = CompareNumeric(core_a[i], core_b[i]); c != 0) return c;
  }
  const bool pre_a = da != std::string_view::npos;
  const bool pre_b = db != std::string_view::npos;
  if (!pre_a || !pre_b) return pre_a == pre_b ? 0 : (pre_a ? -1 : 1);
  const auto ids_a = SplitOn(a.substr(da + 1), '.');
  const auto ids_b = SplitOn(b.substr(db + 1), '.');
  for (std::size_t i = 0; i < std::min(ids_a.size(), ids_b.size()); ++i) {
    const bool na = AllDigits(ids_a[i]);
    const bool nb = AllDigits(ids_b[i]);
    int c = 0;
    if (na && nb) {
      c = CompareNumeric(ids_a[i], ids_b[i]);
    } else if (na != nb) {
      c = na ? -1 : 1;  // numeric identifiers sort before alphanumeric ones
    } else {
      c = ids_a[i].compare(ids_b[i]) < 0 ? -1 : (ids_a[i] == ids_b[i] ? 0 : 1);
    }
    if (c != 0) return c;
  }
  if (ids_a.size() == ids_b.size()) return 0;
  return ids_a.size() < ids_b.size() ? -1 : 1;
}

}  // namespace dlsys::core
