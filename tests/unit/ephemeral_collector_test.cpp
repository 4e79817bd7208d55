#include "collectors/ephemeral_collector.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "collectors/registry.h"
#include "test_util.h"

namespace socket_exporter {
namespace {

using testing::Tcp;
using testing::Udp;
using testing::Value;

TEST(ParseLocalPortRangeTest, ParsesKernelFormat) {
  auto range = ParseLocalPortRange("32768\t60999\n");
  ASSERT_TRUE(range.has_value());
  EXPECT_EQ(range->first, 32768);
  EXPECT_EQ(range->last, 60999);
}

TEST(ParseLocalPortRangeTest, RejectsGarbage) {
  EXPECT_FALSE(ParseLocalPortRange("").has_value());
  EXPECT_FALSE(ParseLocalPortRange("32768").has_value());
  EXPECT_FALSE(ParseLocalPortRange("60999 32768").has_value());
  EXPECT_FALSE(ParseLocalPortRange("1 70000").has_value());
  EXPECT_EQ(ParseLocalPortRange("a b").error().message,
            "ip_local_port_range: \"a\" is not a port number 0-65535");
}

TEST(ParseReservedPortsTest, ParsesFullListSyntax) {
  auto empty = ParseReservedPorts("\n");
  ASSERT_TRUE(empty.has_value());
  EXPECT_TRUE(empty->empty());
  auto list = ParseReservedPorts("40000-40001,50000, 50010-50012\n");
  ASSERT_TRUE(list.has_value());
  ASSERT_EQ(list->size(), 3U);
  EXPECT_EQ((*list)[0].first, 40000);
  EXPECT_EQ((*list)[0].last, 40001);
  EXPECT_EQ((*list)[1].first, 50000);
  EXPECT_EQ((*list)[1].last, 50000);
  EXPECT_EQ((*list)[2].last, 50012);
}

TEST(ParseReservedPortsTest, RejectsBadElements) {
  EXPECT_FALSE(ParseReservedPorts("40000-").has_value());
  EXPECT_FALSE(ParseReservedPorts("1,,2").has_value());
  EXPECT_FALSE(ParseReservedPorts("5-4").has_value());
  EXPECT_FALSE(ParseReservedPorts("x").has_value());
}

class EphemeralCollectorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = std::filesystem::temp_directory_path() /
            ("se-eph-" + std::to_string(::getpid()) + "-" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(root_ / "sys/net/ipv4");
    Write("ip_local_port_range", "40000\t40009\n");
    Write("ip_local_reserved_ports", "\n");
  }
  void TearDown() override { std::filesystem::remove_all(root_); }
  void Write(const std::string& name, const std::string& text) {
    std::ofstream(root_ / "sys/net/ipv4" / name) << text;
  }
  std::vector<prometheus::MetricFamily> Scrape(const std::vector<SocketRecord>& records,
                                               std::shared_ptr<const Config> config = nullptr) {
    if (!config) config = DefaultConfig();
    auto begun = collector_.Begin(ScrapeContext{config, root_.string()});
    EXPECT_TRUE(begun.has_value()) << (begun ? "" : begun.error().message);
    Classifier classifier(config);
    for (const auto& r : records) collector_.Observe(r, classifier.Classify(r));
    std::vector<prometheus::MetricFamily> out;
    EXPECT_TRUE(collector_.Finish(out).has_value());
    return out;
  }

