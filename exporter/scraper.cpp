#include "exporter/scraper.h"

#include <spdlog/spdlog.h>

#include "collectors/registry.h"
#include "exporter/version.h"

namespace socket_exporter {
namespace {

thread_local std::optional<std::chrono::steady_clock::time_point> request_arrival;

// Classifies each socket once and hands it to every socket collector.
class FanOut : public SocketSink {
 public:
  FanOut(std::shared_ptr<const Config> config, std::vector<Collector*> collectors)
      : classifier_(std::move(config)), collectors_(std::move(collectors)) {}
  void OnSocket(const SocketRecord& record) override {
    const Classification cls = classifier_.Classify(record);
    for (Collector* collector : collectors_) collector->Observe(record, cls);
  }

 private:
  Classifier classifier_;
  std::vector<Collector*> collectors_;
};

double Seconds(std::chrono::steady_clock::duration d) {
  return std::chrono::duration<double>(d).count();
}

}  // namespace

void Scraper::NoteRequestArrival() { request_arrival = std::chrono::steady_clock::now(); }

Scraper::Scraper(ScraperOptions options, std::shared_ptr<const Config> config)
    : options_(std::move(options)), config_(std::move(config)) {
  for (const CollectorInfo& info : AllCollectors()) {
    collectors_.push_back(Slot{std::string(info.name), info.make()});
  }
  source_ = options_.make_source ? options_.make_source()
                                 : MakeSocketSource(options_.source, options_.procfs_root);
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
  for (const CollectorInfo& info : AllCollectors()) {
    if (info.name == name) return info.enabled_by_default;
  }
  return false;
}

std::vector<std::string> Scraper::EnabledCollectors() const {
  const auto config = GetConfig();
  std::vector<std::string> names;
  for (const CollectorInfo& info : AllCollectors()) {
    if (IsEnabled(*config, info.name)) names.emplace_back(info.name);
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
    Slot* slot;
    bool ok = true;
    Clock::duration duration{};
  };
  std::vector<Run> runs;
  std::vector<Collector*> socket_collectors;
  for (Slot& slot : collectors_) {
    if (!IsEnabled(*config, slot.name)) continue;
    Run run{&slot};
    const auto start = Clock::now();
    if (auto begun = slot.collector->Begin(context); !begun) {
      spdlog::error("collector {} failed: {}", slot.name, begun.error().message);
      run.ok = false;
    } else if (slot.collector->UsesSockets()) {
      socket_collectors.push_back(slot.collector.get());
    }
    run.duration = Clock::now() - start;
    runs.push_back(run);
  }

  // One pass over the socket table feeds every socket collector.
  Clock::duration pass_duration{};
  bool pass_ok = true;
  std::uint64_t sockets_scanned = 0;
  if (!socket_collectors.empty()) {
    const auto start = Clock::now();
    FanOut fan_out(config, socket_collectors);
    auto stats = source_->Stream(fan_out);
    pass_duration = Clock::now() - start;
    if (!stats) {
      pass_ok = false;
      spdlog::error("reading the socket table ({}) failed: {}", source_->Name(),
                    stats.error().message);
    } else {
      sockets_scanned = stats->records;
      dump_interrupted_total_ += stats->dump_interrupted;
    }
  }

  for (Run& run : runs) {
    if (!run.ok) continue;
    const bool uses_sockets = run.slot->collector->UsesSockets();
    if (uses_sockets && !pass_ok) {
      run.ok = false;
      run.duration += pass_duration;
      continue;
    }
    const auto start = Clock::now();
    std::vector<prometheus::MetricFamily> families;
    if (auto finished = run.slot->collector->Finish(families); !finished) {
      spdlog::error("collector {} failed: {}", run.slot->name, finished.error().message);
      run.ok = false;
    } else {
      for (auto& family : families) outcome.families.push_back(std::move(family));
    }
    run.duration += Clock::now() - start;
    if (uses_sockets) run.duration += pass_duration;
  }

  auto duration = AddFamily(outcome.families, "socket_exporter_collector_duration_seconds",
                             "Time a collector took in this scrape, including the shared socket "
                             "table pass for collectors that read sockets.",
                             prometheus::MetricType::Gauge);
  auto success = AddFamily(outcome.families, "socket_exporter_collector_success",
                            "1 if the collector succeeded in this scrape, 0 if it failed.",
                            prometheus::MetricType::Gauge);
  for (const Run& run : runs) {
    AddGauge(duration, {{"collector", run.slot->name}}, Seconds(run.duration));
    AddGauge(success, {{"collector", run.slot->name}}, run.ok ? 1.0 : 0.0);
    if (!run.ok) outcome.all_succeeded = false;
  }
  if (!socket_collectors.empty()) {
    auto scanned = AddFamily(outcome.families, "socket_exporter_sockets_scanned",
                              "Sockets read from the kernel in this scrape, by source.",
                              prometheus::MetricType::Gauge);
    AddGauge(scanned, {{"source", source_->Name()}}, static_cast<double>(sockets_scanned));
    auto interrupted = AddFamily(
        outcome.families, "socket_exporter_dump_interrupted_total",
        "Netlink dumps the kernel flagged as interrupted by concurrent table changes (the counts "
        "of such a scrape may miss or repeat a socket).",
        prometheus::MetricType::Counter);
    AddCounter(interrupted, {}, static_cast<double>(dump_interrupted_total_));
  }
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
