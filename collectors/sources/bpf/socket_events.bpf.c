// The BPF side of the `events` collector (collectors/sources/bpf_socket_events.h,
// docs/events.md): counts, in the kernel, what happened to TCP sockets and
// bind() calls between two scrapes. No event reaches user space: every
// program does at most one lookup and one increment (or one insert) in a
// per-CPU hash map; user space sums the per-CPU values at a scrape.
//
// Tracepoints (no kprobes, no fentry; the socket ones as BTF tracepoints,
// tp_btf, which need no tracefs; the bind ones are syscall tracepoints,
// which do, and are optional: see bpf_socket_events.h):
//   sock/inet_sock_set_state   TCP SYN_SENT -> ESTABLISHED: connect ok;
//                              SYN_SENT -> CLOSE: connect failed, the reason
//                              from sport == 0 (no free local port) or sk_err
//   tcp/tcp_retransmit_skb     retransmits (any state, SYN included)
//   tcp/tcp_retransmit_synack  SYN-ACK retransmits of a listener
//   tcp/tcp_send_reset         RST sent (with or without a socket)
//   tcp/tcp_receive_reset      RST received
//   syscalls/sys_enter_bind    remembers the port asked for, per thread
//   syscalls/sys_exit_bind     a failed bind(): counted with that port
//
// Namespaces: every key carries the inode of the socket's network namespace.
// Unless `all_netns` is set, events of other namespaces than `own_netns` are
// dropped before any map is touched (user space sets both in .bss).
//
// Bounds: each counter map has a fixed max_entries; an event whose new key
// does not fit is counted in `overflow[map]` instead.
//
// SPDX-License-Identifier: GPL-2.0 (reading kernel memory needs a
// GPL-compatible license for the helpers used here.)
#include "vmlinux.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#define AF_INET 2
#define AF_INET6 10
#define IPPROTO_TCP 6
#define TCP_ESTABLISHED 1
#define TCP_SYN_SENT 2
#define TCP_TIME_WAIT 6
#define TCP_CLOSE 7
#define TCP_NEW_SYN_RECV 12
#define E2BIG 7
#define EEXIST 17

char LICENSE[] SEC("license") = "GPL";

// ---- keys: keep in sync with collectors/socket_events_decode.h -------------

enum connect_outcome {
  CONNECT_ESTABLISHED = 0,  // SYN_SENT -> ESTABLISHED
  CONNECT_NO_PORT = 1,      // SYN_SENT -> CLOSE with source port 0
  CONNECT_CLOSED = 2,       // SYN_SENT -> CLOSE otherwise; error = sk_err
};

// Connect results as the kernel side knows them. User space maps sk_err
// values to result names (the map stores the raw errno: no policy here).
struct connect_key {
  __u32 netns;
  __u16 remote_port;  // host byte order
  __u8 family;        // AF_INET, AF_INET6
  __u8 outcome;       // enum connect_outcome
  __s32 error;        // sk_err at SYN_SENT -> CLOSE (0 otherwise)
};

struct destination_key {
  __u32 netns;
  __u16 remote_port;
  __u8 family;
  __u8 outcome;
  __s32 error;
  __u8 local[16];  // IPv4 in the first 4 bytes
  __u8 remote[16];
};

struct bind_key {
  __u32 netns;
  __u16 port;      // asked for, host byte order
  __u8 protocol;   // IPPROTO_TCP, IPPROTO_UDP, other as the socket says
  __u8 family;
  __s32 error;     // -ret of bind()
};

enum tcp_event_kind {
  RETRANSMIT = 0,  // data, SYN or SYN-ACK
  RESET_SENT = 1,
  RESET_RECEIVED = 2,
};

// Retransmits and resets are keyed by the service side only, not by the
// connection: one key per (namespace, family, kind, direction, service port).
struct tcp_event_key {
  __u32 netns;
  __u16 service_port;
  __u8 family;
  __u8 kind;
  __u8 inbound;  // 1: the local port is the service port
  __u8 reserved[3];
};

struct bind_args {
  __u64 fd;
  __u16 port;
  __u16 family;
  __u32 reserved;
};

enum overflow_index {
  OVERFLOW_CONNECTS = 0,
  OVERFLOW_DESTINATIONS = 1,
  OVERFLOW_BINDS = 2,
  OVERFLOW_TCP_EVENTS = 3,
  OVERFLOW_BIND_ARGS = 4,
  OVERFLOW_SLOTS = 5,
};

