// Netlink sock_diag parsing on recorded kernel replies (tests/fixtures, see
// its README for the population) and on hand-made malformed input. Also the
// label functions of socket_record.h. The live sources against real sockets
// are in tests/system/live_sources_test.cpp.
#include "collectors/sources/netlink_parser.h"

#include <arpa/inet.h>
#include <errno.h>
#include <gtest/gtest.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "collectors/sources/netlink_source.h"
#include "collectors/sources/procnet_source.h"
#include "collectors/sources/socket_record.h"
#include "collectors/sources/socket_sources.h"
#include "tests/unit/test_util.h"

namespace socket_exporter {
namespace {

using testing::Counts;
using testing::Label;
using testing::OrderingViolation;
using testing::RecordingSink;
using testing::SameRecord;

Counts CountOf(const std::vector<SocketRecord>& records) {
  Counts counts;
  for (const SocketRecord& r : records) ++counts[Label(r)];
  return counts;
}

std::string FixturePath(const std::string& name) {
  return std::string(SOCKET_EXPORTER_FIXTURES_DIR) + "/" + name;
}

std::vector<std::uint8_t> ReadBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in) << "cannot open " << path;
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// Splits a .bin fixture into its datagrams ([u32 LE length][bytes] frames).
std::vector<std::vector<std::uint8_t>> ReadFrames(const std::string& name) {
  const std::vector<std::uint8_t> bytes = ReadBytes(FixturePath(name));
  std::vector<std::vector<std::uint8_t>> frames;
  std::size_t offset = 0;
  while (offset + 4 <= bytes.size()) {
    const std::uint32_t length = static_cast<std::uint32_t>(bytes[offset]) |
                                 static_cast<std::uint32_t>(bytes[offset + 1]) << 8 |
                                 static_cast<std::uint32_t>(bytes[offset + 2]) << 16 |
                                 static_cast<std::uint32_t>(bytes[offset + 3]) << 24;
    offset += 4;
    if (offset + length > bytes.size()) break;
    frames.emplace_back(bytes.begin() + static_cast<std::ptrdiff_t>(offset),
                        bytes.begin() + static_cast<std::ptrdiff_t>(offset + length));
    offset += length;
  }
  EXPECT_EQ(offset, bytes.size()) << name << " has a truncated frame";
  EXPECT_FALSE(frames.empty()) << name;
  return frames;
}

struct ParsedFixture {
  std::vector<SocketRecord> records;
  int requests_done = 0;
};

// Parses every datagram of a fixture; every one must be well formed and end
// its request cleanly.
ParsedFixture ParseFixture(const std::string& name, Protocol protocol) {
  ParsedFixture parsed;
  RecordingSink sink;
  for (const auto& frame : ReadFrames(name)) {
    auto status = ParseSockDiagBatch(frame, protocol, sink);
    EXPECT_TRUE(status.has_value()) << name << ": " << status.error().message;
    if (!status) continue;
    EXPECT_EQ(status->kernel_errno, 0) << name;
    EXPECT_FALSE(status->dump_interrupted) << name;
    // The background walk stops receiving where the parser stops.
    EXPECT_EQ(EndsDump(frame), status->done) << name;
    if (status->done) ++parsed.requests_done;
  }
  parsed.records = std::move(sink.records);
  return parsed;
}

const SocketRecord* FindRecord(const std::vector<SocketRecord>& records, std::uint8_t state,
                               std::uint16_t local_port, std::uint16_t remote_port) {
  for (const SocketRecord& r : records) {
    if (r.state == state && r.local_port == local_port && r.remote_port == remote_port) return &r;
  }
  return nullptr;
}

// The population of tests/fixtures/README.md, as netlink reports it.
const Counts kFixtureTcpCounts = {
    {"tcp ipv4 listen", 3},         {"tcp ipv4 established", 12},   {"tcp ipv4 syn_sent", 1},
    {"tcp ipv4 fin_wait2", 1},      {"tcp ipv4 time_wait", 3},      {"tcp ipv4 close_wait", 1},
    {"tcp ipv4 bound_inactive", 1}, {"tcp ipv6 listen", 3},         {"tcp ipv6 established", 8},
    {"tcp ipv6 syn_sent", 1},       {"tcp ipv6 fin_wait2", 1},      {"tcp ipv6 time_wait", 1},
    {"tcp ipv6 close_wait", 1},     {"tcp ipv6 bound_inactive", 1},
};
const Counts kFixtureUdpCounts = {
    {"udp ipv4 unconnected", 2},
    {"udp ipv4 established", 2},
    {"udp ipv6 unconnected", 2},
    {"udp ipv6 established", 1},
};

// ---------------------------------------------------------------------------
// Recorded fixtures

TEST(NetlinkParserFixture, LegacyTcpDumpHasTheExactPopulation) {
  const ParsedFixture parsed = ParseFixture("netlink_tcp.bin", Protocol::kTcp);
  EXPECT_EQ(parsed.requests_done, 1);
  EXPECT_EQ(CountOf(parsed.records), kFixtureTcpCounts);
  EXPECT_EQ(parsed.records.size(), 38U);
}

TEST(NetlinkParserFixture, PerFamilyTcpDumpsHaveTheSamePopulation) {
  const ParsedFixture parsed = ParseFixture("netlink_tcp_v2.bin", Protocol::kTcp);
  EXPECT_EQ(parsed.requests_done, 4);
  EXPECT_EQ(CountOf(parsed.records), kFixtureTcpCounts);
}

TEST(NetlinkParserFixture, UdpDumpsHaveTheExactPopulation) {
  const ParsedFixture parsed = ParseFixture("netlink_udp.bin", Protocol::kUdp);
  EXPECT_EQ(parsed.requests_done, 4);
  EXPECT_EQ(CountOf(parsed.records), kFixtureUdpCounts);
}

TEST(NetlinkParserFixture, CgroupIdOnEveryFullSocketOnly) {
  // The recorder ran in one cgroup: every full socket carries that cgroup's
  // ID (INET_DIAG_CGROUP_ID, sent without being asked for); TIME_WAIT
  // entries are not full sockets and carry none.
  std::uint64_t id = 0;
  std::size_t full = 0;
  std::size_t time_wait = 0;
  for (const auto& [name, protocol] : {std::pair{"netlink_tcp.bin", Protocol::kTcp},
                                       std::pair{"netlink_tcp_v2.bin", Protocol::kTcp},
                                       std::pair{"netlink_udp.bin", Protocol::kUdp}}) {
    for (const SocketRecord& r : ParseFixture(name, protocol).records) {
      if (protocol == Protocol::kTcp && r.state == kTcpTimeWait) {
        EXPECT_EQ(r.cgroup_id, 0U) << name << " port " << r.local_port;
        ++time_wait;
        continue;
      }
      EXPECT_NE(r.cgroup_id, 0U) << name << " " << Label(r) << " port " << r.local_port;
      if (id == 0) id = r.cgroup_id;
      EXPECT_EQ(r.cgroup_id, id) << name << " port " << r.local_port;
      ++full;
    }
  }
  EXPECT_GT(full, 50U);
  EXPECT_EQ(time_wait, 8U);  // 4 in each TCP fixture
}

TEST(NetlinkParserFixture, SpecificTcpRecords) {
  const auto records = ParseFixture("netlink_tcp.bin", Protocol::kTcp).records;

  // Listeners: wqueue is the backlog limit, rqueue the accept-queue length.
  const SocketRecord* l8080 = FindRecord(records, kTcpListen, 8080, 0);
  ASSERT_NE(l8080, nullptr);
  EXPECT_EQ(l8080->family, Family::kIpv4);
  EXPECT_EQ(l8080->local.ToString(), "127.0.0.1");
  EXPECT_TRUE(l8080->remote.IsUnspecified());
  EXPECT_EQ(l8080->wqueue, 16U);
  EXPECT_EQ(l8080->rqueue, 0U);
  EXPECT_NE(l8080->inode, 0U);
  EXPECT_EQ(l8080->uid, 0U);

  const SocketRecord* l9090 = FindRecord(records, kTcpListen, 9090, 0);
  ASSERT_NE(l9090, nullptr);
  EXPECT_TRUE(l9090->local.IsUnspecified());
  EXPECT_EQ(l9090->local.ToString(), "0.0.0.0");
  EXPECT_EQ(l9090->wqueue, 5U);
  EXPECT_EQ(l9090->rqueue, 1U);  // the connection nobody accepted

  const SocketRecord* l8081 = FindRecord(records, kTcpListen, 8081, 0);
  ASSERT_NE(l8081, nullptr);
  EXPECT_EQ(l8081->family, Family::kIpv6);
  EXPECT_EQ(l8081->local.ToString(), "::1");
  EXPECT_EQ(l8081->wqueue, 8U);

  const SocketRecord* l9091 = FindRecord(records, kTcpListen, 9091, 0);
  ASSERT_NE(l9091, nullptr);
  EXPECT_EQ(l9091->family, Family::kIpv6);
  EXPECT_EQ(l9091->local.ToString(), "::");
  EXPECT_EQ(l9091->wqueue, 7U);

  // An IPv4 client of the dual-stack listener: AF_INET on its side ...
  const SocketRecord* client = FindRecord(records, kTcpEstablished, 40021, 9091);
  ASSERT_NE(client, nullptr);
  EXPECT_EQ(client->family, Family::kIpv4);
  EXPECT_EQ(client->remote.ToString(), "127.0.0.1");
  // ... AF_INET6 with v4-mapped addresses on the accepting side.
  const SocketRecord* accepted = FindRecord(records, kTcpEstablished, 9091, 40021);
  ASSERT_NE(accepted, nullptr);
  EXPECT_EQ(accepted->family, Family::kIpv6);
  EXPECT_TRUE(accepted->local.IsV4Mapped());
  EXPECT_EQ(accepted->local.ToString(), "::ffff:127.0.0.1");
  EXPECT_EQ(accepted->local.Normalized().ToString(), "127.0.0.1");
  EXPECT_EQ(accepted->remote.Normalized().family, Family::kIpv4);

  const SocketRecord* established = FindRecord(records, kTcpEstablished, 40001, 8080);
  ASSERT_NE(established, nullptr);
  EXPECT_EQ(established->local.ToString(), "127.0.0.1");
  EXPECT_NE(established->inode, 0U);

  // TIME_WAIT entries have no owner: zero queues, uid and inode.
  const SocketRecord* time_wait = FindRecord(records, kTcpTimeWait, 40041, 8080);
  ASSERT_NE(time_wait, nullptr);
  EXPECT_EQ(time_wait->inode, 0U);
  EXPECT_EQ(time_wait->rqueue, 0U);
  EXPECT_EQ(time_wait->wqueue, 0U);
  ASSERT_NE(FindRecord(records, kTcpTimeWait, 40051, 8081), nullptr);

  EXPECT_NE(FindRecord(records, kTcpFinWait2, 40061, 8080), nullptr);
  const SocketRecord* close_wait = FindRecord(records, kTcpCloseWait, 8080, 40061);
  ASSERT_NE(close_wait, nullptr);
  EXPECT_EQ(close_wait->rqueue, 1U);  // the peer's FIN counts as one byte
  EXPECT_NE(FindRecord(records, kTcpSynSent, 39093, 9092), nullptr);
  EXPECT_NE(FindRecord(records, kTcpSynSent, 38083, 8082), nullptr);

  // Bound-only sockets arrive as CLOSE on the wire and leave as bound_inactive.
  const SocketRecord* bound4 = FindRecord(records, kTcpBoundInactive, 7000, 0);
  ASSERT_NE(bound4, nullptr);
  EXPECT_EQ(bound4->family, Family::kIpv4);
  EXPECT_EQ(bound4->local.ToString(), "127.0.0.1");
  const SocketRecord* bound6 = FindRecord(records, kTcpBoundInactive, 7001, 0);
  ASSERT_NE(bound6, nullptr);
  EXPECT_EQ(bound6->family, Family::kIpv6);
  EXPECT_EQ(StateName(Protocol::kTcp, bound6->state), "bound_inactive");
  for (const SocketRecord& r : records) EXPECT_NE(r.state, kTcpClose) << Label(r);
}

TEST(NetlinkParserFixture, SpecificUdpRecords) {
  const auto records = ParseFixture("netlink_udp.bin", Protocol::kUdp).records;
  const SocketRecord* server = FindRecord(records, kTcpClose, 5000, 0);
  ASSERT_NE(server, nullptr);
  EXPECT_EQ(server->protocol, Protocol::kUdp);
  EXPECT_EQ(server->local.ToString(), "127.0.0.1");
  EXPECT_EQ(StateName(Protocol::kUdp, server->state), "unconnected");
  const SocketRecord* dual = FindRecord(records, kTcpClose, 5003, 0);
  ASSERT_NE(dual, nullptr);
  EXPECT_EQ(dual->family, Family::kIpv6);
  EXPECT_TRUE(dual->local.IsUnspecified());
  const SocketRecord* client = FindRecord(records, kTcpEstablished, 45001, 5000);
  ASSERT_NE(client, nullptr);
  EXPECT_EQ(client->remote.ToString(), "127.0.0.1");
  EXPECT_EQ(StateName(Protocol::kUdp, client->state), "established");
  const SocketRecord* client6 = FindRecord(records, kTcpEstablished, 45011, 5002);
  ASSERT_NE(client6, nullptr);
  EXPECT_EQ(client6->remote.ToString(), "::1");
}

TEST(NetlinkParserFixture, KernelOrderMeetsTheOrderingContract) {
  for (const char* name : {"netlink_tcp.bin", "netlink_tcp_v2.bin"}) {
    const auto records = ParseFixture(name, Protocol::kTcp).records;
    EXPECT_EQ(OrderingViolation(records), std::nullopt) << name;
  }
  const auto legacy = ParseFixture("netlink_tcp.bin", Protocol::kTcp).records;
  // The single walk's phases, in order: 6 listeners, 2 bound-only, the rest.
  ASSERT_GE(legacy.size(), 8U);
  for (std::size_t i = 0; i < 6; ++i) EXPECT_EQ(legacy[i].state, kTcpListen) << i;
  for (std::size_t i = 6; i < 8; ++i) EXPECT_EQ(legacy[i].state, kTcpBoundInactive) << i;
  const auto udp = ParseFixture("netlink_udp.bin", Protocol::kUdp).records;
  EXPECT_EQ(OrderingViolation(udp), std::nullopt);
}

// Cross-check with what `ss -tuanH` printed for the same namespace (ss 6.1
// does not show bound-inactive sockets).
TEST(NetlinkParserFixture, AgreesWithSs) {
  std::ifstream in(FixturePath("ss.txt"));
  ASSERT_TRUE(in);
  const std::map<std::string, std::string> state_names = {
      {"ESTAB", "established"},    {"LISTEN", "listen"},         {"TIME-WAIT", "time_wait"},
      {"SYN-SENT", "syn_sent"},    {"SYN-RECV", "syn_recv"},     {"FIN-WAIT-1", "fin_wait1"},
      {"FIN-WAIT-2", "fin_wait2"}, {"CLOSE-WAIT", "close_wait"}, {"LAST-ACK", "last_ack"},
      {"CLOSING", "closing"},      {"UNCONN", "unconnected"},
  };
  Counts from_ss;
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream columns(line);
    std::string netid, state, recv_q, send_q, local;
    columns >> netid >> state >> recv_q >> send_q >> local;
    ASSERT_TRUE(state_names.count(state)) << line;
    const bool v6 = !local.empty() && (local[0] == '[' || local[0] == '*');
    ++from_ss[netid + (v6 ? " ipv6 " : " ipv4 ") + state_names.at(state)];
  }
  Counts from_netlink = CountOf(ParseFixture("netlink_tcp.bin", Protocol::kTcp).records);
  for (const auto& [label, count] :
       CountOf(ParseFixture("netlink_udp.bin", Protocol::kUdp).records)) {
    from_netlink[label] = count;
  }
  from_netlink.erase("tcp ipv4 bound_inactive");
  from_netlink.erase("tcp ipv6 bound_inactive");
  EXPECT_EQ(from_ss, from_netlink);
}

