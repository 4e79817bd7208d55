// Every collector the exporter knows, and everything about each one that the
// rest of the program needs: its name, default and help (the command line
// turns each into --collector.NAME / --no-collector.NAME, the config's
// `collectors:` map switches it too, the command line wins), its section of
// the config file, and its table in --summary. Adding a collector is its
// file pair plus one line in registry.cpp (ARCHITECTURE.md, "Adding a
// collector").
//
// Scrape modes are switched like collectors but are not collectors: netns
// runs every socket collector once per network namespace (docs/netns.md).
//
// Thread safety: constant data and functions without shared state.
#pragma once

#include <memory>
#include <ostream>
#include <span>
#include <string_view>
#include <vector>

#include "collectors/collector.h"
#include "config/config.h"

namespace socket_exporter {

struct CollectorInfo {
  // --collector.NAME, its key under `collectors:`, its label value in
  // socket_exporter_collector_success, and the key of its settings section.
  std::string_view name;
  bool enabled_by_default;
  std::string_view help;
  std::unique_ptr<Collector> (*make)();
  // Parses its section of the config file (named like the collector); null
  // when it has no settings. See SectionSchema in config/config.h.
  decltype(SectionSchema::parse) parse_settings = nullptr;
  // Writes its tables of --summary from the families a scrape published;
  // null when it has none.
  void (*write_summary)(const std::vector<prometheus::MetricFamily>& families, const Config& config,
                        std::ostream& out) = nullptr;
};

// A --collector.NAME switch that is a scrape mode, not a collector.
struct ScrapeModeInfo {
  std::string_view name;
  bool enabled_by_default;
  std::string_view help;
};

inline constexpr ScrapeModeInfo kNetnsMode = {
    "netns", false,
    "run the socket collectors in every network namespace of the host (containers, pods), "
    "labelled netns; needs CAP_SYS_ADMIN"};

std::span<const CollectorInfo> AllCollectors();
std::span<const ScrapeModeInfo> AllScrapeModes();

// What the config file may say about these collectors (and the scrape
// modes): their switches and their settings sections.
ConfigSchema SchemaFor(std::span<const CollectorInfo> collectors);

// The config file as the registered collectors define it: config.h's
// functions with SchemaFor(AllCollectors()).
Result<std::shared_ptr<const Config>> ParseConfig(const std::string& yaml_text,
                                                  const std::string& source_name);
Result<std::shared_ptr<const Config>> LoadConfigFile(const std::string& path);
// The embedded default (config/default.yaml), parsed once.
std::shared_ptr<const Config> DefaultConfig();

}  // namespace socket_exporter
