#include "hw/probe.h"

#include <dlfcn.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <memory>
#include <thread>

#include "core/file.h"
#include "hw/internal/proc.h"
#include "runtime/runtime.h"

namespace dlsys::hw {

constexpr std::size_t kMaxCpuInfoBytes = 16u << 20;
namespace internal {
namespace {

std::string_view Trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

// Calls fn(key, value) for each "key<tabs>: value" line.
template <typename Fn>
void ForEachField(std::string_view text, Fn fn) {
  while (!text.empty()) {
    std::size_t end = text.find('\n');
    std::string_view line = text.substr(0, end);
    text.remove_prefix(end == std::string_view::npos ? text.size() : end + 1);
    std::size_t colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    fn(Trim(line.substr(0, colon)), Trim(line.substr(colon + 1)));
  }
}

}  // namespace

CpuInfo ParseCpuInfo(std::string_view text) {
  CpuInfo info;
  std::string fallback_model;
  bool have_features = false;
  ForEachField(text, [&](std::string_view key, std::string_view value) {
    if (key == "processor") {
      ++info.processors;
    } else if (key == "model name" && info.model.empty()) {
      info.model = value;
    } else if ((key == "Hardware" || key == "Processor") && fallback_model.empty()) {
      fallback_model = value;
    } else if ((key == "flags" || key == "Features") && !have_features) {
      // Every core lists the same flags; the first entry is enough.
      have_features = true;
      std::size_t i = 0;
      while (i < value.size()) {
        while (i < value.size() && std::isspace(static_cast<unsigned char>(value[i]))) ++i;
        std::size_t start = i;
        while (i < value.size() && !std::isspace(static_cast<unsigned char>(value[i]))) ++i;
        if (i > start) {
          std::string f(value.substr(start, i - start));
          for (char& c : f) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
          info.features.push_back(std::move(f));
        }
      }
    }
  });
  if (info.model.empty()) info.model = fallback_model;
  std::sort(info.features.begin(), info.features.end());
  info.features.erase(std::unique(info.features.begin(), info.features.end()), info.features.end());
  return info;
}

MemInfo ParseMemInfo(std::string_view text) {
  MemInfo info;
  ForEachField(text, [&](std::string_view key, std::string_view value) {
    if (key != "MemTotal" && key != "MemAvailable") return;
    std::uint64_t kib = 0;
    std::size_t i = 0;
    for (; i < value.size() && std::isdigit(static_cast<unsigned char>(value[i])); ++i) {
      kib = kib * 10 + static_cast<unsigned>(value[i] - '0');
    }
    if (i == 0) return;
    // /proc/meminfo says "kB" but means KiB.
    (key == "MemTotal" ? info.total_bytes : info.available_bytes) = kib * 1024;
  });
  return info;
}

std::string CudaVersionString(int version) {
  if (version <= 0) return "";
  return std::to_string(version / 1000) + "." + std::to_string((version % 1000) / 10);
}

}  // namespace internal

namespace {

// The subset of NVML used here, declared by hand so no NVML header or library is needed at
// build time. Signatures as in nvml.h; nvmlReturn_t is an int-sized enum, 0 = NVML_SUCCESS.
using NvmlReturn = int;
using NvmlDevice = void*;
struct NvmlMemory {
  unsigned long long total;
  unsigned long long free;
  unsigned long long used;
};
using NvmlInitFn = NvmlReturn (*)();
using NvmlShutdownFn = NvmlReturn (*)();
using NvmlGetCountFn = NvmlReturn (*)(unsigned int*);
using NvmlGetHandleFn = NvmlReturn (*)(unsigned int, NvmlDevice*);
using NvmlGetNameFn = NvmlReturn (*)(NvmlDevice, char*, unsigned int);
using NvmlGetMemoryFn = NvmlReturn (*)(NvmlDevice, NvmlMemory*);
using NvmlGetCcFn = NvmlReturn (*)(NvmlDevice, int*, int*);
using NvmlDriverVersionFn = NvmlReturn (*)(char*, unsigned int);
using NvmlCudaVersionFn = NvmlReturn (*)(int*);
constexpr NvmlReturn kNvmlSuccess = 0;

struct DlCloser {
  void operator()(void* handle) const { dlclose(handle); }
};
using DlHandle = std::unique_ptr<void, DlCloser>;

template <typename Fn>
Fn Symbol(void* lib, const char* name) {
  return reinterpret_cast<Fn>(dlsym(lib, name));
}

// GPUs through NVML; {} when the library, its init or any device query is unavailable.
std::vector<Gpu> ProbeGpus() {
  DlHandle lib(dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL));
  if (!lib) return {};
  auto init = Symbol<NvmlInitFn>(lib.get(), "nvmlInit_v2");
  auto shutdown = Symbol<NvmlShutdownFn>(lib.get(), "nvmlShutdown");
  auto get_count = Symbol<NvmlGetCountFn>(lib.get(), "nvmlDeviceGetCount_v2");
  auto get_handle = Symbol<NvmlGetHandleFn>(lib.get(), "nvmlDeviceGetHandleByIndex_v2");
  auto get_name = Symbol<NvmlGetNameFn>(lib.get(), "nvmlDeviceGetName");
  auto get_memory = Symbol<NvmlGetMemoryFn>(lib.get(), "nvmlDeviceGetMemoryInfo");
  auto get_cc = Symbol<NvmlGetCcFn>(lib.get(), "nvmlDeviceGetCudaComputeCapability");
  auto driver_version = Symbol<NvmlDriverVersionFn>(lib.get(), "nvmlSystemGetDriverVersion");
  auto cuda_version = Symbol<NvmlCudaVersionFn>(lib.get(), "nvmlSystemGetCudaDriverVersion_v2");
  if (cuda_version == nullptr) {
    cuda_version = Symbol<NvmlCudaVersionFn>(lib.get(), "nvmlSystemGetCudaDriverVersion");
  }
  if (init == nullptr || shutdown == nullptr || get_count == nullptr || get_handle == nullptr) {
    return {};
  }
  if (init() != kNvmlSuccess) return {};
  // Shut NVML down on every path out, before the library handle closes.
  struct Session {
    NvmlShutdownFn shutdown;
    ~Session() { shutdown(); }
  } session{shutdown};

