// /proc/net/{tcp,tcp6,udp,udp6} parsing on recorded files (tests/fixtures,
// see its README for the population) and on malformed text; ProcNetSource's
// delivery order on a fake procfs root; the source factory.
#include "collectors/sources/procnet_parser.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "collectors/sources/netlink_parser.h"
#include "collectors/sources/procnet_source.h"
#include "collectors/sources/socket_record.h"
#include "collectors/sources/socket_sources.h"
#include "common/read_file.h"

namespace socket_exporter {
namespace {

namespace fs = std::filesystem;
using Counts = std::map<std::string, std::uint64_t>;

std::string Label(const SocketRecord& r) {
  return std::string(ProtocolName(r.protocol)) + " " + std::string(FamilyName(r.family)) + " " +
         std::string(StateName(r.protocol, r.state));
}

class RecordingSink : public SocketSink {
 public:
  void OnSocket(const SocketRecord& record) override { records.push_back(record); }
  std::vector<SocketRecord> records;
};

Counts CountOf(const std::vector<SocketRecord>& records) {
  Counts counts;
  for (const SocketRecord& r : records) ++counts[Label(r)];
  return counts;
}

bool SameRecord(const SocketRecord& a, const SocketRecord& b) {
  return a.protocol == b.protocol && a.family == b.family && a.state == b.state &&
         a.local == b.local && a.remote == b.remote && a.local_port == b.local_port &&
         a.remote_port == b.remote_port && a.rqueue == b.rqueue && a.wqueue == b.wqueue &&
         a.uid == b.uid && a.inode == b.inode;
}

std::string FixturePath(const std::string& name) {
  return std::string(SOCKET_EXPORTER_FIXTURES_DIR) + "/" + name;
}

std::string ReadText(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in) << "cannot open " << path;
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

struct ProcFile {
  const char* name;
  Protocol protocol;
  Family family;
};
constexpr ProcFile kProcFiles[] = {
    {"tcp", Protocol::kTcp, Family::kIpv4},
    {"tcp6", Protocol::kTcp, Family::kIpv6},
    {"udp", Protocol::kUdp, Family::kIpv4},
    {"udp6", Protocol::kUdp, Family::kIpv6},
};

std::vector<SocketRecord> ParseFixtureFile(const ProcFile& file,
                                           ProcNetSelect select = ProcNetSelect::kAll) {
  const std::string text = ReadText(FixturePath(std::string("proc_net_") + file.name + ".txt"));
  RecordingSink sink;
  auto parsed = ParseProcNet(text, file.protocol, file.family, select, sink);
  EXPECT_TRUE(parsed.has_value()) << file.name << ": " << parsed.error().message;
  if (parsed) {
    EXPECT_EQ(*parsed, sink.records.size());
  }
  return sink.records;
}

std::vector<SocketRecord> ParseAllFixtureFiles() {
  std::vector<SocketRecord> all;
  for (const ProcFile& file : kProcFiles) {
    const auto records = ParseFixtureFile(file);
    all.insert(all.end(), records.begin(), records.end());
  }
  return all;
}

// The netlink fixture, for cross-checks.
std::vector<SocketRecord> NetlinkFixture(const char* name, Protocol protocol) {
  const std::string bytes = ReadText(FixturePath(name));
  RecordingSink sink;
  std::size_t offset = 0;
  while (offset + 4 <= bytes.size()) {
    std::uint32_t length = 0;
    for (int i = 3; i >= 0; --i) {
      length =
          (length << 8) | static_cast<std::uint8_t>(bytes[offset + static_cast<std::size_t>(i)]);
    }
    offset += 4;
    const std::span<const std::uint8_t> datagram(
        reinterpret_cast<const std::uint8_t*>(bytes.data()) + offset, length);
    EXPECT_TRUE(ParseSockDiagBatch(datagram, protocol, sink).has_value());
    offset += length;
  }
  return sink.records;
}

const SocketRecord* FindRecord(const std::vector<SocketRecord>& records, std::uint8_t state,
                               std::uint16_t local_port, std::uint16_t remote_port) {
  for (const SocketRecord& r : records) {
    if (r.state == state && r.local_port == local_port && r.remote_port == remote_port) return &r;
  }
  return nullptr;
}

// The population of tests/fixtures/README.md as /proc/net shows it: like
// netlink, minus the bound-but-inactive sockets.
const Counts kFixtureCounts = {
    {"tcp ipv4 listen", 3},      {"tcp ipv4 established", 12}, {"tcp ipv4 syn_sent", 1},
    {"tcp ipv4 fin_wait2", 1},   {"tcp ipv4 time_wait", 3},    {"tcp ipv4 close_wait", 1},
    {"tcp ipv6 listen", 3},      {"tcp ipv6 established", 8},  {"tcp ipv6 syn_sent", 1},
    {"tcp ipv6 fin_wait2", 1},   {"tcp ipv6 time_wait", 1},    {"tcp ipv6 close_wait", 1},
    {"udp ipv4 unconnected", 2}, {"udp ipv4 established", 2},  {"udp ipv6 unconnected", 2},
    {"udp ipv6 established", 1},
};

// ---------------------------------------------------------------------------
// Recorded fixtures

TEST(ProcNetParserFixture, ExactPopulation) {
  EXPECT_EQ(CountOf(ParseAllFixtureFiles()), kFixtureCounts);
}

TEST(ProcNetParserFixture, SpecificRecords) {
  const auto tcp = ParseFixtureFile(kProcFiles[0]);
  const auto tcp6 = ParseFixtureFile(kProcFiles[1]);

  const SocketRecord* l8080 = FindRecord(tcp, kTcpListen, 8080, 0);
  ASSERT_NE(l8080, nullptr);
  EXPECT_EQ(l8080->protocol, Protocol::kTcp);
  EXPECT_EQ(l8080->family, Family::kIpv4);
  EXPECT_EQ(l8080->local.ToString(), "127.0.0.1");  // 0100007F, a host-order word
  EXPECT_TRUE(l8080->remote.IsUnspecified());
  EXPECT_EQ(l8080->wqueue, 0U);  // no backlog limit in /proc/net
  EXPECT_NE(l8080->inode, 0U);
  EXPECT_EQ(l8080->uid, 0U);
  const SocketRecord* l9090 = FindRecord(tcp, kTcpListen, 9090, 0);
  ASSERT_NE(l9090, nullptr);
  EXPECT_EQ(l9090->rqueue, 1U);  // accept-queue length, as in netlink
  EXPECT_EQ(l9090->local.ToString(), "0.0.0.0");

  const SocketRecord* l8081 = FindRecord(tcp6, kTcpListen, 8081, 0);
  ASSERT_NE(l8081, nullptr);
  EXPECT_EQ(l8081->family, Family::kIpv6);
  EXPECT_EQ(l8081->local.ToString(), "::1");
  const SocketRecord* accepted = FindRecord(tcp6, kTcpEstablished, 9091, 40022);
  ASSERT_NE(accepted, nullptr);
  EXPECT_EQ(accepted->local.ToString(), "::ffff:127.0.0.1");
  EXPECT_EQ(accepted->remote.Normalized().ToString(), "127.0.0.1");

  const SocketRecord* time_wait = FindRecord(tcp, kTcpTimeWait, 40042, 8080);
  ASSERT_NE(time_wait, nullptr);
  EXPECT_EQ(time_wait->inode, 0U);
  const SocketRecord* close_wait = FindRecord(tcp6, kTcpCloseWait, 8081, 40071);
  ASSERT_NE(close_wait, nullptr);
  EXPECT_EQ(close_wait->rqueue, 1U);
  EXPECT_NE(FindRecord(tcp6, kTcpSynSent, 38083, 8082), nullptr);
  // bind() without listen/connect: not in /proc/net/tcp at all.
  EXPECT_EQ(FindRecord(tcp, kTcpClose, 7000, 0), nullptr);
  EXPECT_EQ(FindRecord(tcp, kTcpBoundInactive, 7000, 0), nullptr);

  const auto udp = ParseFixtureFile(kProcFiles[2]);
  const SocketRecord* udp_client = FindRecord(udp, kTcpEstablished, 45002, 5001);
  ASSERT_NE(udp_client, nullptr);
  EXPECT_EQ(udp_client->protocol, Protocol::kUdp);
  const auto udp6 = ParseFixtureFile(kProcFiles[3]);
  const SocketRecord* dual = FindRecord(udp6, kTcpClose, 5003, 0);
  ASSERT_NE(dual, nullptr);
  EXPECT_TRUE(dual->local.IsUnspecified());
}

// Both files were recorded from the same sockets: every /proc/net line has a
// netlink twin with the same tuple, state, owner and inode.
TEST(ProcNetParserFixture, MatchesTheNetlinkRecording) {
  auto netlink = NetlinkFixture("netlink_tcp.bin", Protocol::kTcp);
  const auto udp = NetlinkFixture("netlink_udp.bin", Protocol::kUdp);
  netlink.insert(netlink.end(), udp.begin(), udp.end());
  using Key = std::tuple<Protocol, Family, std::uint8_t, std::string, std::uint16_t, std::string,
                         std::uint16_t, std::uint32_t, std::uint64_t>;
  const auto key = [](const SocketRecord& r) {
    return Key{r.protocol,         r.family,     r.state,
               r.local.ToString(), r.local_port, r.remote.ToString(),
               r.remote_port,      r.uid,        r.inode};
  };
  std::multiset<Key> from_netlink;
  for (const SocketRecord& r : netlink) {
    if (r.state != kTcpBoundInactive || r.protocol != Protocol::kTcp) from_netlink.insert(key(r));
  }
  std::multiset<Key> from_procfs;
  for (const SocketRecord& r : ParseAllFixtureFiles()) from_procfs.insert(key(r));
  EXPECT_EQ(from_procfs.size(), 43U);
  EXPECT_TRUE(from_procfs == from_netlink);
}

TEST(ProcNetParserFixture, SelectSplitsTheFile) {
  for (const ProcFile& file : kProcFiles) {
    const auto all = ParseFixtureFile(file, ProcNetSelect::kAll);
    const auto without_peer = ParseFixtureFile(file, ProcNetSelect::kWithoutPeer);
    const auto with_peer = ParseFixtureFile(file, ProcNetSelect::kWithPeer);
    EXPECT_EQ(without_peer.size() + with_peer.size(), all.size()) << file.name;
    const std::uint8_t no_peer_state = file.protocol == Protocol::kTcp ? kTcpListen : kTcpClose;
    for (const SocketRecord& r : without_peer) EXPECT_EQ(r.state, no_peer_state) << file.name;
    for (const SocketRecord& r : with_peer) {
      EXPECT_NE(r.state, no_peer_state) << file.name;
      EXPECT_NE(r.remote_port, 0) << file.name;
    }
    EXPECT_FALSE(without_peer.empty()) << file.name;
    EXPECT_FALSE(with_peer.empty()) << file.name;
  }
}

// Every prefix of a real file: a cut after a newline is a shorter valid
// file; any other cut is an error naming the truncated line. Either way the
// records delivered are exactly those of the complete lines before the cut.
TEST(ProcNetParserFixture, EveryPrefixOfAFile) {
  for (const ProcFile& file : {kProcFiles[0], kProcFiles[1]}) {
    const std::string text = ReadText(FixturePath(std::string("proc_net_") + file.name + ".txt"));
    const auto full = ParseFixtureFile(file);
    for (std::size_t cut = 1; cut < text.size(); ++cut) {
      const std::string_view prefix(text.data(), cut);
      RecordingSink sink;
      auto parsed = ParseProcNet(prefix, file.protocol, file.family, ProcNetSelect::kAll, sink);
      const bool on_newline = text[cut - 1] == '\n';
      ASSERT_EQ(parsed.has_value(), on_newline) << file.name << " cut at " << cut;
      std::size_t complete_lines = 0;
      for (std::size_t i = 0; i < cut; ++i) complete_lines += text[i] == '\n' ? 1 : 0;
      const std::size_t complete_records = complete_lines == 0 ? 0 : complete_lines - 1;
      if (!parsed) {
        EXPECT_NE(parsed.error().message.find("line " + std::to_string(complete_lines + 1) + ":"),
                  std::string::npos)
            << parsed.error().message;
      }
      ASSERT_EQ(sink.records.size(), complete_records) << file.name << " cut at " << cut;
      for (std::size_t i = 0; i < complete_records; ++i) {
        EXPECT_TRUE(SameRecord(sink.records[i], full[i])) << file.name << " cut at " << cut;
      }
    }
  }
}

// ---------------------------------------------------------------------------
// Hand-written text

constexpr const char* kTcpHeader =
    "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout "
    "inode\n";
constexpr const char* kGoodLine =
    "   0: 0100007F:1F90 00000000:0000 0A 00000000:00000003 00:00000000 00000000  1000        0 "
    "12345 1 0000000000000000 100 0 0 10 0\n";

Result<std::uint64_t> ParseTcp(const std::string& body, RecordingSink& sink,
                               Family family = Family::kIpv4) {
  return ParseProcNet(std::string(kTcpHeader) + body, Protocol::kTcp, family, ProcNetSelect::kAll,
                      sink);
}

TEST(ProcNetParser, ParsesALine) {
  RecordingSink sink;
  auto parsed = ParseTcp(std::string(kGoodLine) +
                             "   1: 0100007F:1F90 0201A8C0:D431 01 0000001F:00000000 02:000000C8 "
                             "00000000     0        0 777 2 0000000000000000 20 4 30 10 -1\n",
                         sink);
  ASSERT_TRUE(parsed.has_value()) << parsed.error().message;
  EXPECT_EQ(*parsed, 2U);
  ASSERT_EQ(sink.records.size(), 2U);
  const SocketRecord& listen = sink.records[0];
  EXPECT_EQ(listen.state, kTcpListen);
  EXPECT_EQ(listen.local.ToString(), "127.0.0.1");
  EXPECT_EQ(listen.local_port, 8080);
  EXPECT_EQ(listen.rqueue, 3U);
  EXPECT_EQ(listen.uid, 1000U);
  EXPECT_EQ(listen.inode, 12345U);
  const SocketRecord& established = sink.records[1];
  EXPECT_EQ(established.state, kTcpEstablished);
  EXPECT_EQ(established.remote.ToString(), "192.168.1.2");
  EXPECT_EQ(established.remote_port, 54321);
  EXPECT_EQ(established.wqueue, 31U);
}

TEST(ProcNetParser, Ipv6WordsAreHostOrder) {
  RecordingSink sink;
  auto parsed = ParseTcp(
      "   0: B80D0120000000000000000001000000:01BB 0000000000000000FFFF00000100007F:C350 01 "
      "00000000:00000000 00:00000000 00000000     0        0 99 1 0000000000000000 20 4 30 10 -1\n",
      sink, Family::kIpv6);
  ASSERT_TRUE(parsed.has_value()) << parsed.error().message;
  ASSERT_EQ(sink.records.size(), 1U);
  EXPECT_EQ(sink.records[0].local.ToString(), "2001:db8::1");
  EXPECT_EQ(sink.records[0].remote.ToString(), "::ffff:127.0.0.1");
  EXPECT_EQ(sink.records[0].local_port, 443);
  EXPECT_EQ(sink.records[0].remote_port, 50000);
}

TEST(ProcNetParser, HeaderOnlyIsEmpty) {
  RecordingSink sink;
  auto parsed = ParseTcp("", sink);
  ASSERT_TRUE(parsed.has_value());
  EXPECT_EQ(*parsed, 0U);
}

TEST(ProcNetParser, MalformedLinesNameTheLine) {
  const std::string good(kGoodLine);
  struct Case {
    const char* name;
    std::string body;
    const char* expected;
  };
  const Case cases[] = {
      {"bad hex in address",
       "   0: 01X0007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000 0 0 1\n",
       "line 2: bad local address (address is not hex)"},
      {"short address", "   0: 100007F:1F90 00000000:0000 0A 00000000:00000000 00:0 0 0 0 1\n",
       "line 2: bad local address (address is not 8 hex digits)"},
      {"three-digit port", "   0: 0100007F:F90 00000000:0000 0A 00000000:00000000 00:0 0 0 0 1\n",
       "line 2: bad local address (port is not 4 hex digits)"},
      {"no port", "   0: 0100007F 00000000:0000 0A 00000000:00000000 00:0 0 0 0 1\n",
       "line 2: bad local address (no ':'"},
      {"bad remote", "   0: 0100007F:1F90 0000000G:0000 0A 00000000:00000000 00:0 0 0 0 1\n",
       "line 2: bad remote address"},
      {"bad state", "   0: 0100007F:1F90 00000000:0000 0G 00000000:00000000 00:0 0 0 0 1\n",
       "line 2: missing or bad state"},
      {"cut after state", "   0: 0100007F:1F90 00000000:0000 0A\n",
       "line 2: missing or bad tx_queue:rx_queue"},
      {"missing remote", "   0: 0100007F:1F90\n", "line 2: missing remote address"},
      {"missing inode", "   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:0 0 0 0\n",
       "line 2: missing or bad inode"},
      {"bad inode", "   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:0 0 0 0 12a\n",
       "line 2: missing or bad inode"},
      {"negative uid", "   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:0 0 -1 0 1\n",
       "line 2: missing or bad uid"},
      {"hex prefix", "   0: 0100007F:0x50 00000000:0000 0A 00000000:00000000 00:0 0 0 0 1\n",
       "line 2: bad local address"},
      {"bad slot", "   x: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:0 0 0 0 1\n",
       "line 2: missing or bad slot number"},
      {"empty line", "\n", "line 2: missing or bad slot number"},
      {"error on the third line", good + "   1: garbage\n", "line 3: bad local address"},
      {"truncated last line", good + "   1: 0100007F:1F90 00000000:00",
       "line 3: truncated: no newline"},
      {"complete line without newline", good.substr(0, good.size() - 1),
       "line 2: truncated: no newline"},
  };
  for (const Case& c : cases) {
    RecordingSink sink;
    auto parsed = ParseTcp(c.body, sink);
    ASSERT_FALSE(parsed.has_value()) << c.name;
    EXPECT_NE(parsed.error().message.find(c.expected), std::string::npos)
        << c.name << ": " << parsed.error().message;
  }
}

TEST(ProcNetParser, WrongFamilyForTheFileIsAnError) {
  const std::string tcp6 = ReadText(FixturePath("proc_net_tcp6.txt"));
  RecordingSink sink;
  auto parsed = ParseProcNet(tcp6, Protocol::kTcp, Family::kIpv4, ProcNetSelect::kAll, sink);
  ASSERT_FALSE(parsed.has_value());
  EXPECT_NE(parsed.error().message.find("line 2: bad local address (address is not 8 hex digits)"),
            std::string::npos)
      << parsed.error().message;
  EXPECT_TRUE(sink.records.empty());
}

TEST(ProcNetParser, HeaderIsRequired) {
  RecordingSink sink;
  auto empty = ParseProcNet("", Protocol::kTcp, Family::kIpv4, ProcNetSelect::kAll, sink);
  ASSERT_FALSE(empty.has_value());
  EXPECT_NE(empty.error().message.find("line 1: empty file"), std::string::npos);
  auto no_header =
      ParseProcNet(kGoodLine, Protocol::kTcp, Family::kIpv4, ProcNetSelect::kAll, sink);
  ASSERT_FALSE(no_header.has_value());
  EXPECT_NE(no_header.error().message.find("line 1: not a /proc/net header"), std::string::npos);
  auto cut_header =
      ParseProcNet("  sl  local", Protocol::kTcp, Family::kIpv4, ProcNetSelect::kAll, sink);
  ASSERT_FALSE(cut_header.has_value());
  EXPECT_TRUE(sink.records.empty());
}

// ---------------------------------------------------------------------------
// ProcNetSource on a fake procfs root

class FakeProcfs : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/procnet_test.XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    root_ = pattern;
    fs::create_directories(root_ / "net");
  }
  void TearDown() override {
    std::error_code ignored;
    fs::remove_all(root_, ignored);
  }
  void InstallFixtures(std::initializer_list<const char*> names) {
    for (const char* name : names) {
      fs::copy_file(FixturePath(std::string("proc_net_") + name + ".txt"), root_ / "net" / name);
    }
  }
  fs::path root_;
};

