// Parses the text of /proc/net/{tcp,tcp6,udp,udp6} into SocketRecords.
// Pure functions over text: no I/O and no allocation per line (errors aside).
//
// Format (one header line, then one line per socket; columns separated by
// runs of spaces):
//   sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode ...
//   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000 0 0 12345 1 ...
// Addresses are the kernel's in-memory 32-bit words printed as %08X: one word
// for IPv4, four for IPv6, so the byte order is the host's (0100007F is
// 127.0.0.1 on little endian). Ports and the state are hex; uid and inode
// decimal. Columns after inode are ignored.
//
// Differences from netlink worth knowing: a LISTEN line's tx_queue is 0 (the
// backlog limit netlink reports in wqueue is not in this file), and TCP
// sockets that are bound but neither listening nor connected
// (bound_inactive) are not listed at all.
//
// Thread safety: stateless; safe to call from any number of threads.
#pragma once

#include <cstdint>
#include <string_view>

#include "collectors/sources/socket_record.h"
#include "common/result.h"

namespace socket_exporter {

enum class ProcNetSelect : std::uint8_t {
  kAll,
  // TCP LISTEN (state 0A) or UDP unconnected (state 07): sockets that can own
  // a port for inbound traffic.
  kWithoutPeer,
  kWithPeer,  // every other line
};

// Parses one whole file's text and hands every selected line to sink, in
// file order. Returns the number of records delivered. Every line is fully
// checked whether or not it is selected; a malformed line fails with
// "line N: <what was wrong>", and so does a last line without its newline
// (a truncated read). Records of earlier lines have been delivered by then.
Result<std::uint64_t> ParseProcNet(std::string_view text, Protocol protocol, Family family,
                                   ProcNetSelect select, SocketSink& sink);

}  // namespace socket_exporter
