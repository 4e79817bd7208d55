// Tests of config parsing and validation: the embedded default and the
// example parse, every kind of error is reported with its exact text and
// position, and hostile input fails fast instead of crashing.
#include "config/config.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <random>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "collectors/ephemeral_collector.h"
#include "collectors/listeners_collector.h"
#include "collectors/registry.h"

namespace socket_exporter {
namespace {

const EphemeralSettings& Ephemeral(const Config& config) {
  return config.Section<EphemeralSettings>(kEphemeralCollectorName);
}
const ListenersSettings& Listeners(const Config& config) {
  return config.Section<ListenersSettings>(kListenersCollectorName);
}

constexpr char kSource[] = "test.yaml";

std::string ErrorsOf(const std::string& yaml) {
  const auto result = ParseConfig(yaml, kSource);
  if (result) return "<no error>";
  return result.error().message;
}

std::shared_ptr<const Config> MustParse(const std::string& yaml,
                                        const std::string& source = kSource) {
  auto result = ParseConfig(yaml, source);
  EXPECT_TRUE(result.has_value()) << result.error().message;
  return result ? *result : nullptr;
}

std::vector<std::string> SplitLines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

// Every line of an error report has the documented shape.
void ExpectWellFormedReport(const std::string& report, const std::string& source) {
  const std::regex shape("^" + source + R"(:[1-9][0-9]*:[1-9][0-9]*: [^\n]+$)");
  for (const std::string& line : SplitLines(report)) {
    EXPECT_TRUE(std::regex_match(line, shape)) << line;
    for (char c : line) {
      EXPECT_FALSE(static_cast<unsigned char>(c) < 0x20) << "control byte in: " << line;
    }
  }
}

std::string ServiceAt(const Config& config, int protocol, std::uint16_t port) {
  return config.ServiceName(config.service_of_port[static_cast<std::size_t>(protocol)][port]);
}

std::string RangeAt(const Config& config, std::uint16_t port) {
  return config.port_ranges[config.range_of_port[port]].name;
}

// Distinct (port_range, service_name) pairs a config can produce, as
// config/README.md counts them: each service with the ranges its ports touch,
// plus "other" in every range.
std::size_t ReachablePairs(const Config& config) {
  std::set<std::pair<std::uint16_t, std::size_t>> pairs;
  for (std::uint16_t range = 0; range < config.port_ranges.size(); ++range) {
    pairs.insert({range, 0});
  }
  for (std::size_t i = 0; i < config.services.size(); ++i) {
    for (const PortInterval& ports : config.services[i].ports) {
      for (std::uint32_t port = ports.first; port <= ports.last; ++port) {
        pairs.insert({config.range_of_port[port], i + 1});
      }
    }
  }
  return pairs.size();
}

std::string SourcePath(const std::string& relative) {
#ifdef SOCKET_EXPORTER_SOURCE_DIR
  return std::string(SOCKET_EXPORTER_SOURCE_DIR) + "/" + relative;
#else
  // Run from the source tree or from a build directory inside it.
  for (const char* prefix : {"", "../", "../../"}) {
    if (std::filesystem::exists(prefix + relative)) return prefix + relative;
  }
  return relative;
#endif
}

// A file in the temp directory, removed at the end of the test.
class TempFile {
 public:
  explicit TempFile(const std::string& contents) {
    static int counter = 0;
    path_ = (std::filesystem::temp_directory_path() /
             ("socket_exporter_config_test_" + std::to_string(::getpid()) + "_" +
              std::to_string(counter++) + ".yaml"))
                .string();
    std::ofstream out(path_, std::ios::binary);
    out << contents;
  }
  ~TempFile() { std::filesystem::remove(path_); }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

double SecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// ---------------------------------------------------------------------------
// The embedded default and the example.

TEST(ConfigDefaultTest, EmbeddedDefaultParses) {
  const auto config = MustParse(kEmbeddedDefaultConfig, "<embedded default>");
  ASSERT_NE(config, nullptr);
  EXPECT_EQ(config->source, "<embedded default>");

  ASSERT_EQ(config->port_ranges.size(), 3u);
  EXPECT_EQ(config->port_ranges[0].name, "well_known");
  EXPECT_EQ(config->port_ranges[1].name, "registered");
  EXPECT_EQ(config->port_ranges[2].name, "dynamic");

  const std::vector<std::tuple<std::string, std::uint16_t, std::uint16_t>> expected = {
      {"ftp", 20, 21},    {"ssh", 22, 22},    {"telnet", 23, 23}, {"smtp", 25, 25},
      {"dns", 53, 53},    {"dhcp", 67, 68},   {"tftp", 69, 69},   {"http", 80, 80},
      {"pop3", 110, 110}, {"imap", 143, 143}, {"snmp", 161, 161}, {"https", 443, 443}};
  ASSERT_EQ(config->services.size(), expected.size());
  for (std::size_t i = 0; i < expected.size(); ++i) {
    const ServiceConfig& service = config->services[i];
    EXPECT_EQ(service.name, std::get<0>(expected[i]));
    ASSERT_EQ(service.ports.size(), 1u) << service.name;
    EXPECT_EQ(service.ports[0].first, std::get<1>(expected[i])) << service.name;
    EXPECT_EQ(service.ports[0].last, std::get<2>(expected[i])) << service.name;
    EXPECT_TRUE(service.tcp) << service.name;
    EXPECT_TRUE(service.udp) << service.name;
  }

  const std::map<std::string, bool> collectors = {
      {"connections", true}, {"ephemeral", true}, {"listeners", true}};
  EXPECT_EQ(config->collectors, collectors);
  EXPECT_EQ(Ephemeral(*config).top_destinations, 10u);
  EXPECT_EQ(Ephemeral(*config).max_tracked_destinations, 65536u);
  EXPECT_EQ(Ephemeral(*config).utilization_thresholds, (std::vector<double>{0.5, 0.8, 0.9}));
  EXPECT_EQ(Listeners(*config).top_other_ports, 10u);
  EXPECT_EQ(config->limits.max_series, 5000u);
}

TEST(ConfigDefaultTest, EmbeddedDefaultLookups) {
  const auto config = DefaultConfig();
  ASSERT_NE(config, nullptr);
  EXPECT_EQ(config, DefaultConfig()) << "parsed once and shared";

  EXPECT_EQ(ServiceAt(*config, 0, 22), "ssh");
  EXPECT_EQ(ServiceAt(*config, 1, 22), "ssh");
  EXPECT_EQ(ServiceAt(*config, 0, 20), "ftp");
  EXPECT_EQ(ServiceAt(*config, 0, 21), "ftp");
  EXPECT_EQ(ServiceAt(*config, 1, 68), "dhcp");
  EXPECT_EQ(ServiceAt(*config, 0, 443), "https");
  EXPECT_EQ(config->service_of_port[0][8080], 0u);
  EXPECT_EQ(ServiceAt(*config, 0, 8080), "other");
  EXPECT_EQ(ServiceAt(*config, 1, 8080), "other");
  EXPECT_EQ(ServiceAt(*config, 0, 0), "other");
  EXPECT_EQ(ServiceAt(*config, 0, 65535), "other");

  EXPECT_EQ(RangeAt(*config, 0), "well_known");
  EXPECT_EQ(RangeAt(*config, 1023), "well_known");
  EXPECT_EQ(RangeAt(*config, 1024), "registered");
  EXPECT_EQ(RangeAt(*config, 49151), "registered");
  EXPECT_EQ(RangeAt(*config, 49152), "dynamic");
  EXPECT_EQ(RangeAt(*config, 65535), "dynamic");

  EXPECT_EQ(config->ServiceName(0), "other");
  EXPECT_EQ(config->ServiceName(60000), "other") << "out of range index";

  // config/README.md: P = 15, so at most 56 x 15 = 840 series.
  EXPECT_EQ(ReachablePairs(*config), 15u);
}

TEST(ConfigDefaultTest, ExampleParses) {
  const std::string path = SourcePath("config/example.yaml");
  const auto result = LoadConfigFile(path);
  ASSERT_TRUE(result.has_value()) << result.error().message;
  const Config& config = **result;
  EXPECT_EQ(config.source, path);

  ASSERT_EQ(config.port_ranges.size(), 5u);
  EXPECT_EQ(RangeAt(config, 443), "well_known");
  EXPECT_EQ(RangeAt(config, 4999), "registered");
  EXPECT_EQ(RangeAt(config, 5000), "internal");
  EXPECT_EQ(RangeAt(config, 5432), "internal");
  EXPECT_EQ(RangeAt(config, 9999), "internal");
  EXPECT_EQ(RangeAt(config, 10000), "registered_high");

  EXPECT_EQ(ServiceAt(config, 0, 80), "http");
  EXPECT_EQ(ServiceAt(config, 0, 8080), "http");
  EXPECT_EQ(ServiceAt(config, 1, 80), "other") << "http is tcp only";
  EXPECT_EQ(ServiceAt(config, 0, 443), "https");
  EXPECT_EQ(ServiceAt(config, 1, 443), "http3");
  EXPECT_EQ(ServiceAt(config, 0, 53), "dns");
  EXPECT_EQ(ServiceAt(config, 1, 53), "dns");
  EXPECT_EQ(ServiceAt(config, 1, 123), "ntp");
  EXPECT_EQ(ServiceAt(config, 0, 5432), "postgres");
  EXPECT_EQ(ServiceAt(config, 0, 6379), "redis");
  EXPECT_EQ(ServiceAt(config, 0, 9150), "exporters");
  EXPECT_EQ(config.collectors.at("netns"), false);
  EXPECT_EQ(Ephemeral(config).top_destinations, 20u);

  // The example's comment and config/README.md: P = 16, 896 series.
  EXPECT_EQ(ReachablePairs(config), 16u);
}

// ---------------------------------------------------------------------------
// Defaults and accepted forms.

TEST(ConfigParseTest, EmptyDocumentIsAllDefaults) {
  for (const std::string yaml : {"", "# only a comment\n", "---\n", "~\n", "\n\n"}) {
    const auto config = MustParse(yaml);
    ASSERT_NE(config, nullptr) << yaml;
    ASSERT_EQ(config->port_ranges.size(), 3u);
    EXPECT_EQ(config->port_ranges[0].ports.last, 1023u);
    EXPECT_EQ(config->port_ranges[1].ports.last, 49151u);
    EXPECT_EQ(config->port_ranges[2].ports.last, 65535u);
    EXPECT_TRUE(config->services.empty());
    EXPECT_TRUE(config->collectors.empty());
    EXPECT_EQ(Ephemeral(*config).top_destinations, 10u);
    EXPECT_EQ(config->limits.max_series, 5000u);
    EXPECT_EQ(ServiceAt(*config, 0, 22), "other");
    EXPECT_EQ(RangeAt(*config, 1024), "registered");
  }
}

TEST(ConfigParseTest, AcceptedForms) {
  const auto config = MustParse(
      "port_ranges:\n"
      "  - {name: high, ports: 1024-65535}\n"  // out of order: sorted on output
      "  - name: low\n"
      "    ports: \"0 - 1023\"\n"
      "services:\n"
      "  - name: web\n"
      "    ports: 80\n"  // scalar instead of a list
      "  - name: alt\n"
      "    ports: [\"8000-8002\", 8080]\n"
      "    protocols: udp\n"  // scalar instead of a list
      "  - name: _x9\n"
      "    ports: [9]\n"
      "collectors: {netns: TRUE, ephemeral: False}\n"
      "ephemeral:\n"
      "  top_destinations: 0\n"
      "  max_tracked_destinations: 10000000\n"
      "  utilization_thresholds: [1, .25, 0.001]\n"
      "listeners: {top_other_ports: 1000}\n"
      "limits: {max_series: 10}\n");
  ASSERT_NE(config, nullptr);
  ASSERT_EQ(config->port_ranges.size(), 2u);
  EXPECT_EQ(config->port_ranges[0].name, "low");
  EXPECT_EQ(config->port_ranges[1].name, "high");
  EXPECT_EQ(RangeAt(*config, 1023), "low");
  EXPECT_EQ(RangeAt(*config, 1024), "high");
  EXPECT_EQ(ServiceAt(*config, 0, 80), "web");
  EXPECT_EQ(ServiceAt(*config, 1, 80), "web");
  EXPECT_EQ(ServiceAt(*config, 1, 8001), "alt");
  EXPECT_EQ(ServiceAt(*config, 0, 8001), "other");
  EXPECT_EQ(ServiceAt(*config, 1, 8003), "other");
  EXPECT_EQ(config->collectors,
            (std::map<std::string, bool>{{"netns", true}, {"ephemeral", false}}));
  EXPECT_EQ(Ephemeral(*config).top_destinations, 0u);
  EXPECT_EQ(Ephemeral(*config).max_tracked_destinations, 10000000u);
  EXPECT_EQ(Ephemeral(*config).utilization_thresholds, (std::vector<double>{1, 0.25, 0.001}));
  EXPECT_EQ(Listeners(*config).top_other_ports, 1000u);
  EXPECT_EQ(config->limits.max_series, 10u);
}

TEST(ConfigParseTest, NameOfSixtyFourCharactersIsAccepted) {
  const std::string name64(64, 'a');
  EXPECT_EQ(ErrorsOf("services: [{name: " + name64 + ", ports: [1]}]\n"), "<no error>");
  EXPECT_EQ(ErrorsOf("services: [{name: " + name64 + "b, ports: [1]}]\n"),
            "test.yaml:1:19: services[0].name: '" + name64 +
                "...' is not a valid name: use lowercase letters, digits and '_', not starting "
                "with a digit, at most 64 characters");
}

// ---------------------------------------------------------------------------
// One test per kind of error, with the exact message.

TEST(ConfigErrorTest, YamlSyntax) {
  EXPECT_EQ(ErrorsOf("services: [1,\n"),
            "test.yaml:2:1: invalid YAML: end of sequence flow not found");
  EXPECT_EQ(ErrorsOf("limits:\n  max_series: 10\n   bad: indent\n"),
            "test.yaml:3:7: invalid YAML: illegal map value");
}

TEST(ConfigErrorTest, TopLevelNotAMap) {
  EXPECT_EQ(ErrorsOf("- 1\n- 2\n"),
            "test.yaml:1:1: expected a map of settings at the top level, got a list");
  EXPECT_EQ(ErrorsOf("hello\n"),
            "test.yaml:1:1: expected a map of settings at the top level, got 'hello'");
}

TEST(ConfigErrorTest, MoreThanOneDocument) {
  EXPECT_EQ(ErrorsOf("limits: {max_series: 10}\n---\nlimits: {max_series: 20}\n"),
            "test.yaml:2:1: expected a single YAML document, found 2");
  // An explicit start and end of the one document is fine.
  EXPECT_EQ(ErrorsOf("---\nlimits: {max_series: 10}\n...\n"), "<no error>");
}

TEST(ConfigErrorTest, StrayCommaDoesNotHang) {
  // yaml-cpp 0.7's LoadAll loops forever on these (jbeder/yaml-cpp#1040).
  EXPECT_EQ(ErrorsOf(","), "test.yaml:1:1: invalid YAML: unexpected ','");
  EXPECT_EQ(ErrorsOf("&anchor ,\n"), "test.yaml:1:9: invalid YAML: unexpected ','");
  EXPECT_EQ(ErrorsOf("limits: {max_series: 10}\n---\n,\n"),
            "test.yaml:3:1: invalid YAML: unexpected ','");
}

TEST(ConfigErrorTest, UnknownKeyWithSuggestion) {
  EXPECT_EQ(ErrorsOf("servces: []\n"),
            "test.yaml:1:1: unknown key 'servces', did you mean 'services'?");
  EXPECT_EQ(ErrorsOf("ephemeral:\n  top_destination: 5\n"),
            "test.yaml:2:3: ephemeral: unknown key 'top_destination', did you mean "
            "'top_destinations'?");
  EXPECT_EQ(ErrorsOf("services:\n  - name: a\n    ports: [1]\n    protocol: [tcp]\n"),
            "test.yaml:4:5: services[0]: unknown key 'protocol', did you mean 'protocols'?");
}

TEST(ConfigErrorTest, UnknownKeyWithoutSuggestion) {
  EXPECT_EQ(ErrorsOf("limits: 10\nweb: {}\n"),
            "test.yaml:1:9: limits: expected a map, got '10'\n"
            "test.yaml:2:1: unknown key 'web'; expected one of: port_ranges, services, "
            "collectors, ephemeral, listeners, events, cgroups, netns, limits");
  EXPECT_EQ(ErrorsOf("limits:\n  series: 10\n"),
            "test.yaml:2:3: limits: unknown key 'series'; expected one of: max_series");
}

TEST(ConfigErrorTest, DuplicateKey) {
  EXPECT_EQ(ErrorsOf("limits:\n  max_series: 10\nlimits:\n  max_series: 20\n"),
            "test.yaml:3:1: duplicate key 'limits' (first at line 1)");
  EXPECT_EQ(ErrorsOf("listeners:\n  top_other_ports: 1\n  top_other_ports: 2\n"),
            "test.yaml:3:3: listeners: duplicate key 'top_other_ports' (first at line 2)");
}

TEST(ConfigErrorTest, WrongNodeTypes) {
  EXPECT_EQ(ErrorsOf("ephemeral: [1]\n"), "test.yaml:1:12: ephemeral: expected a map, got a list");
  EXPECT_EQ(ErrorsOf("services: {a: 1}\n"),
            "test.yaml:1:11: services: expected a list of services, got a map");
  EXPECT_EQ(ErrorsOf("port_ranges: 0-65535\n"),
            "test.yaml:1:14: port_ranges: expected a list of port ranges, got '0-65535'");
  EXPECT_EQ(ErrorsOf("ephemeral:\n  top_destinations: ten\n"),
            "test.yaml:2:21: ephemeral.top_destinations: expected an integer between 0 and "
            "1000, got 'ten'");
  EXPECT_EQ(ErrorsOf("collectors:\n  netns: yes\n"),
            "test.yaml:2:10: collectors.netns: expected a boolean (true or false), got 'yes'");
  EXPECT_EQ(ErrorsOf("services:\n  - name: [a]\n    ports: [1]\n"),
            "test.yaml:2:11: services[0].name: expected a string, got a list");
  EXPECT_EQ(ErrorsOf("services:\n  - 80\n"),
            "test.yaml:2:5: services[0]: expected a map, got '80'");
  EXPECT_EQ(ErrorsOf("ephemeral:\n  utilization_thresholds: 0.5\n"),
            "test.yaml:2:27: ephemeral.utilization_thresholds: expected a list of numbers, got "
            "'0.5'");
  EXPECT_EQ(ErrorsOf("{[a]: 1}\n"), "test.yaml:1:2: expected a string as key, got a list");
}

TEST(ConfigErrorTest, QuotedNumberIsAString) {
  EXPECT_EQ(ErrorsOf("limits:\n  max_series: \"5000\"\n"),
            "test.yaml:2:15: limits.max_series: expected an integer between 10 and 1000000, got "
            "the string '5000'");
  EXPECT_EQ(ErrorsOf("collectors:\n  netns: 'true'\n"),
            "test.yaml:2:10: collectors.netns: expected a boolean (true or false), got the "
            "string 'true'");
}

TEST(ConfigErrorTest, EmptyValuePointsAtItsKey) {
  EXPECT_EQ(ErrorsOf("services:\nlimits:\n  max_series:\n"),
            "test.yaml:1:1: services: expected a list of services, got an empty value\n"
            "test.yaml:3:3: limits.max_series: expected an integer between 10 and 1000000, got "
            "an empty value");
}

TEST(ConfigErrorTest, IntegerBounds) {
  EXPECT_EQ(ErrorsOf("ephemeral:\n"
                     "  top_destinations: 1001\n"
                     "  max_tracked_destinations: 0\n"
                     "listeners:\n"
                     "  top_other_ports: -1\n"
                     "limits:\n"
                     "  max_series: 9\n"),
            "test.yaml:2:21: ephemeral.top_destinations: expected an integer between 0 and "
            "1000, got '1001'\n"
            "test.yaml:3:29: ephemeral.max_tracked_destinations: expected an integer between 1 "
            "and 10000000, got '0'\n"
            "test.yaml:5:20: listeners.top_other_ports: expected an integer between 0 and 1000, "
            "got '-1'\n"
            "test.yaml:7:15: limits.max_series: expected an integer between 10 and 1000000, got "
            "'9'");
  EXPECT_EQ(ErrorsOf("limits: {max_series: 1000001}\n"),
            "test.yaml:1:22: limits.max_series: expected an integer between 10 and 1000000, got "
            "'1000001'");
  EXPECT_EQ(ErrorsOf("limits: {max_series: 99999999999999999999999}\n"),
            "test.yaml:1:22: limits.max_series: expected an integer between 10 and 1000000, got "
            "'99999999999999999999999'");
}

TEST(ConfigErrorTest, UtilizationThresholds) {
  EXPECT_EQ(ErrorsOf("ephemeral:\n  utilization_thresholds: [0.5, 0, 1.5, .nan, x, 0.5, 1]\n"),
            "test.yaml:2:33: ephemeral.utilization_thresholds[1]: expected a number greater "
            "than 0 and at most 1, got '0'\n"
            "test.yaml:2:36: ephemeral.utilization_thresholds[2]: expected a number greater "
            "than 0 and at most 1, got '1.5'\n"
            "test.yaml:2:41: ephemeral.utilization_thresholds[3]: expected a number greater "
            "than 0 and at most 1, got '.nan'\n"
            "test.yaml:2:47: ephemeral.utilization_thresholds[4]: expected a number greater "
            "than 0 and at most 1, got 'x'\n"
            "test.yaml:2:50: ephemeral.utilization_thresholds[5]: duplicate threshold 0.5");
}

TEST(ConfigErrorTest, UnknownCollector) {
  EXPECT_EQ(ErrorsOf("collectors:\n  conections: true\n  sockets: true\n"),
            "test.yaml:2:3: collectors: unknown collector 'conections', did you mean "
            "'connections'? (known collectors: connections, ephemeral, listeners, events, "
            "cgroups, netns)\n"
            "test.yaml:3:3: collectors: unknown collector 'sockets' (known collectors: "
            "connections, ephemeral, listeners, events, cgroups, netns)");
}

TEST(ConfigErrorTest, PortRangeOverlap) {
  EXPECT_EQ(ErrorsOf("port_ranges:\n"
                     "  - name: low\n"
                     "    ports: 0-1023\n"
                     "  - name: mid\n"
                     "    ports: 1000-49151\n"
                     "  - name: high\n"
                     "    ports: 49151-65535\n"),
            "test.yaml:5:12: port_ranges[1].ports: ports 1000-1023 of port range 'mid' are "
            "also in port range 'low'\n"
            "test.yaml:7:12: port_ranges[2].ports: port 49151 of port range 'high' is also in "
            "port range 'mid'");
}

TEST(ConfigErrorTest, PortRangeGaps) {
  EXPECT_EQ(ErrorsOf("port_ranges:\n"
                     "  - {name: a, ports: 1-1023}\n"
                     "  - {name: b, ports: 2000-3000}\n"
                     "  - {name: c, ports: 3002-65534}\n"),
            "test.yaml:2:3: port_ranges: ports 0, 1024-1999, 3001 and 65535 are not in any "
            "port range; port ranges must cover 0-65535");
  EXPECT_EQ(ErrorsOf("port_ranges:\n  - {name: a, ports: 0-65534}\n"),
            "test.yaml:2:3: port_ranges: port 65535 is not in any port range; port ranges must "
            "cover 0-65535");
}

TEST(ConfigErrorTest, PortRangesEmpty) {
  EXPECT_EQ(ErrorsOf("port_ranges: []\n"),
            "test.yaml:1:14: port_ranges: expected at least one port range; port ranges must "
            "cover 0-65535");
}

TEST(ConfigErrorTest, PortRangeNames) {
  EXPECT_EQ(ErrorsOf("port_ranges:\n"
                     "  - {name: all, ports: 0-99}\n"
                     "  - {name: all, ports: 100-199}\n"
                     "  - {name: other, ports: 200-299}\n"
                     "  - {name: 2fast, ports: 300-399}\n"
                     "  - {name: Upper, ports: 400-499}\n"
                     "  - {name: '', ports: 500-65535}\n"),
            "test.yaml:3:12: port_ranges[1].name: duplicate port range name 'all' (first "
            "defined at line 2)\n"
            "test.yaml:4:12: port_ranges[2].name: the name 'other' is reserved for ports that "
            "no service or range names\n"
            "test.yaml:5:12: port_ranges[3].name: '2fast' is not a valid name: use lowercase "
            "letters, digits and '_', not starting with a digit, at most 64 characters\n"
            "test.yaml:6:12: port_ranges[4].name: 'Upper' is not a valid name: use lowercase "
            "letters, digits and '_', not starting with a digit, at most 64 characters\n"
            "test.yaml:7:12: port_ranges[5].name: '' is not a valid name: use lowercase "
            "letters, digits and '_', not starting with a digit, at most 64 characters");
}

TEST(ConfigErrorTest, MissingRequiredKeys) {
  EXPECT_EQ(ErrorsOf("port_ranges:\n"
                     "  - name: all\n"
                     "services:\n"
                     "  - ports: [1]\n"
                     "  - name: x\n"),
            "test.yaml:2:5: port_ranges[0]: missing required key 'ports'\n"
            "test.yaml:4:5: services[0]: missing required key 'name'\n"
            "test.yaml:5:5: services[1]: missing required key 'ports'");
}

TEST(ConfigErrorTest, BadPorts) {
  EXPECT_EQ(ErrorsOf("services:\n"
                     "  - name: a\n"
                     "    ports: [65536, 90-80, http, -5, 1-2-3, 0-70000]\n"),
            "test.yaml:3:13: services[0].ports[0]: port 65536 is out of range 0-65535\n"
            "test.yaml:3:20: services[0].ports[1]: port range '90-80' is reversed: 90 is "
            "greater than 80\n"
            "test.yaml:3:27: services[0].ports[2]: expected a port (0-65535) or a port range "
            "'A-B', got 'http'\n"
            "test.yaml:3:33: services[0].ports[3]: expected a port (0-65535) or a port range "
            "'A-B', got '-5'\n"
            "test.yaml:3:37: services[0].ports[4]: expected a port (0-65535) or a port range "
            "'A-B', got '1-2-3'\n"
            "test.yaml:3:44: services[0].ports[5]: port 70000 is out of range 0-65535");
  EXPECT_EQ(ErrorsOf("port_ranges:\n  - {name: all, ports: [0-65535]}\n"),
            "test.yaml:2:24: port_ranges[0].ports: expected a port (0-65535) or a port range "
            "'A-B', got a list");
}

TEST(ConfigErrorTest, EmptyPortList) {
  EXPECT_EQ(ErrorsOf("services:\n  - name: a\n    ports: []\n"),
            "test.yaml:3:12: services[0].ports: expected at least one port");
}

TEST(ConfigErrorTest, BadProtocols) {
  EXPECT_EQ(ErrorsOf("services:\n"
                     "  - {name: a, ports: [1], protocols: [tcp, sctp]}\n"
                     "  - {name: b, ports: [2], protocols: []}\n"
                     "  - {name: c, ports: [3], protocols: {tcp: true}}\n"),
            "test.yaml:2:44: services[0].protocols[1]: expected 'tcp' or 'udp', got 'sctp'\n"
            "test.yaml:3:38: services[1].protocols: expected at least one protocol ('tcp' or "
            "'udp')\n"
            "test.yaml:4:38: services[2].protocols: expected a list of protocols ('tcp', "
            "'udp'), got a map");
}

TEST(ConfigErrorTest, DuplicateServiceName) {
  EXPECT_EQ(ErrorsOf("services:\n"
                     "  - {name: web, ports: [80]}\n"
                     "  - {name: web, ports: [8080]}\n"),
            "test.yaml:3:12: services[1].name: duplicate service name 'web' (first defined at "
            "line 2)");
}

TEST(ConfigErrorTest, ReservedServiceName) {
  EXPECT_EQ(ErrorsOf("services:\n  - {name: other, ports: [80]}\n"),
            "test.yaml:2:12: services[0].name: the name 'other' is reserved for ports that no "
            "service or range names");
}

TEST(ConfigErrorTest, PortInTwoServicesOfTheSameProtocol) {
  // Both default to tcp and udp: one message names both protocols.
  EXPECT_EQ(ErrorsOf("services:\n"
                     "  - name: dns\n"
                     "    ports: [53]\n"
                     "  - name: resolver\n"
                     "    ports: [53]\n"),
            "test.yaml:5:13: services[1].ports[0]: port 53 of service 'resolver' is already "
            "assigned to service 'dns' for tcp and udp");
  // Overlapping intervals name the overlap; only the shared protocol counts.
  EXPECT_EQ(ErrorsOf("services:\n"
                     "  - {name: web, ports: [8000-8100], protocols: [tcp]}\n"
                     "  - {name: alt, ports: [8050-8200]}\n"),
            "test.yaml:3:25: services[1].ports[0]: ports 8050-8100 of service 'alt' are "
            "already assigned to service 'web' for tcp");
  // The later service is the one reported, even when its port sorts first.
  EXPECT_EQ(ErrorsOf("services:\n"
                     "  - {name: a, ports: 100-200}\n"
                     "  - {name: b, ports: 50-150, protocols: [udp]}\n"),
            "test.yaml:3:22: services[1].ports: ports 100-150 of service 'b' are already "
            "assigned to service 'a' for udp");
}

TEST(ConfigErrorTest, SameServiceMayRepeatAPort) {
  EXPECT_EQ(ErrorsOf("services:\n  - {name: web, ports: [80, 80, 79-81]}\n"), "<no error>");
}

TEST(ConfigPerProtocolTest, DifferentServicesOnTcpAndUdpOfOnePort) {
  const auto config = MustParse(
      "services:\n"
      "  - {name: dns, ports: [53], protocols: [tcp]}\n"
      "  - {name: resolver, ports: [53], protocols: [udp]}\n"
      "  - {name: https, ports: [443], protocols: [tcp]}\n"
      "  - {name: quic, ports: [443], protocols: [udp]}\n");
  ASSERT_NE(config, nullptr);
  EXPECT_EQ(ServiceAt(*config, 0, 53), "dns");
  EXPECT_EQ(ServiceAt(*config, 1, 53), "resolver");
  EXPECT_EQ(ServiceAt(*config, 0, 443), "https");
  EXPECT_EQ(ServiceAt(*config, 1, 443), "quic");
  EXPECT_EQ(config->service_of_port[0][53], 1u);
  EXPECT_EQ(config->service_of_port[1][53], 2u);
}

TEST(ConfigPerProtocolTest, SameProtocolIsAnError) {
  EXPECT_EQ(ErrorsOf("services:\n"
                     "  - {name: dns, ports: [53], protocols: [tcp]}\n"
                     "  - {name: resolver, ports: [53], protocols: [udp]}\n"
                     "  - {name: dns_tcp, ports: [53], protocols: [tcp]}\n"),
            "test.yaml:4:29: services[2].ports[0]: port 53 of service 'dns_tcp' is already "
            "assigned to service 'dns' for tcp");
}

// ---------------------------------------------------------------------------
// All errors at once, sorted by position.

TEST(ConfigReportTest, AllErrorsReportedSortedByPosition) {
  const std::string report = ErrorsOf(
      "servces: []\n"                   // 1
      "services:\n"                     // 2
      "  - {name: a, ports: [80]}\n"    // 3
      "  - {name: b, ports: [80]}\n"    // 4: conflict, found after line 5's error
      "  - {name: Bad, ports: [90]}\n"  // 5
      "collectors: {netns: maybe}\n"    // 6
      "limits: {max_series: 1}\n");     // 7
  EXPECT_EQ(report,
            "test.yaml:1:1: unknown key 'servces', did you mean 'services'?\n"
            "test.yaml:4:23: services[1].ports[0]: port 80 of service 'b' is already assigned "
            "to service 'a' for tcp and udp\n"
            "test.yaml:5:12: services[2].name: 'Bad' is not a valid name: use lowercase "
            "letters, digits and '_', not starting with a digit, at most 64 characters\n"
            "test.yaml:6:21: collectors.netns: expected a boolean (true or false), got 'maybe'\n"
            "test.yaml:7:22: limits.max_series: expected an integer between 10 and 1000000, got "
            "'1'");
  ExpectWellFormedReport(report, kSource);
}

TEST(ConfigReportTest, ErrorCountIsCapped) {
  std::string yaml = "collectors:\n";
  for (int i = 0; i < 1000; ++i) yaml += "  c" + std::to_string(i) + ": true\n";
  const std::string report = ErrorsOf(yaml);
  const auto lines = SplitLines(report);
  ASSERT_EQ(lines.size(), 101u);
  EXPECT_EQ(lines[0],
            "test.yaml:2:3: collectors: unknown collector 'c0' (known collectors: connections, "
            "ephemeral, listeners, events, cgroups, netns)");
  EXPECT_EQ(lines[100], "test.yaml:102:3: too many errors; 900 more not shown");
  ExpectWellFormedReport(report, kSource);
}

// ---------------------------------------------------------------------------
// Files.

TEST(ConfigFileTest, MissingFile) {
  const auto result = LoadConfigFile("/nonexistent/socket_exporter.yaml");
  ASSERT_FALSE(result.has_value());
  EXPECT_EQ(result.error().message,
            "/nonexistent/socket_exporter.yaml: cannot open config file: No such file or "
            "directory");
}

TEST(ConfigFileTest, Directory) {
  const std::string dir = std::filesystem::temp_directory_path().string();
  const auto result = LoadConfigFile(dir);
  ASSERT_FALSE(result.has_value());
  EXPECT_EQ(result.error().message, dir + ": cannot read config file: Is a directory");
}

TEST(ConfigFileTest, ErrorsNameTheFile) {
  const TempFile file("limits:\n  max_series: 1\n");
  const auto result = LoadConfigFile(file.path());
  ASSERT_FALSE(result.has_value());
  EXPECT_EQ(result.error().message,
            file.path() +
                ":2:15: limits.max_series: expected an integer between 10 and 1000000, got '1'");
}

// ---------------------------------------------------------------------------
// Hostile input: errors or success, quickly, never a crash.

TEST(ConfigHostileTest, DeepFlowNesting) {
  const auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(ErrorsOf("services: " + std::string(100000, '[')),
            "test.yaml:1:75: YAML is nested more than 64 levels deep");
  EXPECT_EQ(ErrorsOf("a: " + std::string(100000, '{')),
            "test.yaml:1:68: YAML is nested more than 64 levels deep");
  // Brackets inside quotes and comments are not nesting.
  EXPECT_EQ(ErrorsOf("# " + std::string(1000, '[') + "\nlimits: {max_series: 10}\n"), "<no error>");
  EXPECT_LT(SecondsSince(start), 5.0);
}

TEST(ConfigHostileTest, DeepBlockNesting) {
  // yaml-cpp recurses per block level; its own depth guard must turn these
  // into an error, not a stack overflow. Nested sequences on one line...
  std::string compact;
  for (int i = 0; i < 100000; ++i) compact += "- ";
  compact += "1\n";
  // ...and by indentation (2000 levels, ~2 MB).
  std::string indented = "a:\n";
  for (int i = 1; i <= 2000; ++i) {
    indented += std::string(static_cast<std::size_t>(i), ' ') + "b:\n";
  }
  const auto start = std::chrono::steady_clock::now();
  for (const std::string& yaml : {compact, indented}) {
    const std::string report = ErrorsOf(yaml);
    EXPECT_NE(report.find("YAML is nested too deeply"), std::string::npos) << report;
    EXPECT_EQ(SplitLines(report).size(), 1u);
    ExpectWellFormedReport(report, kSource);
  }
  EXPECT_LT(SecondsSince(start), 5.0);
}

TEST(ConfigHostileTest, HugeInput) {
  const std::string huge(10 * 1024 * 1024, '#');
  EXPECT_EQ(ErrorsOf(huge),
            "test.yaml:1:1: config is too large (10485760 bytes); the limit is 4194304 bytes "
            "(4 MiB)");
  const TempFile file(huge);
  const auto start = std::chrono::steady_clock::now();
  const auto result = LoadConfigFile(file.path());
  ASSERT_FALSE(result.has_value());
  EXPECT_EQ(result.error().message,
            file.path() +
                ":1:1: config is too large (10485760 bytes); the limit is 4194304 bytes (4 MiB)");
  EXPECT_LT(SecondsSince(start), 1.0) << "refused before reading";
}

TEST(ConfigHostileTest, BinaryGarbage) {
  std::mt19937 random(12345);
  const auto start = std::chrono::steady_clock::now();
  for (int round = 0; round < 50; ++round) {
    std::string garbage(4096, '\0');
    for (char& c : garbage) c = static_cast<char>(random() & 0xFF);
    const auto result = ParseConfig(garbage, kSource);
    if (!result) ExpectWellFormedReport(result.error().message, kSource);
  }
  // Mutations of a valid file reach deeper into the validator.
  const std::string base = kEmbeddedDefaultConfig;
  for (int round = 0; round < 300; ++round) {
    std::string mutated = base;
    for (int i = 0; i < 8; ++i) {
      static constexpr char kAlphabet[] = "[]{}:-,#'\"\n 0123456789abc\x01\xff";
      mutated[random() % mutated.size()] = kAlphabet[random() % (sizeof(kAlphabet) - 1)];
    }
    const auto result = ParseConfig(mutated, kSource);
    if (!result) ExpectWellFormedReport(result.error().message, kSource);
  }
  EXPECT_LT(SecondsSince(start), 10.0);
}

TEST(ConfigHostileTest, FiveThousandServices) {
  std::string yaml = "services:\n";
  for (int i = 0; i < 5000; ++i) {
    const int port = 1024 + i * 10;
    yaml += "  - name: svc" + std::to_string(i) + "\n    ports: [" + std::to_string(port) + ", \"" +
            std::to_string(port + 1) + "-" + std::to_string(port + 5) + "\"]\n";
  }
  auto start = std::chrono::steady_clock::now();
  const auto config = MustParse(yaml);
  EXPECT_LT(SecondsSince(start), 5.0);
  ASSERT_NE(config, nullptr);
  EXPECT_EQ(config->services.size(), 5000u);
  EXPECT_EQ(ServiceAt(*config, 0, 1024 + 4999 * 10 + 3), "svc4999");
  EXPECT_EQ(ServiceAt(*config, 1, 1024 + 4999 * 10 + 6), "other");

  // Every service on every port: 4999 conflicts, found by the sweep in
  // O(n log n) rather than by comparing every pair of services.
  std::string clash = "services:\n";
  for (int i = 0; i < 5000; ++i) {
    clash += "  - {name: svc" + std::to_string(i) + ", ports: [0-65535]}\n";
  }
  start = std::chrono::steady_clock::now();
  const std::string report = ErrorsOf(clash);
  EXPECT_LT(SecondsSince(start), 5.0);
  const auto lines = SplitLines(report);
  ASSERT_EQ(lines.size(), 101u);
  EXPECT_EQ(lines[0],
            "test.yaml:3:26: services[1].ports[0]: ports 0-65535 of service 'svc1' are already "
            "assigned to service 'svc0' for tcp and udp");
  EXPECT_EQ(lines[100], "test.yaml:103:28: too many errors; 4899 more not shown");
}

}  // namespace
}  // namespace socket_exporter
