#include "collectors/ephemeral_collector.h"

#include <fmt/format.h>

#include <algorithm>
#include <bit>
#include <charconv>
#include <cstring>

#include "common/read_file.h"

namespace socket_exporter {
namespace {

bool Test(const std::array<std::uint64_t, 1024>& bits, std::uint16_t port) {
  return (bits[port >> 6] >> (port & 63)) & 1U;
}
void Set(std::array<std::uint64_t, 1024>& bits, std::uint16_t port) {
  bits[port >> 6] |= std::uint64_t{1} << (port & 63);
}
// Sets (or clears) the bits of ports first..last, inclusive.
void SetRange(std::array<std::uint64_t, 1024>& bits, std::uint32_t first, std::uint32_t last,
              bool value) {
  while (first <= last) {
    const std::uint32_t word = first >> 6;
    const std::uint32_t low = first & 63;
    const std::uint32_t high = std::min<std::uint32_t>(63, low + (last - first));
    const std::uint64_t mask = (~std::uint64_t{0} >> (63 - high)) & (~std::uint64_t{0} << low);
    if (value) {
      bits[word] |= mask;
    } else {
      bits[word] &= ~mask;
    }
    first += high - low + 1;
  }
}
std::uint32_t Count(const std::array<std::uint64_t, 1024>& bits) {
  std::uint32_t n = 0;
  for (std::uint64_t word : bits) n += static_cast<std::uint32_t>(std::popcount(word));
  return n;
}

std::string_view Trim(std::string_view text) {
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.front()))) {
    text.remove_prefix(1);
  }
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) {
    text.remove_suffix(1);
  }
  return text;
}

Result<std::uint16_t> ParsePort(std::string_view text, std::string_view what) {
  unsigned value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size() || value > 65535) {
    return Fail(fmt::format("{}: \"{}\" is not a port number 0-65535", what, text));
  }
  return static_cast<std::uint16_t>(value);
}

std::string FormatThreshold(double threshold) { return fmt::format("{}", threshold); }

}  // namespace

Result<PortInterval> ParseLocalPortRange(std::string_view text) {
  text = Trim(text);
  const auto space = text.find_first_of(" \t");
  if (space == std::string_view::npos) {
    return Fail(fmt::format("ip_local_port_range: expected two ports, got \"{}\"", text));
  }
  auto first = ParsePort(Trim(text.substr(0, space)), "ip_local_port_range");
  if (!first) return std::unexpected(first.error());
  auto last = ParsePort(Trim(text.substr(space)), "ip_local_port_range");
  if (!last) return std::unexpected(last.error());
  if (*first > *last) {
    return Fail(
        fmt::format("ip_local_port_range: first port {} above last port {}", *first, *last));
  }
  return PortInterval{*first, *last};
}

Result<std::vector<PortInterval>> ParseReservedPorts(std::string_view text) {
  std::vector<PortInterval> out;
  text = Trim(text);
  while (!text.empty()) {
    const auto comma = text.find(',');
    const std::string_view item = Trim(text.substr(0, comma));
    text = comma == std::string_view::npos ? std::string_view{} : text.substr(comma + 1);
    if (item.empty()) return Fail("ip_local_reserved_ports: empty element in list");
    const auto dash = item.find('-');
    if (dash == std::string_view::npos) {
      auto port = ParsePort(item, "ip_local_reserved_ports");
      if (!port) return std::unexpected(port.error());
      out.push_back({*port, *port});
      continue;
    }
    auto first = ParsePort(Trim(item.substr(0, dash)), "ip_local_reserved_ports");
    if (!first) return std::unexpected(first.error());
    auto last = ParsePort(Trim(item.substr(dash + 1)), "ip_local_reserved_ports");
    if (!last) return std::unexpected(last.error());
    if (*first > *last) {
      return Fail(fmt::format("ip_local_reserved_ports: range \"{}\" runs backwards", item));
    }
    out.push_back({*first, *last});
  }
  return out;
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
  const std::string base = context.procfs_root + "/sys/net/ipv4/";
  auto range_text = ReadRequiredFile(base + "ip_local_port_range");
  if (!range_text) return std::unexpected(range_text.error());
  auto range = ParseLocalPortRange(*range_text);
  if (!range) return std::unexpected(range.error());
  // Older kernels or restricted procfs may lack the reserved list: none reserved.
  std::vector<PortInterval> reserved;
  if (auto reserved_text = ReadRequiredFile(base + "ip_local_reserved_ports")) {
    auto parsed = ParseReservedPorts(*reserved_text);
    if (!parsed) return std::unexpected(parsed.error());
    reserved = std::move(*parsed);
  }

  range_ = *range;
  usable_.fill(0);
  // Whole words at a time: a port-by-port loop over a wide range was a
  // visible share of a small scrape (BENCHMARKS.md).
  SetRange(usable_, range_.first, range_.last, true);
  const std::uint32_t range_size = Count(usable_);
  for (const PortInterval& interval : reserved) {
    SetRange(usable_, interval.first, interval.last, false);
  }
  usable_count_ = Count(usable_);
  reserved_in_range_ = range_size - usable_count_;
  for (PerProtocol& p : protocols_) {
    p.bind_locked.fill(0);
    p.used.fill(0);
    p.destinations.clear();
    p.untracked_sockets = 0;
  }
  return {};
}

