// Netlink sock_diag parsing on recorded kernel replies (tests/fixtures, see
// its README for the population), on hand-made malformed input, and live:
// the real NetlinkSource and ProcNetSource against a population this test
// creates on loopback. Also the label functions of socket_record.h.
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

namespace socket_exporter {
namespace {

using Counts = std::map<std::string, std::uint64_t>;

std::string Label(Protocol protocol, Family family, std::uint8_t state) {
  return std::string(ProtocolName(protocol)) + " " + std::string(FamilyName(family)) + " " +
         std::string(StateName(protocol, state));
}
std::string Label(const SocketRecord& r) { return Label(r.protocol, r.family, r.state); }

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

bool HasPeer(const SocketRecord& r) { return r.remote_port != 0 || !r.remote.IsUnspecified(); }
bool OwnsInboundPort(const SocketRecord& r) {
  return r.protocol == Protocol::kTcp ? r.state == kTcpListen : r.state == kTcpClose;
}

// The ordering contract of socket_source.h: per protocol, no listener or
// unconnected UDP socket after a socket with a peer. Returns the first
// violation, if any.
std::optional<std::string> OrderingViolation(const std::vector<SocketRecord>& records) {
  std::set<Protocol> seen_peer;
  for (std::size_t i = 0; i < records.size(); ++i) {
    const SocketRecord& r = records[i];
    if (OwnsInboundPort(r) && seen_peer.count(r.protocol) != 0) {
      return "record " + std::to_string(i) + " (" + Label(r) + " port " +
             std::to_string(r.local_port) + ") comes after a socket with a peer";
    }
    if (HasPeer(r)) seen_peer.insert(r.protocol);
  }
  return std::nullopt;
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
  EXPECT_EQ(KernelErrorText(EPERM), "Operation not permitted (EPERM)");
}

TEST(NetlinkParser, DoneWithAnErrorReportsIt) {
  RecordingSink sink;
  auto status = ParseSockDiagBatch(DoneMessage(-ENOBUFS), Protocol::kUdp, sink);
  ASSERT_TRUE(status.has_value());
  EXPECT_TRUE(status->done);
  EXPECT_EQ(status->kernel_errno, ENOBUFS);
  EXPECT_NE(KernelErrorText(status->kernel_errno).find("ENOBUFS"), std::string::npos);
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

// ---------------------------------------------------------------------------
// Live: the real sources against a population made here, on loopback, in the
// test's own network namespace. Other sockets of the namespace may come and
// go, so only sockets on ports this test bound are counted.

class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  Fd(Fd&& other) noexcept : fd_(other.fd_) { other.fd_ = -1; }
  Fd& operator=(Fd&& other) noexcept {
    std::swap(fd_, other.fd_);
    return *this;
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const { return fd_; }
  void reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_;
};

socklen_t LoopbackAddress(int family, std::uint16_t port, sockaddr_storage& storage) {
  storage = {};
  if (family == AF_INET) {
    sockaddr_in in{};
    in.sin_family = AF_INET;
    in.sin_port = htons(port);
    in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    std::memcpy(&storage, &in, sizeof(in));
    return sizeof(in);
  }
  sockaddr_in6 in6{};
  in6.sin6_family = AF_INET6;
  in6.sin6_port = htons(port);
  in6.sin6_addr = in6addr_loopback;
  std::memcpy(&storage, &in6, sizeof(in6));
  return sizeof(in6);
}

std::uint16_t LocalPort(int fd) {
  sockaddr_storage storage{};
  socklen_t length = sizeof(storage);
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&storage), &length) != 0) return 0;
  if (storage.ss_family == AF_INET) {
    sockaddr_in in{};
    std::memcpy(&in, &storage, sizeof(in));
    return ntohs(in.sin_port);
  }
  sockaddr_in6 in6{};
  std::memcpy(&in6, &storage, sizeof(in6));
  return ntohs(in6.sin6_port);
}

