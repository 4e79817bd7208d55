// Hostile inputs, tried one by one, each with exactly what it gets: an error
// (with its text) or acceptance, and how long it took. The same list, with
// the numbers a run printed, is the table in docs/robustness.md; run
//   unit_tests --gtest_filter='Hostile*'
// to see the rows ("HOSTILE | input | outcome | ms"). Under the sanitizer
// build (scripts/test.sh, stage asan) out-of-bounds reads and undefined
// behaviour are fatal too, so "no crash" means more than "no SIGSEGV".
//
// Config parsing has its own hostile tests in config_test.cpp (deep flow and
// block nesting, 10 MB text, random bytes, 5000 services); this file covers
// the whole list of docs/robustness.md, the netlink and /proc/net parsers,
// a netlink peer that never answers, and what the collectors make of
// configs with tens of thousands of services.
#include <arpa/inet.h>
#include <dirent.h>
#include <gtest/gtest.h>
#include <linux/netlink.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include "collectors/classifier.h"
#include "collectors/connections_collector.h"
#include "collectors/registry.h"
#include "collectors/sources/netlink_parser.h"
#include "collectors/sources/netlink_source.h"
#include "collectors/sources/procnet_parser.h"
#include "config/config.h"
#include "exporter/scraper.h"
#include "test_util.h"

