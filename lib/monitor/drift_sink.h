// Where the scanner puts the features it extracts from sampled request records (`input` and
// `prediction`, docs/logging.md): a drift baseline being built, or the current counts being
// compared with one. One sink per scan thread, merged at the end.
//
// Features, by name (docs/monitoring.md, "Drift"):
//   input.<tensor>, prediction.<tensor>   numeric: every finite value of the summary's `head`
//   prediction.<tensor>.argmax            categorical: index of the largest head value, when
//                                         the head is the whole tensor (count <= 8)
//   prediction, input.<name>              a plain value: numeric for a number, categorical
//                                         for a string
#pragma once

#include <span>
#include <string_view>

namespace dlsys::monitor {

class DriftSink {
 public:
  virtual ~DriftSink() = default;
  virtual void AddNumber(std::string_view feature, double value) = 0;
  // The values of one observation (one request's tensor head): they count as one record for
  // the significance tests, since values of one tensor are not independent of each other.
  virtual void AddNumbers(std::string_view feature, std::span<const double> values) {
    for (const double v : values) AddNumber(feature, v);
  }
  virtual void AddCategory(std::string_view feature, std::string_view value) = 0;
  // Adds everything `other` (a sink made by the same factory) collected.
  virtual void MergeFrom(const DriftSink& other) = 0;
};

}  // namespace dlsys::monitor
