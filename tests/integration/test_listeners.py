"""Listen queues against the kernel, in fresh network namespaces: a listener
that never accepts, filled connection by connection, then overflowed; half-open
connections from forged SYNs; SYN cookies; listeners sharing a port; the
top_other_ports bound. Every exporter value must equal what ss or the
namespace's own /proc/net/netstat (read by the socket-holding process) says at
the same moment, and the exact figures the scenario produces."""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

from harness import *
from harness import _cleanups

args = parse_args()
install_cleanup()
require_netns()
res = Results()

NETSTAT_METRICS = {
    "socket_listen_overflows_total": "TcpExt.ListenOverflows",
    "socket_listen_drops_total": "TcpExt.ListenDrops",
    "socket_syncookies_sent_total": "TcpExt.SyncookiesSent",
    "socket_syncookies_recv_total": "TcpExt.SyncookiesRecv",
    "socket_syncookies_failed_total": "TcpExt.SyncookiesFailed",
}


class Driver:
    """tests/integration/listen_queue.py running in ns, one command at a time."""

    def __init__(self, ns):
        script = os.path.join(args.source_dir, "tests", "integration", "listen_queue.py")
        self.proc = ns.spawn([sys.executable, script], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=sys.stderr, text=True)
        if json.loads(self.proc.stdout.readline() or "{}").get("ready") is not True:
            raise RuntimeError("listen_queue.py did not start")

    def do(self, op, **cmd):
        self.proc.stdin.write(json.dumps(dict(cmd, op=op)) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"listen_queue.py exited during {op}")
        answer = json.loads(line)
        if "error" in answer:
            raise RuntimeError(f"listen_queue.py {op}: {answer['error']}")
        return answer


def fresh(tag, syncookies):
    ns = Namespace(tag)
    ns.sysctl("net.ipv4.tcp_syncookies", syncookies)
    # Forged SYNs come from 10.99.0.0/24: routed to lo but not a local
    # address, so the SYN-ACKs are discarded and the handshakes stay half-open.
    ns.run(["ip", "route", "add", "10.99.0.0/24", "dev", "lo"], check=True)
    return ns


def queues(samples):
    """{(family, port): (length, limit)} of the exporter's series."""
    out = {}
    for n, l, v in samples:
        if n in ("socket_listen_queue_length", "socket_listen_queue_limit"):
            if l.get("protocol") != "tcp":
                raise AssertionError(f"{n} with protocol {l.get('protocol')!r}")
            key = (l["family"], l["port"])
            length, limit = out.get(key, (None, None))
            if n.endswith("length"):
                length = int(v)
            else:
                limit = int(v)
            out[key] = (length, limit)
    return out


def syn_recv(samples):
    return {(l["family"], l["port"]): int(v) for n, l, v in samples if n == "socket_listen_syn_recv"}


def services(samples):
    return {(l["family"], l["port"]): l["service_name"] for n, l, v in samples
            if n == "socket_listen_queue_length"}


def counters(samples):
    return {n: int(v) for n, l, v in samples if n in NETSTAT_METRICS}


def kernel_counters(netstat):
    return {metric: netstat[key] for metric, key in NETSTAT_METRICS.items()}


def ss_queues(ns):
    """{(family, port): (Recv-Q, Send-Q)} summed over ss's LISTEN sockets."""
    out = {}
    for s in ss_sockets(ns):
        if s["protocol"] == "tcp" and s["state"] == "listen":
            key = (s["family"], str(s["lport"]))
            length, limit = out.get(key, (0, 0))
            out[key] = (length + s["rq"], limit + s["wq"])
    return out


def ss_syn_recv(ns):
    """{(family, port): n} of SYN-RECV sockets on a listening port, per ss."""
    sockets = ss_sockets(ns)
    listening = {(s["family"], s["lport"]) for s in sockets
                 if s["protocol"] == "tcp" and s["state"] == "listen"}
    out = {}
    for s in sockets:
        if s["protocol"] == "tcp" and s["state"] == "syn_recv" and (s["family"], s["lport"]) in listening:
            key = (s["family"], str(s["lport"]))
            out[key] = out.get(key, 0) + 1
    return out


def scrape_with_kernel(ns, driver, *exporter_args):
    """The exporter's samples with the kernel's counters read just before and
    just after; the caller makes sure nothing moves them in between."""
    before = kernel_counters(driver.do("netstat"))
    samples = once(ns, args.exporter, *exporter_args)
    after = kernel_counters(driver.do("netstat"))
    res.equal(before, after, "the kernel's counters held still around the scrape")
    return samples, after


# 1. Backlog 8, never accepting: fill, overflow, drain.
ns = fresh("lq1", 0)
d = Driver(ns)
lid = d.do("listen", addr="127.0.0.1", port=8080, backlog=8)["id"]
res.equal(d.do("connect", to=["127.0.0.1", 8080], count=8, wait=2.0),
          {"connected": 8, "pending": 0}, "8 connects to the backlog-8 listener complete")