void EphemeralCollector::Observe(const SocketRecord& record, const Classification& cls) {
  const std::uint16_t port = record.local_port;
  if (!Test(usable_, port)) return;
  PerProtocol& p = protocols_[static_cast<std::size_t>(record.protocol)];
  Set(p.used, port);
  if (cls.is_listener || HasNoPeer(record)) {
    // A listener, or a socket bound to the port without a peer: connect()
    // will not pick this port for anyone.
    Set(p.bind_locked, port);
    return;
  }
  if (Test(p.bind_locked, port)) return;  // e.g. accepted on a listener inside R
  Destination d{record.local.Normalized(), record.remote.Normalized(), record.remote_port};
  auto it = p.destinations.find(d);
  if (it == p.destinations.end()) {
    if (p.destinations.size() >= config_->ephemeral.max_tracked_destinations) {
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
           {}, usable_count_);
  AddGauge(AddFamily(out, "socket_ephemeral_range_start_port",
                     "First port of net.ipv4.ip_local_port_range.", MetricType::Gauge),
           {}, range_.first);
  AddGauge(AddFamily(out, "socket_ephemeral_range_end_port",
                     "Last port of net.ipv4.ip_local_port_range.", MetricType::Gauge),
           {}, range_.last);
  AddGauge(AddFamily(out, "socket_ephemeral_reserved_ports",
                     "Ports of ip_local_port_range excluded by ip_local_reserved_ports.",
                     MetricType::Gauge),
           {}, reserved_in_range_);

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

  const auto& thresholds = config_->ephemeral.utilization_thresholds;
  for (Protocol protocol : {Protocol::kTcp, Protocol::kUdp}) {
    PerProtocol& p = protocols_[static_cast<std::size_t>(protocol)];
    const std::string proto(ProtocolName(protocol));
    std::uint32_t locked_count = 0;
    for (std::size_t i = 0; i < p.bind_locked.size(); ++i) {
      locked_count += static_cast<std::uint32_t>(std::popcount(p.bind_locked[i] & usable_[i]));
    }
    const std::uint32_t cap = usable_count_ - locked_count;
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
    AddGauge(used, {{"protocol", proto}}, Count(p.used));
    AddGauge(max_ratio, {{"protocol", proto}},
             p.destinations.empty() && cap > 0 ? 0.0 : ratio(max_ports));
    AddGauge(destinations, {{"protocol", proto}}, static_cast<double>(p.destinations.size()));
    for (std::size_t i = 0; i < thresholds.size(); ++i) {
      AddGauge(above, {{"protocol", proto}, {"threshold", FormatThreshold(thresholds[i])}},
               static_cast<double>(above_counts[i]));
    }
    AddGauge(untracked, {{"protocol", proto}}, static_cast<double>(p.untracked_sockets));

    // Top K destinations by ports used; ties broken by address for stable output.
    const std::size_t k = config_->ephemeral.top_destinations;
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

}  // namespace socket_exporter
