// dlsys keygen: create an Ed25519 signing key pair.
#include <cstdio>

#include "cli.h"
#include "log/log.h"
#include "render.h"
#include "signing/keys.h"

namespace dlsys::cli {
namespace keygen_cmd {

struct Options {
  std::string out;
  bool json = false;
};

int Run(const Options& o) {
  auto key = signing::PrivateKey::Generate();
  if (!key) return ReportError(key.error(), o.json);
  if (auto saved = key->Save(o.out); !saved) {
    return ReportError(std::move(saved.error()).Wrap("cannot write key '" + o.out + "'"), o.json);
  }
  const std::string key_id = key->Public().KeyId();
  log::Info("keygen.done", "created key pair " + o.out)
      .Str("file.path", o.out)
      .Str("key_id", key_id)
      .Emit();
  const std::string out =
      o.json ? RenderKeygenJson(o.out, key_id) : RenderKeygenText(o.out, key_id);
  std::fwrite(out.data(), 1, out.size(), stdout);
  return kExitOk;
}

}  // namespace keygen_cmd

void RegisterKeygen(CLI::App& app, RunFn& run) {
  auto o = std::make_shared<keygen_cmd::Options>();
  auto* sub = app.add_subcommand("keygen", "Create an Ed25519 signing key pair (KEY and KEY.pub)");
  sub->add_option("--out,-o", o->out, "path of the private key; the public key goes to PATH.pub")
      ->required()
      ->check(NonEmpty("the path of the private key to create"));
  sub->add_flag("--json", o->json,
                "print the paths and key id as JSON (schemas/keygen.schema.json), also on failure");
  sub->footer(
      "Writes the private key as PKCS#8 PEM with mode 0600 and the public key as PEM next to it.\n"
      "Never overwrites an existing key. The key id is the SHA-256 of the public key (DER).\n\n"
      "Example:\n  dlsys keygen --out release.key\n  dlsys pack model.pt ... --key release.key");
  sub->callback([o, &run] { run = [o] { return keygen_cmd::Run(*o); }; });
}

}  // namespace dlsys::cli
