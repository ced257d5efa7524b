// The deploy registry over signed archives built by hand (as tests/package/verify_test.cpp
// builds them: no runtime module needed): push/remove, every route transition, strict
// reading of the files, crash safety at every crash point, concurrent changes.
#include "deploy/registry.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <set>
#include <string>
#include <vector>

#include "archive/archive.h"
#include "core/encoding.h"
#include "core/internal/json.h"
#include "core/test_hook.h"
#include "manifest/manifest.h"
#include "signing/digest.h"
#include "signing/keys.h"
#include "test_archive.h"
#include "test_tmp.h"

namespace dlsys::deploy {
namespace {

namespace fs = std::filesystem;
using dlsys::testing::Slurp;
using dlsys::testing::Spit;
using dlsys::testing::TempDir;

// A signed archive of one model file, whose bytes depend on name, version and `salt`.
std::string WriteArchive(const std::string& path, const std::string& name,
                         const std::string& version, const std::string& salt = "") {
  const std::vector<dlsys::testing::Payload> payloads = {
      {"model.pt", "model " + name + " " + version + " " + salt + std::string(64, 'm')}};
  const std::string error = dlsys::testing::WriteSignedArchive(
      path, dlsys::testing::SmallMlpManifest(name, version, payloads), payloads);
  EXPECT_EQ(error, "") << path;
  return path;
}

package::VerifyOptions Trusting() {
  package::VerifyOptions o;
  o.trust.Add(dlsys::testing::TestKey().Public());
  o.threads = 1;  // no threads: the crash tests fork
  return o;
}

std::string FileSha256(const std::string& path) {
  const std::string data = Slurp(path);
  return signing::DigestBytes(core::AsBytes(data), manifest::kShardBytes, 1).sha256;
}

PromoteRequest Request(const std::string& version, const std::string& env, Strategy s,
                       std::optional<double> weight = std::nullopt) {
  PromoteRequest q;
  q.model = "mlp";
  q.version = version;
  q.env = env;
  q.strategy = s;
  q.weight = weight;
  return q;
}

// Names of the files in a directory, sorted.
std::vector<std::string> Names(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

class RegistryTest : public ::testing::Test {
 public:  // the crash cases' setup functions call these
  void SetUp() override {
    auto reg = Registry::Open(dir_ / "reg", true);
    ASSERT_TRUE(reg) << reg.error().message;
    reg_.emplace(*std::move(reg));
  }

  std::string Archive(const std::string& version, const std::string& salt = "",
                      const std::string& name = "mlp") {
    return WriteArchive(dir_ / (name + "-" + version + salt + ".dlsys"), name, version, salt);
  }

  void PushOk(const std::string& version, const std::string& name = "mlp") {
    auto r = reg_->Push(Archive(version, "", name), Trusting());
    ASSERT_TRUE(r) << r.error().message;
  }

  Result<Route> Promote(const std::string& version, Strategy s,
                        std::optional<double> weight = std::nullopt,
                        std::optional<double> step = std::nullopt, const std::string& key = "",
                        std::optional<double> sample = std::nullopt,
                        const std::string& env = "prod") {
    PromoteRequest q;
    q.model = "mlp";
    q.version = version;
    q.env = env;
    q.strategy = s;
    q.weight = weight;
    q.step = step;
    q.key = key;
    q.sample = sample;
    return reg_->Promote(q);
  }

  Route RouteNow(const std::string& env = "prod") {
    auto st = reg_->Read();
    EXPECT_TRUE(st) << st.error().message;
    return st->environments.at(env).models.at("mlp");
  }

  TempDir dir_;
  std::optional<Registry> reg_;
};

void ExpectCode(const Result<Route>& r, Code code, const std::string& needle) {
  ASSERT_FALSE(r) << "expected an error containing '" << needle << "'";
  EXPECT_EQ(r.error().code, code) << r.error().message;
  EXPECT_NE(r.error().message.find(needle), std::string::npos) << r.error().message;
}

// ---- push, list, remove -------------------------------------------------------------------

TEST_F(RegistryTest, PushStoresTheArchiveReadOnlyUnderItsDigest) {
  const std::string archive = Archive("1.0.0");
  auto pushed = reg_->Push(archive, Trusting(), "first");
  ASSERT_TRUE(pushed) << pushed.error().message;
  EXPECT_TRUE(pushed->stored);
  const VersionRecord& rec = pushed->record;
  EXPECT_EQ(rec.digest, "sha256:" + FileSha256(archive));
  EXPECT_EQ(rec.size, fs::file_size(archive));
  EXPECT_EQ(rec.signer, dlsys::testing::TestKey().Public().KeyId());
  EXPECT_EQ(rec.compression, "none");
  EXPECT_EQ(rec.created, "2026-01-31T12:00:00Z");
  EXPECT_NE(rec.pushed_by.find('@'), std::string::npos);
  const std::string blob = reg_->BlobPath(rec.digest);
  EXPECT_EQ(blob, reg_->dir() + "/blobs/sha256/" + FileSha256(archive));
  EXPECT_EQ(Slurp(blob), Slurp(archive));
  struct stat st {};
  ASSERT_EQ(::stat(blob.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0444u);
  auto state = reg_->Read();
  ASSERT_TRUE(state) << state.error().message;
  EXPECT_EQ(state->generation, 1u);
  EXPECT_EQ(state->versions.at("mlp").at("1.0.0").digest, rec.digest);
  auto history = reg_->History();
  ASSERT_TRUE(history) << history.error().message;
  ASSERT_EQ(history->size(), 1u);
  EXPECT_EQ((*history)[0].action, "push");
  EXPECT_EQ((*history)[0].reason, "first");
  EXPECT_EQ((*history)[0].digest, rec.digest);
  EXPECT_EQ((*history)[0].prev, std::string(64, '0'));
  EXPECT_EQ(Names(reg_->dir() + "/blobs/sha256"), std::vector<std::string>{FileSha256(archive)});
}

TEST_F(RegistryTest, PushingTheSameBytesAgainIsANoOp) {
  const std::string archive = Archive("1.0.0");
  ASSERT_TRUE(reg_->Push(archive, Trusting()));
  auto again = reg_->Push(archive, Trusting());
  ASSERT_TRUE(again) << again.error().message;
  EXPECT_FALSE(again->stored);
  EXPECT_EQ(reg_->Read()->generation, 1u);
  EXPECT_EQ(reg_->History()->size(), 1u);
  EXPECT_EQ(Names(reg_->dir() + "/blobs/sha256").size(), 1u);  // no temporary copy left
}

TEST_F(RegistryTest, SameVersionWithOtherBytesIsRefusedNamingBothDigests) {
  const std::string a = Archive("1.0.0");
  const std::string b = Archive("1.0.0", "-other");
  ASSERT_TRUE(reg_->Push(a, Trusting()));
  auto r = reg_->Push(b, Trusting());
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Code::kExists);
  EXPECT_NE(r.error().message.find(FileSha256(a)), std::string::npos) << r.error().message;
  EXPECT_NE(r.error().message.find(FileSha256(b)), std::string::npos) << r.error().message;
  EXPECT_EQ(reg_->Read()->generation, 1u);
}

TEST_F(RegistryTest, AnArchiveThatDoesNotVerifyIsNotStored) {
  package::VerifyOptions untrusting;
  untrusting.threads = 1;
  auto r = reg_->Push(Archive("1.0.0"), untrusting);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Code::kVerifyFailed) << r.error().message;
  EXPECT_NE(r.error().message.find("dlsys verify"), std::string::npos);
  EXPECT_FALSE(r.error().details.empty());
  const std::string junk = dir_ / "junk.dlsys";
  Spit(junk, "not an archive");
  auto broken = reg_->Push(junk, Trusting());
  ASSERT_FALSE(broken);
  EXPECT_EQ(broken.error().code, Code::kInvalid) << broken.error().message;
  auto missing = reg_->Push(dir_ / "absent.dlsys", Trusting());
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, Code::kNotFound);
  EXPECT_TRUE(Names(reg_->dir() + "/blobs/sha256").empty());  // no temporary copy left
  EXPECT_EQ(reg_->Read()->generation, 0u);
}

TEST_F(RegistryTest, ListsEveryVersionOfEveryModel) {
  PushOk("1.0.0");
  PushOk("1.1.0");
  PushOk("2.0.0-rc.1");
  PushOk("0.1.0", "other");
  auto st = reg_->Read();
  ASSERT_TRUE(st);
  ASSERT_EQ(st->versions.size(), 2u);
  std::vector<std::string> versions;
  for (const auto& [v, rec] : st->versions.at("mlp")) {
    versions.push_back(v);
    EXPECT_EQ(rec.name, "mlp");
    EXPECT_EQ(rec.version, v);
  }
  EXPECT_EQ(versions, (std::vector<std::string>{"1.0.0", "1.1.0", "2.0.0-rc.1"}));
  EXPECT_EQ(reg_->History("other")->size(), 1u);
}

TEST_F(RegistryTest, RemoveIsRefusedWhileRoutedAndForcedOffRollbackLists) {
  PushOk("1.0.0");
  PushOk("1.1.0");
  ASSERT_TRUE(Promote("1.0.0", Strategy::kReplace));
  ASSERT_TRUE(Promote("1.1.0", Strategy::kReplace));
  auto routed = reg_->Remove("mlp", "1.1.0", true);
  ASSERT_FALSE(routed);
  EXPECT_EQ(routed.error().code, Code::kUsage);
  EXPECT_NE(routed.error().message.find("prod"), std::string::npos);
  auto kept = reg_->Remove("mlp", "1.0.0", false);
  ASSERT_FALSE(kept);
  EXPECT_EQ(kept.error().code, Code::kUsage);
  EXPECT_NE(kept.error().message.find("--force"), std::string::npos);
  const std::string blob = reg_->BlobPath(reg_->Read()->versions.at("mlp").at("1.0.0").digest);
  auto forced = reg_->Remove("mlp", "1.0.0", true, "retired");
  ASSERT_TRUE(forced) << forced.error().message;
  EXPECT_FALSE(fs::exists(blob));
  EXPECT_TRUE(RouteNow().previous.empty());
  EXPECT_FALSE(reg_->Read()->versions.at("mlp").contains("1.0.0"));
  auto missing = reg_->Remove("mlp", "1.0.0", true);
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, Code::kNotFound);
  auto h = reg_->History();
  ASSERT_TRUE(h);
  EXPECT_EQ(h->back().action, "remove");
  EXPECT_EQ(h->back().reason, "retired");
}

