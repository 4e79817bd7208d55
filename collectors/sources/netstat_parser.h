// Parses the text of /proc/net/netstat (and files of the same shape, such as
// /proc/net/snmp without its negative fields) into named counters.
//
// Format: lines come in pairs with the same "Prefix:" -- a header line that
// names the counters, then a value line with one unsigned decimal number per
// name:
//   TcpExt: SyncookiesSent SyncookiesRecv ... ListenOverflows ListenDrops ...
//   TcpExt: 0 0 ... 12 12 ...
// Each counter is keyed "Prefix.Name", e.g. "TcpExt.ListenOverflows".
//
// The pairing is checked strictly, because a header shifted against its
// values would silently publish one counter under another's name: a header
// without a value line, a value line whose prefix differs from its header's,
// a different number of names and values, a value that is not an unsigned
// 64-bit decimal, or a key seen twice are all errors, naming the line.
// Empty text yields an empty map.
//
// Thread safety: stateless; safe to call from any number of threads.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>

#include "common/result.h"

namespace socket_exporter {

Result<std::map<std::string, std::uint64_t>> ParseNetstat(std::string_view text);

}  // namespace socket_exporter
