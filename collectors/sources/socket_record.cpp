#include "collectors/sources/socket_record.h"

#include <arpa/inet.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>

namespace socket_exporter {
namespace {

// ::ffff:0:0/96, the prefix the kernel uses when an AF_INET6 socket talks IPv4.
constexpr std::array<std::uint8_t, 12> kV4MappedPrefix = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

}  // namespace

bool IpAddress::IsUnspecified() const {
  const std::size_t length = family == Family::kIpv4 ? 4 : 16;
  return std::all_of(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(length),
                     [](std::uint8_t b) { return b == 0; });
}

bool IpAddress::IsV4Mapped() const {
  return family == Family::kIpv6 &&
         std::equal(kV4MappedPrefix.begin(), kV4MappedPrefix.end(), bytes.begin());
}

IpAddress IpAddress::Normalized() const {
  if (!IsV4Mapped()) return *this;
  IpAddress v4;
  v4.family = Family::kIpv4;
  std::copy(bytes.begin() + 12, bytes.end(), v4.bytes.begin());
  return v4;
}

std::string IpAddress::ToString() const {
  // INET6_ADDRSTRLEN covers both families, including the dotted tail of
  // ::ffff:a.b.c.d.
  std::array<char, INET6_ADDRSTRLEN> text{};
  const int af = family == Family::kIpv4 ? AF_INET : AF_INET6;
  if (inet_ntop(af, bytes.data(), text.data(), static_cast<socklen_t>(text.size())) == nullptr) {
    return "invalid";  // cannot happen with a 16-byte buffer and a valid af
  }
  return std::string(text.data());
}

std::string_view ProtocolName(Protocol protocol) {
  switch (protocol) {
    case Protocol::kTcp:
      return "tcp";
    case Protocol::kUdp:
      return "udp";
  }
  return "unknown";
}

std::string_view FamilyName(Family family) {
  switch (family) {
    case Family::kIpv4:
      return "ipv4";
    case Family::kIpv6:
      return "ipv6";
  }
  return "unknown";
}

std::string_view StateName(Protocol protocol, std::uint8_t state) {
  if (protocol == Protocol::kUdp) {
    // UDP borrows two TCP states: ESTABLISHED after connect(), CLOSE otherwise.
    return state == kTcpEstablished ? "established" : "unconnected";
  }
  switch (state) {
    case kTcpEstablished:
      return "established";
    case kTcpSynSent:
      return "syn_sent";
    case kTcpSynRecv:
    case kTcpNewSynRecv:  // a request socket: to users it is a half-open SYN_RECV
      return "syn_recv";
    case kTcpFinWait1:
      return "fin_wait1";
    case kTcpFinWait2:
      return "fin_wait2";
    case kTcpTimeWait:
      return "time_wait";
    case kTcpClose:
      return "close";
    case kTcpCloseWait:
      return "close_wait";
    case kTcpLastAck:
      return "last_ack";
    case kTcpListen:
      return "listen";
    case kTcpClosing:
      return "closing";
    case kTcpBoundInactive:
      return "bound_inactive";
    default:
      return "unknown";
  }
}

std::vector<std::string> StateLabelValues() {
  std::vector<std::string> values;
  for (std::uint8_t state = kTcpEstablished; state < kTcpMaxStates; ++state) {
    std::string name(StateName(Protocol::kTcp, state));
    if (std::find(values.begin(), values.end(), name) == values.end())
      values.push_back(std::move(name));  // NEW_SYN_RECV = syn_recv
  }
  values.emplace_back(StateName(Protocol::kUdp, kTcpClose));  // "unconnected"
  values.emplace_back(StateName(Protocol::kTcp, 0));          // "unknown": a future kernel state
  return values;
}

}  // namespace socket_exporter
