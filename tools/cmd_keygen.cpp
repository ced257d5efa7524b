// dlsys keygen: create an Ed25519 signing key pair.
#include <cstdio>

#include <nlohmann/json.hpp>

#include "cli.h"
#include "signing/keys.h"

namespace dlsys::cli {
namespace keygen_cmd {

struct Options {
  std::string out;
  bool json = false;
};

int Run(const Options& o) {
  auto key = signing::PrivateKey::Generate();
  if (!key) return ReportError(key.error());
  if (auto saved = key->Save(o.out); !saved) {
    return ReportError(std::move(saved.error()).Wrap("cannot write key '" + o.out + "'"));
  }
  const std::string key_id = key->Public().KeyId();
  if (o.json) {
    nlohmann::json j{{"private_key", o.out}, {"public_key", o.out + ".pub"}, {"key_id", key_id},
                     {"algorithm", "ed25519"}};
    std::printf("%s\n", j.dump().c_str());
  } else {
    std::printf("wrote private key %s (mode 0600; keep it secret)\n", o.out.c_str());
    std::printf("wrote public key  %s.pub (give it to verifiers: --trust %s.pub)\n", o.out.c_str(),
                o.out.c_str());
    std::printf("key id            %s\n", key_id.c_str());
  }
  return kExitOk;
}

}  // namespace keygen_cmd

void RegisterKeygen(CLI::App& app, RunFn& run) {
  auto o = std::make_shared<keygen_cmd::Options>();
  auto* sub = app.add_subcommand("keygen", "Create an Ed25519 signing key pair (KEY and KEY.pub)");
  sub->add_option("--out,-o", o->out, "path of the private key; the public key goes to PATH.pub")
      ->required();
  sub->add_flag("--json", o->json, "print the paths and key id as JSON");
  sub->footer(
      "Writes the private key as PKCS#8 PEM with mode 0600 and the public key as PEM next to it.\n"
      "Never overwrites an existing key. The key id is the SHA-256 of the public key (DER).\n\n"
      "Example:\n  dlsys keygen --out release.key\n  dlsys pack model.pt ... --key release.key");
  sub->callback([o, &run] { run = [o] { return keygen_cmd::Run(*o); }; });
}

}  // namespace dlsys::cli