// ---- maps ------------------------------------------------------------------

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_HASH);
  __uint(max_entries, 4096);
  __type(key, struct connect_key);
  __type(value, __u64);
} connects SEC(".maps");

// Failed connects only, per destination.
struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_HASH);
  __uint(max_entries, 4096);
  __type(key, struct destination_key);
  __type(value, __u64);
} destinations SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_HASH);
  __uint(max_entries, 2048);
  __type(key, struct bind_key);
  __type(value, __u64);
} binds SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_HASH);
  __uint(max_entries, 8192);
  __type(key, struct tcp_event_key);
  __type(value, __u64);
} tcp_events SEC(".maps");

// bind() in flight, per thread: entered, not yet returned.
struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 4096);
  __type(key, __u64);
  __type(value, struct bind_args);
} bind_args SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, OVERFLOW_SLOTS);
  __type(key, __u32);
  __type(value, __u64);
} overflow SEC(".maps");

// Set by user space through the .bss map before the programs are attached.
struct settings {
  __u32 own_netns;
  __u32 all_netns;
};
struct settings settings = {};

// ---- helpers ---------------------------------------------------------------

static __always_inline void count_overflow(__u32 index) {
  __u64 *slot = bpf_map_lookup_elem(&overflow, &index);
  if (slot) *slot += 1;
}

// One increment of a per-CPU counter: the common case is a lookup and an add
// on this CPU's copy; a new key is inserted with 1.
static __always_inline void bump(void *map, const void *key, __u32 overflow_index) {
  __u64 *value = bpf_map_lookup_elem(map, key);
  if (value) {
    *value += 1;
    return;
  }
  __u64 one = 1;
  long error = bpf_map_update_elem(map, key, &one, BPF_NOEXIST);
  if (error == -EEXIST) {
    // Inserted by another CPU meanwhile: this CPU's copy starts at 0.
    value = bpf_map_lookup_elem(map, key);
    if (value) *value += 1;
  } else if (error != 0) {
    count_overflow(overflow_index);
  }
}

static __always_inline __u32 netns_of_sock(const struct sock *sk) {
  return BPF_CORE_READ(sk, __sk_common.skc_net.net, ns.inum);
}

static __always_inline int wanted(__u32 netns) {
  return settings.all_netns != 0 || netns == settings.own_netns;
}

// ---- connect() outcomes ----------------------------------------------------

// Socket-side programs are BTF tracepoints (tp_btf): attached through
// raw_tracepoint_open, they get the tracepoint's arguments as they are (no
// formatted record is built for them) and need no tracefs.

static __always_inline __u16 sock_local_port(const struct sock *sk) {
  return bpf_ntohs(BPF_CORE_READ((const struct inet_sock *)sk, inet_sport));
}
static __always_inline __u16 sock_remote_port(const struct sock *sk) {
  return bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
}

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(on_set_state, const struct sock *sk, int oldstate, int newstate) {
  if (oldstate != TCP_SYN_SENT) return 0;
  if (newstate != TCP_ESTABLISHED && newstate != TCP_CLOSE) return 0;
  if (BPF_CORE_READ(sk, sk_protocol) != IPPROTO_TCP) return 0;
  const __u32 netns = netns_of_sock(sk);
  if (!wanted(netns)) return 0;

  struct connect_key key = {};
  key.netns = netns;
  key.remote_port = sock_remote_port(sk);
  key.family = (__u8)BPF_CORE_READ(sk, __sk_common.skc_family);
  if (newstate == TCP_CLOSE) {
    if (sock_local_port(sk) == 0) {
      key.outcome = CONNECT_NO_PORT;
    } else {
      key.outcome = CONNECT_CLOSED;
      key.error = BPF_CORE_READ(sk, sk_err);
    }
  }
  bump(&connects, &key, OVERFLOW_CONNECTS);
  if (newstate == TCP_ESTABLISHED) return 0;

  struct destination_key dest = {};
  dest.netns = key.netns;
  dest.remote_port = key.remote_port;
  dest.family = key.family;
  dest.outcome = key.outcome;
  dest.error = key.error;
  if (key.family == AF_INET6) {
    BPF_CORE_READ_INTO(&dest.local, sk, __sk_common.skc_v6_rcv_saddr.in6_u.u6_addr8);
    BPF_CORE_READ_INTO(&dest.remote, sk, __sk_common.skc_v6_daddr.in6_u.u6_addr8);
  } else {
    __u32 local = BPF_CORE_READ(sk, __sk_common.skc_rcv_saddr);
    __u32 remote = BPF_CORE_READ(sk, __sk_common.skc_daddr);
    __builtin_memcpy(dest.local, &local, 4);
    __builtin_memcpy(dest.remote, &remote, 4);
  }
  bump(&destinations, &dest, OVERFLOW_DESTINATIONS);
  return 0;
}