  std::string driver;
  std::array<char, 96> buf{};
  if (driver_version != nullptr &&
      driver_version(buf.data(), static_cast<unsigned>(buf.size())) == kNvmlSuccess) {
    driver = std::string(buf.data());
  }
  std::string cuda;
  int cuda_int = 0;
  if (cuda_version != nullptr && cuda_version(&cuda_int) == kNvmlSuccess) {
    cuda = internal::CudaVersionString(cuda_int);
  }

  unsigned int count = 0;
  if (get_count(&count) != kNvmlSuccess) return {};
  std::vector<Gpu> gpus;
  for (unsigned int i = 0; i < count && i < 256; ++i) {
    NvmlDevice device = nullptr;
    if (get_handle(i, &device) != kNvmlSuccess) continue;
    Gpu gpu;
    gpu.driver_version = driver;
    gpu.cuda_version = cuda;
    buf.fill('\0');
    if (get_name != nullptr &&
        get_name(device, buf.data(), static_cast<unsigned>(buf.size() - 1)) == kNvmlSuccess) {
      gpu.name = std::string(buf.data());
    }
    NvmlMemory memory{};
    if (get_memory != nullptr && get_memory(device, &memory) == kNvmlSuccess) {
      gpu.memory_bytes = memory.total;
    }
    int major = 0;
    int minor = 0;
    if (get_cc != nullptr && get_cc(device, &major, &minor) == kNvmlSuccess && major > 0) {
      gpu.compute_capability = std::to_string(major) + "." + std::to_string(minor);
    }
    gpus.push_back(std::move(gpu));
  }
  return gpus;
}

std::optional<RuntimeInfo> ProbeRuntime() {
  auto rt = runtime::GetRuntime();
  if (!rt) return std::nullopt;
  RuntimeInfo info;
  info.libtorch_version = (*rt)->Version();
  info.max_file_format_version = (*rt)->MaxFileFormatVersion();
  info.operators = (*rt)->Operators();
  std::sort(info.operators.begin(), info.operators.end());
  info.operators.erase(std::unique(info.operators.begin(), info.operators.end()),
                       info.operators.end());
  runtime::BlasInfo blas = (*rt)->Blas();
  info.blas = RuntimeBlas{std::move(blas.name), std::move(blas.library), std::move(blas.detail)};
  return info;
}

}  // namespace

std::string LocalCpuModel() {
  auto text = core::ReadFile("/proc/cpuinfo", kMaxCpuInfoBytes);
  return text ? internal::ParseCpuInfo(*text).model : std::string();
}

Result<TargetProfile> ProbeLocal(const ProbeOptions& options) {
  TargetProfile p;
  struct utsname u {};
  if (uname(&u) == 0) {
    p.os = u.sysname;
    for (char& c : p.os) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    p.arch = u.machine;
  }
  std::array<char, 256> host{};
  if (gethostname(host.data(), host.size() - 1) == 0) p.name = host.data();

  // /proc may be missing (a minimal container); the profile then just omits those facts.
  if (auto text = core::ReadFile("/proc/cpuinfo", kMaxCpuInfoBytes)) {
    internal::CpuInfo cpu = internal::ParseCpuInfo(*text);
    p.cpu_model = cpu.model;
    if (cpu.processors > 0) p.cores = cpu.processors;
    if (!cpu.features.empty()) p.cpu_features = std::move(cpu.features);
  }
  if (unsigned n = std::thread::hardware_concurrency(); n > 0) p.cores = static_cast<int>(n);
  if (auto text = core::ReadFile("/proc/meminfo", 1u << 20)) {
    internal::MemInfo mem = internal::ParseMemInfo(*text);
    p.memory_total_bytes = mem.total_bytes;
    p.memory_available_bytes = mem.available_bytes;
  }
  p.gpus = ProbeGpus();
  if (options.include_runtime) p.runtime = ProbeRuntime();
  return p;
}

}  // namespace dlsys::hw
