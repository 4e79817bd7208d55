// The `netns` collector switch (docs/netns.md). Enabling it
// (--collector.netns, or `collectors: {netns: true}`) makes the Scraper run
// every socket collector once per network namespace of the host, each pass
// on a thread that setns()'d into the namespace, and add a netns label to
// their families; the namespace metrics (socket_exporter_netns_*) come from
// the Scraper's netns pass (exporter/netns_scraper.h), which also reports
// this collector's success and duration. The object itself only holds the
// collector's place in the registry: Begin and Finish do nothing.
//
// Thread safety: stateless.
#pragma once

#include <string_view>

#include "collectors/collector.h"

namespace socket_exporter {

inline constexpr std::string_view kNetnsCollectorName = "netns";

class NetnsCollector : public Collector {
 public:
  std::string_view Name() const override { return kNetnsCollectorName; }
  bool UsesSockets() const override { return false; }
  Result<void> Begin(const ScrapeContext& /*context*/) override { return {}; }
  Result<void> Finish(std::vector<prometheus::MetricFamily>& /*out*/) override { return {}; }
};

}  // namespace socket_exporter
