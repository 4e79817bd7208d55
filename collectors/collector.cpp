#include "collectors/collector.h"

namespace socket_exporter {

FamilyRef AddFamily(std::vector<prometheus::MetricFamily>& out, std::string name, std::string help,
                    prometheus::MetricType type) {
  prometheus::MetricFamily family;
  family.name = std::move(name);
  family.help = std::move(help);
  family.type = type;
  out.push_back(std::move(family));
  return FamilyRef(out, out.size() - 1);
}

void AddGauge(FamilyRef family, Labels labels, double value) {
  prometheus::ClientMetric metric;
  metric.label = std::move(labels);
  metric.gauge.value = value;
  family->metric.push_back(std::move(metric));
}

void AddCounter(FamilyRef family, Labels labels, double value) {
  prometheus::ClientMetric metric;
  metric.label = std::move(labels);
  metric.counter.value = value;
  family->metric.push_back(std::move(metric));
}

}  // namespace socket_exporter
