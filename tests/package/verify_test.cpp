// Verify, Inspect, LoadVerified and SmokeIsolated over archives built by hand (Pack needs the
// runtime module, absent here).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "archive/archive.h"
#include "core/encoding.h"
#include "hw/requirements.h"
#include "manifest/manifest.h"
#include "package/package.h"
#include "signing/digest.h"
#include "signing/keys.h"
#include "test_tmp.h"

namespace dlsys::archive {
void PrintTo(Compression c, std::ostream* os) { *os << CompressionName(c); }
}  // namespace dlsys::archive

namespace dlsys {
void PrintTo(Status s, std::ostream* os) { *os << StatusName(s); }
}  // namespace dlsys

namespace dlsys::package {
namespace {

using dlsys::testing::RandomBytes;
using dlsys::testing::Slurp;
using dlsys::testing::Spit;
using dlsys::testing::TempDir;

using archive::Compression;

#define EXPECT_HAS(haystack, needle)                               \
  EXPECT_NE(std::string(haystack).find(needle), std::string::npos) \
      << "'" << (haystack) << "' lacks '" << (needle) << "'"

static_assert(signing::kShardBytes == manifest::kShardBytes);

constexpr const char* kCreated = "2026-01-31T12:00:00Z";
constexpr std::int64_t kCreatedEpoch = 1769860800;  // date -u -d 2026-01-31T12:00:00Z +%s

struct Entry {
  std::string path;
  std::string data;
};

const std::string kData = "data/blob.bin";
const std::string kModel = "model.pt";
const std::string kInput = "examples/basic/inputs/x.bin";          // float32 [1, 4]: 16 bytes
const std::string kOutput = "examples/basic/outputs/output0.bin";  // float32 [1, 2]: 8 bytes
const std::string kEmpty = "files/empty.txt";
// Longer than the 100-byte ustar name field: needs a pax header before its data.
const std::string kLong = "files/" + std::string(120, 'l') + ".txt";
// More than one shard: only in the Sharded tests (65 MiB).
const std::string kBig = "weights/big.bin";

// The payload, sorted by path.
std::vector<Entry> Payloads() {
  return {{kData, RandomBytes(3000, 1)}, {kInput, RandomBytes(16, 2)},
          {kOutput, RandomBytes(8, 4)},  {kEmpty, ""},
          {kLong, "long name\n"},        {kModel, RandomBytes(500, 3)}};
}

// 65 MiB of pseudo-random bytes (incompressible, so zstd stays within the ratio limit): two
// shards, the second 1 MiB. Made once per test binary run.
constexpr std::uint64_t kBigBytes = manifest::kShardBytes + (std::uint64_t{1} << 20);
const std::string& BigData() {
  static const std::string data = [] {
    std::string s(kBigBytes, '\0');
    std::uint64_t x = 42;
    for (std::size_t i = 0; i < s.size(); i += 8) {  // splitmix64
      std::uint64_t z = (x += 0x9e3779b97f4a7c15);
      z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9;
      z = (z ^ (z >> 27)) * 0x94d049bb133111eb;
      z ^= z >> 31;
      std::memcpy(s.data() + i, &z, sizeof z);
    }
    return s;
  }();
  return data;
}

// A manifest the strict rules accept: every key, entry_point.method among model.methods,
// example tensor files of elements x dtype size bytes, mode 0644, real 64 MiB shards.
manifest::Manifest MakeManifest(const std::vector<Entry>& payloads) {
  manifest::Manifest m;
  m.name = "mlp";
  m.version = "1.2.0";
  m.description = "test model";
  m.created = kCreated;
  m.inputs = {{"x", "float32", {-1, 4}}};
  m.outputs = {{"output0", "float32", {-1, 2}}};
  m.entry_method = "forward";
  m.model.methods = {{"forward", "forward(Tensor x) -> Tensor", {"x"}}};
  m.model.parameters = {2, 10, {{"float32", 40}}};
  m.model.operators = {"aten::linear"};
  m.model.file_format_version = 8;
  m.model.runtime_version = "1.13.1";
  m.model.devices = {"cpu"};
  m.examples = {{"basic",
                 {{{"x", "float32", {1, 4}}, kInput}},
                 {{{"output0", "float32", {1, 2}}, kOutput}},
                 1e-5,
                 1e-6}};
  for (const auto& p : payloads) {
    const auto d = signing::DigestBytes(core::AsBytes(p.data), manifest::kShardBytes, 2);
    manifest::FileRecord f;
    f.path = p.path;
    f.size = d.size;
    f.mode = manifest::kFileMode;
    f.sha256 = d.sha256;
    f.shard_bytes = d.shard_bytes;
    f.shards = d.shards;
    m.files.push_back(std::move(f));
  }
  std::sort(m.files.begin(), m.files.end(),
            [](const auto& a, const auto& b) { return a.path < b.path; });
  m.tool_version = "0.1.0";
  return m;
}

std::vector<Entry> BigPayloads() {
  auto p = Payloads();
  p.push_back({kBig, BigData()});
  return p;
}

const manifest::Manifest& BigManifest() {
  static const manifest::Manifest m = MakeManifest(BigPayloads());
  return m;
}

std::string Json(const manifest::Manifest& m) {
  auto json = manifest::Serialize(m);
  EXPECT_TRUE(json) << json.error().message;
  return json ? *json : "";
}

std::int64_t Epoch(const manifest::Manifest& m) {
  auto e = manifest::CreatedEpoch(m);
  EXPECT_TRUE(e) << e.error().message;
  return e ? *e : 0;
}

void WriteArchive(const std::string& out, Compression c, std::int64_t mtime,
                  const std::vector<Entry>& entries) {
  const int fd = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  ASSERT_GE(fd, 0) << out;
  {
    auto w = archive::Writer::Open(fd, c, mtime);
    ASSERT_TRUE(w) << w.error().message;
    for (const auto& e : entries) {
      auto r = w->Add(e.path, core::AsBytes(e.data));
      ASSERT_TRUE(r) << e.path << ": " << r.error().message;
    }
    auto r = w->Close();
    ASSERT_TRUE(r) << r.error().message;
  }
  ::close(fd);
}

const signing::PrivateKey& Key() {
  static const signing::PrivateKey key = *signing::PrivateKey::Generate();
  return key;
}
const signing::PrivateKey& OtherKey() {
  static const signing::PrivateKey key = *signing::PrivateKey::Generate();
  return key;
}

// How to build one archive: which payload bytes to store and how to sign.
struct Build {
  std::vector<Entry> stored = Payloads();  // entries written after the head
  manifest::Manifest manifest = MakeManifest(Payloads());
  bool sign = true;
  std::string signed_json;            // when set, the envelope signs this instead of manifest.json
  bool sort = true;                   // store the payload sorted by path, as pack does
  std::optional<std::int64_t> mtime;  // of every entry; default: the manifest's created time
};

std::vector<Entry> Layout(Build b) {
  const std::string json = Json(b.manifest);
  std::vector<Entry> entries{{std::string(manifest::kManifestPath), json}};
  if (b.sign) {
    auto env = signing::SignEnvelope(Key(), manifest::kPayloadType,
                                     b.signed_json.empty() ? json : b.signed_json);
    EXPECT_TRUE(env) << env.error().message;
    entries.push_back({std::string(manifest::kSignaturePath), env ? *env : ""});
  }
  if (b.sort) {
    std::sort(b.stored.begin(), b.stored.end(),
              [](const Entry& x, const Entry& y) { return x.path < y.path; });
  }
  for (auto& e : b.stored) entries.push_back(std::move(e));
  return entries;
}

std::string DataOf(const std::string& path) {
  for (const auto& p : Payloads()) {
    if (p.path == path) return p.data;
  }
  ADD_FAILURE() << "no payload " << path;
  return "";
}

void Replace(std::vector<Entry>& entries, const std::string& path, std::string data) {
  for (auto& e : entries) {
    if (e.path == path) {
      e.data = std::move(data);
      return;
    }
  }
  ADD_FAILURE() << "no entry " << path;
}

// ---- editing an uncompressed tar stream in place ----------------------------------------------

// The offset of the ustar header of `path` (at most 100 bytes), or npos.
std::size_t HeaderOffset(const std::string& tar, const std::string& path) {
  for (std::size_t off = 0; off + 512 <= tar.size(); off += 512) {
    if (tar.compare(off, path.size(), path) == 0 && tar[off + path.size()] == '\0' &&
        tar.compare(off + 257, 6, std::string("ustar\0", 6)) == 0) {
      return off;
    }
  }
  return std::string::npos;
}

void Rechecksum(std::string& tar, std::size_t h) {
  std::fill(tar.begin() + static_cast<std::ptrdiff_t>(h + 148),
            tar.begin() + static_cast<std::ptrdiff_t>(h + 156), ' ');
  unsigned sum = 0;
  for (std::size_t i = 0; i < 512; ++i) sum += static_cast<unsigned char>(tar[h + i]);
  char field[8];
  std::snprintf(field, sizeof field, "%06o", sum);  // six digits and a NUL, then the space
  std::memcpy(&tar[h + 148], field, 7);
}

void SetMtime(std::string& tar, std::size_t h, std::int64_t mtime) {
  char field[12];
  std::snprintf(field, sizeof field, "%011llo", static_cast<unsigned long long>(mtime));
  std::memcpy(&tar[h + 136], field, 12);
  Rechecksum(tar, h);
}

void SetName(std::string& tar, std::size_t h, const std::string& name) {
  std::fill(tar.begin() + static_cast<std::ptrdiff_t>(h),
            tar.begin() + static_cast<std::ptrdiff_t>(h + 100), '\0');
  std::memcpy(&tar[h], name.data(), name.size());
  Rechecksum(tar, h);
}

// ---- reading reports --------------------------------------------------------------------------

std::vector<const Check*> Rows(const VerifyReport& r, const std::string& check,
                               const std::string& subject) {
  std::vector<const Check*> out;
  for (const auto& c : r.checks) {
    if (c.check == check && c.subject == subject) out.push_back(&c);
  }
  return out;
}

// The one row for (check, subject); the test fails if there is not exactly one.
const Check& Row(const VerifyReport& r, const std::string& check, const std::string& subject) {
  static const Check kNone{"", "", Status::kFail, "(no such row)", "", ""};
  auto rows = Rows(r, check, subject);
  EXPECT_EQ(rows.size(), 1u) << "rows for " << check << " '" << subject << "'";
  return rows.empty() ? kNone : *rows.front();
}

std::string Dump(const VerifyReport& r) {
  std::string s;
  for (const auto& c : r.checks) {
    s += std::string(StatusName(c.status)) + " " + c.check + " '" + c.subject + "': " + c.message +
         "\n";
  }
  return s;
}

int CountStatus(const VerifyReport& r, Status s) {
  return static_cast<int>(std::count_if(r.checks.begin(), r.checks.end(),
                                        [&](const Check& c) { return c.status == s; }));
}

int CountCheck(const VerifyReport& r, const std::string& check) {
  return static_cast<int>(std::count_if(r.checks.begin(), r.checks.end(),
                                        [&](const Check& c) { return c.check == check; }));
}

VerifyOptions Trusting() {
  VerifyOptions o;
  o.trust.Add(Key().Public());
  return o;
}

// Sets an environment variable for one scope.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const std::string& value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    ::setenv(name, value.c_str(), 1);
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;
  ~ScopedEnv() {
    if (old_) {
      ::setenv(name_, old_->c_str(), 1);
    } else {
      ::unsetenv(name_);
    }
  }

