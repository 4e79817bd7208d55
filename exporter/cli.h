// Command-line flags, in node_exporter's style. Parsing is done with CLI11.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

namespace socket_exporter {

struct Options {
  std::string listen_address = ":19375";
  std::string telemetry_path = "/metrics";
  std::string web_config_file;
  std::string config_file;  // empty = embedded default
  std::string procfs_root = "/proc";
  std::string socket_source = "auto";  // auto | netlink | procfs
  std::map<std::string, bool> collector_overrides;
  std::string log_level = "info";
  bool once = false;
  bool check_config = false;
};

// Parses argv. Returns std::nullopt to go on, or the exit code to leave with
// (after --help, --version or a usage error, which are printed here).
std::optional<int> ParseCommandLine(int argc, const char* const* argv, Options& options);

}  // namespace socket_exporter
