// The canonical tar encoding of .dlsys archives (docs/archive-format.md, "Container"): the
// one place that knows header bytes. The writer emits exactly these bytes; the reader decodes
// a header, re-encodes what it decoded and requires the stored bytes to be identical, so any
// byte pack would not have written is found and named.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "core/error.h"

namespace dlsys::archive::internal {

inline constexpr std::size_t kBlock = 512;
inline constexpr std::size_t kNameBytes = 100;
// The largest value an 11-digit octal ustar field holds (8^11 - 1): sizes from 8 GiB up go to
// a pax "size" record; mtimes beyond it (year 2242) are not representable at all.
inline constexpr std::uint64_t kMaxOctal11 = (std::uint64_t{1} << 33) - 1;
inline constexpr std::string_view kPaxHeaderName = "././@PaxHeader";
// pax records dlsys writes are at most "NNNN path=<1024 bytes>\n" + "NN size=<20 digits>\n".
inline constexpr std::size_t kMaxPaxRecordBytes = 2048;
inline constexpr unsigned kEntryMode = 0644;

// A named byte range of the 512-byte ustar header, for messages.
struct Field {
  const char* name;
  std::size_t offset;
  std::size_t size;
};
// The field that contains header byte `offset` (0..511).
const Field& FieldAt(std::size_t offset);
const Field& FieldNamed(std::string_view name);

// The pax records for an entry: "" when neither the path nor the size needs one.
std::string PaxRecords(std::string_view path, std::uint64_t size);
// The ustar header block of a pax 'x' header whose records are `records_size` bytes.
std::string PaxHeaderBlock(std::uint64_t records_size);
// The ustar header block of a regular-file entry.
std::string EntryHeaderBlock(std::string_view path, std::uint64_t size, std::int64_t mtime);
// Every byte that precedes an entry's data: [pax header block + records + padding] + header.
std::string EntryHeaders(std::string_view path, std::uint64_t size, std::int64_t mtime);

inline std::uint64_t PaddedSize(std::uint64_t size) {
  return (size + kBlock - 1) / kBlock * kBlock;
}

// Strict readers of the numeric fields: exactly width-1 octal digits followed by a NUL.
std::optional<std::uint64_t> ParseOctalField(std::string_view field);

struct PaxValues {
  std::optional<std::string> path;
  std::optional<std::uint64_t> size;
};
// Parses pax records "<len> <key>=<value>\n"...; kInvalid naming the first malformed record or
// a key other than path and size (messages use `where`, e.g. "at offset 1024").
[[nodiscard]] Result<PaxValues> ParsePaxRecords(std::string_view records, const std::string& where);

// Shows a field's bytes for a message: printable ASCII as is, anything else as \xNN.
std::string ShowBytes(std::string_view bytes);

}  // namespace dlsys::archive::internal