s, kernel = scrape_with_kernel(ns, d)
res.equal(queues(s), {("ipv4", "8080"): (8, 8)}, "8 queued: length 8, limit 8")
res.equal(ss_queues(ns), {("ipv4", "8080"): (8, 8)}, "ss agrees: Recv-Q 8, Send-Q 8")
res.equal(counters(s)["socket_listen_overflows_total"], 0, "no overflow yet")
res.equal(counters(s), kernel, "all five counters equal the namespace's /proc/net/netstat")
res.equal(services(s), {("ipv4", "8080"): "other"}, "port 8080 is service_name other")

# Where this kernel draws the line: sk_acceptq_is_full() compares with '>'
# on kernels that queue backlog+1 connections, with '>=' on others.
extra = d.do("connect", to=["127.0.0.1", 8080], count=1, wait=1.0)["connected"]
capacity = 8 + extra
print(f"note: this kernel queues {capacity} connections on a backlog of 8")
d.do("close_pending")
s, kernel = scrape_with_kernel(ns, d)
res.check(capacity in (8, 9), "the 9th connect is queued or dropped, nothing else", capacity)
res.equal(queues(s), {("ipv4", "8080"): (capacity, 8)},
          f"at the edge: length {capacity} (what the kernel queued), limit 8")
res.equal(ss_queues(ns), {("ipv4", "8080"): (capacity, 8)}, "ss agrees at the edge")
res.equal(counters(s), kernel, "counters equal the kernel's at the edge")
overflows_at_edge = kernel["socket_listen_overflows_total"]
res.equal(overflows_at_edge, 1 - extra, "overflow counted only if the 9th was dropped")

# Three more attempts: the queue is full, each SYN is dropped. Closing the
# pending clients stops their SYN retransmissions, so the counter settles.
r = d.do("connect", to=["127.0.0.1", 8080], count=3, wait=0.1)
res.equal(r, {"connected": 0, "pending": 3}, "3 more connects do not complete")
d.do("close_pending")
s, kernel = scrape_with_kernel(ns, d)
got = counters(s)
res.equal(got, kernel, "overflow and drop counters equal the kernel's after overflowing")
res.check(got["socket_listen_overflows_total"] >= overflows_at_edge + 3,
          "socket_listen_overflows_total rose by at least the 3 dropped SYNs",
          f"{overflows_at_edge} -> {got['socket_listen_overflows_total']}")
res.equal(got["socket_listen_drops_total"], got["socket_listen_overflows_total"],
          "every drop here is an overflow")
res.equal(queues(s), {("ipv4", "8080"): (capacity, 8)}, "the queue is still full")

# The /proc/net source has the length but not the limit.
s = once(ns, args.exporter, "--socket.source=procfs")
res.equal(queues(s), {("ipv4", "8080"): (capacity, 0)},
          "--socket.source=procfs: same length, limit 0 (not in /proc/net/tcp)")

if shutil.which("promtool"):
    r = ns.run([args.exporter, "--once"])
    lint = subprocess.run(["promtool", "check", "metrics"], input=r.stdout, capture_output=True,
                          text=True)
    res.equal((lint.returncode, lint.stdout + lint.stderr), (0, ""),
              "promtool check metrics accepts the output")

res.equal(d.do("accept", id=lid), {"accepted": capacity}, "the listener accepts every queued one")
s = once(ns, args.exporter)
res.equal(queues(s), {("ipv4", "8080"): (0, 8)}, "after accepting: length 0, limit 8")
res.equal(ss_queues(ns), {("ipv4", "8080"): (0, 8)}, "ss agrees after accepting")
ns.close()

# 2. Half-open connections, and drops that are not overflows: forged SYNs
#    that are never completed fill the SYN queue, not the accept queue.
ns = fresh("lq2", 0)
d = Driver(ns)
d.do("listen", addr="0.0.0.0", port=8081, backlog=16)
d.do("syn", src="10.99.0.1", dst=["127.0.0.1", 8081], count=5)
wait_for(lambda: ss_syn_recv(ns).get(("ipv4", "8081")) == 5, what="5 SYN-RECV on 8081 in ss")
s, kernel = scrape_with_kernel(ns, d)
res.equal(syn_recv(s), {("ipv4", "8081"): 5}, "5 forged SYNs: socket_listen_syn_recv 5")
res.equal(queues(s), {("ipv4", "8081"): (0, 16)}, "half-open connections are not in the accept queue")

d.do("listen", addr="0.0.0.0", port=8082, backlog=2)
d.do("syn", src="10.99.0.2", dst=["127.0.0.1", 8082], count=6)
time.sleep(0.2)
s, kernel = scrape_with_kernel(ns, d)
held = ss_syn_recv(ns).get(("ipv4", "8082"), 0)
print(f"note: a backlog-2 listener keeps {held} of 6 half-open connections")
res.equal(syn_recv(s), {("ipv4", "8081"): 5, ("ipv4", "8082"): held},
          "socket_listen_syn_recv equals ss per listening port")
