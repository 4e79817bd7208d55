// --list and --summary on the recorded fixture population (tests/fixtures,
// see its README), with no kernel: a FixtureSource replays the recorded
// netlink datagrams through the real parser. The outputs are compared byte
// for byte with tests/fixtures/golden/ (regenerate with
// SOCKET_EXPORTER_UPDATE_GOLDENS=1, see tests/fixtures/golden/README.md),
// and checked against the population's known facts and against the
// exporter's own counts of the same input.
#include "exporter/socket_view.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <iterator>
#include <map>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "collectors/registry.h"
#include "collectors/sources/netlink_parser.h"
#include "exporter/scraper.h"
#include "test_util.h"

namespace socket_exporter {
namespace {

const std::string kFixtures = SOCKET_EXPORTER_FIXTURES_DIR;
const std::string kGolden = kFixtures + "/golden";

std::string ReadText(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in.good()) << "cannot read " << path;
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// Replays recorded sock_diag replies in the order NetlinkSource requests
// them: the legacy TCP dump (listeners first, as the kernel walks), then UDP
// unconnected and connected. Frames are [u32 length LE][datagram].
class FixtureSource : public SocketSource {
 public:
  std::string Name() const override { return "fixture"; }
  Result<SourceStats> Stream(SocketSink& sink) override {
    SourceStats stats;
    for (const auto& [file, protocol] : {std::pair{"netlink_tcp.bin", Protocol::kTcp},
                                         std::pair{"netlink_udp.bin", Protocol::kUdp}}) {
      const std::string bytes = ReadText(kFixtures + "/" + file);
      std::size_t offset = 0;
      while (offset + 4 <= bytes.size()) {
        std::uint32_t length = 0;
        for (int i = 3; i >= 0; --i) {
          length = (length << 8) |
                   static_cast<std::uint8_t>(bytes[offset + static_cast<std::size_t>(i)]);
        }
        offset += 4;
        if (offset + length > bytes.size()) return Fail(std::string(file) + ": truncated frame");
        const auto* data = reinterpret_cast<const std::uint8_t*>(bytes.data() + offset);
        auto status = ParseSockDiagBatch({data, length}, protocol, sink);
        if (!status) return std::unexpected(status.error());
        stats.records += status->records;
        offset += length;
      }
    }
    return stats;
  }
};

std::shared_ptr<const Config> GoldenConfig() {
  // A fixed source name: the summary prints it, and a path would differ
  // between checkouts.
  auto config = ParseConfig(ReadText(kGolden + "/config.yaml"), "golden/config.yaml");
  EXPECT_TRUE(config.has_value()) << (config ? "" : config.error().message);
  return config ? *config : DefaultConfig();
}

std::string List(ViewFormat format, const ListFilterFlags& flags = {},
                 std::shared_ptr<const Config> config = GoldenConfig()) {
  auto filter = ParseSocketFilter(flags, *config);
  EXPECT_TRUE(filter.has_value()) << (filter ? "" : filter.error().message);
  FixtureSource source;
  std::ostringstream out;
  auto listed = WriteSocketList(source, config, filter ? *filter : SocketFilter{}, format, out);
  EXPECT_TRUE(listed.has_value()) << (listed ? "" : listed.error().message);
  return out.str();
}

// One collection exactly as --summary and --once make it, on the fixture:
// the connections and ephemeral collectors only (others read files the
// fixture does not have), sysctls from golden/procfs.
ScrapeOutcome Collect(std::shared_ptr<const Config> config,
                      std::map<std::string, bool> enable = {{"connections", true},
                                                            {"ephemeral", true}}) {
  ScraperOptions options;
  options.procfs_root = kGolden + "/procfs";
  options.make_source = [] { return std::make_unique<FixtureSource>(); };
  for (const CollectorInfo& info : AllCollectors()) {
    const std::string name(info.name);
    options.collector_overrides[name] = enable.contains(name) && enable[name];
  }
  Scraper scraper(options, std::move(config));
  return scraper.CollectNow();
}

std::string Summary(std::map<std::string, bool> enable = {
                        {"connections", true}, {"ephemeral", true}, {"cgroups", true}}) {
  auto config = GoldenConfig();
  ScrapeOutcome outcome = Collect(config, std::move(enable));
  EXPECT_TRUE(outcome.all_succeeded);
  std::ostringstream out;
  WriteSummary(outcome.families, *config, out);
  return out.str();
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

// Byte-for-byte comparison with a golden file; with
// SOCKET_EXPORTER_UPDATE_GOLDENS set, writes the file instead.
void ExpectGolden(const std::string& name, const std::string& got) {
  const std::string path = kGolden + "/" + name;
  if (std::getenv("SOCKET_EXPORTER_UPDATE_GOLDENS") != nullptr) {
    std::ofstream(path, std::ios::binary) << got;
    std::cout << "updated " << path << "\n";
    return;
  }
  const std::string want = ReadText(path);
  if (got == want) return;
  const auto got_lines = Lines(got);
  const auto want_lines = Lines(want);
  std::size_t i = 0;
  while (i < got_lines.size() && i < want_lines.size() && got_lines[i] == want_lines[i]) ++i;
  ADD_FAILURE() << name << " differs from the golden at line " << i + 1
                << "\n  got:  " << (i < got_lines.size() ? got_lines[i] : "<end>")
                << "\n  want: " << (i < want_lines.size() ? want_lines[i] : "<end>") << "\n("
                << got_lines.size() << " lines, golden " << want_lines.size()
                << "; if the change is intended: SOCKET_EXPORTER_UPDATE_GOLDENS=1 unit_tests "
                   "--gtest_filter='SocketView*')";
}

// Minimal reader of the flat JSON objects --list writes (no nesting, no
// escapes in this input): field -> value text without quotes.
std::map<std::string, std::string> ParseJsonLine(const std::string& line) {
  static const std::regex field(R"re("([a-z_]+)":("([^"]*)"|[0-9]+))re");
  std::map<std::string, std::string> out;
  for (auto it = std::sregex_iterator(line.begin(), line.end(), field);
       it != std::sregex_iterator(); ++it) {
    out[(*it)[1]] = (*it)[3].matched ? (*it)[3].str() : (*it)[2].str();
  }
  return out;
}

// ---------------------------------------------------------------------------

TEST(SocketViewGolden, ListText) { ExpectGolden("list.txt", List(ViewFormat::kText)); }
TEST(SocketViewGolden, ListJson) { ExpectGolden("list.jsonl", List(ViewFormat::kJson)); }
TEST(SocketViewGolden, Summary) { ExpectGolden("summary.txt", Summary()); }

TEST(SocketViewList, OneLinePerSocketPlusHeader) {
  // 45 sockets in the netlink fixture (README "Expected counts").
  const auto text = Lines(List(ViewFormat::kText));
  ASSERT_EQ(text.size(), 46U);
  EXPECT_EQ(text[0].rfind("Proto ", 0), 0U);
  EXPECT_EQ(Lines(List(ViewFormat::kJson)).size(), 45U);
}

TEST(SocketViewList, ColumnsAlignOnEveryLine) {
  // Widths are fixed up front: each column starts at the same offset on
  // every line, whatever the addresses. Service width 8: "reserved".
  const std::vector<std::size_t> starts = {
      0, 6, 6 + 48, 6 + 96, 6 + 96 + 15, 6 + 96 + 15 + 10, 6 + 96 + 15 + 10 + 9};
  for (const std::string& line : Lines(List(ViewFormat::kText))) {
    ASSERT_GT(line.size(), starts.back()) << line;
    for (std::size_t i = 0; i < starts.size(); ++i) {
      EXPECT_NE(line[starts[i]], ' ') << "column " << i << " of: " << line;
      if (starts[i] > 0) {
        EXPECT_EQ(line[starts[i] - 1], ' ') << "column " << i << " of: " << line;
      }
    }
    EXPECT_NE(line.back(), ' ') << "trailing blank: " << line;
  }
}

TEST(SocketViewList, NarrowerAddressColumnsWhenOnlyIpv4) {
  ListFilterFlags flags;
  flags.family = {"ipv4"};
  const auto lines = Lines(List(ViewFormat::kText, flags));
  // 3 listen + 12 established + syn_sent + fin_wait2 + 3 time_wait + close_wait
  // + bound_inactive (TCP) + 4 UDP.
  ASSERT_EQ(lines.size(), 1U + 22U + 4U);
  for (const std::string& line : lines) {
    EXPECT_NE(line[6 + 22], ' ') << line;  // remote column right after a 21-wide local one
  }
}

TEST(SocketViewList, Ipv6InBracketsPortZeroAsStar) {
  const std::string text = List(ViewFormat::kText);
  // IPv4 clients of the dual-stack [::]:9091 listener, as the kernel shows
  // the accepted side: an AF_INET6 socket with a v4-mapped address.
  EXPECT_NE(text.find("tcp6  [::ffff:127.0.0.1]:9091"), std::string::npos);
  EXPECT_NE(text.find("[::1]:8081"), std::string::npos);
  EXPECT_NE(text.find("udp   0.0.0.0:5001"), std::string::npos);
  EXPECT_NE(text.find(" 0.0.0.0:* "), std::string::npos);
  EXPECT_NE(text.find(" [::]:* "), std::string::npos);
  const std::string json = List(ViewFormat::kJson);
  EXPECT_EQ(json.find('['), std::string::npos) << "JSON addresses carry no brackets";
  EXPECT_NE(json.find(R"("local_address":"::ffff:127.0.0.1","local_port":9091)"),
            std::string::npos);
}

TEST(SocketViewList, ClassificationAgreesWithTheExportersCounts) {
  // Same fixture through --list (JSON) and through a scrape: the per label
  // set counts must be identical, which is the whole point of the view.
  auto config = GoldenConfig();
  std::map<std::map<std::string, std::string>, double> listed;
  for (const std::string& line : Lines(List(ViewFormat::kJson, {}, config))) {
    auto f = ParseJsonLine(line);
    ++listed[{{"protocol", f["protocol"]},
              {"family", f["family"]},
              {"state", f["state"]},
              {"direction", f["direction"]},
              {"port_range", f["port_range"]},
              {"service_name", f["service_name"]}}];
  }
  std::map<std::map<std::string, std::string>, double> counted;
  for (const auto& family : Collect(config).families) {
    if (family.name != "socket_connections") continue;
    for (const auto& metric : family.metric) {
      if (metric.gauge.value == 0) continue;
      std::map<std::string, std::string> labels;
      for (const auto& label : metric.label) labels[label.name] = label.value;
      counted[labels] += metric.gauge.value;
    }
  }
  EXPECT_EQ(listed, counted);
  EXPECT_GT(listed.size(), 10U);
}

std::size_t CountLines(const ListFilterFlags& flags) {
  return Lines(List(ViewFormat::kJson, flags)).size();
}

TEST(SocketViewList, FiltersNarrowToThePopulation) {
  // Expected numbers follow from tests/fixtures/README.md "Population".
  ListFilterFlags f;
  f.state = {"bound_inactive"};
  EXPECT_EQ(CountLines(f), 2U) << "127.0.0.1:7000 and [::]:7001";
  f = {};
  f.protocol = {"udp"};
  f.family = {"ipv6"};
  EXPECT_EQ(CountLines(f), 3U) << "[::1]:5002, [::]:5003, [::1]:45011";
  f = {};
  f.state = {"listen", "time_wait"};
  EXPECT_EQ(CountLines(f), 6U + 4U);
  f = {};
  f.direction = {"outbound"};
  // Clients: 10 established, 4 time_wait, 2 fin_wait2, 2 syn_sent, 3 UDP.
  EXPECT_EQ(CountLines(f), 21U);
  f.direction = {"inbound"};
  EXPECT_EQ(CountLines(f), 24U);
  f = {};
  f.port = {"8080"};
  // Listener, 3+3 established, 3 time_wait, fin_wait2 + close_wait.
  EXPECT_EQ(CountLines(f), 12U);
  f.port = {"5000-5003"};
  EXPECT_EQ(CountLines(f), 4U + 3U) << "UDP servers and their connected clients";
  f = {};
  f.service = {"syslog"};
  EXPECT_EQ(CountLines(f), 7U);
  f.service = {"reserved"};
  EXPECT_EQ(CountLines(f), 2U);
  f.service = {"other"};
  // Sockets whose service port is 9091, the only unnamed listener port.
  EXPECT_EQ(CountLines(f), 1U + 2U + 2U);
  f = {};
  f.service = {"web"};
  f.direction = {"outbound"};
  f.state = {"established"};
  // Clients to 8080 (3), [::1]:8081 (2), [::1]:8082 (1).
  EXPECT_EQ(CountLines(f), 6U);
  for (const std::string& line : Lines(List(ViewFormat::kJson, f))) {
    auto fields = ParseJsonLine(line);
    EXPECT_EQ(fields["service_name"], "web");
    EXPECT_EQ(fields["direction"], "outbound");
    EXPECT_EQ(fields["state"], "established");
    EXPECT_EQ(fields["service_port"], fields["remote_port"]);
  }
}

TEST(SocketViewFilter, RejectsWhatTheExporterNeverLabels) {
  const auto config = GoldenConfig();
  const auto error = [&](ListFilterFlags flags) {
    auto filter = ParseSocketFilter(flags, *config);
    return filter ? std::string("accepted") : filter.error().message;
  };
  ListFilterFlags f;
  f.service = {"ssh"};  // in the default config, not in this one
  EXPECT_EQ(error(f),
            "--filter.service: \"ssh\" is not a service of golden/config.yaml; use one of web, "
            "metrics, reserved, syslog, other");
  f = {};
  f.port = {"70000"};
  EXPECT_EQ(error(f), "--filter.port: \"70000\" is not a port number 0-65535");
  f.port = {"90-80"};
  EXPECT_EQ(error(f), "--filter.port: \"90-80\" runs backwards");
  f.port = {"8o"};
  EXPECT_EQ(error(f), "--filter.port: \"8o\" is not a port number 0-65535");
  f = {};
  f.state = {"ESTAB"};
  EXPECT_NE(error(f).find("--filter.state: \"ESTAB\" is not a state"), std::string::npos);
  f = {};
  f.protocol = {"sctp"};
  EXPECT_NE(error(f), "accepted");
  f = {};
  f.family = {"inet"};
  EXPECT_NE(error(f), "accepted");
  f = {};
  f.direction = {"in"};
  EXPECT_NE(error(f), "accepted");
}

TEST(SocketViewFilter, StateValuesAreTheExportersLabels) {
  const std::vector<std::string> want = {"established", "syn_sent",  "syn_recv", "fin_wait1",
                                         "fin_wait2",   "time_wait", "close",    "close_wait",
                                         "last_ack",    "listen",    "closing",  "bound_inactive",
                                         "unconnected", "unknown"};
  EXPECT_EQ(StateLabelValues(), want);
}

TEST(SocketViewSummary, SaysWhichCollectorIsOff) {
  const std::string text = Summary({{"connections", true}});
  EXPECT_NE(text.find("(the ephemeral collector is disabled)"), std::string::npos) << text;
  EXPECT_NE(text.find("Sockets scanned: 45 (source fixture)"), std::string::npos) << text;
}

TEST(SocketViewSummary, TotalsMatchTheScrape) {
  // The "all" row of the state table is the sum of socket_connections.
  const auto lines = Lines(Summary());
  bool found = false;
  for (const std::string& line : lines) {
    if (line.rfind("all ", 0) != 0) continue;
    found = true;
    EXPECT_EQ(line.substr(line.find_last_of(' ') + 1), "45") << line;
  }
  EXPECT_TRUE(found);
}

}  // namespace
}  // namespace socket_exporter
