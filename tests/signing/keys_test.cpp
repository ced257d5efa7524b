#include "signing/keys.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "core/encoding.h"
#include "signing/digest.h"
#include "test_tmp.h"

namespace dlsys::signing {
namespace {

using core::AsBytes;
using dlsys::testing::TempDir;

// RFC 8032 section 7.1, TEST 1 (empty message) and TEST 2 (one byte, 0x72).
constexpr char kRfcSeed1[] = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
constexpr char kRfcPub1[] = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
constexpr char kRfcSig1[] =
    "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9"
    "b46bd25bf5f0595bbe24655141438e7a100b";
constexpr char kRfcSeed2[] = "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb";
constexpr char kRfcSig2[] =
    "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f1"
    "1d8c387b2eaeb4302aeeb00d291612bb0c00";

// DER prefixes of an Ed25519 PKCS#8 PrivateKeyInfo and SubjectPublicKeyInfo (RFC 8410).
constexpr char kPkcs8Prefix[] = "302e020100300506032b657004220420";
constexpr char kSpkiPrefix[] = "302a300506032b6570032100";

std::string FromHex(std::string_view hex) {
  std::string out;
  for (std::size_t i = 0; i + 1 < hex.size(); i += 2) {
    out.push_back(static_cast<char>(std::stoi(std::string(hex.substr(i, 2)), nullptr, 16)));
  }
  return out;
}

std::string ToHex(std::string_view bytes) { return core::HexEncode(AsBytes(bytes)); }

std::string PemOf(const std::string& label, const std::string& der) {
  std::string b64 = core::Base64Encode(AsBytes(der));
  std::string out = "-----BEGIN " + label + "-----\n";
  for (std::size_t i = 0; i < b64.size(); i += 64) out += b64.substr(i, 64) + "\n";
  return out + "-----END " + label + "-----\n";
}

std::string RfcPrivatePem(const char* seed_hex) {
  return PemOf("PRIVATE KEY", FromHex(kPkcs8Prefix) + FromHex(seed_hex));
}

void WriteText(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  ASSERT_TRUE(out.good()) << path;
}

std::string ReadText(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Runs a shell command and returns its stdout; sets *status to its exit status.
std::string RunCommand(const std::string& cmd, int* status) {
  FILE* pipe = popen(cmd.c_str(), "r");
  if (pipe == nullptr) {
    *status = -1;
    return {};
  }
  std::string out;
  char buf[4096];
  while (std::size_t n = fread(buf, 1, sizeof(buf), pipe)) out.append(buf, n);
  *status = pclose(pipe);
  return out;
}

unsigned ModeOf(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return 0;
  return st.st_mode & 07777;
}

PrivateKey NewKey() {
  auto key = PrivateKey::Generate();
  EXPECT_TRUE(key.has_value());
  return *std::move(key);
}

// ---------------------------------------------------------------------------------------------
// Keys, signatures, PEM

TEST(KeysTest, SignVerifyRoundTrip) {
  PrivateKey key = NewKey();
  const std::string msg = "the manifest bytes";
  auto sig = key.Sign(AsBytes(msg));
  ASSERT_TRUE(sig.has_value()) << sig.error().message;
  EXPECT_EQ(sig->size(), 64u);
  EXPECT_TRUE(key.Public().Verify(AsBytes(msg), AsBytes(*sig)));
}

TEST(KeysTest, FlippedBitInMessageFails) {
  PrivateKey key = NewKey();
  std::string msg = "the manifest bytes";
  auto sig = key.Sign(AsBytes(msg));
  ASSERT_TRUE(sig.has_value());
  msg[3] ^= 0x01;
  EXPECT_FALSE(key.Public().Verify(AsBytes(msg), AsBytes(*sig)));
}

TEST(KeysTest, FlippedBitInSignatureFails) {
  PrivateKey key = NewKey();
  const std::string msg = "the manifest bytes";
  auto sig = key.Sign(AsBytes(msg));
  ASSERT_TRUE(sig.has_value());
  for (std::size_t i : {0u, 31u, 32u, 63u}) {
    std::string bad = *sig;
    bad[i] ^= 0x80;
    EXPECT_FALSE(key.Public().Verify(AsBytes(msg), AsBytes(bad))) << "byte " << i;
  }
  EXPECT_FALSE(key.Public().Verify(AsBytes(msg), AsBytes(sig->substr(0, 63))));
  EXPECT_FALSE(key.Public().Verify(AsBytes(msg), AsBytes(*sig + "x")));
}

TEST(KeysTest, WrongKeyFails) {
  PrivateKey a = NewKey();
  PrivateKey b = NewKey();
  auto sig = a.Sign(AsBytes("m"));
  ASSERT_TRUE(sig.has_value());
  EXPECT_NE(a.Public().KeyId(), b.Public().KeyId());
  EXPECT_FALSE(b.Public().Verify(AsBytes("m"), AsBytes(*sig)));
}

TEST(KeysTest, Rfc8032Vectors) {
  auto key1 = PrivateKey::FromPem(RfcPrivatePem(kRfcSeed1));
  ASSERT_TRUE(key1.has_value()) << key1.error().message;
  auto sig1 = key1->Sign(AsBytes(""));
  ASSERT_TRUE(sig1.has_value());
  EXPECT_EQ(ToHex(*sig1), kRfcSig1);
  EXPECT_TRUE(key1->Public().Verify(AsBytes(""), AsBytes(*sig1)));

  auto key2 = PrivateKey::FromPem(RfcPrivatePem(kRfcSeed2));
  ASSERT_TRUE(key2.has_value());
  auto sig2 = key2->Sign(AsBytes("\x72"));
  ASSERT_TRUE(sig2.has_value());
  EXPECT_EQ(ToHex(*sig2), kRfcSig2);
}

TEST(KeysTest, PublicPemAndKeyIdOfKnownKey) {
  auto key = PrivateKey::FromPem(RfcPrivatePem(kRfcSeed1));
  ASSERT_TRUE(key.has_value());
  const std::string spki_der = FromHex(kSpkiPrefix) + FromHex(kRfcPub1);
  EXPECT_EQ(key->Public().Pem(), PemOf("PUBLIC KEY", spki_der));
  EXPECT_EQ(key->Public().KeyId(), Sha256Hex(AsBytes(spki_der)));
}

TEST(KeysTest, PemRoundTrip) {
  PrivateKey key = NewKey();
  const std::string priv_pem = key.Pem();
  EXPECT_NE(priv_pem.find("-----BEGIN PRIVATE KEY-----"), std::string::npos);
  auto again = PrivateKey::FromPem(priv_pem);
  ASSERT_TRUE(again.has_value()) << again.error().message;
  EXPECT_EQ(again->Pem(), priv_pem);
  EXPECT_EQ(again->Public().KeyId(), key.Public().KeyId());

  const std::string pub_pem = key.Public().Pem();
  EXPECT_NE(pub_pem.find("-----BEGIN PUBLIC KEY-----"), std::string::npos);
  auto pub = PublicKey::FromPem(pub_pem);
  ASSERT_TRUE(pub.has_value()) << pub.error().message;
  EXPECT_EQ(pub->KeyId(), key.Public().KeyId());
  EXPECT_EQ(pub->Pem(), pub_pem);
  auto sig = key.Sign(AsBytes("x"));
  ASSERT_TRUE(sig.has_value());
  EXPECT_TRUE(pub->Verify(AsBytes("x"), AsBytes(*sig)));
}

TEST(KeysTest, KeyIdMatchesOpensslCli) {
  TempDir dir;
  PrivateKey key = NewKey();
  const std::string pub_path = dir / "k.pub";
  WriteText(pub_path, key.Public().Pem());
  int status = 0;
  std::string out =
      RunCommand("openssl pkey -pubin -in '" + pub_path + "' -outform DER | sha256sum", &status);
  ASSERT_EQ(status, 0);
  ASSERT_GE(out.size(), 64u);
  EXPECT_EQ(key.Public().KeyId(), out.substr(0, 64));
  EXPECT_EQ(key.Public().KeyId().size(), 64u);
}

TEST(KeysTest, GarbagePemFails) {
  for (const char* text :
       {"", "hello", "-----BEGIN PUBLIC KEY-----\n@@@@\n-----END PUBLIC KEY-----\n",
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"}) {
    auto pub = PublicKey::FromPem(text);
    ASSERT_FALSE(pub.has_value()) << text;
    EXPECT_EQ(pub.error().code, Code::kInvalid);
    auto priv = PrivateKey::FromPem(text);
    ASSERT_FALSE(priv.has_value()) << text;
    EXPECT_EQ(priv.error().code, Code::kInvalid);
  }
}

TEST(KeysTest, PrivatePemIsNotAPublicKeyAndErrorHidesIt) {
  PrivateKey key = NewKey();
  const std::string pem = key.Pem();
  auto pub = PublicKey::FromPem(pem);
  ASSERT_FALSE(pub.has_value());
  EXPECT_EQ(pub.error().code, Code::kInvalid);
  // The base64 body of the private key must not leak into the message.
  const std::string body = pem.substr(pem.find('\n') + 1, 40);
  EXPECT_EQ(pub.error().message.find(body), std::string::npos);
  for (const auto& d : pub.error().details) EXPECT_EQ(d.find(body), std::string::npos);
}

TEST(KeysTest, NonEd25519KeysAreRejected) {
  TempDir dir;
  struct Case {
    const char* algorithm;
    const char* options;
    const char* type_name;
  };
  for (const Case& c : {Case{"RSA", "-pkeyopt rsa_keygen_bits:1024", "RSA"},
                        Case{"EC", "-pkeyopt ec_paramgen_curve:P-256", "EC"}}) {
    const std::string key_path = dir / (std::string(c.algorithm) + ".key");
    const std::string pub_path = key_path + ".pub";
    const std::string cmd = std::string("openssl genpkey -algorithm ") + c.algorithm + " " +
                            c.options + " -out '" + key_path +
                            "' 2>/dev/null && openssl pkey -in '" + key_path + "' -pubout -out '" +
                            pub_path + "' 2>/dev/null";
    ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;

    auto priv = PrivateKey::Load(key_path);
    ASSERT_FALSE(priv.has_value()) << c.algorithm;
    EXPECT_EQ(priv.error().code, Code::kInvalid);
    EXPECT_NE(priv.error().message.find(c.type_name), std::string::npos) << priv.error().message;
    EXPECT_NE(priv.error().message.find(key_path), std::string::npos) << priv.error().message;

    auto pub = PublicKey::Load(pub_path);
    ASSERT_FALSE(pub.has_value()) << c.algorithm;
    EXPECT_EQ(pub.error().code, Code::kInvalid);
    EXPECT_NE(pub.error().message.find(c.type_name), std::string::npos) << pub.error().message;
  }
}

TEST(KeysTest, EncryptedPrivateKeyIsRejectedWithoutPrompting) {
  TempDir dir;
  const std::string path = dir / "enc.key";
  const std::string cmd = "openssl genpkey -algorithm ED25519 -aes256 -pass pass:secret -out '" +
                          path + "' 2>/dev/null";
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  auto key = PrivateKey::Load(path);
  ASSERT_FALSE(key.has_value());
  EXPECT_EQ(key.error().code, Code::kInvalid);
  EXPECT_NE(key.error().message.find("encrypted"), std::string::npos) << key.error().message;
}

TEST(KeysTest, LoadsKeyMadeByOpensslCli) {
  TempDir dir;
  const std::string path = dir / "cli.key";
  const std::string cmd = "openssl genpkey -algorithm ED25519 -out '" + path +
                          "' 2>/dev/null && openssl pkey -in '" + path + "' -pubout -out '" + path +
                          ".pub' 2>/dev/null";
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  auto key = PrivateKey::Load(path);
  ASSERT_TRUE(key.has_value()) << key.error().message;
  auto pub = PublicKey::Load(path + ".pub");
  ASSERT_TRUE(pub.has_value()) << pub.error().message;
  EXPECT_EQ(pub->KeyId(), key->Public().KeyId());
}

TEST(KeysTest, LoadMissingIsNotFound) {
  TempDir dir;
  auto priv = PrivateKey::Load(dir / "nope.key");
  ASSERT_FALSE(priv.has_value());
  EXPECT_EQ(priv.error().code, Code::kNotFound);
  auto pub = PublicKey::Load(dir / "nope.pub");
  ASSERT_FALSE(pub.has_value());
  EXPECT_EQ(pub.error().code, Code::kNotFound);
  EXPECT_NE(pub.error().message.find("nope.pub"), std::string::npos);
}

TEST(KeysTest, SaveWritesModesAndLoadsBack) {
  TempDir dir;
  const std::string path = dir / "signing.key";
  PrivateKey key = NewKey();
  auto saved = key.Save(path);
  ASSERT_TRUE(saved.has_value()) << saved.error().message;
  EXPECT_EQ(ModeOf(path), 0600u);
  EXPECT_EQ(ModeOf(path + ".pub"), 0644u);
  EXPECT_EQ(ReadText(path), key.Pem());
  EXPECT_EQ(ReadText(path + ".pub"), key.Public().Pem());

  auto loaded = PrivateKey::Load(path);
  ASSERT_TRUE(loaded.has_value()) << loaded.error().message;
  auto pub = PublicKey::Load(path + ".pub");
  ASSERT_TRUE(pub.has_value()) << pub.error().message;
  EXPECT_EQ(pub->KeyId(), key.Public().KeyId());
  auto sig = loaded->Sign(AsBytes("m"));
  ASSERT_TRUE(sig.has_value());
  EXPECT_TRUE(pub->Verify(AsBytes("m"), AsBytes(*sig)));
}

TEST(KeysTest, SaveRefusesToOverwritePrivateKey) {
  TempDir dir;
  const std::string path = dir / "signing.key";
  WriteText(path, "existing");
  auto saved = NewKey().Save(path);
  ASSERT_FALSE(saved.has_value());
  EXPECT_EQ(saved.error().code, Code::kExists);
  EXPECT_EQ(ReadText(path), "existing");
  EXPECT_FALSE(std::filesystem::exists(path + ".pub"));
}

TEST(KeysTest, SaveRefusesToOverwritePublicKey) {
  TempDir dir;
  const std::string path = dir / "signing.key";
  WriteText(path + ".pub", "existing");
  auto saved = NewKey().Save(path);
  ASSERT_FALSE(saved.has_value());
  EXPECT_EQ(saved.error().code, Code::kExists);
  EXPECT_EQ(ReadText(path + ".pub"), "existing");
  EXPECT_FALSE(std::filesystem::exists(path));
}

TEST(KeysTest, SaveErrorDoesNotContainKeyMaterial) {
  TempDir dir;
  PrivateKey key = NewKey();
  auto saved = key.Save(dir / "missing-dir/k.key");
  ASSERT_FALSE(saved.has_value());
  const std::string pem = key.Pem();
  const std::string body = pem.substr(pem.find('\n') + 1, 40);
  EXPECT_EQ(saved.error().message.find(body), std::string::npos);
  EXPECT_FALSE(std::filesystem::exists(dir / "missing-dir"));
}

// ---------------------------------------------------------------------------------------------
// DSSE

TEST(DsseTest, PreAuthEncodingVector) {
  EXPECT_EQ(PreAuthEncoding("http://example.com/HelloWorld", "hello world"),
            "DSSEv1 29 http://example.com/HelloWorld 11 hello world");
  EXPECT_EQ(PreAuthEncoding("", ""), "DSSEv1 0  0 ");
  // Lengths are bytes, not characters.
  EXPECT_EQ(PreAuthEncoding("t", "\xC3\xA9"), "DSSEv1 1 t 2 \xC3\xA9");
  EXPECT_EQ(PreAuthEncoding("t", std::string("a\0b", 3)), std::string("DSSEv1 1 t 3 a\0b", 16));
}

TEST(DsseTest, EnvelopeIsCanonicalJson) {
  auto key = PrivateKey::FromPem(RfcPrivatePem(kRfcSeed1));
  ASSERT_TRUE(key.has_value());
  auto json = SignEnvelope(*key, "application/vnd.dlsys.manifest+json", "hi");
  ASSERT_TRUE(json.has_value()) << json.error().message;
  auto sig = key->Sign(AsBytes(PreAuthEncoding("application/vnd.dlsys.manifest+json", "hi")));
  ASSERT_TRUE(sig.has_value());
  EXPECT_EQ(*json,
            "{\"payload\":\"aGk=\",\"payloadType\":\"application/vnd.dlsys.manifest+json\","
            "\"signatures\":[{\"keyid\":\"" +
                key->Public().KeyId() + "\",\"sig\":\"" + core::Base64Encode(AsBytes(*sig)) +
                "\"}]}");
}

TEST(DsseTest, EnvelopeRoundTrip) {
  PrivateKey key = NewKey();
  const std::string payload("{\"a\":1}\0\xff binary", 17);
  auto json = SignEnvelope(key, "application/x-test", payload);
  ASSERT_TRUE(json.has_value()) << json.error().message;
  auto env = ParseEnvelope(*json);
  ASSERT_TRUE(env.has_value()) << env.error().message;
  EXPECT_EQ(env->payload_type, "application/x-test");
  EXPECT_EQ(env->payload, payload);
  ASSERT_EQ(env->signatures.size(), 1u);
  EXPECT_EQ(env->signatures[0].keyid, key.Public().KeyId());
  EXPECT_TRUE(key.Public().Verify(AsBytes(PreAuthEncoding(env->payload_type, env->payload)),
                                  AsBytes(env->signatures[0].sig)));
}

TEST(DsseTest, OpensslCliVerifiesOurSignature) {
  TempDir dir;
  PrivateKey key = NewKey();
  const std::string pae = PreAuthEncoding("application/x-test", "payload bytes");
  auto sig = key.Sign(AsBytes(pae));
  ASSERT_TRUE(sig.has_value());
  WriteText(dir / "k.pub", key.Public().Pem());
  WriteText(dir / "pae.bin", pae);
  WriteText(dir / "sig.bin", *sig);
  const std::string cmd = "openssl pkeyutl -verify -pubin -inkey '" + (dir / "k.pub") +
                          "' -rawin -in '" + (dir / "pae.bin") + "' -sigfile '" +
                          (dir / "sig.bin") + "' >/dev/null 2>&1";
  EXPECT_EQ(std::system(cmd.c_str()), 0);
  std::string bad = *sig;
  bad[10] ^= 0x01;
  WriteText(dir / "sig.bin", bad);
  EXPECT_NE(std::system(cmd.c_str()), 0);
}

// A well-formed key id and signature for hand-written envelopes.
const std::string kKeyA(64, 'a');
const std::string kKeyB(64, 'b');
const std::string kSig64 = core::Base64Encode(AsBytes(std::string(64, '\0')));

std::string Sig(const std::string& keyid, const std::string& sig = kSig64) {
  return R"({"keyid":")" + keyid + R"(","sig":")" + sig + R"("})";
}
std::string Env(const std::string& signatures,
                const std::string& payload = "aGk=", const std::string& type = "t") {
  return R"({"payload":")" + payload + R"(","payloadType":")" + type + R"(","signatures":[)" +
         signatures + "]}";
}

struct MalformedCase {
  std::string json;
  std::string expected;  // substring of the message
};

class ParseEnvelopeMalformedTest : public ::testing::TestWithParam<MalformedCase> {};

TEST_P(ParseEnvelopeMalformedTest, IsInvalidAndNamesTheProblem) {
  auto env = ParseEnvelope(GetParam().json);
  ASSERT_FALSE(env.has_value()) << GetParam().json;
  EXPECT_EQ(env.error().code, Code::kInvalid);
  EXPECT_NE(env.error().message.find(GetParam().expected), std::string::npos)
      << env.error().message;
  EXPECT_EQ(env.error().message.rfind("signature envelope", 0), 0u) << env.error().message;
}

INSTANTIATE_TEST_SUITE_P(
    Fields, ParseEnvelopeMalformedTest,
    ::testing::Values(
        MalformedCase{"", "not valid JSON"}, MalformedCase{"{\"payload\":", "not valid JSON"},
        MalformedCase{"[]", "not a JSON object"}, MalformedCase{"\"x\"", "not a JSON object"},
        MalformedCase{R"({"payload":"","signatures":[]})", "field 'payloadType' is missing"},
        MalformedCase{R"({"payload":"","payloadType":5,"signatures":[]})",
                      "field 'payloadType' is not a string"},
        MalformedCase{R"({"payloadType":"t","signatures":[]})", "field 'payload' is missing"},
        MalformedCase{R"({"payload":null,"payloadType":"t","signatures":[]})",
                      "field 'payload' is not a string"},
        MalformedCase{R"({"payload":"a!==","payloadType":"t","signatures":[]})",
                      "field 'payload' is not valid base64"},
        MalformedCase{R"({"payload":"abc","payloadType":"t","signatures":[]})",
                      "field 'payload' is not valid base64"},
        MalformedCase{R"({"payload":"","payloadType":"t"})", "field 'signatures' is missing"},
        MalformedCase{R"({"payload":"","payloadType":"t","signatures":{}})",
                      "field 'signatures' is not an array"},
        MalformedCase{R"({"payload":"","payloadType":"t","signatures":[5]})",
                      "field 'signatures[0]' is not an object"},
        MalformedCase{Env(R"({"keyid":")" + kKeyA + R"("})"),
                      "field 'signatures[0].sig' is missing"},
        MalformedCase{Env(R"({"keyid":")" + kKeyA + R"(","sig":1})"),
                      "field 'signatures[0].sig' is not a string"},
        MalformedCase{Env(Sig(kKeyA) + "," + Sig(kKeyB, "@@")),
                      "field 'signatures[1].sig' is not valid base64"},
        MalformedCase{Env(R"({"sig":")" + kSig64 + R"("})"),
                      "field 'signatures[0].keyid' is missing"},
        MalformedCase{Env(R"({"keyid":7,"sig":")" + kSig64 + R"("})"),
                      "field 'signatures[0].keyid' is not a string"},
        // Exact key sets.
        MalformedCase{R"({"payload":"","payloadType":"t","signatures":[],"x":1})",
                      "field 'x' is not a known field (known: payload, payloadType, signatures)"},
        MalformedCase{Env(R"({"keyid":")" + kKeyA + R"(","note":"","sig":")" + kSig64 + R"("})"),
                      "field 'signatures[0].note' is not a known field (known: keyid, sig)"},
        // Key ids: 64 lower-case hex, distinct.
        MalformedCase{Env(Sig("")), "field 'signatures[0].keyid' is not a key id"},
        MalformedCase{Env(Sig(std::string(64, 'A'))),
                      "field 'signatures[0].keyid' is not a key id"},
        MalformedCase{Env(Sig(std::string(63, 'a'))),
                      "field 'signatures[0].keyid' is not a key id"},
        MalformedCase{Env(Sig(kKeyA) + "," + Sig(kKeyA)),
                      "field 'signatures[1].keyid': key aaaaaaaaaaaaaaaa\xE2\x80\xA6 signs twice"},
        // Signatures: canonical base64 of exactly 64 bytes.
        MalformedCase{Env(Sig(kKeyA, "AA==")), "field 'signatures[0].sig' holds 1 bytes"},
        MalformedCase{Env(Sig(kKeyA, core::Base64Encode(AsBytes(std::string(65, 'x'))))),
                      "holds 65 bytes; an Ed25519 signature has 64"},
        MalformedCase{Env(Sig(kKeyA, kSig64.substr(0, 86))),  // padding dropped
                      "field 'signatures[0].sig' is not valid base64"},
        MalformedCase{Env(Sig(kKeyA, kSig64.substr(0, 85) + "B==")),  // non-zero padding bits
                      "field 'signatures[0].sig' is not valid base64"},
        MalformedCase{Env(Sig(kKeyA), "aGk=", std::string(kMaxPayloadTypeBytes + 1, 't')),
                      "field 'payloadType' is longer than 256 bytes"}));

TEST(DsseTest, ParseRefusesNonCanonicalBase64Payload) {
  for (const char* payload : {"aGl=", "aG k=", "aGk", "aGk=\\n", "aGk=="}) {
    auto env = ParseEnvelope(Env("", payload));
    ASSERT_FALSE(env.has_value()) << payload;
    EXPECT_NE(env.error().message.find("field 'payload' is not valid base64"), std::string::npos)
        << env.error().message;
  }
}

TEST(DsseTest, ParseAcceptsNoSignatures) {
  auto unsigned_env = ParseEnvelope(R"({"payload":"","payloadType":"t","signatures":[]})");
  ASSERT_TRUE(unsigned_env.has_value()) << unsigned_env.error().message;
  EXPECT_TRUE(unsigned_env->signatures.empty());
  auto env = ParseEnvelope(Env(Sig(kKeyA) + "," + Sig(kKeyB)));
  ASSERT_TRUE(env.has_value()) << env.error().message;
  EXPECT_EQ(env->payload, "hi");
  ASSERT_EQ(env->signatures.size(), 2u);
  EXPECT_EQ(env->signatures[1].keyid, kKeyB);
  EXPECT_EQ(env->signatures[1].sig, std::string(64, '\0'));
}

TEST(DsseTest, ParseRefusesTooManySignatures) {
  std::string sigs;
  for (std::size_t i = 0; i <= kMaxSignatures; ++i) {
    sigs += (i ? "," : "") + Sig(std::string(63, 'a') + "0123456789"[i]);
  }
  auto env = ParseEnvelope(Env(sigs));
  ASSERT_FALSE(env.has_value());
  EXPECT_EQ(env.error().message,
            "signature envelope: field 'signatures' has 9 signatures, more than the limit of 8");
  // Hundreds of thousands of keyless signatures are refused before any of them is looked at.
  std::string many;
  for (int i = 0; i < 300000; ++i)
    many += i ? R"(,{"keyid":"","sig":""})" : R"({"keyid":"","sig":""})";
  env = ParseEnvelope(Env(many));
  ASSERT_FALSE(env.has_value());
  EXPECT_NE(env.error().message.find("more than"), std::string::npos) << env.error().message;
}

TEST(DsseTest, ParseRefusesNonCanonicalEnvelopes) {
  const std::string canonical = Env(Sig(kKeyA));
  ASSERT_TRUE(ParseEnvelope(canonical).has_value());
  for (const std::string& text :
       {" " + canonical, canonical + "\n",
        R"({"payloadType":"t","payload":"aGk=","signatures":[)" + Sig(kKeyA) + "]}",
        Env(R"({"sig":")" + kSig64 + R"(","keyid":")" + kKeyA + R"("})"),
        Env(Sig(kKeyA), "aGk=", "\\u0074"),
        R"({"payload": "aGk=","payloadType":"t","signatures":[)" + Sig(kKeyA) + "]}"}) {
    const auto byte =
        std::mismatch(text.begin(), text.end(), canonical.begin(), canonical.end()).first -
        text.begin();
    auto env = ParseEnvelope(text);
    ASSERT_FALSE(env.has_value()) << text;
    EXPECT_EQ(
        env.error().message,
        "signature envelope is not in canonical form (RFC 8785) at byte " + std::to_string(byte))
        << text;
  }
  // Duplicate keys are refused by the JSON reader, before anything else.
  auto dup = ParseEnvelope(R"({"payload":"aGk=","payload":"","payloadType":"t","signatures":[]})");
  ASSERT_FALSE(dup.has_value());
  EXPECT_EQ(dup.error().message, "signature envelope: duplicate key 'payload' at byte 18");
}

TEST(DsseTest, SignEnvelopeWritesWhatParseAccepts) {
  PrivateKey key = NewKey();
  auto json = SignEnvelope(key, "application/vnd.dlsys.manifest.v1+json", "{\"a\":1}");
  ASSERT_TRUE(json.has_value()) << json.error().message;
  auto env = ParseEnvelope(*json);
  ASSERT_TRUE(env.has_value()) << env.error().message;
  EXPECT_FALSE(SignEnvelope(key, std::string(kMaxPayloadTypeBytes + 1, 't'), "x").has_value());
  auto bad_type = SignEnvelope(key, "caf\xC3", "x");
  ASSERT_FALSE(bad_type.has_value());
  EXPECT_EQ(bad_type.error().code, Code::kInvalid);
}

TEST(DsseTest, ParseRefusesHugeInput) {
  std::string huge =
      R"({"payload":")" + std::string((64u << 20), 'A') + R"(","payloadType":"t","signatures":[]})";
  auto env = ParseEnvelope(huge);
  ASSERT_FALSE(env.has_value());
  EXPECT_EQ(env.error().code, Code::kInvalid);
  EXPECT_NE(env.error().message.find("larger"), std::string::npos) << env.error().message;
}

// ---------------------------------------------------------------------------------------------
// TrustStore and CheckEnvelope

TEST(TrustStoreTest, AddDirectoryLoadsEveryPubFileOnce) {
  TempDir dir;
  PrivateKey a = NewKey();
  PrivateKey b = NewKey();
  ASSERT_TRUE(a.Save(dir / "a.key").has_value());
  ASSERT_TRUE(b.Save(dir / "b.key").has_value());
  WriteText(dir / "copy-of-a.pub", a.Public().Pem());  // same key id: kept once
  WriteText(dir / "README.txt", "not a key");
  TrustStore store;
  auto added = store.Add(dir.path().string());
  ASSERT_TRUE(added.has_value()) << added.error().message;
  EXPECT_EQ(store.keys().size(), 2u);
  ASSERT_NE(store.Find(a.Public().KeyId()), nullptr);
  ASSERT_NE(store.Find(b.Public().KeyId()), nullptr);
  EXPECT_EQ(store.Find(b.Public().KeyId())->KeyId(), b.Public().KeyId());
  EXPECT_EQ(store.Find("0000"), nullptr);
}

TEST(TrustStoreTest, AddFile) {
  TempDir dir;
  PrivateKey a = NewKey();
  ASSERT_TRUE(a.Save(dir / "a.key").has_value());
  TrustStore store;
  EXPECT_TRUE(store.empty());
  auto added = store.Add(dir / "a.key.pub");
  ASSERT_TRUE(added.has_value()) << added.error().message;
  EXPECT_FALSE(store.empty());
  ASSERT_EQ(store.keys().size(), 1u);
  EXPECT_EQ(store.keys()[0].KeyId(), a.Public().KeyId());
  ASSERT_TRUE(store.Add(dir / "a.key.pub").has_value());
  EXPECT_EQ(store.keys().size(), 1u);
}

TEST(TrustStoreTest, MissingPathIsNotFound) {
  TempDir dir;
  TrustStore store;
  auto added = store.Add(dir / "nope");
  ASSERT_FALSE(added.has_value());
  EXPECT_EQ(added.error().code, Code::kNotFound);
  EXPECT_NE(added.error().message.find("nope"), std::string::npos);
}

TEST(TrustStoreTest, DirectoryWithoutKeysIsInvalid) {
  TempDir dir;
  PrivateKey a = NewKey();
  WriteText(dir / "a.key", a.Pem());  // a private key only: no .pub
  TrustStore store;
  auto added = store.Add(dir.path().string());
  ASSERT_FALSE(added.has_value());
  EXPECT_EQ(added.error().code, Code::kInvalid);
  EXPECT_TRUE(store.empty());
}

TEST(TrustStoreTest, BadPubFileIsInvalidAndNamed) {
  TempDir dir;
  PrivateKey a = NewKey();
  ASSERT_TRUE(a.Save(dir / "a.key").has_value());
  WriteText(dir / "broken.pub", "garbage");
  TrustStore store;
  auto added = store.Add(dir.path().string());
  ASSERT_FALSE(added.has_value());
  EXPECT_EQ(added.error().code, Code::kInvalid);
  EXPECT_NE(added.error().message.find("broken.pub"), std::string::npos) << added.error().message;
  EXPECT_TRUE(store.empty());
}

class CheckEnvelopeTest : public ::testing::Test {
 protected:
  void SetUp() override { store_.Add(trusted_.Public()); }
  Envelope SignedBy(const PrivateKey& key, const std::string& payload) {
    auto json = SignEnvelope(key, "application/x-test", payload);
    EXPECT_TRUE(json.has_value());
    auto env = ParseEnvelope(*json);
    EXPECT_TRUE(env.has_value());
    return *env;
  }
  PrivateKey trusted_ = PrivateKey::Generate().value();
  PrivateKey stranger_ = PrivateKey::Generate().value();
  TrustStore store_;
};

TEST_F(CheckEnvelopeTest, TrustedSignature) {
  EnvelopeCheck check = CheckEnvelope(SignedBy(trusted_, "manifest"), store_);
  EXPECT_TRUE(check.signed_by_trusted) << check.problem;
  EXPECT_EQ(check.key_id, trusted_.Public().KeyId());
  EXPECT_TRUE(check.problem.empty());
}

TEST_F(CheckEnvelopeTest, UntrustedKey) {
  EnvelopeCheck check = CheckEnvelope(SignedBy(stranger_, "manifest"), store_);
  EXPECT_FALSE(check.signed_by_trusted);
  EXPECT_EQ(check.key_id, stranger_.Public().KeyId());
  EXPECT_EQ(check.problem, "signed by key " + stranger_.Public().KeyId().substr(0, 16) +
                               "\xE2\x80\xA6 which is not trusted (pass --trust with its .pub)");
}

TEST_F(CheckEnvelopeTest, EmptyTrustStore) {
  EnvelopeCheck check = CheckEnvelope(SignedBy(trusted_, "manifest"), TrustStore());
  EXPECT_FALSE(check.signed_by_trusted);
  EXPECT_NE(check.problem.find("not trusted"), std::string::npos);
}

TEST_F(CheckEnvelopeTest, TamperedPayload) {
  Envelope env = SignedBy(trusted_, "manifest");
  env.payload[0] ^= 0x01;
  EnvelopeCheck check = CheckEnvelope(env, store_);
  EXPECT_FALSE(check.signed_by_trusted);
  EXPECT_EQ(check.problem,
            "signature by key " + trusted_.Public().KeyId().substr(0, 16) +
                "\xE2\x80\xA6 does not verify: the manifest or signature was altered");
}

TEST_F(CheckEnvelopeTest, TamperedPayloadType) {
  Envelope env = SignedBy(trusted_, "manifest");
  env.payload_type = "application/x-other";
  EXPECT_FALSE(CheckEnvelope(env, store_).signed_by_trusted);
}

TEST_F(CheckEnvelopeTest, NoSignatures) {
  Envelope env = SignedBy(trusted_, "manifest");
  env.signatures.clear();
  EnvelopeCheck check = CheckEnvelope(env, store_);
  EXPECT_FALSE(check.signed_by_trusted);
  EXPECT_EQ(check.problem, "archive is not signed");
}

TEST_F(CheckEnvelopeTest, SecondSignatureTrusted) {
  Envelope env = SignedBy(stranger_, "manifest");
  Envelope other = SignedBy(trusted_, "manifest");
  env.signatures.push_back(other.signatures[0]);
  EnvelopeCheck check = CheckEnvelope(env, store_);
  EXPECT_TRUE(check.signed_by_trusted) << check.problem;
  EXPECT_EQ(check.key_id, trusted_.Public().KeyId());
}

// A signature is checked only against the trusted key its keyid names: no "try every key".
TEST_F(CheckEnvelopeTest, SignatureWithoutKeyIdIsNotChecked) {
  Envelope env = SignedBy(trusted_, "manifest");
  env.signatures[0].keyid.clear();
  EnvelopeCheck check = CheckEnvelope(env, store_);
  EXPECT_FALSE(check.signed_by_trusted);
  EXPECT_EQ(check.problem,
            "signed without a key id (dlsys checks a signature only against the trusted key its "
            "keyid names)");
}

TEST_F(CheckEnvelopeTest, TrustedSignatureUnderAnotherKeysIdDoesNotCount) {
  // The trusted key's signature, labelled with a different (also trusted) key's id: that key
  // is the only one tried, and it does not verify.
  PrivateKey other = NewKey();
  store_.Add(other.Public());
  Envelope env = SignedBy(trusted_, "manifest");
  env.signatures[0].keyid = other.Public().KeyId();
  EnvelopeCheck check = CheckEnvelope(env, store_);
  EXPECT_FALSE(check.signed_by_trusted);
  EXPECT_NE(check.problem.find("does not verify"), std::string::npos) << check.problem;
}

TEST_F(CheckEnvelopeTest, ForgedKeyIdDoesNotVerify) {
  // A stranger's signature claiming the trusted key's id.
  Envelope env = SignedBy(stranger_, "manifest");
  env.signatures[0].keyid = trusted_.Public().KeyId();
  EnvelopeCheck check = CheckEnvelope(env, store_);
  EXPECT_FALSE(check.signed_by_trusted);
  EXPECT_NE(check.problem.find("does not verify"), std::string::npos);
}

TEST_F(CheckEnvelopeTest, HostileKeyIdIsSanitised) {
  Envelope env = SignedBy(stranger_, "manifest");
  env.signatures[0].keyid = "\x1b[31mevil\n";
  EnvelopeCheck check = CheckEnvelope(env, store_);
  EXPECT_FALSE(check.signed_by_trusted);
  EXPECT_EQ(check.problem.find('\x1b'), std::string::npos) << check.problem;
  EXPECT_EQ(check.problem.find('\n'), std::string::npos) << check.problem;
}

}  // namespace
}  // namespace dlsys::signing