TEST_F(RegistryTest, RequestsAreValidated) {
  PushOk("1.0.0");
  EXPECT_EQ(reg_->Remove("MLP", "1.0.0", false).error().code, Code::kUsage);
  EXPECT_EQ(reg_->Remove("mlp", "1.0", false).error().code, Code::kUsage);
  EXPECT_EQ(reg_->Push(Archive("1.0.1"), Trusting(), "two\nlines").error().code, Code::kUsage);
  EXPECT_EQ(reg_->Push(Archive("1.0.1"), Trusting(), std::string(1025, 'r')).error().code,
            Code::kUsage);
  ExpectCode(Promote("1.0.0", Strategy::kReplace, std::nullopt, std::nullopt, "", std::nullopt,
                     "Prod"),
             Code::kUsage, "environment name");
  ExpectCode(Promote("1.0.0", Strategy::kReplace, std::nullopt, std::nullopt, "", std::nullopt,
                     "-prod"),
             Code::kUsage, "environment name");
  ExpectCode(Promote("9.9.9", Strategy::kReplace), Code::kNotFound, "push it first");
  EXPECT_TRUE(CheckEnvironmentName("a"));
  EXPECT_TRUE(CheckEnvironmentName(std::string(63, 'a')));
  EXPECT_FALSE(CheckEnvironmentName(std::string(64, 'a')));
  EXPECT_FALSE(CheckEnvironmentName("prod-"));
  EXPECT_FALSE(CheckEnvironmentName("pr_od"));
}

