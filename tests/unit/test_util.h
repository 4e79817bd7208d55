// Helpers for unit tests: build records and read metric families.
#pragma once

#include <arpa/inet.h>
#include <prometheus/metric_family.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "collectors/sources/socket_record.h"

namespace socket_exporter::testing {

inline IpAddress Ip(const std::string& text) {
  IpAddress address;
  if (text.find(':') != std::string::npos) {
    address.family = Family::kIpv6;
    inet_pton(AF_INET6, text.c_str(), address.bytes.data());
  } else {
    address.family = Family::kIpv4;
    inet_pton(AF_INET, text.c_str(), address.bytes.data());
  }
  return address;
}

inline SocketRecord Tcp(std::uint8_t state, const std::string& local, std::uint16_t local_port,
                        const std::string& remote, std::uint16_t remote_port) {
  SocketRecord record;
  record.protocol = Protocol::kTcp;
  record.local = Ip(local);
  record.remote = Ip(remote);
  record.family = record.local.family;
  record.state = state;
  record.local_port = local_port;
  record.remote_port = remote_port;
  return record;
}

inline SocketRecord Udp(bool connected, const std::string& local, std::uint16_t local_port,
                        const std::string& remote, std::uint16_t remote_port) {
  SocketRecord record =
      Tcp(connected ? kTcpEstablished : kTcpClose, local, local_port, remote, remote_port);
  record.protocol = Protocol::kUdp;
  return record;
}

// Value of the sample of `name` whose labels include all of `labels`
// (summed over the rest); -1 if there is no such sample.
inline double Value(const std::vector<prometheus::MetricFamily>& families, const std::string& name,
                    const std::map<std::string, std::string>& labels) {
  double sum = 0;
  bool found = false;
  for (const auto& family : families) {
    if (family.name != name) continue;
    for (const auto& metric : family.metric) {
      bool match = true;
      for (const auto& [key, value] : labels) {
        bool has = false;
        for (const auto& label : metric.label) {
          if (label.name == key && label.value == value) has = true;
        }
        match = match && has;
      }
      if (!match) continue;
      found = true;
      sum += family.type == prometheus::MetricType::Counter ? metric.counter.value
                                                            : metric.gauge.value;
    }
  }
  return found ? sum : -1;
}

inline std::size_t SeriesCount(const std::vector<prometheus::MetricFamily>& families,
                               const std::string& name) {
  for (const auto& family : families) {
    if (family.name == name) return family.metric.size();
  }
  return 0;
}

// Time budgets are generous multiples of what the normal build takes, and
// multiplied again under the sanitizers: ASan slows our code 2-5x,
// ThreadSanitizer more (HostileConfig.ManyPortRanges: 1.5 s normal, 4.5 s
// under ASan, 10.6 s under TSan in CI).
#if defined(__SANITIZE_THREAD__)
constexpr double kSlowdown = 10.0;
#elif defined(__SANITIZE_ADDRESS__)
constexpr double kSlowdown = 4.0;
#else
constexpr double kSlowdown = 1.0;
#endif

inline double MillisecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
      .count();
}

// Prints one row of the table in docs/robustness.md.
inline void Row(const std::string& input, const std::string& outcome, double ms) {
  std::printf("HOSTILE | %s | %s | %.0f |\n", input.c_str(), outcome.c_str(), ms);
}

// Counts what a source delivers.
class CountingSink : public SocketSink {
 public:
  void OnSocket(const SocketRecord&) override { ++records; }
  std::uint64_t records = 0;
};

// Descriptors open in this process (to check that nothing leaks one).
inline std::size_t OpenFileCount() {
  std::size_t count = 0;
  for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator("/proc/self/fd")) {
    ++count;
  }
  return count;
}

// Sockets counted by "protocol family state".
using Counts = std::map<std::string, std::uint64_t>;
inline std::string Label(Protocol protocol, Family family, std::uint8_t state) {
  return std::string(ProtocolName(protocol)) + " " + std::string(FamilyName(family)) + " " +
         std::string(StateName(protocol, state));
}
inline std::string Label(const SocketRecord& r) { return Label(r.protocol, r.family, r.state); }

inline bool HasPeer(const SocketRecord& r) {
  return r.remote_port != 0 || !r.remote.IsUnspecified();
}
inline bool OwnsInboundPort(const SocketRecord& r) {
  return r.protocol == Protocol::kTcp ? r.state == kTcpListen : r.state == kTcpClose;
}

// The ordering contract of socket_source.h: per protocol, no listener or
// unconnected UDP socket after a socket with a peer. Returns the first
// violation, if any.
inline std::optional<std::string> OrderingViolation(const std::vector<SocketRecord>& records) {
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

// Keeps every record a source delivers.
class RecordingSink : public SocketSink {
 public:
  void OnSocket(const SocketRecord& record) override { records.push_back(record); }
  std::vector<SocketRecord> records;
};

// Every field equal.
inline bool SameRecord(const SocketRecord& a, const SocketRecord& b) {
  return a.protocol == b.protocol && a.family == b.family && a.state == b.state &&
         a.local == b.local && a.remote == b.remote && a.local_port == b.local_port &&
         a.remote_port == b.remote_port && a.rqueue == b.rqueue && a.wqueue == b.wqueue &&
         a.uid == b.uid && a.inode == b.inode;
}

}  // namespace socket_exporter::testing