TEST_F(FakeProcfs, StreamsInContractOrder) {
  InstallFixtures({"tcp", "tcp6", "udp", "udp6"});
  ProcNetSource source(root_.string());
  EXPECT_EQ(source.Name(), "procfs");
  RecordingSink sink;
  auto stats = source.Stream(sink);
  ASSERT_TRUE(stats.has_value()) << stats.error().message;
  EXPECT_EQ(stats->records, 43U);
  EXPECT_EQ(stats->dump_interrupted, 0U);
  EXPECT_EQ(CountOf(sink.records), kFixtureCounts);

  // Exact phases: TCP listeners (IPv4 then IPv6), the rest of TCP (IPv4 then
  // IPv6), UDP unconnected (IPv4 then IPv6), connected UDP.
  struct Phase {
    Protocol protocol;
    Family family;
    bool without_peer;
    std::size_t count;
  };
  const Phase phases[] = {
      {Protocol::kTcp, Family::kIpv4, true, 3},   {Protocol::kTcp, Family::kIpv6, true, 3},
      {Protocol::kTcp, Family::kIpv4, false, 18}, {Protocol::kTcp, Family::kIpv6, false, 12},
      {Protocol::kUdp, Family::kIpv4, true, 2},   {Protocol::kUdp, Family::kIpv6, true, 2},
      {Protocol::kUdp, Family::kIpv4, false, 2},  {Protocol::kUdp, Family::kIpv6, false, 1},
  };
  std::size_t index = 0;
  for (const Phase& phase : phases) {
    for (std::size_t i = 0; i < phase.count; ++i, ++index) {
      ASSERT_LT(index, sink.records.size());
      const SocketRecord& r = sink.records[index];
      EXPECT_EQ(r.protocol, phase.protocol) << index;
      EXPECT_EQ(r.family, phase.family) << index;
      const bool without_peer =
          r.state == (phase.protocol == Protocol::kTcp ? kTcpListen : kTcpClose);
      EXPECT_EQ(without_peer, phase.without_peer) << index << " " << Label(r);
    }
  }
  EXPECT_EQ(index, sink.records.size());
}