// ---- strategies ---------------------------------------------------------------------------

TEST_F(RegistryTest, ReplaceKeepsEarlierStablesForRollback) {
  PushOk("1.0.0");
  PushOk("1.1.0");
  auto first = Promote("1.0.0", Strategy::kReplace);
  ASSERT_TRUE(first) << first.error().message;
  EXPECT_EQ(first->stable, "1.0.0");
  EXPECT_TRUE(first->previous.empty());
  ExpectCode(Promote("1.0.0", Strategy::kReplace), Code::kUsage, "already stable");
  auto second = Promote("1.1.0", Strategy::kReplace);
  ASSERT_TRUE(second);
  EXPECT_EQ(second->stable, "1.1.0");
  EXPECT_EQ(second->previous, std::vector<std::string>{"1.0.0"});
  ExpectCode(reg_->Finalize("mlp", "prod"), Code::kUsage, "nothing to finalize");
  auto back = reg_->Rollback("mlp", "prod");
  ASSERT_TRUE(back);
  EXPECT_EQ(back->stable, "1.0.0");
  EXPECT_TRUE(back->previous.empty());
  ExpectCode(reg_->Rollback("mlp", "prod"), Code::kUsage, "nothing to roll back to");
  ExpectCode(reg_->Rollback("mlp", "staging"), Code::kNotFound, "no route");
  auto h = reg_->History("mlp", "prod");
  ASSERT_TRUE(h);
  ASSERT_EQ(h->size(), 3u);
  EXPECT_FALSE((*h)[0].from.has_value());
  EXPECT_EQ((*h)[1].from->stable, "1.0.0");
  EXPECT_EQ((*h)[1].to->stable, "1.1.0");
  EXPECT_EQ((*h)[2].action, "rollback");
  EXPECT_EQ((*h)[2].version, "1.0.0");
}

TEST_F(RegistryTest, RollbackTargetsAreCappedOldestDropped) {
  std::vector<std::string> versions;
  for (std::size_t i = 0; i < kMaxPrevious + 3; ++i) {
    versions.push_back("1." + std::to_string(i) + ".0");
  }
  for (const auto& v : versions) {
    PushOk(v);
    ASSERT_TRUE(Promote(v, Strategy::kReplace));
  }
  const Route r = RouteNow();
  ASSERT_EQ(r.previous.size(), kMaxPrevious);
  EXPECT_EQ(r.previous.front(), versions[2]);
  EXPECT_EQ(r.previous.back(), versions[versions.size() - 2]);
}

TEST_F(RegistryTest, CanaryStartsStepsFinalizes) {
  PushOk("1.0.0");
  PushOk("1.1.0");
  PushOk("1.2.0");
  ExpectCode(Promote("1.1.0", Strategy::kCanary, 10), Code::kUsage, "nothing to compare with");
  ASSERT_TRUE(Promote("1.0.0", Strategy::kReplace));
  ExpectCode(Promote("1.1.0", Strategy::kCanary), Code::kUsage, "--weight");
  ExpectCode(Promote("1.1.0", Strategy::kCanary, 10, 5), Code::kUsage, "--weight");
  ExpectCode(Promote("1.1.0", Strategy::kCanary, 0), Code::kUsage, "--weight");
  ExpectCode(Promote("1.1.0", Strategy::kCanary, 100.5), Code::kUsage, "--weight");
  ExpectCode(Promote("1.1.0", Strategy::kCanary, std::nullopt, 10), Code::kUsage, "not the canary");
  ExpectCode(Promote("1.0.0", Strategy::kCanary, 10), Code::kUsage, "already stable");
  auto c = Promote("1.1.0", Strategy::kCanary, 10);
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->strategy, Strategy::kCanary);
  EXPECT_EQ(c->stable, "1.0.0");
  EXPECT_EQ(c->candidate, "1.1.0");
  EXPECT_EQ(c->weight, 10);
  EXPECT_EQ(LoadedVersions(*c), (std::vector<std::string>{"1.0.0", "1.1.0"}));
  auto stepped = Promote("1.1.0", Strategy::kCanary, std::nullopt, 25);
  ASSERT_TRUE(stepped);
  EXPECT_EQ(stepped->weight, 35);
  stepped = Promote("1.1.0", Strategy::kCanary, std::nullopt, 80);
  ASSERT_TRUE(stepped);
  EXPECT_EQ(stepped->weight, 100);  // capped
  ExpectCode(Promote("1.2.0", Strategy::kCanary, 10), Code::kUsage, "1.1.0");
  ExpectCode(Promote("1.2.0", Strategy::kReplace), Code::kUsage, "finalize");
  ExpectCode(Promote("1.2.0", Strategy::kBlueGreen), Code::kUsage, "roll");
  ExpectCode(Promote("1.1.0", Strategy::kShadow), Code::kUsage, "rolling out");
  auto done = reg_->Finalize("mlp", "prod");
  ASSERT_TRUE(done) << done.error().message;
  EXPECT_EQ(done->strategy, Strategy::kReplace);
  EXPECT_EQ(done->stable, "1.1.0");
  EXPECT_TRUE(done->candidate.empty());
  EXPECT_EQ(done->previous, std::vector<std::string>{"1.0.0"});
  auto h = reg_->History("mlp", "prod");
  ASSERT_TRUE(h);
  EXPECT_EQ(h->back().action, "finalize");
  EXPECT_EQ(h->back().from->candidate, "1.1.0");
  EXPECT_EQ(h->back().strategy, "replace");
}

