// Ed25519 signing keys (OpenSSL EVP), PEM files, key ids and DSSE envelopes.
//
// Key id: lower-case hex SHA-256 of the public key's DER SubjectPublicKeyInfo, i.e.
//   openssl pkey -pubin -in KEY.pub -outform DER | sha256sum
// Envelope: DSSE v1 (github.com/secure-systems-lab/dsse); the signature is over
//   PAE(type, body) = "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body
// with LEN as ASCII decimal byte counts.
#pragma once

#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"

namespace dlsys::signing {

// Limits on a signature envelope, which is read before anything in it is trusted.
inline constexpr std::size_t kMaxEnvelopeBytes = 8u << 20;  // base64 of a 4 MiB manifest, and more
// At most this many signatures: CheckEnvelope does at most one Ed25519 verification per
// signature, so this bounds the work an envelope can cause.
inline constexpr std::size_t kMaxSignatures = 8;
inline constexpr std::size_t kMaxPayloadTypeBytes = 256;

struct KeyHandle;  // wraps EVP_PKEY; defined in the .cpp

class PublicKey {
 public:
  // Parses a PEM "PUBLIC KEY" (SubjectPublicKeyInfo). kInvalid if not an Ed25519 public key.
  [[nodiscard]] static Result<PublicKey> FromPem(std::string_view pem);
  // kNotFound if missing; kInvalid as above (message names the path).
  [[nodiscard]] static Result<PublicKey> Load(const std::string& path);
  std::string Pem() const;
  const std::string& KeyId() const { return key_id_; }
  // True iff `signature` (64 raw bytes) is this key's Ed25519 signature of `message`.
  bool Verify(std::span<const std::byte> message, std::span<const std::byte> signature) const;

 private:
  std::shared_ptr<KeyHandle> key_;
  std::string key_id_;
  friend class PrivateKey;
};

class PrivateKey {
 public:
  [[nodiscard]] static Result<PrivateKey> Generate();
  // Parses a PEM "PRIVATE KEY" (PKCS#8, unencrypted). kInvalid if not an Ed25519 key.
  [[nodiscard]] static Result<PrivateKey> FromPem(std::string_view pem);
  [[nodiscard]] static Result<PrivateKey> Load(const std::string& path);
  // Writes `path` (PKCS#8 PEM, mode 0600) and `path`.pub (SPKI PEM, mode 0644) atomically.
  // kExists if either exists (nothing is written then).
  [[nodiscard]] Result<void> Save(const std::string& path) const;
  std::string Pem() const;  // never log this
  PublicKey Public() const;
  // 64-byte raw Ed25519 signature.
  [[nodiscard]] Result<std::string> Sign(std::span<const std::byte> message) const;

 private:
  std::shared_ptr<KeyHandle> key_;
};

// DSSE pre-authentication encoding.
std::string PreAuthEncoding(std::string_view payload_type, std::string_view payload);

struct Envelope {
  struct Signature {
    std::string keyid;  // 64 lower-case hex digits in a parsed envelope
    std::string sig;    // raw signature bytes (base64-decoded; 64 in a parsed envelope)
  };
  std::string payload_type;
  std::string payload;  // raw payload bytes (base64-decoded)
  std::vector<Signature> signatures;
};

// Builds a DSSE envelope signed by `key`, serialised as canonical JSON (RFC 8785)
// ({"payload":..,"payloadType":..,"signatures":[{"keyid":..,"sig":..}]}): exactly what
// ParseEnvelope accepts. kInvalid if the payload type is not UTF-8 or longer than
// kMaxPayloadTypeBytes, or the envelope would exceed kMaxEnvelopeBytes.
[[nodiscard]] Result<std::string> SignEnvelope(const PrivateKey& key, std::string_view payload_type,
                                               std::string_view payload);
// Parses an untrusted envelope strictly. kInvalid ("signature envelope: ...", naming the field
// or byte offset) unless: the text is at most kMaxEnvelopeBytes of strict JSON (UTF-8, no
// duplicate keys) and byte-for-byte canonical (RFC 8785); the object has exactly the keys
// payload, payloadType and signatures; payloadType is a string of at most kMaxPayloadTypeBytes;
// payload is canonical base64 (RFC 4648: standard alphabet, padded, no white space, zero
// padding bits); signatures is an array of at most kMaxSignatures objects with exactly keyid
// (64 lower-case hex digits, distinct across signatures) and sig (canonical base64 of exactly
// 64 bytes).
[[nodiscard]] Result<Envelope> ParseEnvelope(std::string_view json);

// Public keys trusted for verification, loaded from .pub files or directories of them.
class TrustStore {
 public:
  // A file is loaded as a public key; a directory contributes every *.pub file in it.
  // kNotFound if the path does not exist; kInvalid if a key file does not parse.
  [[nodiscard]] Result<void> Add(const std::string& path);
  void Add(PublicKey key);
  const PublicKey* Find(std::string_view key_id) const;
  bool empty() const { return keys_.empty(); }
  const std::vector<PublicKey>& keys() const { return keys_; }

 private:
  std::vector<PublicKey> keys_;
};

struct EnvelopeCheck {
  bool signed_by_trusted = false;
  std::string key_id;   // key id of the trusted signer, or of the first signature if none
  std::string problem;  // why not trusted: "no signatures", "key id … is not trusted",
                        // "signature by … does not verify"
};
// Checks the envelope's signatures against the store: the first signature that verifies over
// PAE(payload_type, payload) with the trusted key its keyid names makes it trusted. A signature
// is checked only against that one key (one Ed25519 verification at most per signature); one
// without a key id, or naming an untrusted key, is not checked at all.
EnvelopeCheck CheckEnvelope(const Envelope& envelope, const TrustStore& trust);

}  // namespace dlsys::signing