res.check(0 < held < 6, "the SYN queue of the backlog-2 listener is bounded", held)
res.equal(counters(s), kernel, "counters equal the kernel's")
res.equal((counters(s)["socket_listen_drops_total"], counters(s)["socket_listen_overflows_total"]),
          (6 - held, 0), "the refused SYNs count as drops, not as overflows")
ns.close()

# 3. SYN cookies (tcp_syncookies=2: every SYN gets one).
ns = fresh("lq3", 2)
d = Driver(ns)
d.do("listen", addr="127.0.0.1", port=8083, backlog=8)
res.equal(d.do("connect", to=["127.0.0.1", 8083], count=3, wait=2.0),
          {"connected": 3, "pending": 0}, "3 connects complete through cookies")
d.do("syn", src="10.99.0.7", dst=["127.0.0.1", 8083], count=1)  # a cookie nobody returns
d.do("ack", src="10.99.0.9", dst=["127.0.0.1", 8083])  # a forged cookie
time.sleep(0.2)
s, kernel = scrape_with_kernel(ns, d)
got = counters(s)
res.equal(got, kernel, "cookie counters equal the kernel's")
res.equal((got["socket_syncookies_sent_total"], got["socket_syncookies_recv_total"],
           got["socket_syncookies_failed_total"]), (4, 3, 1),
          "4 cookies sent, 3 returned valid, 1 forged")
res.equal(queues(s), {("ipv4", "8083"): (3, 8)}, "cookie connections wait in the accept queue")
res.equal(syn_recv(s), {("ipv4", "8083"): 0}, "cookies keep no half-open sockets")
ns.close()

# 4. Listeners sharing a port are summed per (family, port).
ns = fresh("lq4", 1)
d = Driver(ns)
d.do("listen", addr="0.0.0.0", port=8090, backlog=4, reuseport=True)
d.do("listen", addr="0.0.0.0", port=8090, backlog=4, reuseport=True)
d.do("listen", addr="::", port=8090, backlog=5, v6only=True)
d.do("listen", addr="::", port=8091, backlog=7, v6only=False)  # dual stack
d.do("listen", addr="127.0.0.1", port=8092, backlog=3)
d.do("listen", addr="127.0.0.2", port=8092, backlog=3)
d.do("connect", to=["127.0.0.1", 8090], count=3, wait=2.0)
d.do("connect", to=["::1", 8090], count=2, wait=2.0)
d.do("connect", to=["127.0.0.1", 8091], count=2, wait=2.0)  # IPv4 clients of an ipv6 listener
d.do("connect", to=["127.0.0.2", 8092], count=1, wait=2.0)
s = once(ns, args.exporter)
want = {("ipv4", "8090"): (3, 8), ("ipv6", "8090"): (2, 5), ("ipv6", "8091"): (2, 7),
        ("ipv4", "8092"): (1, 6)}
res.equal(queues(s), want, "sums per (family, port): reuseport pair, v6only, dual stack, two addresses")
res.equal(ss_queues(ns), want, "ss agrees with the sums")
ns.close()

# 5. top_other_ports bounds the series; the rest is summed into port="other".
ns = fresh("lq5", 1)
workdir = tempfile.mkdtemp(prefix="se-listeners-")
_cleanups.append(lambda: shutil.rmtree(workdir, ignore_errors=True))
config_path = os.path.join(workdir, "config.yaml")
with open(config_path, "w") as f:
    f.write("services:\n  - name: ssh\n    ports: [22]\nlisteners:\n  top_other_ports: 2\n")
d = Driver(ns)
d.do("listen", addr="0.0.0.0", port=22, backlog=128)
for port, queued in ((9001, 1), (9002, 4), (9003, 2), (9004, 3)):
    d.do("listen", addr="0.0.0.0", port=port, backlog=10)
    d.do("connect", to=["127.0.0.1", port], count=queued, wait=2.0)
s = once(ns, args.exporter, f"--config.file={config_path}")
res.equal(queues(s), {("ipv4", "22"): (0, 128), ("ipv4", "9002"): (4, 10),
                      ("ipv4", "9004"): (3, 10), ("ipv4", "other"): (3, 20)},
          "top 2 other ports by fill (9002, 9004), the service port, and the rest summed")
res.equal(services(s), {("ipv4", "22"): "ssh", ("ipv4", "9002"): "other",
                        ("ipv4", "9004"): "other", ("ipv4", "other"): "other"},
          "service names from the config")
total = ss_queues(ns)
res.equal((sum(q[0] for q in queues(s).values()), sum(q[1] for q in queues(s).values())),
          (sum(q[0] for q in total.values()), sum(q[1] for q in total.values())),
          "nothing dropped: the series sum to ss's totals")
ns.close()

res.finish()
