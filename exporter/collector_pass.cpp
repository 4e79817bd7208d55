#include "exporter/collector_pass.h"

#include <spdlog/spdlog.h>

#include "collectors/classifier.h"

namespace socket_exporter {
namespace {

using Clock = std::chrono::steady_clock;

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

}  // namespace

PassOutcome RunCollectorPass(const ScrapeContext& context, std::span<const PassCollector> collectors,
                             SocketSource* source, std::string_view where) {
  PassOutcome outcome;
  std::vector<Collector*> socket_collectors;
  for (const PassCollector& entry : collectors) {
    PassRun run{entry.name};
    const auto start = Clock::now();
    if (auto begun = entry.collector->Begin(context); !begun) {
      spdlog::error("collector {} failed{}: {}", entry.name, where, begun.error().message);
      run.ok = false;
    } else if (entry.collector->UsesSockets()) {
      socket_collectors.push_back(entry.collector);
    }
    run.duration = Clock::now() - start;
    outcome.runs.push_back(run);
  }

  // One pass over the socket table feeds every socket collector.
  Clock::duration pass_duration{};
  if (!socket_collectors.empty() && source != nullptr) {
    outcome.streamed = true;
    const auto start = Clock::now();
    FanOut fan_out(context.config, socket_collectors);
    auto stats = source->Stream(fan_out);
    pass_duration = Clock::now() - start;
    outcome.source_name = source->Name();
    if (!stats) {
      outcome.stream_ok = false;
      spdlog::error("reading the socket table ({}){} failed: {}", outcome.source_name, where,
                    stats.error().message);
    } else {
      outcome.stats = *stats;
    }
  }

  for (std::size_t i = 0; i < collectors.size(); ++i) {
    PassRun& run = outcome.runs[i];
    if (!run.ok) continue;
    Collector* collector = collectors[i].collector;
    const bool uses_sockets = collector->UsesSockets();
    if (uses_sockets && (!outcome.stream_ok || source == nullptr)) {
      run.ok = false;
      run.duration += pass_duration;
      continue;
    }
    const auto start = Clock::now();
    std::vector<prometheus::MetricFamily> families;
    if (auto finished = collector->Finish(families); !finished) {
      spdlog::error("collector {} failed{}: {}", run.name, where, finished.error().message);
      run.ok = false;
    } else {
      for (auto& family : families) outcome.families.push_back(std::move(family));
    }
    run.duration += Clock::now() - start;
    if (uses_sockets) run.duration += pass_duration;
  }
  return outcome;
}

}  // namespace socket_exporter
