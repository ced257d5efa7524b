#include "hw/probe.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>

#include "hw/internal/proc.h"

namespace dlsys::hw {
namespace {

bool Has(const std::vector<std::string>& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

// The machine the tests run on is an x86_64 box with avx2 and no GPU; where that differs the
// relevant assertion is skipped rather than weakened.
TEST(ProbeTest, DescribesThisMachine) {
  auto p = ProbeLocal({.include_runtime = false});
  ASSERT_TRUE(p.has_value()) << p.error().message;
  EXPECT_EQ(p->os, "linux");
  EXPECT_FALSE(p->arch.empty());
  EXPECT_FALSE(p->name.empty());
  ASSERT_TRUE(p->cores.has_value());
  EXPECT_GE(*p->cores, 1);
  ASSERT_TRUE(p->memory_total_bytes.has_value());
  EXPECT_GT(*p->memory_total_bytes, 0u);
  ASSERT_TRUE(p->memory_available_bytes.has_value());
  EXPECT_LE(*p->memory_available_bytes, *p->memory_total_bytes);
  ASSERT_TRUE(p->cpu_features.has_value());
  EXPECT_TRUE(std::is_sorted(p->cpu_features->begin(), p->cpu_features->end()));
  if (p->arch == "x86_64") {
    EXPECT_FALSE(p->cpu_model.empty());
    EXPECT_TRUE(Has(*p->cpu_features, "sse2"));
    if (__builtin_cpu_supports("avx2")) {
      EXPECT_TRUE(Has(*p->cpu_features, "avx2"));
    }
  }
  ASSERT_TRUE(p->gpus.has_value());  // probed: never "unknown"
  if (p->gpus->empty()) SUCCEED() << "no GPU (expected on the CI machine)";
  EXPECT_FALSE(p->runtime.has_value());
}

TEST(ProbeTest, ProfileOfThisMachineRoundTrips) {
  auto p = ProbeLocal({.include_runtime = false});
  ASSERT_TRUE(p.has_value());
  auto back = ParseProfile(ProfileToYaml(*p));
  ASSERT_TRUE(back.has_value()) << back.error().message << "\n" << ProfileToYaml(*p);
  EXPECT_EQ(*back, *p);
}

// With the runtime: the profile says which BLAS libtorch uses (scripts/install-deps.sh installs
// OpenBLAS), and still round-trips. Skipped where the runtime module is not built.
TEST(ProbeTest, ProfileWithRuntimeNamesItsBlas) {
#ifdef DLSYS_RUNTIME_MODULE_PATH
  ::setenv("DLSYS_RUNTIME_MODULE", DLSYS_RUNTIME_MODULE_PATH, /*overwrite=*/0);
#endif
  // Only a build configured with no runtime module at all (neither its own nor an external
  // one) has nothing to probe.
  if (std::getenv("DLSYS_RUNTIME_MODULE") == nullptr) {
    GTEST_SKIP() << "no runtime module in this build";
  }
  auto p = ProbeLocal({.include_runtime = true});
  ASSERT_TRUE(p.has_value()) << p.error().message;
  ASSERT_TRUE(p->runtime.has_value());
  ASSERT_TRUE(p->runtime->blas.has_value());
  EXPECT_EQ(p->runtime->blas->name, "openblas") << p->runtime->blas->library;
  EXPECT_FALSE(p->runtime->blas->library.empty());
  auto back = ParseProfile(ProfileToYaml(*p));
  ASSERT_TRUE(back.has_value()) << back.error().message;
  EXPECT_EQ(*back, *p);
}

TEST(ProbeTest, ParsesX86CpuInfo) {
  auto info = internal::ParseCpuInfo(
      "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) CPU @ 2.20GHz\n"
      "flags\t\t: fpu SSE2 avx2 fpu\n\n"
      "processor\t: 1\nmodel name\t: Intel(R) Xeon(R) CPU @ 2.20GHz\nflags\t\t: fpu sse2 avx2\n");
  EXPECT_EQ(info.model, "Intel(R) Xeon(R) CPU @ 2.20GHz");
  EXPECT_EQ(info.processors, 2);
  EXPECT_EQ(info.features, (std::vector<std::string>{"avx2", "fpu", "sse2"}));
}

TEST(ProbeTest, ParsesArmCpuInfo) {
  auto info = internal::ParseCpuInfo(
      "processor\t: 0\nBogoMIPS\t: 108.00\nFeatures\t: fp asimd evtstrm crc32 cpuid\n"
      "CPU implementer\t: 0x41\nCPU part\t: 0xd08\n\n"
      "processor\t: 1\nFeatures\t: fp asimd evtstrm crc32 cpuid\n\n"
      "Hardware\t: BCM2835\nModel\t\t: Raspberry Pi 4 Model B Rev 1.4\n");
  EXPECT_EQ(info.model, "BCM2835");
  EXPECT_EQ(info.processors, 2);
  EXPECT_EQ(info.features, (std::vector<std::string>{"asimd", "cpuid", "crc32", "evtstrm", "fp"}));
}

TEST(ProbeTest, ParsesMemInfoInKibibytes) {
  auto info = internal::ParseMemInfo(
      "MemTotal:        8048576 kB\nMemFree:         1000000 kB\nMemAvailable:    4000000 kB\n");
  EXPECT_EQ(info.total_bytes, 8048576ull * 1024);
  EXPECT_EQ(info.available_bytes, 4000000ull * 1024);
  auto old_kernel = internal::ParseMemInfo("MemTotal: 1024 kB\nMemFree: 512 kB\n");
  EXPECT_EQ(old_kernel.total_bytes, 1024u * 1024);
  EXPECT_FALSE(old_kernel.available_bytes.has_value());
}

TEST(ProbeTest, FormatsNvmlCudaVersions) {
  EXPECT_EQ(internal::CudaVersionString(12020), "12.2");
  EXPECT_EQ(internal::CudaVersionString(11080), "11.8");
  EXPECT_EQ(internal::CudaVersionString(12000), "12.0");
  EXPECT_EQ(internal::CudaVersionString(0), "");
}

}  // namespace
}  // namespace dlsys::hw