// ---- retransmits and resets ------------------------------------------------

// Which end is the service: a port inside the namespace's ephemeral range
// (ip_local_port_range, where connect() takes its local ports) is the client
// side; if both or neither are, the lower port is the service.
static __always_inline int local_is_service(const struct net *net, __u16 local_port,
                                            __u16 remote_port) {
  const __u32 range = BPF_CORE_READ(net, ipv4.ip_local_ports.range);
  const __u16 low = range & 0xffff, high = range >> 16;
  const int local_ephemeral = local_port >= low && local_port <= high;
  const int remote_ephemeral = remote_port >= low && remote_port <= high;
  if (local_ephemeral != remote_ephemeral) return remote_ephemeral;
  return local_port <= remote_port;
}

// direction: 1 inbound, 0 outbound, -1 decide by the ports.
static __always_inline void count_tcp_event(const struct net *net, __u16 family,
                                            __u16 local_port, __u16 remote_port, int direction,
                                            __u8 kind) {
  const __u32 netns = BPF_CORE_READ(net, ns.inum);
  if (!wanted(netns)) return;
  if (direction < 0) direction = local_is_service(net, local_port, remote_port);
  struct tcp_event_key key = {};
  key.netns = netns;
  key.service_port = direction ? local_port : remote_port;
  key.family = (__u8)family;
  key.kind = kind;
  key.inbound = (__u8)direction;
  bump(&tcp_events, &key, OVERFLOW_TCP_EVENTS);
}

static __always_inline const struct net *net_of_sock(const struct sock *sk) {
  return BPF_CORE_READ(sk, __sk_common.skc_net.net);
}

// Counts an event of a full socket. Its local port is read from inet_sport:
// skc_num is zeroed when the port is released (tcp_set_state(TCP_CLOSE)),
// before a SO_LINGER 0 close sends its reset.
static __always_inline void count_sock_event(const struct sock *sk, int direction, __u8 kind) {
  count_tcp_event(net_of_sock(sk), BPF_CORE_READ(sk, __sk_common.skc_family),
                  sock_local_port(sk), sock_remote_port(sk), direction, kind);
}

SEC("tp_btf/tcp_retransmit_skb")
int BPF_PROG(on_retransmit, const struct sock *sk, const struct sk_buff *skb, int err) {
  // A SYN being retransmitted is an active open: outbound.
  const int direction = BPF_CORE_READ(sk, __sk_common.skc_state) == TCP_SYN_SENT ? 0 : -1;
  count_sock_event(sk, direction, RETRANSMIT);
  return 0;
}

SEC("tp_btf/tcp_retransmit_synack")
int BPF_PROG(on_retransmit_synack, const struct sock *sk, const struct request_sock *req) {
  // sk is the listener, req the connection being set up: its ports (a
  // request socket has only the common part: skc_num, skc_dport).
  const struct sock_common *common = &req->__req_common;
  count_tcp_event(net_of_sock(sk), BPF_CORE_READ(common, skc_family),
                  BPF_CORE_READ(common, skc_num), bpf_ntohs(BPF_CORE_READ(common, skc_dport)), 1,
                  RETRANSMIT);
  return 0;
}

SEC("tp_btf/tcp_receive_reset")
int BPF_PROG(on_receive_reset, struct sock *sk) {
  // A reset in SYN_SENT answers our SYN: outbound.
  const int direction = BPF_CORE_READ(sk, __sk_common.skc_state) == TCP_SYN_SENT ? 0 : -1;
  count_sock_event(sk, direction, RESET_RECEIVED);
  return 0;
}

#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD

