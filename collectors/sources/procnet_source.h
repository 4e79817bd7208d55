// SocketSource over /proc/net/{tcp,tcp6,udp,udp6}: the fallback when netlink
// sock_diag is unavailable, and the source of record for --path.procfs.
//
// Each file is read whole before parsing, so a dump is one consistent read
// per file; lines are delivered in the order the ordering contract of
// socket_source.h needs: TCP LISTEN lines of tcp and tcp6, then the other
// TCP lines of tcp and tcp6, then UDP unconnected lines of udp and udp6, then
// the connected ones.
//
// A missing tcp6/udp6 file means IPv6 is disabled and is not an error; a
// missing tcp or udp file is. Unlike netlink these files do not list TCP
// sockets that are bound but inactive (bind() without listen/connect), and a
// LISTEN line carries no backlog limit (wqueue is 0).
//
// Thread safety: one thread at a time per instance.
#pragma once

#include <string>

#include "collectors/sources/socket_source.h"
#include "common/result.h"

namespace socket_exporter {

class ProcNetSource : public SocketSource {
 public:
  // Bytes per read(): large reads make seq_file produce big chunks, which is
  // most of the speed difference with small stdio buffers.
  static constexpr std::size_t kReadChunk = 1 << 20;

  // procfs_root is the procfs mount point ("/proc"); files are read from
  // <procfs_root>/net/. It reflects the network namespace of the process.
  explicit ProcNetSource(std::string procfs_root = "/proc");

  std::string Name() const override { return "procfs"; }
  Result<SourceStats> Stream(SocketSink& sink) override;

 private:
  std::string root_;
};

}  // namespace socket_exporter
