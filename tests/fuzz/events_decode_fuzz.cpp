// libFuzzer target for DecodeEvents (collectors/sources/socket_events_decode.h):
// the bytes of the events collector's four BPF counter maps.
//
// Input: byte 0 gives the CPU count (1 + byte % 4); bytes 1-8 four
// little-endian u16 lengths; the rest is cut into the maps' bytes in order
// connects, destinations, binds, tcp_events (each length capped by what is
// left). Key sizes are the build's, so the layouts are what is fuzzed.
//
// Checked on every input:
//  - success: each map decodes to exactly bytes / entry size entries, every
//    count is the saturated sum of its per-CPU values, computed here again;
//    addresses are IPv4 or IPv6 as the family says;
//  - failure: a non-empty message.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>

#include "collectors/sources/socket_events_decode.h"
#include "tests/fuzz/fuzz_checks.h"

namespace socket_exporter::fuzz {
namespace {

std::uint64_t SumAt(const MapDump& dump, std::size_t entry) {
  const std::size_t size = dump.key_size + dump.cpus * 8;
  std::uint64_t sum = 0;
  for (std::size_t cpu = 0; cpu < dump.cpus; ++cpu) {
    std::uint64_t value;
    std::memcpy(&value, dump.bytes.data() + entry * size + dump.key_size + cpu * 8, 8);
    sum = value > std::numeric_limits<std::uint64_t>::max() - sum
              ? std::numeric_limits<std::uint64_t>::max()
              : sum + value;
  }
  return sum;
}

std::size_t Entries(const MapDump& dump) {
  return dump.bytes.size() / (dump.key_size + dump.cpus * 8);
}

}  // namespace
}  // namespace socket_exporter::fuzz

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace socket_exporter;
  using namespace socket_exporter::fuzz;
  if (size < 9) return 0;
  const std::size_t cpus = 1 + data[0] % 4;
  std::size_t lengths[4];
  for (int i = 0; i < 4; ++i) lengths[i] = data[1 + 2 * i] | (data[2 + 2 * i] << 8);
  std::size_t offset = 9;
  EventsDump dump;
  MapDump* maps[4] = {&dump.connects, &dump.destinations, &dump.binds, &dump.tcp_events};
  const std::size_t key_sizes[4] = {kConnectKeySize, kDestinationKeySize, kBindKeySize,
                                    kTcpEventKeySize};
  for (int i = 0; i < 4; ++i) {
    const std::size_t take = std::min(lengths[i], size - offset);
    maps[i]->key_size = key_sizes[i];
    maps[i]->cpus = cpus;
    maps[i]->bytes.assign(data + offset, data + offset + take);
    offset += take;
  }
  auto decoded = DecodeEvents(dump);
  if (!decoded) {
    FUZZ_CHECK(!decoded.error().message.empty(), "an error without a message");
    return 0;
  }
  FUZZ_CHECK(decoded->connects.size() == Entries(dump.connects), "connects entry count");
  FUZZ_CHECK(decoded->destinations.size() == Entries(dump.destinations),
             "destinations entry count");
  FUZZ_CHECK(decoded->binds.size() == Entries(dump.binds), "binds entry count");
  FUZZ_CHECK(decoded->tcp_events.size() == Entries(dump.tcp_events), "tcp_events entry count");
  for (std::size_t i = 0; i < decoded->connects.size(); ++i) {
    FUZZ_CHECK(decoded->connects[i].count == SumAt(dump.connects, i), "connect count");
  }
  for (std::size_t i = 0; i < decoded->destinations.size(); ++i) {
    const DestinationCount& d = decoded->destinations[i];
    FUZZ_CHECK(d.connect.count == SumAt(dump.destinations, i), "destination count");
    FUZZ_CHECK(d.connect.outcome != ConnectOutcome::kEstablished, "an established destination");
    FUZZ_CHECK(d.local.family == d.connect.family && d.remote.family == d.connect.family,
               "address family");
  }
  for (std::size_t i = 0; i < decoded->binds.size(); ++i) {
    FUZZ_CHECK(decoded->binds[i].count == SumAt(dump.binds, i), "bind count");
    FUZZ_CHECK(decoded->binds[i].error > 0, "bind error");
  }
  for (std::size_t i = 0; i < decoded->tcp_events.size(); ++i) {
    FUZZ_CHECK(decoded->tcp_events[i].count == SumAt(dump.tcp_events, i), "tcp event count");
  }
  return 0;
}
