#include "collectors/summary.h"

#include <fmt/format.h>

#include <cstdint>

namespace socket_exporter {

const prometheus::MetricFamily* FindFamily(const std::vector<prometheus::MetricFamily>& families,
                                           std::string_view name) {
  for (const auto& family : families) {
    if (family.name == name) return &family;
  }
  return nullptr;
}

std::string_view LabelOf(const prometheus::ClientMetric& metric, std::string_view name) {
  for (const auto& label : metric.label) {
    if (label.name == name) return label.value;
  }
  return {};
}

double ValueOf(const prometheus::MetricFamily& family, const prometheus::ClientMetric& metric) {
  return family.type == prometheus::MetricType::Counter ? metric.counter.value : metric.gauge.value;
}

std::optional<double> Sample(const std::vector<prometheus::MetricFamily>& families,
                             std::string_view name, std::string_view label,
                             std::string_view value) {
  const auto* family = FindFamily(families, name);
  if (family == nullptr) return std::nullopt;
  double sum = 0;
  for (const auto& metric : family->metric) {
    if (label.empty() || LabelOf(metric, label) == value) sum += ValueOf(*family, metric);
  }
  return sum;
}

std::string Count(double value) {
  // Every count the collectors publish is an integer held in a double.
  return fmt::format("{}", static_cast<std::uint64_t>(std::max(value, 0.0)));
}

std::string Ratio(double value) { return fmt::format("{:.6f}", value); }

std::string CollectorProblem(const std::vector<prometheus::MetricFamily>& families,
                             std::string_view collector) {
  const auto* family = FindFamily(families, "socket_exporter_collector_success");
  if (family != nullptr) {
    for (const auto& metric : family->metric) {
      if (LabelOf(metric, "collector") != collector) continue;
      if (ValueOf(*family, metric) >= 1) return {};
      return fmt::format("(the {} collector failed; see the log)", collector);
    }
  }
  // The scraper lists every enabled collector, succeeded or not.
  return fmt::format("(the {} collector is disabled)", collector);
}

std::vector<std::string> ServiceOrder(const Config& config) {
  std::vector<std::string> names;
  for (const ServiceConfig& service : config.services) names.push_back(service.name);
  names.push_back(config.ServiceName(0));
  return names;
}

std::size_t IndexIn(const std::vector<std::string>& order, std::string_view value) {
  const auto it = std::find(order.begin(), order.end(), value);
  return static_cast<std::size_t>(it - order.begin());
}

void Table::Write(std::ostream& out) const {
  std::vector<std::size_t> widths(rows_.front().size(), 0);
  for (const auto& row : rows_) {
    for (std::size_t i = 0; i < row.size(); ++i) widths[i] = std::max(widths[i], row[i].size());
  }
  for (const auto& row : rows_) {
    std::string line;
    for (std::size_t i = 0; i < row.size(); ++i) {
      if (i > 0) line += "  ";
      const std::size_t pad = widths[i] - row[i].size();
      if (right_[i]) line.append(pad, ' ');
      line += row[i];
      if (!right_[i] && i + 1 < row.size()) line.append(pad, ' ');
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    out << line << '\n';
  }
}

}  // namespace socket_exporter
