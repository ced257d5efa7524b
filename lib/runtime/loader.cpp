// Finds and loads the runtime module (libdlsys_runtime.so) on first use.
//
// libtorch is linked only into the module, so a process pays its start-up cost (~0.65 s) only
// when GetRuntime() is first called. The module is never dlclose()d: libtorch registers global
// state (operators, thread pools) that does not unload cleanly.
#include <dlfcn.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <string>
#include <system_error>
#include <vector>

#include "runtime/runtime.h"

#ifndef DLSYS_RUNTIME_MODULE_NAME
#define DLSYS_RUNTIME_MODULE_NAME "libdlsys_runtime.so"
#endif

namespace dlsys::runtime {
namespace {

std::atomic<bool> g_module_loaded{false};

// Where to look, in order: $DLSYS_RUNTIME_MODULE alone if set, else next to the executable,
// else ../lib/dlsys/ relative to it (the installed layout).
std::vector<std::string> CandidatePaths() {
  if (const char* env = std::getenv("DLSYS_RUNTIME_MODULE"); env != nullptr && *env != '\0') {
    return {env};
  }
  std::error_code ec;
  std::filesystem::path exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) return {};
  std::filesystem::path dir = exe.parent_path();
  return {(dir / DLSYS_RUNTIME_MODULE_NAME).string(),
          (dir.parent_path() / "lib" / "dlsys" / DLSYS_RUNTIME_MODULE_NAME).string()};
}

Result<Runtime*> LoadRuntime() {
  std::vector<std::string> tried;
  for (const std::string& path : CandidatePaths()) {
    // A path with a '/' is opened as given: dlopen does not search LD_LIBRARY_PATH for it.
    void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (handle == nullptr) {
      const char* why = dlerror();
      tried.push_back("tried " + path + ": " + (why ? why : "unknown dlopen error"));
      continue;
    }
    g_module_loaded.store(true, std::memory_order_release);
    dlerror();  // clear any stale error before dlsym
    void* symbol = dlsym(handle, DLSYS_RUNTIME_ENTRY_SYMBOL);
    if (symbol == nullptr) {
      const char* why = dlerror();
      return Fail(Code::kUnavailable,
                  "runtime module '" + path + "' has no entry point " DLSYS_RUNTIME_ENTRY_SYMBOL,
                  {why ? why : "dlsym failed", "rebuild dlsys and its runtime module together"});
    }
    auto create = reinterpret_cast<DlsysRuntimeCreateFn>(symbol);
    Runtime* runtime = create(kDlsysRuntimeAbiVersion);
    if (runtime == nullptr) {
      return Fail(Code::kUnavailable, "runtime module ABI mismatch",
                  {"module " + path + " does not support ABI version " +
                       std::to_string(kDlsysRuntimeAbiVersion),
                   "rebuild dlsys and its runtime module together"});
    }
    return runtime;
  }
  if (tried.empty()) tried.push_back("cannot locate the executable via /proc/self/exe");
  tried.push_back(
      "to fix: build with -DDLSYS_WITH_RUNTIME=ON (the module is installed to lib/dlsys/), or "
      "set DLSYS_RUNTIME_MODULE to the path of " DLSYS_RUNTIME_MODULE_NAME);
  return Fail(Code::kUnavailable,
              "this command needs the model runtime (libtorch), but the runtime module was not "
              "found",
              std::move(tried));
}

}  // namespace

Result<Runtime*> GetRuntime() {
  static std::once_flag once;
  static Result<Runtime*> result = Fail(Code::kInternal, "runtime not initialised");
  std::call_once(once, [] { result = LoadRuntime(); });
  return result;
}

bool RuntimeLoaded() { return g_module_loaded.load(std::memory_order_acquire); }

}  // namespace dlsys::runtime
