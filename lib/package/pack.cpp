#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <future>
#include <map>
#include <memory>
#include <optional>
#include <set>

#include "archive/archive.h"
#include "core/encoding.h"
#include "core/file.h"
#include "core/test_hook.h"
#include "hw/probe.h"
#include "hw/requirements.h"
#include "package/internal/measure.h"
#include "package/package.h"
#include "runtime/runtime.h"
#include "signing/digest.h"
#include "signing/keys.h"

namespace dlsys::package {
namespace {

constexpr std::size_t kWriteChunkBytes = 8u << 20;

std::string Rfc3339(std::int64_t epoch) {
  std::time_t t = static_cast<std::time_t>(epoch);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

// A payload entry: bytes either mapped from disk or owned (heap-stable across moves).
struct Payload {
  std::string path;
  std::span<const std::byte> bytes;
  std::shared_ptr<const std::string> owned;
  signing::FileDigest digest;
};

Payload Owned(std::string path, std::string bytes) {
  auto owned = std::make_shared<const std::string>(std::move(bytes));
  auto span = core::AsBytes(*owned);
  return Payload{std::move(path), span, std::move(owned), signing::DigestBytes(span)};
}

constexpr int kLatencyRuns = 5;

struct LoadCheck {
  runtime::ModelSummary summary;
  // Golden outputs per example, in the order the model returned them.
  std::vector<std::vector<runtime::Tensor>> outputs;
  // Kept for the latency measurement, which waits until hashing no longer competes for cores.
  std::unique_ptr<runtime::Model> model;
  // Peak anonymous RSS growth over loading + the first example's forward pass (when measured).
  std::optional<std::uint64_t> peak_memory_bytes;
};

std::vector<runtime::Tensor> ExampleInputs(const manifest::SpecExample& example) {
  std::vector<runtime::Tensor> inputs;
  for (const auto& t : example.inputs) {
    runtime::Tensor in;
    in.name = t.tensor.name;
    in.dtype = *runtime::ParseDType(t.tensor.dtype);
    in.shape = t.tensor.shape;
    const auto* p = reinterpret_cast<const std::byte*>(t.bytes.data());
    in.data.assign(p, p + t.bytes.size());
    inputs.push_back(std::move(in));
  }
  return inputs;
}

// Loads the model and runs every example (the golden outputs). With `measure`, samples the
// peak anonymous memory of loading + the first forward pass (loading alone without examples).
Result<LoadCheck> RunLoadCheck(std::span<const std::byte> model_bytes, const manifest::Spec& spec,
                               bool measure) {
  DLSYS_ASSIGN_OR_RETURN(runtime::Runtime * rt, runtime::GetRuntime());
  // Inputs are converted before sampling starts: they are the caller's, not the model's.
  std::vector<std::vector<runtime::Tensor>> inputs;
  for (const auto& example : spec.examples) inputs.push_back(ExampleInputs(example));
  std::optional<internal::MemorySampler> sampler;
  if (measure) sampler.emplace();
  DLSYS_ASSIGN_OR_RETURN(auto model, rt->Load(model_bytes, runtime::LoadOptions{}));
  LoadCheck check;
  check.summary = model->Summary();
  const auto& methods = check.summary.methods;
  if (std::none_of(methods.begin(), methods.end(),
                   [&](const auto& m) { return m.name == spec.entry_method; })) {
    std::string names;
    for (const auto& m : methods) names += (names.empty() ? "" : ", ") + m.name;
    return Fail(Code::kInvalid, "the model has no method '" + spec.entry_method + "' (it has: " +
                                    names + "); set entry_point.method in dlsys.yaml");
  }
  for (std::size_t e = 0; e < spec.examples.size(); ++e) {
    auto outputs = model->Run(spec.entry_method, inputs[e]);
    if (!outputs) {
      return tl::unexpected(
          std::move(outputs.error()).Wrap("example '" + spec.examples[e].name + "'"));
    }
    check.outputs.push_back(std::move(*outputs));
    if (sampler && e == 0) check.peak_memory_bytes = sampler->Stop();
  }
  if (sampler) check.peak_memory_bytes = sampler->Stop();  // no examples: loading only
  check.model = std::move(model);
  return check;
}

// What this machine measured: weights, peak memory, and the median forward latency of the
// first example over kLatencyRuns runs (its golden run in RunLoadCheck was the warm-up).
Result<hw::Measured> Measure(const LoadCheck& check, const manifest::Spec& spec) {
  hw::Measured measured;
  measured.peak_memory_bytes = check.peak_memory_bytes.value_or(0);
  measured.weights_bytes = hw::WeightBytes(check.summary);
  measured.machine = hw::LocalCpuModel();
  if (spec.examples.empty()) return measured;
  const std::vector<runtime::Tensor> inputs = ExampleInputs(spec.examples[0]);
  auto median_ms = internal::MedianLatencyMs(*check.model, spec.entry_method, inputs, kLatencyRuns);
  if (!median_ms) {
    return tl::unexpected(
        std::move(median_ms.error()).Wrap("example '" + spec.examples[0].name + "' (latency run)"));
  }
  measured.forward_latency_ms = *median_ms;
  measured.forward_runs = kLatencyRuns;
  measured.example = spec.examples[0].name;
  return measured;
}

Result<void> CheckExampleInputs(const manifest::Spec& spec) {
  for (const auto& example : spec.examples) {
    for (const auto& t : example.inputs) {
      if (spec.inputs.empty()) break;
      auto it = std::find_if(spec.inputs.begin(), spec.inputs.end(),
                             [&](const auto& d) { return d.name == t.tensor.name; });
      if (it == spec.inputs.end()) {
        return Fail(Code::kInvalid, "example '" + example.name + "' has input '" + t.tensor.name +
                                        "', which is not among the declared inputs");
      }
      if (it->dtype != t.tensor.dtype || !manifest::ShapeFits(it->shape, t.tensor.shape)) {
        return Fail(Code::kInvalid, "example '" + example.name + "' input '" + t.tensor.name +
                                        "' is " + t.tensor.dtype + " " +
                                        manifest::ShapeText(t.tensor.shape) +
                                        ", but the declared input is " + it->dtype + " " +
                                        manifest::ShapeText(it->shape));
      }
    }
  }
  return {};
}

// The one rule for naming outputs (runtime.h, Model::Run): a tensor, tuple or list returns
// output0..N-1 and is matched to the declared outputs by position; a Dict[str, Tensor] returns
// its keys in the dict's order and is matched by name. Returns the declared tensor of each
// returned one, in the model's order (empty when nothing is declared).
Result<std::vector<const manifest::TensorSpec*>> MatchOutputs(
    const std::vector<manifest::TensorSpec>& declared, const std::vector<runtime::Tensor>& outs,
    const std::string& example) {
  std::vector<const manifest::TensorSpec*> match;
  if (declared.empty()) return match;
  if (declared.size() != outs.size()) {
    return Fail(Code::kInvalid, "example '" + example + "': the model returned " +
                                    std::to_string(outs.size()) + " outputs, dlsys.yaml declares " +
                                    std::to_string(declared.size()));
  }
  bool positional = true;
  for (std::size_t k = 0; k < outs.size(); ++k) {
    positional = positional && outs[k].name == "output" + std::to_string(k);
  }
  for (std::size_t k = 0; k < outs.size(); ++k) {
    if (positional) {
      match.push_back(&declared[k]);
      continue;
    }
    auto it = std::find_if(declared.begin(), declared.end(),
                           [&](const manifest::TensorSpec& d) { return d.name == outs[k].name; });
    if (it == declared.end()) {
      std::string names;
      for (const auto& d : declared) names += (names.empty() ? "" : ", ") + d.name;
      return Fail(Code::kInvalid, "example '" + example + "': the model returns a dict with key '" +
                                      outs[k].name +
                                      "', which dlsys.yaml does not declare (it "
                                      "declares " +
                                      names + "); dict outputs are matched by name");
    }
    match.push_back(&*it);
  }
  return match;
}

// manifest::CheckPathSet (the rule verify applies) on sorted names chosen by the caller: a
// collision is a usage error of pack.
Result<void> CheckNamesDoNotCollide(const std::vector<std::string>& sorted_paths) {
  return manifest::CheckPathSet(sorted_paths).map_error([](Error e) {
    e.code = Code::kUsage;
    return std::move(e).Wrap("the archive's file names collide");
  });
}

// Turns a concrete example shape into a schema shape with a dynamic batch dimension.
manifest::TensorSpec Generalise(std::string name, runtime::DType dtype,
                                std::vector<std::int64_t> shape) {
  if (!shape.empty()) shape[0] = -1;
  return manifest::TensorSpec{std::move(name), runtime::DTypeName(dtype), std::move(shape)};
}

}  // namespace

Result<PackResult> Pack(const PackOptions& o) {
  const manifest::Spec& spec = o.spec;
  if (spec.name.empty()) {
    return Fail(Code::kUsage, "a model name is required: pass --name or set 'name:' in dlsys.yaml");
  }
  DLSYS_TRY(manifest::CheckName(spec.name));
  if (spec.version.empty()) {
    return Fail(Code::kUsage,
                "a version is required: pass --version or set 'version:' in dlsys.yaml");
  }
  if (!core::IsSemver(spec.version)) {
    return Fail(Code::kUsage, "version '" + spec.version +
                                  "' is not a SemVer version such as 1.2.0 or 2.0.0-rc.1");
  }
  DLSYS_TRY(CheckExampleInputs(spec));
  DLSYS_ASSIGN_OR_RETURN(hw::Requirements requirements,
                         hw::ParseRequirements(spec.requirements_json));

  // Read once into memory: the bytes hashed, loaded and written are one snapshot, whatever
  // happens to the file meanwhile.
  DLSYS_ASSIGN_OR_RETURN(core::FileContent model, core::FileContent::Read(o.model_path));
  if (model.size() == 0) {
    return Fail(Code::kInvalid, "model file '" + o.model_path +
                                    "' is empty; expected a TorchScript model saved with "
                                    "torch.jit.save");
  }

  // Payload paths: reserved names first, then user files; all must be safe and unique.
  std::vector<core::FileContent> extra_files;
  std::set<std::string> taken = {std::string(manifest::kManifestPath),
                                 std::string(manifest::kSignaturePath), "model.pt"};
  for (const auto& f : spec.files) {
    DLSYS_TRY(archive::CheckEntryPath(f.archive_path).map_error([&](Error e) {
      e.code = Code::kUsage;
      return std::move(e).Wrap("extra file '" + f.source + "'");
    }));
    if (f.archive_path.rfind("examples/", 0) == 0 || !taken.insert(f.archive_path).second) {
      return Fail(Code::kUsage,
                  "extra file '" + f.source + "' would be stored as '" + f.archive_path +
                      "', which is already taken; give it another name (--file SRC=PATH, "
                      "or 'as:' in dlsys.yaml)");
    }
    DLSYS_ASSIGN_OR_RETURN(auto content, core::FileContent::Read(f.source));
    extra_files.push_back(std::move(content));
  }

  {
    // Collisions among the names known before the model runs are reported before it loads.
    std::vector<std::string> known = {"model.pt"};
    for (const auto& f : spec.files) known.push_back(f.archive_path);
    std::sort(known.begin(), known.end());
    DLSYS_TRY(CheckNamesDoNotCollide(known));
  }
  std::optional<signing::PrivateKey> key;
  if (!o.key_path.empty()) {
    DLSYS_ASSIGN_OR_RETURN(key, signing::PrivateKey::Load(o.key_path));
  }
  DLSYS_ASSIGN_OR_RETURN(core::AtomicFile out,
                         core::AtomicFile::Create(o.output_path, o.overwrite));

  // The load check (runtime start-up, deserialisation, example runs) overlaps the hashing.
  if (o.progress) o.progress({"loading", 0, model.size()});
  // Measurements differ from run to run, so a reproducible pack makes none (see PackOptions).
  const bool measure = !o.reproducible;
  auto load =
      std::async(std::launch::async, [&] { return RunLoadCheck(model.bytes(), spec, measure); });
  std::vector<Payload> payloads;
  payloads.push_back(Payload{"model.pt", model.bytes(), {}, {}});
  for (std::size_t i = 0; i < spec.files.size(); ++i) {
    payloads.push_back(Payload{spec.files[i].archive_path, extra_files[i].bytes(), {}, {}});
  }
  if (o.progress) o.progress({"hashing", 0, model.size()});
  for (auto& p : payloads) p.digest = signing::DigestBytes(p.bytes);
  if (o.progress) o.progress({"hashing", model.size(), model.size()});
  DLSYS_ASSIGN_OR_RETURN(LoadCheck check, load.get());
  if (measure) {
    DLSYS_ASSIGN_OR_RETURN(requirements.measured, Measure(check, spec));
  }
  check.model.reset();

  manifest::Manifest m;
  static_cast<manifest::Metadata&>(m) = spec;
  m.requirements_json = hw::RequirementsToJson(requirements);  // normalised, with measurements
  m.created = Rfc3339(o.created_epoch);
  m.model = check.summary;
  m.tool_version = o.tool_version;

  // Examples: inputs as given, outputs as the model produced them here (golden outputs).
  for (std::size_t e = 0; e < spec.examples.size(); ++e) {
    const auto& se = spec.examples[e];
    manifest::Example ex;
    ex.name = se.name;
    ex.rtol = se.rtol;
    ex.atol = se.atol;
    const std::string base = "examples/" + se.name + "/";
    for (const auto& t : se.inputs) {
      std::string path = base + "inputs/" + t.tensor.name + ".bin";
      DLSYS_TRY(archive::CheckEntryPath(path));
      ex.inputs.push_back(manifest::ExampleTensor{t.tensor, path});
      payloads.push_back(Owned(path, t.bytes));
    }
    const auto& outs = check.outputs[e];
    DLSYS_ASSIGN_OR_RETURN(auto declared, MatchOutputs(spec.outputs, outs, se.name));
    if (e == 0 && !declared.empty()) {
      // The manifest lists outputs in the order the model returns them.
      m.outputs.clear();
      for (const auto* d : declared) m.outputs.push_back(*d);
    }
    for (std::size_t k = 0; k < outs.size(); ++k) {
      const auto& t = outs[k];
      manifest::TensorSpec ts{t.name, runtime::DTypeName(t.dtype), t.shape};
      if (!declared.empty()) {
        const auto& d = *declared[k];
        if (d.dtype != ts.dtype || !manifest::ShapeFits(d.shape, ts.shape)) {
          return Fail(Code::kInvalid, "example '" + se.name + "': output " + std::to_string(k) +
                                          " ('" + d.name + "') is " + ts.dtype + " " +
                                          manifest::ShapeText(ts.shape) +
                                          ", but dlsys.yaml declares " + d.dtype + " " +
                                          manifest::ShapeText(d.shape));
        }
        ts.name = d.name;
      }
      std::string path = base + "outputs/" + ts.name + ".bin";
      DLSYS_TRY(archive::CheckEntryPath(path));
      ex.outputs.push_back(manifest::ExampleTensor{ts, path});
      payloads.push_back(
          Owned(path, std::string(reinterpret_cast<const char*>(t.data.data()), t.data.size())));
    }
    m.examples.push_back(std::move(ex));
  }
  // Undeclared schemas are derived from the first example, batch dimension made dynamic.
  if (m.inputs.empty() && !spec.examples.empty()) {
    for (const auto& t : spec.examples[0].inputs) {
      m.inputs.push_back(
          Generalise(t.tensor.name, *runtime::ParseDType(t.tensor.dtype), t.tensor.shape));
    }
  }
  if (m.outputs.empty() && !check.outputs.empty()) {
    for (const auto& t : check.outputs[0])
      m.outputs.push_back(Generalise(t.name, t.dtype, t.shape));
  }

  std::sort(payloads.begin(), payloads.end(),
            [](const Payload& a, const Payload& b) { return a.path < b.path; });
  {
    // The same rules verify applies: never write an archive that verify would refuse (e.g.
    // --file a=files/x together with --file b=files/x/y).
    std::vector<std::string> paths;
    for (const auto& p : payloads) paths.push_back(p.path);
    DLSYS_TRY(CheckNamesDoNotCollide(paths));
  }
  for (const auto& p : payloads) {
    manifest::FileRecord f;
    f.path = p.path;
    f.size = p.digest.size;
    f.mode = 0644;
    f.sha256 = p.digest.sha256;
    f.shard_bytes = p.digest.shard_bytes;
    f.shards = p.digest.shards;
    m.files.push_back(std::move(f));
  }

  DLSYS_ASSIGN_OR_RETURN(const std::string manifest_json, manifest::Serialize(m));
  // The reader's rules, applied to what we are about to write: pack never writes an archive its
  // own verify would refuse (a limit, a name, a shape the spec allowed but the format does not).
  if (auto reread = manifest::Parse(manifest_json); !reread) {
    return tl::unexpected(
        std::move(reread.error()).Wrap("the manifest dlsys would write is invalid"));
  }
  PackResult result;
  std::string envelope;
  if (key) {
    DLSYS_ASSIGN_OR_RETURN(envelope,
                           signing::SignEnvelope(*key, manifest::kPayloadType, manifest_json));
    result.key_id = key->Public().KeyId();
  }

  std::uint64_t total = 0, done = 0;
  for (const auto& p : payloads) total += p.bytes.size();
  DLSYS_ASSIGN_OR_RETURN(auto writer,
                         archive::Writer::Open(out.fd(), o.compression, o.created_epoch));
  DLSYS_TRY(writer.Add(manifest::kManifestPath, core::AsBytes(manifest_json)));
  if (key) DLSYS_TRY(writer.Add(manifest::kSignaturePath, core::AsBytes(envelope)));
  for (const auto& p : payloads) {
    DLSYS_TRY(writer.Begin(p.path, p.bytes.size()));
    for (std::size_t off = 0; off < p.bytes.size(); off += kWriteChunkBytes) {
      DLSYS_TRY(
          writer.WriteData(p.bytes.subspan(off, std::min(kWriteChunkBytes, p.bytes.size() - off))));
      done += std::min(kWriteChunkBytes, p.bytes.size() - off);
      if (o.progress) o.progress({"writing", done, total});
    }
    DLSYS_TRY(writer.End());
  }
  DLSYS_TRY(writer.Close());
  struct stat st {};
  if (fstat(out.fd(), &st) == 0) result.archive_bytes = static_cast<std::uint64_t>(st.st_size);
  core::TestHook("pack-before-commit");
  DLSYS_TRY(out.Commit());
  result.manifest = std::move(m);
  return result;
}

}  // namespace dlsys::package
