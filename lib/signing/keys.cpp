#include "signing/keys.h"

#include <openssl/crypto.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <algorithm>
#include <climits>
#include <filesystem>
#include <set>
#include <system_error>
#include <utility>

#include "core/encoding.h"
#include "core/file.h"
#include "core/internal/json.h"
#include "core/text.h"
#include "signing/digest.h"
#include "signing/internal/openssl.h"

namespace dlsys::signing {

struct KeyHandle {
  internal::EvpPkeyPtr pkey;
};

namespace {

using internal::BioPtr;
using internal::EvpMdCtxPtr;
using internal::EvpPkeyPtr;
using internal::TakeOpenSslErrors;

constexpr std::size_t kEd25519SignatureBytes = 64;
constexpr std::size_t kMaxKeyFileBytes = 1u << 20;
// Root object, signatures array, signature objects: 3 levels. The value budget (4 + 3 per
// signature) leaves room for the kMaxSignatures check to name the problem.
constexpr core::JsonLimits kEnvelopeLimits{kMaxEnvelopeBytes, 3, 4 + 3 * 8 * kMaxSignatures};

// Overwrites a string holding key material before it is freed.
class Cleansed {
 public:
  explicit Cleansed(std::string& s) : s_(s) {}
  ~Cleansed() {
    if (!s_.empty()) OPENSSL_cleanse(s_.data(), s_.size());
  }
  Cleansed(const Cleansed&) = delete;
  Cleansed& operator=(const Cleansed&) = delete;

 private:
  std::string& s_;
};

// Encrypted keys are refused; without this callback OpenSSL would prompt on the terminal.
int NoPassword(char*, int, int, void*) { return -1; }

Result<BioPtr> MemoryBioOver(std::string_view pem) {
  if (pem.find("-----BEGIN ") == std::string_view::npos) {
    return Fail(Code::kInvalid, "no PEM block ('-----BEGIN ...-----') found; it is not a PEM key");
  }
  if (pem.size() > kMaxKeyFileBytes || pem.size() > INT_MAX) {
    return Fail(Code::kInvalid, "key text is larger than " + std::to_string(kMaxKeyFileBytes) +
                                    " bytes; it is not a PEM key");
  }
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (!bio) return Fail(Code::kInternal, "cannot create a memory BIO: " + TakeOpenSslErrors());
  return bio;
}

// kInvalid unless the key is Ed25519, naming the type found.
Result<void> RequireEd25519(const EVP_PKEY* pkey) {
  if (EVP_PKEY_get_id(pkey) == EVP_PKEY_ED25519) return {};
  const char* name = EVP_PKEY_get0_type_name(pkey);
  return Fail(Code::kInvalid, std::string("the key is of type ") + (name ? name : "unknown") +
                                  ", but dlsys signs only with Ed25519 keys");
}

// Reads what a memory BIO holds, or "" when writing to it failed.
std::string BioContents(BIO* bio) {
  char* data = nullptr;
  long len = BIO_get_mem_data(bio, &data);
  if (len <= 0 || data == nullptr) return {};
  return std::string(data, static_cast<std::size_t>(len));
}

// The SubjectPublicKeyInfo PEM of any key (works for private keys too).
Result<std::string> PublicPem(EVP_PKEY* pkey) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_PUBKEY(bio.get(), pkey) != 1) {
    return Fail(Code::kInternal, "cannot encode the public key: " + TakeOpenSslErrors());
  }
  return BioContents(bio.get());
}

Result<std::string> PrivatePem(EVP_PKEY* pkey) {
  // A secure-memory BIO is cleansed when freed.
  BioPtr bio(BIO_new(BIO_s_secmem()));
  if (!bio ||
      PEM_write_bio_PrivateKey(bio.get(), pkey, nullptr, nullptr, 0, nullptr, nullptr) != 1) {
    return Fail(Code::kInternal, "cannot encode the private key: " + TakeOpenSslErrors());
  }
  return BioContents(bio.get());
}