// ---------------------------------------------------------------------------
// Truncated input

// Offsets where each message of a datagram ends.
std::vector<std::size_t> MessageEnds(const std::vector<std::uint8_t>& datagram) {
  std::vector<std::size_t> ends;
  std::size_t offset = 0;
  while (offset + sizeof(nlmsghdr) <= datagram.size()) {
    nlmsghdr header;
    std::memcpy(&header, datagram.data() + offset, sizeof(header));
    ends.push_back(offset + header.nlmsg_len);
    offset += (header.nlmsg_len + 3U) & ~3U;
  }
  return ends;
}

TEST(NetlinkParserTruncation, EveryPrefixOfTheFirstDatagram) {
  const auto frames = ReadFrames("netlink_tcp.bin");
  ASSERT_FALSE(frames.empty());
  const std::vector<std::uint8_t>& datagram = frames[0];
  RecordingSink full;
  ASSERT_TRUE(ParseSockDiagBatch(datagram, Protocol::kTcp, full).has_value());
  const std::vector<std::size_t> ends = MessageEnds(datagram);
  ASSERT_EQ(ends.size(), full.records.size());
  ASSERT_GT(ends.size(), 1U);

  for (std::size_t cut = 0; cut < datagram.size(); ++cut) {
    RecordingSink sink;
    const std::span<const std::uint8_t> prefix(datagram.data(), cut);
    auto status = ParseSockDiagBatch(prefix, Protocol::kTcp, sink);
    std::size_t complete = 0;
    while (complete < ends.size() && ends[complete] <= cut) ++complete;
    const bool on_boundary = cut == 0 || (complete > 0 && ends[complete - 1] == cut);
    // A cut between messages is a shorter, valid batch; anywhere else the
    // cut message is an error. Either way exactly the complete messages
    // before the cut were delivered, unchanged.
    EXPECT_EQ(status.has_value(), on_boundary) << "cut at " << cut;
    if (!status) {
      EXPECT_NE(status.error().message.find("truncated"), std::string::npos);
    }
    if (status) {
      EXPECT_FALSE(status->done);
    }
    // A thread that receives for the parser waits for more after a clean
    // cut and stops at a broken one.
    EXPECT_EQ(EndsDump(prefix), !on_boundary) << "cut at " << cut;
    ASSERT_EQ(sink.records.size(), complete) << "cut at " << cut;
    for (std::size_t i = 0; i < complete; ++i) {
      EXPECT_TRUE(SameRecord(sink.records[i], full.records[i]))
          << "cut at " << cut << ", record " << i;
    }
  }
}

