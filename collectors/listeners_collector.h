// Accept queues of listening TCP ports, half-open connections per listening
// port, and the namespace's listen-overflow and SYN cookie counters.
//
// From the shared socket pass (netlink reports, for a LISTEN socket, the
// accept-queue length in rqueue and the backlog limit in wqueue):
//   socket_listen_queue_length{protocol, family, port, service_name}
//   socket_listen_queue_limit{protocol, family, port, service_name}
//   socket_listen_syn_recv{family, port, service_name}
// Listeners sharing (family, port) -- SO_REUSEPORT groups, or one per local
// address -- are summed. A SYN_RECV socket (a request socket, state 3 or 12)
// is counted for the listening port it arrived on: the classifier makes it
// inbound with service_port = its local port, and the source's ordering
// contract (listeners before every socket with a peer, socket_source.h)
// means that port's listener has already been seen in the same pass.
//
// Cardinality: every listening port named by a configured service gets its
// series; of the other ports, the listeners.top_other_ports fullest (highest
// length/limit, then longest queue, then lowest port) get theirs; the rest
// are summed per family into one series with port="other",
// service_name="other", published only while something is folded into it.
//
// From <NetRoot()>/net/netstat (the counters of the namespace whose sockets
// are walked, read in Begin; see ScrapeContext):
//   socket_listen_overflows_total   TcpExt.ListenOverflows
//   socket_listen_drops_total       TcpExt.ListenDrops
//   socket_syncookies_sent_total    TcpExt.SyncookiesSent
//   socket_syncookies_recv_total    TcpExt.SyncookiesRecv
//   socket_syncookies_failed_total  TcpExt.SyncookiesFailed
// A counter the kernel does not have is left out; an unreadable or malformed
// file fails the collector.
//
// Thread safety: see collector.h (one scrape at a time).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>

#include "collectors/collector.h"

namespace socket_exporter {

inline constexpr std::string_view kListenersCollectorName = "listeners";

// The `listeners:` section of the config file.
struct ListenersSettings : SectionSettings {
  // Listening ports outside the configured services that get their own series:
  // the K fullest accept queues.
  std::uint32_t top_other_ports = 10;
};
std::shared_ptr<const SectionSettings> ParseListenersSettings(yaml::FieldReader& reader,
                                                              const yaml::Field* section);

class ListenersCollector : public Collector {
 public:
  Result<void> Begin(const ScrapeContext& context) override;
  void Observe(const SocketRecord& record, const Classification& cls) override;
  Result<void> Finish(std::vector<prometheus::MetricFamily>& out) override;

 private:
  struct Queue {
    std::uint64_t length = 0;    // sum of accept-queue lengths
    std::uint64_t limit = 0;     // sum of backlog limits
    std::uint64_t syn_recv = 0;  // half-open connections to the port
    std::uint16_t service = 0;   // config service index, 0 = "other"
  };
  // (port << 1) | family: one entry per listening (family, port).
  static std::uint32_t Key(Family family, std::uint16_t port) {
    return (std::uint32_t{port} << 1) | static_cast<std::uint32_t>(family);
  }

  std::shared_ptr<const Config> config_;
  std::unordered_map<std::uint32_t, Queue> queues_;  // this scrape
  std::map<std::string, std::uint64_t> netstat_;     // this scrape
};

}  // namespace socket_exporter