// Lower-case hex SHA-256 of the DER SubjectPublicKeyInfo.
Result<std::string> ComputeKeyId(EVP_PKEY* pkey) {
  unsigned char* der = nullptr;
  int len = i2d_PUBKEY(pkey, &der);
  if (len <= 0 || der == nullptr) {
    return Fail(Code::kInternal, "cannot encode the public key as DER: " + TakeOpenSslErrors());
  }
  std::string id = Sha256Hex(std::as_bytes(std::span(der, static_cast<std::size_t>(len))));
  OPENSSL_free(der);
  return id;
}

// A public-only copy of an Ed25519 key, so a PublicKey never holds private material.
Result<EvpPkeyPtr> PublicOnly(EVP_PKEY* pkey) {
  unsigned char raw[32];
  std::size_t len = sizeof(raw);
  if (EVP_PKEY_get_raw_public_key(pkey, raw, &len) != 1) {
    return Fail(Code::kInternal, "cannot read the public key: " + TakeOpenSslErrors());
  }
  EvpPkeyPtr pub(EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nullptr, raw, len));
  if (!pub) return Fail(Code::kInternal, "cannot build the public key: " + TakeOpenSslErrors());
  return pub;
}

// At most the first 16 characters of a key id, made safe to print (ids in envelopes are
// untrusted input).
std::string ShortKeyId(std::string_view id) {
  std::string out(id.substr(0, 16));
  for (char& c : out) {
    const bool ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
    if (!ok) c = '?';
  }
  if (id.size() > 16) out += "\xE2\x80\xA6";  // "…"
  return out;
}

Result<std::string> ReadKeyFile(const std::string& path) {
  return core::ReadFile(path, kMaxKeyFileBytes);  // its errors name the path
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// PublicKey

Result<PublicKey> PublicKey::FromPem(std::string_view pem) {
  DLSYS_ASSIGN_OR_RETURN(BioPtr bio, MemoryBioOver(pem));
  EvpPkeyPtr pkey(PEM_read_bio_PUBKEY(bio.get(), nullptr, NoPassword, nullptr));
  if (!pkey) {
    return Fail(Code::kInvalid, "not a PEM public key (" + TakeOpenSslErrors() +
                                    "); expected a '-----BEGIN PUBLIC KEY-----' block");
  }
  DLSYS_TRY(RequireEd25519(pkey.get()));
  PublicKey key;
  DLSYS_ASSIGN_OR_RETURN(key.key_id_, ComputeKeyId(pkey.get()));
  key.key_ = std::make_shared<KeyHandle>(KeyHandle{std::move(pkey)});
  return key;
}

Result<PublicKey> PublicKey::Load(const std::string& path) {
  DLSYS_ASSIGN_OR_RETURN(std::string pem, ReadKeyFile(path));
  auto key = FromPem(pem);
  if (!key) return tl::unexpected(std::move(key).error().Wrap("public key '" + path + "'"));
  return key;
}

std::string PublicKey::Pem() const {
  if (!key_) return {};
  auto pem = PublicPem(key_->pkey.get());
  if (!pem) internal::ThrowOutOfMemory();
  return *std::move(pem);
}

bool PublicKey::Verify(std::span<const std::byte> message,
                       std::span<const std::byte> signature) const {
  if (!key_ || signature.size() != kEd25519SignatureBytes) return false;
  EvpMdCtxPtr ctx(EVP_MD_CTX_new());
  // Ed25519 is one-shot: no digest, the whole message goes to EVP_DigestVerify.
  const bool ok =
      ctx && EVP_DigestVerifyInit(ctx.get(), nullptr, nullptr, nullptr, key_->pkey.get()) == 1 &&
      EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(signature.data()),
                       signature.size(), reinterpret_cast<const unsigned char*>(message.data()),
                       message.size()) == 1;
  ERR_clear_error();  // a bad signature leaves entries in the queue
  return ok;
}

