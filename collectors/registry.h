// Every collector the exporter knows, with its default. The command line turns
// each entry into --collector.NAME / --no-collector.NAME, and the config's
// `collectors:` map can switch it too (the command line wins).
#pragma once

#include <memory>
#include <span>
#include <string_view>

#include "collectors/collector.h"

namespace socket_exporter {

struct CollectorInfo {
  std::string_view name;
  bool enabled_by_default;
  std::string_view help;
  std::unique_ptr<Collector> (*make)();
};

std::span<const CollectorInfo> AllCollectors();

}  // namespace socket_exporter