TEST_F(FakeProcfs, MissingIpv6FilesAreFine) {
  InstallFixtures({"tcp", "udp"});
  ProcNetSource source(root_.string());
  RecordingSink sink;
  auto stats = source.Stream(sink);
  ASSERT_TRUE(stats.has_value()) << stats.error().message;
  EXPECT_EQ(stats->records, 21U + 4U);
  for (const SocketRecord& r : sink.records) EXPECT_EQ(r.family, Family::kIpv4);
}

TEST_F(FakeProcfs, MissingTcpFileIsAnError) {
  InstallFixtures({"tcp6", "udp", "udp6"});
  ProcNetSource source(root_.string());
  RecordingSink sink;
  auto stats = source.Stream(sink);
  ASSERT_FALSE(stats.has_value());
  EXPECT_NE(stats.error().message.find((root_ / "net" / "tcp").string() + " does not exist"),
            std::string::npos)
      << stats.error().message;
  EXPECT_TRUE(sink.records.empty());
}

TEST_F(FakeProcfs, MalformedFileErrorNamesFileAndLine) {
  InstallFixtures({"tcp", "udp", "udp6"});
  std::ofstream(root_ / "net" / "tcp6") << kTcpHeader << "   0: nonsense\n";
  ProcNetSource source(root_.string());
  RecordingSink sink;
  auto stats = source.Stream(sink);
  ASSERT_FALSE(stats.has_value());
  EXPECT_NE(stats.error().message.find((root_ / "net" / "tcp6").string() + ": line 2:"),
            std::string::npos)
      << stats.error().message;
}

