#include "collectors/collector_pass.h"

#include <spdlog/spdlog.h>

#include <algorithm>

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

CollectorPass::CollectorPass(ScrapeContext context, std::vector<PassCollector> collectors,
                             std::string where)
    : context_(std::move(context)), collectors_(std::move(collectors)), where_(std::move(where)) {}

void CollectorPass::Begin() {
  for (const PassCollector& entry : collectors_) {
    PassRun run{entry.name};
    const auto start = Clock::now();
    if (auto begun = entry.collector->Begin(context_); !begun) {
      spdlog::error("collector {} failed{}: {}", entry.name, where_, begun.error().message);
      run.ok = false;
    } else if (entry.collector->UsesSockets()) {
      socket_collectors_.push_back(entry.collector);
    }
    run.duration = Clock::now() - start;
    outcome_.runs.push_back(run);
  }
}

SocketSink& CollectorPass::Sink() {
  if (!sink_) sink_ = std::make_unique<FanOut>(context_.config, socket_collectors_);
  return *sink_;
}

void CollectorPass::Streamed(bool ok, const SourceStats& stats, std::string source_name,
                             Clock::duration duration) {
  outcome_.streamed = true;
  outcome_.stream_ok = ok;
  outcome_.stats = stats;
  outcome_.source_name = std::move(source_name);
  pass_duration_ = duration;
}

PassOutcome CollectorPass::Finish() {
  // A socket collector whose sockets never came (no source) has failed.
  const bool sockets_ok = outcome_.streamed ? outcome_.stream_ok : !NeedsSockets();
  for (std::size_t i = 0; i < collectors_.size(); ++i) {
    PassRun& run = outcome_.runs[i];
    if (!run.ok) continue;
    Collector* collector = collectors_[i].collector;
    const bool uses_sockets = collector->UsesSockets();
    if (uses_sockets && !sockets_ok) {
      run.ok = false;
      run.duration += pass_duration_;
      continue;
    }
    const auto start = Clock::now();
    std::vector<prometheus::MetricFamily> families;
    if (auto finished = collector->Finish(families); !finished) {
      spdlog::error("collector {} failed{}: {}", run.name, where_, finished.error().message);
      run.ok = false;
    } else {
      for (auto& family : families) outcome_.families.push_back(std::move(family));
    }
    run.duration += Clock::now() - start;
    if (uses_sockets) run.duration += pass_duration_;
  }
  return std::move(outcome_);
}

PassOutcome RunCollectorPass(const ScrapeContext& context,
                             std::span<const PassCollector> collectors, SocketSource* source,
                             std::string_view where) {
  CollectorPass pass(context, std::vector<PassCollector>(collectors.begin(), collectors.end()),
                     std::string(where));
  // The source may start the kernel's walk now, so that Begin (procfs
  // reads) runs beside it rather than before it.
  const bool wants_sockets =
      source != nullptr && std::ranges::any_of(collectors, [](const PassCollector& entry) {
        return entry.collector->UsesSockets();
      });
  const auto start = Clock::now();
  if (wants_sockets) source->Prefetch();
  pass.Begin();
  // No socket collector survived Begin: nothing will read the walk.
  if (!pass.NeedsSockets() && wants_sockets) source->Abandon();
  // One pass over the socket table feeds every socket collector.
  if (pass.NeedsSockets() && source != nullptr) {
    auto stats = source->Stream(pass.Sink());
    const auto duration = Clock::now() - start;
    if (!stats) {
      spdlog::error("reading the socket table ({}){} failed: {}", source->Name(), where,
                    stats.error().message);
    }
    pass.Streamed(stats.has_value(), stats.value_or(SourceStats{}), source->Name(), duration);
  }
  return pass.Finish();
}

}  // namespace socket_exporter
