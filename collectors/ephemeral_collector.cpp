#include "collectors/ephemeral_collector.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>

#include "collectors/summary.h"
#include "config/yaml_reader.h"

namespace socket_exporter {
namespace {

std::string FormatThreshold(double threshold) { return fmt::format("{}", threshold); }

}  // namespace

std::shared_ptr<const SectionSettings> ParseEphemeralSettings(yaml::FieldReader& reader,
                                                              const yaml::Field* section) {
  static constexpr std::array<std::string_view, 3> kKeys = {
      "top_destinations", "max_tracked_destinations", "utilization_thresholds"};
  auto settings = std::make_shared<EphemeralSettings>();
  if (section == nullptr) return settings;
  reader.ForEachEntry(
      *section, [&](const std::string& key, yaml::Position key_pos, const yaml::Field& value) {
        if (key == "top_destinations") {
          if (auto v = reader.ParseUint(value, 0, 1000)) settings->top_destinations = *v;
        } else if (key == "max_tracked_destinations") {
          if (auto v = reader.ParseUint(value, 1, 10'000'000))
            settings->max_tracked_destinations = *v;
        } else if (key == "utilization_thresholds") {
          if (!value.node.IsSequence()) {
            reader.Expected(value, "a list of numbers");
            return;
          }
          auto& thresholds = settings->utilization_thresholds;
          thresholds.clear();
          std::size_t index = 0;
          for (const YAML::Node& node : value.node) {
            const yaml::Field item = yaml::ItemField(value, node, index++);
            const auto ratio = reader.ParseRatio(item);
            if (!ratio) continue;
            // Two equal thresholds would publish the same series twice.
            if (std::find(thresholds.begin(), thresholds.end(), *ratio) != thresholds.end()) {
              reader.Error(item, fmt::format("duplicate threshold {}", *ratio));
              continue;
            }
            thresholds.push_back(*ratio);
          }
        } else {
          reader.UnknownKey(*section, key, key_pos, kKeys);
        }
      });
  return settings;
}

std::size_t EphemeralCollector::DestinationHash::operator()(const Destination& d) const {
  std::uint64_t words[4];
  std::memcpy(words, d.local.bytes.data(), 16);
  std::memcpy(words + 2, d.remote.bytes.data(), 16);
  std::uint64_t h = d.remote_port;
  for (std::uint64_t w : words) h = (h ^ w) * 0x100000001B3ULL + (h >> 29);
  return static_cast<std::size_t>(h);
}

Result<void> EphemeralCollector::Begin(const ScrapeContext& context) {
  config_ = context.config;
  settings_ = &config_->Section<EphemeralSettings>(kEphemeralCollectorName);
  TRY(ports_.Load(context.procfs_root));
  for (PerProtocol& p : protocols_) {
    p.destinations.clear();
    p.untracked_sockets = 0;
  }
  return {};
}

void EphemeralCollector::Observe(const SocketRecord& record, const Classification& cls) {
  if (ports_.Observe(record, cls) != EphemeralUse::kHeld) return;
  PerProtocol& p = protocols_[static_cast<std::size_t>(record.protocol)];
  Destination d{record.local.Normalized(), record.remote.Normalized(), record.remote_port};
  auto it = p.destinations.find(d);
  if (it == p.destinations.end()) {
    if (p.destinations.size() >= settings_->max_tracked_destinations) {
      ++p.untracked_sockets;
      return;
    }
    it = p.destinations.emplace(d, Use{}).first;
  }
  ++it->second.ports;
  if (record.state == kTcpTimeWait && record.protocol == Protocol::kTcp) ++it->second.time_wait;
}

Result<void> EphemeralCollector::Finish(std::vector<prometheus::MetricFamily>& out) {
  using prometheus::MetricType;
  AddGauge(AddFamily(out, "socket_ephemeral_range_ports",
                     "Usable ephemeral ports: ip_local_port_range minus ip_local_reserved_ports.",
                     MetricType::Gauge),
           {}, ports_.usable_count());
  AddGauge(AddFamily(out, "socket_ephemeral_range_start_port",
                     "First port of net.ipv4.ip_local_port_range.", MetricType::Gauge),
           {}, ports_.range().first);
  AddGauge(AddFamily(out, "socket_ephemeral_range_end_port",
                     "Last port of net.ipv4.ip_local_port_range.", MetricType::Gauge),
           {}, ports_.range().last);
  AddGauge(AddFamily(out, "socket_ephemeral_reserved_ports",
                     "Ports of ip_local_port_range excluded by ip_local_reserved_ports.",
                     MetricType::Gauge),
           {}, ports_.reserved_in_range());

  auto locked = AddFamily(out, "socket_ephemeral_bind_locked_ports",
                          "Usable ephemeral ports held by a listener or a bound, unconnected "
                          "socket: connect() skips them.",
                          MetricType::Gauge);
  auto capacity = AddFamily(out, "socket_ephemeral_capacity_ports",
                            "Ports connect() can use per destination: range ports minus "
                            "bind-locked ports.",
                            MetricType::Gauge);
  auto used = AddFamily(out, "socket_ephemeral_ports_used",
                        "Distinct usable ephemeral ports held by any socket (the limit for "
                        "bind(0) and UDP).",
                        MetricType::Gauge);
  auto max_ratio = AddFamily(out, "socket_ephemeral_destination_utilization_max_ratio",
                             "Highest share of capacity used by one destination (local IP, "
                             "remote IP, remote port); 1 means connect() to it fails.",
                             MetricType::Gauge);
  auto destinations =
      AddFamily(out, "socket_ephemeral_destinations",
                "Destinations holding at least one usable ephemeral port.", MetricType::Gauge);
  auto above =
      AddFamily(out, "socket_ephemeral_destinations_above_ratio",
                "Destinations whose utilization is at or above the threshold.", MetricType::Gauge);
  auto untracked = AddFamily(out, "socket_ephemeral_untracked_sockets",
                             "Sockets to destinations beyond ephemeral.max_tracked_destinations "
                             "(not in the per-destination figures).",
                             MetricType::Gauge);
  auto top_used = AddFamily(out, "socket_ephemeral_destination_ports_used",
                            "Usable ephemeral ports used towards one destination, for the "
                            "ephemeral.top_destinations busiest destinations.",
                            MetricType::Gauge);
  auto top_time_wait = AddFamily(out, "socket_ephemeral_destination_time_wait_ports",
                                 "Of socket_ephemeral_destination_ports_used, ports held by "
                                 "TIME_WAIT sockets.",
                                 MetricType::Gauge);

  const auto& thresholds = settings_->utilization_thresholds;
  for (Protocol protocol : {Protocol::kTcp, Protocol::kUdp}) {
    PerProtocol& p = protocols_[static_cast<std::size_t>(protocol)];
    const std::string proto(ProtocolName(protocol));
    const std::uint32_t locked_count = ports_.BindLockedCount(protocol);
    const std::uint32_t cap = ports_.usable_count() - locked_count;
    auto ratio = [cap](std::uint32_t n) {
      return cap == 0 ? 1.0 : static_cast<double>(n) / static_cast<double>(cap);
    };
    std::uint32_t max_ports = 0;
    std::vector<std::size_t> above_counts(thresholds.size(), 0);
    for (const auto& [dest, use] : p.destinations) {
      max_ports = std::max(max_ports, use.ports);
      for (std::size_t i = 0; i < thresholds.size(); ++i) {
        if (ratio(use.ports) >= thresholds[i]) ++above_counts[i];
      }
    }
    AddGauge(locked, {{"protocol", proto}}, locked_count);
    AddGauge(capacity, {{"protocol", proto}}, cap);
    AddGauge(used, {{"protocol", proto}}, ports_.UsedCount(protocol));
    AddGauge(max_ratio, {{"protocol", proto}},
             p.destinations.empty() && cap > 0 ? 0.0 : ratio(max_ports));
    AddGauge(destinations, {{"protocol", proto}}, static_cast<double>(p.destinations.size()));
    for (std::size_t i = 0; i < thresholds.size(); ++i) {
      AddGauge(above, {{"protocol", proto}, {"threshold", FormatThreshold(thresholds[i])}},
               static_cast<double>(above_counts[i]));
    }
    AddGauge(untracked, {{"protocol", proto}}, static_cast<double>(p.untracked_sockets));

    // Top K destinations by ports used; ties broken by address for stable output.
    const std::size_t k = settings_->top_destinations;
    if (k == 0 || p.destinations.empty()) continue;
    std::vector<std::pair<const Destination*, Use>> ranked;
    ranked.reserve(p.destinations.size());
    for (const auto& [dest, use] : p.destinations) ranked.emplace_back(&dest, use);
    auto busier = [](const auto& a, const auto& b) {
      if (a.second.ports != b.second.ports) return a.second.ports > b.second.ports;
      if (a.first->remote_port != b.first->remote_port) {
        return a.first->remote_port < b.first->remote_port;
      }
      if (a.first->remote.bytes != b.first->remote.bytes) {
        return a.first->remote.bytes < b.first->remote.bytes;
      }
      return a.first->local.bytes < b.first->local.bytes;
    };
    const std::size_t n = std::min(k, ranked.size());
    std::partial_sort(ranked.begin(), ranked.begin() + static_cast<std::ptrdiff_t>(n), ranked.end(),
                      busier);
    for (std::size_t i = 0; i < n; ++i) {
      const Destination& d = *ranked[i].first;
      Labels labels{{"protocol", proto},
                    {"local_address", d.local.ToString()},
                    {"remote_address", d.remote.ToString()},
                    {"remote_port", std::to_string(d.remote_port)}};
      AddGauge(top_time_wait, labels, ranked[i].second.time_wait);
      AddGauge(top_used, std::move(labels), ranked[i].second.ports);
    }
  }
  return {};
}

void WriteEphemeralTables(const std::vector<prometheus::MetricFamily>& families,
                          const Config& /*config*/, std::ostream& out) {
  const std::string problem = CollectorProblem(families, "ephemeral");
  const auto start = Sample(families, "socket_ephemeral_range_start_port");
  if (!problem.empty() || !start) {
    out << "Ephemeral ports:\n" << (problem.empty() ? "(no ephemeral metrics)" : problem) << "\n";
    return;
  }
  out << "Ephemeral ports (range " << Count(*start) << "-"
      << Count(Sample(families, "socket_ephemeral_range_end_port").value_or(0)) << ": "
      << Count(Sample(families, "socket_ephemeral_range_ports").value_or(0)) << " usable, "
      << Count(Sample(families, "socket_ephemeral_reserved_ports").value_or(0)) << " reserved):\n";

  // Thresholds in the order the collector publishes them (the config's).
  std::vector<std::string> thresholds;
  if (const auto* above = FindFamily(families, "socket_ephemeral_destinations_above_ratio")) {
    for (const auto& metric : above->metric) {
      const std::string threshold(LabelOf(metric, "threshold"));
      if (!Contains(thresholds, threshold)) thresholds.push_back(threshold);
    }
  }
  std::vector<std::string> header{"protocol",   "bind_locked",  "capacity",
                                  "ports_used", "destinations", "max_utilization"};
  for (const std::string& threshold : thresholds) header.push_back(">=" + threshold);
  header.push_back("untracked");
  std::vector<bool> right(header.size(), true);
  right[0] = false;
  Table table(std::move(header), std::move(right));
  std::map<std::string, double> capacity;
  for (const char* protocol : {"tcp", "udp"}) {
    const auto value = [&](std::string_view name) {
      return Sample(families, name, "protocol", protocol).value_or(0);
    };
    capacity[protocol] = value("socket_ephemeral_capacity_ports");
    std::vector<std::string> row{
        protocol,
        Count(value("socket_ephemeral_bind_locked_ports")),
        Count(capacity[protocol]),
        Count(value("socket_ephemeral_ports_used")),
        Count(value("socket_ephemeral_destinations")),
        Ratio(value("socket_ephemeral_destination_utilization_max_ratio"))};
    const auto* above = FindFamily(families, "socket_ephemeral_destinations_above_ratio");
    for (const std::string& threshold : thresholds) {
      double n = 0;
      for (const auto& metric : above->metric) {
        if (LabelOf(metric, "protocol") == protocol && LabelOf(metric, "threshold") == threshold) {
          n += ValueOf(*above, metric);
        }
      }
      row.push_back(Count(n));
    }
    row.push_back(Count(value("socket_ephemeral_untracked_sockets")));
    table.Add(std::move(row));
  }
  table.Write(out);
  out << '\n';

  out << "Top destinations (socket_ephemeral_destination_ports_used):\n";
  const auto* used = FindFamily(families, "socket_ephemeral_destination_ports_used");
  const auto* time_wait = FindFamily(families, "socket_ephemeral_destination_time_wait_ports");
  if (used == nullptr || used->metric.empty()) {
    out << "(none)\n";
    return;
  }
  const auto destination_of = [](const prometheus::ClientMetric& metric) {
    return fmt::format("{} {} {} {}", LabelOf(metric, "protocol"), LabelOf(metric, "local_address"),
                       LabelOf(metric, "remote_address"), LabelOf(metric, "remote_port"));
  };
  std::map<std::string, double> time_wait_of;
  if (time_wait != nullptr) {
    for (const auto& metric : time_wait->metric) {
      time_wait_of[destination_of(metric)] = ValueOf(*time_wait, metric);
    }
  }
  Table top({"protocol", "local_address", "remote_address", "remote_port", "ports_used",
             "time_wait", "utilization"},
            {false, false, false, true, true, true, true});
  // The collector already ranks them (busiest first, ties by address).
  for (const auto& metric : used->metric) {
    const std::string protocol(LabelOf(metric, "protocol"));
    const double ports = ValueOf(*used, metric);
    const double cap = capacity[protocol];
    top.Add({protocol, std::string(LabelOf(metric, "local_address")),
             std::string(LabelOf(metric, "remote_address")),
             std::string(LabelOf(metric, "remote_port")), Count(ports),
             Count(time_wait_of[destination_of(metric)]), Ratio(cap == 0 ? 1.0 : ports / cap)});
  }
  top.Write(out);
}

}  // namespace socket_exporter