// ---------------------------------------------------------------------------------------------
// PrivateKey

Result<PrivateKey> PrivateKey::Generate() {
  EvpPkeyPtr pkey(EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519"));
  if (!pkey) {
    return Fail(Code::kInternal, "cannot generate an Ed25519 key: " + TakeOpenSslErrors());
  }
  PrivateKey key;
  key.key_ = std::make_shared<KeyHandle>(KeyHandle{std::move(pkey)});
  return key;
}

Result<PrivateKey> PrivateKey::FromPem(std::string_view pem) {
  if (pem.find("-----BEGIN ENCRYPTED PRIVATE KEY-----") != std::string_view::npos) {
    ERR_clear_error();
    return Fail(Code::kInvalid,
                "the private key is encrypted; dlsys needs an unencrypted PKCS#8 key (keep it "
                "in a file readable only by you)");
  }
  DLSYS_ASSIGN_OR_RETURN(BioPtr bio, MemoryBioOver(pem));
  EvpPkeyPtr pkey(PEM_read_bio_PrivateKey(bio.get(), nullptr, NoPassword, nullptr));
  if (!pkey) {
    return Fail(Code::kInvalid, "not a PEM private key (" + TakeOpenSslErrors() +
                                    "); expected a '-----BEGIN PRIVATE KEY-----' block");
  }
  DLSYS_TRY(RequireEd25519(pkey.get()));
  PrivateKey key;
  key.key_ = std::make_shared<KeyHandle>(KeyHandle{std::move(pkey)});
  return key;
}

Result<PrivateKey> PrivateKey::Load(const std::string& path) {
  DLSYS_ASSIGN_OR_RETURN(std::string pem, ReadKeyFile(path));
  Cleansed cleanse(pem);
  auto key = FromPem(pem);
  if (!key) return tl::unexpected(std::move(key).error().Wrap("private key '" + path + "'"));
  return key;
}

Result<void> PrivateKey::Save(const std::string& path) const {
  if (!key_) return Fail(Code::kUsage, "cannot save an empty private key");
  const std::string pub_path = path + ".pub";
  for (const std::string& p : {path, pub_path}) {
    std::error_code ec;
    if (std::filesystem::exists(std::filesystem::symlink_status(p, ec))) {
      return Fail(Code::kExists, "'" + p + "' already exists; refusing to overwrite a key");
    }
  }
  DLSYS_ASSIGN_OR_RETURN(std::string pub_pem, PublicPem(key_->pkey.get()));
  DLSYS_ASSIGN_OR_RETURN(std::string priv_pem, PrivatePem(key_->pkey.get()));
  Cleansed cleanse(priv_pem);
  DLSYS_TRY(core::WriteFileAtomic(path, priv_pem, /*overwrite=*/false, 0600));
  if (auto written = core::WriteFileAtomic(pub_path, pub_pem, /*overwrite=*/false, 0644);
      !written) {
    std::error_code ec;
    std::filesystem::remove(path, ec);  // leave no private key without its public half
    return written;
  }
  return {};
}

std::string PrivateKey::Pem() const {
  if (!key_) return {};
  auto pem = PrivatePem(key_->pkey.get());
  if (!pem) internal::ThrowOutOfMemory();
  return *std::move(pem);
}

PublicKey PrivateKey::Public() const {
  PublicKey pub;
  if (!key_) return pub;
  auto pkey = PublicOnly(key_->pkey.get());
  if (!pkey) internal::ThrowOutOfMemory();
  auto id = ComputeKeyId(pkey->get());
  if (!id) internal::ThrowOutOfMemory();
  pub.key_id_ = *std::move(id);
  pub.key_ = std::make_shared<KeyHandle>(KeyHandle{*std::move(pkey)});
  return pub;
}

Result<std::string> PrivateKey::Sign(std::span<const std::byte> message) const {
  if (!key_) return Fail(Code::kUsage, "cannot sign with an empty private key");
  EvpMdCtxPtr ctx(EVP_MD_CTX_new());
  std::string sig(kEd25519SignatureBytes, '\0');
  std::size_t sig_len = sig.size();
  if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, nullptr, nullptr, key_->pkey.get()) != 1 ||
      EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(sig.data()), &sig_len,
                     reinterpret_cast<const unsigned char*>(message.data()), message.size()) != 1) {
    return Fail(Code::kInternal, "cannot sign: " + TakeOpenSslErrors());
  }
  sig.resize(sig_len);
  return sig;
}

