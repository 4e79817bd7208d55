// Micro-benchmarks of the per-record user-space work of a scrape, to catch
// regressions (records per second; BENCHMARKS.md has the baseline):
//
//   BM_ParseFixture          ParseSockDiagBatch over the recorded legacy TCP
//                            dump (tests/fixtures/netlink_tcp.bin)
//   BM_ParseFullDatagram     ParseSockDiagBatch over a full ~32 KiB datagram
//                            synthesized from a recorded message, as the
//                            kernel sends them at scale
//   BM_Classify              Classifier::Classify alone
//   BM_Observe/<collector>   Classify + one collector's Observe
//   BM_ObserveDefault        Classify + every default socket collector, as
//                            the scrape's fan-out does
//   BM_ParseAndObserve       the two together: datagram bytes to counts
//   BM_Scrape/N              Begin + N records + Finish of the default
//                            collectors: per-scrape fixed costs included
//   BM_Serialize/N           prometheus-cpp's text format of those families
//
// The synthetic population mirrors bench/run_bench.py: listeners on a few
// ports, each connection seen from both ends (an inbound server socket and
// an outbound client socket to one of several destinations), 1 in 4 IPv6.
//
// Thread safety: single-threaded, like a scrape.
#include <arpa/inet.h>
#include <benchmark/benchmark.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <prometheus/text_serializer.h>

#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "collectors/classifier.h"
#include "collectors/collector.h"
#include "collectors/registry.h"
#include "collectors/sources/netlink_parser.h"
#include "collectors/sources/socket_record.h"
#include "config/config.h"

namespace socket_exporter {
namespace {

// ---- inputs ---------------------------------------------------------------------

std::vector<std::vector<std::uint8_t>> ReadFrames(const std::string& name) {
  const std::string path = std::string(SOCKET_EXPORTER_FIXTURES_DIR) + "/" + name;
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path);
  const std::vector<std::uint8_t> bytes((std::istreambuf_iterator<char>(in)),
                                        std::istreambuf_iterator<char>());
  std::vector<std::vector<std::uint8_t>> frames;
  std::size_t offset = 0;
  while (offset + 4 <= bytes.size()) {
    std::uint32_t length = 0;
    std::memcpy(&length, bytes.data() + offset, 4);
    offset += 4;
    if (offset + length > bytes.size()) throw std::runtime_error("truncated fixture " + path);
    frames.emplace_back(bytes.begin() + static_cast<std::ptrdiff_t>(offset),
                        bytes.begin() + static_cast<std::ptrdiff_t>(offset + length));
    offset += length;
  }
  return frames;
}

// The first ESTABLISHED socket message of the recorded legacy dump, exactly
// as the kernel sent it (header, inet_diag_msg and the attributes the kernel
// always adds).
std::vector<std::uint8_t> RecordedEstablishedMessage() {
  for (const auto& frame : ReadFrames("netlink_tcp.bin")) {
    std::size_t offset = 0;
    while (offset + sizeof(nlmsghdr) <= frame.size()) {
      nlmsghdr header;
      std::memcpy(&header, frame.data() + offset, sizeof(header));
      if (header.nlmsg_len < sizeof(nlmsghdr) || offset + header.nlmsg_len > frame.size()) break;
      if (header.nlmsg_type == TCPDIAG_GETSOCK &&
          header.nlmsg_len >= sizeof(nlmsghdr) + sizeof(inet_diag_msg)) {
        inet_diag_msg msg;
        std::memcpy(&msg, frame.data() + offset + sizeof(nlmsghdr), sizeof(msg));
        if (msg.idiag_state == kTcpEstablished) {
          return {frame.begin() + static_cast<std::ptrdiff_t>(offset),
                  frame.begin() + static_cast<std::ptrdiff_t>(offset + header.nlmsg_len)};
        }
      }
      offset += (header.nlmsg_len + 3U) & ~3U;
    }
  }
  throw std::runtime_error("no ESTABLISHED message in netlink_tcp.bin");
}

// A datagram as large as the kernel fills them (~32 KiB), of copies of the
// recorded message with varying local ports.
std::vector<std::uint8_t> FullDatagram(std::size_t* records) {
  const std::vector<std::uint8_t> message = RecordedEstablishedMessage();
  const std::size_t stride = (message.size() + 3U) & ~std::size_t{3};
  std::vector<std::uint8_t> datagram;
  std::size_t count = 0;
  while (datagram.size() + stride <= 32 * 1024 - 64) {
    const std::size_t at = datagram.size();
    datagram.insert(datagram.end(), message.begin(), message.end());
    datagram.resize(at + stride, 0);
    inet_diag_msg msg;
    std::memcpy(&msg, datagram.data() + at + sizeof(nlmsghdr), sizeof(msg));
    msg.id.idiag_sport = htons(static_cast<std::uint16_t>(20000 + count));
    std::memcpy(datagram.data() + at + sizeof(nlmsghdr), &msg, sizeof(msg));
    ++count;
  }
  *records = count;
  return datagram;
}

IpAddress V4(std::uint8_t last) {
  IpAddress a;
  a.family = Family::kIpv4;
  a.bytes[0] = 127;
  a.bytes[3] = last;
  return a;
}
IpAddress V6Loopback() {
  IpAddress a;
  a.family = Family::kIpv6;
  a.bytes[15] = 1;
  return a;
}

// Listeners first, then connections from both ends, as the source delivers.
std::vector<SocketRecord> Population(std::size_t connections) {
  constexpr std::uint16_t kPorts[] = {1000, 1001, 1002, 1003};
  std::vector<SocketRecord> records;
  for (std::uint16_t port : kPorts) {
    SocketRecord l4;
    l4.state = kTcpListen;
    l4.local_port = port;
    l4.wqueue = 4096;
    records.push_back(l4);
    SocketRecord l6 = l4;
    l6.family = Family::kIpv6;
    l6.local = V6Loopback();
    l6.remote = IpAddress{Family::kIpv6, {}};
    records.push_back(l6);
  }
  for (std::size_t i = 0; i < connections; ++i) {
    const std::uint16_t port = kPorts[i % std::size(kPorts)];
    const bool v6 = i % 4 == 3;
    SocketRecord client;
    client.family = v6 ? Family::kIpv6 : Family::kIpv4;
    client.state = i % 10 == 9 ? kTcpFinWait2 : kTcpEstablished;
    client.local = v6 ? V6Loopback() : V4(1);
    client.remote = v6 ? V6Loopback() : V4(static_cast<std::uint8_t>(1 + i % 3));
    client.local_port = static_cast<std::uint16_t>(1024 + (i * 7) % 64000);
    client.remote_port = port;
    SocketRecord server = client;
    server.state = i % 10 == 9 ? kTcpCloseWait : kTcpEstablished;
    std::swap(server.local, server.remote);
    std::swap(server.local_port, server.remote_port);
    records.push_back(client);
    records.push_back(server);
  }
  return records;
}

// ---- sinks -------------------------------------------------------------------------

class CountingSink : public SocketSink {
 public:
  void OnSocket(const SocketRecord& record) override { sum_ += record.local_port; }
  std::uint64_t sum() const { return sum_; }