 private:
  const char* name_;
  std::optional<std::string> old_;
};

// The smoke test's child must not find a runtime module, whatever the environment says.
ScopedEnv NoRuntime(const TempDir& dir) {
  return ScopedEnv("DLSYS_RUNTIME_MODULE", dir / "no-such-runtime-module.so");
}

// Writes archives into a fresh directory and verifies them.
class ArchiveTest : public ::testing::Test {
 protected:
  virtual Compression compression() const { return Compression::kNone; }
  std::string Write(const Build& b) {
    return WriteEntries(Layout(b), b.mtime.value_or(Epoch(b.manifest)));
  }
  std::string WriteEntries(const std::vector<Entry>& entries, std::int64_t mtime = kCreatedEpoch) {
    const std::string path = dir_ / ("a" + std::to_string(n_++) + ".dlsys");
    WriteArchive(path, compression(), mtime, entries);
    return path;
  }
  VerifyReport Run(const std::string& path, bool trust = true, bool allow_unsigned = false,
                   unsigned threads = 0) {
    VerifyOptions o;
    if (trust) o.trust.Add(Key().Public());
    o.allow_unsigned = allow_unsigned;
    o.threads = threads;
    auto r = Verify(path, o);
    EXPECT_TRUE(r) << r.error().message;
    return r ? *r : VerifyReport{};
  }
  // The container is broken: one FAIL row for `check`, and reading stopped there.
  void ExpectBroken(const VerifyReport& r, const std::string& check, const std::string& subject,
                    const std::string& needle) {
    EXPECT_FALSE(r.ok) << Dump(r);
    EXPECT_TRUE(r.container_broken) << Dump(r);
    const Check& row = Row(r, check, subject);
    EXPECT_EQ(row.status, Status::kFail);
    EXPECT_HAS(row.message, needle);
    EXPECT_EQ(CountStatus(r, Status::kFail), 1) << Dump(r);
    for (const Check& c : r.checks) {
      EXPECT_FALSE(c.check == "file" && c.status == Status::kPass) << Dump(r);
    }
  }

