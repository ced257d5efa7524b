// dlsys serve --registry DIR --env ENV: following an environment's routes
// (docs/deploy.md#serve-follows-the-registry).
//
// One thread does every change, so loads never race each other and request handlers never
// wait for one: it loads (verify + warm) what a new state needs while the current routing keeps
// serving, publishes the new routing with one pointer swap, and retires the versions switched
// away from once no request holds them.
#include <sys/stat.h>

#include <algorithm>
#include <cmath>

#include "core/encoding.h"
#include "core/internal/json.h"
#include "serve/internal/server_impl.h"

namespace dlsys::serve {
namespace {

// Retired versions are checked this often for their last request.
constexpr auto kRetireCheck = std::chrono::milliseconds(20);

std::string RouteText(const std::string& name, const deploy::Route& r) {
  std::string s = name + " " + deploy::StrategyName(r.strategy) + " stable=" + r.stable;
  if (!r.candidate.empty()) s += " candidate=" + r.candidate;
  if (!r.standby.empty()) s += " standby=" + r.standby;
  if (r.strategy == deploy::Strategy::kCanary || r.strategy == deploy::Strategy::kAb) {
    s += " weight=" + core::EcmaScriptNumber(r.weight);
  }
  if (r.strategy == deploy::Strategy::kAb) s += " key=" + r.key;
  if (r.strategy == deploy::Strategy::kShadow) s += " sample=" + core::EcmaScriptNumber(r.sample);
  return s;
}

std::string RoutesText(const deploy::Environment* env) {
  std::string s;
  if (env == nullptr) return s;
  for (const auto& [name, route] : env->models) {
    s += (s.empty() ? "" : "; ") + RouteText(name, route);
  }
  return s;
}

}  // namespace

Deployment::Deployment(Server::Impl& impl, deploy::Registry registry)
    : impl_(impl), registry_(std::move(registry)) {}

Result<std::unique_ptr<Deployment>> Deployment::Create(Server::Impl& impl) {
  DLSYS_TRY(deploy::CheckEnvironmentName(impl.config.env));
  DLSYS_ASSIGN_OR_RETURN(deploy::Registry registry,
                         deploy::Registry::Open(impl.config.registry, /*create=*/false));
  auto d = std::unique_ptr<Deployment>(new Deployment(impl, std::move(registry)));
  struct stat st {};
  if (::stat(d->registry_.StatePath().c_str(), &st) == 0) {
    d->stamp_ = {st.st_dev, st.st_ino, static_cast<std::uint64_t>(st.st_size),
                 st.st_mtim.tv_sec * 1'000'000'000 + st.st_mtim.tv_nsec};
  }
  DLSYS_ASSIGN_OR_RETURN(deploy::State state, d->registry_.Read());
  DLSYS_TRY(d->Apply(state));
  d->applied_generation_ = state.generation;
  return d;
}

Deployment::~Deployment() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void Deployment::Start() {
  thread_ = std::thread([this] { Run(); });
}

void Deployment::Wake() {
  {
    std::lock_guard lock(mu_);
    wake_ = true;
  }
  cv_.notify_all();
}

std::vector<std::string> Deployment::RouteHeaders() const {
  std::vector<std::string> keys;
  for (const auto& [name, m] : impl_.CurrentRouting()->models) {
    if (m.strategy == deploy::Strategy::kAb &&
        std::find(keys.begin(), keys.end(), m.key) == keys.end()) {
      keys.push_back(m.key);
    }
  }
  return keys;
}

void Deployment::Run() {
  const auto poll = std::chrono::milliseconds(impl_.config.registry_poll_ms);
  for (;;) {
    bool forced = false;
    {
      std::unique_lock lock(mu_);
      bool retiring = false;
      {
        std::lock_guard loaded_lock(impl_.loaded_mu);
        retiring = !impl_.retiring.empty();
      }
      cv_.wait_for(lock, retiring ? std::min<std::chrono::milliseconds>(poll, kRetireCheck) : poll,
                   [this] { return stop_ || wake_; });
      if (stop_) return;
      forced = std::exchange(wake_, false);
    }
    Check(forced);
    Retire();
  }
}

void Deployment::Check(bool forced) {
  struct stat st {};
  Stamp now;
  if (::stat(registry_.StatePath().c_str(), &st) == 0) {
    now = {st.st_dev, st.st_ino, static_cast<std::uint64_t>(st.st_size),
           st.st_mtim.tv_sec * 1'000'000'000 + st.st_mtim.tv_nsec};
  }
  if (!forced && now == stamp_) return;
  stamp_ = now;
  auto state = registry_.Read();
  if (!state) {
    log::Error("serve.deploy.failed",
               "cannot read the registry; the current routing stays: " + state.error().message)
        .Str("registry", registry_.dir())
        .Emit();
    return;
  }
  if (state->generation == applied_generation_) return;
  if (!forced && failed_generation_ == state->generation) return;
  if (auto applied = Apply(*state); !applied) {
    failed_generation_ = state->generation;
    std::string details;
    for (const auto& d : applied.error().details) details += (details.empty() ? "" : "; ") + d;
    log::Error("serve.deploy.failed",
               "cannot apply generation " + std::to_string(state->generation) + " of '" +
                   impl_.config.env + "'; the current routing stays: " + applied.error().message)
        .Str("env", impl_.config.env)
        .Int("generation", static_cast<std::int64_t>(state->generation))
        .Str("error.message", details)
        .Emit();
    return;
  }
  applied_generation_ = state->generation;
}

Result<void> Deployment::Apply(const deploy::State& state) {
  const std::string& env_name = impl_.config.env;
  const auto env_it = state.environments.find(env_name);
  const deploy::Environment* env = env_it == state.environments.end() ? nullptr : &env_it->second;
  std::string routes = RoutesText(env);
  if (impl_.CurrentRouting() && routes == applied_routes_) return {};  // another env changed

  // Everything the new routes need, loaded before anything switches.
  std::map<std::string, VersionPtr> next;
  {
    std::lock_guard lock(impl_.loaded_mu);
    next = impl_.loaded;  // filtered below
  }
  std::map<std::string, VersionPtr> needed;
  auto version_of = [&](const std::string& name, const std::string& version) -> Result<VersionPtr> {
    const auto models = state.versions.find(name);
    const deploy::VersionRecord* record = nullptr;
    if (models != state.versions.end()) {
      if (auto it = models->second.find(version); it != models->second.end()) record = &it->second;
    }
    if (record == nullptr) {
      return Fail(Code::kInvalid, "environment '" + env_name + "' routes to " + name + " " +
                                      version + ", which the registry does not hold");
    }
    const std::string key = LoadedKey(name, version, record->digest);
    if (auto it = needed.find(key); it != needed.end()) return it->second;
    if (auto it = next.find(key); it != next.end()) return needed[key] = it->second;
    const std::string path = registry_.BlobPath(record->digest);
    auto verified = VerifyArchive(path, impl_.verify);
    if (!verified) {
      return tl::unexpected(std::move(verified.error()).Wrap(name + " " + version));
    }
    Checked checked = std::move(*verified);
    const auto& m = checked.archive.manifest;
    if (m.name != name || m.version != version) {
      return Fail(Code::kVerifyFailed, "registry blob " + record->digest + " holds " + m.name +
                                           " " + m.version + ", not " + name + " " + version,
                  {"the registry directory was changed by hand: push the archive again"});
    }
    auto loaded = impl_.Load(std::move(checked));
    if (!loaded) return tl::unexpected(std::move(loaded.error()).Wrap(name + " " + version));
    VersionPtr v = std::move(*loaded);
    v->digest = record->digest;
    return needed[key] = std::move(v);
  };

  auto routing = std::make_shared<Routing>();
  routing->generation = state.generation;
  routing->deployed = true;
  if (env != nullptr) {
    for (const auto& [name, route] : env->models) {
      RoutedModel m;
      m.strategy = route.strategy;
      auto arm = [&](const std::string& version, const char* arm_name) -> Result<Arm> {
        DLSYS_ASSIGN_OR_RETURN(VersionPtr v, version_of(name, version));
        return Arm{v, arm_name, &impl_.metrics.RegisterArm(name, version, arm_name)};
      };
      DLSYS_ASSIGN_OR_RETURN(m.stable, arm(route.stable, kStableArm));
      m.all.push_back(m.stable);
      if (!route.candidate.empty()) {
        DLSYS_ASSIGN_OR_RETURN(m.candidate, arm(route.candidate, CandidateArmName(route.strategy)));
        m.all.push_back(m.candidate);
      }
      if (!route.standby.empty()) {
        DLSYS_ASSIGN_OR_RETURN(m.standby, arm(route.standby, kStandbyArm));
        m.all.push_back(m.standby);
      }
      std::sort(m.all.begin(), m.all.end(), [](const Arm& a, const Arm& b) {
        return core::CompareSemver(a.v->version, b.v->version) > 0;
      });
      m.weight_bp = static_cast<std::uint32_t>(std::lround(route.weight * 100));
      m.key = route.key;
      m.sample_below = route.sample >= 1 ? UINT64_MAX
                                         : static_cast<std::uint64_t>(std::ldexp(route.sample, 64));
      routing->models.emplace(name, std::move(m));
    }
  }

  // The switch: new requests take the new routing; requests in flight keep their version.
  {
    std::lock_guard lock(impl_.loaded_mu);
    for (auto& [key, v] : impl_.loaded) {
      if (needed.find(key) == needed.end()) impl_.retiring.push_back(v);
    }
    impl_.loaded = needed;
  }
  impl_.Publish(routing);
  if (impl_.http) impl_.http->SetRouteHeaders(RouteHeaders());
  applied_routes_ = std::move(routes);
  auto rec = log::Info("serve.deploy", "serving generation " + std::to_string(state.generation) +
                                           " of '" + env_name + "'");
  rec.Str("env", env_name)
      .Int("generation", static_cast<std::int64_t>(state.generation))
      .Str("routes", applied_routes_.empty() ? "(none)" : applied_routes_);
  rec.Emit();
  if (env == nullptr) {
    log::Warn("serve.deploy", "environment '" + env_name + "' routes no model yet")
        .Str("env", env_name)
        .Emit();
  }
  return {};
}

void Deployment::Retire() {
  std::vector<VersionPtr> done;
  {
    std::lock_guard lock(impl_.loaded_mu);
    auto& r = impl_.retiring;
    // use_count 1: only this list holds it; no routing, handler or queued request can.
    auto idle = std::stable_partition(r.begin(), r.end(),
                                      [](const VersionPtr& v) { return v.use_count() > 1; });
    done.assign(std::make_move_iterator(idle), std::make_move_iterator(r.end()));
    r.erase(idle, r.end());
  }
  for (auto& v : done) {
    v->batcher->Stop();
    log::Info("serve.unload", "unloaded " + v->name + " " + v->version)
        .Str("model", v->name)
        .Str("model_version", v->version)
        .Emit();
    v.reset();
  }
}

}  // namespace dlsys::serve
