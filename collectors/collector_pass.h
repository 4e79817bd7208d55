// One run of a set of collectors in the calling thread's network namespace:
// Begin for each, one shared socket pass feeding every socket collector
// whose Begin succeeded, then Finish for each (collector.h describes the
// contract). The Scraper runs it once per scrape, or, with the netns
// collector, once per namespace on a thread that setns()'d into it.
//
// Thread safety: stateless; the collectors and the source are used only by
// the calling thread during the call.
#pragma once

#include <prometheus/metric_family.h>

#include <chrono>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "collectors/collector.h"
#include "collectors/sources/socket_source.h"

namespace socket_exporter {

struct PassCollector {
  std::string_view name;
  Collector* collector;
};

struct PassRun {
  std::string_view name;
  bool ok = true;
  // Begin/Finish time, plus the shared socket pass for socket collectors
  // (timed from before Begin: the source may start the kernel's walk then).
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
PassOutcome RunCollectorPass(const ScrapeContext& context,
                             std::span<const PassCollector> collectors, SocketSource* source,
                             std::string_view where = "");

// The same run in phases, for a socket pass that is not a SocketSource's
// Stream() (the netns collector's single BPF walk feeds many passes):
//   Begin()  -- in the namespace whose kernel state the collectors read;
//   Sink()   -- receives the sockets, if NeedsSockets();
//   Streamed() once the sockets were delivered (or failed), then Finish().
class CollectorPass {
 public:
  CollectorPass(ScrapeContext context, std::vector<PassCollector> collectors, std::string where);
  CollectorPass(const CollectorPass&) = delete;
  CollectorPass& operator=(const CollectorPass&) = delete;

  void Begin();
  bool NeedsSockets() const { return !socket_collectors_.empty(); }
  SocketSink& Sink();
  // ok: every socket was delivered; duration: the share of the socket pass
  // charged to this pass's socket collectors.
  void Streamed(bool ok, const SourceStats& stats, std::string source_name,
                std::chrono::steady_clock::duration duration);
  PassOutcome Finish();

 private:
  ScrapeContext context_;
  std::vector<PassCollector> collectors_;
  std::string where_;
  std::vector<Collector*> socket_collectors_;
  std::unique_ptr<SocketSink> sink_;
  std::chrono::steady_clock::duration pass_duration_{};
  PassOutcome outcome_;
};

}  // namespace socket_exporter
