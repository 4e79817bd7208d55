// The BPF side of BpfSocketWalk (collectors/sources/bpf_socket_walk.h): ONE walk
// over the kernel's shared TCP and UDP tables that reports every socket of
// every network namespace, tagged with its namespace's inode.
//
// Why not netlink or the tcp/udp BPF iterators: both filter by the caller's
// namespace while walking the whole (shared) table, so K namespaces cost K
// walks. This program instead walks the tables itself, from an iter/task
// program that runs it once (for the first task whose namespace uses the
// shared tables), with bpf_loop over the buckets and CO-RE reads of the
// chains (read under RCU without the bucket locks, like the kernel's own
// lockless lookups; a socket moving during the walk may be missed or seen
// twice, as with a netlink dump under churn). Tables, in the order each
// namespace must see its sockets (ordering contract, socket_source.h):
//   bhash2    TCP sockets bound but neither listening nor connected
//             (TCP_BOUND_INACTIVE to sock_diag), found among the owners of
//             every bind bucket;
//   lhash2    TCP listeners;
//   ehash     every other TCP socket, TIME_WAIT and request sockets included;
//   udp       unconnected UDP sockets, then (second pass) connected ones.
// Fields mirror sock_diag (net/ipv4/inet_diag.c, tcp_diag.c): TIME_WAIT
// reports its sub-state, request sockets SYN_RECV, both with zero queues;
// LISTEN: rqueue = accept queue, wqueue = backlog; other TCP: unread bytes
// and unacknowledged bytes; UDP queues are not read (0).
//
// Records go to a ring buffer that user space drains after each slice of
// SLICE buckets (one iterator run each); a full ring (`dropped`) or a chain
// longer than the loop bounds (`truncated`) makes user space discard the
// walk and use netlink.
//
// SPDX-License-Identifier: GPL-2.0 (BPF programs that read kernel memory
// must carry a GPL-compatible license to call the helpers used here.)
#include "vmlinux.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#define AF_INET 2
#define AF_INET6 10
#define TCP_ESTABLISHED 1
#define TCP_SYN_RECV 3
#define TCP_TIME_WAIT 6
#define TCP_CLOSE 7
#define TCP_LISTEN 10
#define TCP_NEW_SYN_RECV 12
#define TCP_BOUND_INACTIVE 13
// Longest hash chain followed; ehash and udp chains average below 1.
#define MAX_CHAIN 64

char LICENSE[] SEC("license") = "GPL";

// Keep in sync with WireRecord in collectors/sources/bpf_socket_walk.cpp.
struct netns_socket_record {
  __u32 netns;     // inode of the socket's network namespace
  __u8 protocol;   // 0 tcp, 1 udp
  __u8 family;     // AF_INET, AF_INET6
  __u8 state;      // as sock_diag reports it
  __u8 reserved0;
  __u16 local_port;   // host byte order
  __u16 remote_port;  // host byte order
  __u32 local[4];     // network byte order; IPv4 in local[0]
  __u32 remote[4];
  __u32 rqueue;
  __u32 wqueue;
  __u64 cgroup_id;  // owner's cgroup v2 ID; 0 for TIME_WAIT and request sockets
};

// 16 MiB: about 230,000 records per slice (1/16 of the established hash on
// a 262,144-bucket table); beyond that the walk is dropped and netlink used.
struct {
  __uint(type, BPF_MAP_TYPE_RINGBUF);
  __uint(max_entries, 16 << 20);
} records SEC(".maps");

// The walk goes in slices of at most SLICE buckets, one slice per run of
// the iterator, so that user space can drain the ring between slices: the
// ring then only ever holds one slice's sockets. Progress lives here; user
// space zeroes it before a walk and sets `run_pending` before each run.
#define SLICE 16384
enum walk_table { BIND = 0, LISTEN = 1, ESTABLISHED = 2, UDP_UNCONNECTED = 3, UDP_CONNECTED = 4,
                  FINISHED = 5 };
// One struct, so that its layout is fixed (WalkState in bpf_socket_walk.cpp).
struct walk_state {
  __u64 dropped;      // records that did not fit in the ring
  __u64 truncated;    // chains cut short by the loop bounds
  __u64 run_pending;  // set by user space; the run's slice clears it
  __u32 table;        // enum walk_table: where the next slice starts
  __u32 next_bucket;
  __u32 table_netns;  // inode of the namespace whose tables are walked
  __u32 reserved;
};
struct walk_state walk = {};

static __always_inline void emit(struct netns_socket_record *r) {
  if (bpf_ringbuf_output(&records, r, sizeof(*r), 0) != 0) __sync_fetch_and_add(&walk.dropped, 1);
}

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