  TempDir dir_;
  int n_ = 0;
};

// Every compression.
class VerifyTest : public ArchiveTest, public ::testing::WithParamInterface<Compression> {
 protected:
  Compression compression() const override { return GetParam(); }
};

// Uncompressed archives edited in place after writing (the writer refuses what they make).
using TarEditTest = ArchiveTest;

TEST(ManifestBuilderTest, BuildsManifestsTheStrictRulesAccept) {
  for (const auto& m : {MakeManifest(Payloads()), BigManifest()}) {
    const std::string json = Json(m);
    auto parsed = manifest::Parse(json);
    ASSERT_TRUE(parsed) << parsed.error().message;
    EXPECT_EQ(Json(*parsed), json);
    EXPECT_EQ(Epoch(m), kCreatedEpoch);
  }
  const manifest::FileRecord* big = manifest::FindFile(BigManifest(), kBig);
  ASSERT_NE(big, nullptr);
  EXPECT_EQ(big->size, kBigBytes);
  EXPECT_EQ(big->shard_bytes, 67108864u);
  EXPECT_EQ(big->shards.size(), 2u);
  EXPECT_TRUE(big->sha256.empty());
}

TEST_P(VerifyTest, IntactSignedArchivePasses) {
  const Build b;
  for (unsigned threads : {1u, 4u}) {
    const VerifyReport r = Run(Write(b), true, false, threads);
    EXPECT_TRUE(r.ok) << Dump(r);
    EXPECT_FALSE(r.container_broken);
    EXPECT_EQ(r.name, "mlp");
    EXPECT_EQ(r.version, "1.2.0");
    EXPECT_EQ(r.key_id, Key().Public().KeyId());
    EXPECT_EQ(CountStatus(r, Status::kFail), 0) << Dump(r);
    EXPECT_EQ(CountStatus(r, Status::kWarn), 0) << Dump(r);

    const Check& man = Row(r, "manifest", "manifest.json");
    EXPECT_EQ(man.status, Status::kPass);
    EXPECT_HAS(man.message, "mlp 1.2.0");
    EXPECT_HAS(man.message, "6 files");
    const Check& sig = Row(r, "signature", "signature.json");
    EXPECT_EQ(sig.status, Status::kPass);
    EXPECT_EQ(sig.found, Key().Public().KeyId());
    for (const auto& p : Payloads()) {
      const Check& f = Row(r, "file", p.path);
      EXPECT_EQ(f.status, Status::kPass) << f.message;
      EXPECT_HAS(f.message, "sha256 matches");
      EXPECT_EQ(f.message.find("shards"), std::string::npos) << f.message;
    }
    EXPECT_EQ(r.checks.size(), 2u + Payloads().size());
  }
}

TEST_P(VerifyTest, UntrustedKeyFailsSignature) {
  const std::string path = Write(Build{});
  VerifyOptions o;
  o.trust.Add(OtherKey().Public());
  auto r = Verify(path, o);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_FALSE(r->ok);
  EXPECT_FALSE(r->container_broken);
  EXPECT_TRUE(r->key_id.empty());
  const Check& sig = Row(*r, "signature", "signature.json");
  EXPECT_EQ(sig.status, Status::kFail);
  EXPECT_HAS(sig.message, "not trusted");
  EXPECT_EQ(Row(*r, "file", kModel).status, Status::kPass);  // files are still checked

  // allow_unsigned does not excuse a signature by an untrusted key.
  o.allow_unsigned = true;
  auto again = Verify(path, o);
  ASSERT_TRUE(again);
  EXPECT_EQ(Row(*again, "signature", "signature.json").status, Status::kFail);
  EXPECT_FALSE(again->ok);
}

TEST_P(VerifyTest, UnsignedArchiveFailsUnlessAllowed) {
  Build b;
  b.sign = false;
  const std::string path = Write(b);

  const VerifyReport strict = Run(path);
  EXPECT_FALSE(strict.ok);
  EXPECT_FALSE(strict.container_broken);
  const Check& sig = Row(strict, "signature", "signature.json");
  EXPECT_EQ(sig.status, Status::kFail);
  EXPECT_HAS(sig.message, "not signed");
  EXPECT_HAS(sig.message, "--allow-unsigned");

  const VerifyReport lenient = Run(path, true, /*allow_unsigned=*/true);
  EXPECT_TRUE(lenient.ok) << Dump(lenient);
  EXPECT_EQ(Row(lenient, "signature", "signature.json").status, Status::kWarn);
  EXPECT_EQ(CountStatus(lenient, Status::kFail), 0) << Dump(lenient);
  EXPECT_EQ(Row(lenient, "file", kData).status, Status::kPass);
}

TEST_P(VerifyTest, SignedButNoTrustedKeysGiven) {
  const std::string path = Write(Build{});
  const VerifyReport strict = Run(path, /*trust=*/false);
  EXPECT_FALSE(strict.ok);
  const Check& sig = Row(strict, "signature", "signature.json");
  EXPECT_EQ(sig.status, Status::kFail);
  EXPECT_HAS(sig.message, "no trusted key");
  const VerifyReport lenient = Run(path, false, true);
  EXPECT_TRUE(lenient.ok) << Dump(lenient);
  EXPECT_EQ(Row(lenient, "signature", "signature.json").status, Status::kWarn);
}

TEST_P(VerifyTest, ManifestAlteredAfterSigningFails) {
  Build b;
  const manifest::Manifest original = b.manifest;
  b.signed_json = Json(original);
  b.manifest.description = "tampered";
  const VerifyReport r = Run(Write(b));
  EXPECT_FALSE(r.ok);
  EXPECT_FALSE(r.container_broken);
  const Check& sig = Row(r, "signature", "signature.json");
  EXPECT_EQ(sig.status, Status::kFail);
  EXPECT_HAS(sig.message, "altered after signing");
  EXPECT_EQ(sig.expected, signing::Sha256Hex(core::AsBytes(b.signed_json)));
  EXPECT_EQ(sig.found, signing::Sha256Hex(core::AsBytes(Json(b.manifest))));
  EXPECT_TRUE(r.key_id.empty());
}

TEST_P(VerifyTest, FlippedByteInSmallFileFails) {
  Build b;
  std::string bad = DataOf(kModel);
  bad[123] ^= 0x01;
  Replace(b.stored, kModel, bad);
  const VerifyReport r = Run(Write(b));
  EXPECT_FALSE(r.ok);
  EXPECT_FALSE(r.container_broken);
  const Check& f = Row(r, "file", kModel);
  EXPECT_EQ(f.status, Status::kFail);
  EXPECT_EQ(f.expected, manifest::FindFile(b.manifest, kModel)->sha256);
  EXPECT_EQ(f.found, signing::Sha256Hex(core::AsBytes(bad)));
  EXPECT_HAS(f.message, "model.pt: sha256 is ");
  EXPECT_HAS(f.message, "manifest says " + f.expected.substr(0, 16));
  EXPECT_EQ(f.message.find("in shard"), std::string::npos) << f.message;
  EXPECT_EQ(Row(r, "file", kData).status, Status::kPass);
  EXPECT_EQ(Row(r, "file", kInput).status, Status::kPass);
  EXPECT_EQ(Row(r, "signature", "signature.json").status, Status::kPass);
  EXPECT_EQ(CountStatus(r, Status::kFail), 1) << Dump(r);
}

TEST_P(VerifyTest, MissingFileFails) {
  Build b;
  std::erase_if(b.stored, [](const Entry& e) { return e.path == kInput; });
  const VerifyReport r = Run(Write(b));
  EXPECT_FALSE(r.ok);
  EXPECT_FALSE(r.container_broken);
  const Check& f = Row(r, "file", kInput);
  EXPECT_EQ(f.status, Status::kFail);
  EXPECT_HAS(f.message, "missing from the archive");
  EXPECT_EQ(Row(r, "file", kModel).status, Status::kPass);
  EXPECT_EQ(CountStatus(r, Status::kFail), 1) << Dump(r);
}

TEST_P(VerifyTest, ExtraFileAfterTheListedOnesFails) {
  Build b;
  b.stored.push_back({"zz/extra.txt", "smuggled"});
  const VerifyReport r = Run(Write(b));
  EXPECT_FALSE(r.ok);
  EXPECT_FALSE(r.container_broken);  // a verification failure (exit 5), not a broken container
  const Check& f = Row(r, "file", "zz/extra.txt");
  EXPECT_EQ(f.status, Status::kFail);
  EXPECT_HAS(f.message, "not listed in the manifest");
  EXPECT_EQ(CountStatus(r, Status::kFail), 1) << Dump(r);
  for (const auto& p : Payloads()) EXPECT_EQ(Row(r, "file", p.path).status, Status::kPass);
}

TEST_P(VerifyTest, UnlistedEntryInTheMiddleIsAFailedRow) {
  Build b;
  // Sorts between files/empty.txt and files/lll...: the walk must resume matching afterwards.
  const std::string extra = "files/extra.txt";
  ASSERT_LT(kEmpty, extra);
  ASSERT_LT(extra, kLong);
  b.stored.push_back({extra, "smuggled"});
  const VerifyReport r = Run(Write(b));
  EXPECT_FALSE(r.ok);
  EXPECT_FALSE(r.container_broken) << Dump(r);
  const Check& f = Row(r, "file", extra);
  EXPECT_EQ(f.status, Status::kFail);
  EXPECT_HAS(f.message, "not listed");
  EXPECT_EQ(CountStatus(r, Status::kFail), 1) << Dump(r);
  for (const auto& p : Payloads()) EXPECT_EQ(Row(r, "file", p.path).status, Status::kPass);
}

TEST_P(VerifyTest, SizeMismatchFails) {
  Build b;
  Replace(b.stored, kModel, DataOf(kModel).substr(0, 499));
  const VerifyReport r = Run(Write(b));
  EXPECT_FALSE(r.ok);
  EXPECT_FALSE(r.container_broken);
  const Check& f = Row(r, "file", kModel);
  EXPECT_EQ(f.status, Status::kFail);
  EXPECT_EQ(f.expected, "500");
  EXPECT_EQ(f.found, "499");
  EXPECT_HAS(f.message, "499 bytes, manifest says 500");
}

TEST_P(VerifyTest, ManifestNotFirstBreaksTheContainer) {
  auto entries = Layout(Build{});
  std::rotate(entries.begin(), entries.begin() + 2, entries.end());  // payloads first
  const VerifyReport r = Run(WriteEntries(entries));
  ExpectBroken(r, "archive", "", "expected 'manifest.json'");
  EXPECT_TRUE(Rows(r, "file", kModel).empty());
}

TEST_P(VerifyTest, TruncatedArchiveBreaksTheContainer) {
  const std::string path = Write(Build{});
  const std::string whole = Slurp(path);
  // Cut inside the payloads (past the head), and at the end of the last entry's data so that
  // only the end-of-archive marker is missing (for compressed archives: the last byte).
  std::size_t end_cut = whole.size() - 1;
  if (compression() == Compression::kNone) {
    const auto pos = whole.find(DataOf(kModel));
    ASSERT_NE(pos, std::string::npos);
    end_cut = pos + 512;  // 500 bytes of data padded to one tar block
  }
  for (std::size_t keep : {whole.size() * 3 / 4, end_cut}) {
    Spit(path, whole.substr(0, keep));
    const VerifyReport r = Run(path);
    EXPECT_FALSE(r.ok) << "kept " << keep << " of " << whole.size() << "\n" << Dump(r);
    EXPECT_TRUE(r.container_broken) << "kept " << keep << "\n" << Dump(r);
    ASSERT_FALSE(Rows(r, "archive", "").empty()) << Dump(r);
    EXPECT_EQ(Rows(r, "archive", "").front()->status, Status::kFail);
    for (const Check& c : r.checks) {
      EXPECT_FALSE(c.check == "file" && c.status == Status::kPass) << Dump(r);
    }
  }
}

TEST_P(VerifyTest, InvalidManifestBreaksTheContainer) {
  auto entries = Layout(Build{});
  entries[0].data = R"({"format_version":1})";
  const VerifyReport r = Run(WriteEntries(entries));
  ExpectBroken(r, "manifest", "manifest.json", "manifest field '");
  EXPECT_TRUE(r.name.empty());
}

TEST_P(VerifyTest, ShardBytesOtherThan64MiBBreakTheContainer) {
  // A file just over one shard, declared with shard_bytes 0 (once a division by zero) and with
  // the old 1024-byte shards.
  for (std::uint64_t shard_bytes : {std::uint64_t{0}, std::uint64_t{1024}}) {
    Build b;
    manifest::FileRecord& f = b.manifest.files[0];
    ASSERT_EQ(f.path, kData);
    f.size = manifest::kShardBytes + 1;
    f.sha256.clear();
    f.shard_bytes = 1;  // Serialize writes shard_bytes only when non-zero; edited below
    f.shards = {std::string(64, 'a'), std::string(64, 'b')};
    auto entries = Layout(b);
    const std::string from = "\"shard_bytes\":1,";
    const auto pos = entries[0].data.find(from);
    ASSERT_NE(pos, std::string::npos);
    entries[0].data.replace(pos, from.size(),
                            "\"shard_bytes\":" + std::to_string(shard_bytes) + ",");
    const VerifyReport r = Run(WriteEntries(entries));
    ExpectBroken(r, "manifest", "manifest.json", "files[0].shard_bytes");
  }
}

TEST_P(VerifyTest, NonCanonicalManifestBreaksTheContainer) {
  auto entries = Layout(Build{});
  entries[0].data = "{ " + entries[0].data.substr(1);  // still valid JSON, one space added
  const std::string path = WriteEntries(entries);
  const VerifyReport r = Run(path);
  ExpectBroken(r, "manifest", "manifest.json", "canonical");
  EXPECT_HAS(Row(r, "manifest", "manifest.json").message, "at byte 1");
  EXPECT_TRUE(Rows(r, "signature", "signature.json").empty()) << Dump(r);

  auto i = Inspect(path);
  ASSERT_FALSE(i);
  EXPECT_EQ(i.error().code, Code::kInvalid);
  EXPECT_HAS(i.error().message, "canonical");
}

TEST_P(VerifyTest, UnparsableRequirementsBreakTheContainer) {
  Build b;
  b.manifest.requirements_json = R"({"device":"tpu"})";
  const VerifyReport r = Run(Write(b));
  ExpectBroken(r, "manifest", "manifest.json", "requirements");
  EXPECT_HAS(Row(r, "manifest", "manifest.json").message, "tpu");
  EXPECT_TRUE(Rows(r, "signature", "signature.json").empty()) << Dump(r);
}

TEST_P(VerifyTest, EntryMtimeDifferentFromCreatedBreaksTheContainer) {
  Build b;
  b.mtime = Epoch(b.manifest) + 1;
  const std::string path = Write(b);
  const VerifyReport r = Run(path);
  ExpectBroken(r, "archive", "", "mtime");
  EXPECT_HAS(Row(r, "archive", "").message, "'manifest.json'");
  EXPECT_HAS(Row(r, "archive", "").message, std::to_string(kCreatedEpoch + 1));
  EXPECT_TRUE(Rows(r, "signature", "signature.json").empty()) << Dump(r);

  auto i = Inspect(path);
  ASSERT_FALSE(i);
  EXPECT_EQ(i.error().code, Code::kInvalid);
  EXPECT_HAS(i.error().message, "mtime");
}

TEST_F(TarEditTest, PayloadEntryMtimeDifferentFromCreatedBreaksTheContainer) {
  const std::string path = Write(Build{});
  std::string tar = Slurp(path);
  const std::size_t h = HeaderOffset(tar, kModel);
  ASSERT_NE(h, std::string::npos);
  SetMtime(tar, h, kCreatedEpoch - 60);
  Spit(path, tar);
  const VerifyReport r = Run(path);
  ExpectBroken(r, "archive", "", "mtime");
  EXPECT_HAS(Row(r, "archive", "").message, "'model.pt'");
  EXPECT_HAS(Row(r, "archive", "").message, "offset " + std::to_string(h));
  EXPECT_TRUE(Inspect(path)) << "Inspect reads only the head";
}

Build ModelFirst() {
  Build b;
  b.sort = false;
  std::rotate(b.stored.begin(), b.stored.end() - 1, b.stored.end());
  return b;
}

TEST_P(VerifyTest, PayloadOutOfOrderBreaksTheContainer) {
  const Build b = ModelFirst();
  ASSERT_EQ(b.stored.front().path, kModel);
  const VerifyReport r = Run(Write(b));
  EXPECT_FALSE(r.ok);
  EXPECT_TRUE(r.container_broken) << Dump(r);
  const Check& a = Row(r, "archive", "");
  EXPECT_EQ(a.status, Status::kFail);
  EXPECT_HAS(a.message, "'" + kData + "'");
  EXPECT_HAS(a.message, "out of order or repeated");
  for (const Check& c : r.checks) {
    EXPECT_FALSE(c.check == "file" && c.status == Status::kPass) << Dump(r);
  }
}

// The files listed before the first out-of-order entry are present, just stored later: they
// must not get "missing from the archive" rows next to the broken-order row.
TEST_F(TarEditTest, PayloadOutOfOrderReportsNoFalseMissingRows) {
  const VerifyReport r = Run(Write(ModelFirst()));
  ExpectBroken(r, "archive", "", "out of order or repeated");
  EXPECT_TRUE(Rows(r, "file", kData).empty()) << Dump(r);
}

TEST_P(VerifyTest, SignatureAfterThePayloadBreaksTheContainer) {
  Build b;
  b.sign = false;
  b.stored.push_back({std::string(manifest::kSignaturePath), "{}"});  // sorts after model.pt
  const VerifyReport r = Run(Write(b), true, /*allow_unsigned=*/true);
  EXPECT_FALSE(r.ok);
  EXPECT_TRUE(r.container_broken) << Dump(r);
  const Check& a = Row(r, "archive", "");
  EXPECT_EQ(a.status, Status::kFail);
  EXPECT_HAS(a.message, "'signature.json'");
  EXPECT_HAS(a.message, "out of order or repeated");
}

TEST_F(TarEditTest, RepeatedPayloadEntryBreaksTheContainer) {
  // The writer refuses a repeated path: store "model.pu" and rename it in its header.
  Build b;
  b.stored.push_back({"model.pu", "second model"});
  const std::string path = Write(b);
  std::string tar = Slurp(path);
  const std::size_t h = HeaderOffset(tar, "model.pu");
  ASSERT_NE(h, std::string::npos);
  SetName(tar, h, kModel);
  Spit(path, tar);
  const VerifyReport r = Run(path);
  EXPECT_FALSE(r.ok);
  EXPECT_TRUE(r.container_broken) << Dump(r);
  const Check& a = Row(r, "archive", "");
  EXPECT_EQ(a.status, Status::kFail);
  EXPECT_HAS(a.message, "'model.pt' at offset " + std::to_string(h));
  EXPECT_HAS(a.message, "out of order or repeated");
  for (const Check& c : r.checks) {
    EXPECT_FALSE(c.check == "file" && c.status == Status::kPass) << Dump(r);
  }
}

TEST_P(VerifyTest, InspectReadsTheHead) {
  const Build b;
  const std::string path = Write(b);
  auto r = Inspect(path);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->manifest_json, Json(b.manifest));
  EXPECT_EQ(Json(r->manifest), r->manifest_json);
  EXPECT_EQ(r->manifest.name, "mlp");
  EXPECT_EQ(r->manifest.created, kCreated);
  EXPECT_EQ(r->manifest.files.size(), Payloads().size());
  EXPECT_TRUE(r->is_signed);
  EXPECT_EQ(r->signer_key_ids, std::vector<std::string>{Key().Public().KeyId()});
  EXPECT_EQ(r->compression, compression());
  EXPECT_EQ(r->archive_bytes, std::filesystem::file_size(path));
}

