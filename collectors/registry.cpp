#include "collectors/registry.h"

#include "collectors/cgroups_collector.h"
#include "collectors/connections_collector.h"
#include "collectors/ephemeral_collector.h"
#include "collectors/events_collector.h"
#include "collectors/listeners_collector.h"

namespace socket_exporter {
namespace {

template <typename T>
std::unique_ptr<Collector> Make() {
  return std::make_unique<T>();
}

// Adding a collector: one file pair in collectors/, one line here.
const CollectorInfo kCollectors[] = {
    {"connections", true, "socket counts by state, direction, port range and service",
     &Make<ConnectionsCollector>, nullptr, &WriteConnectionTables},
    {kEphemeralCollectorName, true,
     "ephemeral port use per destination, to predict connect() failures", &Make<EphemeralCollector>,
     &ParseEphemeralSettings, &WriteEphemeralTables},
    {kListenersCollectorName, true,
     "accept queue length and limit per listening port, SYN backlog, listen overflows",
     &Make<ListenersCollector>, &ParseListenersSettings, nullptr},
    {kEventsCollectorName, false,
     "connect() outcomes, bind() failures, retransmits and resets counted in the kernel (BPF); "
     "needs CAP_BPF and CAP_PERFMON",
     &Make<EventsCollector>, &ParseEventsSettings, nullptr},
    {kCgroupsCollectorName, true, "sockets and ephemeral ports per cgroup", &Make<CgroupsCollector>,
     &ParseCgroupsSettings, &WriteCgroupTables},
};

constexpr ScrapeModeInfo kScrapeModes[] = {kNetnsMode};

const ConfigSchema& RegisteredSchema() {
  static const ConfigSchema schema = SchemaFor(AllCollectors());
  return schema;
}

}  // namespace

std::span<const CollectorInfo> AllCollectors() { return kCollectors; }
std::span<const ScrapeModeInfo> AllScrapeModes() { return kScrapeModes; }

ConfigSchema SchemaFor(std::span<const CollectorInfo> collectors) {
  ConfigSchema schema;
  for (const CollectorInfo& info : collectors) {
    schema.switches.push_back(info.name);
    if (info.parse_settings != nullptr) {
      schema.sections.push_back(SectionSchema{info.name, info.parse_settings});
    }
  }
  for (const ScrapeModeInfo& mode : AllScrapeModes()) schema.switches.push_back(mode.name);
  return schema;
}

Result<std::shared_ptr<const Config>> ParseConfig(const std::string& yaml_text,
                                                  const std::string& source_name) {
  return ParseConfig(yaml_text, source_name, RegisteredSchema());
}

Result<std::shared_ptr<const Config>> LoadConfigFile(const std::string& path) {
  return LoadConfigFile(path, RegisteredSchema());
}

std::shared_ptr<const Config> DefaultConfig() {
  static const std::shared_ptr<const Config> kDefault = ParseDefaultConfig(RegisteredSchema());
  return kDefault;
}

}  // namespace socket_exporter
