#include "archive/internal/tar_format.h"

#include <charconv>
#include <cstdio>

namespace dlsys::archive::internal {
namespace {

constexpr Field kFields[] = {
    {"name", 0, 100},       {"mode", 100, 8},     {"uid", 108, 8},      {"gid", 116, 8},
    {"size", 124, 12},      {"mtime", 136, 12},   {"chksum", 148, 8},   {"typeflag", 156, 1},
    {"linkname", 157, 100}, {"magic", 257, 6},    {"version", 263, 2},  {"uname", 265, 32},
    {"gname", 297, 32},     {"devmajor", 329, 8}, {"devminor", 337, 8}, {"prefix", 345, 155},
    {"padding", 500, 12},
};

void Put(std::string& block, const char* field, std::string_view value) {
  const Field& f = FieldNamed(field);
  block.replace(f.offset, value.size(), value);
}

// width-1 octal digits, zero-filled, then NUL: "0000644\0" for an 8-byte field.
std::string Octal(std::uint64_t value, std::size_t width) {
  std::string s(width - 1, '0');
  for (std::size_t i = width - 1; i-- > 0 && value > 0; value >>= 3) {
    s[i] = static_cast<char>('0' + (value & 7));
  }
  s.push_back('\0');
  return s;
}

// The ustar block common to both kinds of header, checksum filled in last.
std::string Block(std::string_view name, unsigned mode, std::uint64_t size, std::uint64_t mtime,
                  char type) {
  std::string b(kBlock, '\0');
  Put(b, "name", name.substr(0, kNameBytes));
  Put(b, "mode", Octal(mode, 8));
  Put(b, "uid", Octal(0, 8));
  Put(b, "gid", Octal(0, 8));
  Put(b, "size", Octal(size, 12));
  Put(b, "mtime", Octal(mtime, 12));
  Put(b, "chksum", "        ");
  b[156] = type;
  Put(b, "magic", std::string_view("ustar\0", 6));
  Put(b, "version", "00");
  // devmajor and devminor stay NUL: they mean nothing for a regular file (Python's tarfile
  // writes the same).
  unsigned sum = 0;
  for (unsigned char c : b) sum += c;
  char chk[9];
  std::snprintf(chk, sizeof chk, "%06o", sum);
  b.replace(148, 8, std::string(chk, 6) + std::string("\0 ", 2));
  return b;
}

std::string Record(std::string_view key, std::string_view value) {
  // "<len> key=value\n" where len counts the whole record, its own digits included.
  const std::size_t body = 1 + key.size() + 1 + value.size() + 1;
  std::size_t len = body + 1;
  while (std::to_string(len).size() + body != len) ++len;
  return std::to_string(len) + " " + std::string(key) + "=" + std::string(value) + "\n";
}

}  // namespace

const Field& FieldAt(std::size_t offset) {
  for (const Field& f : kFields) {
    if (offset >= f.offset && offset < f.offset + f.size) return f;
  }
  return kFields[std::size(kFields) - 1];
}

const Field& FieldNamed(std::string_view name) {
  for (const Field& f : kFields) {
    if (name == f.name) return f;
  }
  return kFields[0];
}

std::string PaxRecords(std::string_view path, std::uint64_t size) {
  std::string records;
  if (path.size() > kNameBytes) records += Record("path", path);
  if (size > kMaxOctal11) records += Record("size", std::to_string(size));
  return records;
}

std::string PaxHeaderBlock(std::uint64_t records_size) {
  return Block(kPaxHeaderName, 0, records_size, 0, 'x');
}

std::string EntryHeaderBlock(std::string_view path, std::uint64_t size, std::int64_t mtime) {
  return Block(path, kEntryMode, size > kMaxOctal11 ? 0 : size, static_cast<std::uint64_t>(mtime),
               '0');
}

std::string EntryHeaders(std::string_view path, std::uint64_t size, std::int64_t mtime) {
  std::string out;
  const std::string records = PaxRecords(path, size);
  if (!records.empty()) {
    out = PaxHeaderBlock(records.size()) + records;
    out.resize(kBlock + PaddedSize(records.size()), '\0');
  }
  return out + EntryHeaderBlock(path, size, mtime);
}

std::optional<std::uint64_t> ParseOctalField(std::string_view field) {
  if (field.empty() || field.back() != '\0') return std::nullopt;
  std::uint64_t v = 0;
  for (char c : field.substr(0, field.size() - 1)) {
    if (c < '0' || c > '7') return std::nullopt;
    v = (v << 3) | static_cast<unsigned>(c - '0');
  }
  return v;
}

Result<PaxValues> ParsePaxRecords(std::string_view records, const std::string& where) {
  PaxValues out;
  std::size_t pos = 0;
  auto bad = [&](const std::string& what) {
    return Fail(Code::kInvalid, "pax header " + where + ": " + what);
  };
  while (pos < records.size()) {
    const std::string_view rest = records.substr(pos);
    const std::size_t space = rest.find(' ');
    std::size_t len = 0;
    if (space == std::string_view::npos || space == 0 || space > 5 || rest[0] == '0' ||
        std::from_chars(rest.data(), rest.data() + space, len).ptr != rest.data() + space ||
        len <= space + 2 || len > rest.size() || rest[len - 1] != '\n') {
      return bad("malformed record at byte " + std::to_string(pos) +
                 " of its data: " + ShowBytes(rest.substr(0, 40)));
    }
    const std::string_view kv = rest.substr(space + 1, len - space - 2);
    const std::size_t eq = kv.find('=');
    if (eq == std::string_view::npos) {
      return bad("record without '=' at byte " + std::to_string(pos) + " of its data");
    }
    const std::string_view key = kv.substr(0, eq), value = kv.substr(eq + 1);
    if (key == "path" && !out.path && !out.size) {
      out.path = std::string(value);
    } else if (key == "size" && !out.size) {
      std::uint64_t size = 0;
      if (value.empty() || value[0] == '0' ||
          std::from_chars(value.data(), value.data() + value.size(), size).ptr !=
              value.data() + value.size()) {
        return bad("record 'size' holds " + ShowBytes(value) + ", not a decimal size");
      }
      out.size = size;
    } else if (key == "path" || key == "size") {
      return bad("record '" + std::string(key) +
                 "' is repeated or out of order (pack writes "
                 "path, then size, each at most once)");
    } else {
      const std::string shown = ShowBytes(key.substr(0, 64));
      return Fail(Code::kInvalid, "pax record '" + shown.substr(1, shown.size() - 2) + "' " +
                                      where + " is not one dlsys writes (only 'path' and 'size')");
    }
    pos += len;
  }
  return out;
}

std::string ShowBytes(std::string_view bytes) {
  std::string out;
  for (unsigned char c : bytes) {
    if (c >= 0x20 && c < 0x7f && c != '\\' && c != '"') {
      out += static_cast<char>(c);
    } else {
      char buf[5];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    }
  }
  return "\"" + out + "\"";
}

}  // namespace dlsys::archive::internal