 private:
  std::uint64_t sum_ = 0;
};

// What the scrape's fan-out does for every record.
class FanOutSink : public SocketSink {
 public:
  FanOutSink(std::shared_ptr<const Config> config, std::vector<Collector*> collectors)
      : classifier_(std::move(config)), collectors_(std::move(collectors)) {}
  void OnSocket(const SocketRecord& record) override {
    const Classification cls = classifier_.Classify(record);
    for (Collector* c : collectors_) c->Observe(record, cls);
  }

 private:
  Classifier classifier_;
  std::vector<Collector*> collectors_;
};

struct DefaultCollectors {
  std::vector<std::unique_ptr<Collector>> owned;
  std::vector<Collector*> socket_collectors;
  ScrapeContext context;

  explicit DefaultCollectors(std::string_view only = {}) {
    context.config = DefaultConfig();
    for (const CollectorInfo& info : AllCollectors()) {
      if (only.empty() ? !info.enabled_by_default : info.name != only) continue;
      auto collector = info.make();
      if (!collector->UsesSockets()) continue;
      socket_collectors.push_back(collector.get());
      owned.push_back(std::move(collector));
    }
  }
  bool Begin() {
    for (Collector* c : socket_collectors) {
      if (!c->Begin(context)) return false;
    }
    return true;
  }
  std::size_t Finish() {
    std::vector<prometheus::MetricFamily> out;
    for (Collector* c : socket_collectors) (void)c->Finish(out);
    return out.size();
  }
};

// ---- benchmarks ------------------------------------------------------------------

void BM_ParseFixture(benchmark::State& state) {
  const auto frames = ReadFrames("netlink_tcp.bin");
  std::int64_t records = 0;
  for (auto _ : state) {
    CountingSink sink;
    for (const auto& frame : frames) {
      auto status = ParseSockDiagBatch(frame, Protocol::kTcp, sink);
      records += static_cast<std::int64_t>(status->records);
    }
    benchmark::DoNotOptimize(sink.sum());
  }
  state.SetItemsProcessed(records);
}
BENCHMARK(BM_ParseFixture);

void BM_ParseFullDatagram(benchmark::State& state) {
  std::size_t per_datagram = 0;
  const auto datagram = FullDatagram(&per_datagram);
  CountingSink sink;
  for (auto _ : state) {
    auto status = ParseSockDiagBatch(datagram, Protocol::kTcp, sink);
    benchmark::DoNotOptimize(status);
  }
  benchmark::DoNotOptimize(sink.sum());
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * per_datagram));
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * datagram.size()));
  state.counters["records_per_datagram"] = static_cast<double>(per_datagram);
}
BENCHMARK(BM_ParseFullDatagram);

void BM_Classify(benchmark::State& state) {
  const auto records = Population(50000);
  const auto config = DefaultConfig();
  for (auto _ : state) {
    Classifier classifier(config);
    for (const SocketRecord& r : records) benchmark::DoNotOptimize(classifier.Classify(r));
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * records.size()));
}
BENCHMARK(BM_Classify)->Unit(benchmark::kMillisecond);

