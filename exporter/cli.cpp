#include "exporter/cli.h"

#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <iostream>

#include "collectors/registry.h"
#include "common/version.h"
#include "exporter/socket_view.h"

namespace socket_exporter {
namespace {

// A duration as Go programs write it: "10s", "500ms", "2m", "1m30s".
std::optional<std::chrono::milliseconds> ParseDuration(const std::string& text) {
  if (text.empty()) return std::nullopt;
  double total_ms = 0;
  std::size_t i = 0;
  while (i < text.size()) {
    std::size_t start = i;
    while (i < text.size() && ((text[i] >= '0' && text[i] <= '9') || text[i] == '.')) ++i;
    if (start == i) return std::nullopt;
    double value = 0;
    try {
      value = std::stod(text.substr(start, i - start));
    } catch (const std::exception&) {
      return std::nullopt;
    }
    start = i;
    while (i < text.size() && text[i] >= 'a' && text[i] <= 'z') ++i;
    const std::string unit = text.substr(start, i - start);
    if (unit == "ms") {
      total_ms += value;
    } else if (unit == "s") {
      total_ms += value * 1000;
    } else if (unit == "m") {
      total_ms += value * 60000;
    } else if (unit == "h") {
      total_ms += value * 3600000;
    } else {
      return std::nullopt;
    }
  }
  if (total_ms < 1 || total_ms > 24.0 * 3600000) return std::nullopt;
  return std::chrono::milliseconds(static_cast<long long>(total_ms));
}

std::string FormatDuration(std::chrono::milliseconds d) {
  if (d.count() % 1000 != 0) return fmt::format("{}ms", d.count());
  return fmt::format("{}s", d.count() / 1000);
}

}  // namespace

std::optional<int> ParseCommandLine(int argc, const char* const* argv, Options& options) {
  CLI::App app{"socket_exporter: Prometheus exporter for Linux TCP/UDP socket metrics.",
               "socket_exporter"};
  app.get_formatter()->column_width(44);
  app.set_version_flag("--version",
                       fmt::format("socket_exporter {} (revision {})", kVersion, kRevision));
  app.add_option("--web.listen-address", options.listen_address,
                 "Address to listen on: :19375 (every IPv6 and IPv4 address), 0.0.0.0:19375 "
                 "(IPv4 only), 127.0.0.1:19375, [::1]:19375; repeat it or separate with commas "
                 "for several")
      ->join(',')
      ->capture_default_str();
  app.add_option("--web.telemetry-path", options.telemetry_path,
                 "Path under which to expose metrics")
      ->capture_default_str();
  app.add_option("--web.config.file", options.web_config_file,
                 "Web config file (TLS, basic auth), exporter-toolkit format");
  const auto duration_flag = [&](const std::string& name, std::chrono::milliseconds& target,
                                 const std::string& help) {
    app.add_option_function<std::string>(
           name,
           [&target, name](const std::string& value) {
             const auto parsed = ParseDuration(value);
             if (!parsed) {
               throw CLI::ValidationError(
                   name, "expected a duration from 1ms to 24h such as 10s, 500ms or 2m, got \"" +
                             value + "\"");
             }
             target = *parsed;
           },
           help)
        ->default_str(FormatDuration(target));
  };
  duration_flag("--web.tls-handshake-timeout", options.web_tls_handshake_timeout,
                "Longest time from accepting a TLS connection to the end of its handshake");
  duration_flag("--web.header-timeout", options.web_header_timeout,
                "Longest time to read a request head, from accept (after the TLS handshake), "
                "or from the first byte of a keep-alive request");
  duration_flag("--web.idle-timeout", options.web_idle_timeout,
                "Longest time a keep-alive connection may wait for its next request");
  duration_flag("--web.write-timeout", options.web_write_timeout,
                "Longest time to deliver an answer to the client, from its first byte");
  app.add_option("--web.max-header-bytes", options.web_max_header_bytes,
                 "Largest request head (request line and headers); larger gets 431")
      ->check(CLI::Range(std::size_t{1024}, std::size_t{1} << 20))
      ->capture_default_str();
  app.add_option("--web.max-connections", options.web_max_connections,
                 "Most open HTTP connections; at the limit the oldest idle or slowest one is "
                 "closed to make room (lowered to fit the open files limit)")
      ->check(CLI::Range(std::size_t{16}, std::size_t{1} << 20))
      ->capture_default_str();
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

  // --collector.NAME / --no-collector.NAME for every registered collector
  // and scrape mode.
  struct Switch {
    std::string_view name;
    std::string_view help;
    bool enabled_by_default;
    std::int64_t value = 0;  // CLI11 counts: +1 per --collector.X, -1 per --no-collector.X
  };
  std::vector<Switch> switches;
  for (const CollectorInfo& info : AllCollectors()) {
    switches.push_back({info.name, info.help, info.enabled_by_default});
  }
  for (const ScrapeModeInfo& mode : AllScrapeModes()) {
    switches.push_back({mode.name, mode.help, mode.enabled_by_default});
  }
  for (Switch& entry : switches) {
    app.add_flag(fmt::format("--collector.{},!--no-collector.{}", entry.name, entry.name),
                 entry.value,
                 fmt::format("Enable the {} collector: {} (default: {})", entry.name, entry.help,
                             entry.enabled_by_default ? "enabled" : "disabled"))
        ->group("Collectors");
  }

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  for (const Switch& entry : switches) {
    if (entry.value > 0) options.collector_overrides[std::string(entry.name)] = true;
    if (entry.value < 0) options.collector_overrides[std::string(entry.name)] = false;
  }
  return std::nullopt;
}

}  // namespace socket_exporter