TEST_F(RegistryTest, RollbackDuringACanaryDropsTheCandidate) {
  PushOk("1.0.0");
  PushOk("1.1.0");
  ASSERT_TRUE(Promote("1.0.0", Strategy::kReplace));
  ASSERT_TRUE(Promote("1.1.0", Strategy::kCanary, 5));
  auto back = reg_->Rollback("mlp", "prod", "errors up");
  ASSERT_TRUE(back);
  EXPECT_EQ(back->strategy, Strategy::kReplace);
  EXPECT_EQ(back->stable, "1.0.0");
  EXPECT_TRUE(back->candidate.empty());
  EXPECT_TRUE(back->previous.empty());
  EXPECT_EQ(back->weight, 0);
}

TEST_F(RegistryTest, AbNeedsAKeyAndAWeightAndStoresTheKeyLowerCase) {
  PushOk("1.0.0");
  PushOk("1.1.0");
  ASSERT_TRUE(Promote("1.0.0", Strategy::kReplace));
  ExpectCode(Promote("1.1.0", Strategy::kAb, 50), Code::kUsage, "--key");
  ExpectCode(Promote("1.1.0", Strategy::kAb, std::nullopt, std::nullopt, "x-user"), Code::kUsage,
             "--weight");
  ExpectCode(Promote("1.1.0", Strategy::kAb, 50, std::nullopt, "x user"), Code::kUsage,
             "header");
  ExpectCode(Promote("1.1.0", Strategy::kAb, 50, 5, "x-user"), Code::kUsage, "--step");
  auto ab = Promote("1.1.0", Strategy::kAb, 50, std::nullopt, "X-User-Id");
  ASSERT_TRUE(ab) << ab.error().message;
  EXPECT_EQ(ab->key, "x-user-id");
  EXPECT_EQ(ab->weight, 50);
  EXPECT_EQ(RouteNow().key, "x-user-id");
  auto done = reg_->Finalize("mlp", "prod");
  ASSERT_TRUE(done);
  EXPECT_EQ(done->stable, "1.1.0");
  EXPECT_TRUE(done->key.empty());
}

TEST_F(RegistryTest, ShadowSamplesAllByDefault) {
  PushOk("1.0.0");
  PushOk("1.1.0");
  ExpectCode(Promote("1.1.0", Strategy::kShadow), Code::kUsage, "nothing to compare with");
  ASSERT_TRUE(Promote("1.0.0", Strategy::kReplace));
  ExpectCode(Promote("1.1.0", Strategy::kShadow, 10), Code::kUsage, "--weight");
  ExpectCode(Promote("1.1.0", Strategy::kShadow, std::nullopt, std::nullopt, "", 1.5),
             Code::kUsage, "--sample");
  ExpectCode(Promote("1.1.0", Strategy::kReplace, std::nullopt, std::nullopt, "", 0.5),
             Code::kUsage, "--sample");
  auto s = Promote("1.1.0", Strategy::kShadow);
  ASSERT_TRUE(s) << s.error().message;
  EXPECT_EQ(s->sample, 1);
  s = Promote("1.1.0", Strategy::kShadow, std::nullopt, std::nullopt, "", 0.25);
  ASSERT_TRUE(s);
  EXPECT_EQ(RouteNow().sample, 0.25);
  auto done = reg_->Finalize("mlp", "prod");
  ASSERT_TRUE(done);
  EXPECT_EQ(done->stable, "1.1.0");
  EXPECT_EQ(done->previous, std::vector<std::string>{"1.0.0"});
}

TEST_F(RegistryTest, BlueGreenKeepsTheOldStableOnStandby) {
  PushOk("1.0.0");
  PushOk("1.1.0");
  PushOk("1.2.0");
  auto first = Promote("1.0.0", Strategy::kBlueGreen);
  ASSERT_TRUE(first);
  EXPECT_EQ(first->strategy, Strategy::kReplace);  // nothing to keep on standby
  auto bg = Promote("1.1.0", Strategy::kBlueGreen);
  ASSERT_TRUE(bg) << bg.error().message;
  EXPECT_EQ(bg->strategy, Strategy::kBlueGreen);
  EXPECT_EQ(bg->stable, "1.1.0");
  EXPECT_EQ(bg->standby, "1.0.0");
  EXPECT_EQ(bg->previous, std::vector<std::string>{"1.0.0"});
  EXPECT_EQ(LoadedVersions(*bg), (std::vector<std::string>{"1.1.0", "1.0.0"}));
  ExpectCode(Promote("1.2.0", Strategy::kCanary, 5), Code::kUsage, "standby");
  auto back = reg_->Rollback("mlp", "prod");
  ASSERT_TRUE(back);
  EXPECT_EQ(back->strategy, Strategy::kReplace);
  EXPECT_EQ(back->stable, "1.0.0");
  EXPECT_TRUE(back->standby.empty());
  EXPECT_TRUE(back->previous.empty());
  ASSERT_TRUE(Promote("1.2.0", Strategy::kBlueGreen));
  auto done = reg_->Finalize("mlp", "prod");
  ASSERT_TRUE(done);
  EXPECT_EQ(done->strategy, Strategy::kReplace);
  EXPECT_EQ(done->stable, "1.2.0");
  EXPECT_TRUE(done->standby.empty());
  EXPECT_EQ(done->previous, std::vector<std::string>{"1.0.0"});
}

