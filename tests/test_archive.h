// Signed test archives built without libtorch, for tests that need a valid archive rather than
// a model that runs (the registry, drift baselines). tests/package/verify_test.cpp builds its
// own: it needs every way an archive can be malformed.
#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "archive/archive.h"
#include "core/encoding.h"
#include "manifest/manifest.h"
#include "signing/digest.h"
#include "signing/keys.h"

namespace dlsys::testing {

inline constexpr std::int64_t kArchiveCreatedEpoch = 1769860800;  // 2026-01-31T12:00:00Z
inline constexpr const char* kArchiveCreated = "2026-01-31T12:00:00Z";

struct Payload {
  std::string path;
  std::string data;
};

// One signing key per test process.
inline const signing::PrivateKey& TestKey() {
  static const signing::PrivateKey key = *signing::PrivateKey::Generate();
  return key;
}

// A manifest the strict rules accept, of a small float32 MLP (x [-1, 4] -> y [-1, 2]) created at
// kArchiveCreated, listing `payloads` (their digests, sorted by path). Examples are the caller's.
inline manifest::Manifest SmallMlpManifest(const std::string& name, const std::string& version,
                                           const std::vector<Payload>& payloads) {
  manifest::Manifest m;
  m.name = name;
  m.version = version;
  m.created = kArchiveCreated;
  m.inputs = {{"x", "float32", {-1, 4}}};
  m.outputs = {{"y", "float32", {-1, 2}}};
  m.model.methods = {{"forward", "forward(Tensor x) -> Tensor", {"x"}}};
  m.model.parameters = {2, 10, {{"float32", 40}}};
  m.model.operators = {"aten::linear"};
  m.model.file_format_version = 8;
  m.model.runtime_version = "1.13.1";
  m.model.devices = {"cpu"};
  for (const auto& p : payloads) {
    const auto d = signing::DigestBytes(core::AsBytes(p.data), manifest::kShardBytes, 1);
    manifest::FileRecord f;
    f.path = p.path;
    f.size = d.size;
    f.sha256 = d.sha256;
    m.files.push_back(std::move(f));
  }
  std::sort(m.files.begin(), m.files.end(),
            [](const auto& a, const auto& b) { return a.path < b.path; });
  m.tool_version = "0.1.0";
  return m;
}

// Writes `m`, signed by TestKey(), and the payloads (sorted by path) as an uncompressed archive
// at `out`. Returns "" on success, else what failed.
inline std::string WriteSignedArchive(const std::string& out, const manifest::Manifest& m,
                                      std::vector<Payload> payloads) {
  auto json = manifest::Serialize(m);
  if (!json) return "manifest: " + json.error().message;
  auto envelope = signing::SignEnvelope(TestKey(), manifest::kPayloadType, *json);
  if (!envelope) return "signature: " + envelope.error().message;
  const int fd = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return "cannot create " + out;
  std::string error;
  auto w = archive::Writer::Open(fd, archive::Compression::kNone, kArchiveCreatedEpoch);
  if (!w) error = w.error().message;
  std::sort(payloads.begin(), payloads.end(),
            [](const Payload& a, const Payload& b) { return a.path < b.path; });
  auto add = [&](std::string_view path, const std::string& data) {
    if (!error.empty()) return;
    if (auto r = w->Add(path, core::AsBytes(data)); !r) error = std::string(path) + ": " + r.error().message;
  };
  add(manifest::kManifestPath, *json);
  add(manifest::kSignaturePath, *envelope);
  for (const auto& p : payloads) add(p.path, p.data);
  if (error.empty()) {
    if (auto closed = w->Close(); !closed) error = closed.error().message;
  }
  ::close(fd);
  return error;
}

}  // namespace dlsys::testing
