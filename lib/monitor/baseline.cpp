#include "monitor/baseline.h"

#include <algorithm>
#include <array>
#include <span>
#include <vector>

#include "runtime/runtime.h"

namespace dlsys::monitor {
namespace {

constexpr std::size_t kHeadValues = 8;  // what serve logs of a tensor

// Feeds the rows of one example tensor to the sink as requests of batch size 1.
Result<void> AddTensor(const package::VerifiedArchive& archive, const manifest::Example& example,
                       const manifest::ExampleTensor& t, std::string_view prefix,
                       DriftSink& sink) {
  const std::string where = "example '" + example.name + "' tensor '" + t.tensor.name + "'";
  auto dtype = runtime::ParseDType(t.tensor.dtype);
  if (!dtype) return Fail(Code::kInvalid, where + ": " + dtype.error().message);
  const auto file = archive.files.find(t.path);
  if (file == archive.files.end()) {
    return Fail(Code::kInvalid, where + ": the archive holds no '" + t.path + "'");
  }
  const std::int64_t count = runtime::ElementCount(t.tensor.shape);
  const std::size_t size = runtime::DTypeSize(*dtype);
  if (count < 0 || file->second.size() / size != static_cast<std::uint64_t>(count) ||
      file->second.size() % size != 0) {
    return Fail(Code::kInvalid, where + ": '" + t.path + "' holds " +
                                    std::to_string(file->second.size()) +
                                    " bytes, which its dtype and shape do not give");
  }
  const std::uint64_t rows =
      t.tensor.shape.empty() ? 1 : static_cast<std::uint64_t>(t.tensor.shape[0]);
  if (rows == 0) return {};
  const std::uint64_t per_row = static_cast<std::uint64_t>(count) / rows;
  const auto bytes = std::as_bytes(std::span(file->second.data(), file->second.size()));
  const std::string feature = std::string(prefix) + t.tensor.name;
  std::array<double, kHeadValues> head{};
  const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(per_row, kHeadValues));
  for (std::uint64_t r = 0; r < rows; ++r) {
    for (std::size_t i = 0; i < n; ++i) {
      head[i] = runtime::ElementAsDouble(*dtype, bytes, static_cast<std::size_t>(r * per_row + i));
    }
    AddTensorFeatures(sink, feature, std::span<const double>(head.data(), n), per_row,
                      prefix == "prediction.");
  }
  return {};
}

}  // namespace

Result<void> AddArchiveExamples(const package::VerifiedArchive& archive, DriftSink& sink) {
  for (const auto& example : archive.manifest.examples) {
    for (const auto& t : example.inputs) DLSYS_TRY(AddTensor(archive, example, t, "input.", sink));
    for (const auto& t : example.outputs) {
      DLSYS_TRY(AddTensor(archive, example, t, "prediction.", sink));
    }
  }
  return {};
}

Result<DriftBaseline> BaselineFromArchive(const std::string& path,
                                          const package::VerifyOptions& options) {
  if (options.trust.empty() && !options.allow_unsigned) {
    return Fail(Code::kUsage,
                "no trusted key: a baseline is read only from archives signed by a trusted key",
                {"give the signer's public key with --trust KEY.pub (or a directory of them)",
                 "or --allow-unsigned to accept unsigned archives on a development machine"});
  }
  DLSYS_ASSIGN_OR_RETURN(package::VerifiedArchive archive, package::LoadVerified(path, options));
  if (!archive.report.ok) {
    std::vector<std::string> details;
    for (const auto& c : archive.report.checks) {
      if (c.status == Status::kFail) details.push_back(c.check + ": " + c.message);
    }
    details.push_back("run 'dlsys verify " + path + "' for the full report");
    return Fail(archive.report.container_broken ? Code::kInvalid : Code::kVerifyFailed,
                "archive '" + path + "' does not verify", std::move(details));
  }
  if (archive.manifest.examples.empty()) {
    return Fail(Code::kInvalid, "archive '" + path + "' has no examples to take a baseline from",
                {"re-pack with examples (a spec's `examples`), or take the baseline from a "
                 "reference window of a log"});
  }
  BaselineBuilder builder;
  if (auto added = AddArchiveExamples(archive, builder); !added) {
    return tl::unexpected(
        std::move(added.error()).Wrap("cannot take a baseline from '" + path + "'"));
  }
  return builder.Finalize();
}

}  // namespace dlsys::monitor
