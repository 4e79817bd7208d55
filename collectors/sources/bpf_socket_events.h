// The kernel side of the `events` collector: loads the embedded BPF object
// (collectors/sources/bpf/socket_events.bpf.c), attaches its tracepoints and
// reads its counter maps as bytes (decoded by socket_events_decode.h).
//
// Reading costs O(entries in the maps), never O(events): the programs count
// in per-CPU hash maps and send nothing to user space.
//
// Needs: a build with SOCKET_EXPORTER_BPF, kernel BTF, the BTF tracepoints
// (tp_btf, attached without tracefs) inet_sock_set_state, tcp_retransmit_skb,
// tcp_retransmit_synack, tcp_send_reset, tcp_receive_reset, and CAP_BPF +
// CAP_PERFMON (or CAP_SYS_ADMIN); Open() names what is missing. The syscall
// tracepoints syscalls:sys_{enter,exit}_bind also need tracefs mounted
// (libbpf reads their ids there): without it Open() succeeds, bind()
// failures are not counted and Warning() says why.
//
// Thread safety: one thread at a time per instance.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "collectors/sources/socket_events_decode.h"
#include "common/result.h"

namespace socket_exporter {

bool BpfSocketEventsBuilt();

class BpfSocketEvents {
 public:
  // own_netns: inode of the exporter's network namespace; events of other
  // namespaces are dropped in the kernel unless SetAllNamespaces(true).
  static Result<std::unique_ptr<BpfSocketEvents>> Open(std::uint32_t own_netns);
  ~BpfSocketEvents();
  BpfSocketEvents(const BpfSocketEvents&) = delete;
  BpfSocketEvents& operator=(const BpfSocketEvents&) = delete;

  Result<void> SetAllNamespaces(bool all);
  // Non-empty when something optional could not be attached.
  const std::string& Warning() const;
  // Every entry of the counter maps, and the overflow counters.
  Result<EventsDump> Read();

 private:
  struct State;
  explicit BpfSocketEvents(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

}  // namespace socket_exporter
