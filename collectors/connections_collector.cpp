#include "collectors/connections_collector.h"

#include <spdlog/spdlog.h>

#include <unordered_set>

#include "collectors/summary.h"

namespace socket_exporter {
namespace {

// Label set packed in 64 bits: protocol 1 | family 1 | state 4 | direction 1 |
// port range 16 | service 16.
std::uint64_t PackKey(Protocol protocol, Family family, std::uint8_t state, Direction direction,
                      std::uint16_t port_range, std::uint16_t service) {
  return (std::uint64_t{static_cast<std::uint8_t>(protocol)} << 38) |
         (std::uint64_t{static_cast<std::uint8_t>(family)} << 37) |
         (std::uint64_t{state & 0xFU} << 33) |
         (std::uint64_t{static_cast<std::uint8_t>(direction)} << 32) |
         (std::uint64_t{port_range} << 16) | service;
}

struct Unpacked {
  Protocol protocol;
  Family family;
  std::uint8_t state;
  Direction direction;
  std::uint16_t port_range;
  std::uint16_t service;
};

Unpacked UnpackKey(std::uint64_t key) {
  return Unpacked{
      static_cast<Protocol>((key >> 38) & 1U),           static_cast<Family>((key >> 37) & 1U),
      static_cast<std::uint8_t>((key >> 33) & 0xFU),     static_cast<Direction>((key >> 32) & 1U),
      static_cast<std::uint16_t>((key >> 16) & 0xFFFFU), static_cast<std::uint16_t>(key & 0xFFFFU)};
}

// The state as counted: request sockets (NEW_SYN_RECV) are syn_recv, UDP has
// two states, anything the kernel adds later is "unknown" (15).
std::uint8_t CountedState(const SocketRecord& record) {
  if (record.protocol == Protocol::kUdp) {
    return record.state == kTcpEstablished ? kTcpEstablished : kTcpClose;
  }
  if (record.state == kTcpNewSynRecv) return kTcpSynRecv;
  if (record.state == 0 || record.state > kTcpBoundInactive) return 15;
  return record.state;
}

constexpr std::uint8_t kTcpStates[] = {
    kTcpEstablished, kTcpSynSent,   kTcpSynRecv, kTcpFinWait1, kTcpFinWait2, kTcpTimeWait,
    kTcpClose,       kTcpCloseWait, kTcpLastAck, kTcpListen,   kTcpClosing,  kTcpBoundInactive};
constexpr std::uint8_t kUdpStates[] = {kTcpEstablished, kTcpClose};

}  // namespace

void ConnectionsCollector::Seed() {
  known_series_.clear();
  for (Family family : {Family::kIpv4, Family::kIpv6}) {
    for (Direction direction : {Direction::kInbound, Direction::kOutbound}) {
      for (std::uint16_t range = 0; range < config_->port_ranges.size(); ++range) {
        for (std::uint8_t state : kTcpStates) {
          known_series_[PackKey(Protocol::kTcp, family, state, direction, range, 0)] = true;
        }
        for (std::uint8_t state : kUdpStates) {
          known_series_[PackKey(Protocol::kUdp, family, state, direction, range, 0)] = true;
        }
      }
    }
  }
}

Result<void> ConnectionsCollector::Begin(const ScrapeContext& context) {
  if (context.config != config_) {
    // New or reloaded config: label values may have changed meaning.
    config_ = context.config;
    Seed();
    logged_fold_ = false;
  }
  counts_.clear();
  folded_sockets_ = 0;
  folded_series_ = 0;
  return {};
}

void ConnectionsCollector::Observe(const SocketRecord& record, const Classification& cls) {
  ++counts_[PackKey(record.protocol, record.family, CountedState(record), cls.direction,
                    cls.port_range, cls.service)];
}

Result<void> ConnectionsCollector::Finish(std::vector<prometheus::MetricFamily>& out) {
  // Admit this scrape's new label sets into the sticky set, folding what does
  // not fit under the cap into service_name="other".
  std::unordered_map<std::uint64_t, std::uint64_t> folded;
  const std::size_t cap = config_->limits.max_series;
  std::unordered_set<std::uint64_t> folded_keys;
  for (const auto& [key, count] : counts_) {
    if (known_series_.contains(key)) continue;
    if (known_series_.size() < cap) {
      known_series_[key] = true;
      continue;
    }
    const Unpacked u = UnpackKey(key);
    const std::uint64_t other =
        PackKey(u.protocol, u.family, u.state, u.direction, u.port_range, 0);
    folded[other] += count;
    folded_keys.insert(key);
    folded_sockets_ += count;
    // The "other" series of a seeded state/range always exists; an unknown
    // state may need one more series, which stays bounded by states x ranges.
    known_series_[other] = true;
  }
  for (std::uint64_t key : folded_keys) counts_.erase(key);
  for (const auto& [key, count] : folded) counts_[key] += count;
  folded_series_ = folded_keys.size();
  if (folded_series_ > 0 && !logged_fold_) {
    spdlog::warn(
        "connections: more than limits.max_series={} label sets; folding {} into "
        "service_name=\"other\" (counted in socket_exporter_cardinality_folded_series)",
        cap, folded_series_);
    logged_fold_ = true;
  }

  auto family = AddFamily(out, "socket_connections",
                          "Sockets by protocol, family, state, direction, port range and service.",
                          prometheus::MetricType::Gauge);
  family->metric.reserve(known_series_.size());
  for (const auto& [key, unused] : known_series_) {
    const Unpacked u = UnpackKey(key);
    const auto it = counts_.find(key);
    const double value = it == counts_.end() ? 0.0 : static_cast<double>(it->second);
    const std::string_view state =
        u.state == 15 ? std::string_view("unknown") : StateName(u.protocol, u.state);
    AddGauge(family,
             {{"protocol", std::string(ProtocolName(u.protocol))},
              {"family", std::string(FamilyName(u.family))},
              {"state", std::string(state)},
              {"direction", std::string(DirectionName(u.direction))},
              {"port_range", config_->port_ranges[u.port_range].name},
              {"service_name", config_->ServiceName(u.service)}},
             value);
  }
  auto folded_family = AddFamily(
      out, "socket_exporter_cardinality_folded_series",
      "Label sets of socket_connections folded into service_name=\"other\" this scrape because "
      "limits.max_series was reached.",
      prometheus::MetricType::Gauge);
  AddGauge(folded_family, {{"metric", "socket_connections"}}, static_cast<double>(folded_series_));
  return {};
}

void WriteConnectionTables(const std::vector<prometheus::MetricFamily>& families,
                           const Config& config, std::ostream& out) {
  out << "Sockets by state and service (socket_connections):\n";
  const std::string problem = CollectorProblem(families, "connections");
  const auto* connections = FindFamily(families, "socket_connections");
  if (!problem.empty() || connections == nullptr) {
    out << (problem.empty() ? "(no socket_connections)" : problem) << "\n\n";
    return;
  }
  const std::vector<std::string> services = ServiceOrder(config);
  const std::vector<std::string> states = StateLabelValues();
  std::vector<std::string> ranges;
  for (const PortRangeConfig& range : config.port_ranges) ranges.push_back(range.name);

  // (protocol, state index) -> service index -> sockets, and
  // (protocol, service index, range index) -> [inbound, outbound].
  using StateKey = std::pair<std::string, std::size_t>;
  std::map<StateKey, std::map<std::size_t, double>> by_state;
  std::map<std::size_t, double> service_totals;
  using RangeKey = std::tuple<std::string, std::size_t, std::size_t>;
  std::map<RangeKey, std::array<double, 2>> by_range;
  for (const auto& metric : connections->metric) {
    const double value = ValueOf(*connections, metric);
    if (value == 0) continue;
    const std::string protocol(LabelOf(metric, "protocol"));
    const std::size_t service = IndexIn(services, LabelOf(metric, "service_name"));
    by_state[{protocol, IndexIn(states, LabelOf(metric, "state"))}][service] += value;
    service_totals[service] += value;
    const std::size_t range = IndexIn(ranges, LabelOf(metric, "port_range"));
    by_range[{protocol, service, range}][LabelOf(metric, "direction") == "inbound" ? 0 : 1] +=
        value;
  }
  // "tcp" sorts before "udp", as in the exporter's label values.
  std::vector<std::size_t> columns;
  for (const auto& [service, total] : service_totals) columns.push_back(service);

  std::vector<std::string> header{"protocol", "state"};
  std::vector<bool> right{false, false};
  for (std::size_t service : columns) {
    header.push_back(service < services.size() ? services[service] : "?");
    right.push_back(true);
  }
  header.push_back("total");
  right.push_back(true);
  Table state_table(std::move(header), std::move(right));
  double grand_total = 0;
  for (const auto& [key, counts] : by_state) {
    std::vector<std::string> row{key.first, key.second < states.size() ? states[key.second] : "?"};
    double total = 0;
    for (std::size_t service : columns) {
      const auto it = counts.find(service);
      const double value = it == counts.end() ? 0 : it->second;
      row.push_back(Count(value));
      total += value;
    }
    row.push_back(Count(total));
    grand_total += total;
    state_table.Add(std::move(row));
  }
  std::vector<std::string> total_row{"all", "all"};
  for (std::size_t service : columns) total_row.push_back(Count(service_totals[service]));
  total_row.push_back(Count(grand_total));
  state_table.Add(std::move(total_row));
  state_table.Write(out);
  if (const auto folded = Sample(families, "socket_exporter_cardinality_folded_series");
      folded && *folded > 0) {
    out << Count(*folded) << " label sets were folded into service_name=\"other\" "
        << "(limits.max_series)\n";
  }
  out << '\n';

  out << "Sockets by service, port range and direction (socket_connections):\n";
  Table range_table({"protocol", "service_name", "port_range", "inbound", "outbound", "total"},
                    {false, false, false, true, true, true});
  for (const auto& [key, counts] : by_range) {
    const auto& [protocol, service, range] = key;
    range_table.Add({protocol, service < services.size() ? services[service] : "?",
                     range < ranges.size() ? ranges[range] : "?", Count(counts[0]),
                     Count(counts[1]), Count(counts[0] + counts[1])});
  }
  range_table.Write(out);
  out << '\n';
}

}  // namespace socket_exporter
