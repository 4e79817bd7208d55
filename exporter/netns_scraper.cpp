#include "exporter/netns_scraper.h"

#include <fmt/format.h>
#include <sched.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <unordered_map>

#include "collectors/collector_pass.h"
#include "collectors/registry.h"
#include "collectors/sources/bpf_socket_walk.h"
#include "common/read_file.h"

namespace socket_exporter {
namespace {

using Clock = std::chrono::steady_clock;

// /proc/net follows the process's main thread; this follows the worker.
constexpr const char* kThreadNetRoot = "/proc/thread-self";

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

std::string JoinNames(const std::vector<std::string>& names) {
  std::string out;
  for (const std::string& name : names) {
    if (!out.empty()) out += ',';
    out += name;
  }
  return out;
}

// What one namespace's pass produced, filled on the worker thread.
struct NamespaceResult {
  const NetnsEntry* entry = nullptr;
  bool gone = false;  // vanished since discovery: no series, no failure
  bool ok = false;
  std::string error;  // why it could not be entered
  PassOutcome pass;
  Clock::duration duration{};
};

struct NamespaceTask {
  const NetnsEntry* entry;
  std::vector<PassCollector> collectors;
  SocketSource* source;  // netlink mode
};

struct WorkerInput {
  const std::vector<NamespaceTask>* tasks;
  std::shared_ptr<const Config> config;
  std::string procfs_root;
  const NetnsDiscoveryOptions* discovery;
  std::uint64_t own_inode;
  BpfSocketWalk* walk;  // null: netlink in each namespace
};

// Enters the task's namespace unless the thread is already there. False
// (with result.gone or result.error set) when it cannot.
bool Enter(const NamespaceTask& task, NamespaceResult& result,
           const NetnsDiscoveryOptions& discovery, std::uint64_t& current) {
  if (task.entry->inode == current) return true;
  auto fd = OpenNamespace(*task.entry, discovery);
  if (!fd) {
    result.error = fd.error().message;
  } else if (!fd->valid()) {
    result.gone = true;
  } else if (::setns(fd->get(), CLONE_NEWNET) != 0) {
    result.error = fmt::format("setns: {}", std::strerror(errno));
  } else {
    current = task.entry->inode;
    return true;
  }
  return false;
}

void Conclude(NamespaceResult& result) {
  result.ok = !result.pass.streamed || result.pass.stream_ok;
  for (const PassRun& run : result.pass.runs) result.ok = result.ok && run.ok;
}

// A namespace with socket tables of its own (tcp_child_ehash_entries /
// udp_child_hash_entries were set when it was created) is not in the shared
// tables the BPF walk reads; the sysctls, read inside it, are negative when
// the tables are shared. Missing sysctls (kernels before 6.1): shared.
bool OwnsSocketTables(const std::string& procfs_root) {
  std::string text;
  for (const char* name : {"tcp_ehash_entries", "udp_hash_entries"}) {
    auto found = ReadWholeFile(procfs_root + "/sys/net/ipv4/" + name, text);
    if (!found || !*found) continue;
    char* end = nullptr;
    const long long entries = std::strtoll(text.c_str(), &end, 10);
    if (end != text.c_str() && entries > 0) return true;
  }
  return false;
}

// Netlink mode, on the worker thread: enters each namespace in turn and runs
// its whole pass there.
void RunNetlink(const WorkerInput& in, std::vector<NamespaceResult>& results) {
  const std::vector<NamespaceTask>& tasks = *in.tasks;
  std::uint64_t current = in.own_inode;
  for (std::size_t i = 0; i < tasks.size(); ++i) {
    NamespaceResult& result = results[i];
    result = NamespaceResult{};
    result.entry = tasks[i].entry;
    const auto start = Clock::now();
    if (Enter(tasks[i], result, *in.discovery, current)) {
      ScrapeContext context{in.config, in.procfs_root, kThreadNetRoot};
      result.pass = RunCollectorPass(context, tasks[i].collectors, tasks[i].source,
                                     fmt::format(" in netns {}", tasks[i].entry->label));
      Conclude(result);
    }
    result.duration = Clock::now() - start;
  }
}

// BPF mode, on the worker thread: enters each namespace to Begin its
// collectors (sysctls, /proc/thread-self/net are per namespace), then one
// walk feeds every pass; namespaces with tables of their own are read with
// netlink inside them; then Finish (which reads no kernel state). An error
// means the walk was incomplete: the results are unusable and the caller
// runs RunNetlink instead.
Result<void> RunBpf(const WorkerInput& in, std::vector<NamespaceResult>& results) {
  const std::vector<NamespaceTask>& tasks = *in.tasks;
  std::uint64_t current = in.own_inode;
  std::vector<std::unique_ptr<CollectorPass>> passes(tasks.size());
  std::vector<bool> owns_tables(tasks.size(), false);
  for (std::size_t i = 0; i < tasks.size(); ++i) {
    NamespaceResult& result = results[i];
    result.entry = tasks[i].entry;
    const auto start = Clock::now();
    if (Enter(tasks[i], result, *in.discovery, current)) {
      ScrapeContext context{in.config, in.procfs_root, kThreadNetRoot};
      passes[i] = std::make_unique<CollectorPass>(
          context, tasks[i].collectors, fmt::format(" in netns {}", tasks[i].entry->label));
      passes[i]->Begin();
      owns_tables[i] = OwnsSocketTables(in.procfs_root);
    }
    result.duration = Clock::now() - start;
  }

  // The one walk: route each socket to its namespace's pass by inode.
  std::unordered_map<std::uint32_t, std::size_t> by_inode;
  for (std::size_t i = 0; i < tasks.size(); ++i) {
    if (passes[i] && passes[i]->NeedsSockets()) {
      by_inode.emplace(static_cast<std::uint32_t>(tasks[i].entry->inode), i);
    }
  }
  std::vector<std::uint64_t> counts(tasks.size(), 0);
  std::uint32_t last_inode = 0;
  SocketSink* last_sink = nullptr;
  std::size_t last_index = 0;
  const auto start = Clock::now();
  auto walked = in.walk->Walk([&](std::uint32_t inode) -> SocketSink* {
    if (inode != last_inode || last_sink == nullptr) {
      const auto it = by_inode.find(inode);
      if (it == by_inode.end()) return nullptr;
      last_inode = inode;
      last_index = it->second;
      last_sink = &passes[last_index]->Sink();
    }
    ++counts[last_index];
    return last_sink;
  });
  TRY(walked);
  const auto walk_duration = Clock::now() - start;
  std::uint64_t total = 0;
  for (std::uint64_t count : counts) total += count;

  for (std::size_t i = 0; i < tasks.size(); ++i) {
    if (!passes[i]) continue;
    const auto pass_start = Clock::now();
    if (passes[i]->NeedsSockets()) {
      const auto inode = static_cast<std::uint32_t>(tasks[i].entry->inode);
      if (owns_tables[i] && inode != walked->table_netns) {
        // Not in the shared tables: its own (small) tables, with netlink.
        NamespaceResult& result = results[i];
        if (Enter(tasks[i], result, *in.discovery, current)) {
          const auto stream_start = Clock::now();
          auto stats = tasks[i].source->Stream(passes[i]->Sink());
          if (!stats) {
            spdlog::error("reading the socket table ({}) in netns {} failed: {}",
                          tasks[i].source->Name(), tasks[i].entry->label, stats.error().message);
          }
          passes[i]->Streamed(stats.has_value(), stats.value_or(SourceStats{}),
                              tasks[i].source->Name(), Clock::now() - stream_start);
        } else {
          passes[i]->Streamed(false, SourceStats{}, "netlink", {});
        }
      } else {
        // The walk's time, charged by each namespace's share of the sockets
        // (evenly when there were none).
        const double fraction =
            total == 0 ? 1.0 / static_cast<double>(std::max<std::size_t>(by_inode.size(), 1))
                       : static_cast<double>(counts[i]) / static_cast<double>(total);
        const auto share = std::chrono::duration_cast<Clock::duration>(walk_duration * fraction);
        passes[i]->Streamed(true, SourceStats{counts[i], 0}, "bpf", share);
        results[i].duration += share;
      }
    }
    results[i].pass = passes[i]->Finish();
    Conclude(results[i]);
    results[i].duration += Clock::now() - pass_start;
  }
  return {};
}

// Appends every family of `from` to `into` with the netns label added,
// merging families that share a name (one HELP/TYPE per name in the text
// format).
class FamilyMerger {
 public:
  explicit FamilyMerger(std::vector<prometheus::MetricFamily>& into) : into_(into) {}
  void Add(std::vector<prometheus::MetricFamily>& from, const std::string& netns) {
    for (prometheus::MetricFamily& family : from) {
      for (prometheus::ClientMetric& metric : family.metric) {
        metric.label.push_back({"netns", netns});
      }
      auto [it, inserted] = index_.try_emplace(family.name, into_.size());
      if (inserted) {
        into_.push_back(std::move(family));
        continue;
      }
      auto& metrics = into_[it->second].metric;
      for (auto& metric : family.metric) metrics.push_back(std::move(metric));
    }
  }

