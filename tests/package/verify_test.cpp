// Verify and Inspect over archives built by hand (Pack needs the runtime module, absent here).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "archive/archive.h"
#include "core/encoding.h"
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

using archive::Compression;
using dlsys::testing::TempDir;

#define EXPECT_HAS(haystack, needle)                               \
  EXPECT_NE(std::string(haystack).find(needle), std::string::npos) \
      << "'" << (haystack) << "' lacks '" << (needle) << "'"

constexpr std::uint64_t kShard = 1024;  // small shards so a 3000-byte file has 3
constexpr std::int64_t kMtime = 1700000000;

struct Entry {
  std::string path;
  std::string data;
};

const std::string kBig = "data/big.bin";
const std::string kModel = "model.pt";
const std::string kInput = "examples/basic/inputs/x.bin";
const std::string kEmpty = "files/empty.txt";
// Longer than the 100-byte ustar name field: needs a pax header before its data.
const std::string kLong = "files/" + std::string(120, 'l') + ".txt";

std::vector<Entry> Payloads() {
  return {{kBig, RandomBytes(3000, 1)},
          {kInput, RandomBytes(16, 2)},
          {kEmpty, ""},
          {kLong, "long name\n"},
          {kModel, RandomBytes(500, 3)}};
}

manifest::Manifest MakeManifest(const std::vector<Entry>& payloads) {
  manifest::Manifest m;
  m.name = "mlp";
  m.version = "1.2.0";
  m.description = "test model";
  m.created = "2026-01-31T12:00:00Z";
  m.inputs = {{"x", "float32", {-1, 4}}};
  m.outputs = {{"output0", "float32", {-1, 2}}};
  m.model.methods = {{"forward", "forward(Tensor x) -> Tensor", {"x"}}};
  m.model.parameters = {2, 10, {{"float32", 40}}};
  m.model.operators = {"aten::linear"};
  m.model.file_format_version = 8;
  m.model.runtime_version = "1.13.1";
  m.model.devices = {"cpu"};
  m.examples = {{"basic", {{{"x", "float32", {1, 4}}, kInput}}, {}, 1e-5, 1e-6}};
  for (const auto& p : payloads) {
    const auto d = signing::DigestBytes(core::AsBytes(p.data), kShard, 2);
    manifest::FileRecord f;
    f.path = p.path;
    f.size = d.size;
    f.mode = 0644;
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

void WriteArchive(const std::string& out, Compression c, const std::vector<Entry>& entries) {
  const int fd = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  ASSERT_GE(fd, 0) << out;
  {
    auto w = archive::Writer::Open(fd, c, kMtime);
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
  std::vector<Entry> stored = Payloads();  // entries written after the head, sorted by path
  manifest::Manifest manifest = MakeManifest(Payloads());
  bool sign = true;
  std::string signed_json;  // when set, the envelope signs this instead of manifest.json
};

std::vector<Entry> Layout(Build b) {
  const std::string json = manifest::Serialize(b.manifest);
  std::vector<Entry> entries{{std::string(manifest::kManifestPath), json}};
  if (b.sign) {
    auto env = signing::SignEnvelope(Key(), manifest::kPayloadType,
                                     b.signed_json.empty() ? json : b.signed_json);
    EXPECT_TRUE(env) << env.error().message;
    entries.push_back({std::string(manifest::kSignaturePath), env ? *env : ""});
  }
  std::sort(b.stored.begin(), b.stored.end(),
            [](const Entry& x, const Entry& y) { return x.path < y.path; });
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

class VerifyTest : public ::testing::TestWithParam<Compression> {
 protected:
  std::string Write(const Build& b) { return WriteEntries(Layout(b)); }
  std::string WriteEntries(const std::vector<Entry>& entries) {
    const std::string path = dir_ / ("a" + std::to_string(n_++) + ".dlsys");
    WriteArchive(path, GetParam(), entries);
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

  TempDir dir_;
  int n_ = 0;
};

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
    EXPECT_HAS(man.message, "5 files");
    const Check& sig = Row(r, "signature", "signature.json");
    EXPECT_EQ(sig.status, Status::kPass);
    EXPECT_EQ(sig.found, Key().Public().KeyId());
    for (const auto& p : Payloads()) {
      const Check& f = Row(r, "file", p.path);
      EXPECT_EQ(f.status, Status::kPass) << f.message;
      EXPECT_HAS(f.message, "sha256 matches");
    }
    EXPECT_HAS(Row(r, "file", kBig).message, "(3 shards)");
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
  const Check& sig = Row(strict, "signature", "signature.json");
  EXPECT_EQ(sig.status, Status::kFail);
  EXPECT_HAS(sig.message, "not signed");
  EXPECT_HAS(sig.message, "--allow-unsigned");

  const VerifyReport lenient = Run(path, true, /*allow_unsigned=*/true);
  EXPECT_TRUE(lenient.ok) << Dump(lenient);
  EXPECT_EQ(Row(lenient, "signature", "signature.json").status, Status::kWarn);
  EXPECT_EQ(CountStatus(lenient, Status::kFail), 0) << Dump(lenient);
  EXPECT_EQ(Row(lenient, "file", kBig).status, Status::kPass);
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
  manifest::Manifest original = b.manifest;
  b.signed_json = manifest::Serialize(original);
  b.manifest.description = "tampered";
  const VerifyReport r = Run(Write(b));
  EXPECT_FALSE(r.ok);
  const Check& sig = Row(r, "signature", "signature.json");
  EXPECT_EQ(sig.status, Status::kFail);
  EXPECT_HAS(sig.message, "altered after signing");
  EXPECT_EQ(sig.expected, signing::Sha256Hex(core::AsBytes(b.signed_json)));
  EXPECT_EQ(sig.found, signing::Sha256Hex(core::AsBytes(manifest::Serialize(b.manifest))));
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
  EXPECT_EQ(Row(r, "file", kBig).status, Status::kPass);
  EXPECT_EQ(Row(r, "file", kInput).status, Status::kPass);
  EXPECT_EQ(Row(r, "signature", "signature.json").status, Status::kPass);
  EXPECT_EQ(CountStatus(r, Status::kFail), 1) << Dump(r);
}

TEST_P(VerifyTest, FlippedByteInShardNamesTheShard) {
  for (std::size_t shard : {1u, 2u}) {
    Build b;
    std::string bad = DataOf(kBig);
    bad[shard * kShard + 7] ^= 0x80;
    Replace(b.stored, kBig, bad);
    const VerifyReport r = Run(Write(b));
    EXPECT_FALSE(r.ok);
    auto fails = Rows(r, "file", kBig);
    fails.erase(std::remove_if(fails.begin(), fails.end(),
                               [](const Check* c) { return c->status != Status::kFail; }),
                fails.end());
    ASSERT_EQ(fails.size(), 1u) << Dump(r);
    const Check& f = *fails.front();
    const std::uint64_t first = shard * kShard, last = std::min<std::uint64_t>(first + kShard, 3000) - 1;
    EXPECT_HAS(f.message, "in shard " + std::to_string(shard) + " (bytes " +
                              std::to_string(first) + "-" + std::to_string(last) + ")");
    EXPECT_EQ(f.expected, manifest::FindFile(b.manifest, kBig)->shards[shard]);
    EXPECT_EQ(f.found, signing::Sha256Hex(core::AsBytes(bad).subspan(first, last - first + 1)));
    EXPECT_EQ(Row(r, "file", kModel).status, Status::kPass);
  }
}

TEST_P(VerifyTest, CorruptShardedFileGetsNoPassRow) {
  Build b;
  std::string bad = DataOf(kBig);
  bad[10] ^= 0x01;  // shard 0 of 3
  Replace(b.stored, kBig, bad);
  const VerifyReport r = Run(Write(b));
  EXPECT_FALSE(r.ok);
  for (const Check* c : Rows(r, "file", kBig)) {
    EXPECT_EQ(c->status, Status::kFail) << c->message;
  }
}

TEST_P(VerifyTest, MissingFileFails) {
  Build b;
  b.stored.erase(std::remove_if(b.stored.begin(), b.stored.end(),
                                [](const Entry& e) { return e.path == kInput; }),
                 b.stored.end());
  const VerifyReport r = Run(Write(b));
  EXPECT_FALSE(r.ok);
  const Check& f = Row(r, "file", kInput);
  EXPECT_EQ(f.status, Status::kFail);
  EXPECT_HAS(f.message, "missing from the archive");
  EXPECT_EQ(Row(r, "file", kModel).status, Status::kPass);
}

TEST_P(VerifyTest, ExtraFileFails) {
  Build b;
  b.stored.push_back({"files/extra.txt", "smuggled"});
  const VerifyReport r = Run(Write(b));
  EXPECT_FALSE(r.ok);
  const Check& f = Row(r, "file", "files/extra.txt");
  EXPECT_EQ(f.status, Status::kFail);
  EXPECT_HAS(f.message, "not listed in the manifest");
  EXPECT_EQ(CountStatus(r, Status::kFail), 1) << Dump(r);
  for (const auto& p : Payloads()) EXPECT_EQ(Row(r, "file", p.path).status, Status::kPass);
}

TEST_P(VerifyTest, SizeMismatchFails) {
  Build b;
  Replace(b.stored, kModel, DataOf(kModel).substr(0, 499));
  const VerifyReport r = Run(Write(b));
  EXPECT_FALSE(r.ok);
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
  EXPECT_FALSE(r.ok);
  EXPECT_TRUE(r.container_broken);
  const Check& a = Row(r, "archive", "");
  EXPECT_EQ(a.status, Status::kFail);
  EXPECT_HAS(a.message, "expected 'manifest.json'");
  EXPECT_TRUE(Rows(r, "file", kModel).empty());
}

TEST_P(VerifyTest, TruncatedArchiveBreaksTheContainer) {
  const std::string path = Write(Build{});
  const std::string whole = Slurp(path);
  // Cut inside the payloads (past the head), and at the end of the last entry's data so that
  // only the end-of-archive marker is missing (for compressed archives: the last byte).
  std::size_t end_cut = whole.size() - 1;
  if (GetParam() == Compression::kNone) {
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
  }
}

TEST_P(VerifyTest, InvalidManifestFails) {
  auto entries = Layout(Build{});
  entries[0].data = R"({"format_version":1})";
  const VerifyReport r = Run(WriteEntries(entries));
  EXPECT_FALSE(r.ok);
  const Check& m = Row(r, "manifest", "manifest.json");
  EXPECT_EQ(m.status, Status::kFail);
  EXPECT_HAS(m.message, "manifest field 'name'");
}

TEST_P(VerifyTest, ZeroShardBytesIsAFailedCheckNotACrash) {
  auto entries = Layout(Build{});
  const std::string from = "\"shard_bytes\":1024,";
  const auto pos = entries[0].data.find(from);
  ASSERT_NE(pos, std::string::npos);
  entries[0].data.replace(pos, from.size(), "\"shard_bytes\":0,");
  const VerifyReport r = Run(WriteEntries(entries));
  EXPECT_FALSE(r.ok);
  EXPECT_HAS(Row(r, "manifest", "manifest.json").message, "files[0].shard_bytes");
}

TEST_P(VerifyTest, InspectReadsTheHead) {
  const Build b;
  const std::string path = Write(b);
  auto r = Inspect(path);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->manifest_json, manifest::Serialize(b.manifest));
  EXPECT_EQ(manifest::Serialize(r->manifest), r->manifest_json);
  EXPECT_EQ(r->manifest.name, "mlp");
  EXPECT_EQ(r->manifest.files.size(), Payloads().size());
  EXPECT_TRUE(r->is_signed);
  EXPECT_EQ(r->signer_key_ids, std::vector<std::string>{Key().Public().KeyId()});
  EXPECT_EQ(r->compression, GetParam());
  EXPECT_EQ(r->archive_bytes, std::filesystem::file_size(path));
}

TEST_P(VerifyTest, InspectUnsignedArchive) {
  Build b;
  b.sign = false;
  auto r = Inspect(Write(b));
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_FALSE(r->is_signed);
  EXPECT_TRUE(r->signer_key_ids.empty());
  EXPECT_EQ(r->compression, GetParam());
}

TEST_P(VerifyTest, InspectDoesNotCheckPayloads) {
  Build b;
  Replace(b.stored, kModel, "not the model");
  auto r = Inspect(Write(b));
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->manifest.name, "mlp");
}

INSTANTIATE_TEST_SUITE_P(Compressions, VerifyTest,
                         ::testing::Values(Compression::kNone, Compression::kGzip,
                                           Compression::kZstd),
                         [](const auto& info) { return archive::CompressionName(info.param); });

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
  WriteArchive(dir / "a.dlsys", Compression::kNone, {{"manifest.json", "{}"}});
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

TEST(StatusNameTest, Names) {
  EXPECT_STREQ(StatusName(Status::kPass), "PASS");
  EXPECT_STREQ(StatusName(Status::kWarn), "WARN");
  EXPECT_STREQ(StatusName(Status::kFail), "FAIL");
}

}  // namespace
}  // namespace dlsys::package