// A bound loopback socket on an ephemeral port, or -1.
Fd BoundSocket(int family, int type) {
  Fd fd(::socket(family, type | SOCK_CLOEXEC, 0));
  if (fd.get() < 0) return fd;
  sockaddr_storage address;
  const socklen_t length = LoopbackAddress(family, 0, address);
  if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&address), length) != 0) return Fd();
  return fd;
}

Fd ConnectedSocket(int family, int type, std::uint16_t port) {
  Fd fd(::socket(family, type | SOCK_CLOEXEC, 0));
  sockaddr_storage address;
  const socklen_t length = LoopbackAddress(family, port, address);
  if (fd.get() < 0 ||
      ::connect(fd.get(), reinterpret_cast<const sockaddr*>(&address), length) != 0) {
    return Fd();
  }
  return fd;
}

bool KernelAtLeast(int major, int minor) {
  utsname names{};
  if (::uname(&names) != 0) return false;
  int have_major = 0;
  int have_minor = 0;
  if (std::sscanf(names.release, "%d.%d", &have_major, &have_minor) != 2) return false;
  return have_major > major || (have_major == major && have_minor >= minor);
}

struct LivePopulation {
  std::vector<Fd> fds;
  std::set<std::uint16_t> tcp_ports;  // every local port of the population
  std::set<std::uint16_t> udp_ports;
  Counts expected;  // as /proc/net shows it: without bound_inactive
  int bound_inactive = 0;
  std::string error;