// ---------------------------------------------------------------------------------------------
// DSSE envelopes

std::string PreAuthEncoding(std::string_view payload_type, std::string_view payload) {
  std::string out = "DSSEv1 ";
  out += std::to_string(payload_type.size());
  out += ' ';
  out += payload_type;
  out += ' ';
  out += std::to_string(payload.size());
  out += ' ';
  out += payload;
  return out;
}

Result<std::string> SignEnvelope(const PrivateKey& key, std::string_view payload_type,
                                 std::string_view payload) {
  if (payload_type.size() > kMaxPayloadTypeBytes) {
    return Fail(Code::kInvalid, "cannot sign: the payload type is longer than " +
                                    std::to_string(kMaxPayloadTypeBytes) + " bytes");
  }
  const std::string pae = PreAuthEncoding(payload_type, payload);
  DLSYS_ASSIGN_OR_RETURN(std::string sig, key.Sign(core::AsBytes(pae)));
  const nlohmann::json envelope = {
      {"payload", core::Base64Encode(core::AsBytes(payload))},
      {"payloadType", std::string(payload_type)},
      {"signatures", nlohmann::json::array({{{"keyid", key.Public().KeyId()},
                                             {"sig", core::Base64Encode(core::AsBytes(sig))}}})},
  };
  auto text = core::CanonicalJson(envelope);
  // Only the payload type can hold text that JSON cannot carry.
  if (!text) return Fail(Code::kInvalid, "cannot sign: the payload type is not valid UTF-8");
  if (text->size() > kMaxEnvelopeBytes) {
    return Fail(Code::kInvalid,
                "cannot sign: the envelope would be " + std::to_string(text->size()) +
                    " bytes, more than the limit of " + std::to_string(kMaxEnvelopeBytes));
  }
  return text;
}

