#include "collectors/netlink_source.h"

#include <errno.h>
#include <fmt/format.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cstring>

#include "collectors/netlink_parser.h"

// Why this request order meets the ordering contract -- checked against the
// kernel source (torvalds/linux: net/ipv4/inet_diag.c, and tcp_diag_dump() in
// net/ipv4/tcp_diag.c, where the TCP walk moved from inet_diag_dump_icsk() in
// 2025; the logic below is the same in both places):
//
// * The TCP dump callback is a resumable state machine keyed on
//   cb->args[0]: phase 0 walks the listening hash (lhash2), and only when
//   LISTEN is among the requested states and no destination port is
//   filtered; phase 1 walks bhash2 for bound-but-inactive sockets (kernel
//   6.8+, only when bit 13 TCP_BOUND_INACTIVE is requested); phase 2 walks
//   the established hash (ehash), which holds every socket with a peer,
//   TIME_WAIT and request (NEW_SYN_RECV) sockets. The phase survives across
//   recvmsg calls, so within ONE dump every listener is sent before any
//   socket with a peer. A LISTEN-only request stops after phase 0
//   ("no state but LISTEN requested" exits before the ehash loop), which is
//   what makes the per-family fallback's first pass cheap.
// * The legacy TCPDIAG_GETSOCK request is handled by the compat dump
//   (inet_diag_dump_compat), which builds a v2 request with sdiag_family =
//   AF_UNSPEC regardless of what we send; every family filter in the walk is
//   written "family != AF_UNSPEC && family differs", so IPv4 and IPv6 come
//   out of one walk and all listeners of both families precede the first
//   socket with a peer.
// * With the v2 request a family must be named (sock_diag dispatches on
//   sdiag_family; AF_UNSPEC has no handler), hence the fallback: LISTEN for
//   both families first, then the rest for each family.
// * UDP has no listening table: its dump filters one table by
//   1 << sk_state (CLOSE = unconnected, ESTABLISHED = connected), so asking
//   for unconnected sockets of both families before connected ones is what
//   orders them.
// * Reply types: the kernel answers with the request's nlmsg_type
//   (TCPDIAG_GETSOCK or SOCK_DIAG_BY_FAMILY), each carrying an
//   inet_diag_msg; TIME_WAIT and request sockets report their sub-state and
//   zero queues, uid and inode.

namespace socket_exporter {
namespace {

// A request is a netlink header immediately followed by its body; both are
// 4-byte aligned with sizes that are multiples of 4, so the structs below have
// no padding and their bytes are exactly the wire format.
struct LegacyRequest {
  nlmsghdr header;
  inet_diag_req body;
};
struct ByFamilyRequest {
  nlmsghdr header;
  inet_diag_req_v2 body;
};
static_assert(sizeof(LegacyRequest) == sizeof(nlmsghdr) + sizeof(inet_diag_req));
static_assert(sizeof(ByFamilyRequest) == sizeof(nlmsghdr) + sizeof(inet_diag_req_v2));

constexpr std::uint32_t StateBit(std::uint8_t state) { return 1U << state; }
// Bits 1..13: every TCP state, including NEW_SYN_RECV (the kernel adds it to
// SYN_RECV anyway) and BOUND_INACTIVE (kernel 6.8+; older kernels ignore it).
constexpr std::uint32_t kAllTcpStates = ((1U << kTcpMaxStates) - 1) & ~1U;
constexpr std::uint32_t kTcpListenOnly = StateBit(kTcpListen);
constexpr std::uint32_t kTcpAllButListen = kAllTcpStates & ~StateBit(kTcpListen);
constexpr std::uint32_t kUdpUnconnected = StateBit(kTcpClose);
constexpr std::uint32_t kUdpConnected = StateBit(kTcpEstablished);

// One SOCK_DIAG_BY_FAMILY request of a Stream().
struct DumpPass {
  std::uint8_t family;
  std::uint32_t states;
  std::string_view what;
};

template <typename Request>
std::span<const std::uint8_t> AsBytes(const Request& request) {
  return {reinterpret_cast<const std::uint8_t*>(&request), sizeof(Request)};
}

nlmsghdr MakeHeader(std::uint16_t type, std::uint32_t length, std::uint32_t sequence) {
  nlmsghdr header{};
  header.nlmsg_len = length;
  header.nlmsg_type = type;
  header.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  header.nlmsg_seq = sequence;
  header.nlmsg_pid = 0;  // the kernel fills in our port id
  return header;
}

bool IsUnavailableErrno(int error_number) {
  switch (error_number) {
    case EPROTONOSUPPORT:  // kernel built without NETLINK_SOCK_DIAG
    case EAFNOSUPPORT:     // no netlink at all
    case EACCES:           // LSM / seccomp
    case EPERM:
    case ENOENT:      // inet_diag / udp_diag handler missing
    case EOPNOTSUPP:  // sock_diag without the inet compat handler
      return true;
    default:
      return false;
  }
}

class FdCloser {
 public:
  explicit FdCloser(int fd) : fd_(fd) {}
  FdCloser(const FdCloser&) = delete;
  FdCloser& operator=(const FdCloser&) = delete;
  ~FdCloser() { ::close(fd_); }