SEC("tp_btf/tcp_send_reset")
int BPF_PROG(on_send_reset, const struct sock *sk, const struct sk_buff *skb, int reason) {
  // With a full socket, its ports. Otherwise (a RST answering a segment for
  // no socket, a TIME_WAIT or request socket) the ports of the segment being
  // answered, reversed, and the namespace of the device it came in on; a
  // RST for no socket refuses a connection to us: inbound.
  if (sk) {
    const int state = BPF_CORE_READ(sk, __sk_common.skc_state);
    if (state != TCP_TIME_WAIT && state != TCP_NEW_SYN_RECV) {
      count_sock_event(sk, -1, RESET_SENT);
      return 0;
    }
  }
  if (!skb) return 0;
  const unsigned char *head = BPF_CORE_READ(skb, head);
  const __u16 transport = BPF_CORE_READ(skb, transport_header);
  struct tcphdr th = {};
  if (bpf_probe_read_kernel(&th, sizeof(th), head + transport) != 0) return 0;
  const __u16 protocol = bpf_ntohs(BPF_CORE_READ(skb, protocol));
  const __u16 family = protocol == ETH_P_IPV6 ? AF_INET6 : AF_INET;
  const struct net *net = sk ? net_of_sock(sk) : BPF_CORE_READ(skb, dev, nd_net.net);
  if (!net) return 0;
  count_tcp_event(net, family, bpf_ntohs(th.dest), bpf_ntohs(th.source), sk ? -1 : 1,
                  RESET_SENT);
  return 0;
}

// ---- bind() failures -------------------------------------------------------

// The syscall tracepoints' own layouts (struct syscall_trace_enter/exit):
// arguments and return value start at offset 16 on every architecture.
struct syscall_enter_ctx {
  __u64 common;
  __s32 nr;
  __s32 pad;
  __u64 args[6];
};
struct syscall_exit_ctx {
  __u64 common;
  __s32 nr;
  __s32 pad;
  __s64 ret;
};

SEC("tracepoint/syscalls/sys_enter_bind")
int on_bind_enter(struct syscall_enter_ctx *ctx) {
  struct bind_args args = {};
  args.fd = ctx->args[0];
  const void *address = (const void *)ctx->args[1];
  // sa_family then sin_port / sin6_port: the same 4 bytes for both.
  __u16 head[2] = {};
  if (bpf_probe_read_user(head, sizeof(head), address) != 0) return 0;
  args.family = head[0];
  if (args.family != AF_INET && args.family != AF_INET6) return 0;
  args.port = bpf_ntohs(head[1]);
  const __u64 id = bpf_get_current_pid_tgid();
  if (bpf_map_update_elem(&bind_args, &id, &args, BPF_ANY) != 0) {
    count_overflow(OVERFLOW_BIND_ARGS);
  }
  return 0;
}

// The socket behind a descriptor of the current task (NULL if none).
static __always_inline const struct sock *sock_of_fd(__u64 fd) {
  const struct task_struct *task = (const struct task_struct *)bpf_get_current_task();
  const struct fdtable *fdt = BPF_CORE_READ(task, files, fdt);
  if (!fdt) return 0;
  if (fd >= BPF_CORE_READ(fdt, max_fds)) return 0;
  struct file **files = BPF_CORE_READ(fdt, fd);
  struct file *file = 0;
  if (bpf_probe_read_kernel(&file, sizeof(file), &files[fd]) != 0 || !file) return 0;
  const struct socket *socket = BPF_CORE_READ(file, private_data);
  if (!socket) return 0;
  return BPF_CORE_READ(socket, sk);
}

SEC("tracepoint/syscalls/sys_exit_bind")
int on_bind_exit(struct syscall_exit_ctx *ctx) {
  const __u64 id = bpf_get_current_pid_tgid();
  struct bind_args *args = bpf_map_lookup_elem(&bind_args, &id);
  if (!args) return 0;
  const __s64 ret = ctx->ret;
  struct bind_key key = {};
  key.port = args->port;
  key.family = (__u8)args->family;
  const __u64 fd = args->fd;
  bpf_map_delete_elem(&bind_args, &id);
  if (ret >= 0) return 0;
  key.error = (__s32)-ret;
  // ENOTSOCK/EBADF: no socket to read; bind() on a socket otherwise.
  const struct sock *sk = sock_of_fd(fd);
  if (!sk) return 0;
  key.netns = netns_of_sock(sk);
  if (!wanted(key.netns)) return 0;
  key.protocol = (__u8)BPF_CORE_READ(sk, sk_protocol);
  bump(&binds, &key, OVERFLOW_BINDS);
  return 0;
}
