#include "collectors/sources/netlink_parser.h"

#include <arpa/inet.h>
#include <fmt/format.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstring>
#include <limits>

namespace socket_exporter {
namespace {

// Own equivalents of NLMSG_ALIGN / NLMSG_HDRLEN: the macros use C casts,
// which the project's warnings reject. Netlink aligns every message to 4.
constexpr std::size_t kNetlinkAlignTo = 4;
constexpr std::size_t NetlinkAlign(std::size_t length) {
  return (length + kNetlinkAlignTo - 1) & ~(kNetlinkAlignTo - 1);
}
constexpr std::size_t kHeaderLength = NetlinkAlign(sizeof(nlmsghdr));
static_assert(kHeaderLength == 16, "nlmsghdr is 16 bytes on Linux");
static_assert(sizeof(inet_diag_msg) == 72, "inet_diag_msg layout changed");

// Copies a T out of bytes at offset. The caller has checked the bounds.
// memcpy, never a pointer cast: the buffer may be any alignment (a recorded
// fixture, a subspan) and the bytes are not a T object.
template <typename T>
T Load(std::span<const std::uint8_t> bytes, std::size_t offset) {
  T value;
  std::memcpy(&value, bytes.data() + offset, sizeof(T));
  return value;
}

void FillAddress(const std::uint32_t (&words)[4], Family family, IpAddress& out) {
  out.family = family;
  out.bytes.fill(0);
  // idiag_src/idiag_dst hold the address in network byte order: for IPv4
  // the 4 bytes of word 0, for IPv6 all 16 bytes.
  std::memcpy(out.bytes.data(), words, family == Family::kIpv4 ? 4 : 16);
}

// The kernel reports 0 or a negative errno; this is its magnitude. INT_MIN,
// which only a corrupt message can carry, has no positive int: it becomes
// INT_MAX, still nonzero, so still an error (negating it would overflow).
int ErrnoMagnitude(int error) {
  if (error == std::numeric_limits<int>::min()) return std::numeric_limits<int>::max();
  return error < 0 ? -error : error;
}

// INET_DIAG_CGROUP_ID from the attributes after an inet_diag_msg; 0 if
// absent or malformed. The kernel sends it unconditionally for full sockets
// (inet_diag_msg_attrs_fill, CONFIG_SOCK_CGROUP_DATA), never for TIME_WAIT
// or request sockets. Attributes are {u16 len, u16 type} + value, 4-aligned.
std::uint64_t FindCgroupId(std::span<const std::uint8_t> bytes, std::size_t offset,
                           std::size_t end) {
  constexpr std::uint16_t kCgroupIdType = 21;  // INET_DIAG_CGROUP_ID (kernel 5.8+ headers)
  constexpr std::size_t kAttrHeader = 4;
  while (end - offset >= kAttrHeader) {
    const auto length = Load<std::uint16_t>(bytes, offset);
    const auto type = Load<std::uint16_t>(bytes, offset + 2);
    if (length < kAttrHeader || length > end - offset) return 0;
    // NLA_F_NESTED / NLA_F_NET_BYTEORDER live in the top bits of the type.
    if ((type & 0x3FFFU) == kCgroupIdType && length >= kAttrHeader + sizeof(std::uint64_t)) {
      return Load<std::uint64_t>(bytes, offset + kAttrHeader);
    }
    const std::size_t step = NetlinkAlign(length);
    if (step >= end - offset) return 0;
    offset += step;
  }
  return 0;
}

}  // namespace

bool EndsDump(std::span<const std::uint8_t> bytes) {
  std::size_t offset = 0;
  while (offset < bytes.size()) {
    const std::size_t remaining = bytes.size() - offset;
    if (remaining < kHeaderLength) return true;
    const auto header = Load<nlmsghdr>(bytes, offset);
    if (header.nlmsg_len < kHeaderLength || header.nlmsg_len > remaining) return true;
    switch (header.nlmsg_type) {
      case NLMSG_DONE:
      case NLMSG_OVERRUN:
        return true;
      case NLMSG_ERROR: {
        if (header.nlmsg_len - kHeaderLength < sizeof(int)) return true;
        if (Load<int>(bytes, offset + kHeaderLength) != 0) return true;
        break;
      }
      default:
        break;
    }
    offset += NetlinkAlign(header.nlmsg_len);
  }
  return false;
}

Result<NetlinkBatchStatus> ParseSockDiagBatch(std::span<const std::uint8_t> bytes,
                                              Protocol protocol, SocketSink& sink) {
  NetlinkBatchStatus status;
  SocketRecord record;
  record.protocol = protocol;

  std::size_t offset = 0;
  while (offset < bytes.size()) {
    const std::size_t remaining = bytes.size() - offset;
    // The checks NLMSG_OK makes, made before anything is read.
    if (remaining < kHeaderLength) {
      return Fail(
          fmt::format("netlink: truncated message header at byte {}: {} bytes left, need {}",
                      offset, remaining, kHeaderLength));
    }
    const auto header = Load<nlmsghdr>(bytes, offset);
    if (header.nlmsg_len < kHeaderLength) {
      return Fail(
          fmt::format("netlink: message at byte {} has nlmsg_len {}, shorter than its header",
                      offset, header.nlmsg_len));
    }
    if (header.nlmsg_len > remaining) {
      return Fail(
          fmt::format("netlink: truncated message at byte {}: nlmsg_len {} but {} bytes left",
                      offset, header.nlmsg_len, remaining));
    }
    if ((header.nlmsg_flags & NLM_F_DUMP_INTR) != 0) status.dump_interrupted = true;

    const std::size_t payload_offset = offset + kHeaderLength;
    const std::size_t payload_length = header.nlmsg_len - kHeaderLength;

    switch (header.nlmsg_type) {
      case NLMSG_NOOP:
        break;
      case NLMSG_DONE: {
        // The kernel appends the dump's final status as an int (0 or a
        // negative errno). Some netlink families send a bare header; treat
        // that as success.
        if (payload_length >= sizeof(int)) {
          status.kernel_errno = ErrnoMagnitude(Load<int>(bytes, payload_offset));
        }
        status.done = true;
        return status;
      }
      case NLMSG_ERROR: {
        if (payload_length < sizeof(int)) {
          return Fail(fmt::format("netlink: NLMSG_ERROR at byte {} has a {}-byte payload, need {}",
                                  offset, payload_length, sizeof(int)));
        }
        const int error = Load<int>(bytes, payload_offset);
        if (error == 0) break;  // an ACK; we never ask for one, but it is harmless
        status.kernel_errno = ErrnoMagnitude(error);
        status.done = true;
        return status;
      }
      case NLMSG_OVERRUN:
        return Fail(
            fmt::format("netlink: NLMSG_OVERRUN at byte {}: the kernel dropped data", offset));
      case SOCK_DIAG_BY_FAMILY:
      case TCPDIAG_GETSOCK: {
        // Both reply types carry an inet_diag_msg, possibly followed by
        // attributes we did not ask for and ignore.
        if (payload_length < sizeof(inet_diag_msg)) {
          return Fail(fmt::format(
              "netlink: inet_diag_msg at byte {} is {} bytes, shorter than the {}-byte struct",
              offset, payload_length, sizeof(inet_diag_msg)));
        }
        const auto msg = Load<inet_diag_msg>(bytes, payload_offset);
        if (msg.idiag_family == AF_INET) {
          record.family = Family::kIpv4;
        } else if (msg.idiag_family == AF_INET6) {
          record.family = Family::kIpv6;
        } else {
          return Fail(fmt::format("netlink: inet_diag_msg at byte {} has address family {}", offset,
                                  msg.idiag_family));
        }
        record.state = msg.idiag_state;
        // Bound-only TCP sockets (bind() without listen/connect) come from
        // the kernel's bhash2 walk with sk_state CLOSE: TCP_BOUND_INACTIVE is
        // a pseudo-state for requests only. No other TCP socket in a dump is
        // in CLOSE (a socket leaves the listening and established hashes
        // before its state becomes CLOSE), so CLOSE means bound_inactive.
        if (protocol == Protocol::kTcp && record.state == kTcpClose)
          record.state = kTcpBoundInactive;
        FillAddress(msg.id.idiag_src, record.family, record.local);
        FillAddress(msg.id.idiag_dst, record.family, record.remote);
        record.local_port = ntohs(msg.id.idiag_sport);
        record.remote_port = ntohs(msg.id.idiag_dport);
        record.rqueue = msg.idiag_rqueue;
        record.wqueue = msg.idiag_wqueue;
        record.uid = msg.idiag_uid;
        record.inode = msg.idiag_inode;
        record.cgroup_id = FindCgroupId(bytes, payload_offset + sizeof(inet_diag_msg),
                                        payload_offset + payload_length);
        sink.OnSocket(record);
        ++status.records;
        break;
      }
      default:
        return Fail(fmt::format("netlink: unexpected message type {} at byte {}", header.nlmsg_type,
                                offset));
    }
    // The last message of a datagram may lack its alignment padding.
    offset += std::min<std::size_t>(NetlinkAlign(header.nlmsg_len), remaining);
  }
  return status;
}

}  // namespace socket_exporter