// Random bytes behind a plausible header: no crash (the sanitizer build makes
// out-of-bounds reads fatal), and every delivered record has a real family.
TEST(NetlinkParserTruncation, GarbageNeverCrashes) {
  std::mt19937 random(12345);
  for (int round = 0; round < 3000; ++round) {
    std::vector<std::uint8_t> bytes(random() % 400);
    for (auto& b : bytes) b = static_cast<std::uint8_t>(random());
    if (bytes.size() >= sizeof(nlmsghdr) && round % 2 == 0) {
      nlmsghdr header{};
      header.nlmsg_len = static_cast<std::uint32_t>(random() % (bytes.size() + 8));
      header.nlmsg_type = round % 4 == 0 ? SOCK_DIAG_BY_FAMILY : TCPDIAG_GETSOCK;
      std::memcpy(bytes.data(), &header, sizeof(header));
    }
    RecordingSink sink;
    auto status = ParseSockDiagBatch(bytes, Protocol::kTcp, sink);
    for (const SocketRecord& r : sink.records) {
      EXPECT_TRUE(r.family == Family::kIpv4 || r.family == Family::kIpv6);
    }
    if (status) {
      EXPECT_EQ(status->records, sink.records.size());
    }
    // Where the parser ends the request, the receiving thread stops too
    // (otherwise it would wait for a datagram that never comes).
    if (status && status->done) {
      EXPECT_TRUE(EndsDump(bytes)) << "round " << round;
    }
  }
}

