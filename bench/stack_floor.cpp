// stack_floor: what the required HTTP stack alone costs per scrape, so that
// bench/run_bench.py can tell how close to the kernel's dump any exporter on
// that stack can get (BENCHMARKS.md, "The stack's floor").
//
//   stack_floor --port PORT
//
// At start it runs socket_exporter's default collectors once in its own
// network namespace (Scraper::CollectNow: the families the exporter would
// answer with for this population), then serves exactly those families on
// 127.0.0.1:PORT/metrics through prometheus-cpp's Exposer on CivetWeb, with
// the exporter's CivetWeb settings (CivetOptions) and malloc settings. Each
// scrape copies the families, as the exporter hands a collection's result
// to its request, and prometheus-cpp serializes them. No socket table is
// read per scrape: a scrape of this server is what the exporter's scrape
// would cost if the kernel's walk and every line of the exporter's own
// scrape code were free. Prints "READY <series>" when serving; runs until
// SIGTERM or SIGINT.
//
// Thread safety: the families are written once before the Exposer starts
// and only read (copied) afterwards, from CivetWeb's threads.
#include <prometheus/collectable.h>
#include <prometheus/exposer.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"
#include "exporter/app.h"
#include "exporter/scraper.h"
#include "exporter/web.h"

namespace {

class FixedFamilies : public prometheus::Collectable {
 public:
  explicit FixedFamilies(std::vector<prometheus::MetricFamily> families)
      : families_(std::move(families)) {}
  std::vector<prometheus::MetricFamily> Collect() const override { return families_; }

 private:
  const std::vector<prometheus::MetricFamily> families_;
};

}  // namespace

int main(int argc, char** argv) {
  socket_exporter::TuneMallocForScrapes();
  int port = 0;
  for (int i = 1; i < argc; ++i) {
    if (std::string_view(argv[i]) == "--port" && i + 1 < argc) port = std::atoi(argv[++i]);
  }
  if (port <= 0 || port > 65535) {
    std::fprintf(stderr, "usage: stack_floor --port PORT\n");
    return 2;
  }
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);  // before CivetWeb's threads

  const socket_exporter::Scraper scraper({}, socket_exporter::DefaultConfig());
  socket_exporter::ScrapeOutcome outcome = scraper.CollectNow();
  if (!outcome.all_succeeded) {
    std::fprintf(stderr,
                 "stack_floor: a collector failed; the families would not be the "
                 "exporter's\n");
    return 1;
  }
  std::size_t series = 0;
  for (const auto& family : outcome.families) series += family.metric.size();
  auto families = std::make_shared<FixedFamilies>(std::move(outcome.families));

  try {
    prometheus::Exposer exposer(
        socket_exporter::CivetOptions("127.0.0.1:" + std::to_string(port), 16));
    exposer.RegisterCollectable(families, "/metrics");
    std::printf("READY %zu\n", series);
    std::fflush(stdout);
    int signal_number = 0;
    sigwait(&stop_signals, &signal_number);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "stack_floor: cannot serve on port %d: %s\n", port, e.what());
    return 1;
  }
  return 0;
}
