#include "exporter/scraper.h"

#include <spdlog/spdlog.h>

#include "collectors/collector_pass.h"
#include "collectors/registry.h"
#include "common/version.h"

namespace socket_exporter {
namespace {

thread_local std::optional<std::chrono::steady_clock::time_point> request_arrival;

double Seconds(std::chrono::steady_clock::duration d) {
  return std::chrono::duration<double>(d).count();
}

}  // namespace

void Scraper::NoteRequestArrival() { request_arrival = std::chrono::steady_clock::now(); }

Scraper::Scraper(ScraperOptions options, std::shared_ptr<const Config> config)
    : options_(std::move(options)), config_(std::move(config)) {
  if (options_.collectors.empty()) {
    options_.collectors.assign(AllCollectors().begin(), AllCollectors().end());
  }
  for (const CollectorInfo& info : options_.collectors) {
    collectors_.push_back(Slot{std::string(info.name), info.make()});
  }
  source_ = options_.make_source ? options_.make_source()
                                 : MakeSocketSource(options_.source, options_.procfs_root,
                                                    SourceTuning{.background_walk = true});
  netns_ = std::make_unique<NetnsScraper>(
      NetnsScraperOptions{options_.source, options_.procfs_root, "/var/run/netns",
                          options_.make_source, options_.collectors});
}

void Scraper::SetConfig(std::shared_ptr<const Config> config) {
  std::lock_guard lock(config_mutex_);
  config_ = std::move(config);
}

std::shared_ptr<const Config> Scraper::GetConfig() const {
  std::lock_guard lock(config_mutex_);
  return config_;
}

void Scraper::SetExtraFamiliesProvider(
    std::function<std::vector<prometheus::MetricFamily>()> provider) {
  std::lock_guard lock(mutex_);
  extra_families_ = std::move(provider);
}

bool Scraper::IsEnabled(const Config& config, std::string_view name) const {
  const std::string key(name);
  if (auto it = options_.collector_overrides.find(key); it != options_.collector_overrides.end()) {
    return it->second;
  }
  if (auto it = config.collectors.find(key); it != config.collectors.end()) return it->second;
  for (const CollectorInfo& info : options_.collectors) {
    if (info.name == name) return info.enabled_by_default;
  }
  for (const ScrapeModeInfo& mode : AllScrapeModes()) {
    if (mode.name == name) return mode.enabled_by_default;
  }
  return false;
}

std::vector<std::string> Scraper::EnabledCollectors() const {
  const auto config = GetConfig();
  std::vector<std::string> names;
  for (const CollectorInfo& info : options_.collectors) {
    if (IsEnabled(*config, info.name)) names.emplace_back(info.name);
  }
  for (const ScrapeModeInfo& mode : AllScrapeModes()) {
    if (IsEnabled(*config, mode.name)) names.emplace_back(mode.name);
  }
  return names;
}

std::vector<prometheus::MetricFamily> Scraper::Collect() const {
  const Clock::time_point arrival = request_arrival.value_or(Clock::now());
  request_arrival.reset();
  std::unique_lock lock(mutex_);
  while (in_flight_) collection_done_.wait(lock);
  // A collection that finished after this request arrived was running (or
  // started) while it waited: its result is as fresh as this request needs.
  if (have_last_ && last_finished_ >= arrival) return last_;
  in_flight_ = true;
  lock.unlock();
  ScrapeOutcome outcome = RunCollection();
  lock.lock();
  last_ = outcome.families;
  last_finished_ = Clock::now();
  have_last_ = true;
  in_flight_ = false;
  collection_done_.notify_all();
  return std::move(outcome.families);
}

ScrapeOutcome Scraper::CollectNow() const {
  std::unique_lock lock(mutex_);
  while (in_flight_) collection_done_.wait(lock);
  in_flight_ = true;
  lock.unlock();
  ScrapeOutcome outcome = RunCollection();
  lock.lock();
  in_flight_ = false;
  collection_done_.notify_all();
  return outcome;
}

ScrapeOutcome Scraper::RunCollection() const {
  const auto config = GetConfig();
  ScrapeContext context{config, options_.procfs_root};
  ScrapeOutcome outcome;

  struct Run {
    std::string_view name;
    bool ok = true;
    Clock::duration duration{};
  };
  std::vector<Run> runs;
  struct Scanned {
    std::string source;
    std::string netns;  // empty unless the netns collector is on
    std::uint64_t sockets = 0;
  };
  std::vector<Scanned> scanned;
  bool any_socket_collector = false;

  if (!IsEnabled(*config, kNetnsMode.name)) {
    // Every enabled collector over one pass of this namespace's sockets.
    std::vector<PassCollector> enabled;
    for (Slot& slot : collectors_) {
      if (!IsEnabled(*config, slot.name)) continue;
      enabled.push_back({slot.name, slot.collector.get()});
    }
    PassOutcome pass = RunCollectorPass(context, enabled, source_.get());
    for (const PassRun& run : pass.runs) runs.push_back({run.name, run.ok, run.duration});
    for (auto& family : pass.families) outcome.families.push_back(std::move(family));
    any_socket_collector = pass.streamed;
    if (pass.streamed) {
      scanned.push_back({pass.source_name, "", pass.stream_ok ? pass.stats.records : 0});
      dump_interrupted_total_ += pass.stats.dump_interrupted;
    }
  } else {
    // Socket collectors once per network namespace (exporter/netns_scraper.h);
    // any others once, here.
    std::vector<PassCollector> others;
    std::vector<std::string> socket_names;
    for (Slot& slot : collectors_) {
      if (!IsEnabled(*config, slot.name)) continue;
      if (slot.collector->UsesSockets()) {
        socket_names.push_back(slot.name);
      } else {
        others.push_back({slot.name, slot.collector.get()});
      }
    }
    any_socket_collector = !socket_names.empty();
    context.all_namespaces = true;
    PassOutcome pass = RunCollectorPass(context, others, nullptr);
    for (auto& family : pass.families) outcome.families.push_back(std::move(family));
    NetnsOutcome netns = netns_->Collect(config, socket_names);
    for (auto& family : netns.families) outcome.families.push_back(std::move(family));
    std::size_t other_index = 0;
    for (Slot& slot : collectors_) {
      if (!IsEnabled(*config, slot.name)) continue;
      if (slot.collector->UsesSockets()) {
        const auto it = netns.runs.find(slot.name);
        // Ran in no namespace: it produced nothing, successfully only if
        // nothing went wrong (e.g. include/exclude selected nothing).
        runs.push_back(it == netns.runs.end() ? Run{slot.name, netns.ok, {}}
                                              : Run{slot.name, it->second.ok, it->second.duration});
      } else {
        const PassRun& run = pass.runs[other_index++];
        runs.push_back({run.name, run.ok, run.duration});
      }
    }
    // The mode reports its own success and duration, after the collectors.
    runs.push_back({kNetnsMode.name, netns.ok, netns.duration});
    for (auto& item : netns.scanned) scanned.push_back({item.source, item.netns, item.sockets});
    dump_interrupted_total_ += netns.dump_interrupted;
  }

  auto duration = AddFamily(outcome.families, "socket_exporter_collector_duration_seconds",
                            "Time a collector took in this scrape, including the shared socket "
                            "table pass for collectors that read sockets.",
                            prometheus::MetricType::Gauge);
  auto success = AddFamily(outcome.families, "socket_exporter_collector_success",
                           "1 if the collector succeeded in this scrape, 0 if it failed.",
                           prometheus::MetricType::Gauge);
  for (const Run& run : runs) {
    AddGauge(duration, {{"collector", std::string(run.name)}}, Seconds(run.duration));
    AddGauge(success, {{"collector", std::string(run.name)}}, run.ok ? 1.0 : 0.0);
    if (!run.ok) outcome.all_succeeded = false;
  }
  if (any_socket_collector) {
    auto scanned_family = AddFamily(outcome.families, "socket_exporter_sockets_scanned",
                                    "Sockets read from the kernel in this scrape, by source (and "
                                    "network namespace with the netns collector).",
                                    prometheus::MetricType::Gauge);
    for (const Scanned& item : scanned) {
      Labels labels{{"source", item.source}};
      if (!item.netns.empty()) labels.push_back({"netns", item.netns});
      AddGauge(scanned_family, std::move(labels), static_cast<double>(item.sockets));
    }
    auto interrupted = AddFamily(
        outcome.families, "socket_exporter_dump_interrupted_total",
        "Netlink dumps the kernel flagged as interrupted by concurrent table changes (the counts "
        "of such a scrape may miss or repeat a socket).",
        prometheus::MetricType::Counter);
    AddCounter(interrupted, {}, static_cast<double>(dump_interrupted_total_));
  }
  ++collections_total_;
  auto collections = AddFamily(
      outcome.families, "socket_exporter_collections_total",
      "Collections run: each reads the socket tables once. Scrapes that arrive while one runs "
      "share its result and do not add to this.",
      prometheus::MetricType::Counter);
  AddCounter(collections, {}, static_cast<double>(collections_total_));
  auto build = AddFamily(outcome.families, "socket_exporter_build_info",
                         "Build information of socket_exporter; the value is always 1.",
                         prometheus::MetricType::Gauge);
  AddGauge(build, {{"version", kVersion}, {"revision", kRevision}}, 1.0);

  std::function<std::vector<prometheus::MetricFamily>()> extra;
  {
    std::lock_guard lock(mutex_);
    extra = extra_families_;
  }
  if (extra) {
    for (auto& family : extra()) outcome.families.push_back(std::move(family));
  }
  return outcome;
}

}  // namespace socket_exporter
