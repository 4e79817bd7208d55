// One walk over every TCP and UDP socket of every network namespace of the
// host (collectors/sources/bpf/netns_sockets.bpf.c), for the netns collector: the
// kernel's socket tables are shared by all namespaces (unless
// tcp_child_ehash_entries / udp_child_hash_entries gave a namespace its own),
// so K netlink dumps, one per namespace, walk them K times, while this walks
// them once and tags each socket with its namespace's inode.
//
// Per namespace, records arrive in the order the ordering contract of
// socket_source.h needs: TCP bound-but-inactive, TCP listeners, other TCP,
// UDP unconnected, UDP connected. The fields match what sock_diag reports
// (see the .bpf.c), except uid and inode (0: no collector uses them) and UDP
// queue sizes (0). Namespaces with tables of their own are not in the walk:
// Walk() says which namespace's tables it walked, and the caller reads the
// others with netlink.
//
// Needs: a build with SOCKET_EXPORTER_BPF (libbpf, clang, bpftool), kernel
// BTF, bpf_loop and ring buffers (5.17+), and CAP_BPF + CAP_PERFMON (or
// CAP_SYS_ADMIN). Open() says what is missing.
//
// Thread safety: one thread at a time per instance. The walk does not depend
// on the calling thread's network namespace.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>

#include "collectors/sources/socket_source.h"
#include "common/result.h"

namespace socket_exporter {

// Whether this build contains the BPF programs.
bool BpfSocketWalkBuilt();

class BpfSocketWalk {
 public:
  static Result<std::unique_ptr<BpfSocketWalk>> Open();
  ~BpfSocketWalk();
  BpfSocketWalk(const BpfSocketWalk&) = delete;
  BpfSocketWalk& operator=(const BpfSocketWalk&) = delete;

  struct Stats {
    std::uint64_t delivered = 0;    // records handed to a sink
    std::uint32_t table_netns = 0;  // inode of the namespace whose tables were walked
  };
  // Streams every socket to sink_for(namespace inode); nullptr skips the
  // namespace. An error means the walk was incomplete (ring full, a chain
  // beyond the loop bounds): sinks may have received part of it.
  using SinkFor = std::function<SocketSink*(std::uint32_t netns_inode)>;
  Result<Stats> Walk(const SinkFor& sink_for);

 private:
  struct State;
  explicit BpfSocketWalk(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

}  // namespace socket_exporter
