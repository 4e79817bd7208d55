#include "collectors/connections_collector.h"

#include <gtest/gtest.h>

#include "collectors/registry.h"
#include "test_util.h"

namespace socket_exporter {
namespace {

using testing::Tcp;
using testing::Udp;
using testing::Value;

std::vector<prometheus::MetricFamily> Scrape(ConnectionsCollector& collector,
                                             std::shared_ptr<const Config> config,
                                             const std::vector<SocketRecord>& records) {
  EXPECT_TRUE(collector.Begin(ScrapeContext{config, "/proc"}).has_value());
  Classifier classifier(config);
  for (const auto& record : records) collector.Observe(record, classifier.Classify(record));
  std::vector<prometheus::MetricFamily> out;
  EXPECT_TRUE(collector.Finish(out).has_value());
  return out;
}

TEST(ConnectionsCollectorTest, CountsByEveryLabel) {
  auto config = DefaultConfig();
  ConnectionsCollector collector;
  const auto out = Scrape(
      collector, config,
      {Tcp(kTcpListen, "0.0.0.0", 22, "0.0.0.0", 0),
       Tcp(kTcpEstablished, "10.0.0.1", 22, "10.0.0.2", 50000),
       Tcp(kTcpEstablished, "10.0.0.1", 22, "10.0.0.3", 50001),
       Tcp(kTcpTimeWait, "10.0.0.1", 41000, "10.0.0.9", 443), Udp(false, "::", 53, "::", 0)});
  EXPECT_EQ(Value(out, "socket_connections",
                  {{"protocol", "tcp"},
                   {"family", "ipv4"},
                   {"state", "established"},
                   {"direction", "inbound"},
                   {"port_range", "well_known"},
                   {"service_name", "ssh"}}),
            2);
  EXPECT_EQ(Value(out, "socket_connections", {{"state", "listen"}, {"service_name", "ssh"}}), 1);
  EXPECT_EQ(Value(out, "socket_connections",
                  {{"state", "time_wait"}, {"direction", "outbound"}, {"service_name", "https"}}),
            1);
  EXPECT_EQ(Value(out, "socket_connections",
                  {{"protocol", "udp"},
                   {"family", "ipv6"},
                   {"state", "unconnected"},
                   {"service_name", "dns"}}),
            1);
  EXPECT_EQ(Value(out, "socket_connections", {}), 5);
}

TEST(ConnectionsCollectorTest, EveryStateIsPublishedAtZero) {
  auto config = DefaultConfig();
  ConnectionsCollector collector;
  const auto out = Scrape(collector, config, {});
  for (const char* state :
       {"established", "syn_sent", "syn_recv", "fin_wait1", "fin_wait2", "time_wait", "close",
        "close_wait", "last_ack", "listen", "closing", "bound_inactive"}) {
    EXPECT_EQ(Value(out, "socket_connections", {{"protocol", "tcp"}, {"state", state}}), 0)
        << state;
  }
  EXPECT_EQ(Value(out, "socket_connections", {{"protocol", "udp"}, {"state", "unconnected"}}), 0);
  EXPECT_EQ(Value(out, "socket_connections", {{"protocol", "udp"}, {"state", "established"}}), 0);
}

TEST(ConnectionsCollectorTest, SeriesStayAtZeroOnceSeen) {
  auto config = DefaultConfig();
  ConnectionsCollector collector;
  Scrape(collector, config, {Tcp(kTcpEstablished, "10.0.0.1", 41000, "10.0.0.9", 443)});
  const auto out = Scrape(collector, config, {});
  EXPECT_EQ(Value(out, "socket_connections",
                  {{"state", "established"}, {"direction", "outbound"}, {"service_name", "https"}}),
            0);
}

TEST(ConnectionsCollectorTest, RequestSocketsCountAsSynRecv) {
  auto config = DefaultConfig();
  ConnectionsCollector collector;
  const auto out = Scrape(collector, config,
                          {Tcp(kTcpListen, "0.0.0.0", 80, "0.0.0.0", 0),
                           Tcp(kTcpNewSynRecv, "10.0.0.1", 80, "10.0.0.2", 50000)});
  EXPECT_EQ(Value(out, "socket_connections", {{"state", "syn_recv"}, {"service_name", "http"}}), 1);
}

TEST(ConnectionsCollectorTest, FoldsLabelSetsAboveMaxSeriesIntoOther) {
  auto config = ParseConfig(
      "services:\n  - name: ssh\n    ports: [22]\n  - name: https\n    ports: [443]\n"
      "limits:\n  max_series: 10\n",
      "test.yaml");
  ASSERT_TRUE(config.has_value()) << config.error().message;
  ConnectionsCollector collector;
  const auto out = Scrape(collector, *config,
                          {Tcp(kTcpEstablished, "10.0.0.1", 41000, "10.0.0.9", 443),
                           Tcp(kTcpEstablished, "10.0.0.1", 41001, "10.0.0.9", 443),
                           Tcp(kTcpEstablished, "10.0.0.1", 41002, "10.0.0.9", 22)});
  // Seeded series already exceed the cap, so https and ssh fold into other.
  EXPECT_EQ(Value(out, "socket_connections", {{"service_name", "https"}}), -1);
  EXPECT_EQ(Value(out, "socket_connections",
                  {{"state", "established"},
                   {"direction", "outbound"},
                   {"service_name", "other"},
                   {"port_range", "well_known"}}),
            3);
  EXPECT_EQ(Value(out, "socket_exporter_cardinality_folded_series", {}), 2);
}

}  // namespace
}  // namespace socket_exporter
