// The usable ephemeral port set and the bind-locked ports, shared by every
// collector that reasons about ephemeral ports (ephemeral, cgroups), so the
// rules live in one place (ephemeral_collector.h explains them):
//   R = ip_local_port_range minus ip_local_reserved_ports (Load, per scrape)
//   B = ports in R held by a listener or a bound, unconnected socket, per
//       protocol, learnt from the stream (listeners come first).
//
// Thread safety: one instance per collector; one scrape at a time.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "collectors/classifier.h"
#include "collectors/sources/socket_record.h"
#include "common/ports.h"
#include "common/result.h"

namespace socket_exporter {

// "32768\t60999\n" -> {32768, 60999}.
Result<PortInterval> ParseLocalPortRange(std::string_view text);
// "" / "40000-40001,50000\n" -> intervals. Errors name the bad element.
Result<std::vector<PortInterval>> ParseReservedPorts(std::string_view text);

// What a socket does with the usable ephemeral range.
enum class EphemeralUse : std::uint8_t {
  kOutside,  // its local port is not in R
  kLocks,    // a listener or a bound socket without a peer: holds the port, bind-locks it
  kShared,   // has a peer but its port is bind-locked (accepted on a listener in R)
  kHeld,     // has a peer and holds the port towards its destination
};

class EphemeralPorts {
 public:
  // Reads <procfs_root>/sys/net/ipv4/ip_local_{port_range,reserved_ports}
  // and forgets the previous scrape's sockets.
  Result<void> Load(const std::string& procfs_root);
  // Classifies one socket and records its port (stream order).
  EphemeralUse Observe(const SocketRecord& record, const Classification& cls);

  PortInterval range() const { return range_; }
  std::uint32_t usable_count() const { return usable_count_; }
  std::uint32_t reserved_in_range() const { return reserved_in_range_; }
  // Usable ports bind-locked / held by any socket, for a protocol.
  std::uint32_t BindLockedCount(Protocol protocol) const;
  std::uint32_t UsedCount(Protocol protocol) const;

 private:
  PortInterval range_{};
  PortSet usable_;
  std::uint32_t usable_count_ = 0;
  std::uint32_t reserved_in_range_ = 0;
  std::array<PortSet, 2> bind_locked_;
  std::array<PortSet, 2> used_;
};

}  // namespace socket_exporter
