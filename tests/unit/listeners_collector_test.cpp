// ListenersCollector on hand-made socket records (classified by the real
// Classifier) and a fake procfs root holding the recorded
// tests/fixtures/proc_net_netstat.txt (see netstat_parser_test.cpp).
#include "collectors/listeners_collector.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>

#include "collectors/registry.h"
#include "test_util.h"

namespace socket_exporter {
namespace {

using testing::SeriesCount;
using testing::Tcp;
using testing::Udp;
using testing::Value;

SocketRecord Listener(const std::string& address, std::uint16_t port, std::uint32_t length,
                      std::uint32_t limit) {
  SocketRecord record =
      Tcp(kTcpListen, address, port, address.find(':') == std::string::npos ? "0.0.0.0" : "::", 0);
  record.rqueue = length;
  record.wqueue = limit;
  return record;
}

// Labels of one length/limit series.
std::map<std::string, std::string> Series(const std::string& family, const std::string& port,
                                          const std::string& service = "other") {
  return {{"protocol", "tcp"}, {"family", family}, {"port", port}, {"service_name", service}};
}

std::map<std::string, std::string> SynSeries(const std::string& family, const std::string& port,
                                             const std::string& service = "other") {
  return {{"family", family}, {"port", port}, {"service_name", service}};
}

// The port label values of a family's series, in output order.
std::vector<std::string> Ports(const std::vector<prometheus::MetricFamily>& out,
                               const std::string& name) {
  std::vector<std::string> ports;
  for (const auto& family : out) {
    if (family.name != name) continue;
    for (const auto& metric : family.metric) {
      for (const auto& label : metric.label) {
        if (label.name == "port") ports.push_back(label.value);
      }
    }
  }
  return ports;
}

class ListenersCollectorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = std::filesystem::temp_directory_path() /
            ("se-listen-" + std::to_string(::getpid()) + "-" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(root_ / "net");
    std::filesystem::copy_file(
        std::filesystem::path(SOCKET_EXPORTER_FIXTURES_DIR) / "proc_net_netstat.txt",
        root_ / "net" / "netstat");
  }
  void TearDown() override { std::filesystem::remove_all(root_); }
  void WriteNetstat(const std::string& text) {
    std::ofstream(root_ / "net" / "netstat", std::ios::trunc) << text;
  }
  Result<void> Begin(std::shared_ptr<const Config> config = nullptr) {
    ScrapeContext context;
    context.config = config ? config : DefaultConfig();
    context.procfs_root = root_.string();
    return collector_.Begin(context);
  }
  std::vector<prometheus::MetricFamily> Scrape(const std::vector<SocketRecord>& records,
                                               std::shared_ptr<const Config> config = nullptr) {
    if (!config) config = DefaultConfig();
    auto begun = Begin(config);
    EXPECT_TRUE(begun.has_value()) << (begun ? "" : begun.error().message);
    Classifier classifier(config);
    for (const auto& r : records) collector_.Observe(r, classifier.Classify(r));
    std::vector<prometheus::MetricFamily> out;
    EXPECT_TRUE(collector_.Finish(out).has_value());
    return out;
  }