// The cgroup v2 ID of a full socket's owner, as INET_DIAG_CGROUP_ID reports
// it: the kernfs node ID of sk->sk_cgrp_data.cgroup (kernel 5.15+ layout).
static __always_inline __u64 sock_cgroup_id(struct sock *sk) {
  if (!bpf_core_field_exists(sk->sk_cgrp_data)) return 0;
  struct cgroup *cgrp = BPF_CORE_READ(sk, sk_cgrp_data.cgroup);
  if (!cgrp) return 0;
  return BPF_CORE_READ(cgrp, kn, id);
}

static __always_inline void emit_tcp(struct sock_common *skc) {
  struct netns_socket_record r = {};
  fill_common(&r, skc);
  if (r.family != AF_INET && r.family != AF_INET6) return;
  const __u8 state = BPF_CORE_READ(skc, skc_state);
  if (state == TCP_TIME_WAIT) {
    r.state = BPF_CORE_READ((struct inet_timewait_sock *)skc, tw_substate);
  } else if (state == TCP_NEW_SYN_RECV) {
    r.state = TCP_SYN_RECV;
  } else {
    struct tcp_sock *tp = (struct tcp_sock *)skc;
    r.state = state;
    r.cgroup_id = sock_cgroup_id((struct sock *)skc);
    if (state == TCP_LISTEN) {
      r.rqueue = BPF_CORE_READ(tp, inet_conn.icsk_inet.sk.sk_ack_backlog);
      r.wqueue = BPF_CORE_READ(tp, inet_conn.icsk_inet.sk.sk_max_ack_backlog);
    } else {
      const __s32 unread = (__s32)(BPF_CORE_READ(tp, rcv_nxt) - BPF_CORE_READ(tp, copied_seq));
      r.rqueue = unread > 0 ? (__u32)unread : 0;
      r.wqueue = BPF_CORE_READ(tp, write_seq) - BPF_CORE_READ(tp, snd_una);
    }
  }
  emit(&r);
}

struct walk_ctx {
  struct inet_hashinfo *hashinfo;
  struct udp_table *udp;
  int udp_connected;
  __u32 base;  // first bucket of this slice
};

// A chain of sock_common linked through skc_nulls_node (listening and
// established hashes). The low bit marks the end (a "nulls" value).
static __always_inline void walk_nulls_chain(struct hlist_nulls_node *node) {
  for (int j = 0; j < MAX_CHAIN; j++) {
    if ((unsigned long)node & 1UL) return;
    struct sock_common *skc = (struct sock_common *)((char *)node -
        bpf_core_field_offset(struct sock_common, skc_nulls_node));
    emit_tcp(skc);
    node = BPF_CORE_READ(node, next);
  }
  if (!((unsigned long)node & 1UL)) __sync_fetch_and_add(&walk.truncated, 1);
}

static long listen_bucket(__u32 i, struct walk_ctx *c) {
  const __u32 bucket = c->base + i;  // a plain variable: no CO-RE relocation
  struct inet_hashinfo *hi = c->hashinfo;
  struct inet_listen_hashbucket *lhash2 = BPF_CORE_READ(hi, lhash2);
  struct hlist_nulls_node *first = BPF_CORE_READ(&lhash2[bucket], nulls_head.first);
  walk_nulls_chain(first);
  return 0;
}

static long established_bucket(__u32 i, struct walk_ctx *c) {
  const __u32 bucket = c->base + i;  // a plain variable: no CO-RE relocation
  struct inet_hashinfo *hi = c->hashinfo;
  struct inet_ehash_bucket *ehash = BPF_CORE_READ(hi, ehash);
  struct hlist_nulls_node *first = BPF_CORE_READ(&ehash[bucket], chain.first);
  walk_nulls_chain(first);
  return 0;
}

struct owner_ctx {
  struct hlist_node *owner;
};

// One owner socket of a bind bucket per call: the list can be as long as
// the connections accepted on a listening port.
static long bind_owner(__u32 i, struct owner_ctx *o) {
  struct hlist_node *owner = o->owner;
  if (!owner) return 1;
  struct sock_common *skc = (struct sock_common *)((char *)owner -
      bpf_core_field_offset(struct sock_common, skc_bind_node));
  if (BPF_CORE_READ(skc, skc_state) == TCP_CLOSE && BPF_CORE_READ(skc, skc_num) != 0) {
    struct netns_socket_record r = {};
    fill_common(&r, skc);
    r.state = TCP_BOUND_INACTIVE;
    r.cgroup_id = sock_cgroup_id((struct sock *)skc);
    if (r.family == AF_INET || r.family == AF_INET6) emit(&r);
  }
  o->owner = BPF_CORE_READ(owner, next);
  return 0;
}