TEST_F(RegistryTest, EnvironmentsAreIndependent) {
  PushOk("1.0.0");
  PushOk("1.1.0");
  ASSERT_TRUE(Promote("1.0.0", Strategy::kReplace, std::nullopt, std::nullopt, "", std::nullopt,
                      "staging"));
  ASSERT_TRUE(Promote("1.1.0", Strategy::kReplace, std::nullopt, std::nullopt, "", std::nullopt,
                      "prod"));
  EXPECT_EQ(RouteNow("staging").stable, "1.0.0");
  EXPECT_EQ(RouteNow("prod").stable, "1.1.0");
  EXPECT_EQ(reg_->History("", "staging")->size(), 1u);
}

TEST(RegistryOpenTest, WithoutCreateAMissingDirectoryIsNotFound) {
  TempDir dir;
  auto r = Registry::Open(dir / "none", false);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Code::kNotFound);
  EXPECT_NE(r.error().message.find("--registry"), std::string::npos);
  auto empty = Registry::Open(dir / "fresh", true);
  ASSERT_TRUE(empty);
  auto st = empty->Read();
  ASSERT_TRUE(st);
  EXPECT_EQ(st->generation, 0u);
  EXPECT_TRUE(empty->History()->empty());
}

TEST(RegistryOpenTest, DefaultDirectoryFollowsTheEnvironment) {
  const char* saved_reg = std::getenv("DLSYS_REGISTRY");
  const std::string keep_reg = saved_reg ? saved_reg : "";
  const char* saved_xdg = std::getenv("XDG_DATA_HOME");
  const std::string keep_xdg = saved_xdg ? saved_xdg : "";
  ::setenv("DLSYS_REGISTRY", "/r", 1);
  EXPECT_EQ(*DefaultRegistryDir(), "/r");
  ::setenv("DLSYS_REGISTRY", "", 1);
  ::setenv("XDG_DATA_HOME", "/x", 1);
  EXPECT_EQ(*DefaultRegistryDir(), "/x/dlsys/registry");
  ::unsetenv("XDG_DATA_HOME");
  if (std::getenv("HOME") != nullptr) {
    EXPECT_EQ(*DefaultRegistryDir(),
              std::string(std::getenv("HOME")) + "/.local/share/dlsys/registry");
  }
  if (saved_reg) ::setenv("DLSYS_REGISTRY", keep_reg.c_str(), 1); else ::unsetenv("DLSYS_REGISTRY");
  if (saved_xdg) ::setenv("XDG_DATA_HOME", keep_xdg.c_str(), 1);
}

// ---- strict reading ----------------------------------------------------------------------

class RegistryParseTest : public RegistryTest {
 protected:
  void SetUp() override {
    RegistryTest::SetUp();
    PushOk("1.0.0");
    PushOk("1.1.0");
    ASSERT_TRUE(Promote("1.0.0", Strategy::kReplace));
    ASSERT_TRUE(Promote("1.1.0", Strategy::kCanary, 20));
    text_ = Slurp(reg_->StatePath());
    auto j = core::ParseJson(text_, {kMaxStateBytes}, "t");
    ASSERT_TRUE(j);
    json_ = *j;
  }
  // The canonical text of an edited state.
  std::string Edited(const std::function<void(nlohmann::json&)>& edit) {
    nlohmann::json j = json_;
    edit(j);
    return *core::CanonicalJson(j);
  }
  void ExpectInvalid(const std::string& text, const std::string& needle) {
    auto r = ParseState(text, "registry.json");
    ASSERT_FALSE(r) << "accepted: " << text.substr(0, 200);
    EXPECT_EQ(r.error().code, Code::kInvalid);
    EXPECT_NE(r.error().message.find(needle), std::string::npos) << r.error().message;
  }
  std::string text_;
  nlohmann::json json_;
};

TEST_F(RegistryParseTest, TheWrittenStateRoundTrips) {
  auto st = ParseState(text_, "registry.json");
  ASSERT_TRUE(st) << st.error().message;
  EXPECT_EQ(SerializeState(*st), text_);
  EXPECT_EQ(st->generation, 4u);
  EXPECT_EQ(st->history_entries, 4u);
  EXPECT_EQ(st->history_bytes, fs::file_size(reg_->dir() + "/history.jsonl"));
}

