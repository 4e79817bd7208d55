// Picks the socket source the exporter uses (--socket.source or similar).
//
// Thread safety: MakeSocketSource is thread-safe; the returned source is used
// by one thread at a time, like every SocketSource.
#pragma once

#include <memory>
#include <string>

#include "collectors/sources/socket_source.h"

namespace socket_exporter {

enum class SourceKind { kAuto, kNetlink, kProcfs };

// kNetlink: NetlinkSource. kProcfs: ProcNetSource reading procfs_root/net.
// kAuto: netlink, and for any Stream() where netlink turns out to be unusable
// before a single socket was delivered (socket() or the first request failing
// with EPROTONOSUPPORT, EACCES, EPERM, ...), procfs for that Stream(). Its
// Name() is the source the last Stream() used ("netlink" before the first).
//
// background_walk: netlink receives the TCP walk on a thread of its own
// (NetlinkSourceOptions::background_tcp_dump), for the one source a process
// scrapes most; sources created per network namespace leave it off.
struct SourceTuning {
  bool background_walk = false;
};
std::unique_ptr<SocketSource> MakeSocketSource(SourceKind kind, std::string procfs_root,
                                               SourceTuning tuning = {});

}  // namespace socket_exporter