TEST_P(VerifyTest, InspectUnsignedArchive) {
  Build b;
  b.sign = false;
  auto r = Inspect(Write(b));
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_FALSE(r->is_signed);
  EXPECT_TRUE(r->signer_key_ids.empty());
  EXPECT_EQ(r->compression, compression());
}

TEST_P(VerifyTest, InspectDoesNotCheckPayloads) {
  Build b;
  Replace(b.stored, kModel, "not the model");
  auto r = Inspect(Write(b));
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->manifest.name, "mlp");
}

TEST_P(VerifyTest, LoadVerifiedReturnsTheVerifiedBytes) {
  const Build b;
  auto v = LoadVerified(Write(b), Trusting());
  ASSERT_TRUE(v) << v.error().message;
  EXPECT_TRUE(v->report.ok) << Dump(v->report);
  EXPECT_FALSE(v->report.container_broken);
  EXPECT_EQ(v->report.checks.size(), 2u + Payloads().size()) << Dump(v->report);
  EXPECT_EQ(Json(v->manifest), Json(b.manifest));
  // The model and every example tensor, nothing else, byte for byte.
  std::set<std::string> keys;
  for (const auto& [path, bytes] : v->files) keys.insert(path);
  EXPECT_EQ(keys, (std::set<std::string>{kModel, kInput, kOutput}));
  for (const std::string& path : {kModel, kInput, kOutput}) {
    auto it = v->files.find(path);
    ASSERT_NE(it, v->files.end()) << path;
    EXPECT_EQ(it->second.size(), DataOf(path).size()) << path;
    EXPECT_TRUE(it->second == DataOf(path)) << path << ": bytes differ from the payload written";
  }
}

