// The worked example of ARCHITECTURE.md, "Adding a collector", kept true:
// a small collector defined here, registered the way collectors/registry.cpp
// registers the real ones, must get its config section (with file:line:col
// errors), its switch under `collectors:`, its run in the scraper with
// socket_exporter_collector_success, and its table in --summary. If adding a
// collector ever needs more than this file shows, this test stops compiling
// or fails, and ARCHITECTURE.md must say what changed.
#include <gtest/gtest.h>

#include <sstream>

#include "collectors/collector.h"
#include "collectors/registry.h"
#include "collectors/summary.h"
#include "config/yaml_reader.h"
#include "exporter/scraper.h"
#include "exporter/socket_view.h"
#include "tests/unit/test_util.h"

namespace socket_exporter {
namespace {

using testing::Tcp;
using testing::Udp;
using testing::Value;

// ---- what the new collector's file would hold ------------------------------

// Its settings: the `high_ports:` section.
struct HighPortsSettings : SectionSettings {
  std::uint32_t threshold = 1024;  // ports at or above this count as high
};

std::shared_ptr<const SectionSettings> ParseHighPortsSettings(yaml::FieldReader& reader,
                                                              const yaml::Field* section) {
  static constexpr std::array<std::string_view, 1> kKeys = {"threshold"};
  auto settings = std::make_shared<HighPortsSettings>();
  if (section == nullptr) return settings;
  reader.ForEachEntry(
      *section, [&](const std::string& key, yaml::Position key_pos, const yaml::Field& value) {
        if (key == "threshold") {
          if (auto v = reader.ParseUint(value, 1, 65535)) settings->threshold = *v;
        } else {
          reader.UnknownKey(*section, key, key_pos, kKeys);
        }
      });
  return settings;
}

// Counts sockets whose local port is at or above the threshold.
class HighPortsCollector : public Collector {
 public:
  Result<void> Begin(const ScrapeContext& context) override {
    threshold_ = context.config->Section<HighPortsSettings>("high_ports").threshold;
    counts_ = {};
    return {};
  }
  void Observe(const SocketRecord& record, const Classification& /*cls*/) override {
    if (record.local_port >= threshold_) ++counts_[static_cast<std::size_t>(record.protocol)];
  }
  Result<void> Finish(std::vector<prometheus::MetricFamily>& out) override {
    auto family = AddFamily(out, "socket_high_port_sockets", "Sockets on a high local port.",
                            prometheus::MetricType::Gauge);
    for (Protocol protocol : {Protocol::kTcp, Protocol::kUdp}) {
      AddGauge(family, {{"protocol", std::string(ProtocolName(protocol))}},
               static_cast<double>(counts_[static_cast<std::size_t>(protocol)]));
    }
    return {};
  }

 private:
  std::uint32_t threshold_ = 0;
  std::array<std::uint64_t, 2> counts_{};
};

void WriteHighPortsSummary(const std::vector<prometheus::MetricFamily>& families,
                           const Config& /*config*/, std::ostream& out) {
  out << "High ports (socket_high_port_sockets):\n";
  if (const std::string problem = CollectorProblem(families, "high_ports"); !problem.empty()) {
    out << problem << "\n\n";
    return;
  }
  Table table({"protocol", "sockets"}, {false, true});
  for (const char* protocol : {"tcp", "udp"}) {
    table.Add(
        {protocol,
         Count(Sample(families, "socket_high_port_sockets", "protocol", protocol).value_or(0))});
  }
  table.Write(out);
  out << '\n';
}

// ---- and the one registry line (here: appended to a copy of the registry) --

std::vector<CollectorInfo> RegistryWithHighPorts() {
  std::vector<CollectorInfo> collectors(AllCollectors().begin(), AllCollectors().end());
  collectors.push_back({"high_ports", false, "sockets on high local ports",
                        [] { return std::unique_ptr<Collector>(new HighPortsCollector()); },
                        &ParseHighPortsSettings, &WriteHighPortsSummary});
  return collectors;
}

class ThreeSockets : public SocketSource {
 public:
  std::string Name() const override { return "memory"; }
  Result<SourceStats> Stream(SocketSink& sink) override {
    sink.OnSocket(Tcp(kTcpListen, "0.0.0.0", 80, "0.0.0.0", 0));
    sink.OnSocket(Tcp(kTcpEstablished, "10.0.0.1", 40000, "10.0.0.2", 443));
    sink.OnSocket(Udp(false, "0.0.0.0", 5353, "0.0.0.0", 0));
    return SourceStats{.records = 3};
  }
};

TEST(AddingACollector, ItsSectionAndSwitchAreParsedWithPositions) {
  const ConfigSchema schema = SchemaFor(RegistryWithHighPorts());
  auto config = ParseConfig("collectors:\n  high_ports: true\nhigh_ports:\n  threshold: 5000\n",
                            "c.yaml", schema);
  ASSERT_TRUE(config.has_value()) << config.error().message;
  EXPECT_EQ((*config)->Section<HighPortsSettings>("high_ports").threshold, 5000u);
  EXPECT_EQ((*config)->collectors.at("high_ports"), true);

  auto absent = ParseConfig("", "c.yaml", schema);
  ASSERT_TRUE(absent.has_value());
  EXPECT_EQ((*absent)->Section<HighPortsSettings>("high_ports").threshold, 1024u);

  auto typo = ParseConfig("high_ports:\n  treshold: 5\n", "c.yaml", schema);
  ASSERT_FALSE(typo.has_value());
  EXPECT_EQ(typo.error().message,
            "c.yaml:2:3: high_ports: unknown key 'treshold', did you mean 'threshold'?");

  // Without the registry line, the same file is rejected.
  auto unknown = ParseConfig("high_ports:\n  threshold: 5\n", "c.yaml");
  ASSERT_FALSE(unknown.has_value());
  EXPECT_NE(unknown.error().message.find("c.yaml:1:1: unknown key 'high_ports'"), std::string::npos)
      << unknown.error().message;
}

TEST(AddingACollector, TheScraperRunsItAndTheSummaryShowsIt) {
  const std::vector<CollectorInfo> collectors = RegistryWithHighPorts();
  auto config = ParseConfig("collectors:\n  high_ports: true\nhigh_ports:\n  threshold: 1000\n",
                            "c.yaml", SchemaFor(collectors));
  ASSERT_TRUE(config.has_value()) << config.error().message;
  ScraperOptions options;
  options.collectors = collectors;
  options.make_source = [] { return std::make_unique<ThreeSockets>(); };
  const Scraper scraper(options, *config);
  const ScrapeOutcome outcome = scraper.CollectNow();
  EXPECT_TRUE(outcome.all_succeeded);
  EXPECT_EQ(Value(outcome.families, "socket_high_port_sockets", {{"protocol", "tcp"}}), 1);
  EXPECT_EQ(Value(outcome.families, "socket_high_port_sockets", {{"protocol", "udp"}}), 1);
  EXPECT_EQ(
      Value(outcome.families, "socket_exporter_collector_success", {{"collector", "high_ports"}}),
      1);

  std::ostringstream summary;
  WriteSummary(outcome.families, **config, collectors, summary);
  EXPECT_NE(summary.str().find("High ports (socket_high_port_sockets):\nprotocol  sockets\n"
                               "tcp             1\nudp             1\n"),
            std::string::npos)
      << summary.str();
}

}  // namespace
}  // namespace socket_exporter