// ---------------------------------------------------------------------------
// Hand-made messages

std::vector<std::uint8_t> Message(std::uint16_t type, const void* payload, std::size_t size,
                                  std::uint16_t flags = NLM_F_MULTI) {
  nlmsghdr header{};
  header.nlmsg_len = static_cast<std::uint32_t>(sizeof(header) + size);
  header.nlmsg_type = type;
  header.nlmsg_flags = flags;
  std::vector<std::uint8_t> bytes(sizeof(header) + ((size + 3) & ~std::size_t{3}), 0);
  std::memcpy(bytes.data(), &header, sizeof(header));
  if (size > 0) std::memcpy(bytes.data() + sizeof(header), payload, size);
  return bytes;
}

std::vector<std::uint8_t> ErrorMessage(int error) {
  nlmsgerr payload{};
  payload.error = error;
  return Message(NLMSG_ERROR, &payload, sizeof(payload), 0);
}

std::vector<std::uint8_t> DoneMessage(int error) {
  return Message(NLMSG_DONE, &error, sizeof(error));
}

inet_diag_msg Ipv4Diag(std::uint8_t state, const char* src, std::uint16_t sport, const char* dst,
                       std::uint16_t dport) {
  inet_diag_msg msg{};
  msg.idiag_family = AF_INET;
  msg.idiag_state = state;
  msg.id.idiag_sport = htons(sport);
  msg.id.idiag_dport = htons(dport);
  inet_pton(AF_INET, src, &msg.id.idiag_src[0]);
  inet_pton(AF_INET, dst, &msg.id.idiag_dst[0]);
  msg.idiag_rqueue = 3;
  msg.idiag_wqueue = 128;
  msg.idiag_uid = 1000;
  msg.idiag_inode = 4242;
  return msg;
}

