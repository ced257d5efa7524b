// Owning handles for libarchive objects (private to lib/archive).
#pragma once

#include <archive.h>
#include <archive_entry.h>

#include <memory>

namespace dlsys::archive::internal {

struct ReadArchiveDeleter {
  void operator()(struct archive* a) const { archive_read_free(a); }
};

// archive_write_free() closes an open writer first, which finishes the archive (see
// Writer::Impl's destructor for how an abandoned writer avoids that).
struct WriteArchiveDeleter {
  void operator()(struct archive* a) const { archive_write_free(a); }
};

struct EntryDeleter {
  void operator()(struct archive_entry* e) const { archive_entry_free(e); }
};

using ReadArchive = std::unique_ptr<struct archive, ReadArchiveDeleter>;
using WriteArchive = std::unique_ptr<struct archive, WriteArchiveDeleter>;
using ArchiveEntry = std::unique_ptr<struct archive_entry, EntryDeleter>;

}  // namespace dlsys::archive::internal
