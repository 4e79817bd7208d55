// The work of the `netns` scrape mode (docs/netns.md, kNetnsMode in collectors/registry.h):
//
//   1. discovery of the host's network namespaces (collectors/sources/netns_discovery.h),
//      reused for netns.cache_seconds, then include/exclude/max_namespaces;
//   2. for each selected namespace, on one worker thread: open the namespace
//      (by name or through one of its processes, checking the inode), setns()
//      into it, and run the socket collectors' Begin, one socket pass and
//      Finish there (collectors/collector_pass.h). Everything that reads kernel
//      state therefore sees that namespace: the netlink socket is created on
//      the worker after setns() and stays bound to it, sysctls under
//      /proc/sys/net follow the opening thread, and /proc/net files are read
//      through /proc/thread-self (ScrapeContext::procfs_net_root).
//      With netns.source bpf/auto and a BpfSocketWalk that loads
//      (collectors/sources/bpf_socket_walk.h), only Begin runs inside each namespace;
//      one walk of the shared socket tables then feeds every namespace's
//      collectors (namespaces with tables of their own are read with
//      netlink inside them), and an incomplete walk makes the scrape redo
//      everything the netlink way;
//   3. a netns="<label>" label on every family the socket collectors produce,
//      families of the same name merged across namespaces, plus the
//      socket_exporter_netns_* families.
//
// Each namespace keeps its own collector instances (keyed by inode), so the
// collectors' sticky series are per namespace; a namespace that disappears
// takes its instances and series with it. A namespace that vanishes between
// discovery and its pass is skipped silently; one that cannot be opened or
// entered (setns EPERM, e.g. owned by another user namespace) gets
// socket_exporter_netns_scrape_success 0 and the others go on.
//
// Without CAP_SYS_ADMIN only the exporter's own namespace ("host") is
// scraped, one warning says why, and the netns collector reports failure.
//
// Thread safety: Collect() is called by one thread at a time (the Scraper
// serializes collections); it runs the passes on a worker thread it joins
// before returning.
#pragma once

#include <prometheus/metric_family.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "collectors/collector.h"
#include "collectors/registry.h"
#include "collectors/sources/bpf_socket_walk.h"
#include "collectors/sources/netns_discovery.h"
#include "collectors/sources/socket_source.h"
#include "collectors/sources/socket_sources.h"
#include "config/config.h"

namespace socket_exporter {

struct NetnsScraperOptions {
  SourceKind source = SourceKind::kAuto;
  std::string procfs_root = "/proc";
  std::string netns_dir = "/var/run/netns";
  // Replaces MakeSocketSource() for every namespace when set (tests).
  std::function<std::unique_ptr<SocketSource>()> make_source;
  // Where the socket collectors named in Collect() are made from.
  std::vector<CollectorInfo> collectors;
};

struct NetnsCollectorRun {
  bool ok = true;                                  // succeeded in every namespace it ran in
  std::chrono::steady_clock::duration duration{};  // summed over namespaces
};

struct NetnsOutcome {
  // Socket collectors' families with the netns label, then socket_exporter_netns_*.
  std::vector<prometheus::MetricFamily> families;
  std::map<std::string, NetnsCollectorRun> runs;  // per socket collector name
  bool ok = true;                                 // the netns collector's own success
  std::chrono::steady_clock::duration duration{};
  struct Scanned {
    std::string netns;
    std::string source;
    std::uint64_t sockets = 0;
  };
  std::vector<Scanned> scanned;  // per namespace whose socket pass succeeded
  std::uint64_t dump_interrupted = 0;
};

class NetnsScraper {
 public:
  explicit NetnsScraper(NetnsScraperOptions options);

  // Runs the named socket collectors (registry names) in every selected
  // namespace.
  NetnsOutcome Collect(const std::shared_ptr<const Config>& config,
                       const std::vector<std::string>& socket_collectors);

 private:
  using Clock = std::chrono::steady_clock;
  struct NamespaceState {
    std::map<std::string, std::unique_ptr<Collector>> collectors;
    std::unique_ptr<SocketSource> source;
  };
  // Discovery (cached) or, without privilege, the own namespace; sets ok=false
  // in outcome when only a partial view is possible.
  const std::vector<NetnsEntry>& Discover(const Config& config, NetnsOutcome& outcome);
  NamespaceState& StateFor(std::uint64_t inode, const std::vector<std::string>& socket_collectors);
  // The BPF walk if the config allows it and it loads (tried once), else null.
  BpfSocketWalk* BpfWalkFor(NetnsSource source);

  const NetnsScraperOptions options_;
  const NetnsDiscoveryOptions discovery_options_;
  std::vector<NetnsEntry> cached_;
  bool have_cache_ = false;
  bool cache_privileged_ = false;
  Clock::time_point cached_at_{};
  bool logged_unprivileged_ = false;
  std::string last_discovery_error_;
  std::map<std::uint64_t, NamespaceState> states_;
  std::set<std::uint64_t> logged_failures_;  // inodes whose failure was logged
  std::unique_ptr<BpfSocketWalk> bpf_;
  bool bpf_tried_ = false;
  std::string last_walk_error_;  // logged once until it changes
};

}  // namespace socket_exporter
