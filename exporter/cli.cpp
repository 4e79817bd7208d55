#include "exporter/cli.h"

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <iostream>

#include "collectors/registry.h"
#include "exporter/version.h"

namespace socket_exporter {

std::optional<int> ParseCommandLine(int argc, const char* const* argv, Options& options) {
  CLI::App app{"socket_exporter: Prometheus exporter for Linux TCP/UDP socket metrics.",
               "socket_exporter"};
  app.get_formatter()->column_width(44);
  app.set_version_flag("--version", fmt::format("socket_exporter {} (revision {})", kVersion,
                                                kRevision));
  app.add_option("--web.listen-address", options.listen_address,
                 "Address to listen on for HTTP requests, e.g. :19375 or 127.0.0.1:19375")
      ->capture_default_str();
  app.add_option("--web.telemetry-path", options.telemetry_path, "Path under which to expose metrics")
      ->capture_default_str();
  app.add_option("--web.config.file", options.web_config_file,
                 "Web config file (TLS, basic auth), exporter-toolkit format");
  app.add_option("--config.file", options.config_file,
                 "YAML config file (port ranges, services, collectors); default: embedded");
  app.add_flag("--config.check", options.check_config,
               "Validate the config file, print the result and exit");
  app.add_option("--path.procfs", options.procfs_root, "procfs mountpoint")->capture_default_str();
  app.add_option("--socket.source", options.socket_source,
                 "Where to read sockets: auto (netlink, else /proc/net), netlink or procfs")
      ->check(CLI::IsMember({"auto", "netlink", "procfs"}))
      ->capture_default_str();
  app.add_option("--log.level", options.log_level, "Log level: debug, info, warn, error")
      ->check(CLI::IsMember({"debug", "info", "warn", "error"}))
      ->capture_default_str();
  app.add_flag("--once", options.once,
               "Write one scrape's metrics to stdout and exit (non-zero if a collector failed)");

  // --collector.NAME / --no-collector.NAME for every registered collector.
  std::vector<std::pair<std::string, std::int64_t>> collector_flags;
  collector_flags.reserve(AllCollectors().size());
  for (const CollectorInfo& info : AllCollectors()) {
    collector_flags.emplace_back(std::string(info.name), 0);
  }
  for (auto& [name, value] : collector_flags) {
    const CollectorInfo* info = nullptr;
    for (const CollectorInfo& candidate : AllCollectors()) {
      if (candidate.name == name) info = &candidate;
    }
    app.add_flag(fmt::format("--collector.{},!--no-collector.{}", name, name), value,
                 fmt::format("Enable the {} collector: {} (default: {})", name, info->help,
                             info->enabled_by_default ? "enabled" : "disabled"))
        ->group("Collectors");
  }

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  for (const auto& [name, value] : collector_flags) {
    if (value > 0) options.collector_overrides[name] = true;
    if (value < 0) options.collector_overrides[name] = false;
  }
  return std::nullopt;
}

}  // namespace socket_exporter