  // Per family: a listener with 3 clients, 2 accepted and 1 left in the
  // queue; for IPv4 also one TIME_WAIT; a bound-only TCP socket; a UDP
  // socket and a client connected to it.
  bool Add(int family) {
    const Family fam = family == AF_INET ? Family::kIpv4 : Family::kIpv6;
    Fd listener = BoundSocket(family, SOCK_STREAM);
    if (listener.get() < 0 || ::listen(listener.get(), 16) != 0) return Failed("listener");
    const std::uint16_t port = LocalPort(listener.get());
    tcp_ports.insert(port);
    if (family == AF_INET) {
      // Before the queued client below, so that accept() returns this one.
      Fd client = ConnectedSocket(family, SOCK_STREAM, port);
      Fd accepted(::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
      if (client.get() < 0 || accepted.get() < 0) return Failed("time_wait pair");
      tcp_ports.insert(LocalPort(client.get()));
      client.reset();  // the side that closes first ends in TIME_WAIT
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      accepted.reset();
      expected[Label(Protocol::kTcp, fam, kTcpTimeWait)] += 1;
    }
    for (int i = 0; i < 3; ++i) {
      Fd client = ConnectedSocket(family, SOCK_STREAM, port);
      if (client.get() < 0) return Failed("connect");
      tcp_ports.insert(LocalPort(client.get()));
      fds.push_back(std::move(client));
      if (i < 2) {  // the third stays in the accept queue
        Fd accepted(::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
        if (accepted.get() < 0) return Failed("accept");
        fds.push_back(std::move(accepted));
      }
    }
    expected[Label(Protocol::kTcp, fam, kTcpListen)] += 1;
    expected[Label(Protocol::kTcp, fam, kTcpEstablished)] += 6;
    fds.push_back(std::move(listener));

    Fd bound = BoundSocket(family, SOCK_STREAM);
    if (bound.get() < 0) return Failed("bound-only socket");
    tcp_ports.insert(LocalPort(bound.get()));
    fds.push_back(std::move(bound));
    ++bound_inactive;

    Fd server = BoundSocket(family, SOCK_DGRAM);
    if (server.get() < 0) return Failed("udp socket");
    const std::uint16_t udp_port = LocalPort(server.get());
    udp_ports.insert(udp_port);
    Fd client = ConnectedSocket(family, SOCK_DGRAM, udp_port);
    if (client.get() < 0) return Failed("udp connect");
    udp_ports.insert(LocalPort(client.get()));
    fds.push_back(std::move(server));
    fds.push_back(std::move(client));
    expected[Label(Protocol::kUdp, fam, kTcpClose)] += 1;
    expected[Label(Protocol::kUdp, fam, kTcpEstablished)] += 1;
    return true;
  }

  bool Failed(const char* what) {
    error = std::string(what) + ": " + std::strerror(errno);
    return false;
  }

  bool Mine(const SocketRecord& r) const {
    const auto& ports = r.protocol == Protocol::kTcp ? tcp_ports : udp_ports;
    const IpAddress local = r.local.Normalized();
    const bool loopback = (local.family == Family::kIpv4 && local.bytes[0] == 127) ||
                          (local.family == Family::kIpv6 && local == Parse("::1"));
    // Both ends on ports this test holds: a socket left over from an earlier
    // run that merely talks to a reused port number does not qualify.
    return loopback && ports.count(r.local_port) != 0 &&
           (r.remote_port == 0 || ports.count(r.remote_port) != 0);
  }
};

class CountingSink : public SocketSink {
 public:
  explicit CountingSink(const LivePopulation& population) : population_(population) {}
  void OnSocket(const SocketRecord& record) override {
    all.push_back(record);
    if (population_.Mine(record)) ++mine[Label(record)];
  }
  std::vector<SocketRecord> all;
  Counts mine;

 private:
  const LivePopulation& population_;
};

bool Ipv6LoopbackUsable() { return BoundSocket(AF_INET6, SOCK_STREAM).get() >= 0; }

TEST(LiveSources, NetlinkAndProcfsAgreeOnALoopbackPopulation) {
  {
    Fd probe(::socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG));
    if (probe.get() < 0) {
      GTEST_SKIP() << "netlink sock_diag unavailable here: " << std::strerror(errno);
    }
  }
  LivePopulation population;
  ASSERT_TRUE(population.Add(AF_INET)) << population.error;
  const bool ipv6 = Ipv6LoopbackUsable();
  if (ipv6) {
    ASSERT_TRUE(population.Add(AF_INET6)) << population.error;
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(50));  // let FIN/ACKs settle

  Counts expected_netlink = population.expected;
  if (KernelAtLeast(6, 8)) {
    expected_netlink[Label(Protocol::kTcp, Family::kIpv4, kTcpBoundInactive)] = 1;
    if (ipv6) expected_netlink[Label(Protocol::kTcp, Family::kIpv6, kTcpBoundInactive)] = 1;
  }

  NetlinkSource netlink;
  CountingSink from_netlink(population);
  auto netlink_stats = netlink.Stream(from_netlink);
  if (!netlink_stats && netlink.LastFailureMeansUnavailable()) {
    GTEST_SKIP() << "netlink sock_diag unavailable: " << netlink_stats.error().message;
  }
  ASSERT_TRUE(netlink_stats.has_value()) << netlink_stats.error().message;
  EXPECT_EQ(netlink_stats->records, from_netlink.all.size());
  EXPECT_EQ(from_netlink.mine, expected_netlink);
  EXPECT_EQ(OrderingViolation(from_netlink.all), std::nullopt);
  EXPECT_TRUE(netlink.LastTcpDumpWasLegacy()) << "kernel refused TCPDIAG_GETSOCK; fallback used";

  NetlinkSourceOptions per_family_options;
  per_family_options.legacy_tcp_dump = false;
  NetlinkSource per_family(per_family_options);
  CountingSink from_per_family(population);
  auto per_family_stats = per_family.Stream(from_per_family);
  ASSERT_TRUE(per_family_stats.has_value()) << per_family_stats.error().message;
  EXPECT_FALSE(per_family.LastTcpDumpWasLegacy());
  EXPECT_EQ(from_per_family.mine, expected_netlink);
  EXPECT_EQ(OrderingViolation(from_per_family.all), std::nullopt);

  ProcNetSource procfs;
  CountingSink from_procfs(population);
  auto procfs_stats = procfs.Stream(from_procfs);
  ASSERT_TRUE(procfs_stats.has_value()) << procfs_stats.error().message;
  EXPECT_EQ(procfs_stats->records, from_procfs.all.size());
  EXPECT_EQ(from_procfs.mine, population.expected);
  EXPECT_EQ(OrderingViolation(from_procfs.all), std::nullopt);

  auto automatic = MakeSocketSource(SourceKind::kAuto, "/proc");
  CountingSink from_auto(population);
  ASSERT_TRUE(automatic->Stream(from_auto).has_value());
  EXPECT_EQ(automatic->Name(), "netlink");
  EXPECT_EQ(from_auto.mine, expected_netlink);

  // The split walk: listeners here, the rest on the background thread;
  // started by Stream() itself, then by Prefetch() as the exporter does.
  auto background = MakeSocketSource(SourceKind::kAuto, "/proc", {.background_walk = true});
  for (const bool prefetch : {false, true, true}) {
    CountingSink from_background(population);
    if (prefetch) background->Prefetch();
    auto background_stats = background->Stream(from_background);
    ASSERT_TRUE(background_stats.has_value()) << background_stats.error().message;
    EXPECT_EQ(background->Name(), "netlink");
    EXPECT_EQ(background_stats->records, from_background.all.size());
    EXPECT_EQ(from_background.mine, expected_netlink) << "prefetch " << prefetch;
    EXPECT_EQ(OrderingViolation(from_background.all), std::nullopt);
  }
}

// Connections closed client-first leave the client in TIME_WAIT, which
// holds no file: enough of them give a TCP walk of several datagrams.
struct TimeWaitPopulation {
  std::uint16_t listen_port = 0;
  int made = 0;
  std::string error;

