// A netlink peer that never answers, on the real kernel: the receive
// timeout must end the scrape, close the socket and leave the rest intact.
// Needs the kernel (NETLINK_CONNECTOR), not root. The rows printed are the
// hostile-input table of docs/robustness.md (see tests/unit/hostile_inputs_test.cpp).
#include <gtest/gtest.h>
#include <linux/netlink.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <string>

#include "collectors/registry.h"
#include "collectors/sources/netlink_source.h"
#include "exporter/scraper.h"
#include "tests/unit/test_util.h"

namespace socket_exporter {
namespace {

using Clock = std::chrono::steady_clock;
using testing::CountingSink;
using testing::kSlowdown;
using testing::MillisecondsSince;
using testing::OpenFileCount;
using testing::Row;

// A netlink peer that takes the request and never answers: the scrape must
// end at receive_timeout with an error, the socket closed, and the other
// collectors' answer intact. NETLINK_CONNECTOR's kernel side silently drops
// messages it has no callback for, which is exactly a kernel that hangs.
TEST(HostileNetlink, PeerThatNeverAnswersTimesOut) {
  const int probe = ::socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_CONNECTOR);
  if (probe < 0) GTEST_SKIP() << "no NETLINK_CONNECTOR here: " << std::strerror(errno);
  ::close(probe);

  NetlinkSourceOptions options;
  options.receive_timeout = std::chrono::milliseconds(300);
  options.open_socket = [] {
    return ::socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_CONNECTOR);
  };
  const std::size_t fds_before = OpenFileCount();
  NetlinkSource source(options);
  CountingSink sink;
  auto start = Clock::now();
  const auto stats = source.Stream(sink);
  const double stream_ms = MillisecondsSince(start);
  ASSERT_FALSE(stats.has_value());
  EXPECT_EQ(stats.error().message,
            "netlink receive timed out after 300 ms during the TCP (legacy, all families) dump");
  EXPECT_GE(stream_ms, 250);
  EXPECT_LT(stream_ms, 300 + 1000 * kSlowdown);
  EXPECT_FALSE(source.LastFailureMeansUnavailable()) << "a hang must not fall back silently";
  EXPECT_EQ(OpenFileCount(), fds_before) << "the socket of a timed-out dump is closed";

  // The same through a whole scrape: socket collectors report success 0,
  // everything else still answers.
  ScraperOptions scraper_options;
  scraper_options.make_source = [options] { return std::make_unique<NetlinkSource>(options); };
  Scraper scraper(scraper_options, DefaultConfig());
  start = Clock::now();
  const ScrapeOutcome outcome = scraper.CollectNow();
  const double scrape_ms = MillisecondsSince(start);
  EXPECT_FALSE(outcome.all_succeeded);
  EXPECT_EQ(testing::Value(outcome.families, "socket_exporter_collector_success",
                           {{"collector", "connections"}}),
            0);
  EXPECT_EQ(testing::Value(outcome.families, "socket_exporter_build_info", {}), 1);
  EXPECT_EQ(testing::SeriesCount(outcome.families, "socket_connections"), 0U)
      << "a failed pass publishes no partial counts";
  EXPECT_LT(scrape_ms, 300 + 1000 * kSlowdown);
  Row("netlink: a peer that takes the request and never answers (receive timeout 300 ms; "
      "5 s in the exporter)",
      "\"netlink receive timed out after 300 ms during the TCP (legacy, all families) dump\"; "
      "socket collectors success 0, no partial counts, the rest of the scrape answers, socket "
      "closed",
      scrape_ms);
}

// The same peer with the background walk: both requests hang, the one on
// the background thread too. The scrape still ends at about one receive
// timeout (the two run side by side), both sockets are closed, and the
// source works again afterwards.
TEST(HostileNetlink, PeerThatNeverAnswersTimesOutWithTheBackgroundWalk) {
  const int probe = ::socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_CONNECTOR);
  if (probe < 0) GTEST_SKIP() << "no NETLINK_CONNECTOR here: " << std::strerror(errno);
  ::close(probe);

  bool hang = true;
  NetlinkSourceOptions options;
  options.receive_timeout = std::chrono::milliseconds(300);
  options.background_tcp_dump = true;
  options.open_socket = [&hang] {
    return ::socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC,
                    hang ? NETLINK_CONNECTOR : NETLINK_SOCK_DIAG);
  };
  const std::size_t fds_before = OpenFileCount();
  NetlinkSource source(options);
  CountingSink sink;
  const auto start = Clock::now();
  source.Prefetch();
  const auto stats = source.Stream(sink);
  const double stream_ms = MillisecondsSince(start);
  ASSERT_FALSE(stats.has_value());
  EXPECT_EQ(stats.error().message,
            "netlink receive timed out after 300 ms during the TCP listening (legacy) dump");
  EXPECT_GE(stream_ms, 250);
  EXPECT_LT(stream_ms, 300 + 1000 * kSlowdown);
  EXPECT_FALSE(source.LastFailureMeansUnavailable());
  EXPECT_EQ(OpenFileCount(), fds_before) << "both sockets of the timed-out walk are closed";

  hang = false;
  CountingSink recovered;
  const auto again = source.Stream(recovered);
  if (!again && source.LastFailureMeansUnavailable()) {
    GTEST_SKIP() << "netlink sock_diag unavailable: " << again.error().message;
  }
  ASSERT_TRUE(again.has_value()) << again.error().message;
  EXPECT_EQ(again->records, recovered.records);
  Row("netlink, background walk: both requests unanswered (receive timeout 300 ms)",
      "the listening dump times out; the background walk is ended and both sockets closed; the "
      "next Stream() works",
      stream_ms);
}

}  // namespace
}  // namespace socket_exporter