std::vector<std::uint8_t> DiagMessage(const inet_diag_msg& msg, std::uint16_t flags = NLM_F_MULTI) {
  return Message(SOCK_DIAG_BY_FAMILY, &msg, sizeof(msg), flags);
}

std::vector<std::uint8_t> Concat(std::initializer_list<std::vector<std::uint8_t>> parts) {
  std::vector<std::uint8_t> out;
  for (const auto& part : parts) out.insert(out.end(), part.begin(), part.end());
  return out;
}

TEST(NetlinkParser, DecodesFieldsInHostOrder) {
  const auto bytes =
      Concat({DiagMessage(Ipv4Diag(kTcpEstablished, "10.1.2.3", 443, "192.0.2.7", 51000)),
              DoneMessage(0)});
  RecordingSink sink;
  auto status = ParseSockDiagBatch(bytes, Protocol::kTcp, sink);
  ASSERT_TRUE(status.has_value()) << status.error().message;
  EXPECT_EQ(status->records, 1U);
  EXPECT_TRUE(status->done);
  EXPECT_EQ(status->kernel_errno, 0);
  ASSERT_EQ(sink.records.size(), 1U);
  const SocketRecord& r = sink.records[0];
  EXPECT_EQ(r.protocol, Protocol::kTcp);
  EXPECT_EQ(r.family, Family::kIpv4);
  EXPECT_EQ(r.state, kTcpEstablished);
  EXPECT_EQ(r.local.ToString(), "10.1.2.3");
  EXPECT_EQ(r.remote.ToString(), "192.0.2.7");
  EXPECT_EQ(r.local_port, 443);
  EXPECT_EQ(r.remote_port, 51000);
  EXPECT_EQ(r.rqueue, 3U);
  EXPECT_EQ(r.wqueue, 128U);
  EXPECT_EQ(r.uid, 1000U);
  EXPECT_EQ(r.inode, 4242U);
  // IPv4 uses only the first 4 bytes.
  for (std::size_t i = 4; i < 16; ++i) EXPECT_EQ(r.local.bytes[i], 0) << i;
}

TEST(NetlinkParser, TcpCloseIsBoundInactiveButUdpCloseIsUnconnected) {
  const auto bytes = DiagMessage(Ipv4Diag(kTcpClose, "0.0.0.0", 7000, "0.0.0.0", 0));
  RecordingSink tcp;
  ASSERT_TRUE(ParseSockDiagBatch(bytes, Protocol::kTcp, tcp).has_value());
  ASSERT_EQ(tcp.records.size(), 1U);
  EXPECT_EQ(tcp.records[0].state, kTcpBoundInactive);
  RecordingSink udp;
  ASSERT_TRUE(ParseSockDiagBatch(bytes, Protocol::kUdp, udp).has_value());
  ASSERT_EQ(udp.records.size(), 1U);
  EXPECT_EQ(udp.records[0].state, kTcpClose);
  EXPECT_EQ(udp.records[0].protocol, Protocol::kUdp);
}

TEST(NetlinkParser, Ipv6AddressesAreCopiedWhole) {
  inet_diag_msg msg{};
  msg.idiag_family = AF_INET6;
  msg.idiag_state = kTcpListen;
  msg.id.idiag_sport = htons(8443);
  inet_pton(AF_INET6, "2001:db8::42", msg.id.idiag_src);
  RecordingSink sink;
  ASSERT_TRUE(ParseSockDiagBatch(DiagMessage(msg), Protocol::kTcp, sink).has_value());
  ASSERT_EQ(sink.records.size(), 1U);
  EXPECT_EQ(sink.records[0].family, Family::kIpv6);
  EXPECT_EQ(sink.records[0].local.ToString(), "2001:db8::42");
  EXPECT_EQ(sink.records[0].remote.ToString(), "::");
  EXPECT_EQ(sink.records[0].local_port, 8443);
}

