// Parsers for /proc text, separated from the reads so tests can feed them captured files of
// other machines (an arm board's cpuinfo, a container's meminfo). Implemented in probe.cpp.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace dlsys::hw::internal {

struct CpuInfo {
  std::string model;                  // "model name" (x86), else "Hardware"/"Processor"
  int processors = 0;                 // number of "processor" entries
  std::vector<std::string> features;  // "flags" (x86) or "Features" (arm): sorted, unique, lower
};
CpuInfo ParseCpuInfo(std::string_view text);

struct MemInfo {
  std::optional<std::uint64_t> total_bytes;      // MemTotal
  std::optional<std::uint64_t> available_bytes;  // MemAvailable
};
MemInfo ParseMemInfo(std::string_view text);

// NVML's CUDA driver version integer (12020) as "12.2".
std::string CudaVersionString(int version);

}  // namespace dlsys::hw::internal
