// The exporter's configuration: what the YAML file says, validated, with
// lookup tables derived from it. A Config is immutable once built and can be
// shared between threads; a reload builds a new one and swaps it in.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "collectors/cgroups_settings.h"  // until collectors own their sections
#include "common/result.h"

namespace socket_exporter {

struct PortInterval {
  std::uint16_t first = 0;
  std::uint16_t last = 0;  // inclusive
};

struct PortRangeConfig {
  std::string name;  // label value of port_range
  PortInterval ports;
};

struct ServiceConfig {
  std::string name;  // label value of service_name
  std::vector<PortInterval> ports;
  bool tcp = true;  // applies to TCP sockets
  bool udp = true;  // applies to UDP sockets
};

struct EphemeralConfig {
  // Series of socket_ephemeral_destination_ports_used: the K busiest
  // destinations. 0 turns the per-destination series off.
  std::uint32_t top_destinations = 10;
  // Size cap of the per-scrape destination table; destinations beyond it are
  // counted in socket_ephemeral_destinations_untracked.
  std::uint32_t max_tracked_destinations = 65536;
  // socket_ephemeral_destinations_above_ratio{threshold} is published for each.
  std::vector<double> utilization_thresholds = {0.5, 0.8, 0.9};
};

struct ListenersConfig {
  // Listening ports outside the configured services that get their own series:
  // the K fullest accept queues.
  std::uint32_t top_other_ports = 10;
};

// The netns collector (docs/netns.md): which network namespaces of the host
// get their own socket pass.
enum class NetnsSource : std::uint8_t {
  kAuto,     // the BPF walk where it loads, else netlink per namespace
  kNetlink,  // a netlink dump in each namespace (walks the shared table each time)
  kBpf,      // the BPF walk; falls back to netlink (with a warning) if it cannot load
};

struct NetnsConfig {
  // Discovery (the /proc scan) is reused for this long; 0 = every scrape.
  // Namespaces are still opened, and vanished ones dropped, at every scrape.
  std::uint32_t cache_seconds = 5;
  // Namespaces scraped at most; the rest are counted in
  // socket_exporter_netns_skipped{reason="max_namespaces"}.
  std::uint32_t max_namespaces = 128;
  // Shell globs (fnmatch) matched against a namespace's label value, each of
  // its names and its container ID. Empty include = every namespace; a
  // namespace matching any exclude pattern is dropped.
  std::vector<std::string> include;
  std::vector<std::string> exclude;
  NetnsSource source = NetnsSource::kAuto;
};

struct LimitsConfig {
  // Ceiling on series of socket_connections per scrape; excess is folded.
  std::uint32_t max_series = 5000;
};

struct Config {
  std::string source;                        // file path, or "<embedded default>"
  std::vector<PortRangeConfig> port_ranges;  // sorted by first port; covers 0-65535
  std::vector<ServiceConfig> services;       // in file order
  // Collector name -> enabled, for every collector named in the file.
  std::map<std::string, bool> collectors;
  EphemeralConfig ephemeral;
  ListenersConfig listeners;
  NetnsConfig netns;
  LimitsConfig limits;
  CgroupsSettings cgroups;

  // Derived lookup tables, filled by BuildLookups().
  // port -> index into port_ranges.
  std::array<std::uint16_t, 65536> range_of_port{};
  // [0]=tcp [1]=udp; port -> 1 + index into services, 0 = "other".
  std::array<std::array<std::uint16_t, 65536>, 2> service_of_port{};

  void BuildLookups();
  const std::string& ServiceName(std::uint16_t service_index) const;  // 0 -> "other"
};

// The YAML text of the built-in configuration (config/default.yaml).
extern const char* const kEmbeddedDefaultConfig;

// Parses and validates YAML text. `source_name` is used in messages.
// On failure the error message lists every problem found, one per line, each
// as "<source_name>:<line>:<column>: <what was expected>".
Result<std::shared_ptr<const Config>> ParseConfig(const std::string& yaml_text,
                                                  const std::string& source_name);
// Reads the file and parses it; a missing or unreadable file is an error.
Result<std::shared_ptr<const Config>> LoadConfigFile(const std::string& path);
// The embedded default, parsed.
std::shared_ptr<const Config> DefaultConfig();

}  // namespace socket_exporter
