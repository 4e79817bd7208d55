// Decoding the counter maps of the events collector's BPF program
// (collectors/sources/bpf/socket_events.bpf.c) from the bytes libbpf reads:
// kept apart from the libbpf I/O (bpf_socket_events.h) so that it runs, and
// is tested and fuzzed, on recorded bytes without a kernel.
//
// A map dump (MapDump) is the map's entries one after the other, each its
// key (key_size bytes) followed by one u64 per possible CPU (host byte
// order), as bpf_map_lookup_elem returns a per-CPU value. Decoding checks
// every size and sums the per-CPU values.
//
// Thread safety: free functions without shared state.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include "collectors/sources/socket_record.h"
#include "common/result.h"

namespace socket_exporter {

// Byte layouts of the BPF program's keys (host byte order; ports in host
// order, addresses in network order).
inline constexpr std::size_t kConnectKeySize = 12;      // struct connect_key
inline constexpr std::size_t kDestinationKeySize = 44;  // struct destination_key
inline constexpr std::size_t kBindKeySize = 12;         // struct bind_key
inline constexpr std::size_t kTcpEventKeySize = 12;     // struct tcp_event_key
// enum overflow_index of the BPF program.
enum class EventMap : std::uint8_t {
  kConnects = 0,
  kDestinations = 1,
  kBinds = 2,
  kTcpEvents = 3,
  kBindArgs = 4,
};
inline constexpr std::size_t kEventMapCount = 5;
const char* EventMapName(EventMap map);

struct MapDump {
  std::size_t key_size = 0;
  std::size_t cpus = 0;
  std::vector<std::uint8_t> bytes;  // (key, cpus x u64) per entry
};

struct EventsDump {
  MapDump connects, destinations, binds, tcp_events;
  // Events not counted because their map was full, per EventMap.
  std::array<std::uint64_t, kEventMapCount> overflow{};
};

// enum connect_outcome of the BPF program.
enum class ConnectOutcome : std::uint8_t {
  kEstablished = 0,  // SYN_SENT -> ESTABLISHED
  kNoPort = 1,       // SYN_SENT -> CLOSE with source port 0 (EADDRNOTAVAIL)
  kClosed = 2,       // SYN_SENT -> CLOSE otherwise, with sk_err
};

struct ConnectCount {
  std::uint32_t netns = 0;
  Family family = Family::kIpv4;
  std::uint16_t remote_port = 0;
  ConnectOutcome outcome = ConnectOutcome::kEstablished;
  std::int32_t error = 0;  // sk_err at SYN_SENT -> CLOSE (kClosed); else 0
  std::uint64_t count = 0;
};

struct DestinationCount {
  ConnectCount connect;  // never kEstablished
  IpAddress local, remote;
};

struct BindCount {
  std::uint32_t netns = 0;
  std::uint8_t protocol = 0;  // IPPROTO_*
  Family family = Family::kIpv4;
  std::uint16_t port = 0;
  std::int32_t error = 0;
  std::uint64_t count = 0;
};

enum class TcpEventKind : std::uint8_t { kRetransmit = 0, kResetSent = 1, kResetReceived = 2 };

struct TcpEventCount {
  std::uint32_t netns = 0;
  Family family = Family::kIpv4;
  TcpEventKind kind = TcpEventKind::kRetransmit;
  bool inbound = false;
  std::uint16_t service_port = 0;
  std::uint64_t count = 0;
};

struct DecodedEvents {
  std::vector<ConnectCount> connects;
  std::vector<DestinationCount> destinations;
  std::vector<BindCount> binds;
  std::vector<TcpEventCount> tcp_events;
  std::array<std::uint64_t, kEventMapCount> overflow{};
};

// Fails on a key size that does not match, a dump that is not a whole
// number of entries, an unknown family or kind, or zero CPUs.
Result<DecodedEvents> DecodeEvents(const EventsDump& dump);

// Appends one entry to a dump (tests and the fuzz corpus build dumps).
void AppendEntry(MapDump& dump, const std::vector<std::uint8_t>& key,
                 const std::vector<std::uint64_t>& per_cpu);

}  // namespace socket_exporter
