#include "collectors/registry.h"

#include "collectors/cgroups_collector.h"
#include "collectors/connections_collector.h"
#include "collectors/ephemeral_collector.h"
#include "collectors/listeners_collector.h"
#include "collectors/netns_collector.h"

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
    {"listeners", true,
     "accept queue length and limit per listening port, SYN backlog, listen overflows",
     &Make<ListenersCollector>},
    {"cgroups", true, "sockets and ephemeral ports per cgroup", &Make<CgroupsCollector>},
    {"netns", false,
     "run the socket collectors in every network namespace of the host (containers, pods), "
     "labelled netns; needs CAP_SYS_ADMIN",
     &Make<NetnsCollector>},
};

}  // namespace

std::span<const CollectorInfo> AllCollectors() { return kCollectors; }

}  // namespace socket_exporter
