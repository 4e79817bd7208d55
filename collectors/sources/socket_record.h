// One socket as the kernel reports it, independent of the source (netlink or
// /proc/net). Sources fill a record and hand it to a SocketSink; nothing keeps
// records after the call returns.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace socket_exporter {

enum class Protocol : std::uint8_t { kTcp = 0, kUdp = 1 };
enum class Family : std::uint8_t { kIpv4 = 0, kIpv6 = 1 };

// Kernel socket states (include/net/tcp_states.h). UDP uses kEstablished for
// connected sockets and kClose for unconnected ones.
enum TcpState : std::uint8_t {
  kTcpEstablished = 1,
  kTcpSynSent = 2,
  kTcpSynRecv = 3,
  kTcpFinWait1 = 4,
  kTcpFinWait2 = 5,
  kTcpTimeWait = 6,
  kTcpClose = 7,
  kTcpCloseWait = 8,
  kTcpLastAck = 9,
  kTcpListen = 10,
  kTcpClosing = 11,
  kTcpNewSynRecv = 12,
  kTcpBoundInactive = 13,
  kTcpMaxStates = 14,
};

// An address as 16 bytes; IPv4 uses the first 4 bytes and zeroes the rest.
struct IpAddress {
  Family family = Family::kIpv4;
  std::array<std::uint8_t, 16> bytes{};

  bool operator==(const IpAddress&) const = default;
  bool IsUnspecified() const;  // 0.0.0.0 or ::
  bool IsV4Mapped() const;     // ::ffff:a.b.c.d
  // ::ffff:a.b.c.d becomes a.b.c.d; every other address is returned as is.
  IpAddress Normalized() const;
  // Numeric text: "10.0.0.1", "::1" (no brackets).
  std::string ToString() const;
};

struct SocketRecord {
  Protocol protocol = Protocol::kTcp;
  Family family = Family::kIpv4;  // the socket's own family, as the kernel says
  std::uint8_t state = 0;         // TcpState value as reported by the kernel
  IpAddress local;
  IpAddress remote;
  std::uint16_t local_port = 0;   // host byte order
  std::uint16_t remote_port = 0;  // host byte order
  // For LISTEN sockets: rqueue = accept queue length, wqueue = backlog limit.
  std::uint32_t rqueue = 0;
  std::uint32_t wqueue = 0;
  std::uint32_t uid = 0;
  std::uint64_t inode = 0;
  // cgroup v2 ID (inode of the cgroup's directory) of the socket's owner, as
  // sock_diag's INET_DIAG_CGROUP_ID or the BPF walk report it; 0 = none
  // (TIME_WAIT and request sockets, the /proc/net source, old kernels).
  std::uint64_t cgroup_id = 0;
};

// Receives records as a source streams them. Implementations must not keep
// the reference past the call.
class SocketSink {
 public:
  virtual ~SocketSink() = default;
  virtual void OnSocket(const SocketRecord& record) = 0;
};

// Lower-case label names: "tcp"/"udp", "ipv4"/"ipv6".
std::string_view ProtocolName(Protocol protocol);
std::string_view FamilyName(Family family);
// TCP: kernel name in lower case ("established", ..., "bound_inactive");
// UDP: "established" for connected, "unconnected" otherwise.
std::string_view StateName(Protocol protocol, std::uint8_t state);
// Every value the `state` label of socket_connections can take, in kernel
// order ("established" ... "bound_inactive", then "unconnected", "unknown"):
// the accepted values of --filter.state.
std::vector<std::string> StateLabelValues();

}  // namespace socket_exporter