  std::filesystem::path root_;
  ListenersCollector collector_;
};

TEST_F(ListenersCollectorTest, QueueLengthAndLimitPerListeningPort) {
  // The accepted-but-queued connections themselves are ESTABLISHED sockets:
  // they must not change anything.
  auto out = Scrape({Listener("127.0.0.1", 8080, 8, 8),
                     Tcp(kTcpEstablished, "127.0.0.1", 8080, "127.0.0.1", 40001),
                     Tcp(kTcpEstablished, "127.0.0.1", 40001, "127.0.0.1", 8080)});
  EXPECT_EQ(Value(out, "socket_listen_queue_length", Series("ipv4", "8080")), 8);
  EXPECT_EQ(Value(out, "socket_listen_queue_limit", Series("ipv4", "8080")), 8);
  EXPECT_EQ(Value(out, "socket_listen_syn_recv", SynSeries("ipv4", "8080")), 0);
  EXPECT_EQ(SeriesCount(out, "socket_listen_queue_length"), 1U);
  EXPECT_EQ(SeriesCount(out, "socket_listen_queue_limit"), 1U);
  EXPECT_EQ(SeriesCount(out, "socket_listen_syn_recv"), 1U);
  for (const auto& family : out) {
    if (family.name.rfind("socket_listen_queue", 0) == 0 ||
        family.name == "socket_listen_syn_recv") {
      EXPECT_EQ(family.type, prometheus::MetricType::Gauge) << family.name;
    }
  }
}

TEST_F(ListenersCollectorTest, ListenersSharingFamilyAndPortAreSummed) {
  // Two SO_REUSEPORT listeners and one on a specific address share ipv4:8090;
  // the IPv6 one is its own series.
  auto out = Scrape({Listener("0.0.0.0", 8090, 3, 4), Listener("0.0.0.0", 8090, 1, 4),
                     Listener("127.0.0.2", 8090, 2, 16), Listener("::", 8090, 2, 5)});
  EXPECT_EQ(Value(out, "socket_listen_queue_length", Series("ipv4", "8090")), 6);
  EXPECT_EQ(Value(out, "socket_listen_queue_limit", Series("ipv4", "8090")), 24);
  EXPECT_EQ(Value(out, "socket_listen_queue_length", Series("ipv6", "8090")), 2);
  EXPECT_EQ(Value(out, "socket_listen_queue_limit", Series("ipv6", "8090")), 5);
  EXPECT_EQ(SeriesCount(out, "socket_listen_queue_length"), 2U);
}

TEST_F(ListenersCollectorTest, HalfOpenConnectionsCountForTheirListener) {
  std::vector<SocketRecord> records{Listener("0.0.0.0", 8081, 0, 16), Listener("::", 9091, 0, 7)};
  // Request sockets as netlink reports them (3) and as the kernel names
  // them internally (12): both are half-open.
  for (std::uint16_t p = 40000; p < 40003; ++p) {
    records.push_back(Tcp(kTcpSynRecv, "127.0.0.1", 8081, "10.99.0.1", p));
  }
  records.push_back(Tcp(kTcpNewSynRecv, "127.0.0.1", 8081, "10.99.0.2", 40000));
  // An IPv4 client of the dual-stack listener: the request socket is AF_INET6.
  SocketRecord mapped = Tcp(kTcpSynRecv, "::ffff:127.0.0.1", 9091, "::ffff:10.99.0.3", 40000);
  records.push_back(mapped);
  // A SYN_RECV without a listener on its port (simultaneous open of an
  // outgoing connection) is not a listener's backlog.
  records.push_back(Tcp(kTcpSynRecv, "127.0.0.1", 45000, "127.0.0.1", 45001));
  // Established connections on the listener's port are not half-open.
  records.push_back(Tcp(kTcpEstablished, "127.0.0.1", 8081, "127.0.0.1", 41000));
  auto out = Scrape(records);
  EXPECT_EQ(Value(out, "socket_listen_syn_recv", SynSeries("ipv4", "8081")), 4);
  EXPECT_EQ(Value(out, "socket_listen_syn_recv", SynSeries("ipv6", "9091")), 1);
  EXPECT_EQ(Value(out, "socket_listen_queue_length", Series("ipv4", "8081")), 0);
  EXPECT_EQ(SeriesCount(out, "socket_listen_syn_recv"), 2U);
  EXPECT_EQ(Value(out, "socket_listen_syn_recv", SynSeries("ipv4", "45000")), -1);
}

TEST_F(ListenersCollectorTest, UdpHasNoListenQueue) {
  auto out = Scrape(
      {Udp(false, "0.0.0.0", 53, "0.0.0.0", 0), Udp(true, "127.0.0.1", 40000, "127.0.0.1", 53)});
  EXPECT_EQ(SeriesCount(out, "socket_listen_queue_length"), 0U);
  EXPECT_EQ(SeriesCount(out, "socket_listen_syn_recv"), 0U);
  // The families are still declared, so the metric names exist for scrapers.
  EXPECT_EQ(Value(out, "socket_listen_queue_length", {}), -1);
  bool declared = false;
  for (const auto& family : out) declared = declared || family.name == "socket_listen_queue_limit";
  EXPECT_TRUE(declared);
}

TEST_F(ListenersCollectorTest, ConfiguredServicesAreNamed) {
  auto out = Scrape({Listener("0.0.0.0", 80, 1, 4096), Listener("::", 443, 0, 4096),
                     Listener("0.0.0.0", 22, 0, 128)});
  EXPECT_EQ(Value(out, "socket_listen_queue_length", Series("ipv4", "80", "http")), 1);
  EXPECT_EQ(Value(out, "socket_listen_queue_limit", Series("ipv6", "443", "https")), 4096);
  EXPECT_EQ(Value(out, "socket_listen_queue_limit", Series("ipv4", "22", "ssh")), 128);
  EXPECT_EQ(Value(out, "socket_listen_syn_recv", SynSeries("ipv4", "22", "ssh")), 0);
}

TEST_F(ListenersCollectorTest, TopOtherPortsBoundsTheSeriesAndFoldsTheRest) {
  auto config = ParseConfig(
      "services:\n  - name: ssh\n    ports: [22]\nlisteners:\n  top_other_ports: 3\n", "test.yaml");
  ASSERT_TRUE(config.has_value()) << config.error().message;
  std::vector<SocketRecord> records{
      Listener("0.0.0.0", 22, 0, 128),   // a service: always its own series
      Listener("0.0.0.0", 9001, 1, 10),  // fill 0.1
      Listener("0.0.0.0", 9002, 4, 10),  // fill 0.4
      Listener("0.0.0.0", 9003, 2, 10),  // fill 0.2
      Listener("0.0.0.0", 9004, 3, 10),  // fill 0.3
      Listener("0.0.0.0", 9005, 8, 20),  // fill 0.4, longer queue than 9002: ranks first
      Listener("::", 9001, 5, 10),       // 9001's fullest family is 0.5: ranks above 9002
      Listener("0.0.0.0", 9006, 0, 0),   // fill 0 (no limit known)
  };
  records.push_back(Tcp(kTcpSynRecv, "127.0.0.1", 9003, "10.0.0.1", 1234));
  records.push_back(Tcp(kTcpSynRecv, "127.0.0.1", 9006, "10.0.0.1", 1235));
  auto out = Scrape(records, *config);
  // Kept: 22 (service), 9001 (0.5), 9005 (0.4, 8 queued), 9002 (0.4, 4 queued).
  EXPECT_EQ(Value(out, "socket_listen_queue_limit", Series("ipv4", "22", "ssh")), 128);
  EXPECT_EQ(Ports(out, "socket_listen_queue_length"),
            (std::vector<std::string>{"22", "9001", "9001", "9002", "9005", "other"}));
  EXPECT_EQ(Value(out, "socket_listen_queue_length", Series("ipv6", "9001")), 5);
  EXPECT_EQ(Value(out, "socket_listen_queue_length", Series("ipv4", "9001")), 1);
  // Folded: 9003, 9004, 9006, all ipv4.
  EXPECT_EQ(Value(out, "socket_listen_queue_length", Series("ipv4", "other")), 5);
  EXPECT_EQ(Value(out, "socket_listen_queue_limit", Series("ipv4", "other")), 20);
  EXPECT_EQ(Value(out, "socket_listen_syn_recv", SynSeries("ipv4", "other")), 2);
  EXPECT_EQ(Value(out, "socket_listen_queue_length", Series("ipv6", "other")), -1);
  EXPECT_EQ(Ports(out, "socket_listen_syn_recv"), Ports(out, "socket_listen_queue_length"));
  EXPECT_EQ(Ports(out, "socket_listen_queue_limit"), Ports(out, "socket_listen_queue_length"));
  // Nothing is lost: the sum over the series is the sum over the listeners.
  EXPECT_EQ(Value(out, "socket_listen_queue_length", {}), 23);
  EXPECT_EQ(Value(out, "socket_listen_queue_limit", {}), 198);
}

TEST_F(ListenersCollectorTest, AQueueWithoutLimitRanksAsFull) {
  // listen(fd, 0), or the /proc/net source (no limit): one queued
  // connection is fill 1.
  auto config = ParseConfig("listeners:\n  top_other_ports: 1\n", "test.yaml");
  ASSERT_TRUE(config.has_value()) << config.error().message;
  auto out = Scrape({Listener("0.0.0.0", 9001, 9, 10), Listener("0.0.0.0", 9002, 1, 0)}, *config);
  EXPECT_EQ(Ports(out, "socket_listen_queue_length"), (std::vector<std::string>{"9002", "other"}));
}

TEST_F(ListenersCollectorTest, ZeroTopOtherPortsFoldsEveryUnnamedPort) {
  auto config =
      ParseConfig("services:\n  - name: http\n    ports: [80]\nlisteners:\n  top_other_ports: 0\n",
                  "test.yaml");
  ASSERT_TRUE(config.has_value()) << config.error().message;
  auto out = Scrape({Listener("0.0.0.0", 80, 0, 10), Listener("0.0.0.0", 9001, 1, 10),
                     Listener("::1", 9002, 2, 10)},
                    *config);
  EXPECT_EQ(Ports(out, "socket_listen_queue_length"),
            (std::vector<std::string>{"80", "other", "other"}));
  EXPECT_EQ(Value(out, "socket_listen_queue_length", Series("ipv6", "other")), 2);
}

TEST_F(ListenersCollectorTest, EachScrapeStartsAfresh) {
  auto first = Scrape({Listener("0.0.0.0", 9001, 3, 10)});
  EXPECT_EQ(Value(first, "socket_listen_queue_length", Series("ipv4", "9001")), 3);
  auto second = Scrape({Listener("0.0.0.0", 9002, 1, 10)});
  EXPECT_EQ(Value(second, "socket_listen_queue_length", Series("ipv4", "9001")), -1);
  EXPECT_EQ(Value(second, "socket_listen_queue_length", Series("ipv4", "9002")), 1);
}

TEST_F(ListenersCollectorTest, NetstatCountersComeFromProcfsRoot) {
  auto out = Scrape({});
  // The recorded file's values (netstat_parser_test.cpp tells how they came about).
  const std::map<std::string, double> want{
      {"socket_listen_overflows_total", 2},  {"socket_listen_drops_total", 5},
      {"socket_syncookies_sent_total", 4},   {"socket_syncookies_recv_total", 3},
      {"socket_syncookies_failed_total", 1},
  };
  for (const auto& [name, value] : want) {
    EXPECT_EQ(Value(out, name, {}), value) << name;
    EXPECT_EQ(SeriesCount(out, name), 1U) << name;
    for (const auto& family : out) {
      if (family.name == name) {
        EXPECT_EQ(family.type, prometheus::MetricType::Counter) << name;
      }
    }
  }
}

TEST_F(ListenersCollectorTest, CountersTheKernelLacksAreLeftOut) {
  WriteNetstat("TcpExt: ListenOverflows ListenDrops\nTcpExt: 7 9\n");
  auto out = Scrape({});
  EXPECT_EQ(Value(out, "socket_listen_overflows_total", {}), 7);
  EXPECT_EQ(Value(out, "socket_listen_drops_total", {}), 9);
  EXPECT_EQ(SeriesCount(out, "socket_syncookies_sent_total"), 0U);
  for (const auto& family : out) EXPECT_NE(family.name, "socket_syncookies_sent_total");
}

TEST_F(ListenersCollectorTest, UnreadableOrMalformedNetstatFailsBegin) {
  std::filesystem::remove(root_ / "net" / "netstat");
  auto missing = Begin();
  ASSERT_FALSE(missing.has_value());
  EXPECT_NE(missing.error().message.find((root_ / "net" / "netstat").string()), std::string::npos)
      << missing.error().message;

  WriteNetstat("TcpExt: ListenOverflows ListenDrops\nTcpExt: 7\n");
  auto malformed = Begin();
  ASSERT_FALSE(malformed.has_value());
  EXPECT_EQ(malformed.error().message,
            (root_ / "net" / "netstat").string() +
                ": line 2: 1 values for the 2 names of \"TcpExt:\" on line 1");
}

TEST_F(ListenersCollectorTest, NetRootOverridesProcfsRootForNetstat) {
  // A pass in another namespace reads <procfs_net_root>/net/netstat.
  const auto other = root_ / "thread-self";
  std::filesystem::create_directories(other / "net");
  std::ofstream(other / "net" / "netstat") << "TcpExt: ListenOverflows\nTcpExt: 42\n";
  ScrapeContext context;
  context.config = DefaultConfig();
  context.procfs_root = root_.string();
  context.procfs_net_root = other.string();
  ASSERT_TRUE(collector_.Begin(context).has_value());
  std::vector<prometheus::MetricFamily> out;
  ASSERT_TRUE(collector_.Finish(out).has_value());
  EXPECT_EQ(Value(out, "socket_listen_overflows_total", {}), 42);
}

}  // namespace
}  // namespace socket_exporter
