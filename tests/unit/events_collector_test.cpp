// The events collector without a kernel: decoding of the BPF maps' bytes
// (recorded and synthetic), the classification of outcomes, and the
// families built from decoded counts.
#include "collectors/events_collector.h"

#include <gtest/gtest.h>
#include <netinet/in.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>
#include <map>
#include <string>

#include "collectors/registry.h"
#include "collectors/sources/socket_events_decode.h"
#include "config/config.h"

namespace socket_exporter {
namespace {

constexpr std::uint32_t kRecordedNetns = 4026532173U;

std::vector<std::uint8_t> ReadFixture(const std::string& name) {
  std::ifstream in(std::string(SOCKET_EXPORTER_FIXTURES_DIR) + "/events/" + name, std::ios::binary);
  EXPECT_TRUE(in) << name;
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

MapDump Recorded(const std::string& name, std::size_t key_size) {
  MapDump dump;
  dump.key_size = key_size;
  dump.cpus = 2;
  dump.bytes = ReadFixture(name + ".bin");
  return dump;
}

EventsDump RecordedDump() {
  EventsDump dump;
  dump.connects = Recorded("connects", kConnectKeySize);
  dump.destinations = Recorded("destinations", kDestinationKeySize);
  dump.binds = Recorded("binds", kBindKeySize);
  dump.tcp_events = Recorded("tcp_events", kTcpEventKeySize);
  return dump;
}

template <typename T>
void Put(std::vector<std::uint8_t>& key, std::size_t at, T value) {
  std::memcpy(key.data() + at, &value, sizeof(T));
}

std::vector<std::uint8_t> ConnectKey(std::uint32_t netns, std::uint16_t port, std::uint8_t family,
                                     std::uint8_t outcome, std::int32_t error) {
  std::vector<std::uint8_t> key(kConnectKeySize);
  Put(key, 0, netns);
  Put(key, 4, port);
  key[6] = family;
  key[7] = outcome;
  Put(key, 8, error);
  return key;
}

std::vector<std::uint8_t> TcpKey(std::uint32_t netns, std::uint16_t port, std::uint8_t kind,
                                 std::uint8_t inbound) {
  std::vector<std::uint8_t> key(kTcpEventKeySize);
  Put(key, 0, netns);
  Put(key, 4, port);
  key[6] = AF_INET;
  key[7] = kind;
  key[8] = inbound;
  return key;
}

std::shared_ptr<const Config> WebConfig() {
  auto config = ParseConfig(
      "services:\n  - name: web\n    ports: [8080, 8443]\n  - name: dns\n    ports: [53]\n",
      "test.yaml");
  EXPECT_TRUE(config.has_value());
  return *config;
}

// name{labels} -> value, labels sorted by name.
std::map<std::string, double> Flatten(const std::vector<prometheus::MetricFamily>& families) {
  std::map<std::string, double> out;
  for (const auto& family : families) {
    for (const auto& metric : family.metric) {
      auto labels = metric.label;
      std::sort(labels.begin(), labels.end(),
                [](const auto& a, const auto& b) { return a.name < b.name; });
      std::string key = family.name + "{";
      for (const auto& label : labels) key += label.name + "=" + label.value + ",";
      key += "}";
      out[key] = metric.counter.value;
    }
  }
  return out;
}

TEST(EventsDecode, RecordedMapsDecodeToWhatTheExporterShowed) {
  auto decoded = DecodeEvents(RecordedDump());
  ASSERT_TRUE(decoded.has_value()) << decoded.error().message;
  ASSERT_EQ(decoded->connects.size(), 4U);
  std::map<std::tuple<Family, std::uint16_t, std::string>, std::uint64_t> connects;
  for (const auto& c : decoded->connects) {
    EXPECT_EQ(c.netns, kRecordedNetns);
    connects[{c.family, c.remote_port, std::string(ConnectResultName(c.outcome, c.error))}] +=
        c.count;
  }
  const decltype(connects) want = {{{Family::kIpv4, 8080, "ok"}, 3},
                                   {{Family::kIpv4, 18097, "ok"}, 1},
                                   {{Family::kIpv4, 8081, "refused"}, 2},
                                   {{Family::kIpv6, 8081, "refused"}, 1}};
  EXPECT_EQ(connects, want);

  ASSERT_EQ(decoded->destinations.size(), 2U);
  for (const auto& d : decoded->destinations) {
    EXPECT_EQ(d.connect.remote_port, 8081);
    EXPECT_EQ(d.connect.error, ECONNREFUSED);
    const std::string want_address = d.connect.family == Family::kIpv4 ? "127.0.0.1" : "::1";
    EXPECT_EQ(d.local.ToString(), want_address);
    EXPECT_EQ(d.remote.ToString(), want_address);
    EXPECT_EQ(d.connect.count, d.connect.family == Family::kIpv4 ? 2U : 1U);
  }

  ASSERT_EQ(decoded->binds.size(), 1U);
  EXPECT_EQ(decoded->binds[0].port, 8083);
  EXPECT_EQ(decoded->binds[0].protocol, IPPROTO_TCP);
  EXPECT_EQ(BindResultName(decoded->binds[0].error), "addr_in_use");
  EXPECT_EQ(decoded->binds[0].count, 1U);

  std::uint64_t sent = 0, received = 0;
  for (const auto& t : decoded->tcp_events) {
    if (t.kind == TcpEventKind::kResetSent) {
      EXPECT_TRUE(t.inbound);
      sent += t.count;
    } else if (t.kind == TcpEventKind::kResetReceived) {
      EXPECT_FALSE(t.inbound);
      received += t.count;
    }
  }
  EXPECT_EQ(sent, 6U);
  EXPECT_EQ(received, 6U);
}

TEST(EventsDecode, SumsPerCpuValuesAndSaturates) {
  EventsDump dump;
  dump.connects = {kConnectKeySize, 3, {}};
  AppendEntry(dump.connects, ConnectKey(1, 80, AF_INET, 0, 0), {1, 2, 3});
  AppendEntry(dump.connects, ConnectKey(1, 81, AF_INET, 0, 0), {~0ULL, 5, 0});
  auto decoded = DecodeEvents(dump);
  ASSERT_TRUE(decoded.has_value()) << decoded.error().message;
  ASSERT_EQ(decoded->connects.size(), 2U);
  EXPECT_EQ(decoded->connects[0].count, 6U);
  EXPECT_EQ(decoded->connects[1].count, ~0ULL);
}

TEST(EventsDecode, RejectsMalformedDumps) {
  auto fails = [](EventsDump dump) { return !DecodeEvents(dump).has_value(); };
  EventsDump base;
  base.connects = {kConnectKeySize, 2, {}};
  AppendEntry(base.connects, ConnectKey(1, 80, AF_INET, 0, 0), {1, 1});
  ASSERT_FALSE(fails(base));

  EventsDump wrong_key = base;
  wrong_key.connects.key_size = 16;
  EXPECT_TRUE(fails(wrong_key));
  EventsDump partial = base;
  partial.connects.bytes.pop_back();
  EXPECT_TRUE(fails(partial));
  EventsDump no_cpus = base;
  no_cpus.connects.cpus = 0;
  EXPECT_TRUE(fails(no_cpus));
  EventsDump bad_family = base;
  AppendEntry(bad_family.connects, ConnectKey(1, 80, 7, 0, 0), {1, 1});
  EXPECT_TRUE(fails(bad_family));
  EventsDump bad_outcome = base;
  AppendEntry(bad_outcome.connects, ConnectKey(1, 80, AF_INET, 3, 0), {1, 1});
  EXPECT_TRUE(fails(bad_outcome));
  EventsDump error_without_close = base;
  AppendEntry(error_without_close.connects, ConnectKey(1, 80, AF_INET, 0, ECONNREFUSED), {1, 1});
  EXPECT_TRUE(fails(error_without_close));
  EventsDump bad_kind;
  bad_kind.tcp_events = {kTcpEventKeySize, 1, {}};
  AppendEntry(bad_kind.tcp_events, TcpKey(1, 80, 3, 0), {1});
  EXPECT_TRUE(fails(bad_kind));
}

TEST(EventsClassify, ConnectResults) {
  EXPECT_EQ(ConnectResultName(ConnectOutcome::kEstablished, 0), "ok");
  EXPECT_EQ(ConnectResultName(ConnectOutcome::kNoPort, 0), "no_ports");
  EXPECT_EQ(ConnectResultName(ConnectOutcome::kClosed, ECONNREFUSED), "refused");
  EXPECT_EQ(ConnectResultName(ConnectOutcome::kClosed, ETIMEDOUT), "timed_out");
  EXPECT_EQ(ConnectResultName(ConnectOutcome::kClosed, ECONNRESET), "reset");
  EXPECT_EQ(ConnectResultName(ConnectOutcome::kClosed, EHOSTUNREACH), "unreachable");
  EXPECT_EQ(ConnectResultName(ConnectOutcome::kClosed, ENETUNREACH), "unreachable");
  EXPECT_EQ(ConnectResultName(ConnectOutcome::kClosed, 0), "other");
  EXPECT_EQ(ConnectResultName(ConnectOutcome::kClosed, EPROTO), "other");
}

TEST(EventsClassify, BindResultsAndProtocols) {
  EXPECT_EQ(BindResultName(EADDRINUSE), "addr_in_use");
  EXPECT_EQ(BindResultName(EADDRNOTAVAIL), "addr_not_available");
  EXPECT_EQ(BindResultName(EACCES), "permission_denied");
  EXPECT_EQ(BindResultName(EINVAL), "invalid");
  EXPECT_EQ(BindResultName(ENOMEM), "other");
  EXPECT_EQ(BindProtocolName(IPPROTO_TCP), "tcp");
  EXPECT_EQ(BindProtocolName(IPPROTO_UDP), "udp");
  EXPECT_EQ(BindProtocolName(IPPROTO_SCTP), "other");
}

TEST(EventsFamilies, ServicesAddUpAndOtherNamespacesAreLeftOut) {
  DecodedEvents events;
  // Two ports of one service, one other namespace, one unnamed port.
  events.connects.push_back({1, Family::kIpv4, 8080, ConnectOutcome::kNoPort, 0, 5});
  events.connects.push_back({1, Family::kIpv4, 8443, ConnectOutcome::kNoPort, 0, 2});
  events.connects.push_back({2, Family::kIpv4, 8080, ConnectOutcome::kNoPort, 0, 100});
  events.connects.push_back({1, Family::kIpv4, 5000, ConnectOutcome::kEstablished, 0, 9});
  events.tcp_events.push_back({1, Family::kIpv4, TcpEventKind::kResetSent, true, 53, 4});
  events.tcp_events.push_back({1, Family::kIpv4, TcpEventKind::kRetransmit, false, 8080, 3});
  events.overflow[static_cast<std::size_t>(EventMap::kDestinations)] = 7;
  std::vector<prometheus::MetricFamily> out;
  BuildEventFamilies(events, *WebConfig(), EventsView{1, false, nullptr}, out);
  const auto got = Flatten(out);
  EXPECT_EQ(got.at("socket_connects_total{family=ipv4,port_range=registered,result=no_ports,"
                   "service_name=web,}"),
            7.0);
  EXPECT_EQ(got.at("socket_connects_total{family=ipv4,port_range=registered,result=ok,"
                   "service_name=other,}"),
            9.0);
  EXPECT_EQ(got.at("socket_tcp_resets_total{direction=inbound,family=ipv4,service_name=dns,"
                   "side=sent,}"),
            4.0);
  EXPECT_EQ(got.at("socket_tcp_retransmits_total{direction=outbound,family=ipv4,"
                   "service_name=web,}"),
            3.0);
  EXPECT_EQ(got.at("socket_exporter_events_dropped_total{map=destinations,}"), 7.0);
  std::size_t connect_series = 0;
  for (const auto& [key, value] : got) {
    if (key.starts_with("socket_connects_total")) ++connect_series;
  }
  EXPECT_EQ(connect_series, 2U) << "namespace 2 is not the exporter's: left out";
}

TEST(EventsFamilies, AllNamespacesAreLabelled) {
  DecodedEvents events;
  events.connects.push_back({1, Family::kIpv4, 8080, ConnectOutcome::kNoPort, 0, 5});
  events.connects.push_back({2, Family::kIpv4, 8080, ConnectOutcome::kNoPort, 0, 100});
  std::vector<prometheus::MetricFamily> out;
  BuildEventFamilies(events, *WebConfig(),
                     EventsView{1, true,
                                [](std::uint32_t inode) {
                                  return inode == 1 ? std::string("host") : std::string("pod-a");
                                }},
                     out);
  const auto got = Flatten(out);
  EXPECT_EQ(got.at("socket_connects_total{family=ipv4,netns=host,port_range=registered,"
                   "result=no_ports,service_name=web,}"),
            5.0);
  EXPECT_EQ(got.at("socket_connects_total{family=ipv4,netns=pod-a,port_range=registered,"
                   "result=no_ports,service_name=web,}"),
            100.0);
}

TEST(EventsSettings, SectionDefaultsAndErrors) {
  auto absent = ParseConfig("", "test.yaml");
  ASSERT_TRUE(absent.has_value()) << absent.error().message;
  EXPECT_EQ((*absent)->Section<EventsSettings>(kEventsCollectorName).top_destinations, 10u);
  auto bad = ParseConfig("events:\n  top_destinations: 1001\n  top_destination: 1\n", "test.yaml");
  ASSERT_FALSE(bad.has_value());
  EXPECT_EQ(bad.error().message,
            "test.yaml:2:21: events.top_destinations: expected an integer between 0 and 1000, "
            "got '1001'\n"
            "test.yaml:3:3: events: unknown key 'top_destination', did you mean "
            "'top_destinations'?");
}

TEST(EventsFamilies, TopDestinationsByFailures) {
  auto config = ParseConfig("events:\n  top_destinations: 2\n", "test.yaml");
  ASSERT_TRUE(config.has_value()) << config.error().message;
  EXPECT_EQ((*config)->Section<EventsSettings>(kEventsCollectorName).top_destinations, 2u);
  DecodedEvents events;
  auto dest = [](std::uint8_t last, std::uint16_t port, ConnectOutcome outcome, std::int32_t error,
                 std::uint64_t count) {
    DestinationCount d;
    d.connect = {1, Family::kIpv4, port, outcome, error, count};
    d.local.bytes = {127, 0, 0, 1};
    d.remote.bytes = {10, 0, 0, last};
    return d;
  };
  events.destinations.push_back(dest(1, 80, ConnectOutcome::kClosed, ECONNREFUSED, 3));
  events.destinations.push_back(dest(1, 80, ConnectOutcome::kClosed, ETIMEDOUT, 3));  // total 6
  events.destinations.push_back(dest(2, 80, ConnectOutcome::kNoPort, 0, 5));
  events.destinations.push_back(dest(3, 80, ConnectOutcome::kClosed, ECONNREFUSED, 1));
  std::vector<prometheus::MetricFamily> out;
  BuildEventFamilies(events, **config, EventsView{1, false, nullptr}, out);
  std::map<std::string, double> per_remote;
  for (const auto& family : out) {
    if (family.name != "socket_connect_destination_failures_total") continue;
    for (const auto& metric : family.metric) {
      for (const auto& label : metric.label) {
        if (label.name == "remote_address") per_remote[label.value] += metric.counter.value;
      }
    }
  }
  const std::map<std::string, double> want = {{"10.0.0.1", 6.0}, {"10.0.0.2", 5.0}};
  EXPECT_EQ(per_remote, want) << "the two destinations with the most failures, all results";
}

}  // namespace
}  // namespace socket_exporter
