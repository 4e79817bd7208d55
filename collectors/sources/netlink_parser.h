// Decodes sock_diag (NETLINK_SOCK_DIAG) reply datagrams into SocketRecords.
// Pure functions over bytes: no I/O, no allocation, so they can be fed
// recorded fixtures and fuzzed.
//
// Thread safety: stateless; safe to call from any number of threads.
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "collectors/sources/socket_record.h"
#include "common/errno_text.h"
#include "common/result.h"

namespace socket_exporter {

// What one datagram (one recvmsg) of a dump contained.
struct NetlinkBatchStatus {
  std::uint64_t records = 0;      // records handed to the sink from this datagram
  bool done = false;              // the request is over: NLMSG_DONE or NLMSG_ERROR seen
  bool dump_interrupted = false;  // a message carried NLM_F_DUMP_INTR
  // Positive errno the kernel reported for the request (NLMSG_ERROR, or
  // NLMSG_DONE carrying an error); 0 when it reported none. When nonzero,
  // done is true and parsing stopped at that message. The kernel refusing a
  // request is data, not a parse failure, because callers react to it
  // (fall back to another request or source); use ErrnoText() to
  // describe it.
  int kernel_errno = 0;
};

// Parses one datagram of a sock_diag dump for `protocol`. Every
// inet_diag_msg becomes one OnSocket() call, in the kernel's order. One
// translation: the kernel reports bound-but-inactive TCP sockets with state
// CLOSE (7); they are delivered as kTcpBoundInactive (13), the state they
// were requested by and the one StateName() labels "bound_inactive".
// NLMSG_NOOP and ACKs (NLMSG_ERROR with error 0) are skipped; bytes after
// NLMSG_DONE or an error are ignored. Returns an error, naming the byte
// offset, for anything malformed: a truncated header or message, an
// nlmsg_len shorter than a header, a payload shorter than inet_diag_msg, an
// unknown address family or message type, NLMSG_OVERRUN. Records parsed
// before the bad message have already been delivered; nothing after it is.
Result<NetlinkBatchStatus> ParseSockDiagBatch(std::span<const std::uint8_t> bytes,
                                              Protocol protocol, SocketSink& sink);

// Whether ParseSockDiagBatch(bytes) would stop the dump there: the datagram
// holds NLMSG_DONE, a non-zero NLMSG_ERROR, NLMSG_OVERRUN, or anything
// malformed. Only the headers are read. A thread that receives a dump for
// another to parse uses it to know when to stop calling recvmsg.
bool EndsDump(std::span<const std::uint8_t> bytes);

}  // namespace socket_exporter
