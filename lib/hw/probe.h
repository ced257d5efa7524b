// Describes the machine dlsys runs on as a target profile.
#pragma once

#include <string>

#include "core/error.h"
#include "hw/profile.h"

namespace dlsys::hw {

struct ProbeOptions {
  // Load the runtime module to report its version, file format and operator set (costs the
  // libtorch start-up). Without it, or when the module is absent, `runtime` stays nullopt.
  bool include_runtime = true;
};

// Reads uname, /proc/cpuinfo, /proc/meminfo and, when libnvidia-ml.so.1 can be loaded, NVML for
// GPUs (gpus = {} when there is no NVML or no device). Never fails for a missing GPU or runtime.
[[nodiscard]] Result<TargetProfile> ProbeLocal(const ProbeOptions& options = {});

// The CPU model of this machine ("model name" in /proc/cpuinfo); empty where unknown.
std::string LocalCpuModel();

}  // namespace dlsys::hw