TEST(NetlinkParser, ErrorMessageReportsTheErrno) {
  const auto bytes =
      Concat({DiagMessage(Ipv4Diag(kTcpListen, "0.0.0.0", 22, "0.0.0.0", 0)), ErrorMessage(-EPERM),
              DiagMessage(Ipv4Diag(kTcpListen, "0.0.0.0", 23, "0.0.0.0", 0))});
  RecordingSink sink;
  auto status = ParseSockDiagBatch(bytes, Protocol::kTcp, sink);
  ASSERT_TRUE(status.has_value()) << status.error().message;
  EXPECT_EQ(status->kernel_errno, EPERM);
  EXPECT_TRUE(status->done);
  // What came before the error was delivered; nothing after it.
  EXPECT_EQ(status->records, 1U);
  ASSERT_EQ(sink.records.size(), 1U);
  EXPECT_EQ(sink.records[0].local_port, 22);
  EXPECT_EQ(ErrnoText(EPERM), "Operation not permitted (EPERM)");
}

TEST(NetlinkParser, DoneWithAnErrorReportsIt) {
  RecordingSink sink;
  auto status = ParseSockDiagBatch(DoneMessage(-ENOBUFS), Protocol::kUdp, sink);
  ASSERT_TRUE(status.has_value());
  EXPECT_TRUE(status->done);
  EXPECT_EQ(status->kernel_errno, ENOBUFS);
  EXPECT_NE(ErrnoText(status->kernel_errno).find("ENOBUFS"), std::string::npos);
}

TEST(NetlinkParser, EndsDumpOnDoneErrorAndOverrunOnly) {
  const auto record = DiagMessage(Ipv4Diag(kTcpListen, "0.0.0.0", 22, "0.0.0.0", 0));
  EXPECT_FALSE(EndsDump(record));
  EXPECT_FALSE(EndsDump(Concat({record, Message(NLMSG_NOOP, nullptr, 0), ErrorMessage(0)})))
      << "an ACK does not end a dump";
  EXPECT_TRUE(EndsDump(Concat({record, DoneMessage(0)})));
  EXPECT_TRUE(EndsDump(Message(NLMSG_DONE, nullptr, 0)));
  EXPECT_TRUE(EndsDump(Concat({record, ErrorMessage(-EPERM), record})));
  EXPECT_TRUE(EndsDump(Message(NLMSG_OVERRUN, nullptr, 0)));
  EXPECT_FALSE(EndsDump({})) << "an empty datagram ends nothing by itself";
}

TEST(NetlinkParser, BareDoneIsSuccess) {
  RecordingSink sink;
  auto status = ParseSockDiagBatch(Message(NLMSG_DONE, nullptr, 0), Protocol::kTcp, sink);
  ASSERT_TRUE(status.has_value());
  EXPECT_TRUE(status->done);
  EXPECT_EQ(status->kernel_errno, 0);
}

TEST(NetlinkParser, NoopAndAckAreSkippedAndBytesAfterDoneIgnored) {
  const auto bytes =
      Concat({Message(NLMSG_NOOP, nullptr, 0), ErrorMessage(0),
              DiagMessage(Ipv4Diag(kTcpListen, "0.0.0.0", 22, "0.0.0.0", 0)), DoneMessage(0),
              DiagMessage(Ipv4Diag(kTcpListen, "0.0.0.0", 23, "0.0.0.0", 0))});
  RecordingSink sink;
  auto status = ParseSockDiagBatch(bytes, Protocol::kTcp, sink);
  ASSERT_TRUE(status.has_value()) << status.error().message;
  EXPECT_EQ(status->records, 1U);
  EXPECT_TRUE(status->done);
  EXPECT_EQ(sink.records.size(), 1U);
}

TEST(NetlinkParser, DumpInterruptedFlagIsReported) {
  const auto bytes =
      DiagMessage(Ipv4Diag(kTcpListen, "0.0.0.0", 22, "0.0.0.0", 0), NLM_F_MULTI | NLM_F_DUMP_INTR);
  RecordingSink sink;
  auto status = ParseSockDiagBatch(bytes, Protocol::kTcp, sink);
  ASSERT_TRUE(status.has_value());
  EXPECT_TRUE(status->dump_interrupted);
  EXPECT_EQ(status->records, 1U);
}

TEST(NetlinkParser, CgroupIdAttributeIsRead) {
  // inet_diag_msg, then attributes as the kernel orders them: a 5-byte
  // INET_DIAG_SHUTDOWN (padded to 8), INET_DIAG_CGROUP_ID (type 21, u64).
  std::vector<std::uint8_t> payload(sizeof(inet_diag_msg) + 8 + 12, 0);
  const inet_diag_msg msg = Ipv4Diag(kTcpEstablished, "10.0.0.1", 40000, "10.0.0.2", 80);
  std::memcpy(payload.data(), &msg, sizeof(msg));
  std::size_t at = sizeof(msg);
  payload[at] = 5;
  payload[at + 2] = 8;
  at += 8;
  payload[at] = 12;
  payload[at + 2] = 21;
  const std::uint64_t id = 0x1234567890ULL;
  std::memcpy(payload.data() + at + 4, &id, sizeof(id));
  RecordingSink sink;
  auto status = ParseSockDiagBatch(Message(SOCK_DIAG_BY_FAMILY, payload.data(), payload.size()),
                                   Protocol::kTcp, sink);
  ASSERT_TRUE(status.has_value()) << status.error().message;
  ASSERT_EQ(sink.records.size(), 1U);
  EXPECT_EQ(sink.records[0].cgroup_id, id);
}

