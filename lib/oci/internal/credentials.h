// Registry credentials from the Docker and Podman auth files (docs/oci.md, "Credentials").
//
// Internal to lib/oci. A Credentials value holds secrets: it is never logged, printed or put
// in an error message, and its strings are wiped when it is destroyed.
#pragma once

#include <string>
#include <string_view>

#include "core/error.h"

namespace dlsys::oci::internal {

struct Credentials {
  std::string source;  // the auth file they came from ("" when none were found)
  std::string username;
  std::string password;
  std::string identity_token;  // an OAuth2 refresh token (docker login to some registries)

  Credentials() = default;
  Credentials(const Credentials&) = delete;
  Credentials& operator=(const Credentials&) = delete;
  Credentials(Credentials&&) = default;
  Credentials& operator=(Credentials&&) = default;
  ~Credentials();

  bool has_basic() const { return !username.empty() || !password.empty(); }
  bool empty() const { return !has_basic() && identity_token.empty(); }
};

// The credentials for `host` ("registry.example.com:5000") and `repository`.
// auth_file "-": none. A path: that file only (kNotFound if it is missing). "": the first of
// $REGISTRY_AUTH_FILE, $XDG_RUNTIME_DIR/containers/auth.json, $DOCKER_CONFIG/config.json,
// ~/.docker/config.json that has an entry for the host; missing files are skipped.
// kInvalid for a file that cannot be read or parsed or whose entry is malformed (naming the
// file and the key, never the secret); kUnavailable when the entry lives in a credential
// helper (credsStore/credHelpers), which is not supported, naming the helper.
[[nodiscard]] Result<Credentials> LoadCredentials(std::string_view host,
                                                  std::string_view repository,
                                                  const std::string& auth_file);

// The same lookup in one file's text (for tests); `path` names it in messages.
[[nodiscard]] Result<Credentials> CredentialsFromAuthJson(std::string_view text,
                                                          const std::string& path,
                                                          std::string_view host,
                                                          std::string_view repository, bool* found);

}  // namespace dlsys::oci::internal
