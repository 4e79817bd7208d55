// The core counts: socket_connections{protocol, family, state, direction,
// port_range, service_name}.
//
// Series are sticky: a label set seen once keeps being published (as 0 when
// empty) until the config changes, and every (protocol, family, state,
// direction, port_range) starts at 0 with service_name="other", so
// `sum by (state)` always returns every state and rate()/absent() behave.
// The number of label sets is capped by limits.max_series: once the cap is
// reached, a new label set is folded into service_name="other" and counted in
// socket_exporter_cardinality_folded_series.
//
// Thread safety: see collector.h (one scrape at a time).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <ostream>
#include <unordered_map>

#include "collectors/collector.h"

namespace socket_exporter {

// Its tables in --summary.
void WriteConnectionTables(const std::vector<prometheus::MetricFamily>& families,
                           const Config& config, std::ostream& out);

class ConnectionsCollector : public Collector {
 public:
  Result<void> Begin(const ScrapeContext& context) override;
  void Observe(const SocketRecord& record, const Classification& cls) override;
  Result<void> Finish(std::vector<prometheus::MetricFamily>& out) override;

 private:
  void Seed();

  std::shared_ptr<const Config> config_;
  std::unordered_map<std::uint64_t, std::uint64_t> counts_;  // this scrape
  std::map<std::uint64_t, bool> known_series_;               // sticky label sets
  std::uint64_t folded_sockets_ = 0;
  std::uint64_t folded_series_ = 0;
  bool logged_fold_ = false;
};

}  // namespace socket_exporter
