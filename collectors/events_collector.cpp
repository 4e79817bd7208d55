#include "collectors/events_collector.h"

#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <tuple>

#include "collectors/sources/netns_discovery.h"
#include "config/yaml_reader.h"

namespace socket_exporter {
namespace {

constexpr auto kRetryInterval = std::chrono::seconds(60);
constexpr std::uint8_t kIpprotoTcp = 6;
constexpr std::uint8_t kIpprotoUdp = 17;

// Accumulates counters by their full label set, so keys that differ only
// in what the labels do not show (the exact port of a service) add up.
class Series {
 public:
  void Add(Labels labels, std::uint64_t value) {
    std::vector<std::pair<std::string, std::string>> key;
    key.reserve(labels.size());
    for (auto& label : labels) key.emplace_back(std::move(label.name), std::move(label.value));
    double& slot = values_[std::move(key)];
    slot += static_cast<double>(value);
  }
  void Emit(FamilyRef family) const {
    for (const auto& [key, value] : values_) {
      Labels labels;
      for (const auto& [name, text] : key) labels.push_back({name, text});
      AddCounter(family, std::move(labels), value);
    }
  }

 private:
  std::map<std::vector<std::pair<std::string, std::string>>, double> values_;
};

std::string_view RangeName(const Config& config, std::uint16_t port) {
  return config.port_ranges[config.range_of_port[port]].name;
}

const std::string& ServiceName(const Config& config, Protocol protocol, std::uint16_t port) {
  return config.ServiceName(config.service_of_port[static_cast<std::size_t>(protocol)][port]);
}

std::uint32_t OwnNetnsInode() {
  struct stat st {};
  if (::stat("/proc/self/ns/net", &st) != 0) return 0;
  return static_cast<std::uint32_t>(st.st_ino);
}

}  // namespace

std::shared_ptr<const SectionSettings> ParseEventsSettings(yaml::FieldReader& reader,
                                                           const yaml::Field* section) {
  static constexpr std::array<std::string_view, 1> kKeys = {"top_destinations"};
  auto settings = std::make_shared<EventsSettings>();
  if (section == nullptr) return settings;
  reader.ForEachEntry(
      *section, [&](const std::string& key, yaml::Position key_pos, const yaml::Field& value) {
        if (key == "top_destinations") {
          if (auto v = reader.ParseUint(value, 0, 1000)) settings->top_destinations = *v;
        } else {
          reader.UnknownKey(*section, key, key_pos, kKeys);
        }
      });
  return settings;
}

std::string_view ConnectResultName(ConnectOutcome outcome, std::int32_t error) {
  switch (outcome) {
    case ConnectOutcome::kEstablished:
      return "ok";
    case ConnectOutcome::kNoPort:
      return "no_ports";
    case ConnectOutcome::kClosed:
      break;
  }
  switch (error) {
    case ECONNREFUSED:
      return "refused";
    case ETIMEDOUT:
      return "timed_out";
    case ECONNRESET:
      return "reset";
    case EHOSTUNREACH:
    case ENETUNREACH:
    case EHOSTDOWN:
    case ENETDOWN:
      return "unreachable";
    default:
      // 0: closed by its owner before any answer (e.g. a non-blocking
      // connect given up), or an error without a name here.
      return "other";
  }
}

std::string_view BindResultName(std::int32_t error) {
  switch (error) {
    case EADDRINUSE:
      return "addr_in_use";
    case EADDRNOTAVAIL:
      return "addr_not_available";
    case EACCES:
    case EPERM:
      return "permission_denied";
    case EINVAL:
      return "invalid";
    default:
      return "other";
  }
}

std::string_view BindProtocolName(std::uint8_t protocol) {
  if (protocol == kIpprotoTcp) return "tcp";
  if (protocol == kIpprotoUdp) return "udp";
  return "other";
}

void BuildEventFamilies(const DecodedEvents& events, const Config& config, const EventsView& view,
                        std::vector<prometheus::MetricFamily>& out) {
  auto counted = [&](std::uint32_t netns) {
    return view.all_namespaces || netns == view.own_netns;
  };
  auto with_netns = [&](Labels labels, std::uint32_t netns) {
    if (view.all_namespaces) {
      labels.push_back(
          {"netns", view.netns_label ? view.netns_label(netns) : "ino:" + std::to_string(netns)});
    }
    return labels;
  };

  Series connects;
  for (const ConnectCount& c : events.connects) {
    if (!counted(c.netns)) continue;
    connects.Add(with_netns({{"family", std::string(FamilyName(c.family))},
                             {"result", std::string(ConnectResultName(c.outcome, c.error))},
                             {"service_name", ServiceName(config, Protocol::kTcp, c.remote_port)},
                             {"port_range", std::string(RangeName(config, c.remote_port))}},
                            c.netns),
                 c.count);
  }
  connects.Emit(AddFamily(out, "socket_connects_total",
                          "TCP active opens (connect()) by outcome, counted in the kernel at "
                          "every SYN_SENT exit; service_name and port_range from the remote port.",
                          prometheus::MetricType::Counter));

  // Per destination: the top_destinations destinations by failures (all
  // results together), each with its results.
  struct Destination {
    std::uint32_t netns;
    Family family;
    std::string local, remote;
    std::uint16_t port;
    auto Key() const { return std::tie(netns, family, local, remote, port); }
    bool operator<(const Destination& other) const { return Key() < other.Key(); }
  };
  std::map<Destination, std::uint64_t> failures;
  std::vector<std::pair<Destination, const DestinationCount*>> rows;
  for (const DestinationCount& d : events.destinations) {
    if (!counted(d.connect.netns)) continue;
    Destination key{d.connect.netns, d.connect.family, d.local.Normalized().ToString(),
                    d.remote.Normalized().ToString(), d.connect.remote_port};
    failures[key] += d.connect.count;
    rows.emplace_back(std::move(key), &d);
  }
  std::vector<std::pair<std::uint64_t, Destination>> ranked;
  for (const auto& [key, total] : failures) ranked.emplace_back(total, key);
  std::stable_sort(ranked.begin(), ranked.end(),
                   [](const auto& a, const auto& b) { return a.first > b.first; });
  const std::uint32_t top_destinations =
      config.Section<EventsSettings>(kEventsCollectorName).top_destinations;
  if (ranked.size() > top_destinations) ranked.resize(top_destinations);
  std::map<Destination, bool> top;
  for (const auto& item : ranked) top[item.second] = true;
  Series destinations;
  for (const auto& [key, d] : rows) {
    if (!top.contains(key)) continue;
    destinations.Add(
        with_netns(
            {{"family", std::string(FamilyName(key.family))},
             {"result", std::string(ConnectResultName(d->connect.outcome, d->connect.error))},
             {"local_address", key.local},
             {"remote_address", key.remote},
             {"remote_port", std::to_string(key.port)},
             {"service_name", ServiceName(config, Protocol::kTcp, key.port)}},
            key.netns),
        d->connect.count);
  }
  destinations.Emit(AddFamily(
      out, "socket_connect_destination_failures_total",
      "Failed TCP connects per destination (local address, remote address, remote port), for "
      "the events.top_destinations destinations with the most failures.",
      prometheus::MetricType::Counter));

  Series binds;
  for (const BindCount& b : events.binds) {
    if (!counted(b.netns)) continue;
    const Protocol protocol = b.protocol == kIpprotoUdp ? Protocol::kUdp : Protocol::kTcp;
    binds.Add(with_netns({{"protocol", std::string(BindProtocolName(b.protocol))},
                          {"result", std::string(BindResultName(b.error))},
                          {"service_name", ServiceName(config, protocol, b.port)},
                          {"port_range", std::string(RangeName(config, b.port))}},
                         b.netns),
              b.count);
  }
  binds.Emit(AddFamily(out, "socket_bind_failures_total",
                       "Failed bind() calls on TCP/UDP sockets by error; service_name and "
                       "port_range from the port asked for (0 = any).",
                       prometheus::MetricType::Counter));

  Series retransmits, resets;
  for (const TcpEventCount& t : events.tcp_events) {
    if (!counted(t.netns)) continue;
    Labels labels{{"family", std::string(FamilyName(t.family))},
                  {"service_name", ServiceName(config, Protocol::kTcp, t.service_port)},
                  {"direction", t.inbound ? "inbound" : "outbound"}};
    if (t.kind == TcpEventKind::kRetransmit) {
      retransmits.Add(with_netns(std::move(labels), t.netns), t.count);
    } else {
      labels.push_back({"side", t.kind == TcpEventKind::kResetSent ? "sent" : "received"});
      resets.Add(with_netns(std::move(labels), t.netns), t.count);
    }
  }
  retransmits.Emit(AddFamily(out, "socket_tcp_retransmits_total",
                             "TCP segments retransmitted (data, SYN, SYN-ACK), by the service "
                             "port's service and direction.",
                             prometheus::MetricType::Counter));
  resets.Emit(AddFamily(out, "socket_tcp_resets_total",
                        "TCP resets sent and received, by the service port's service and "
                        "direction.",
                        prometheus::MetricType::Counter));

  auto dropped = AddFamily(out, "socket_exporter_events_dropped_total",
                           "Kernel events of the events collector not counted because their "
                           "BPF map was full (map).",
                           prometheus::MetricType::Counter);
  for (std::size_t i = 0; i < kEventMapCount; ++i) {
    AddCounter(dropped, {{"map", EventMapName(static_cast<EventMap>(i))}},
               static_cast<double>(events.overflow[i]));
  }
}

EventsCollector::EventsCollector() = default;
EventsCollector::~EventsCollector() = default;

Result<void> EventsCollector::Begin(const ScrapeContext& context) {
  config_ = context.config;
  all_namespaces_ = context.all_namespaces;
  procfs_root_ = context.procfs_root;
  if (!bpf_) {
    const auto now = Clock::now();
    if (attempted_ && now - last_attempt_ < kRetryInterval) return Fail(open_error_);
    attempted_ = true;
    last_attempt_ = now;
    own_netns_ = OwnNetnsInode();
    auto opened = BpfSocketEvents::Open(own_netns_);
    if (!opened) {
      open_error_ = opened.error().message;
      return Fail(open_error_);
    }
    bpf_ = std::move(*opened);
    if (bpf_->Warning().empty()) {
      spdlog::info("events collector: BPF event counters attached");
    } else {
      spdlog::warn("events collector: BPF event counters attached; {}", bpf_->Warning());
    }
  }
  return bpf_->SetAllNamespaces(all_namespaces_);
}

std::string EventsCollector::LabelOf(std::uint32_t inode) {
  if (inode == own_netns_) return "host";
  const auto now = Clock::now();
  const auto cache = std::chrono::seconds(config_ ? config_->netns.cache_seconds : 5);
  if (!labels_.contains(inode) && (!have_labels_ || now - labels_at_ >= cache)) {
    NetnsDiscoveryOptions options;
    options.procfs_root = procfs_root_;
    if (auto found = DiscoverNamespaces(options)) {
      for (const NetnsEntry& entry : *found) {
        labels_[static_cast<std::uint32_t>(entry.inode)] = entry.label;
      }
    }
    have_labels_ = true;
    labels_at_ = now;
  }
  if (auto it = labels_.find(inode); it != labels_.end()) return it->second;
  return "ino:" + std::to_string(inode);
}

Result<void> EventsCollector::Finish(std::vector<prometheus::MetricFamily>& out) {
  auto dump = bpf_->Read();
  if (!dump) return std::unexpected(dump.error());
  auto decoded = DecodeEvents(*dump);
  if (!decoded) return Fail("BPF event maps: " + decoded.error().message);
  EventsView view;
  view.own_netns = own_netns_;
  view.all_namespaces = all_namespaces_;
  view.netns_label = [this](std::uint32_t inode) { return LabelOf(inode); };
  BuildEventFamilies(*decoded, *config_, view, out);
  return {};
}

}  // namespace socket_exporter