TEST_F(RegistryParseTest, RefusesWhatIsNotExactlyTheFormat) {
  ExpectInvalid(Edited([](auto& j) { j["extra"] = 1; }), "extra");
  ExpectInvalid(Edited([](auto& j) { j["generation"] = "4"; }), "generation");
  ExpectInvalid(Edited([](auto& j) { j["format_version"] = 2; }), "format_version");
  ExpectInvalid(Edited([](auto& j) { j["versions"]["mlp"]["1.0.0"]["size"] = -1; }), "size");
  ExpectInvalid(Edited([](auto& j) { j["versions"]["mlp"]["1.0.0"]["colour"] = "red"; }),
                "colour");
  ExpectInvalid(Edited([](auto& j) { j["versions"]["mlp"]["1.0.0"]["digest"] = "sha256:AB"; }),
                "digest");
  ExpectInvalid(
      Edited([](auto& j) { j["versions"]["mlp"]["1.0.0"]["pushed_at"] = "2026-02-30T00:00:00Z"; }),
                "pushed_at");
  ExpectInvalid(Edited([](auto& j) { j["versions"]["Bad Name"] = j["versions"]["mlp"]; }),
                "not a valid model name");
  ExpectInvalid(
      Edited([](auto& j) { j["versions"]["mlp"]["1.0"] = j["versions"]["mlp"]["1.0.0"]; }),
                "SemVer");
  ExpectInvalid(Edited([](auto& j) { j["environments"]["Prod"] = j["environments"]["prod"]; }),
                "environment name");
  ExpectInvalid(Edited([](auto& j) { j["environments"]["prod"]["models"]["mlp"]["weight"] = 101; }),
                "weight");
  ExpectInvalid(
      Edited([](auto& j) { j["environments"]["prod"]["models"]["mlp"]["strategy"] = "replace"; }),
                "candidate");
  ExpectInvalid(
      Edited([](auto& j) { j["environments"]["prod"]["models"]["mlp"]["candidate"] = "3.0.0"; }),
                "not stored");
  ExpectInvalid(Edited([](auto& j) {
                  auto& v = j["versions"]["mlp"];
                  v["1.1.0"]["digest"] = v["1.0.0"]["digest"];
                }),
                "twice");
  // Not canonical: the same document with white space.
  ExpectInvalid(" " + text_, "canonical");
  ExpectInvalid(text_ + "x", "");
  ExpectInvalid(std::string(kMaxStateBytes + 1, ' '), "limit");
}

TEST_F(RegistryParseTest, ReadNamesTheFileOfABadState) {
  Spit(reg_->StatePath(), Edited([](auto& j) { j["extra"] = 1; }));
  auto r = reg_->Read();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Code::kInvalid);
  EXPECT_NE(r.error().message.find(reg_->StatePath()), std::string::npos);
  // A change refuses to start from it, too.
  auto p = reg_->Rollback("mlp", "prod");
  ASSERT_FALSE(p);
  EXPECT_EQ(p.error().code, Code::kInvalid);
}

TEST_F(RegistryParseTest, HistoryLinesAreStrict) {
  auto h = reg_->History();
  ASSERT_TRUE(h) << h.error().message;
  ASSERT_EQ(h->size(), 4u);
  const std::string line = SerializeHistoryEntry((*h)[2]);
  ASSERT_TRUE(ParseHistoryLine(line, "l"));
  auto edited = [&](const std::function<void(nlohmann::json&)>& edit) {
    nlohmann::json j = *core::ParseJson(line, {kMaxHistoryLineBytes}, "l");
    edit(j);
    return *core::CanonicalJson(j);
  };
  auto expect_invalid = [](const std::string& text, const std::string& needle) {
    auto r = ParseHistoryLine(text, "history.jsonl line 3");
    ASSERT_FALSE(r) << text;
    EXPECT_EQ(r.error().code, Code::kInvalid);
    EXPECT_NE(r.error().message.find(needle), std::string::npos) << r.error().message;
  };
  expect_invalid(edited([](auto& j) { j["who"] = "x"; }), "who");
  expect_invalid(edited([](auto& j) { j["seq"] = "3"; }), "seq");
  expect_invalid(edited([](auto& j) { j["action"] = "delete"; }), "action");
  expect_invalid(edited([](auto& j) { j["env"] = ""; }), "env");
  expect_invalid(edited([](auto& j) { j["strategy"] = "canary"; }), "strategy");
  expect_invalid(edited([](auto& j) { j.erase("to"); }), "to");
  expect_invalid(edited([](auto& j) { j["reason"] = "a\x1b[2Jb"; }), "reason");
  expect_invalid(edited([](auto& j) { j["time"] = "2026-01-31T12:00:00Z"; }), "time");
  expect_invalid(edited([](auto& j) { j["prev"] = "00"; }), "prev");
  expect_invalid(edited([](auto& j) { j["model"] = "../x"; }), "model");
  expect_invalid(line + " ", "");
  expect_invalid(std::string(kMaxHistoryLineBytes + 1, ' '), "limit");
}

TEST_F(RegistryParseTest, AnEditedHistoryBreaksTheChain) {
  const std::string path = reg_->dir() + "/history.jsonl";
  const std::string original = Slurp(path);
  // Rewrite line 2 as another valid, canonical line (only the reason changes).
  std::vector<std::string> lines;
  for (std::size_t at = 0, nl; (nl = original.find('\n', at)) != std::string::npos; at = nl + 1) {
    lines.push_back(original.substr(at, nl - at));
  }
  ASSERT_EQ(lines.size(), 4u);
  auto entry = ParseHistoryLine(lines[1], "l");
  ASSERT_TRUE(entry);
  entry->reason = "nothing to see";
  std::string edited;
  for (std::size_t i = 0; i < lines.size(); ++i) {
    edited += (i == 1 ? SerializeHistoryEntry(*entry) : lines[i]) + "\n";
  }
  // Keep the committed size equal, so only the chain can tell.
  auto st = *reg_->Read();
  st.history_bytes = edited.size();
  Spit(reg_->StatePath(), SerializeState(st));
  Spit(path, edited);
  auto h = reg_->History();
  ASSERT_FALSE(h);
  EXPECT_EQ(h.error().code, Code::kInvalid);
  EXPECT_NE(h.error().message.find("line 3"), std::string::npos) << h.error().message;
  EXPECT_NE(h.error().message.find("chain"), std::string::npos) << h.error().message;

  // Dropping a line is caught too (by seq and by the chain).
  std::string dropped = lines[0] + "\n" + lines[2] + "\n" + lines[3] + "\n";
  st.history_bytes = dropped.size();
  st.history_entries = 3;
  Spit(reg_->StatePath(), SerializeState(st));
  Spit(path, dropped);
  EXPECT_FALSE(reg_->History());
}