TEST_P(VerifyTest, LoadVerifiedOnATamperedArchiveKeepsNothing) {
  // A loaded file corrupted, a file nobody loads corrupted, an unsigned archive, a broken one.
  std::vector<std::pair<std::string, Build>> cases;
  {
    Build b;
    std::string bad = DataOf(kModel);
    bad[7] ^= 0x10;
    Replace(b.stored, kModel, bad);
    cases.emplace_back("model corrupted", b);
  }
  {
    Build b;
    std::string bad = DataOf(kData);
    bad[2999] ^= 0x10;
    Replace(b.stored, kData, bad);
    cases.emplace_back("unloaded file corrupted", b);
  }
  {
    Build b;
    b.sign = false;
    cases.emplace_back("unsigned", b);
  }
  {
    Build b;
    b.mtime = kCreatedEpoch + 1;
    cases.emplace_back("broken container", b);
  }
  for (const auto& [what, b] : cases) {
    auto v = LoadVerified(Write(b), Trusting());
    ASSERT_TRUE(v) << what << ": " << v.error().message;
    EXPECT_FALSE(v->report.ok) << what;
    EXPECT_TRUE(v->files.empty()) << what << ": " << v->files.size() << " files kept";
    EXPECT_GE(CountStatus(v->report, Status::kFail), 1) << what;
  }
}

