// SocketSource over netlink sock_diag (NETLINK_SOCK_DIAG), the way `ss`
// reads socket tables, but streaming: each reply datagram is parsed into the
// sink and the buffer reused, so memory stays flat at any socket count.
//
// Requests per Stream(), in this order (the order implements the ordering
// contract of socket_source.h):
//   TCP: one legacy TCPDIAG_GETSOCK dump of every state, IPv4 and IPv6 in a
//        single table walk. If the kernel refuses it before sending any
//        record: SOCK_DIAG_BY_FAMILY LISTEN-only for AF_INET, AF_INET6, then
//        every other state for AF_INET, AF_INET6.
//   UDP: SOCK_DIAG_BY_FAMILY unconnected (CLOSE) for AF_INET, AF_INET6, then
//        connected (ESTABLISHED) for AF_INET, AF_INET6.
//
// Thread safety: one thread at a time per instance (it owns a receive
// buffer); separate instances are independent.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "collectors/socket_record.h"
#include "collectors/socket_source.h"
#include "common/result.h"

namespace socket_exporter {

// Sees every reply datagram exactly as recvmsg returned it, before parsing
// (the fixture recorder writes them to disk). Called on the Stream() thread.
using NetlinkDatagramRecorder =
    std::function<void(Protocol protocol, std::span<const std::uint8_t> datagram)>;

struct NetlinkSourceOptions {
  // Dump TCP with the legacy single-walk request first. false = go straight
  // to the per-family requests (tests use it to exercise that path).
  bool legacy_tcp_dump = true;
  // Per recvmsg: a kernel that stops answering fails the scrape instead of
  // hanging it.
  std::chrono::milliseconds receive_timeout{5000};
  NetlinkDatagramRecorder recorder;
  // Fault injection for tests only: opens the socket Stream() talks to, in
  // place of a NETLINK_SOCK_DIAG socket; returns an fd, which Stream()
  // closes, or -1 with errno set. hostile_inputs_test passes a
  // NETLINK_CONNECTOR socket, which takes the request and never answers, to
  // prove that receive_timeout bounds a scrape.
  std::function<int()> open_socket;
};

class NetlinkSource : public SocketSource {
 public:
  // Bytes per recvmsg. The kernel fills at most ~32 KiB per dump datagram;
  // a smaller buffer would truncate (MSG_TRUNC) and lose sockets.
  static constexpr std::size_t kReceiveBufferSize = 64 * 1024;

  explicit NetlinkSource(NetlinkSourceOptions options = {});

  std::string Name() const override { return "netlink"; }
  Result<SourceStats> Stream(SocketSink& sink) override;

  // True when the last Stream() failed before handing any record to the sink
  // because sock_diag is unusable here (no NETLINK_SOCK_DIAG in the kernel,
  // diag modules missing, denied by seccomp/LSM: EPROTONOSUPPORT,
  // EAFNOSUPPORT, EACCES, EPERM, ENOENT, EOPNOTSUPP). Another source may
  // then be used for the same scrape without double counting.
  bool LastFailureMeansUnavailable() const { return unavailable_; }
  // Whether the last successful TCP dump used the legacy single walk (false:
  // the kernel refused it, or options disabled it).
  bool LastTcpDumpWasLegacy() const { return last_tcp_legacy_; }

 private:
  struct DumpOutcome {
    std::uint64_t records = 0;
    bool interrupted = false;
    int kernel_errno = 0;  // the kernel ended the request with this error
  };
  // Sends one request and parses the replies into sink until the request
  // ends. Transport and parse failures are errors; the kernel refusing or
  // aborting the request is an outcome (kernel_errno), for the caller to
  // judge.
  Result<DumpOutcome> Dump(int fd, Protocol protocol, std::span<const std::uint8_t> request,
                           std::string_view what, SocketSink& sink);
  // One SOCK_DIAG_BY_FAMILY dump; any kernel error fails it, except ENOENT
  // for AF_INET6 (a kernel without IPv6 has no sockets to report).
  Result<void> DumpByFamily(int fd, Protocol protocol, std::uint8_t family, std::uint32_t states,
                            std::string_view what, SocketSink& sink, SourceStats& stats);
  // Builds the error and records whether it means "netlink unavailable".
  std::unexpected<Error> FailWithErrno(int error_number, std::string message);

  NetlinkSourceOptions options_;
  std::vector<std::uint8_t> buffer_;
  std::uint32_t sequence_ = 0;
  std::uint64_t delivered_ = 0;  // records handed to the sink in this Stream()
  bool unavailable_ = false;
  bool last_tcp_legacy_ = false;
};

}  // namespace socket_exporter
