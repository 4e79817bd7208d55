// Live sources: the real netlink and /proc/net sources against a population
// of sockets made here, on loopback, in the test's own network namespace.
// Needs the kernel (NETLINK_SOCK_DIAG), not root. Other sockets of the
// namespace may come and go, so only sockets on ports this test bound are
// counted.
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

#include "collectors/sources/netlink_parser.h"
#include "collectors/sources/netlink_source.h"
#include "collectors/sources/procnet_source.h"
#include "collectors/sources/socket_record.h"
#include "collectors/sources/socket_sources.h"
#include "common/unique_fd.h"
#include "tests/unit/test_util.h"

namespace socket_exporter {
namespace {

using testing::Counts;
using testing::Label;
using testing::OrderingViolation;
using testing::RecordingSink;
using testing::SameRecord;

IpAddress Parse(const char* text) { return testing::Ip(text); }

// ---------------------------------------------------------------------------
// Live: the real sources against a population made here, on loopback, in the
// test's own network namespace. Other sockets of the namespace may come and
// go, so only sockets on ports this test bound are counted.

using Fd = UniqueFd;

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
      client.Reset();  // the side that closes first ends in TIME_WAIT
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      accepted.Reset();
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
      client.Reset();  // FIN first: the client end waits in TIME_WAIT
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