void ObserveWith(benchmark::State& state, std::string_view only) {
  const auto records = Population(50000);
  DefaultCollectors collectors(only);
  if (collectors.socket_collectors.empty()) {
    state.SkipWithError("no such socket collector");
    return;
  }
  for (auto _ : state) {
    state.PauseTiming();
    if (!collectors.Begin()) {
      state.SkipWithError("Begin failed (reads /proc/sys/net/ipv4)");
      return;
    }
    state.ResumeTiming();
    FanOutSink sink(collectors.context.config, collectors.socket_collectors);
    for (const SocketRecord& r : records) sink.OnSocket(r);
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * records.size()));
}

void BM_Observe(benchmark::State& state, const char* collector) { ObserveWith(state, collector); }
BENCHMARK_CAPTURE(BM_Observe, connections, "connections")->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Observe, ephemeral, "ephemeral")->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Observe, listeners, "listeners")->Unit(benchmark::kMillisecond);

void BM_ObserveDefault(benchmark::State& state) { ObserveWith(state, {}); }
BENCHMARK(BM_ObserveDefault)->Unit(benchmark::kMillisecond);

// Records of the population encoded as kernel messages (the recorded
// message's attributes kept), in full datagrams.
std::vector<std::vector<std::uint8_t>> EncodePopulation(const std::vector<SocketRecord>& records) {
  const std::vector<std::uint8_t> message = RecordedEstablishedMessage();
  const std::size_t stride = (message.size() + 3U) & ~std::size_t{3};
  std::vector<std::vector<std::uint8_t>> datagrams(1);
  for (const SocketRecord& r : records) {
    if (datagrams.back().size() + stride > 32 * 1024 - 64) datagrams.emplace_back();
    auto& d = datagrams.back();
    const std::size_t at = d.size();
    d.insert(d.end(), message.begin(), message.end());
    d.resize(at + stride, 0);
    inet_diag_msg msg;
    std::memcpy(&msg, d.data() + at + sizeof(nlmsghdr), sizeof(msg));
    msg.idiag_family = r.family == Family::kIpv4 ? AF_INET : AF_INET6;
    msg.idiag_state = r.state;
    msg.id.idiag_sport = htons(r.local_port);
    msg.id.idiag_dport = htons(r.remote_port);
    std::memcpy(msg.id.idiag_src, r.local.bytes.data(), 16);
    std::memcpy(msg.id.idiag_dst, r.remote.bytes.data(), 16);
    std::memcpy(d.data() + at + sizeof(nlmsghdr), &msg, sizeof(msg));
  }
  return datagrams;
}

void BM_ParseAndObserve(benchmark::State& state) {
  const auto records = Population(50000);
  const auto datagrams = EncodePopulation(records);
  DefaultCollectors collectors;
  for (auto _ : state) {
    state.PauseTiming();
    if (!collectors.Begin()) {
      state.SkipWithError("Begin failed");
      return;
    }
    state.ResumeTiming();
    FanOutSink sink(collectors.context.config, collectors.socket_collectors);
    for (const auto& d : datagrams)
      benchmark::DoNotOptimize(ParseSockDiagBatch(d, Protocol::kTcp, sink));
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * records.size()));
}
BENCHMARK(BM_ParseAndObserve)->Unit(benchmark::kMillisecond);

void BM_Scrape(benchmark::State& state) {
  const auto records = Population(static_cast<std::size_t>(state.range(0)) / 2);
  DefaultCollectors collectors;
  std::size_t families = 0;
  for (auto _ : state) {
    if (!collectors.Begin()) {
      state.SkipWithError("Begin failed");
      return;
    }
    FanOutSink sink(collectors.context.config, collectors.socket_collectors);
    for (const SocketRecord& r : records) sink.OnSocket(r);
    families = collectors.Finish();
  }
  state.counters["families"] = static_cast<double>(families);
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * records.size()));
}
BENCHMARK(BM_Scrape)->Arg(1000)->Arg(100000)->Unit(benchmark::kMillisecond);

// prometheus-cpp's text serialization of the default collectors' families
// after a scrape of N records (what the exposer does with every answer).
void BM_Serialize(benchmark::State& state) {
  const auto records = Population(static_cast<std::size_t>(state.range(0)) / 2);
  DefaultCollectors collectors;
  if (!collectors.Begin()) {
    state.SkipWithError("Begin failed");
    return;
  }
  FanOutSink sink(collectors.context.config, collectors.socket_collectors);
  for (const SocketRecord& r : records) sink.OnSocket(r);
  std::vector<prometheus::MetricFamily> families;
  for (Collector* c : collectors.socket_collectors) (void)c->Finish(families);
  std::size_t series = 0;
  for (const auto& family : families) series += family.metric.size();
  const prometheus::TextSerializer serializer;
  std::size_t bytes = 0;
  for (auto _ : state) bytes = serializer.Serialize(families).size();
  state.counters["series"] = static_cast<double>(series);
  state.counters["bytes"] = static_cast<double>(bytes);
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * series));
}
BENCHMARK(BM_Serialize)->Arg(1000)->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace socket_exporter

BENCHMARK_MAIN();