  explicit TimeWaitPopulation(int connections) {
    Fd listener = BoundSocket(AF_INET, SOCK_STREAM);
    if (listener.get() < 0 || ::listen(listener.get(), 64) != 0) {
      error = std::string("listener: ") + std::strerror(errno);
      return;
    }
    listen_port = LocalPort(listener.get());
    for (int i = 0; i < connections; ++i) {
      Fd client = ConnectedSocket(AF_INET, SOCK_STREAM, listen_port);
      Fd server(::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
      if (client.get() < 0 || server.get() < 0) {
        error = std::string("connection: ") + std::strerror(errno);
        return;
      }
      client.reset();  // FIN first: the client end waits in TIME_WAIT
      ++made;
    }
  }
  bool Mine(const SocketRecord& r) const {
    return r.protocol == Protocol::kTcp && r.state == kTcpTimeWait && r.remote_port == listen_port;
  }
};

// Counts the population's TIME_WAIT sockets; sleeps now and then so that
// the parser falls behind the kernel and the background ring fills up.
class SlowTimeWaitSink : public SocketSink {
 public:
  SlowTimeWaitSink(const TimeWaitPopulation& population, bool slow)
      : population_(population), slow_(slow) {}
  void OnSocket(const SocketRecord& record) override {
    all.push_back(record);
    if (population_.Mine(record)) ++mine;
    if (slow_ && all.size() % 64 == 0) std::this_thread::sleep_for(std::chrono::microseconds(500));
  }
  std::vector<SocketRecord> all;
  int mine = 0;

