// libFuzzer target for ParseConfig (config/config.h): the input bytes are the
// YAML text of a config file.
//
// Beyond "no crash, no sanitizer report, no exception escaping":
//  - parsing is deterministic: the same text gives the same config or the
//    same error message twice;
//  - an accepted config satisfies everything the exporter relies on: 1 to 64
//    port ranges, sorted and covering 0-65535 exactly once, lookup tables that
//    agree with the lists (every port maps to the one range and the one
//    service per protocol that claims it; a service may list a port twice,
//    two services may not share one), valid and unique names, no
//    service named "other", every number within its documented bounds;
//  - a rejected config gets a bounded, printable message: every line is
//    "fuzz.yaml:LINE:COLUMN: ...", at most 101 lines (100 errors and the
//    "more not shown" line), no control bytes besides the newlines.
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <set>
#include <string>
#include <string_view>

#include "collectors/ephemeral_collector.h"
#include "collectors/listeners_collector.h"
#include "collectors/registry.h"
#include "config/config.h"
#include "tests/fuzz/fuzz_checks.h"

namespace socket_exporter::fuzz {
namespace {

constexpr const char* kSource = "fuzz.yaml";

bool ValidName(const std::string& name) {
  if (name.empty() || name.size() > 64 || name == "other") return false;
  if (!((name[0] >= 'a' && name[0] <= 'z') || name[0] == '_')) return false;
  for (char c : name) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) return false;
  }
  return true;
}

void CheckAccepted(const Config& config) {
  FUZZ_CHECK(config.source == kSource, config.source);
  // Port ranges: sorted, contiguous, 0..65535, names valid and unique.
  FUZZ_CHECK(!config.port_ranges.empty() && config.port_ranges.size() <= 64,
             "port range count " + std::to_string(config.port_ranges.size()));
  std::set<std::string> names;
  std::uint32_t next = 0;
  for (const PortRangeConfig& range : config.port_ranges) {
    FUZZ_CHECK(range.ports.first == next, "port ranges not contiguous at " + range.name);
    FUZZ_CHECK(range.ports.first <= range.ports.last, "reversed range " + range.name);
    FUZZ_CHECK(ValidName(range.name), "bad range name '" + range.name + "'");
    FUZZ_CHECK(names.insert(range.name).second, "duplicate range name " + range.name);
    next = std::uint32_t{range.ports.last} + 1;
  }
  FUZZ_CHECK(next == 65536, "port ranges end at " + std::to_string(next - 1));
  std::size_t index = 0;
  for (std::uint32_t port = 0; port < 65536; ++port) {
    while (config.port_ranges[index].ports.last < port) ++index;
    FUZZ_CHECK(config.range_of_port[port] == index,
               "range_of_port wrong at " + std::to_string(port));
  }

  // Services: names valid and unique, at least one port and protocol each,
  // no port claimed twice per protocol, lookup tables exactly the claims.
  FUZZ_CHECK(config.services.size() <= 65535, "too many services accepted");
  // 256 KiB: static rather than on the stack.
  static std::array<std::array<std::uint16_t, 65536>, 2> claimed;
  for (auto& table : claimed) table.fill(0);
  names.clear();
  for (std::size_t i = 0; i < config.services.size(); ++i) {
    const ServiceConfig& service = config.services[i];
    FUZZ_CHECK(ValidName(service.name), "bad service name '" + service.name + "'");
    FUZZ_CHECK(names.insert(service.name).second, "duplicate service name " + service.name);
    FUZZ_CHECK(!service.ports.empty(), "service without ports: " + service.name);
    FUZZ_CHECK(service.tcp || service.udp, "service without protocols: " + service.name);
    for (const PortInterval& ports : service.ports) {
      FUZZ_CHECK(ports.first <= ports.last, "reversed service ports in " + service.name);
      for (std::uint32_t port = ports.first; port <= ports.last; ++port) {
        for (std::size_t protocol = 0; protocol < 2; ++protocol) {
          if (!(protocol == 0 ? service.tcp : service.udp)) continue;
          // Listing a port twice in one service is harmless; two services
          // may not share one.
          FUZZ_CHECK(claimed[protocol][port] == 0 || claimed[protocol][port] == i + 1,
                     "port " + std::to_string(port) + " claimed by two services, the second " +
                         service.name);
          claimed[protocol][port] = static_cast<std::uint16_t>(i + 1);
        }
      }
    }
  }
  for (std::size_t protocol = 0; protocol < 2; ++protocol) {
    for (std::uint32_t port = 0; port < 65536; ++port) {
      FUZZ_CHECK(config.service_of_port[protocol][port] == claimed[protocol][port],
                 "service_of_port wrong at " + std::to_string(port));
    }
  }
  FUZZ_CHECK(config.ServiceName(0) == "other", "ServiceName(0)");

  for (const auto& [name, enabled] : config.collectors) {
    FUZZ_CHECK(ValidName(name), "bad collector name '" + name + "'");
  }
  const auto& e = config.Section<EphemeralSettings>(kEphemeralCollectorName);
  FUZZ_CHECK(e.top_destinations <= 1000, "top_destinations");
  FUZZ_CHECK(e.max_tracked_destinations >= 1 && e.max_tracked_destinations <= 10'000'000,
             "max_tracked_destinations");
  std::set<double> thresholds;
  for (double t : e.utilization_thresholds) {
    FUZZ_CHECK(t > 0.0 && t <= 1.0, "threshold " + std::to_string(t));
    FUZZ_CHECK(thresholds.insert(t).second, "duplicate threshold");
  }
  FUZZ_CHECK(config.Section<ListenersSettings>(kListenersCollectorName).top_other_ports <= 1000,
             "top_other_ports");
  FUZZ_CHECK(config.limits.max_series >= 10 && config.limits.max_series <= 1'000'000, "max_series");
}

void CheckRejected(const std::string& message) { CheckPositionedMessage(message, kSource, 101); }

}  // namespace
}  // namespace socket_exporter::fuzz

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace socket_exporter;
  using namespace socket_exporter::fuzz;
  const std::string text(reinterpret_cast<const char*>(data), size);
  const auto first = ParseConfig(text, kSource);
  const auto second = ParseConfig(text, kSource);
  FUZZ_CHECK(first.has_value() == second.has_value(), "ParseConfig is not deterministic");
  if (!first) {
    FUZZ_CHECK(first.error().message == second.error().message,
               "different messages for the same text:\n" + first.error().message + "\n--\n" +
                   second.error().message);
    CheckRejected(first.error().message);
    return 0;
  }
  CheckAccepted(**first);
  const Config& a = **first;
  const Config& b = **second;
  FUZZ_CHECK(a.range_of_port == b.range_of_port && a.service_of_port == b.service_of_port &&
                 a.services.size() == b.services.size() && a.collectors == b.collectors &&
                 a.Section<EphemeralSettings>(kEphemeralCollectorName).utilization_thresholds ==
                     b.Section<EphemeralSettings>(kEphemeralCollectorName).utilization_thresholds &&
                 a.limits.max_series == b.limits.max_series,
             "ParseConfig is not deterministic");
  return 0;
}