TEST(NetlinkParser, MalformedAttributesLeaveNoCgroupButParse) {
  const inet_diag_msg msg = Ipv4Diag(kTcpEstablished, "10.0.0.1", 40000, "10.0.0.2", 80);
  const std::uint64_t id = 77;
  // {attribute bytes after the message}: a cgroup attribute too short for a
  // u64; one whose length runs past the message; a zero-length attribute
  // before a valid one (the walk stops there).
  std::vector<std::vector<std::uint8_t>> cases;
  cases.push_back({8, 0, 21, 0, 1, 2, 3, 4});
  cases.push_back({40, 0, 21, 0, 1, 2, 3, 4, 5, 6, 7, 8});
  {
    std::vector<std::uint8_t> attrs = {0, 0, 8, 0, 12, 0, 21, 0};
    attrs.resize(attrs.size() + 8);
    std::memcpy(attrs.data() + 8, &id, sizeof(id));
    cases.push_back(attrs);
  }
  for (const auto& attrs : cases) {
    std::vector<std::uint8_t> payload(sizeof(msg));
    std::memcpy(payload.data(), &msg, sizeof(msg));
    payload.insert(payload.end(), attrs.begin(), attrs.end());
    RecordingSink sink;
    auto status = ParseSockDiagBatch(Message(SOCK_DIAG_BY_FAMILY, payload.data(), payload.size()),
                                     Protocol::kTcp, sink);
    ASSERT_TRUE(status.has_value()) << status.error().message;
    ASSERT_EQ(sink.records.size(), 1U);
    EXPECT_EQ(sink.records[0].cgroup_id, 0U);
  }
}

TEST(NetlinkParser, TrailingAttributesAreSkipped) {
  // inet_diag_msg followed by an 8-byte attribute, as the kernel sends it.
  std::vector<std::uint8_t> payload(sizeof(inet_diag_msg) + 8, 0);
  const inet_diag_msg msg = Ipv4Diag(kTcpListen, "0.0.0.0", 22, "0.0.0.0", 0);
  std::memcpy(payload.data(), &msg, sizeof(msg));
  payload[sizeof(msg)] = 5;  // nla_len 5, nla_type 8 (INET_DIAG_SHUTDOWN)
  payload[sizeof(msg) + 2] = 8;
  const auto bytes = Concat({Message(TCPDIAG_GETSOCK, payload.data(), payload.size()),
                             DiagMessage(Ipv4Diag(kTcpListen, "0.0.0.0", 23, "0.0.0.0", 0))});
  RecordingSink sink;
  auto status = ParseSockDiagBatch(bytes, Protocol::kTcp, sink);
  ASSERT_TRUE(status.has_value()) << status.error().message;
  ASSERT_EQ(sink.records.size(), 2U);
  EXPECT_EQ(sink.records[1].local_port, 23);
}

TEST(NetlinkParser, UnalignedBufferIsFine) {
  const auto message = DiagMessage(Ipv4Diag(kTcpEstablished, "10.0.0.1", 1, "10.0.0.2", 2));
  std::vector<std::uint8_t> shifted(message.size() + 3);
  std::memcpy(shifted.data() + 3, message.data(), message.size());
  RecordingSink sink;
  auto status =
      ParseSockDiagBatch(std::span<const std::uint8_t>(shifted).subspan(3), Protocol::kTcp, sink);
  ASSERT_TRUE(status.has_value());
  ASSERT_EQ(sink.records.size(), 1U);
  EXPECT_EQ(sink.records[0].remote.ToString(), "10.0.0.2");
}