 private:
  const TimeWaitPopulation& population_;
  bool slow_;
};

TEST(LiveSources, BackgroundWalkWithAFullRingAgreesWithOneWalk) {
  TimeWaitPopulation population(1500);
  ASSERT_TRUE(population.error.empty()) << population.error;

  NetlinkSource one_walk;
  SlowTimeWaitSink from_one_walk(population, false);
  auto one_walk_stats = one_walk.Stream(from_one_walk);
  if (!one_walk_stats && one_walk.LastFailureMeansUnavailable()) {
    GTEST_SKIP() << "netlink sock_diag unavailable: " << one_walk_stats.error().message;
  }
  ASSERT_TRUE(one_walk_stats.has_value()) << one_walk_stats.error().message;
  ASSERT_EQ(from_one_walk.mine, population.made);

  // One buffer and a slow parser: the receiving thread has to wait for the
  // parser between datagrams (1,500 records are several datagrams).
  NetlinkSourceOptions options;
  options.background_tcp_dump = true;
  options.background_buffers = 1;
  std::size_t tcp_datagrams = 0;
  options.recorder = [&](Protocol protocol, std::span<const std::uint8_t>) {
    if (protocol == Protocol::kTcp) ++tcp_datagrams;
  };
  NetlinkSource background(options);
  for (int round = 0; round < 2; ++round) {
    tcp_datagrams = 0;
    SlowTimeWaitSink from_background(population, true);
    background.Prefetch();
    auto stats = background.Stream(from_background);
    ASSERT_TRUE(stats.has_value()) << stats.error().message;
    EXPECT_TRUE(background.LastTcpDumpWasLegacy());
    EXPECT_EQ(from_background.mine, population.made) << "round " << round;
    EXPECT_EQ(stats->records, from_background.all.size());
    EXPECT_EQ(OrderingViolation(from_background.all), std::nullopt);
    EXPECT_GE(tcp_datagrams, 4U) << "the walk should span several datagrams";
  }

  // A walk started and abandoned leaves nothing behind for the next one;
  // a source destroyed with a walk under way ends it.
  background.Prefetch();
  background.Abandon();
  SlowTimeWaitSink after_abandon(population, false);
  auto stats = background.Stream(after_abandon);
  ASSERT_TRUE(stats.has_value()) << stats.error().message;
  EXPECT_EQ(after_abandon.mine, population.made);
  {
    NetlinkSource destroyed_mid_walk(options);
    destroyed_mid_walk.Prefetch();
  }
}

TEST(LiveSources, RecorderSeesEveryDatagram) {
  std::vector<std::vector<std::uint8_t>> tcp_datagrams;
  std::vector<std::vector<std::uint8_t>> udp_datagrams;
  NetlinkSourceOptions options;
  options.recorder = [&](Protocol protocol, std::span<const std::uint8_t> datagram) {
    (protocol == Protocol::kTcp ? tcp_datagrams : udp_datagrams)
        .emplace_back(datagram.begin(), datagram.end());
  };
  NetlinkSource netlink(options);
  RecordingSink streamed;
  auto stats = netlink.Stream(streamed);
  if (!stats && netlink.LastFailureMeansUnavailable()) {
    GTEST_SKIP() << "netlink sock_diag unavailable: " << stats.error().message;
  }
  ASSERT_TRUE(stats.has_value()) << stats.error().message;
  // Re-parsing the recorded datagrams gives back exactly what was streamed.
  RecordingSink replayed;
  for (const auto& d : tcp_datagrams) ASSERT_TRUE(ParseSockDiagBatch(d, Protocol::kTcp, replayed));
  for (const auto& d : udp_datagrams) ASSERT_TRUE(ParseSockDiagBatch(d, Protocol::kUdp, replayed));
  ASSERT_EQ(replayed.records.size(), streamed.records.size());
  EXPECT_EQ(stats->records, streamed.records.size());
  for (std::size_t i = 0; i < streamed.records.size(); ++i) {
    EXPECT_TRUE(SameRecord(replayed.records[i], streamed.records[i])) << i;
  }
  // One TCP request and four UDP requests, each ending in its own datagram.
  EXPECT_GE(tcp_datagrams.size(), 1U);
  EXPECT_GE(udp_datagrams.size(), 4U);
}

}  // namespace
}  // namespace socket_exporter