namespace socket_exporter {
namespace {

using testing::CountingSink;
using testing::kSlowdown;
using testing::MillisecondsSince;
using testing::OpenFileCount;
using testing::Row;

using Clock = std::chrono::steady_clock;

std::string FirstLine(const std::string& text) { return text.substr(0, text.find('\n')); }

std::size_t LineCount(const std::string& text) {
  return static_cast<std::size_t>(std::count(text.begin(), text.end(), '\n')) + 1;
}

bool Printable(const std::string& text) {
  return std::all_of(text.begin(), text.end(), [](char c) {
    const auto byte = static_cast<unsigned char>(c);
    return byte == '\n' || (byte >= 0x20 && byte != 0x7F);
  });
}

// Parses yaml and checks the outcome; returns the config or null.
struct ConfigOutcome {
  std::shared_ptr<const Config> config;
  std::string error;
  double ms = 0;
};
ConfigOutcome TryConfig(const std::string& yaml) {
  const auto start = Clock::now();
  auto result = ParseConfig(yaml, "hostile.yaml");
  ConfigOutcome outcome;
  outcome.ms = MillisecondsSince(start);
  if (result) {
    outcome.config = *result;
  } else {
    outcome.error = result.error().message;
    EXPECT_TRUE(Printable(outcome.error)) << outcome.error;
    EXPECT_LE(LineCount(outcome.error), 101U) << "error reports are capped at 100 + 1 lines";
  }
  return outcome;
}

std::string Services(std::size_t count, std::uint16_t first_port) {
  std::string yaml = "services:\n";
  for (std::size_t i = 0; i < count; ++i) {
    yaml +=
        "  - {name: s" + std::to_string(i) + ", ports: [" + std::to_string(first_port + i) + "]}\n";
  }
  return yaml;
}

std::string FixturePath(const std::string& name) {
  return std::string(SOCKET_EXPORTER_FIXTURES_DIR) + "/" + name;
}

std::vector<std::uint8_t> ReadBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// The datagrams of a .bin fixture (tests/fixtures/README.md).
std::vector<std::vector<std::uint8_t>> Frames(const std::string& name) {
  const std::vector<std::uint8_t> data = ReadBytes(FixturePath(name));
  std::vector<std::vector<std::uint8_t>> frames;
  std::size_t at = 0;
  while (at + 4 <= data.size()) {
    std::uint32_t length = 0;
    std::memcpy(&length, data.data() + at, 4);
    frames.emplace_back(data.begin() + static_cast<std::ptrdiff_t>(at + 4),
                        data.begin() + static_cast<std::ptrdiff_t>(at + 4 + length));
    at += 4 + length;
  }
  return frames;
}

// ---------------------------------------------------------------------------
// Netlink replies

// Every datagram of every recording, cut at every byte: a cut between
// messages is a shorter valid batch, any other cut is an error naming the
// truncation; never more records than the whole datagram has.
TEST(HostileNetlink, EveryRecordedDatagramTruncatedAtEveryByte) {
  const auto start = Clock::now();
  std::size_t cuts = 0;
  std::size_t errors = 0;
  for (const auto& [file, protocol] : {std::pair{"netlink_tcp.bin", Protocol::kTcp},
                                       std::pair{"netlink_tcp_v2.bin", Protocol::kTcp},
                                       std::pair{"netlink_udp.bin", Protocol::kUdp}}) {
    const auto frames = Frames(file);
    ASSERT_FALSE(frames.empty()) << file;
    for (const auto& frame : frames) {
      CountingSink whole;
      ASSERT_TRUE(ParseSockDiagBatch(frame, protocol, whole).has_value()) << file;
      for (std::size_t cut = 0; cut < frame.size(); ++cut) {
        ++cuts;
        CountingSink sink;
        const auto status = ParseSockDiagBatch(std::span(frame.data(), cut), protocol, sink);
        EXPECT_LE(sink.records, whole.records);
        if (!status) {
          ++errors;
          EXPECT_NE(status.error().message.find("truncated"), std::string::npos)
              << status.error().message;
        }
      }
    }
  }
  const double ms = MillisecondsSince(start);
  Row("netlink: every recorded datagram cut at every byte (" + std::to_string(cuts) + " cuts)",
      std::to_string(errors) +
          " errors \"netlink: truncated message ... at byte N\", the rest "
          "shorter valid batches (cut between messages)",
      ms);
  EXPECT_GT(errors, cuts / 2);
  EXPECT_LT(ms, 2000 * kSlowdown);
}

// The kernel's status word is an int; INT_MIN is the one value whose
// magnitude does not fit (found by netlink_parser_fuzz's seed; UBSan made it
// fatal before the fix).
TEST(HostileNetlink, DoneAndErrorCarryingIntMin) {
  for (std::uint16_t type : {std::uint16_t{NLMSG_DONE}, std::uint16_t{NLMSG_ERROR}}) {
    std::vector<std::uint8_t> bytes(sizeof(nlmsghdr) + sizeof(int));
    nlmsghdr header{};
    header.nlmsg_len = static_cast<std::uint32_t>(bytes.size());
    header.nlmsg_type = type;
    const int status_word = INT_MIN;
    std::memcpy(bytes.data(), &header, sizeof(header));
    std::memcpy(bytes.data() + sizeof(header), &status_word, sizeof(status_word));
    CountingSink sink;
    const auto status = ParseSockDiagBatch(bytes, Protocol::kTcp, sink);
    ASSERT_TRUE(status.has_value()) << status.error().message;
    EXPECT_TRUE(status->done);
    EXPECT_EQ(status->kernel_errno, INT_MAX);
    EXPECT_EQ(ErrnoText(status->kernel_errno), "unknown error 2147483647");
  }
  Row("netlink: NLMSG_DONE / NLMSG_ERROR with status INT_MIN",
      "request over with kernel error INT_MAX (\"unknown error 2147483647\"); was signed "
      "overflow (UB) before the fix",
      0);
}

TEST(HostileNetlink, RandomBytes) {
  std::mt19937 random(2024);
  const auto start = Clock::now();
  std::size_t errors = 0;
  constexpr int kRounds = 20000;
  for (int round = 0; round < kRounds; ++round) {
    std::vector<std::uint8_t> bytes(random() % 2048);
    for (auto& b : bytes) b = static_cast<std::uint8_t>(random());
    CountingSink sink;
    const Protocol protocol = round % 2 ? Protocol::kUdp : Protocol::kTcp;
    const auto status = ParseSockDiagBatch(bytes, protocol, sink);
    if (!status) ++errors;
  }
  const double ms = MillisecondsSince(start);
  Row("netlink: 20000 datagrams of random bytes (0-2 KiB)",
      std::to_string(errors) + " errors (\"netlink: ... at byte N\"), the rest empty batches", ms);
  EXPECT_LT(ms, 2000 * kSlowdown);
}

// ---------------------------------------------------------------------------
// /proc/net text

TEST(HostileProcNet, EveryRecordedFileTruncatedAtEveryByte) {
  const auto start = Clock::now();
  std::size_t cuts = 0;
  std::size_t errors = 0;
  for (const auto& [file, protocol, family] :
       {std::tuple{"proc_net_tcp.txt", Protocol::kTcp, Family::kIpv4},
        std::tuple{"proc_net_tcp6.txt", Protocol::kTcp, Family::kIpv6},
        std::tuple{"proc_net_udp.txt", Protocol::kUdp, Family::kIpv4},
        std::tuple{"proc_net_udp6.txt", Protocol::kUdp, Family::kIpv6}}) {
    const auto bytes = ReadBytes(FixturePath(file));
    const std::string text(bytes.begin(), bytes.end());
    ASSERT_FALSE(text.empty()) << file;
    for (std::size_t cut = 0; cut < text.size(); ++cut) {
      ++cuts;
      CountingSink sink;
      const auto result = ParseProcNet(std::string_view(text).substr(0, cut), protocol, family,
                                       ProcNetSelect::kAll, sink);
      const bool at_line_end = cut > 0 && text[cut - 1] == '\n';
      EXPECT_EQ(result.has_value(), at_line_end) << file << " cut at " << cut;
      if (!result) {
        ++errors;
        EXPECT_EQ(result.error().message.rfind("line ", 0), 0U) << result.error().message;
      }
    }
  }
  const double ms = MillisecondsSince(start);
  Row("/proc/net: every recorded file cut at every byte (" + std::to_string(cuts) + " cuts)",
      std::to_string(errors) +
          " errors \"line N: truncated: no newline at the end of the file\" (or \"line 1: "
          "empty file\"); cuts at a line end parse",
      ms);
  EXPECT_LT(ms, 2000 * kSlowdown);
}

TEST(HostileProcNet, BinaryGarbageAndHugeLines) {
  std::mt19937 random(7);
  std::string garbage(1 << 20, '\0');
  for (char& c : garbage) c = static_cast<char>(random());
  auto start = Clock::now();
  CountingSink sink;
  auto result = ParseProcNet(garbage, Protocol::kTcp, Family::kIpv4, ProcNetSelect::kAll, sink);
  double ms = MillisecondsSince(start);
  ASSERT_FALSE(result.has_value());
  EXPECT_EQ(sink.records, 0U);
  Row("/proc/net: 1 MiB of random bytes", FirstLine(result.error().message).substr(0, 60) + "...",
      ms);

  // A header and one 16 MiB line: the error quotes a 200-byte prefix of it
  // and says how long it was; the parse itself is linear.
  std::string huge = "  sl  local_address\n   0: " + std::string(16 << 20, 'A') + "\n";
  start = Clock::now();
  result = ParseProcNet(huge, Protocol::kTcp, Family::kIpv4, ProcNetSelect::kAll, sink);
  ms = MillisecondsSince(start);
  ASSERT_FALSE(result.has_value());
  const std::string expected = "line 2: bad local address (no ':' between address and port): ";
  EXPECT_EQ(result.error().message.rfind(expected, 0), 0U)
      << FirstLine(result.error().message).substr(0, 100);
  EXPECT_EQ(result.error().message, expected + "\"   0: " + std::string(194, 'A') + "...\" (" +
                                        std::to_string((16 << 20) + 6) + " bytes)");
  Row("/proc/net: one 16 MiB line",
      "\"" + expected +
          "\"   0: AAAA...\" (16777222 bytes)\" (a 200-byte prefix is quoted; only a "
          "fake --path.procfs can produce it)",
      ms);
  EXPECT_LT(ms, 2000 * kSlowdown);
}

// ---------------------------------------------------------------------------
// Config

TEST(HostileConfig, HugeFile) {
  const std::string huge(10 << 20, '#');
  const ConfigOutcome outcome = TryConfig(huge);
  EXPECT_EQ(outcome.error,
            "hostile.yaml:1:1: config is too large (10485760 bytes); the limit is 4194304 bytes "
            "(4 MiB)");
  Row("config: 10 MiB file",
      "\"config is too large (10485760 bytes); the limit is 4194304 bytes (4 MiB)\"; a regular "
      "file is refused from its size, before reading",
      outcome.ms);
  EXPECT_LT(outcome.ms, 1000 * kSlowdown);

  // A file that never ends: reading stops one byte past the limit.
  const auto start = Clock::now();
  const auto endless = LoadConfigFile("/dev/zero");
  const double ms = MillisecondsSince(start);
  ASSERT_FALSE(endless.has_value());
  EXPECT_EQ(endless.error().message,
            "/dev/zero:1:1: config is too large (more than 4194304 bytes); the limit is 4194304 "
            "bytes (4 MiB)");
  Row("config: /dev/zero (never ends)",
      "\"config is too large (more than 4194304 bytes)\" after reading 4 MiB + 1", ms);
  EXPECT_LT(ms, 2000 * kSlowdown);
}

TEST(HostileConfig, BinaryGarbage) {
  std::mt19937 random(99);
  std::string garbage(64 << 10, '\0');
  for (char& c : garbage) c = static_cast<char>(random());
  const ConfigOutcome outcome = TryConfig(garbage);
  ASSERT_FALSE(outcome.error.empty());
  EXPECT_EQ(outcome.error.rfind("hostile.yaml:", 0), 0U) << outcome.error;
  Row("config: 64 KiB of random bytes",
      "\"" + FirstLine(outcome.error).substr(0, 70) + "...\" (control bytes printed as \\xNN)",
      outcome.ms);
  EXPECT_LT(outcome.ms, 2000 * kSlowdown);

  // NUL bytes inside an otherwise valid file.
  static constexpr char kWithNuls[] = "limits:\n  max_series: 10\0\0\0\n";
  const ConfigOutcome nul = TryConfig(std::string(kWithNuls, sizeof(kWithNuls) - 1));
  Row("config: NUL bytes after a valid line",
      nul.config ? "accepted" : "\"" + FirstLine(nul.error) + "\"", nul.ms);
}

TEST(HostileConfig, DeepNesting) {
  const std::string flow = "services: " + std::string(100000, '[');
  ConfigOutcome outcome = TryConfig(flow);
  EXPECT_EQ(outcome.error, "hostile.yaml:1:75: YAML is nested more than 64 levels deep");
  Row("config: 100000 nested flow lists `[[[[...`",
      "\"hostile.yaml:1:75: YAML is nested more than 64 levels deep\" (checked before yaml-cpp "
      "recurses)",
      outcome.ms);
  EXPECT_LT(outcome.ms, 1000 * kSlowdown);

  std::string block;
  for (int i = 0; i < 100000; ++i) block += "- ";
  block += "x\n";
  outcome = TryConfig(block);
  EXPECT_NE(outcome.error.find("YAML is nested too deeply"), std::string::npos) << outcome.error;
  Row("config: 100000 nested block lists `- - - ... x` on one line",
      "\"" + outcome.error + "\" (yaml-cpp's depth guard, caught)", outcome.ms);
  EXPECT_LT(outcome.ms, 5000 * kSlowdown);

  std::string indented = "a:\n";
  for (std::size_t i = 1; i <= 2500; ++i) indented += std::string(i, ' ') + "b:\n";
  outcome = TryConfig(indented);
  EXPECT_NE(outcome.error.find("YAML is nested too deeply"), std::string::npos) << outcome.error;
  Row("config: 2500 levels of indented maps (3 MiB; deeper does not fit in 4 MiB)",
      "\"" + outcome.error + "\"", outcome.ms);
  EXPECT_LT(outcome.ms, 5000 * kSlowdown);
}

// Aliases share nodes in yaml-cpp, and the validator never walks a value it
// does not expect, so the "billion laughs" costs nothing.
TEST(HostileConfig, BillionLaughs) {
  std::string yaml = "x0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n";
  for (int i = 1; i <= 9; ++i) {
    yaml += "x" + std::to_string(i) + ": &a" + std::to_string(i) + " [";
    for (int j = 0; j < 10; ++j) yaml += (j ? ", *a" : "*a") + std::to_string(i - 1);
    yaml += "]\n";
  }
  yaml += "services: *a9\n";
  const ConfigOutcome outcome = TryConfig(yaml);
  ASSERT_FALSE(outcome.error.empty());
  Row("config: \"billion laughs\" (10 aliases x 9 levels, 10^9 leaves if expanded)",
      std::to_string(LineCount(outcome.error)) + "-line report, first: \"" +
          FirstLine(outcome.error) + "\"",
      outcome.ms);
  EXPECT_LT(outcome.ms, 2000 * kSlowdown);
}

TEST(HostileConfig, HugeScalars) {
  ConfigOutcome outcome =
      TryConfig("services:\n  - name: " + std::string(3 << 20, 'a') + "\n    ports: [1]\n");
  EXPECT_EQ(outcome.error.find("hostile.yaml:2:11: services[0].name: 'aaaa"), 0U) << outcome.error;
  EXPECT_LT(outcome.error.size(), 400U) << "the name is quoted shortened";
  Row("config: a 3 MiB service name",
      "\"" + outcome.error.substr(0, 60) + "...' is not a valid name ...\" (quoted to 64 bytes)",
      outcome.ms);

  outcome = TryConfig("limits: {max_series: " + std::string(1 << 20, '9') + "}\n");
  EXPECT_EQ(outcome.error.find("hostile.yaml:1:22: limits.max_series: expected an integer between "
                               "10 and 1000000, got '999"),
            0U)
      << outcome.error;
  Row("config: a 1 MiB number", "\"" + outcome.error.substr(0, 88) + "...'\"", outcome.ms);
  EXPECT_LT(outcome.ms, 2000 * kSlowdown);
}

TEST(HostileConfig, ThousandsOfErrors) {
  std::string yaml = "services:\n";
  for (int i = 0; i < 50000; ++i) yaml += "  - {name: BAD, ports: [x]}\n";
  const ConfigOutcome outcome = TryConfig(yaml);
  EXPECT_EQ(LineCount(outcome.error), 101U);
  EXPECT_NE(outcome.error.find("more not shown"), std::string::npos);
  Row("config: 50000 services, each with 2 errors",
      "100 errors listed, then \"" + outcome.error.substr(outcome.error.rfind('\n') + 1) + "\"",
      outcome.ms);
  EXPECT_LT(outcome.ms, 10000 * kSlowdown);
}

TEST(HostileConfig, SixtyThousandSingleportServices) {
  const ConfigOutcome outcome = TryConfig(Services(60000, 1));
  ASSERT_TRUE(outcome.config) << outcome.error;
  EXPECT_EQ(outcome.config->services.size(), 60000U);
  EXPECT_EQ(outcome.config->ServiceName(outcome.config->service_of_port[0][60000]), "s59999");
  EXPECT_EQ(outcome.config->ServiceName(outcome.config->service_of_port[1][60001]), "other");
  Row("config: 60000 single-port services (2.2 MB)", "accepted", outcome.ms);
  EXPECT_LT(outcome.ms, 10000 * kSlowdown);

  // One more than the 16-bit service index holds.
  std::string too_many = "services:\n";
  for (int i = 0; i < 65536; ++i) {
    too_many += "  - {name: s" + std::to_string(i) + ", ports: [1]}\n";
  }
  const ConfigOutcome refused = TryConfig(too_many);
  EXPECT_EQ(FirstLine(refused.error),
            "hostile.yaml:2:3: services: too many services (65536); at most 65535 are supported");
  Row("config: 65536 services", "\"" + FirstLine(refused.error) + "\"", refused.ms);
}

std::string PortRanges(std::size_t count) {
  std::string yaml = "port_ranges:\n";
  const std::size_t step = 65536 / count;
  for (std::size_t i = 0; i < count; ++i) {
    const std::size_t last = i + 1 == count ? 65535 : (i + 1) * step - 1;
    yaml += "  - {name: r" + std::to_string(i) + ", ports: \"" + std::to_string(i * step) + "-" +
            std::to_string(last) + "\"}\n";
  }
  return yaml;
}

// Each port range adds 56 always-published series (service_name="other"
// for every state, family and direction), beyond limits.max_series: 65536
// one-port ranges made one scrape 3.7 million series and minutes of work.
TEST(HostileConfig, ManyPortRanges) {
  ConfigOutcome outcome = TryConfig(PortRanges(65536));
  EXPECT_EQ(FirstLine(outcome.error),
            "hostile.yaml:2:3: port_ranges: too many port ranges (65536); at most 64 are "
            "supported, each adds 56 series to socket_connections");
  Row("config: 65536 one-port port ranges (2.6 MB)", "\"" + FirstLine(outcome.error) + "\"",
      outcome.ms);
  EXPECT_LT(outcome.ms, 10000 * kSlowdown);

  outcome = TryConfig(PortRanges(64));
  ASSERT_TRUE(outcome.config) << outcome.error;
  ConnectionsCollector collector;
  ASSERT_TRUE(collector.Begin(ScrapeContext{outcome.config, "/proc"}).has_value());
  std::vector<prometheus::MetricFamily> out;
  ASSERT_TRUE(collector.Finish(out).has_value());
  EXPECT_EQ(testing::SeriesCount(out, "socket_connections"), 64U * 56U);
  Row("config: 64 port ranges (the most accepted)",
      "accepted; socket_connections starts with 3584 series, under the default max_series 5000",
      outcome.ms);
}

// What the exporter makes of such a config: every service touched by
// sockets, and socket_connections still stays under limits.max_series, with
// the excess counted and no socket lost.
TEST(HostileConfig, SixtyThousandServicesAllInUseStayUnderMaxSeries) {
  const auto parsed =
      ParseConfig(Services(60000, 1) + "limits: {max_series: 5000}\n", "hostile.yaml");
  ASSERT_TRUE(parsed.has_value()) << parsed.error().message;
  const std::shared_ptr<const Config> config = *parsed;
  std::vector<SocketRecord> records;
  for (std::uint32_t port = 1; port <= 60000; ++port) {
    records.push_back(
        testing::Tcp(kTcpListen, "0.0.0.0", static_cast<std::uint16_t>(port), "0.0.0.0", 0));
  }
  ConnectionsCollector collector;
  const auto start = Clock::now();
  for (int scrape = 0; scrape < 2; ++scrape) {
    ASSERT_TRUE(collector.Begin(ScrapeContext{config, "/proc"}).has_value());
    Classifier classifier(config);
    for (const SocketRecord& r : records) collector.Observe(r, classifier.Classify(r));
    std::vector<prometheus::MetricFamily> out;
    ASSERT_TRUE(collector.Finish(out).has_value());
    EXPECT_EQ(testing::SeriesCount(out, "socket_connections"), 5000U) << "scrape " << scrape;
    EXPECT_EQ(testing::Value(out, "socket_connections", {}), 60000) << "no socket lost";
    // 168 seeded series (14 states x 2 families x 2 directions x 3 ranges):
    // 4832 of the 60000 label sets fit, the rest are folded.
    EXPECT_EQ(testing::Value(out, "socket_exporter_cardinality_folded_series", {}), 60000 - 4832);
  }
  const double ms = MillisecondsSince(start);
  Row("exporter: 60000 services, a listener on each, limits.max_series 5000",
      "socket_connections keeps 5000 series, 55168 label sets folded into service_name=\"other\" "
      "and counted, all 60000 sockets counted (2 scrapes)",
      ms);
  EXPECT_LT(ms, 5000 * kSlowdown);
}

}  // namespace
}  // namespace socket_exporter