TEST_F(FakeProcfs, FactoryMakesTheRequestedSource) {
  InstallFixtures({"tcp", "tcp6", "udp", "udp6"});
  auto procfs = MakeSocketSource(SourceKind::kProcfs, root_.string());
  EXPECT_EQ(procfs->Name(), "procfs");
  RecordingSink sink;
  auto stats = procfs->Stream(sink);
  ASSERT_TRUE(stats.has_value()) << stats.error().message;
  EXPECT_EQ(stats->records, 43U);
  EXPECT_EQ(MakeSocketSource(SourceKind::kNetlink, root_.string())->Name(), "netlink");
  // Auto names the source its last Stream() used; netlink until then.
  EXPECT_EQ(MakeSocketSource(SourceKind::kAuto, root_.string())->Name(), "netlink");
}

TEST_F(FakeProcfs, ReadWholeFileSpansManyReads) {
  std::string big;
  for (int i = 0; big.size() < 2 * ProcNetSource::kReadChunk + 12345; ++i) {
    big += "line " + std::to_string(i) + "\n";
  }
  const fs::path path = root_ / "big";
  std::ofstream(path, std::ios::binary) << big;
  std::string read_back = "stale contents";
  auto read = ReadWholeFile(path.string(), read_back, ProcNetSource::kReadChunk);
  ASSERT_TRUE(read.has_value()) << read.error().message;
  EXPECT_TRUE(*read);
  EXPECT_EQ(read_back, big);
  // The default chunk (16 KiB, for small sysctl and netstat files) too.
  read = ReadWholeFile(path.string(), read_back);
  ASSERT_TRUE(read.has_value()) << read.error().message;
  EXPECT_EQ(read_back, big);
  auto missing = ReadWholeFile((root_ / "nope").string(), read_back);
  ASSERT_TRUE(missing.has_value());
  EXPECT_FALSE(*missing);
  auto directory = ReadWholeFile(root_.string(), read_back);
  EXPECT_FALSE(directory.has_value());  // EISDIR on read
}

TEST_F(FakeProcfs, ReadRequiredFileNamesAMissingFile) {
  const fs::path path = root_ / "small";
  std::ofstream(path, std::ios::binary) << "32768\t60999\n";
  auto text = ReadRequiredFile(path.string());
  ASSERT_TRUE(text.has_value()) << text.error().message;
  EXPECT_EQ(*text, "32768\t60999\n");
  auto missing = ReadRequiredFile((root_ / "nope").string());
  ASSERT_FALSE(missing.has_value());
  EXPECT_EQ(missing.error().message,
            "cannot read " + (root_ / "nope").string() + ": " + ErrnoText(ENOENT));
}

}  // namespace
}  // namespace socket_exporter