  std::filesystem::path root_;
  EphemeralCollector collector_;
};

TEST_F(EphemeralCollectorTest, FullDestinationIsRatioOne) {
  std::vector<SocketRecord> records{Tcp(kTcpListen, "0.0.0.0", 8080, "0.0.0.0", 0)};
  for (std::uint16_t port = 40000; port <= 40009; ++port) {
    records.push_back(Tcp(kTcpEstablished, "127.0.0.1", port, "127.0.0.1", 8080));
    // The accepted side: local port 8080 is outside the range.
    records.push_back(Tcp(kTcpEstablished, "127.0.0.1", 8080, "127.0.0.1", port));
  }
  auto out = Scrape(records);
  EXPECT_EQ(Value(out, "socket_ephemeral_range_ports", {}), 10);
  EXPECT_EQ(Value(out, "socket_ephemeral_destination_utilization_max_ratio", {{"protocol", "tcp"}}),
            1.0);
  EXPECT_EQ(Value(out, "socket_ephemeral_destinations", {{"protocol", "tcp"}}), 1);
  EXPECT_EQ(Value(out, "socket_ephemeral_destination_ports_used",
                  {{"protocol", "tcp"},
                   {"local_address", "127.0.0.1"},
                   {"remote_address", "127.0.0.1"},
                   {"remote_port", "8080"}}),
            10);
  EXPECT_EQ(Value(out, "socket_ephemeral_ports_used", {{"protocol", "tcp"}}), 10);
  EXPECT_EQ(Value(out, "socket_ephemeral_destination_utilization_max_ratio", {{"protocol", "udp"}}),
            0);
}

TEST_F(EphemeralCollectorTest, ReservedAndBindLockedPortsShrinkCapacity) {
  Write("ip_local_reserved_ports", "40000-40001\n");
  auto out = Scrape({Tcp(kTcpListen, "0.0.0.0", 40003, "0.0.0.0", 0),
                     Tcp(kTcpBoundInactive, "127.0.0.1", 40004, "0.0.0.0", 0),
                     Tcp(kTcpEstablished, "127.0.0.1", 40002, "127.0.0.1", 8080),
                     Tcp(kTcpTimeWait, "127.0.0.1", 40005, "127.0.0.1", 8080),
                     Tcp(kTcpFinWait2, "127.0.0.1", 40006, "127.0.0.1", 8080),
                     // Accepted on the listener inside R: not an ephemeral use.
                     Tcp(kTcpEstablished, "127.0.0.1", 40003, "127.0.0.1", 40007)});
  EXPECT_EQ(Value(out, "socket_ephemeral_range_ports", {}), 8);
  EXPECT_EQ(Value(out, "socket_ephemeral_reserved_ports", {}), 2);
  EXPECT_EQ(Value(out, "socket_ephemeral_bind_locked_ports", {{"protocol", "tcp"}}), 2);
  EXPECT_EQ(Value(out, "socket_ephemeral_capacity_ports", {{"protocol", "tcp"}}), 6);
  EXPECT_EQ(Value(out, "socket_ephemeral_destination_utilization_max_ratio", {{"protocol", "tcp"}}),
            0.5);
  EXPECT_EQ(Value(out, "socket_ephemeral_destination_time_wait_ports", {{"remote_port", "8080"}}),
            1);
}

TEST_F(EphemeralCollectorTest, UdpIsCountedApartFromTcp) {
  auto out = Scrape({Udp(true, "127.0.0.1", 40001, "127.0.0.1", 53),
                     Udp(true, "127.0.0.1", 40002, "127.0.0.1", 53),
                     Udp(false, "0.0.0.0", 40009, "0.0.0.0", 0),
                     Tcp(kTcpEstablished, "127.0.0.1", 40001, "127.0.0.1", 53)});
  EXPECT_EQ(Value(out, "socket_ephemeral_bind_locked_ports", {{"protocol", "udp"}}), 1);
  EXPECT_EQ(Value(out, "socket_ephemeral_bind_locked_ports", {{"protocol", "tcp"}}), 0);
  EXPECT_EQ(Value(out, "socket_ephemeral_ports_used", {{"protocol", "udp"}}), 3);
  EXPECT_NEAR(
      Value(out, "socket_ephemeral_destination_utilization_max_ratio", {{"protocol", "udp"}}),
      2.0 / 9.0, 1e-12);
  EXPECT_EQ(Value(out, "socket_ephemeral_destination_utilization_max_ratio", {{"protocol", "tcp"}}),
            0.1);
}

TEST_F(EphemeralCollectorTest, MappedAddressesAreOneDestination) {
  auto out = Scrape({Tcp(kTcpEstablished, "::ffff:127.0.0.1", 40001, "::ffff:10.0.0.1", 443),
                     Tcp(kTcpEstablished, "127.0.0.1", 40002, "10.0.0.1", 443)});
  EXPECT_EQ(Value(out, "socket_ephemeral_destinations", {{"protocol", "tcp"}}), 1);
  EXPECT_EQ(Value(out, "socket_ephemeral_destination_ports_used", {{"remote_address", "10.0.0.1"}}),
            2);
}

TEST_F(EphemeralCollectorTest, TopKAndTableCapAreBounded) {
  auto config = ParseConfig("ephemeral:\n  top_destinations: 2\n  max_tracked_destinations: 3\n",
                            "test.yaml");
  ASSERT_TRUE(config.has_value()) << config.error().message;
  std::vector<SocketRecord> records;
  std::uint16_t port = 40000;
  for (int dest = 0; dest < 5; ++dest) {
    for (int i = 0; i <= dest && port <= 40009; ++i) {
      records.push_back(
          Tcp(kTcpEstablished, "127.0.0.1", port++, "10.0.0." + std::to_string(dest + 1), 80));
    }
  }
  auto out = Scrape(records, *config);
  EXPECT_EQ(testing::SeriesCount(out, "socket_ephemeral_destination_ports_used"), 2U);
  EXPECT_EQ(Value(out, "socket_ephemeral_destinations", {{"protocol", "tcp"}}), 3);
  // Destinations 1..3 take 1+2+3 ports; 4 and 5 (4 ports left in the range) are untracked.
  EXPECT_EQ(Value(out, "socket_ephemeral_untracked_sockets", {{"protocol", "tcp"}}), 4);
  EXPECT_EQ(Value(out, "socket_ephemeral_destination_ports_used", {{"remote_address", "10.0.0.3"}}),
            3);
}

TEST_F(EphemeralCollectorTest, MissingSysctlFails) {
  std::filesystem::remove(root_ / "sys/net/ipv4/ip_local_port_range");
  auto begun = collector_.Begin(ScrapeContext{DefaultConfig(), root_.string()});
  ASSERT_FALSE(begun.has_value());
  EXPECT_NE(begun.error().message.find("ip_local_port_range"), std::string::npos);
}

}  // namespace
}  // namespace socket_exporter
