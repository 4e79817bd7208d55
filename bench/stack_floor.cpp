// stack_floor: what the required HTTP stack alone costs per scrape, so that
// bench/run_bench.py can tell how close to the kernel's dump any exporter on
// that stack can get (BENCHMARKS.md, "The stack's floor").
//
//   stack_floor --port PORT
//
// At start it runs socket_exporter's default collectors once in its own
// network namespace (Scraper::CollectNow: the families the exporter would
// answer with for this population), then serves exactly those families on
// 127.0.0.1:PORT/metrics through the exporter's own serving path (WebServer:
// the HTTP front end, then prometheus-cpp's Exposer on CivetWeb with the
// exporter's CivetWeb settings), with the exporter's malloc settings. Each
// scrape copies the families, as the exporter hands a collection's result
// to its request, and prometheus-cpp serializes them. No socket table is
// read per scrape: a scrape of this server is what the exporter's scrape
// would cost if the kernel's walk and every line of the exporter's own
// scrape code were free. Prints "READY <series>" when serving. SIGHUP
// collects the families again (the driver grows the population between
// sizes; the port is bound once, before the population takes ephemeral
// ports) and prints "REFRESHED <series>". Runs until SIGTERM or SIGINT.
//
// Thread safety: FixedFamilies swaps and copies its families under a mutex.
#include <prometheus/collectable.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "collectors/registry.h"
#include "config/config.h"
#include "exporter/app.h"
#include "exporter/http/web.h"
#include "exporter/scraper.h"

namespace {

class FixedFamilies : public prometheus::Collectable {
 public:
  void Set(std::vector<prometheus::MetricFamily> families) {
    std::lock_guard lock(mutex_);
    families_ = std::move(families);
  }
  std::vector<prometheus::MetricFamily> Collect() const override {
    std::lock_guard lock(mutex_);
    return families_;
  }

 private:
  mutable std::mutex mutex_;
  std::vector<prometheus::MetricFamily> families_;
};

// Collects the exporter's families for this namespace's sockets into fixed;
// returns their series count, 0 when a collector failed.
std::size_t CollectInto(const socket_exporter::Scraper& scraper, FixedFamilies& fixed) {
  socket_exporter::ScrapeOutcome outcome = scraper.CollectNow();
  if (!outcome.all_succeeded) {
    std::fprintf(stderr, "stack_floor: a collector failed; the families are not the exporter's\n");
    return 0;
  }
  std::size_t series = 0;
  for (const auto& family : outcome.families) series += family.metric.size();
  fixed.Set(std::move(outcome.families));
  return series;
}

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
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);  // before CivetWeb's threads

  const socket_exporter::Scraper scraper({}, socket_exporter::DefaultConfig());
  auto families = std::make_shared<FixedFamilies>();
  const std::size_t series = CollectInto(scraper, *families);
  if (series == 0) return 1;

  socket_exporter::WebOptions options;
  options.listen_address = "127.0.0.1:" + std::to_string(port);
  auto server = socket_exporter::WebServer::Start(options, families);
  if (!server) {
    std::fprintf(stderr, "stack_floor: %s\n", server.error().message.c_str());
    return 1;
  }
  {
    std::printf("READY %zu\n", series);
    std::fflush(stdout);
    for (;;) {
      int signal_number = 0;
      sigwait(&signals, &signal_number);
      if (signal_number != SIGHUP) break;
      const std::size_t refreshed = CollectInto(scraper, *families);
      if (refreshed == 0) return 1;
      std::printf("REFRESHED %zu\n", refreshed);
      std::fflush(stdout);
    }
  }
  return 0;
}
