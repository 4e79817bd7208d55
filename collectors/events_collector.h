// The `events` collector (docs/events.md): what actually happened between two
// scrapes, counted in the kernel by BPF programs on tracepoints
// (collectors/sources/bpf/socket_events.bpf.c): connect() outcomes by reason,
// failed connects per destination, bind() failures, TCP retransmits and
// resets. It reads no socket table (UsesSockets() is false): a scrape reads
// the counter maps, O(entries), and turns them into counters here.
//
// Namespaces: without the netns scrape mode only the exporter's own namespace
// is counted (filtered in the kernel); with it, every namespace, labelled
// netns as the socket collectors label theirs (collectors/sources/netns_discovery.h):
// the collector reads no sockets, so the mode runs it once for all namespaces
// (ScrapeContext::all_namespaces).
//
// The BPF object is loaded at the first Begin; when it cannot load (no BPF in
// the build, no CAP_BPF/CAP_PERFMON, a tracepoint missing) Begin fails with
// the reason (the collector reports success 0; the rest of the scrape
// answers), and loading is retried at most once a minute.
//
// Counters never go down while their series exists: the kernel's entries are
// never removed, the per-CPU values only grow, and sums saturate.
//
// Thread safety: see collector.h (one scrape at a time).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "collectors/collector.h"
#include "collectors/sources/bpf_socket_events.h"
#include "collectors/sources/socket_events_decode.h"

namespace socket_exporter {

inline constexpr std::string_view kEventsCollectorName = "events";

// The `events:` section of the config file.
struct EventsSettings : SectionSettings {
  // Series of socket_connect_destination_failures_total: the K destinations
  // with the most failed connects. 0 turns the per-destination series off.
  std::uint32_t top_destinations = 10;
};
std::shared_ptr<const SectionSettings> ParseEventsSettings(yaml::FieldReader& reader,
                                                           const yaml::Field* section);

// Label value of socket_connects_total's `result`.
std::string_view ConnectResultName(ConnectOutcome outcome, std::int32_t error);
// Label value of socket_bind_failures_total's `result` for bind()'s errno.
std::string_view BindResultName(std::int32_t error);
// "tcp", "udp" or "other" for an IPPROTO_* number.
std::string_view BindProtocolName(std::uint8_t protocol);

struct EventsView {
  // Count only this namespace (inode) and add no netns label...
  std::uint32_t own_netns = 0;
  // ...unless set: then every namespace, labelled by netns_label(inode).
  bool all_namespaces = false;
  std::function<std::string(std::uint32_t)> netns_label;
};

// Appends the events families for decoded map contents (no kernel access).
// config gives the port ranges and service names; it was parsed with the
// events section (the registry's schema).
void BuildEventFamilies(const DecodedEvents& events, const Config& config, const EventsView& view,
                        std::vector<prometheus::MetricFamily>& out);

class EventsCollector : public Collector {
 public:
  EventsCollector();
  ~EventsCollector() override;
  bool UsesSockets() const override { return false; }
  Result<void> Begin(const ScrapeContext& context) override;
  Result<void> Finish(std::vector<prometheus::MetricFamily>& out) override;

 private:
  using Clock = std::chrono::steady_clock;
  std::string LabelOf(std::uint32_t inode);

  std::unique_ptr<BpfSocketEvents> bpf_;
  std::string open_error_;
  Clock::time_point last_attempt_{};
  bool attempted_ = false;
  std::uint32_t own_netns_ = 0;

  // Per scrape.
  std::shared_ptr<const Config> config_;
  bool all_namespaces_ = false;
  std::string procfs_root_ = "/proc";
  // Namespace labels, kept once seen so a series keeps its label after its
  // namespace is gone; refreshed from discovery every netns.cache_seconds.
  std::map<std::uint32_t, std::string> labels_;
  Clock::time_point labels_at_{};
  bool have_labels_ = false;
};

}  // namespace socket_exporter
