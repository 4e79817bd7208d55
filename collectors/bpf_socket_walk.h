// One walk over every TCP and UDP socket of every network namespace of the
// host, with BPF iterators (collectors/bpf/netns_sockets.bpf.c), for the
// netns collector: the kernel's TCP table is shared by all namespaces, so K
// netlink dumps (one per namespace) walk it K times, while this walks it
// once and tags each socket with its namespace's inode.
//
// Per namespace, records arrive in the order the ordering contract of
// socket_source.h needs: TCP bound-but-inactive sockets, TCP listeners, the
// other TCP sockets, UDP unconnected, UDP connected. The fields match what
// sock_diag reports (see the .bpf.c), except uid and inode, left 0 (no
// collector uses them), and UDP queue sizes, left 0.
//
// Needs: a build with SOCKET_EXPORTER_BPF (libbpf, clang, bpftool), kernel
// BTF, the tcp/udp/task_file iterators (5.9+; bpf_skc_to_* helpers), and
// CAP_BPF + CAP_PERFMON (or CAP_SYS_ADMIN). Open() says which is missing.
//
// Thread safety: one thread at a time per instance. The walk does not depend
// on the calling thread's network namespace.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>

#include "collectors/socket_source.h"
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

  // Streams every socket to sink_for(namespace inode); nullptr skips the
  // namespace. Returns the number of records delivered.
  using SinkFor = std::function<SocketSink*(std::uint32_t netns_inode)>;
  Result<std::uint64_t> Walk(const SinkFor& sink_for);

 private:
  struct State;
  explicit BpfSocketWalk(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

}  // namespace socket_exporter
