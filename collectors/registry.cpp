#include "collectors/registry.h"

#include "collectors/connections_collector.h"
#include "collectors/ephemeral_collector.h"

namespace socket_exporter {
namespace {

template <typename T>
std::unique_ptr<Collector> Make() {
  return std::make_unique<T>();
}

// Adding a collector: one file pair in collectors/, one line here.
constexpr CollectorInfo kCollectors[] = {
    {"connections", true, "socket counts by state, direction, port range and service",
     &Make<ConnectionsCollector>},
    {"ephemeral", true, "ephemeral port use per destination, to predict connect() failures",
     &Make<EphemeralCollector>},
};

}  // namespace

std::span<const CollectorInfo> AllCollectors() { return kCollectors; }

}  // namespace socket_exporter
