// ParseNetstat on a recorded /proc/net/netstat and on malformed text.
//
// tests/fixtures/proc_net_netstat.txt is the real file of a fresh network
// namespace on Linux 6.18 after this sequence (loopback only,
// tcp_syncookies=0, 10.99.0.0/24 routed to lo so SYN-ACKs to it go nowhere):
//   - listener 127.0.0.1:8080 backlog 2, never accepting; 5 non-blocking
//     connects: 3 queued (the kernel holds backlog + 1), 2 SYNs dropped
//     -> ListenOverflows 2, ListenDrops 2; the 2 connects then closed;
//   - listener 0.0.0.0:8082 backlog 2; 6 raw SYNs from 10.99.0.1: 3 stay
//     half-open, 3 dropped because the SYN queue is full -> ListenDrops 5;
//   - tcp_syncookies=2; listener 127.0.0.1:8083: 3 connects through cookies
//     and 1 raw SYN from 10.99.0.7 -> SyncookiesSent 4, SyncookiesRecv 3;
//     a raw bare ACK from 10.99.0.9 -> SyncookiesFailed 1.
#include "collectors/sources/netstat_parser.h"

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

namespace socket_exporter {
namespace {

std::string ReadFixture(const std::string& name) {
  std::ifstream in(std::string(SOCKET_EXPORTER_FIXTURES_DIR) + "/" + name);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

TEST(ParseNetstatTest, RecordedKernelFile) {
  const std::string text = ReadFixture("proc_net_netstat.txt");
  ASSERT_FALSE(text.empty());
  auto counters = ParseNetstat(text);
  ASSERT_TRUE(counters.has_value()) << counters.error().message;
  const auto& c = *counters;
  EXPECT_EQ(c.at("TcpExt.ListenOverflows"), 2U);
  EXPECT_EQ(c.at("TcpExt.ListenDrops"), 5U);
  EXPECT_EQ(c.at("TcpExt.SyncookiesSent"), 4U);
  EXPECT_EQ(c.at("TcpExt.SyncookiesRecv"), 3U);
  EXPECT_EQ(c.at("TcpExt.SyncookiesFailed"), 1U);
  EXPECT_EQ(c.at("TcpExt.TCPReqQFullDrop"), 3U);  // the 3 SYNs the SYN queue refused
  // Every name of every header line became a key, under its own prefix.
  std::size_t names = 0;
  std::istringstream lines(text);
  std::string header;
  std::string values;
  while (std::getline(lines, header) && std::getline(lines, values)) {
    std::istringstream words(header);
    std::string word;
    words >> word;  // the prefix
    while (words >> word) ++names;
  }
  EXPECT_EQ(c.size(), names);
  EXPECT_TRUE(c.contains("MPTcpExt.MPCapableSYNRX"));
}

TEST(ParseNetstatTest, SmallFileAndKeys) {
  auto counters = ParseNetstat("TcpExt: A B\nTcpExt: 1 18446744073709551615\nIpExt: C\nIpExt: 0\n");
  ASSERT_TRUE(counters.has_value()) << counters.error().message;
  EXPECT_EQ(counters->size(), 3U);
  EXPECT_EQ(counters->at("TcpExt.A"), 1U);
  EXPECT_EQ(counters->at("TcpExt.B"), 18446744073709551615ULL);
  EXPECT_EQ(counters->at("IpExt.C"), 0U);
}

TEST(ParseNetstatTest, ToleratesBlankLinesAndNoFinalNewline) {
  auto counters = ParseNetstat("\nTcpExt: A\n\nTcpExt: 7");
  ASSERT_TRUE(counters.has_value()) << counters.error().message;
  EXPECT_EQ(counters->at("TcpExt.A"), 7U);
  auto empty = ParseNetstat("");
  ASSERT_TRUE(empty.has_value());
  EXPECT_TRUE(empty->empty());
}

TEST(ParseNetstatTest, MismatchedPairsAreErrors) {
  auto no_values = ParseNetstat("TcpExt: A B\n");
  ASSERT_FALSE(no_values.has_value());
  EXPECT_EQ(no_values.error().message, "line 1: header \"TcpExt:\" has no value line");

  auto other_prefix = ParseNetstat("TcpExt: A\nIpExt: 1\n");
  ASSERT_FALSE(other_prefix.has_value());
  EXPECT_EQ(other_prefix.error().message,
            "line 2: value line \"IpExt:\" does not match header \"TcpExt:\" of line 1");

  auto short_values = ParseNetstat("TcpExt: A B C\nTcpExt: 1 2\n");
  ASSERT_FALSE(short_values.has_value());
  EXPECT_EQ(short_values.error().message,
            "line 2: 2 values for the 3 names of \"TcpExt:\" on line 1");

  EXPECT_FALSE(ParseNetstat("TcpExt: A\nTcpExt: 1 2\n").has_value());
  // A pair shifted by one line: the second header is read as values.
  EXPECT_FALSE(ParseNetstat("TcpExt: A\nIpExt: B\nIpExt: 1\n").has_value());
}

TEST(ParseNetstatTest, BadValuesAndLinesAreErrors) {
  auto negative = ParseNetstat("Tcp: MaxConn\nTcp: -1\n");
  ASSERT_FALSE(negative.has_value());
  EXPECT_EQ(negative.error().message,
            "line 2: value \"-1\" of Tcp.MaxConn is not an unsigned 64-bit number");
  EXPECT_FALSE(ParseNetstat("TcpExt: A\nTcpExt: 1x\n").has_value());
  EXPECT_FALSE(ParseNetstat("TcpExt: A\nTcpExt: 18446744073709551616\n").has_value());
  EXPECT_FALSE(ParseNetstat("TcpExt: A\nTcpExt: +1\n").has_value());

  auto no_colon = ParseNetstat("TcpExt A\nTcpExt 1\n");
  ASSERT_FALSE(no_colon.has_value());
  EXPECT_EQ(no_colon.error().message, "line 1: expected \"Prefix: ...\", got \"TcpExt A\"");

  auto duplicate = ParseNetstat("TcpExt: A\nTcpExt: 1\nTcpExt: A\nTcpExt: 2\n");
  ASSERT_FALSE(duplicate.has_value());
  EXPECT_EQ(duplicate.error().message, "line 3: TcpExt.A appears twice");
}

}  // namespace
}  // namespace socket_exporter