TEST(NetlinkParser, MalformedMessagesAreErrors) {
  struct Case {
    const char* name;
    std::vector<std::uint8_t> bytes;
    const char* expected;
  };
  std::vector<Case> cases;
  {
    auto bytes = DiagMessage(Ipv4Diag(kTcpListen, "0.0.0.0", 22, "0.0.0.0", 0));
    bytes.resize(10);
    cases.push_back({"short header", bytes, "truncated message header"});
  }
  {
    auto bytes = DiagMessage(Ipv4Diag(kTcpListen, "0.0.0.0", 22, "0.0.0.0", 0));
    const std::uint32_t length = 8;
    std::memcpy(bytes.data(), &length, sizeof(length));
    cases.push_back({"nlmsg_len below header", bytes, "shorter than its header"});
  }
  {
    auto bytes = DiagMessage(Ipv4Diag(kTcpListen, "0.0.0.0", 22, "0.0.0.0", 0));
    const std::uint32_t length = 4096;
    std::memcpy(bytes.data(), &length, sizeof(length));
    cases.push_back({"nlmsg_len beyond the buffer", bytes, "truncated message"});
  }
  {
    const inet_diag_msg msg = Ipv4Diag(kTcpListen, "0.0.0.0", 22, "0.0.0.0", 0);
    cases.push_back({"short inet_diag_msg", Message(SOCK_DIAG_BY_FAMILY, &msg, 40),
                     "shorter than the 72-byte struct"});
  }
  {
    inet_diag_msg msg = Ipv4Diag(kTcpListen, "0.0.0.0", 22, "0.0.0.0", 0);
    msg.idiag_family = AF_UNIX;
    cases.push_back({"unknown family", DiagMessage(msg), "address family 1"});
  }
  {
    const std::uint32_t value = 0;
    cases.push_back(
        {"unknown type", Message(0x1234, &value, sizeof(value)), "unexpected message type"});
  }
  cases.push_back({"overrun", Message(NLMSG_OVERRUN, nullptr, 0), "NLMSG_OVERRUN"});
  {
    const std::uint16_t half = 1;
    cases.push_back(
        {"short error payload", Message(NLMSG_ERROR, &half, sizeof(half)), "NLMSG_ERROR"});
  }
  for (const Case& c : cases) {
    RecordingSink sink;
    auto status = ParseSockDiagBatch(c.bytes, Protocol::kTcp, sink);
    ASSERT_FALSE(status.has_value()) << c.name;
    EXPECT_NE(status.error().message.find(c.expected), std::string::npos)
        << c.name << ": " << status.error().message;
    EXPECT_TRUE(sink.records.empty()) << c.name;
  }
}

TEST(NetlinkParser, EmptyInputIsAnEmptyBatch) {
  RecordingSink sink;
  auto status = ParseSockDiagBatch({}, Protocol::kTcp, sink);
  ASSERT_TRUE(status.has_value());
  EXPECT_EQ(status->records, 0U);
  EXPECT_FALSE(status->done);
}

// ---------------------------------------------------------------------------
// socket_record.h label functions

TEST(SocketRecordNames, StateNames) {
  const std::pair<std::uint8_t, const char*> tcp[] = {
      {1, "established"},     {2, "syn_sent"},  {3, "syn_recv"}, {4, "fin_wait1"},
      {5, "fin_wait2"},       {6, "time_wait"}, {7, "close"},    {8, "close_wait"},
      {9, "last_ack"},        {10, "listen"},   {11, "closing"}, {12, "syn_recv"},
      {13, "bound_inactive"}, {0, "unknown"},   {14, "unknown"}, {255, "unknown"},
  };
  for (const auto& [state, name] : tcp)
    EXPECT_EQ(StateName(Protocol::kTcp, state), name) << int{state};
  EXPECT_EQ(StateName(Protocol::kUdp, 1), "established");
  EXPECT_EQ(StateName(Protocol::kUdp, 7), "unconnected");
  EXPECT_EQ(StateName(Protocol::kUdp, 10), "unconnected");
  EXPECT_EQ(ProtocolName(Protocol::kTcp), "tcp");
  EXPECT_EQ(ProtocolName(Protocol::kUdp), "udp");
  EXPECT_EQ(FamilyName(Family::kIpv4), "ipv4");
  EXPECT_EQ(FamilyName(Family::kIpv6), "ipv6");
}

IpAddress Parse(const char* text) {
  IpAddress address;
  if (std::strchr(text, ':') != nullptr) {
    address.family = Family::kIpv6;
    EXPECT_EQ(inet_pton(AF_INET6, text, address.bytes.data()), 1) << text;
  } else {
    EXPECT_EQ(inet_pton(AF_INET, text, address.bytes.data()), 1) << text;
  }
  return address;
}

TEST(SocketRecordNames, IpAddressMethods) {
  EXPECT_TRUE(Parse("0.0.0.0").IsUnspecified());
  EXPECT_TRUE(Parse("::").IsUnspecified());
  EXPECT_FALSE(Parse("127.0.0.1").IsUnspecified());
  EXPECT_FALSE(Parse("::1").IsUnspecified());
  EXPECT_TRUE(Parse("::ffff:10.0.0.1").IsV4Mapped());
  EXPECT_FALSE(Parse("::1").IsV4Mapped());
  EXPECT_FALSE(Parse("10.0.0.1").IsV4Mapped());
  EXPECT_FALSE(Parse("::10.0.0.1").IsV4Mapped());  // v4-compatible, not mapped

  const IpAddress normalized = Parse("::ffff:10.0.0.1").Normalized();
  EXPECT_EQ(normalized.family, Family::kIpv4);
  EXPECT_EQ(normalized, Parse("10.0.0.1"));
  EXPECT_EQ(normalized.ToString(), "10.0.0.1");
  EXPECT_EQ(Parse("2001:db8::1").Normalized(), Parse("2001:db8::1"));
  EXPECT_EQ(Parse("::ffff:0.0.0.0").Normalized().IsUnspecified(), true);

  EXPECT_EQ(Parse("192.168.1.254").ToString(), "192.168.1.254");
  EXPECT_EQ(Parse("2001:db8:0:0:1:0:0:1").ToString(), "2001:db8::1:0:0:1");
  EXPECT_EQ(Parse("::ffff:10.0.0.1").ToString(), "::ffff:10.0.0.1");
  EXPECT_EQ(IpAddress{}.ToString(), "0.0.0.0");
}

}  // namespace
}  // namespace socket_exporter
