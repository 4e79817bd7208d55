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
// With background_tcp_dump the legacy walk is split where the kernel splits
// it anyway, at no extra kernel work: a LISTEN-only request (the kernel
// walks only the listening hash) and a request for every other state (it
// skips the listening hash, walks the bind and established hashes). The
// second, which is nearly all of a scrape's kernel time, is sent and
// received by a thread of its own from Prefetch() on, into a bounded ring of
// receive buffers, while the caller runs the collectors' Begin, the LISTEN
// and UDP dumps, and parses what has arrived. Records reach the sink in the
// order TCP listeners, UDP, TCP others: the contract holds per protocol.
// (BENCHMARKS.md, "Overlapping the walk")
//
// Thread safety: one thread at a time per instance (it owns its receive
// buffers); separate instances are independent. The background thread never
// touches the sink.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "collectors/sources/socket_record.h"
#include "collectors/sources/socket_source.h"
#include "common/result.h"

namespace socket_exporter {

// Sees every reply datagram exactly as recvmsg returned it, before parsing
// (the fixture recorder writes them to disk). Called on the Stream() thread.
using NetlinkDatagramRecorder =
    std::function<void(Protocol protocol, std::span<const std::uint8_t> datagram)>;

// The background walk's ring of receive buffers: the kernel fills at most
// ~32 KiB (~370 records) per datagram and the parser empties one in ~50 us,
// so a few suffice to keep the kernel from waiting; 8 x 64 KiB, touched only
// as far as the walk is long.
inline constexpr std::size_t kDefaultBackgroundBuffers = 8;

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
  // Receive the TCP walk on a background thread (above). Costs one thread
  // and background_buffers receive buffers. For the exporter's main
  // source; per-namespace sources already run side by side and do not use it.
  bool background_tcp_dump = false;
  // Receive buffers of the background walk, at least 1 (tests use fewer to
  // make the receiving thread wait for the parser).
  std::size_t background_buffers = kDefaultBackgroundBuffers;
};

class NetlinkSource : public SocketSource {
 public:
  // Bytes per recvmsg. The kernel fills at most ~32 KiB per dump datagram;
  // a smaller buffer would truncate (MSG_TRUNC) and lose sockets.
  static constexpr std::size_t kReceiveBufferSize = 64 * 1024;

  explicit NetlinkSource(NetlinkSourceOptions options = {});
  ~NetlinkSource() override;
  NetlinkSource(const NetlinkSource&) = delete;
  NetlinkSource& operator=(const NetlinkSource&) = delete;

  // One SOCK_DIAG_BY_FAMILY request of a Stream() (netlink_source.cpp has
  // the lists).
  struct DumpPass {
    std::uint8_t family;
    std::uint32_t states;
    std::string_view what;
  };

  std::string Name() const override { return "netlink"; }
  // Starts the background TCP walk when background_tcp_dump is set.
  void Prefetch() override;
  void Abandon() override;
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
  // DumpByFamily for each pass in turn; stops at the first failure.
  Result<void> DumpPasses(int fd, Protocol protocol, std::span<const DumpPass> passes,
                          SocketSink& sink, SourceStats& stats);
  // Builds the error and records whether it means "netlink unavailable".
  std::unexpected<Error> FailWithErrno(int error_number, std::string message);
  // Parses one received datagram of a dump into sink; true when it ended the
  // request.
  Result<bool> Deliver(std::span<const std::uint8_t> datagram, Protocol protocol,
                       std::string_view what, SocketSink& sink, DumpOutcome& outcome);
  // Opens a NETLINK_SOCK_DIAG socket with the receive timeout; -1 and an
  // error (with its errno) on failure.
  Result<int> OpenSocket(int& error_number);
  // The TCP dumps when background_tcp_dump is on: listeners here, the rest
  // from the background thread (or, if the kernel refuses the legacy
  // request, per family here). `udp` runs between the two.
  Result<void> StreamTcpSplit(int fd, SocketSink& sink, SourceStats& stats,
                              const std::function<Result<void>()>& udp);
  Result<void> ConsumeBackground(SocketSink& sink, DumpOutcome& outcome);

  class Receiver;

  NetlinkSourceOptions options_;
  std::vector<std::uint8_t> buffer_;
  std::uint32_t sequence_ = 0;
  std::uint64_t delivered_ = 0;  // records handed to the sink in this Stream()
  bool unavailable_ = false;
  bool last_tcp_legacy_ = false;
  // Background walk: the thread (started at the first Prefetch), the socket
  // of the running walk (-1 when none), and why it could not be started.
  std::unique_ptr<Receiver> receiver_;
  int background_fd_ = -1;
  bool background_started_ = false;
  int prefetch_errno_ = 0;
  std::string prefetch_error_;
};

}  // namespace socket_exporter
