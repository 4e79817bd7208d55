// Runs the enabled collectors over one pass of the socket table and adds the
// exporter's own metrics. Registered with prometheus-cpp as a Collectable.
// With the netns collector enabled, the socket collectors run once per
// network namespace instead (exporter/netns_scraper.h, docs/netns.md).
//
// Concurrency: collections never overlap. A scrape that arrives while a
// collection is running waits for it and shares its result instead of walking
// the kernel's table again; a scrape that arrives when none is running starts
// a new one. So ten simultaneous scrapers cause one table walk, and no answer
// is older than the collection that was running when its request arrived.
// All public methods are thread-safe.
#pragma once

#include <prometheus/collectable.h>

#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "collectors/collector.h"
#include "collectors/registry.h"
#include "collectors/sources/socket_source.h"
#include "collectors/sources/socket_sources.h"
#include "config/config.h"
#include "exporter/netns_scraper.h"

namespace socket_exporter {

struct ScraperOptions {
  SourceKind source = SourceKind::kAuto;
  std::string procfs_root = "/proc";
  // --collector.NAME / --no-collector.NAME; absent = config, then default.
  std::map<std::string, bool> collector_overrides;
  // Supplies the socket source in place of MakeSocketSource(source,
  // procfs_root) when set: tests feed recorded fixtures through it.
  std::function<std::unique_ptr<SocketSource>()> make_source;
  // The collectors to run, in the order they are reported; empty = the
  // registry's (collectors/registry.h). Tests add their own this way.
  std::vector<CollectorInfo> collectors;
};

struct ScrapeOutcome {
  std::vector<prometheus::MetricFamily> families;
  bool all_succeeded = true;
};

class Scraper : public prometheus::Collectable {
 public:
  Scraper(ScraperOptions options, std::shared_ptr<const Config> config);

  // Swaps in a new config; the next collection uses it.
  void SetConfig(std::shared_ptr<const Config> config);
  std::shared_ptr<const Config> GetConfig() const;
  // Names of the collectors enabled under the current config.
  std::vector<std::string> EnabledCollectors() const;

  // Extra families appended to every answer (reload status, web metrics).
  void SetExtraFamiliesProvider(std::function<std::vector<prometheus::MetricFamily>()> provider);

  // prometheus::Collectable: shares a running collection (see above).
  std::vector<prometheus::MetricFamily> Collect() const override;
  // One fresh collection, with whether every collector succeeded (--once).
  ScrapeOutcome CollectNow() const;

  // The HTTP layer calls this when a request arrives, on the thread that will
  // call Collect() for it.
  static void NoteRequestArrival();

 private:
  using Clock = std::chrono::steady_clock;
  ScrapeOutcome RunCollection() const;
  bool IsEnabled(const Config& config, std::string_view name) const;

  ScraperOptions options_;  // collectors filled in by the constructor
  mutable std::mutex config_mutex_;
  std::shared_ptr<const Config> config_;
  std::function<std::vector<prometheus::MetricFamily>()> extra_families_;

  // Collection state, guarded by mutex_.
  mutable std::mutex mutex_;
  mutable std::condition_variable collection_done_;
  mutable bool in_flight_ = false;
  mutable bool have_last_ = false;
  mutable Clock::time_point last_finished_{};
  mutable std::vector<prometheus::MetricFamily> last_;

  // Used only by the thread running a collection (in_flight_ serializes it).
  struct Slot {
    std::string name;
    std::unique_ptr<Collector> collector;
  };
  mutable std::vector<Slot> collectors_;
  mutable std::unique_ptr<SocketSource> source_;
  // The netns collector's per-namespace passes (used instead of the single
  // pass when it is enabled).
  mutable std::unique_ptr<NetnsScraper> netns_;
  mutable std::uint64_t dump_interrupted_total_ = 0;
  // Collections run (socket_exporter_collections_total): scrapes that shared
  // a running collection do not add to it.
  mutable std::uint64_t collections_total_ = 0;
};

}  // namespace socket_exporter