TEST_F(RegistryParseTest, UncommittedHistoryIsIgnoredThenCut) {
  const std::string path = reg_->dir() + "/history.jsonl";
  const auto committed = fs::file_size(path);
  {
    std::FILE* f = std::fopen(path.c_str(), "ab");
    std::fputs("{\"half a line", f);
    std::fclose(f);
  }
  auto h = reg_->History();
  ASSERT_TRUE(h) << h.error().message;
  EXPECT_EQ(h->size(), 4u);
  ASSERT_TRUE(reg_->Finalize("mlp", "prod"));
  auto after = reg_->History();
  ASSERT_TRUE(after) << after.error().message;
  EXPECT_EQ(after->size(), 5u);
  EXPECT_GT(fs::file_size(path), committed);
  EXPECT_EQ(fs::file_size(path), reg_->Read()->history_bytes);
}

TEST_F(RegistryParseTest, AShortenedHistoryIsRefused) {
  const std::string path = reg_->dir() + "/history.jsonl";
  ASSERT_EQ(::truncate(path.c_str(), 10), 0);
  EXPECT_EQ(reg_->History().error().code, Code::kInvalid);
  EXPECT_EQ(reg_->Finalize("mlp", "prod").error().code, Code::kInvalid);
}

// ---- crash safety -------------------------------------------------------------------------

// Runs `op` in a child with DLSYS_TEST_CRASH=spec. True if the child was killed by SIGKILL,
// false if it finished (and then it must have succeeded).
bool RunCrashing(const std::string& spec, const std::function<bool()>& op) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::setenv("DLSYS_TEST_CRASH", spec.c_str(), 1);
    core::ResetCrashPointsForTest();
    const bool ok = op();
    ::_exit(ok ? 0 : 3);
  }
  int status = 0;
  EXPECT_EQ(::waitpid(pid, &status, 0), pid);
  if (WIFSIGNALED(status)) {
    EXPECT_EQ(WTERMSIG(status), SIGKILL) << spec;
    return true;
  }
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << spec << ": status " << status;
  return false;
}

// A state with the push times blanked: two runs of one push differ only there.
std::string Comparable(State s) {
  for (auto& [model, versions] : s.versions) {
    for (auto& [version, rec] : versions) rec.pushed_at.clear();
  }
  return SerializeState(s);
}

void CopyTree(const std::string& from, const std::string& to) {
  fs::remove_all(to);
  fs::copy(from, to, fs::copy_options::recursive);
}

// Every file in the registry is one it should hold: no temporary copy, no unreferenced blob,
// no uncommitted history.
void ExpectNoJunk(const Registry& reg) {
  auto st = reg.Read();
  ASSERT_TRUE(st) << st.error().message;
  std::set<std::string> blobs;
  for (const auto& [m, vs] : st->versions) {
    for (const auto& [v, rec] : vs) blobs.insert(rec.digest.substr(7));
  }
  const auto top = Names(reg.dir());
  for (const auto& name : top) {
    EXPECT_TRUE(name == "registry.json" || name == "history.jsonl" || name == "lock" ||
                name == "blobs")
        << "junk: " << name;
  }
  const auto stored = Names(reg.dir() + "/blobs/sha256");
  EXPECT_EQ(std::set<std::string>(stored.begin(), stored.end()), blobs);
  EXPECT_EQ(fs::file_size(reg.dir() + "/history.jsonl"), st->history_bytes);
}

struct CrashCase {
  std::string name;
  std::function<void(RegistryTest&)> setup;  // builds the state before the operation
  std::function<bool(Registry&)> op;
  std::vector<std::string> points;
};

class RegistryCrashTest : public RegistryTest {
 protected:
  void Run(const CrashCase& c) {
    c.setup(*this);
    const std::string base = reg_->dir();
    auto before_state = reg_->Read();
    ASSERT_TRUE(before_state);
    const std::string before = Comparable(*before_state);
    const std::uint64_t n = before_state->history_entries;

    // The state after the operation, from a run without a crash.
    const std::string clean = dir_ / "clean";
    CopyTree(base, clean);
    auto clean_reg = *Registry::Open(clean, false);
    ASSERT_TRUE(c.op(clean_reg)) << c.name;
    const std::string after = Comparable(*clean_reg.Read());
    ASSERT_NE(before, after);

    std::vector<std::string> specs;
    for (const auto& p : c.points) specs.push_back(p);
    for (int i = 1; i <= 20; ++i) specs.push_back("*:" + std::to_string(i));
    int completed_at = 0;
    for (const auto& spec : specs) {
      SCOPED_TRACE(c.name + " crashing at " + spec);
      const std::string trial = dir_ / "trial";
      CopyTree(base, trial);
      auto reg = *Registry::Open(trial, false);
      const bool crashed = RunCrashing(spec, [&] { return c.op(reg); });
      auto st = reg.Read();
      ASSERT_TRUE(st) << st.error().message;
      const std::string now = Comparable(*st);
      EXPECT_TRUE(now == before || now == after) << now;
      auto h = reg.History();
      ASSERT_TRUE(h) << h.error().message;
      EXPECT_EQ(h->size(), now == before ? n : n + 1);
      if (!crashed) {
        EXPECT_EQ(now, after);
        if (spec.starts_with("*:")) {
          completed_at = std::stoi(spec.substr(2));
          break;
        }
      }
      // The next change succeeds and leaves nothing behind.
      PushOnto(reg);
      ExpectNoJunk(reg);
      auto h2 = reg.History();
      ASSERT_TRUE(h2) << h2.error().message;
    }
    // Every crash point, in order, then a run that completes.
    EXPECT_EQ(completed_at, static_cast<int>(c.points.size()) + 1) << c.name;
  }

