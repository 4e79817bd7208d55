#include "exporter/cli.h"

#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <iostream>

#include "collectors/registry.h"
#include "common/version.h"
#include "exporter/socket_view.h"

namespace socket_exporter {

std::optional<int> ParseCommandLine(int argc, const char* const* argv, Options& options) {
  CLI::App app{"socket_exporter: Prometheus exporter for Linux TCP/UDP socket metrics.",
               "socket_exporter"};
  app.get_formatter()->column_width(44);
  app.set_version_flag("--version",
                       fmt::format("socket_exporter {} (revision {})", kVersion, kRevision));
  app.add_option("--web.listen-address", options.listen_address,
                 "Address to listen on, e.g. :19375, 127.0.0.1:19375 or [::]:19375; "
                 "repeat it or separate with commas for several")
      ->join(',')
      ->capture_default_str();
  app.add_option("--web.telemetry-path", options.telemetry_path,
                 "Path under which to expose metrics")
      ->capture_default_str();
  app.add_option("--web.config.file", options.web_config_file,
                 "Web config file (TLS, basic auth), exporter-toolkit format");
  app.add_option("--config.file", options.config_file,
                 "YAML config file (port ranges, services, collectors); default: embedded");
  app.add_flag("--config.check", options.check_config,
               "Validate the config file (and --web.config.file), print the result and exit");
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

  // --list / --summary (exporter/socket_view.h, docs/list-view.md).
  {
    const std::string group = "Socket view";
    CLI::Option* list =
        app.add_flag("--list", options.list,
                     "Print every socket, classified as the config classifies it, and exit")
            ->group(group);
    CLI::Option* summary =
        app.add_flag("--summary", options.summary,
                     "Print the counts a scrape would publish as tables and exit")
            ->group(group);
    list->excludes(summary)->excludes(app.get_option("--once"));
    summary->excludes(app.get_option("--once"));
    app.add_option("--output", options.output,
                   "Format of --list: text (aligned columns) or json "
                   "(one object per line)")
        ->check(CLI::IsMember({"text", "json"}))
        ->needs(list)
        ->capture_default_str()
        ->group(group);
    const auto filter = [&](const std::string& name, std::vector<std::string>& values,
                            const std::string& help) {
      return app.add_option("--filter." + name, values, help + " (repeat or comma-separate)")
          ->delimiter(',')
          ->needs(list)
          ->group(group);
    };
    filter("protocol", options.filter.protocol, "Only sockets of protocol tcp or udp")
        ->check(CLI::IsMember({"tcp", "udp"}));
    filter("family", options.filter.family, "Only sockets of family ipv4 or ipv6")
        ->check(CLI::IsMember({"ipv4", "ipv6"}));
    filter("state", options.filter.state, "Only sockets in this state (a state label value)")
        ->check(CLI::IsMember(StateLabelValues()));
    filter("service", options.filter.service, "Only sockets of this service_name");
    filter("port", options.filter.port, "Only sockets with this local or remote port, N or N-M");
    filter("direction", options.filter.direction, "Only inbound or outbound sockets")
        ->check(CLI::IsMember({"inbound", "outbound"}));
    filter("cgroup", options.filter.cgroup,
           "Only sockets whose cgroup (path, or unowned/removed/unresolved) matches this glob");
  }

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
