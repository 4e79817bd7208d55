// The ephemeral collector builds its usable-port set a 64-bit word at a time
// (a port-by-port loop cost ~70 us per scrape). These cases put range and
// reserved boundaries on, next to and across word edges and compare with a
// port-by-port count.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include "collectors/ephemeral_collector.h"
#include "collectors/registry.h"
#include "test_util.h"

namespace socket_exporter {
namespace {

using testing::Value;

struct RangeCase {
  std::uint32_t first;
  std::uint32_t last;
  std::vector<std::pair<std::uint32_t, std::uint32_t>> reserved;
};

class EphemeralRangeTest : public ::testing::TestWithParam<RangeCase> {
 protected:
  void SetUp() override {
    root_ = std::filesystem::temp_directory_path() /
            ("se-eph-range-" + std::to_string(::getpid()) + "-" +
             std::to_string(::testing::UnitTest::GetInstance()->random_seed()) + "-" +
             std::to_string(counter_++));
    std::filesystem::create_directories(root_ / "sys/net/ipv4");
  }
  void TearDown() override { std::filesystem::remove_all(root_); }
  void Write(const std::string& name, const std::string& text) {
    std::ofstream(root_ / "sys/net/ipv4" / name) << text;
  }

  std::filesystem::path root_;
  static inline int counter_ = 0;
};

TEST_P(EphemeralRangeTest, MatchesPortByPortCount) {
  const RangeCase& c = GetParam();
  Write("ip_local_port_range", std::to_string(c.first) + "\t" + std::to_string(c.last) + "\n");
  std::string reserved_text;
  std::vector<bool> usable(65536, false);
  for (std::uint32_t p = c.first; p <= c.last; ++p) usable[p] = true;
  std::uint32_t reserved_in_range = 0;
  for (const auto& [lo, hi] : c.reserved) {
    if (!reserved_text.empty()) reserved_text += ",";
    reserved_text += lo == hi ? std::to_string(lo) : std::to_string(lo) + "-" + std::to_string(hi);
    for (std::uint32_t p = lo; p <= hi; ++p) {
      if (usable[p]) ++reserved_in_range;
      usable[p] = false;
    }
  }
  Write("ip_local_reserved_ports", reserved_text + "\n");
  std::uint32_t expected = 0;
  for (bool u : usable) expected += u ? 1 : 0;

  EphemeralCollector collector;
  auto config = DefaultConfig();
  ASSERT_TRUE(collector.Begin(ScrapeContext{config, root_.string()}).has_value());
  std::vector<prometheus::MetricFamily> out;
  ASSERT_TRUE(collector.Finish(out).has_value());
  EXPECT_EQ(Value(out, "socket_ephemeral_range_ports", {}), expected);
  EXPECT_EQ(Value(out, "socket_ephemeral_reserved_ports", {}), reserved_in_range);
  EXPECT_EQ(Value(out, "socket_ephemeral_capacity_ports", {{"protocol", "tcp"}}), expected);
}

INSTANTIATE_TEST_SUITE_P(
    WordEdges, EphemeralRangeTest,
    ::testing::Values(RangeCase{32768, 60999, {}},  // the kernel default
                      RangeCase{1024, 65535, {}},   // widest usual range, to the end
                      RangeCase{0, 65535, {{0, 0}, {65535, 65535}}},
                      RangeCase{63, 64, {}},                       // across one word edge
                      RangeCase{64, 127, {{64, 64}, {127, 127}}},  // exactly one word
                      RangeCase{40000, 40009, {{40000, 40001}}},
                      RangeCase{1000, 5000, {{900, 1063}, {1100, 1100}, {4990, 6000}}},
                      RangeCase{5, 5, {}},  // a single port
                      RangeCase{10000, 20000, {{12000, 12127}, {12129, 12191}}}));

}  // namespace
}  // namespace socket_exporter