 private:
  int fd_;
};

}  // namespace

NetlinkSource::NetlinkSource(NetlinkSourceOptions options) : options_(std::move(options)) {}

std::unexpected<Error> NetlinkSource::FailWithErrno(int error_number, std::string message) {
  // Falling back is only safe while the sink has seen nothing: otherwise the
  // scrape would count some sockets twice.
  unavailable_ = delivered_ == 0 && IsUnavailableErrno(error_number);
  return Fail(std::move(message));
}

Result<NetlinkSource::DumpOutcome> NetlinkSource::Dump(int fd, Protocol protocol,
                                                       std::span<const std::uint8_t> request,
                                                       std::string_view what, SocketSink& sink) {
  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  for (;;) {
    const ssize_t sent = ::sendto(fd, request.data(), request.size(), 0,
                                  reinterpret_cast<const sockaddr*>(&kernel), sizeof(kernel));
    if (sent >= 0) break;
    if (errno == EINTR) continue;
    const int error = errno;
    return FailWithErrno(error, fmt::format("netlink: sending the {} request failed: {}", what,
                                            KernelErrorText(error)));
  }

  DumpOutcome outcome;
  for (;;) {
    sockaddr_nl from{};
    iovec iov{buffer_.data(), buffer_.size()};
    msghdr message{};
    message.msg_name = &from;
    message.msg_namelen = sizeof(from);
    message.msg_iov = &iov;
    message.msg_iovlen = 1;
    const ssize_t received = ::recvmsg(fd, &message, 0);
    if (received < 0) {
      const int error = errno;
      if (error == EINTR) continue;
      if (error == EAGAIN || error == EWOULDBLOCK) {
        return Fail(fmt::format("netlink receive timed out after {} ms during the {} dump",
                                options_.receive_timeout.count(), what));
      }
      return FailWithErrno(error, fmt::format("netlink: receiving the {} dump failed: {}", what,
                                              KernelErrorText(error)));
    }
    if (from.nl_pid != 0) continue;  // not from the kernel; nobody else may speak for it
    if ((message.msg_flags & MSG_TRUNC) != 0) {
      return Fail(
          fmt::format("netlink: a {} reply was larger than the {}-byte buffer and was truncated",
                      what, buffer_.size()));
    }
    if (received == 0) {
      return Fail(fmt::format("netlink: empty datagram during the {} dump", what));
    }

    const std::span<const std::uint8_t> datagram(buffer_.data(),
                                                 static_cast<std::size_t>(received));
    if (options_.recorder) options_.recorder(protocol, datagram);
    auto batch = ParseSockDiagBatch(datagram, protocol, sink);
    if (!batch) {
      return Fail(fmt::format("{} (during the {} dump)", batch.error().message, what));
    }
    outcome.records += batch->records;
    delivered_ += batch->records;
    outcome.interrupted = outcome.interrupted || batch->dump_interrupted;
    if (batch->done) {
      outcome.kernel_errno = batch->kernel_errno;
      return outcome;
    }
  }
}

Result<void> NetlinkSource::DumpByFamily(int fd, Protocol protocol, std::uint8_t family,
                                         std::uint32_t states, std::string_view what,
                                         SocketSink& sink, SourceStats& stats) {
  ByFamilyRequest request{};
  request.header = MakeHeader(SOCK_DIAG_BY_FAMILY, sizeof(request), ++sequence_);
  request.body.sdiag_family = family;
  request.body.sdiag_protocol = protocol == Protocol::kTcp ? IPPROTO_TCP : IPPROTO_UDP;
  request.body.idiag_ext = 0;  // counting needs no extensions; they triple the reply size
  request.body.idiag_states = states;

  auto outcome = Dump(fd, protocol, AsBytes(request), what, sink);
  if (!outcome) return std::unexpected(outcome.error());
  stats.records += outcome->records;
  if (outcome->interrupted) ++stats.dump_interrupted;
  if (outcome->kernel_errno == 0) return {};
  if (family == AF_INET6 && outcome->kernel_errno == ENOENT && outcome->records == 0) return {};
  return FailWithErrno(outcome->kernel_errno,
                       fmt::format("netlink: the kernel refused the {} dump: {}", what,
                                   KernelErrorText(outcome->kernel_errno)));
}

Result<SourceStats> NetlinkSource::Stream(SocketSink& sink) {
  unavailable_ = false;
  last_tcp_legacy_ = false;
  delivered_ = 0;

  const int fd = options_.open_socket
                     ? options_.open_socket()
                     : ::socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
  if (fd < 0) {
    const int error = errno;
    return FailWithErrno(
        error, "netlink: cannot open a NETLINK_SOCK_DIAG socket: " + KernelErrorText(error));
  }
  // One socket per Stream(): nothing from an earlier, possibly failed, dump
  // can be left queued to confuse this one.
  FdCloser closer(fd);

  const auto timeout_ms = options_.receive_timeout.count();
  timeval timeout{};
  timeout.tv_sec = static_cast<time_t>(timeout_ms / 1000);
  timeout.tv_usec = static_cast<suseconds_t>((timeout_ms % 1000) * 1000);
  if (::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout)) != 0) {
    const int error = errno;
    return FailWithErrno(error, "netlink: cannot set a receive timeout: " + KernelErrorText(error));
  }
  if (buffer_.size() != kReceiveBufferSize) buffer_.resize(kReceiveBufferSize);

  SourceStats stats;
  bool tcp_done = false;
  if (options_.legacy_tcp_dump) {
    LegacyRequest request{};
    request.header = MakeHeader(TCPDIAG_GETSOCK, sizeof(request), ++sequence_);
    request.body.idiag_family = AF_UNSPEC;  // ignored by the kernel's compat dump: both families
    request.body.idiag_ext = 0;
    request.body.idiag_states = kAllTcpStates;
    auto outcome = Dump(fd, Protocol::kTcp, AsBytes(request), "TCP (legacy, all families)", sink);
    if (!outcome) return std::unexpected(outcome.error());
    stats.records += outcome->records;
    if (outcome->interrupted) ++stats.dump_interrupted;
    if (outcome->kernel_errno == 0) {
      tcp_done = true;
      last_tcp_legacy_ = true;
    } else if (outcome->records > 0) {
      // Aborted midway: the per-family dumps would repeat what was sent.
      return FailWithErrno(outcome->kernel_errno,
                           "netlink: the kernel aborted the TCP (legacy) dump: " +
                               KernelErrorText(outcome->kernel_errno));
    }
    // Refused outright (no compat handler): fall back below.
  }

  if (!tcp_done) {
    static constexpr DumpPass kTcpPasses[] = {
        {AF_INET, kTcpListenOnly, "TCP IPv4 listening"},
        {AF_INET6, kTcpListenOnly, "TCP IPv6 listening"},
        {AF_INET, kTcpAllButListen, "TCP IPv4 non-listening"},
        {AF_INET6, kTcpAllButListen, "TCP IPv6 non-listening"},
    };
    for (const DumpPass& pass : kTcpPasses) {
      auto done =
          DumpByFamily(fd, Protocol::kTcp, pass.family, pass.states, pass.what, sink, stats);
      if (!done) return std::unexpected(done.error());
    }
  }

  // Every unconnected UDP socket, of both families, before any connected one.
  static constexpr DumpPass kUdpPasses[] = {
      {AF_INET, kUdpUnconnected, "UDP IPv4 unconnected"},
      {AF_INET6, kUdpUnconnected, "UDP IPv6 unconnected"},
      {AF_INET, kUdpConnected, "UDP IPv4 connected"},
      {AF_INET6, kUdpConnected, "UDP IPv6 connected"},
  };
  for (const DumpPass& pass : kUdpPasses) {
    auto done = DumpByFamily(fd, Protocol::kUdp, pass.family, pass.states, pass.what, sink, stats);
    if (!done) return std::unexpected(done.error());
  }
  return stats;
}

}  // namespace socket_exporter
