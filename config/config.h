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

#include "common/ports.h"
#include "common/result.h"

namespace socket_exporter {

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

// The settings of one top-level section that a collector owns: the
// collector's file defines a subclass and the function that parses it
// (collectors/registry.h lists both).
class SectionSettings {
 public:
  virtual ~SectionSettings() = default;
};

namespace yaml {
struct Field;
class FieldReader;
}  // namespace yaml

struct SectionSchema {
  std::string_view key;  // the top-level key, e.g. "ephemeral"
  // Builds the settings from the section's value, or the defaults when the
  // file has no such section (section == nullptr). Reports every problem
  // through reader; what it returns is then ignored.
  std::shared_ptr<const SectionSettings> (*parse)(yaml::FieldReader& reader,
                                                  const yaml::Field* section);
};

// What the file may contain beyond the built-in keys (port_ranges, services,
// collectors, netns, limits).
struct ConfigSchema {
  // Names accepted under `collectors:`, in the order messages list them.
  std::vector<std::string_view> switches;
  // Sections owned by collectors, in the order messages list them.
  std::vector<SectionSchema> sections;
};

struct Config {
  std::string source;                        // file path, or "<embedded default>"
  std::vector<PortRangeConfig> port_ranges;  // sorted by first port; covers 0-65535
  std::vector<ServiceConfig> services;       // in file order
  // Collector name -> enabled, for every collector named in the file.
  std::map<std::string, bool> collectors;
  NetnsConfig netns;
  LimitsConfig limits;
  // Section key -> its settings, for every section of the schema (the
  // defaults where the file has none). Read them with Section<T>(key).
  std::map<std::string, std::shared_ptr<const SectionSettings>, std::less<>> sections;

  // The settings of section key, which the schema the config was parsed with
  // declared with settings of type T.
  template <typename T>
  const T& Section(std::string_view key) const {
    return static_cast<const T&>(*sections.find(key)->second);
  }

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

// Parses and validates YAML text against the built-in keys and the schema's.
// `source_name` is used in messages. On failure the error message lists every
// problem found, one per line, each as "<source_name>:<line>:<column>: <what
// was expected>". The exporter's schema comes from the collector registry:
// collectors/registry.h has these functions without the schema argument.
Result<std::shared_ptr<const Config>> ParseConfig(const std::string& yaml_text,
                                                  const std::string& source_name,
                                                  const ConfigSchema& schema);
// Reads the file and parses it; a missing or unreadable file is an error.
Result<std::shared_ptr<const Config>> LoadConfigFile(const std::string& path,
                                                     const ConfigSchema& schema);
// The embedded default parsed with the schema; if that fails (a broken
// build), the built-in port ranges and the sections' defaults.
std::shared_ptr<const Config> ParseDefaultConfig(const ConfigSchema& schema);

}  // namespace socket_exporter
