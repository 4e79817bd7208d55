// Command-line flags, in node_exporter's style. Parsing is done with CLI11.
#pragma once

#include <chrono>
#include <cstddef>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace socket_exporter {

// --filter.* of --list (exporter/socket_view.h), as given: each flag may be
// repeated or take a comma-separated list.
struct ListFilterFlags {
  std::vector<std::string> protocol;   // tcp, udp
  std::vector<std::string> family;     // ipv4, ipv6
  std::vector<std::string> state;      // state label values
  std::vector<std::string> service;    // service_name values of the config
  std::vector<std::string> port;       // N or N-M, local or remote
  std::vector<std::string> direction;  // inbound, outbound
  std::vector<std::string> cgroup;     // fnmatch globs on the cgroup column
};

struct Options {
  std::string listen_address = ":19375";
  std::string telemetry_path = "/metrics";
  std::string web_config_file;
  // Bounds of the HTTP front end (--web.*; docs/web-security.md).
  std::chrono::milliseconds web_tls_handshake_timeout{10000};
  std::chrono::milliseconds web_header_timeout{10000};
  std::chrono::milliseconds web_idle_timeout{60000};
  std::chrono::milliseconds web_write_timeout{10000};
  std::size_t web_max_header_bytes = 16384;
  std::size_t web_max_connections = 8192;
  std::string config_file;  // empty = embedded default
  std::string procfs_root = "/proc";
  std::string socket_source = "auto";  // auto | netlink | procfs
  std::map<std::string, bool> collector_overrides;
  std::string log_level = "info";
  bool once = false;
  bool check_config = false;
  // --list / --summary: print the socket table or the counts and exit.
  bool list = false;
  bool summary = false;
  std::string output = "text";  // --output of --list: text | json
  ListFilterFlags filter;
};

// Parses argv. Returns std::nullopt to go on, or the exit code to leave with
// (after --help, --version or a usage error, which are printed here).
std::optional<int> ParseCommandLine(int argc, const char* const* argv, Options& options);

}  // namespace socket_exporter