TEST_P(VerifyTest, LoadVerifiedReadsTheArchiveOnce) {
  const std::string path = Write(Build{});
  auto v = LoadVerified(path, Trusting());
  ASSERT_TRUE(v) << v.error().message;
  ASSERT_TRUE(v->report.ok) << Dump(v->report);
  // Swap the file on disk afterwards: what was returned does not change.
  std::filesystem::rename(path, path + ".old");
  Build other;
  Replace(other.stored, kModel, RandomBytes(500, 99));
  other.manifest = MakeManifest(other.stored);
  const std::string swapped = Write(other);
  std::filesystem::rename(swapped, path);
  Spit(path + ".old", "overwritten");
  ASSERT_TRUE(v->files.count(kModel));
  EXPECT_TRUE(v->files.at(kModel) == DataOf(kModel));
  EXPECT_TRUE(v->files.at(kInput) == DataOf(kInput));
}

TEST_P(VerifyTest, SmokeWithoutRuntimeIsAFailRowFromTheChild) {
  const ScopedEnv env = NoRuntime(dir_);
  VerifyOptions o = Trusting();
  o.smoke = true;
  o.smoke_timeout_s = 60;
  auto r = Verify(Write(Build{}), o);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_FALSE(r->ok);
  EXPECT_FALSE(r->container_broken);
  // The integrity rows, all passing, then the child's one row.
  EXPECT_EQ(Row(*r, "manifest", "manifest.json").status, Status::kPass);
  EXPECT_EQ(Row(*r, "signature", "signature.json").status, Status::kPass);
  for (const auto& p : Payloads()) EXPECT_EQ(Row(*r, "file", p.path).status, Status::kPass);
  EXPECT_EQ(CountCheck(*r, "smoke"), 1) << Dump(*r);
  const Check& smoke = Row(*r, "smoke", "runtime");
  EXPECT_EQ(smoke.status, Status::kFail);
  EXPECT_HAS(smoke.message, "runtime module was not found");
  EXPECT_EQ(CountStatus(*r, Status::kFail), 1) << Dump(*r);
  EXPECT_EQ(r->checks.size(), 2u + Payloads().size() + 1u) << Dump(*r);
  EXPECT_EQ(r->checks.back().check, "smoke");

  // Unverified bytes never reach the smoke test.
  Build bad;
  Replace(bad.stored, kModel, std::string(500, 'x'));
  auto t = Verify(Write(bad), o);
  ASSERT_TRUE(t) << t.error().message;
  EXPECT_FALSE(t->ok);
  const Check& load = Row(*t, "smoke", "load");
  EXPECT_EQ(load.status, Status::kFail);
  EXPECT_HAS(load.message, "smoke test not run");
}

