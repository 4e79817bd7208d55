// BPF iterators behind BpfSocketWalk (collectors/bpf_socket_walk.h): one walk
// over the kernel's socket tables reports every TCP and UDP socket of every
// network namespace, tagged with its namespace's inode, so K namespaces cost
// one walk instead of K netlink dumps that each walk the shared table.
//
// Each program writes fixed-size `struct netns_socket_record`s with
// bpf_seq_write; user space reads them from the iterator's file descriptor.
// The fields mirror what sock_diag reports (net/ipv4/inet_diag.c,
// tcp_diag.c), so both sources give the same counts:
//   - TIME_WAIT sockets report their sub-state and zero queues;
//   - request sockets (NEW_SYN_RECV) report SYN_RECV and zero queues;
//   - LISTEN: rqueue = accept queue length, wqueue = backlog limit;
//   - other TCP: rqueue = rcv_nxt - copied_seq (>= 0), wqueue = write_seq - snd_una;
//   - UDP: queues are not read (0): no collector uses them.
// Programs:
//   dump_tcp               iter/tcp: the listening hash, then the established
//                          hash, as the netlink dump walks them;
//   dump_udp_unconnected   iter/udp, unconnected sockets only, and
//   dump_udp_connected     the connected ones: run in this order, so that a
//                          namespace's UDP "listeners" come first;
//   dump_tcp_bound         iter/task_file: TCP sockets bound but neither
//                          listening nor connected (TCP_BOUND_INACTIVE to
//                          netlink), which live only in the bind hash that no
//                          socket iterator walks; found through the open files
//                          of every process (user space drops duplicates,
//                          a socket open in several processes, by `cookie`).
// SPDX-License-Identifier: GPL-2.0 (BPF programs that read kernel structures
// must declare a GPL-compatible license to use the helpers they call.)
#include "vmlinux.h"

#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#define AF_INET 2
#define AF_INET6 10
#define IPPROTO_TCP 6
#define S_IFMT 00170000
#define S_IFSOCK 0140000
#define TCP_ESTABLISHED 1
#define TCP_SYN_RECV 3
#define TCP_TIME_WAIT 6
#define TCP_CLOSE 7
#define TCP_LISTEN 10
#define TCP_NEW_SYN_RECV 12
#define TCP_BOUND_INACTIVE 13

char LICENSE[] SEC("license") = "GPL";

// Keep in sync with collectors/bpf_socket_walk.cpp (static_assert there).
struct netns_socket_record {
  __u32 netns;     // inode of the socket's network namespace
  __u8 protocol;   // 0 tcp, 1 udp
  __u8 family;     // AF_INET, AF_INET6
  __u8 state;      // as sock_diag reports it
  __u8 reserved;
  __u16 local_port;   // host byte order
  __u16 remote_port;  // host byte order
  __u32 local[4];     // network byte order; IPv4 in local[0]
  __u32 remote[4];
  __u32 rqueue;
  __u32 wqueue;
  __u64 cookie;  // dump_tcp_bound only: the socket's inode, for deduplication
};

static __always_inline void fill_common(struct netns_socket_record *r, struct sock_common *skc) {
  r->netns = BPF_CORE_READ(skc, skc_net.net, ns.inum);
  r->family = BPF_CORE_READ(skc, skc_family);
  r->local_port = BPF_CORE_READ(skc, skc_num);
  r->remote_port = bpf_ntohs(BPF_CORE_READ(skc, skc_dport));
  if (r->family == AF_INET6) {
    BPF_CORE_READ_INTO(&r->local, skc, skc_v6_rcv_saddr.in6_u.u6_addr32);
    BPF_CORE_READ_INTO(&r->remote, skc, skc_v6_daddr.in6_u.u6_addr32);
  } else {
    r->local[0] = BPF_CORE_READ(skc, skc_rcv_saddr);
    r->remote[0] = BPF_CORE_READ(skc, skc_daddr);
  }
}