namespace {

using Json = nlohmann::json;

tl::unexpected<Error> EnvelopeError(const std::string& what) {
  return Fail(Code::kInvalid, "signature envelope: " + what);
}

// The object's keys are exactly `keys`.
Result<void> ExactKeys(const Json& obj, const std::string& where,
                       std::initializer_list<const char*> keys) {
  for (const auto& item : obj.items()) {
    const std::string& k = item.key();
    if (std::none_of(keys.begin(), keys.end(), [&](const char* key) { return k == key; })) {
      std::string list;
      for (const char* key : keys) list += (list.empty() ? "" : ", ") + std::string(key);
      return EnvelopeError("field '" + where + core::Truncate(core::TerminalSafe(k), 64) +
                           "' is not a known field (known: " + list + ")");
    }
  }
  for (const char* key : keys) {
    if (!obj.contains(key)) return EnvelopeError("field '" + where + key + "' is missing");
  }
  return {};
}

Result<std::string> StringField(const Json& obj, const std::string& key, const std::string& name) {
  const Json& v = obj.at(key);  // ExactKeys made sure it is there
  if (!v.is_string()) return EnvelopeError("field '" + name + "' is not a string");
  return v.get<std::string>();
}

// Canonical base64 (RFC 4648 section 4): padded, no white space, zero padding bits, so one
// byte string has one encoding and the envelope one canonical form.
Result<std::string> Base64Field(const Json& obj, const std::string& key, const std::string& name) {
  DLSYS_ASSIGN_OR_RETURN(std::string text, StringField(obj, key, name));
  auto decoded = core::Base64Decode(text);
  if (!decoded || core::Base64Encode(core::AsBytes(*decoded)) != text) {
    return EnvelopeError("field '" + name +
                         "' is not valid base64 (RFC 4648: standard alphabet, padded, canonical)");
  }
  return *std::move(decoded);
}

bool IsKeyId(const std::string& s) {
  return s.size() == 64 && std::all_of(s.begin(), s.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

}  // namespace

Result<Envelope> ParseEnvelope(std::string_view json) {
  if (json.size() > kMaxEnvelopeBytes) {
    return Fail(Code::kInvalid, "signature envelope is larger than the limit of " +
                                    std::to_string(kMaxEnvelopeBytes) + " bytes");
  }
  DLSYS_ASSIGN_OR_RETURN(Json doc, core::ParseJson(json, kEnvelopeLimits, "signature envelope"));
  if (!doc.is_object()) return EnvelopeError("not a JSON object");
  DLSYS_TRY(ExactKeys(doc, "", {"payload", "payloadType", "signatures"}));
  Envelope env;
  DLSYS_ASSIGN_OR_RETURN(env.payload_type, StringField(doc, "payloadType", "payloadType"));
  if (env.payload_type.size() > kMaxPayloadTypeBytes) {
    return EnvelopeError("field 'payloadType' is longer than " +
                         std::to_string(kMaxPayloadTypeBytes) + " bytes");
  }
  DLSYS_ASSIGN_OR_RETURN(env.payload, Base64Field(doc, "payload", "payload"));
  const Json& sigs = doc.at("signatures");
  if (!sigs.is_array()) return EnvelopeError("field 'signatures' is not an array");
  if (sigs.size() > kMaxSignatures) {
    return EnvelopeError("field 'signatures' has " + std::to_string(sigs.size()) +
                         " signatures, more than the limit of " + std::to_string(kMaxSignatures));
  }
  std::set<std::string> keyids;
  for (std::size_t i = 0; i < sigs.size(); ++i) {
    const Json& entry = sigs[i];
    const std::string name = "signatures[" + std::to_string(i) + "]";
    if (!entry.is_object()) return EnvelopeError("field '" + name + "' is not an object");
    DLSYS_TRY(ExactKeys(entry, name + ".", {"keyid", "sig"}));
    Envelope::Signature sig;
    DLSYS_ASSIGN_OR_RETURN(sig.keyid, StringField(entry, "keyid", name + ".keyid"));
    if (!IsKeyId(sig.keyid)) {
      return EnvelopeError("field '" + name +
                           ".keyid' is not a key id (64 lower-case hex digits: the SHA-256 of "
                           "the public key's DER)");
    }
    if (!keyids.insert(sig.keyid).second) {
      return EnvelopeError("field '" + name + ".keyid': key " + ShortKeyId(sig.keyid) +
                           " signs twice");
    }
    DLSYS_ASSIGN_OR_RETURN(sig.sig, Base64Field(entry, "sig", name + ".sig"));
    if (sig.sig.size() != kEd25519SignatureBytes) {
      return EnvelopeError("field '" + name + ".sig' holds " + std::to_string(sig.sig.size()) +
                           " bytes; an Ed25519 signature has " +
                           std::to_string(kEd25519SignatureBytes));
    }
    env.signatures.push_back(std::move(sig));
  }
  // Fields first (their messages are more specific), then the exact bytes.
  auto canonical = core::CanonicalJson(doc);
  if (!canonical) return EnvelopeError("not in canonical form: " + canonical.error().message);
  if (*canonical != json) {
    const auto at = static_cast<std::size_t>(
        std::mismatch(json.begin(), json.end(), canonical->begin(), canonical->end()).first -
        json.begin());
    return Fail(Code::kInvalid, "signature envelope is not in canonical form (RFC 8785) at byte " +
                                    std::to_string(at));
  }
  return env;
}

// ---------------------------------------------------------------------------------------------
// TrustStore

Result<void> TrustStore::Add(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::file_status status = fs::status(path, ec);
  if (!fs::exists(status)) {
    if (ec && ec != std::errc::no_such_file_or_directory) {
      return Fail(Code::kInvalid, "cannot read trusted key path '" + path + "': " + ec.message());
    }
    return Fail(Code::kNotFound, "trusted key path '" + path + "' does not exist");
  }
  if (!fs::is_directory(status)) {
    DLSYS_ASSIGN_OR_RETURN(PublicKey key, PublicKey::Load(path));
    Add(std::move(key));
    return {};
  }
  std::vector<std::string> files;
  for (fs::directory_iterator it(path, ec), end; !ec && it != end; it.increment(ec)) {
    if (it->path().extension() != ".pub") continue;
    std::error_code type_ec;
    if (it->is_regular_file(type_ec)) files.push_back(it->path().string());
  }
  if (ec) {
    return Fail(Code::kInvalid,
                "cannot list trusted key directory '" + path + "': " + ec.message());
  }
  if (files.empty()) {
    return Fail(Code::kInvalid, "trusted key directory '" + path +
                                    "' contains no .pub files; pass a directory of public keys");
  }
  std::sort(files.begin(), files.end());
  // Load all first so a bad file leaves the store unchanged.
  std::vector<PublicKey> loaded;
  for (const std::string& file : files) {
    DLSYS_ASSIGN_OR_RETURN(PublicKey key, PublicKey::Load(file));
    loaded.push_back(std::move(key));
  }
  for (PublicKey& key : loaded) Add(std::move(key));
  return {};
}

void TrustStore::Add(PublicKey key) {
  if (key.KeyId().empty() || Find(key.KeyId()) != nullptr) return;
  keys_.push_back(std::move(key));
}

const PublicKey* TrustStore::Find(std::string_view key_id) const {
  for (const PublicKey& key : keys_) {
    if (key.KeyId() == key_id) return &key;
  }
  return nullptr;
}

EnvelopeCheck CheckEnvelope(const Envelope& envelope, const TrustStore& trust) {
  EnvelopeCheck check;
  if (envelope.signatures.empty()) {
    check.problem = "archive is not signed";
    return check;
  }
  check.key_id = envelope.signatures.front().keyid;
  const std::string pae = PreAuthEncoding(envelope.payload_type, envelope.payload);
  const auto message = core::AsBytes(pae);
  std::string untrusted_problem;
  std::string tampered_problem;  // a trusted key that does not verify outranks an unknown key
  for (const Envelope::Signature& sig : envelope.signatures) {
    // Only the key the signature names is tried: one verification at most per signature.
    const PublicKey* key = sig.keyid.empty() ? nullptr : trust.Find(sig.keyid);
    if (key == nullptr) {
      if (untrusted_problem.empty()) {
        untrusted_problem = sig.keyid.empty()
                                ? "signed without a key id (dlsys checks a signature only "
                                  "against the trusted key its keyid names)"
                                : "signed by key " + ShortKeyId(sig.keyid) +
                                      " which is not trusted (pass --trust with its .pub)";
      }
      continue;
    }
    if (key->Verify(message, core::AsBytes(sig.sig))) {
      check.signed_by_trusted = true;
      check.key_id = key->KeyId();
      check.problem.clear();
      return check;
    }
    if (tampered_problem.empty()) {
      tampered_problem = "signature by key " + ShortKeyId(sig.keyid) +
                         " does not verify: the manifest or signature was altered";
    }
  }
  check.problem = tampered_problem.empty() ? untrusted_problem : tampered_problem;
  return check;
}

}  // namespace dlsys::signing
