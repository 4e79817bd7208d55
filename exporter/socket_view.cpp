#include "exporter/socket_view.h"

#include <arpa/inet.h>
#include <fnmatch.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <iostream>
#include <iterator>
#include <map>
#include <optional>
#include <tuple>
#include <utility>

#include "collectors/cgroups_collector.h"
#include "collectors/sources/cgroup_resolver.h"
#include "collectors/sources/socket_sources.h"
#include "exporter/scraper.h"

namespace socket_exporter {
namespace {

// Widest endpoint text per family: "255.255.255.255:65535" and
// "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535". inet_ntop only uses the
// dotted IPv6 form for ::ffff:a.b.c.d and ::a.b.c.d, which are shorter.
constexpr std::size_t kIpv4EndpointWidth = 21;
constexpr std::size_t kIpv6EndpointWidth = 47;
constexpr std::size_t kProtoWidth = 5;      // "Proto", "tcp6"
constexpr std::size_t kStateWidth = 14;     // "bound_inactive"
constexpr std::size_t kDirectionWidth = 9;  // "Direction"
// Lines are handed to the stream in chunks of about this size.
constexpr std::size_t kFlushThreshold = 64 * 1024;

using AddressText = std::array<char, INET6_ADDRSTRLEN>;

// Numeric address without allocating: one call per socket and endpoint.
std::string_view FormatAddress(const IpAddress& address, AddressText& text) {
  const int af = address.family == Family::kIpv4 ? AF_INET : AF_INET6;
  if (inet_ntop(af, address.bytes.data(), text.data(), static_cast<socklen_t>(text.size())) ==
      nullptr) {
    return "invalid";  // cannot happen: the buffer fits both families
  }
  return std::string_view(text.data());
}

// "10.0.0.1:22", "[::1]:8080", "0.0.0.0:*" (port 0, as ss and netstat show it).
std::string_view FormatEndpoint(const IpAddress& address, std::uint16_t port,
                                std::array<char, 64>& out) {
  AddressText text;
  const std::string_view host = FormatAddress(address, text);
  const bool v6 = address.family == Family::kIpv6;
  std::size_t size = 0;
  if (port == 0) {
    size = v6 ? fmt::format_to_n(out.data(), out.size(), "[{}]:*", host).size
              : fmt::format_to_n(out.data(), out.size(), "{}:*", host).size;
  } else {
    size = v6 ? fmt::format_to_n(out.data(), out.size(), "[{}]:{}", host, port).size
              : fmt::format_to_n(out.data(), out.size(), "{}:{}", host, port).size;
  }
  return std::string_view(out.data(), std::min(size, out.size()));
}

// JSON string body. Today every value comes from a safe alphabet (numeric
// addresses, config names limited to [a-z0-9_]), but the writer should not
// depend on the config's validation rules staying that strict.
void AppendJsonString(fmt::memory_buffer& buffer, std::string_view text) {
  buffer.push_back('"');
  for (const char c : text) {
    if (c == '"' || c == '\\') {
      buffer.push_back('\\');
      buffer.push_back(c);
    } else if (static_cast<unsigned char>(c) < 0x20) {
      fmt::format_to(std::back_inserter(buffer), "\\u{:04x}", static_cast<unsigned>(c));
    } else {
      buffer.push_back(c);
    }
  }
  buffer.push_back('"');
}

std::string_view ProtoColumn(const SocketRecord& record) {
  // netstat's names: the family is visible without a column of its own.
  if (record.protocol == Protocol::kTcp) return record.family == Family::kIpv6 ? "tcp6" : "tcp";
  return record.family == Family::kIpv6 ? "udp6" : "udp";
}

std::string Join(const std::vector<std::string>& values) {
  std::string out;
  for (const std::string& value : values) {
    if (!out.empty()) out += ", ";
    out += value;
  }
  return out;
}

Result<std::uint16_t> ParsePortNumber(std::string_view text) {
  unsigned value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size() || value > 65535) {
    return Fail(fmt::format("\"{}\" is not a port number 0-65535", text));
  }
  return static_cast<std::uint16_t>(value);
}

Result<SocketFilter::PortSpan> ParsePortSpan(std::string_view text) {
  const auto dash = text.find('-');
  if (dash == std::string_view::npos) {
    auto port = ParsePortNumber(text);
    if (!port) return std::unexpected(port.error());
    return SocketFilter::PortSpan{*port, *port};
  }
  auto first = ParsePortNumber(text.substr(0, dash));
  if (!first) return std::unexpected(first.error());
  auto last = ParsePortNumber(text.substr(dash + 1));
  if (!last) return std::unexpected(last.error());
  if (*first > *last) return Fail(fmt::format("\"{}\" runs backwards", text));
  return SocketFilter::PortSpan{*first, *last};
}

template <typename T>
bool Contains(const std::vector<T>& values, const T& value) {
  return std::find(values.begin(), values.end(), value) != values.end();
}

// ---- summary ---------------------------------------------------------------

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

// The one sample of a family without labels (or the sum of its samples
// whose `label` is `value`); nullopt when the family is absent.
std::optional<double> Sample(const std::vector<prometheus::MetricFamily>& families,
                             std::string_view name, std::string_view label = {},
                             std::string_view value = {}) {
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

  void Write(std::ostream& out) const {
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

 private:
  std::vector<bool> right_;
  std::vector<std::vector<std::string>> rows_;
};

// "" when the collector ran fine, else why its section is empty.
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

// Service names in config order, "other" last: the column and row order.
std::vector<std::string> ServiceOrder(const Config& config) {
  std::vector<std::string> names;
  for (const ServiceConfig& service : config.services) names.push_back(service.name);
  names.push_back(config.ServiceName(0));
  return names;
}

std::size_t IndexIn(const std::vector<std::string>& order, std::string_view value) {
  const auto it = std::find(order.begin(), order.end(), value);
  return static_cast<std::size_t>(it - order.begin());  // unknown values sort last
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

void WriteEphemeralTables(const std::vector<prometheus::MetricFamily>& families,
                          std::ostream& out) {
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

// Sockets by cgroup: the cgroups collector's series, summed over states (and
// namespaces), busiest first; cgroup="other" and the values that are not
// paths last.
void WriteCgroupTables(const std::vector<prometheus::MetricFamily>& families, std::ostream& out) {
  out << "\nSockets by cgroup (socket_cgroup_connections):\n";
  const auto* connections = FindFamily(families, "socket_cgroup_connections");
  if (connections == nullptr) {
    out << CollectorProblem(families, "cgroups") << "\n";
    return;
  }
  struct Row {
    double tcp = 0;
    double udp = 0;
    double time_wait = 0;
    double ephemeral = 0;
  };
  std::map<std::string, Row> rows;
  for (const auto& metric : connections->metric) {
    Row& row = rows[std::string(LabelOf(metric, "cgroup"))];
    const double value = ValueOf(*connections, metric);
    (LabelOf(metric, "protocol") == "udp" ? row.udp : row.tcp) += value;
    if (LabelOf(metric, "state") == "time_wait") row.time_wait += value;
  }
  if (const auto* ephemeral = FindFamily(families, "socket_cgroup_ephemeral_ports_used")) {
    for (const auto& metric : ephemeral->metric) {
      rows[std::string(LabelOf(metric, "cgroup"))].ephemeral += ValueOf(*ephemeral, metric);
    }
  }
  if (rows.empty()) {
    out << "(none)\n";
    return;
  }
  std::vector<std::pair<std::string, Row>> ordered(rows.begin(), rows.end());
  std::stable_sort(ordered.begin(), ordered.end(), [](const auto& a, const auto& b) {
    const bool a_path = a.first.starts_with('/');
    const bool b_path = b.first.starts_with('/');
    if (a_path != b_path) return a_path;
    return a.second.tcp + a.second.udp > b.second.tcp + b.second.udp;
  });
  Table table({"cgroup", "tcp", "udp", "total", "time_wait", "ephemeral_ports"},
              {false, true, true, true, true, true});
  for (const auto& [cgroup, row] : ordered) {
    table.Add({cgroup, Count(row.tcp), Count(row.udp), Count(row.tcp + row.udp),
               Count(row.time_wait), Count(row.ephemeral)});
  }
  table.Write(out);
}

}  // namespace

std::vector<std::string> StateLabelValues() {
  std::vector<std::string> values;
  for (std::uint8_t state = kTcpEstablished; state < kTcpMaxStates; ++state) {
    std::string name(StateName(Protocol::kTcp, state));
    if (!Contains(values, name)) values.push_back(std::move(name));  // NEW_SYN_RECV = syn_recv
  }
  values.emplace_back(StateName(Protocol::kUdp, kTcpClose));  // "unconnected"
  values.emplace_back(StateName(Protocol::kTcp, 0));          // "unknown": a future kernel state
  return values;
}

bool SocketFilter::OnlyIpv4() const {
  return !families.empty() &&
         std::all_of(families.begin(), families.end(), [](Family f) { return f == Family::kIpv4; });
}

bool SocketFilter::MatchesCgroup(std::string_view cgroup) const {
  if (cgroups.empty()) return true;
  const std::string name(cgroup);
  return std::any_of(cgroups.begin(), cgroups.end(), [&](const std::string& pattern) {
    return ::fnmatch(pattern.c_str(), name.c_str(), 0) == 0;
  });
}

bool SocketFilter::Matches(const SocketRecord& record, const Classification& cls) const {
  if (!protocols.empty() && !Contains(protocols, record.protocol)) return false;
  if (!families.empty() && !Contains(families, record.family)) return false;
  if (!directions.empty() && !Contains(directions, cls.direction)) return false;
  if (!services.empty() && !Contains(services, cls.service)) return false;
  if (!states.empty() && std::find(states.begin(), states.end(),
                                   StateName(record.protocol, record.state)) == states.end()) {
    return false;
  }
  if (!ports.empty()) {
    const auto in = [&](std::uint16_t port) {
      return std::any_of(ports.begin(), ports.end(),
                         [port](const PortSpan& s) { return s.first <= port && port <= s.last; });
    };
    if (!in(record.local_port) && !in(record.remote_port)) return false;
  }
  return true;
}

Result<SocketFilter> ParseSocketFilter(const ListFilterFlags& flags, const Config& config) {
  SocketFilter filter;
  for (const std::string& value : flags.protocol) {
    if (value == "tcp") {
      filter.protocols.push_back(Protocol::kTcp);
    } else if (value == "udp") {
      filter.protocols.push_back(Protocol::kUdp);
    } else {
      return Fail(fmt::format("--filter.protocol: \"{}\" is not tcp or udp", value));
    }
  }
  for (const std::string& value : flags.family) {
    if (value == "ipv4") {
      filter.families.push_back(Family::kIpv4);
    } else if (value == "ipv6") {
      filter.families.push_back(Family::kIpv6);
    } else {
      return Fail(fmt::format("--filter.family: \"{}\" is not ipv4 or ipv6", value));
    }
  }
  const std::vector<std::string> states = StateLabelValues();
  for (const std::string& value : flags.state) {
    if (!Contains(states, value)) {
      return Fail(
          fmt::format("--filter.state: \"{}\" is not a state; use one of {}", value, Join(states)));
    }
    filter.states.push_back(value);
  }
  const std::vector<std::string> services = ServiceOrder(config);
  for (const std::string& value : flags.service) {
    const std::size_t index = IndexIn(services, value);
    if (index == services.size()) {
      return Fail(fmt::format("--filter.service: \"{}\" is not a service of {}; use one of {}",
                              value, config.source, Join(services)));
    }
    // services: config order then "other"; Classification: 0 = other, 1 + i.
    filter.services.push_back(index + 1 == services.size() ? std::uint16_t{0}
                                                           : static_cast<std::uint16_t>(index + 1));
  }
  for (const std::string& value : flags.port) {
    auto span = ParsePortSpan(value);
    if (!span) return Fail("--filter.port: " + span.error().message);
    filter.ports.push_back(*span);
  }
  for (const std::string& value : flags.direction) {
    if (value == "inbound") {
      filter.directions.push_back(Direction::kInbound);
    } else if (value == "outbound") {
      filter.directions.push_back(Direction::kOutbound);
    } else {
      return Fail(fmt::format("--filter.direction: \"{}\" is not inbound or outbound", value));
    }
  }
  for (const std::string& value : flags.cgroup) {
    if (value.empty()) return Fail("--filter.cgroup: empty pattern");
    filter.cgroups.push_back(value);
  }
  return filter;
}

SocketListWriter::SocketListWriter(std::shared_ptr<const Config> config, SocketFilter filter,
                                   ViewFormat format, std::ostream& out)
    : config_(std::move(config)),
      classifier_(config_),
      filter_(std::move(filter)),
      format_(format),
      out_(out),
      address_width_(filter_.OnlyIpv4() ? kIpv4EndpointWidth : kIpv6EndpointWidth),
      service_width_(std::string_view("Service").size()) {
  service_width_ = std::max(service_width_, config_->ServiceName(0).size());
  for (const ServiceConfig& service : config_->services) {
    service_width_ = std::max(service_width_, service.name.size());
  }
  for (const PortRangeConfig& range : config_->port_ranges) {
    range_width_ = std::max(range_width_, range.name.size());
  }
  CgroupResolver::UseHierarchy(config_->cgroups.hierarchy);  // as the cgroups collector does
}

void SocketListWriter::WriteHeader() {
  if (format_ != ViewFormat::kText) return;
  fmt::format_to(std::back_inserter(buffer_),
                 "{:<{}} {:<{}} {:<{}} {:<{}} {:<{}} {:<{}} {:<{}} {}\n", "Proto", kProtoWidth,
                 "Local Address:Port", address_width_, "Remote Address:Port", address_width_,
                 "State", kStateWidth, "Direction", kDirectionWidth, "Service", service_width_,
                 "Port Range", range_width_, "Cgroup");
}

std::string_view SocketListWriter::Cgroup(std::uint64_t id) {
  if (!cgroup_valid_ || id != cgroup_id_) {
    cgroup_id_ = id;
    cgroup_name_ = CgroupName(id, cgroup_storage_);
    cgroup_valid_ = true;
  }
  return cgroup_name_;
}

void SocketListWriter::OnSocket(const SocketRecord& record) {
  const Classification cls = classifier_.Classify(record);
  if (!filter_.Matches(record, cls)) return;
  const std::string_view cgroup = Cgroup(record.cgroup_id);
  if (!filter_.MatchesCgroup(cgroup)) return;
  ++listed_;
  if (format_ == ViewFormat::kText) {
    AppendText(record, cls, cgroup);
  } else {
    AppendJson(record, cls, cgroup);
  }
  if (buffer_.size() >= kFlushThreshold) Flush();
}

void SocketListWriter::AppendText(const SocketRecord& record, const Classification& cls,
                                  std::string_view cgroup) {
  std::array<char, 64> local;
  std::array<char, 64> remote;
  fmt::format_to(std::back_inserter(buffer_),
                 "{:<{}} {:<{}} {:<{}} {:<{}} {:<{}} {:<{}} {:<{}} {}\n", ProtoColumn(record),
                 kProtoWidth, FormatEndpoint(record.local, record.local_port, local),
                 address_width_, FormatEndpoint(record.remote, record.remote_port, remote),
                 address_width_, StateName(record.protocol, record.state), kStateWidth,
                 DirectionName(cls.direction), kDirectionWidth, config_->ServiceName(cls.service),
                 service_width_, config_->port_ranges[cls.port_range].name, range_width_, cgroup);
}

void SocketListWriter::AppendJson(const SocketRecord& record, const Classification& cls,
                                  std::string_view cgroup) {
  AddressText local;
  AddressText remote;
  auto it = std::back_inserter(buffer_);
  fmt::format_to(it, "{{\"protocol\":\"{}\",\"family\":\"{}\",\"state\":\"{}\",\"local_address\":",
                 ProtocolName(record.protocol), FamilyName(record.family),
                 StateName(record.protocol, record.state));
  AppendJsonString(buffer_, FormatAddress(record.local, local));
  fmt::format_to(it, ",\"local_port\":{},\"remote_address\":", record.local_port);
  AppendJsonString(buffer_, FormatAddress(record.remote, remote));
  fmt::format_to(it,
                 ",\"remote_port\":{},\"direction\":\"{}\",\"service_port\":{},"
                 "\"service_name\":",
                 record.remote_port, DirectionName(cls.direction), cls.service_port);
  AppendJsonString(buffer_, config_->ServiceName(cls.service));
  fmt::format_to(it, ",\"port_range\":");
  AppendJsonString(buffer_, config_->port_ranges[cls.port_range].name);
  fmt::format_to(it, ",\"cgroup\":");
  AppendJsonString(buffer_, cgroup);
  fmt::format_to(it, "}}\n");
}

void SocketListWriter::Flush() {
  out_.write(buffer_.data(), static_cast<std::streamsize>(buffer_.size()));
  buffer_.clear();
}

Result<std::uint64_t> WriteSocketList(SocketSource& source, std::shared_ptr<const Config> config,
                                      const SocketFilter& filter, ViewFormat format,
                                      std::ostream& out) {
  SocketListWriter writer(std::move(config), filter, format, out);
  writer.WriteHeader();
  auto stats = source.Stream(writer);
  writer.Flush();
  out.flush();
  if (!stats) return std::unexpected(stats.error());
  if (stats->dump_interrupted > 0) {
    spdlog::warn(
        "the kernel flagged {} dump(s) as interrupted by table changes: a socket may be "
        "missing or listed twice",
        stats->dump_interrupted);
  }
  return writer.listed();
}

void WriteSummary(const std::vector<prometheus::MetricFamily>& families, const Config& config,
                  std::ostream& out) {
  const auto* scanned = FindFamily(families, "socket_exporter_sockets_scanned");
  if (scanned != nullptr && !scanned->metric.empty()) {
    // One sample per source, or per namespace with the netns collector.
    double total = 0;
    std::vector<std::string> sources;
    for (const auto& metric : scanned->metric) {
      total += ValueOf(*scanned, metric);
      const std::string source(LabelOf(metric, "source"));
      if (!Contains(sources, source)) sources.push_back(source);
    }
    out << "Sockets scanned: " << Count(total) << " (source " << Join(sources) << "), config "
        << config.source << "\n";
  } else {
    out << "Sockets scanned: none (no collector reads sockets), config " << config.source << "\n";
  }
  // With the netns collector, every family carries a netns label: the
  // tables then sum over the namespaces, as sum without (netns) would.
  if (const auto* connections = FindFamily(families, "socket_connections")) {
    std::vector<std::string> namespaces;
    for (const auto& metric : connections->metric) {
      const std::string netns(LabelOf(metric, "netns"));
      if (!netns.empty() && !Contains(namespaces, netns)) namespaces.push_back(netns);
    }
    if (!namespaces.empty()) {
      out << "Summed over " << namespaces.size() << " network namespaces (collector netns)\n";
    }
  }
  out << '\n';
  WriteConnectionTables(families, config, out);
  WriteEphemeralTables(families, out);
  WriteCgroupTables(families, out);
}

int RunSocketView(const Options& options, std::shared_ptr<const Config> config,
                  const Scraper& scraper, const ScraperOptions& scraper_options) {
  if (options.summary) {
    // The collection --once makes; only the rendering differs.
    ScrapeOutcome outcome = scraper.CollectNow();
    WriteSummary(outcome.families, *config, std::cout);
    std::cout.flush();
    return outcome.all_succeeded ? 0 : 2;
  }
  auto filter = ParseSocketFilter(options.filter, *config);
  if (!filter) {
    std::cerr << "socket_exporter: " << filter.error().message << "\n";
    return 1;
  }
  auto source = scraper_options.make_source
                    ? scraper_options.make_source()
                    : MakeSocketSource(scraper_options.source, scraper_options.procfs_root);
  const ViewFormat format = options.output == "json" ? ViewFormat::kJson : ViewFormat::kText;
  auto listed = WriteSocketList(*source, std::move(config), *filter, format, std::cout);
  if (!listed) {
    spdlog::error("reading the socket table ({}) failed: {}", source->Name(),
                  listed.error().message);
    return 2;
  }
  return 0;
}

}  // namespace socket_exporter
