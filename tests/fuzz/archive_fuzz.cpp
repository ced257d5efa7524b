// Fuzzes the archive reader and the verifier: the input is the whole .dlsys file.
//
// The bytes go to a memfd so the library reads a real file descriptor (pread, mmap) exactly as
// it reads an archive on disk, without touching the disk. Each input is read three ways:
// Verify (allow_unsigned, one thread), Inspect, and a raw archive::Reader walk to the end.
// Results are ignored: only crashes, sanitizer reports, leaks and timeouts matter.
#include <sys/mman.h>
#include <unistd.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "archive/archive.h"
#include "package/package.h"

namespace {

int MemFd() {
  static const int fd = [] {
    int f = memfd_create("dlsys-fuzz", MFD_CLOEXEC);
    if (f < 0) {
      std::perror("memfd_create");
      std::abort();
    }
    return f;
  }();
  return fd;
}

void Load(int fd, const std::uint8_t* data, std::size_t size) {
  if (ftruncate(fd, 0) != 0) std::abort();
  std::size_t done = 0;
  while (done < size) {
    ssize_t n = pwrite(fd, data + done, size - done, static_cast<off_t>(done));
    if (n <= 0) std::abort();
    done += static_cast<std::size_t>(n);
  }
  if (lseek(fd, 0, SEEK_SET) != 0) std::abort();
}

void WalkReader(int fd) {
  auto reader = dlsys::archive::Reader::Open(fd, "fuzz");
  if (!reader) return;
  std::array<std::byte, 64 * 1024> buffer;
  for (;;) {
    auto entry = reader->Next();
    if (!entry || !*entry) return;
    for (;;) {
      auto n = reader->Read(buffer);
      if (!n || *n == 0) break;
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const int fd = MemFd();
  Load(fd, data, size);
  const std::string path = "/proc/self/fd/" + std::to_string(fd);

  dlsys::package::VerifyOptions options;
  options.allow_unsigned = true;
  options.threads = 1;
  (void)dlsys::package::Verify(path, options);
  (void)dlsys::package::Inspect(path);

  if (lseek(fd, 0, SEEK_SET) != 0) std::abort();
  WalkReader(fd);
  return 0;
}