  void PushOnto(Registry& reg) {
    const std::string a = Archive("7.7.7", "", "next");
    auto r = reg.Push(a, Trusting());
    ASSERT_TRUE(r) << r.error().message;
  }
};

TEST_F(RegistryCrashTest, Push) {
  Run({"push", [](RegistryTest& t) { t.PushOk("1.0.0"); },
       [this](Registry& r) { return r.Push(Archive("1.1.0"), Trusting()).has_value(); },
       {"deploy-blob-written", "deploy-blob-stored", "deploy-history-appended",
        "deploy-state-written", "deploy-committed"}});
}

TEST_F(RegistryCrashTest, Promote) {
  Run({"promote",
       [](RegistryTest& t) {
         t.PushOk("1.0.0");
         t.PushOk("1.1.0");
         ASSERT_TRUE(t.Promote("1.0.0", Strategy::kReplace));
       },
       [](Registry& r) {
         return r.Promote(Request("1.1.0", "prod", Strategy::kCanary, 10.0)).has_value();
       },
       {"deploy-history-appended", "deploy-state-written", "deploy-committed"}});
}

TEST_F(RegistryCrashTest, Finalize) {
  Run({"finalize",
       [](RegistryTest& t) {
         t.PushOk("1.0.0");
         t.PushOk("1.1.0");
         ASSERT_TRUE(t.Promote("1.0.0", Strategy::kReplace));
         ASSERT_TRUE(t.Promote("1.1.0", Strategy::kCanary, 10));
       },
       [](Registry& r) { return r.Finalize("mlp", "prod").has_value(); },
       {"deploy-history-appended", "deploy-state-written", "deploy-committed"}});
}

TEST_F(RegistryCrashTest, Rollback) {
  Run({"rollback",
       [](RegistryTest& t) {
         t.PushOk("1.0.0");
         t.PushOk("1.1.0");
         ASSERT_TRUE(t.Promote("1.0.0", Strategy::kReplace));
         ASSERT_TRUE(t.Promote("1.1.0", Strategy::kBlueGreen));
       },
       [](Registry& r) { return r.Rollback("mlp", "prod").has_value(); },
       {"deploy-history-appended", "deploy-state-written", "deploy-committed"}});
}

TEST_F(RegistryCrashTest, Remove) {
  Run({"remove",
       [](RegistryTest& t) {
         t.PushOk("1.0.0");
         t.PushOk("1.1.0");
       },
       [](Registry& r) { return r.Remove("mlp", "1.0.0", false).has_value(); },
       {"deploy-history-appended", "deploy-state-written", "deploy-committed",
        "deploy-blob-unlinked"}});
}

TEST(CrashPointTest, OnlyTheSelectedPointKills) {
  auto run = [](const char* spec, const std::vector<const char*>& points) {
    const pid_t pid = ::fork();
    if (pid == 0) {
      ::setenv("DLSYS_TEST_CRASH", spec, 1);
      core::ResetCrashPointsForTest();
      for (const char* p : points) core::CrashPoint(p);
      ::_exit(0);
    }
    int status = 0;
    ::waitpid(pid, &status, 0);
    return WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
  };
  EXPECT_TRUE(run("a", {"b", "a"}));
  EXPECT_FALSE(run("a:2", {"a", "b"}));
  EXPECT_TRUE(run("a:2", {"a", "b", "a"}));
  EXPECT_TRUE(run("*:3", {"a", "b", "c"}));
  EXPECT_FALSE(run("*:4", {"a", "b", "c"}));
  EXPECT_FALSE(run("a:0", {"a", "a"}));
  EXPECT_FALSE(run("a:x", {"a"}));
  EXPECT_FALSE(run("", {"a"}));
}

// ---- concurrency --------------------------------------------------------------------------

TEST_F(RegistryTest, ConcurrentChangesSerialize) {
  constexpr int kChildren = 8;
  std::vector<std::string> archives;
  for (int i = 0; i < kChildren; ++i) archives.push_back(Archive("1." + std::to_string(i) + ".0"));
  std::vector<pid_t> pids;
  for (int i = 0; i < kChildren; ++i) {
    const pid_t pid = ::fork();
    if (pid == 0) {
      auto reg = Registry::Open(reg_->dir(), false);
      bool ok = reg && reg->Push(archives[i], Trusting()).has_value();
      ok = ok && reg->Promote(Request("1." + std::to_string(i) + ".0", "env-" + std::to_string(i),
                                      Strategy::kReplace))
                     .has_value();
      ::_exit(ok ? 0 : 1);
    }
    pids.push_back(pid);
  }
  for (pid_t pid : pids) {
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  }
  auto st = reg_->Read();
  ASSERT_TRUE(st) << st.error().message;
  EXPECT_EQ(st->generation, 2u * kChildren);
  EXPECT_EQ(st->versions.at("mlp").size(), static_cast<std::size_t>(kChildren));
  EXPECT_EQ(st->environments.size(), static_cast<std::size_t>(kChildren));
  auto h = reg_->History();
  ASSERT_TRUE(h) << h.error().message;  // parses and the chain holds
  ASSERT_EQ(h->size(), 2u * kChildren);
  for (std::size_t i = 0; i < h->size(); ++i) EXPECT_EQ((*h)[i].seq, i + 1);
  ExpectNoJunk(*reg_);
}

}  // namespace
}  // namespace dlsys::deploy