 private:
  std::vector<prometheus::MetricFamily>& into_;
  std::unordered_map<std::string, std::size_t> index_;
};

}  // namespace

NetnsScraper::NetnsScraper(NetnsScraperOptions options)
    : options_(std::move(options)),
      discovery_options_{options_.procfs_root, options_.netns_dir, "/proc/self/ns/net"} {}

const std::vector<NetnsEntry>& NetnsScraper::Discover(const Config& config, NetnsOutcome& outcome) {
  const bool privileged = HasCapSysAdmin();
  const auto now = Clock::now();
  const auto ttl = std::chrono::seconds(config.netns.cache_seconds);
  if (have_cache_ && cache_privileged_ == privileged && now - cached_at_ < ttl) {
    if (!privileged) outcome.ok = false;
    return cached_;
  }
  have_cache_ = false;
  if (!privileged) {
    if (!logged_unprivileged_) {
      spdlog::warn(
          "netns: the exporter lacks CAP_SYS_ADMIN, which setns() into another network namespace "
          "needs: only its own namespace (netns=\"host\") is scraped and "
          "socket_exporter_collector_success{collector=\"netns\"} is 0");
      logged_unprivileged_ = true;
    }
    outcome.ok = false;
    auto own = DescribeOwnNamespace(discovery_options_);
    cached_.clear();
    if (own) {
      cached_.push_back(std::move(*own));
    } else {
      spdlog::error("netns: {}", own.error().message);
    }
  } else {
    logged_unprivileged_ = false;
    auto found = DiscoverNamespaces(discovery_options_);
    if (found) {
      cached_ = std::move(*found);
      last_discovery_error_.clear();
    } else {
      if (found.error().message != last_discovery_error_) {
        spdlog::error("netns: discovery failed, scraping only the own namespace: {}",
                      found.error().message);
        last_discovery_error_ = found.error().message;
      }
      outcome.ok = false;
      cached_.clear();
      if (auto own = DescribeOwnNamespace(discovery_options_)) cached_.push_back(std::move(*own));
      return cached_;  // not cached: retried at the next scrape
    }
  }
  have_cache_ = true;
  cache_privileged_ = privileged;
  cached_at_ = now;
  return cached_;
}

BpfSocketWalk* NetnsScraper::BpfWalkFor(NetnsSource source) {
  if (source == NetnsSource::kNetlink) return nullptr;
  if (!bpf_ && !bpf_tried_) {
    bpf_tried_ = true;
    auto opened = BpfSocketWalk::Open();
    if (opened) {
      bpf_ = std::move(*opened);
      spdlog::info("netns: reading every namespace's sockets in one BPF walk");
    } else if (source == NetnsSource::kBpf) {
      spdlog::warn("netns: netns.source is bpf but {}; using netlink in each namespace",
                   opened.error().message);
    } else {
      spdlog::info("netns: {}; using netlink in each namespace", opened.error().message);
    }
  }
  return bpf_.get();
}

NetnsScraper::NamespaceState& NetnsScraper::StateFor(
    std::uint64_t inode, const std::vector<std::string>& socket_collectors) {
  NamespaceState& state = states_[inode];
  for (const std::string& name : socket_collectors) {
    if (state.collectors.contains(name)) continue;
    for (const CollectorInfo& info : options_.collectors) {
      if (info.name == name) state.collectors.emplace(name, info.make());
    }
  }
  if (!state.source) {
    state.source = options_.make_source ? options_.make_source()
                                        : MakeSocketSource(options_.source, kThreadNetRoot);
  }
  return state;
}

NetnsOutcome NetnsScraper::Collect(const std::shared_ptr<const Config>& config,
                                   const std::vector<std::string>& socket_collectors) {
  const auto start = Clock::now();
  NetnsOutcome outcome;
  const std::vector<NetnsEntry>& entries = Discover(*config, outcome);
  const NetnsSelection selection = SelectNamespaces(entries, config->netns);

  std::uint64_t own_inode = 0;
  for (const NetnsEntry& entry : entries) {
    if (entry.is_own) own_inode = entry.inode;
  }

  std::vector<NamespaceTask> tasks;
  std::set<std::uint64_t> selected_inodes;
  for (const NetnsEntry* entry : selection.selected) {
    NamespaceState& state = StateFor(entry->inode, socket_collectors);
    NamespaceTask task{entry, {}, state.source.get()};
    for (const std::string& name : socket_collectors) {
      auto it = state.collectors.find(name);
      if (it != state.collectors.end()) task.collectors.push_back({it->first, it->second.get()});
    }
    tasks.push_back(std::move(task));
    selected_inodes.insert(entry->inode);
  }
  // Namespaces no longer selected take their collectors (and series) along.
  std::erase_if(states_, [&](const auto& item) { return !selected_inodes.contains(item.first); });

  // One dedicated thread: setns() moves only the calling thread, and the
  // caller (an HTTP thread) must stay where it is.
  std::vector<NamespaceResult> results(tasks.size());
  // Without CAP_SYS_ADMIN only the own namespace is scraped: nothing to gain.
  BpfSocketWalk* walk = HasCapSysAdmin() ? BpfWalkFor(config->netns.source) : nullptr;
  const WorkerInput input{&tasks,    config, options_.procfs_root, &discovery_options_,
                          own_inode, walk};
  std::string walk_error;
  std::thread worker([&] {
    if (input.walk != nullptr) {
      auto done = RunBpf(input, results);
      if (done) return;
      walk_error = done.error().message;
    }
    RunNetlink(input, results);
  });
  worker.join();
  if (!walk_error.empty() && walk_error != last_walk_error_) {
    spdlog::warn("netns: {}; this scrape used netlink in each namespace", walk_error);
  }
  last_walk_error_ = walk_error;

  using prometheus::MetricType;
  std::vector<prometheus::MetricFamily>& out = outcome.families;
  FamilyMerger merger(out);
  std::size_t vanished = 0;
  for (NamespaceResult& result : results) {
    const NetnsEntry& entry = *result.entry;
    if (result.gone) {
      ++vanished;
      states_.erase(entry.inode);
      continue;
    }
    if (!result.error.empty()) {
      outcome.ok = false;
      if (logged_failures_.insert(entry.inode).second) {
        spdlog::warn("netns: cannot enter namespace {} (inode {}): {}", entry.label, entry.inode,
                     result.error);
      }
      continue;
    }
    logged_failures_.erase(entry.inode);
    if (!result.ok) outcome.ok = false;
    for (const PassRun& run : result.pass.runs) {
      NetnsCollectorRun& total = outcome.runs[std::string(run.name)];
      total.ok = total.ok && run.ok;
      total.duration += run.duration;
    }
    if (result.pass.streamed && result.pass.stream_ok) {
      outcome.scanned.push_back({entry.label, result.pass.source_name, result.pass.stats.records});
      outcome.dump_interrupted += result.pass.stats.dump_interrupted;
    }
    merger.Add(result.pass.families, entry.label);
  }

  auto info = AddFamily(out, "socket_exporter_netns_info",
                        "Identifies a scraped network namespace: its names under /var/run/netns, "
                        "nsfs inode, one process in it with its command name and container ID; "
                        "always 1.",
                        MetricType::Gauge);
  auto success = AddFamily(out, "socket_exporter_netns_scrape_success",
                           "1 if the namespace was entered and every socket collector succeeded "
                           "in it, 0 otherwise.",
                           MetricType::Gauge);
  auto duration = AddFamily(out, "socket_exporter_netns_scrape_duration_seconds",
                            "Time spent entering the namespace and running the socket "
                            "collectors in it.",
                            MetricType::Gauge);
  for (const NamespaceResult& result : results) {
    if (result.gone) continue;
    const NetnsEntry& entry = *result.entry;
    AddGauge(info,
             {{"netns", entry.label},
              {"name", JoinNames(entry.names)},
              {"inode", std::to_string(entry.inode)},
              {"pid", entry.pid > 0 ? std::to_string(entry.pid) : std::string()},
              {"comm", entry.comm},
              {"container_id", entry.container_id}},
             1.0);
    AddGauge(success, {{"netns", entry.label}}, result.ok ? 1.0 : 0.0);
    AddGauge(duration, {{"netns", entry.label}}, Seconds(result.duration));
  }
  AddGauge(AddFamily(out, "socket_exporter_netns_discovered",
                     "Network namespaces found on the host (before include/exclude and "
                     "max_namespaces); 1 without CAP_SYS_ADMIN.",
                     MetricType::Gauge),
           {}, static_cast<double>(entries.size()));
  auto skipped = AddFamily(out, "socket_exporter_netns_skipped",
                           "Discovered namespaces not scraped this time: reason=\"filtered\" by "
                           "netns.include/exclude, \"max_namespaces\" beyond the limit, "
                           "\"vanished\" gone between discovery and their turn.",
                           MetricType::Gauge);
  AddGauge(skipped, {{"reason", "filtered"}}, static_cast<double>(selection.filtered));
  AddGauge(skipped, {{"reason", "max_namespaces"}}, static_cast<double>(selection.over_limit));
  AddGauge(skipped, {{"reason", "vanished"}}, static_cast<double>(vanished));
  if (vanished > 0) have_cache_ = false;  // rediscover next time
  outcome.duration = Clock::now() - start;
  return outcome;
}

}  // namespace socket_exporter