// bhash2: buckets of inet_bind2_bucket (one per namespace, port, address),
// each with the sockets bound there.
static long bind_bucket(__u32 i, struct walk_ctx *c) {
  const __u32 bucket = c->base + i;  // a plain variable: no CO-RE relocation
  struct inet_hashinfo *hi = c->hashinfo;
  struct inet_bind_hashbucket *bhash2 = BPF_CORE_READ(hi, bhash2);
  struct hlist_node *tb_node = BPF_CORE_READ(&bhash2[bucket], chain.first);
  int j = 0;
  for (; j < MAX_CHAIN && tb_node; j++) {
    struct inet_bind2_bucket *tb2 = (struct inet_bind2_bucket *)((char *)tb_node -
        bpf_core_field_offset(struct inet_bind2_bucket, node));
    struct owner_ctx o = {BPF_CORE_READ(tb2, owners.first)};
    bpf_loop(1 << 22, bind_owner, &o, 0);
    if (o.owner) __sync_fetch_and_add(&walk.truncated, 1);
    tb_node = BPF_CORE_READ(tb_node, next);
  }
  if (tb_node) __sync_fetch_and_add(&walk.truncated, 1);
  return 0;
}

static long udp_bucket(__u32 i, struct walk_ctx *c) {
  const __u32 bucket = c->base + i;  // a plain variable: no CO-RE relocation
  struct udp_table *table = c->udp;
  struct udp_hslot *hash = BPF_CORE_READ(table, hash);
  struct hlist_node *node = BPF_CORE_READ(&hash[bucket], head.first);
  for (int j = 0; j < MAX_CHAIN && node; j++) {
    struct sock_common *skc = (struct sock_common *)((char *)node -
        bpf_core_field_offset(struct sock_common, skc_node));
    const __u8 state = BPF_CORE_READ(skc, skc_state);
    if ((state == TCP_ESTABLISHED) == c->udp_connected &&
        (state == TCP_ESTABLISHED || state == TCP_CLOSE)) {
      struct netns_socket_record r = {};
      fill_common(&r, skc);
      r.protocol = 1;
      r.state = state;
      r.cgroup_id = sock_cgroup_id((struct sock *)skc);
      if (r.family == AF_INET || r.family == AF_INET6) emit(&r);
    }
    node = BPF_CORE_READ(node, next);
  }
  if (node) __sync_fetch_and_add(&walk.truncated, 1);
  return 0;
}

static __always_inline __u32 table_size(struct inet_hashinfo *hi, struct udp_table *udp, __u32 t) {
  switch (t) {
    case BIND:
      return BPF_CORE_READ(hi, bhash_size);
    case LISTEN:
      return BPF_CORE_READ(hi, lhash2_mask) + 1;
    case ESTABLISHED:
      return BPF_CORE_READ(hi, ehash_mask) + 1;
    case UDP_UNCONNECTED:
    case UDP_CONNECTED:
      return udp ? BPF_CORE_READ(udp, mask) + 1 : 0;
  }
  return 0;
}

// One slice per run: the first task of the run whose namespace uses the
// shared tables (hashinfo->pernet false) walks the next SLICE buckets.
SEC("iter/task")
int walk_all(struct bpf_iter__task *ctx) {
  struct task_struct *task = ctx->task;
  if (!task || !walk.run_pending || walk.table >= FINISHED) return 0;
  struct net *net = BPF_CORE_READ(task, nsproxy, net_ns);
  if (!net) return 0;
  struct inet_hashinfo *hi = BPF_CORE_READ(net, ipv4.tcp_death_row.hashinfo);
  if (!hi || BPF_CORE_READ(hi, pernet)) return 0;
  struct udp_table *udp = BPF_CORE_READ(net, ipv4.udp_table);
  const __u32 netns = BPF_CORE_READ(net, ns.inum);
  // Every slice must come from the same tables.
  if (walk.table_netns != 0 && walk.table_netns != netns) return 0;
  walk.table_netns = netns;
  walk.run_pending = 0;

  struct walk_ctx c = {};
  c.hashinfo = hi;
  c.udp = udp;
  const __u32 t = walk.table;
  const __u32 size = table_size(hi, udp, t);
  __u32 count = 0;
  if (walk.next_bucket < size) {
    count = size - walk.next_bucket;
    if (count > SLICE) count = SLICE;
    c.base = walk.next_bucket;
    switch (t) {
      case BIND:
        bpf_loop(count, bind_bucket, &c, 0);
        break;
      case LISTEN:
        bpf_loop(count, listen_bucket, &c, 0);
        break;
      case ESTABLISHED:
        bpf_loop(count, established_bucket, &c, 0);
        break;
      case UDP_UNCONNECTED:
      case UDP_CONNECTED:
        c.udp_connected = t == UDP_CONNECTED;
        bpf_loop(count, udp_bucket, &c, 0);
        break;
    }
  }
  if (walk.next_bucket + count >= size) {
    walk.table = t + 1;
    walk.next_bucket = 0;
  } else {
    walk.next_bucket += count;
  }
  return 0;
}
