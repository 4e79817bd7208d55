// RunCollectorPass's order of calls: the source's Prefetch before the
// collectors' Begin (so that the kernel's walk runs beside Begin), Stream
// after it, Abandon when no socket collector survived Begin; and, with the
// real background walk, that an abandoned walk leaves nothing behind.
#include "collectors/collector_pass.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <vector>

#include "collectors/registry.h"
#include "collectors/sources/netlink_source.h"
#include "test_util.h"

namespace socket_exporter {
namespace {

using Log = std::vector<std::string>;

class FakeSource : public SocketSource {
 public:
  explicit FakeSource(Log& log) : log_(log) {}
  std::string Name() const override { return "fake"; }
  void Prefetch() override { log_.push_back("prefetch"); }
  void Abandon() override { log_.push_back("abandon"); }
  Result<SourceStats> Stream(SocketSink& sink) override {
    log_.push_back("stream");
    sink.OnSocket(testing::Tcp(kTcpEstablished, "10.0.0.1", 22, "10.0.0.2", 50000));
    return SourceStats{1, 0};
  }

 private:
  Log& log_;
};

class FakeCollector : public Collector {
 public:
  FakeCollector(Log& log, std::string name, bool uses_sockets, bool begin_fails)
      : log_(log), name_(std::move(name)), uses_sockets_(uses_sockets), begin_fails_(begin_fails) {}
  bool UsesSockets() const override { return uses_sockets_; }
  Result<void> Begin(const ScrapeContext&) override {
    log_.push_back("begin " + name_);
    if (begin_fails_) return Fail("no");
    return {};
  }
  void Observe(const SocketRecord&, const Classification&) override { ++observed; }
  Result<void> Finish(std::vector<prometheus::MetricFamily>&) override {
    log_.push_back("finish " + name_);
    return {};
  }
  int observed = 0;

 private:
  Log& log_;
  std::string name_;
  bool uses_sockets_;
  bool begin_fails_;
};

TEST(CollectorPass, PrefetchesBeforeBeginAndStreamsAfterIt) {
  Log log;
  FakeSource source(log);
  FakeCollector sockets(log, "sockets", true, false);
  FakeCollector other(log, "other", false, false);
  const std::vector<PassCollector> collectors{{"sockets", &sockets}, {"other", &other}};
  const PassOutcome outcome = RunCollectorPass(ScrapeContext{DefaultConfig()}, collectors, &source);
  EXPECT_EQ(log, (Log{"prefetch", "begin sockets", "begin other", "stream", "finish sockets",
                      "finish other"}));
  EXPECT_EQ(sockets.observed, 1);
  EXPECT_TRUE(outcome.streamed);
  ASSERT_EQ(outcome.runs.size(), 2U);
  EXPECT_TRUE(outcome.runs[0].ok);
  EXPECT_TRUE(outcome.runs[1].ok);
}

TEST(CollectorPass, AbandonsThePrefetchWhenNoSocketCollectorBegan) {
  Log log;
  FakeSource source(log);
  FakeCollector sockets(log, "sockets", true, true);
  FakeCollector other(log, "other", false, false);
  const std::vector<PassCollector> collectors{{"sockets", &sockets}, {"other", &other}};
  const PassOutcome outcome = RunCollectorPass(ScrapeContext{DefaultConfig()}, collectors, &source);
  EXPECT_EQ(log, (Log{"prefetch", "begin sockets", "begin other", "abandon", "finish other"}));
  EXPECT_FALSE(outcome.streamed);
  ASSERT_EQ(outcome.runs.size(), 2U);
  EXPECT_FALSE(outcome.runs[0].ok);
  EXPECT_TRUE(outcome.runs[1].ok);
}

TEST(CollectorPass, NoSocketCollectorsNoPrefetch) {
  Log log;
  FakeSource source(log);
  FakeCollector other(log, "other", false, false);
  const std::vector<PassCollector> collectors{{"other", &other}};
  (void)RunCollectorPass(ScrapeContext{DefaultConfig()}, collectors, &source);
  EXPECT_EQ(log, (Log{"begin other", "finish other"}));
}

std::size_t OpenFileCount() {
  std::size_t count = 0;
  for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator("/proc/self/fd")) {
    ++count;
  }
  return count;
}

// The real background walk: a pass whose socket collector fails Begin ends
// the walk it started (its socket is closed at once), and the next pass
// gets a complete walk of its own.
TEST(CollectorPass, AbandonedBackgroundWalkLeavesNothingForTheNextPass) {
  NetlinkSourceOptions options;
  options.background_tcp_dump = true;
  NetlinkSource source(options);
  Log log;
  FakeCollector failing(log, "sockets", true, true);
  const std::vector<PassCollector> first{{"sockets", &failing}};
  const std::size_t fds_before = OpenFileCount();
  const PassOutcome abandoned = RunCollectorPass(ScrapeContext{DefaultConfig()}, first, &source);
  EXPECT_FALSE(abandoned.streamed);
  EXPECT_EQ(OpenFileCount(), fds_before) << "the abandoned walk's socket is closed";

  FakeCollector counting(log, "sockets", true, false);
  const std::vector<PassCollector> second{{"sockets", &counting}};
  const PassOutcome outcome = RunCollectorPass(ScrapeContext{DefaultConfig()}, second, &source);
  if (!outcome.stream_ok && source.LastFailureMeansUnavailable()) {
    GTEST_SKIP() << "netlink sock_diag unavailable here";
  }
  ASSERT_TRUE(outcome.streamed);
  ASSERT_TRUE(outcome.stream_ok);
  EXPECT_TRUE(source.LastTcpDumpWasLegacy());
  EXPECT_EQ(static_cast<std::uint64_t>(counting.observed), outcome.stats.records);
  EXPECT_GT(counting.observed, 0) << "at least this host's listening and connected sockets";
}

}  // namespace
}  // namespace socket_exporter