SEC("iter/tcp")
int dump_tcp(struct bpf_iter__tcp *ctx) {
  struct sock_common *skc = ctx->sk_common;
  if (!skc) return 0;
  struct netns_socket_record r = {};
  fill_common(&r, skc);
  const __u8 state = BPF_CORE_READ(skc, skc_state);
  if (state == TCP_TIME_WAIT) {
    struct tcp_timewait_sock *tw = bpf_skc_to_tcp_timewait_sock(skc);
    r.state = tw ? BPF_CORE_READ(tw, tw_sk.tw_substate) : TCP_TIME_WAIT;
  } else if (state == TCP_NEW_SYN_RECV) {
    r.state = TCP_SYN_RECV;
  } else {
    r.state = state;
    struct tcp_sock *tp = bpf_skc_to_tcp_sock(skc);
    if (tp) {
      if (state == TCP_LISTEN) {
        r.rqueue = BPF_CORE_READ(tp, inet_conn.icsk_inet.sk.sk_ack_backlog);
        r.wqueue = BPF_CORE_READ(tp, inet_conn.icsk_inet.sk.sk_max_ack_backlog);
      } else {
        const __s32 unread = (__s32)(BPF_CORE_READ(tp, rcv_nxt) - BPF_CORE_READ(tp, copied_seq));
        r.rqueue = unread > 0 ? (__u32)unread : 0;
        r.wqueue = BPF_CORE_READ(tp, write_seq) - BPF_CORE_READ(tp, snd_una);
      }
    }
  }
  bpf_seq_write(ctx->meta->seq, &r, sizeof(r));
  return 0;
}

static __always_inline int dump_udp(struct bpf_iter__udp *ctx, int connected) {
  struct udp_sock *udp = ctx->udp_sk;
  if (!udp) return 0;
  struct sock_common *skc = &udp->inet.sk.__sk_common;
  const __u8 state = BPF_CORE_READ(skc, skc_state);
  if ((state == TCP_ESTABLISHED) != connected) return 0;
  // sock_diag's UDP dump asks for these two states only.
  if (state != TCP_ESTABLISHED && state != TCP_CLOSE) return 0;
  struct netns_socket_record r = {};
  fill_common(&r, skc);
  r.protocol = 1;
  r.state = state;
  bpf_seq_write(ctx->meta->seq, &r, sizeof(r));
  return 0;
}

SEC("iter/udp")
int dump_udp_unconnected(struct bpf_iter__udp *ctx) { return dump_udp(ctx, 0); }

SEC("iter/udp")
int dump_udp_connected(struct bpf_iter__udp *ctx) { return dump_udp(ctx, 1); }

SEC("iter/task_file")
int dump_tcp_bound(struct bpf_iter__task_file *ctx) {
  struct file *file = ctx->file;
  if (!file) return 0;
  const umode_t mode = BPF_CORE_READ(file, f_inode, i_mode);
  if ((mode & S_IFMT) != S_IFSOCK) return 0;
  struct socket *sock = (struct socket *)BPF_CORE_READ(file, private_data);
  if (!sock) return 0;
  struct sock *sk = BPF_CORE_READ(sock, sk);
  if (!sk) return 0;
  if (BPF_CORE_READ(sk, sk_protocol) != IPPROTO_TCP) return 0;
  if (BPF_CORE_READ(sk, __sk_common.skc_state) != TCP_CLOSE) return 0;
  const __u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);
  if (family != AF_INET && family != AF_INET6) return 0;
  // Bound: it holds a local port (inet_num); unbound closed sockets do not.
  if (BPF_CORE_READ(sk, __sk_common.skc_num) == 0) return 0;
  struct netns_socket_record r = {};
  fill_common(&r, &sk->__sk_common);
  r.state = TCP_BOUND_INACTIVE;
  r.cookie = BPF_CORE_READ(file, f_inode, i_ino);
  bpf_seq_write(ctx->meta->seq, &r, sizeof(r));
  return 0;
}
