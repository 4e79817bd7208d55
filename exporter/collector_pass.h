// One run of a set of collectors in the calling thread's network namespace:
// Begin for each, one shared socket pass feeding every socket collector
// whose Begin succeeded, then Finish for each (collector.h describes the
// contract). The Scraper runs it once per scrape, or, with the netns
// collector, once per namespace on a thread that setns()'d into it.
//
// Thread safety: stateless; the collectors and the source are used only by
// the calling thread during the call.
#pragma once

#include <chrono>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <prometheus/metric_family.h>

#include "collectors/collector.h"
#include "collectors/socket_source.h"

namespace socket_exporter {

struct PassCollector {
  std::string_view name;
  Collector* collector;
};

struct PassRun {
  std::string_view name;
  bool ok = true;
  // Begin/Finish time, plus the shared socket pass for socket collectors.
  std::chrono::steady_clock::duration duration{};
};

struct PassOutcome {
  std::vector<prometheus::MetricFamily> families;
  std::vector<PassRun> runs;  // one per collector, in input order
  bool streamed = false;      // a socket collector needed the socket pass
  bool stream_ok = true;
  SourceStats stats;
  std::string source_name;  // the source's Name() after the pass
};

// `where` is appended to log messages ("" or " in netns X").
PassOutcome RunCollectorPass(const ScrapeContext& context, std::span<const PassCollector> collectors,
                             SocketSource* source, std::string_view where = "");

}  // namespace socket_exporter