TEST_P(VerifyTest, SmokeIsolatedReturnsRowsAndReapsTheChild) {
  const ScopedEnv env = NoRuntime(dir_);
  auto v = LoadVerified(Write(Build{}), Trusting());
  ASSERT_TRUE(v) << v.error().message;
  ASSERT_TRUE(v->report.ok) << Dump(v->report);
  const std::vector<Check> rows = SmokeIsolated(*v, hw::Requirements{}, /*timeout_s=*/1);
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].check, "smoke");
  EXPECT_EQ(rows[0].subject, "runtime");
  EXPECT_EQ(rows[0].status, Status::kFail);
  EXPECT_HAS(rows[0].message, "runtime module was not found");
  errno = 0;
  EXPECT_EQ(::waitpid(-1, nullptr, WNOHANG), -1) << "a child is left";
  EXPECT_EQ(errno, ECHILD);
}

INSTANTIATE_TEST_SUITE_P(Compressions, VerifyTest,
                         ::testing::Values(Compression::kNone, Compression::kGzip,
                                           Compression::kZstd),
                         [](const auto& info) { return archive::CompressionName(info.param); });

// ---- files of more than one 64 MiB shard (few tests: each writes 65 MiB archives) -------------

class ShardedTest : public ::testing::Test {
 protected:
  static Build BigBuild() {
    Build b;
    b.stored = BigPayloads();
    b.manifest = BigManifest();
    return b;
  }
  std::string Write(Compression c, const Build& b) {
    const std::string path = dir_ / ("big" + std::to_string(n_++) + ".dlsys");
    WriteArchive(path, c, Epoch(b.manifest), Layout(b));
    return path;
  }
  static VerifyReport Run(const std::string& path, unsigned threads = 0) {
    VerifyOptions o = Trusting();
    o.threads = threads;
    auto r = Verify(path, o);
    EXPECT_TRUE(r) << r.error().message;
    return r ? *r : VerifyReport{};
  }
  // A flipped byte in `shard` gives one FAIL row naming the shard, and no PASS row for the file.
  void ExpectShardNamed(Compression c, std::size_t shard) {
    SCOPED_TRACE(std::string(archive::CompressionName(c)) + " shard " + std::to_string(shard));
    Build b = BigBuild();
    const std::uint64_t first = shard * manifest::kShardBytes;
    const std::uint64_t last = std::min(first + manifest::kShardBytes, kBigBytes) - 1;
    std::string bad = BigData();
    bad[first + 7] ^= 0x80;
    const std::string found =
        signing::Sha256Hex(core::AsBytes(bad).subspan(first, last - first + 1));
    Replace(b.stored, kBig, std::move(bad));
    const VerifyReport r = Run(Write(c, b));
    EXPECT_FALSE(r.ok);
    EXPECT_FALSE(r.container_broken);
    const Check& f = Row(r, "file", kBig);  // exactly one row: the FAIL, no PASS
    EXPECT_EQ(f.status, Status::kFail);
    EXPECT_HAS(f.message, "in shard " + std::to_string(shard) + " (bytes " + std::to_string(first) +
                              "-" + std::to_string(last) + ")");
    EXPECT_EQ(f.expected, BigManifest().files.back().shards[shard]);
    EXPECT_EQ(f.found, found);
    EXPECT_EQ(Row(r, "file", kModel).status, Status::kPass);
    EXPECT_EQ(CountStatus(r, Status::kFail), 1) << Dump(r);
  }

