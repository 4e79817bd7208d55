#include "collectors/listeners_collector.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <unordered_set>
#include <vector>

#include "collectors/sources/netstat_parser.h"
#include "common/read_file.h"
#include "config/yaml_reader.h"

namespace socket_exporter {
namespace {

// How full a queue is. A limit of 0 (listen(fd, 0), or the /proc/net
// source, which does not report the limit) counts as 1, so a queue holding
// anything still ranks as full.
double Fill(std::uint64_t length, std::uint64_t limit) {
  return static_cast<double>(length) / static_cast<double>(std::max<std::uint64_t>(limit, 1));
}

struct NetstatCounter {
  const char* key;
  const char* metric;
  const char* help;
};

constexpr std::array<NetstatCounter, 5> kNetstatCounters = {{
    {"TcpExt.ListenOverflows", "socket_listen_overflows_total",
     "Times a listener's accept queue was full when a connection arrived (TcpExt "
     "ListenOverflows in /proc/net/netstat, this network namespace)."},
    {"TcpExt.ListenDrops", "socket_listen_drops_total",
     "Connection attempts a listener dropped for any reason, overflows included (TcpExt "
     "ListenDrops)."},
    {"TcpExt.SyncookiesSent", "socket_syncookies_sent_total",
     "SYN cookies sent because a listener's SYN queue was full or tcp_syncookies=2 (TcpExt "
     "SyncookiesSent)."},
    {"TcpExt.SyncookiesRecv", "socket_syncookies_recv_total",
     "Valid SYN cookies received: connections completed through a cookie (TcpExt "
     "SyncookiesRecv)."},
    {"TcpExt.SyncookiesFailed", "socket_syncookies_failed_total",
     "Invalid SYN cookies received (TcpExt SyncookiesFailed)."},
}};

}  // namespace

Result<void> ListenersCollector::Begin(const ScrapeContext& context) {
  config_ = context.config;
  queues_.clear();
  netstat_.clear();
  // NetRoot() is the procfs directory whose net/ belongs to the namespace
  // of this pass's sockets, so the counters match the queues.
  const std::string path = context.NetRoot() + "/net/netstat";
  TRY_ASSIGN(auto text, ReadRequiredFile(path));
  auto counters = ParseNetstat(text);
  if (!counters) return Fail(fmt::format("{}: {}", path, counters.error().message));
  netstat_ = std::move(*counters);
  return {};
}

void ListenersCollector::Observe(const SocketRecord& record, const Classification& cls) {
  // UDP has no accept queue.
  if (record.protocol != Protocol::kTcp) return;
  if (cls.is_listener) {
    Queue& queue = queues_[Key(record.family, record.local_port)];
    queue.length += record.rqueue;
    queue.limit += record.wqueue;
    queue.service = cls.service;
    return;
  }
  if ((record.state == kTcpSynRecv || record.state == kTcpNewSynRecv) &&
      cls.direction == Direction::kInbound) {
    // A request socket has its listener's family (an IPv4 client of a
    // dual-stack listener is an AF_INET6 request), so (family, port) finds
    // the listener that will accept it.
    auto it = queues_.find(Key(record.family, cls.service_port));
    if (it != queues_.end()) ++it->second.syn_recv;
  }
}

Result<void> ListenersCollector::Finish(std::vector<prometheus::MetricFamily>& out) {
  using prometheus::MetricType;

  // Rank the ports no service names: a port's fill is its fullest family's.
  struct Rank {
    std::uint16_t port = 0;
    double fill = 0;
    std::uint64_t length = 0;
  };
  std::unordered_map<std::uint16_t, Rank> by_port;
  for (const auto& [key, queue] : queues_) {
    if (queue.service != 0) continue;
    const auto port = static_cast<std::uint16_t>(key >> 1);
    Rank& rank = by_port[port];
    rank.port = port;
    rank.fill = std::max(rank.fill, Fill(queue.length, queue.limit));
    rank.length += queue.length;
  }
  std::vector<Rank> ranked;
  ranked.reserve(by_port.size());
  for (const auto& [port, rank] : by_port) ranked.push_back(rank);
  const std::size_t kept_count = std::min<std::size_t>(
      config_->Section<ListenersSettings>(kListenersCollectorName).top_other_ports, ranked.size());
  std::partial_sort(ranked.begin(), ranked.begin() + static_cast<std::ptrdiff_t>(kept_count),
                    ranked.end(), [](const Rank& a, const Rank& b) {
                      if (a.fill != b.fill) return a.fill > b.fill;
                      if (a.length != b.length) return a.length > b.length;
                      return a.port < b.port;
                    });
  std::unordered_set<std::uint16_t> kept;
  for (std::size_t i = 0; i < kept_count; ++i) kept.insert(ranked[i].port);

  auto length = AddFamily(out, "socket_listen_queue_length",
                          "Connections waiting in the accept queue of the listening port (sum "
                          "over its listeners); port=\"other\" sums the ports beyond "
                          "listeners.top_other_ports.",
                          MetricType::Gauge);
  auto limit = AddFamily(out, "socket_listen_queue_limit",
                         "Accept queue limit (listen() backlog, capped by net.core.somaxconn) of "
                         "the listening port, summed over its listeners; 0 from the /proc/net "
                         "source, which does not report it.",
                         MetricType::Gauge);
  auto syn_recv = AddFamily(out, "socket_listen_syn_recv",
                            "Half-open connections (SYN received, handshake not complete) to "
                            "the listening port.",
                            MetricType::Gauge);

  // Ordered by port then family, so the output is stable between scrapes.
  std::vector<std::pair<std::uint32_t, const Queue*>> ordered;
  ordered.reserve(queues_.size());
  for (const auto& [key, queue] : queues_) ordered.emplace_back(key, &queue);
  std::sort(ordered.begin(), ordered.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  std::array<Queue, 2> folded{};  // per family
  std::array<bool, 2> has_folded{};
  auto publish = [&](Family family, const std::string& port, const std::string& service,
                     const Queue& queue) {
    const std::string family_name(FamilyName(family));
    Labels labels{
        {"protocol", "tcp"}, {"family", family_name}, {"port", port}, {"service_name", service}};
    AddGauge(length, labels, static_cast<double>(queue.length));
    AddGauge(limit, std::move(labels), static_cast<double>(queue.limit));
    AddGauge(syn_recv, {{"family", family_name}, {"port", port}, {"service_name", service}},
             static_cast<double>(queue.syn_recv));
  };
  for (const auto& [key, queue] : ordered) {
    const auto family = static_cast<Family>(key & 1U);
    const auto port = static_cast<std::uint16_t>(key >> 1);
    if (queue->service != 0 || kept.contains(port)) {
      publish(family, std::to_string(port), config_->ServiceName(queue->service), *queue);
      continue;
    }
    Queue& sum = folded[static_cast<std::size_t>(family)];
    sum.length += queue->length;
    sum.limit += queue->limit;
    sum.syn_recv += queue->syn_recv;
    has_folded[static_cast<std::size_t>(family)] = true;
  }
  for (Family family : {Family::kIpv4, Family::kIpv6}) {
    const auto index = static_cast<std::size_t>(family);
    if (has_folded[index]) publish(family, "other", "other", folded[index]);
  }

  for (const NetstatCounter& counter : kNetstatCounters) {
    const auto it = netstat_.find(counter.key);
    if (it == netstat_.end()) continue;  // not in this kernel
    AddCounter(AddFamily(out, counter.metric, counter.help, MetricType::Counter), {},
               static_cast<double>(it->second));
  }
  return {};
}

std::shared_ptr<const SectionSettings> ParseListenersSettings(yaml::FieldReader& reader,
                                                              const yaml::Field* section) {
  static constexpr std::array<std::string_view, 1> kKeys = {"top_other_ports"};
  auto settings = std::make_shared<ListenersSettings>();
  if (section == nullptr) return settings;
  reader.ForEachEntry(
      *section, [&](const std::string& key, yaml::Position key_pos, const yaml::Field& value) {
        if (key == "top_other_ports") {
          if (auto v = reader.ParseUint(value, 0, 1000)) settings->top_other_ports = *v;
        } else {
          reader.UnknownKey(*section, key, key_pos, kKeys);
        }
      });
  return settings;
}

}  // namespace socket_exporter
