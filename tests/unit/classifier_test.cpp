#include "collectors/classifier.h"

#include <gtest/gtest.h>

#include "collectors/registry.h"
#include "test_util.h"

namespace socket_exporter {
namespace {

using testing::Ip;
using testing::Tcp;
using testing::Udp;

class ClassifierTest : public ::testing::Test {
 protected:
  std::shared_ptr<const Config> config_ = DefaultConfig();
  Classifier classifier_{config_};

  std::string Service(const Classification& cls) const { return config_->ServiceName(cls.service); }
  std::string Range(const Classification& cls) const {
    return config_->port_ranges[cls.port_range].name;
  }
};

TEST_F(ClassifierTest, ListenerIsInboundOnItsLocalPort) {
  const auto cls = classifier_.Classify(Tcp(kTcpListen, "0.0.0.0", 22, "0.0.0.0", 0));
  EXPECT_EQ(cls.direction, Direction::kInbound);
  EXPECT_EQ(cls.service_port, 22);
  EXPECT_TRUE(cls.is_listener);
  EXPECT_EQ(Service(cls), "ssh");
  EXPECT_EQ(Range(cls), "well_known");
}

TEST_F(ClassifierTest, ConnectionOnAListenedPortIsInbound) {
  classifier_.Classify(Tcp(kTcpListen, "0.0.0.0", 22, "0.0.0.0", 0));
  const auto cls = classifier_.Classify(Tcp(kTcpEstablished, "10.1.1.1", 22, "10.2.2.2", 50000));
  EXPECT_EQ(cls.direction, Direction::kInbound);
  EXPECT_EQ(cls.service_port, 22);
  EXPECT_EQ(Service(cls), "ssh");
}

TEST_F(ClassifierTest, ConnectionWithoutListenerIsOutboundOnRemotePort) {
  const auto cls = classifier_.Classify(Tcp(kTcpEstablished, "10.1.1.1", 40000, "10.2.2.2", 443));
  EXPECT_EQ(cls.direction, Direction::kOutbound);
  EXPECT_EQ(cls.service_port, 443);
  EXPECT_EQ(Service(cls), "https");
  EXPECT_EQ(Range(cls), "well_known");
}

TEST_F(ClassifierTest, SpecificAddressListenerMatchesOnlyThatAddress) {
  classifier_.Classify(Tcp(kTcpListen, "127.0.0.1", 8080, "0.0.0.0", 0));
  EXPECT_EQ(
      classifier_.Classify(Tcp(kTcpEstablished, "127.0.0.1", 8080, "127.0.0.1", 50001)).direction,
      Direction::kInbound);
  const auto other = classifier_.Classify(Tcp(kTcpEstablished, "10.0.0.5", 8080, "10.9.9.9", 80));
  EXPECT_EQ(other.direction, Direction::kOutbound);
  EXPECT_EQ(Service(other), "http");
}

TEST_F(ClassifierTest, MappedIpv6MatchesIpv4ListenerAndWildcardIpv6Listener) {
  classifier_.Classify(Tcp(kTcpListen, "127.0.0.1", 8080, "0.0.0.0", 0));
  auto mapped = Tcp(kTcpEstablished, "::ffff:127.0.0.1", 8080, "::ffff:127.0.0.1", 50002);
  EXPECT_EQ(classifier_.Classify(mapped).direction, Direction::kInbound);

  classifier_.Classify(Tcp(kTcpListen, "::", 80, "::", 0));
  auto v4_to_dual_stack = Tcp(kTcpEstablished, "::ffff:10.0.0.1", 80, "::ffff:10.0.0.2", 50003);
  EXPECT_EQ(classifier_.Classify(v4_to_dual_stack).direction, Direction::kInbound);
  auto v6 = Tcp(kTcpTimeWait, "2001:db8::1", 80, "2001:db8::2", 50004);
  EXPECT_EQ(classifier_.Classify(v6).direction, Direction::kInbound);
}

TEST_F(ClassifierTest, ListenersArePerProtocol) {
  classifier_.Classify(Udp(false, "0.0.0.0", 53, "0.0.0.0", 0));
  // A TCP socket on local port 53 is not served by the UDP socket.
  const auto cls = classifier_.Classify(Tcp(kTcpEstablished, "10.0.0.1", 53, "10.0.0.2", 5353));
  EXPECT_EQ(cls.direction, Direction::kOutbound);
  EXPECT_EQ(cls.service_port, 5353);
}

TEST_F(ClassifierTest, UdpUnconnectedIsClassifiedByLocalPort) {
  const auto cls = classifier_.Classify(Udp(false, "0.0.0.0", 161, "0.0.0.0", 0));
  EXPECT_EQ(cls.direction, Direction::kInbound);
  EXPECT_EQ(Service(cls), "snmp");
  const auto ephemeral = classifier_.Classify(Udp(false, "0.0.0.0", 55000, "0.0.0.0", 0));
  EXPECT_EQ(ephemeral.direction, Direction::kInbound);
  EXPECT_EQ(Range(ephemeral), "dynamic");
  EXPECT_EQ(Service(ephemeral), "other");
}

TEST_F(ClassifierTest, UdpConnectedUsesUnconnectedSocketsAsListeners) {
  classifier_.Classify(Udp(false, "0.0.0.0", 443, "0.0.0.0", 0));
  EXPECT_EQ(classifier_.Classify(Udp(true, "10.0.0.1", 443, "10.0.0.9", 50000)).direction,
            Direction::kInbound);
  const auto client = classifier_.Classify(Udp(true, "10.0.0.1", 40001, "10.0.0.53", 53));
  EXPECT_EQ(client.direction, Direction::kOutbound);
  EXPECT_EQ(Service(client), "dns");
}

TEST_F(ClassifierTest, SocketsWithoutPeerAreInboundOnLocalPort) {
  const auto bound = classifier_.Classify(Tcp(kTcpBoundInactive, "0.0.0.0", 23, "0.0.0.0", 0));
  EXPECT_EQ(bound.direction, Direction::kInbound);
  EXPECT_EQ(Service(bound), "telnet");
  EXPECT_FALSE(bound.is_listener);
}

TEST_F(ClassifierTest, PortRangeBoundaries) {
  for (auto [port, range] :
       std::vector<std::pair<std::uint16_t, std::string>>{{0, "well_known"},
                                                          {1023, "well_known"},
                                                          {1024, "registered"},
                                                          {49151, "registered"},
                                                          {49152, "dynamic"},
                                                          {65535, "dynamic"}}) {
    const auto cls =
        classifier_.Classify(Tcp(kTcpEstablished, "10.0.0.1", 40000, "10.0.0.2", port));
    EXPECT_EQ(Range(cls), range) << port;
  }
}

}  // namespace
}  // namespace socket_exporter
