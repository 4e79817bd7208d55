// Building blocks of --summary (exporter/socket_view.h): each collector
// renders its own table from the families it published (CollectorInfo's
// write_summary, collectors/registry.h), with these helpers.
//
// Thread safety: free functions and a value type.
#pragma once

#include <prometheus/metric_family.h>

#include <algorithm>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"

namespace socket_exporter {

const prometheus::MetricFamily* FindFamily(const std::vector<prometheus::MetricFamily>& families,
                                           std::string_view name);
std::string_view LabelOf(const prometheus::ClientMetric& metric, std::string_view name);
double ValueOf(const prometheus::MetricFamily& family, const prometheus::ClientMetric& metric);
// The one sample of a family without labels (or the sum of its samples
// whose `label` is `value`); nullopt when the family is absent.
std::optional<double> Sample(const std::vector<prometheus::MetricFamily>& families,
                             std::string_view name, std::string_view label = {},
                             std::string_view value = {});
// A count as an integer; a ratio with 6 decimals.
std::string Count(double value);
std::string Ratio(double value);
// "" when the collector ran fine, else why its section is empty.
std::string CollectorProblem(const std::vector<prometheus::MetricFamily>& families,
                             std::string_view collector);

// Service names in config order, "other" last: the column and row order.
std::vector<std::string> ServiceOrder(const Config& config);
// Position of value in order; unknown values sort last.
std::size_t IndexIn(const std::vector<std::string>& order, std::string_view value);

template <typename T>
bool Contains(const std::vector<T>& values, const T& value) {
  return std::find(values.begin(), values.end(), value) != values.end();
}

// Rows of strings printed with one width per column (the widest cell), two
// spaces between columns and no trailing blanks. Holds only summary rows,
// whose number the config bounds.
class Table {
 public:
  // right[i]: column i is numeric and right-aligned.
  Table(std::vector<std::string> header, std::vector<bool> right) : right_(std::move(right)) {
    rows_.push_back(std::move(header));
  }
  void Add(std::vector<std::string> row) { rows_.push_back(std::move(row)); }
  bool Empty() const { return rows_.size() == 1; }
  void Write(std::ostream& out) const;

 private:
  std::vector<bool> right_;
  std::vector<std::vector<std::string>> rows_;
};

}  // namespace socket_exporter