  TempDir dir_;
  int n_ = 0;
};

TEST_F(ShardedTest, UncompressedArchiveNamesTheShard) {
  ASSERT_EQ(BigManifest().files.back().path, kBig);
  const VerifyReport r = Run(Write(Compression::kNone, BigBuild()), /*threads=*/2);
  EXPECT_TRUE(r.ok) << Dump(r);
  const Check& f = Row(r, "file", kBig);
  EXPECT_EQ(f.status, Status::kPass);
  EXPECT_HAS(f.message, "(2 shards)");
  ExpectShardNamed(Compression::kNone, 0);
  ExpectShardNamed(Compression::kNone, 1);
}

TEST_F(ShardedTest, CompressedArchiveNamesTheShard) { ExpectShardNamed(Compression::kZstd, 1); }

// ---- paths that are not archives ----------------------------------------------------------------

TEST(InspectTest, NonArchiveIsInvalid) {
  TempDir dir;
  Spit(dir / "notes.txt", "this is not a tar archive, just some text\n");
  auto r = Inspect(dir / "notes.txt");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Code::kInvalid);
  EXPECT_HAS(r.error().message, "cannot inspect '" + dir / "notes.txt" + "'");
}

TEST(InspectTest, MissingIsNotFound) {
  TempDir dir;
  auto r = Inspect(dir / "nope.dlsys");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Code::kNotFound);
}

TEST(InspectTest, InvalidManifestIsInvalid) {
  TempDir dir;
  WriteArchive(dir / "a.dlsys", Compression::kNone, kCreatedEpoch, {{"manifest.json", "{}"}});
  auto r = Inspect(dir / "a.dlsys");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Code::kInvalid);
  EXPECT_HAS(r.error().message, "manifest field");
}

TEST(VerifyMissingTest, MissingPathIsNotFound) {
  TempDir dir;
  auto r = Verify(dir / "nope.dlsys", VerifyOptions{});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Code::kNotFound);
  EXPECT_HAS(r.error().message, "nope.dlsys");
  auto l = LoadVerified(dir / "nope.dlsys", VerifyOptions{});
  ASSERT_FALSE(l);
  EXPECT_EQ(l.error().code, Code::kNotFound);
}

TEST(VerifyMissingTest, NonArchiveIsBrokenContainer) {
  TempDir dir;
  Spit(dir / "notes.txt", "plain text\n");
  auto r = Verify(dir / "notes.txt", VerifyOptions{});
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_FALSE(r->ok);
  EXPECT_TRUE(r->container_broken);
  ASSERT_EQ(r->checks.size(), 1u);
  EXPECT_EQ(r->checks[0].check, "archive");
  EXPECT_EQ(r->checks[0].status, Status::kFail);
}

// Opens the other end of a FIFO if the test is still blocked on it after a while, so a reader
// that waits for a writer fails the test instead of hanging it.
class FifoWatchdog {
 public:
  explicit FifoWatchdog(std::string path) : path_(std::move(path)), thread_([this] { Watch(); }) {}
  ~FifoWatchdog() { Stop(); }
  // True if the watchdog had to open the FIFO.
  bool Stop() {
    {
      std::lock_guard lock(mu_);
      done_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
    return fired_;
  }

 private:
  void Watch() {
    std::unique_lock lock(mu_);
    if (cv_.wait_for(lock, std::chrono::seconds(20), [this] { return done_; })) return;
    fired_ = true;
    while (!done_) {
      // O_RDWR never blocks on a FIFO (Linux) and releases a reader blocked in open().
      const int fd = ::open(path_.c_str(), O_RDWR | O_NONBLOCK | O_CLOEXEC);
      if (fd >= 0) ::close(fd);
      cv_.wait_for(lock, std::chrono::milliseconds(100), [this] { return done_; });
    }
  }

  std::string path_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
  bool fired_ = false;
  std::thread thread_;
};

TEST(VerifyMissingTest, FifoIsABrokenContainerNotAHang) {
  TempDir dir;
  const std::string fifo = dir / "pipe.dlsys";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0) << std::strerror(errno);
  FifoWatchdog watchdog(fifo);
  auto r = Verify(fifo, Trusting());
  auto l = LoadVerified(fifo, Trusting());
  auto i = Inspect(fifo);
  EXPECT_FALSE(watchdog.Stop()) << "reading the FIFO blocked until its other end was opened";

  ASSERT_TRUE(r) << r.error().message;
  EXPECT_FALSE(r->ok);
  EXPECT_TRUE(r->container_broken);
  ASSERT_EQ(r->checks.size(), 1u) << Dump(*r);
  EXPECT_EQ(r->checks[0].check, "archive");
  EXPECT_EQ(r->checks[0].status, Status::kFail);
  EXPECT_HAS(r->checks[0].message, "not a regular file");

  ASSERT_TRUE(l) << l.error().message;
  EXPECT_TRUE(l->report.container_broken);
  EXPECT_TRUE(l->files.empty());

  ASSERT_FALSE(i);
  EXPECT_EQ(i.error().code, Code::kInvalid);
}

TEST(StatusNameTest, Names) {
  EXPECT_STREQ(StatusName(Status::kPass), "PASS");
  EXPECT_STREQ(StatusName(Status::kWarn), "WARN");
  EXPECT_STREQ(StatusName(Status::kFail), "FAIL");
}

}  // namespace
}  // namespace dlsys::package
