"""The events collector against the kernel: in a fresh namespace, make known
numbers of each connect() outcome (ok, no_ports, refused, timed_out), resets
(SO_LINGER 0) and bind() conflicts, counting in the test what each call
returned; the exporter's counters, read before and after, must rise by
exactly those numbers, per result and service. The same activity in a second
namespace at the same time must not be counted. Then, with --collector.netns,
the second namespace's events appear under its own netns label."""

import errno
import http.client
import os
import socket
import struct
import subprocess
import tempfile
import threading
import time

from harness import *
from exporter_process import ExporterProcess

args = parse_args()
install_cleanup()
require_netns()
res = Results()


CONFIG = """
services:
  - name: web
    ports: [8080]
  - name: closed
    ports: [8081]
  - name: slow
    ports: [8082]
  - name: held
    ports: [8083]
  - name: peer
    ports: [8084]
"""
NO_PORTS = 5  # connects beyond the 10-port range
REFUSED = 3
TIMED_OUT = 2
RESETS = 4
BIND_CONFLICTS = 3


class Nsenter:
    """Runs a command in ns's network namespace only: unlike `ip netns exec`,
    which remounts /sys, it keeps the host's tracefs, which attaching to a
    tracepoint reads."""

    def __init__(self, ns):
        self.ns = ns

    def cmd(self, argv):
        return ["nsenter", f"--net=/var/run/netns/{self.ns.name}"] + list(argv)


# Ten local ports for the test's connects, outside the kernel's default
# range (32768-60999), where the exporter's internal HTTP port (127.0.0.1:0,
# bound at start, exporter/http/web.cpp) lies; narrowed after the exporter
# has started, so all ten are for the test.
TEST_PORT_RANGE = "61000 61009"


def fresh(tag):
    ns = Namespace(tag)
    ns.sysctl("net.ipv4.tcp_tw_reuse", 0)
    ns.sysctl("net.ipv4.tcp_syncookies", 0)
    ns.sysctl("net.ipv4.tcp_syn_retries", 1)
    for addr in ("127.0.0.2/8", "127.0.0.3/8"):
        ns.run(["ip", "addr", "add", addr, "dev", "lo"], check=False)
    return ns


def errno_of(fn):
    try:
        fn()
        return 0
    except OSError as e:
        return e.errno


def workload():
    """Everything runs in the namespace of the calling thread. Returns what
    the calls returned, by (kind, result, service), and the retransmit and
    reset counts the kernel must have seen."""
    held = []  # sockets kept open until the end
    got = {}

    def note(key):
        got[key] = got.get(key, 0) + 1

    web = socket.socket()
    web.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    web.bind(("0.0.0.0", 8080))
    web.listen(128)
    held.append(web)
    # ok + no_ports: 10 ports, 10 + NO_PORTS connects to one destination.
    for _ in range(10 + NO_PORTS):
        s = socket.socket()
        e = errno_of(lambda: s.connect(("127.0.0.1", 8080)))
        if e == 0:
            note(("connect", "ok", "web"))
            held.append(s)
        else:
            note(("connect", {errno.EADDRNOTAVAIL: "no_ports"}.get(e, f"errno{e}"), "web"))
            s.close()
    # refused: nothing listens on 8081.
    for _ in range(REFUSED):
        s = socket.socket()
        e = errno_of(lambda: s.connect(("127.0.0.2", 8081)))
        note(("connect", {errno.ECONNREFUSED: "refused", 0: "ok"}.get(e, f"errno{e}"), "closed"))
        s.close()
    # reset: the server accepts and closes with SO_LINGER 0.
    peer = socket.socket()
    peer.bind(("0.0.0.0", 8084))
    peer.listen(16)
    held.append(peer)
    for _ in range(RESETS):
        c = socket.socket()
        e = errno_of(lambda: c.connect(("127.0.0.3", 8084)))
        note(("connect", "ok" if e == 0 else f"errno{e}", "peer"))
        a, _ = peer.accept()
        a.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        a.close()
        c.settimeout(5)
        e = errno_of(lambda: c.recv(1))
        note(("recv", "reset" if e == errno.ECONNRESET else f"errno{e}", "peer"))
        c.close()
    # timed_out: a listener with a full accept queue (backlog 0 holds one)
    # that never accepts; syncookies off, so further SYNs are dropped.
    slow = socket.socket()
    slow.bind(("127.0.0.1", 8082))
    slow.listen(0)
    held.append(slow)
    first = socket.socket()
    e = errno_of(lambda: first.connect(("127.0.0.1", 8082)))
    note(("connect", "ok" if e == 0 else f"errno{e}", "slow"))
    held.append(first)
    time.sleep(0.2)  # the handshake's last ACK puts it in the queue
    results = []

    def timed():
        s = socket.socket()
        results.append(errno_of(lambda: s.connect(("127.0.0.1", 8082))))
        s.close()

    threads = [threading.Thread(target=timed) for _ in range(TIMED_OUT)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    for e in results:
        note(("connect", {errno.ETIMEDOUT: "timed_out", 0: "ok"}.get(e, f"errno{e}"), "slow"))
    # bind conflicts: a socket holds 8083; more binds to it fail.
    owner = socket.socket()
    owner.bind(("0.0.0.0", 8083))
    held.append(owner)
    for _ in range(BIND_CONFLICTS):
        s = socket.socket()
        e = errno_of(lambda: s.bind(("0.0.0.0", 8083)))
        note(("bind", {errno.EADDRINUSE: "addr_in_use", 0: "ok"}.get(e, f"errno{e}"), "held"))
        s.close()
    for s in held:
        s.close()
    return got


def tcp_mib():
    """The calling thread's namespace's Tcp counters (RetransSegs, OutRsts)."""
    with open("/proc/thread-self/net/snmp") as f:
        rows = [line.split() for line in f if line.startswith("Tcp:")]
    return dict(zip(rows[0][1:], map(int, rows[1][1:])))


def settled_tcp_mib():
    """tcp_mib() once OutRsts stops moving: the exporter resets its internal
    connection after each answer (exporter/http/tls_front.cpp), shortly after
    the scrape returns."""
    last = tcp_mib()
    for _ in range(50):
        time.sleep(0.2)
        now = tcp_mib()
        if now["OutRsts"] == last["OutRsts"]:
            return now
        last = now
    return last


def measured_workload():
    mib_before = settled_tcp_mib()
    got = workload()
    time.sleep(0.5)  # resets and retransmits of closing sockets settle
    mib_after = tcp_mib()
    got[("mib", "RetransSegs", "")] = mib_after["RetransSegs"] - mib_before["RetransSegs"]
    got[("mib", "OutRsts", "")] = mib_after["OutRsts"] - mib_before["OutRsts"]
    return got


def scrape(port):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", "/metrics")
    body = conn.getresponse().read().decode()
    conn.close()
    return parse_exposition(body)


def total(samples, name, **labels):
    return sum(v for n, l, v in samples
               if n == name and all(l.get(k) == w for k, w in labels.items()))


def total_named(samples, name, **labels):
    """total() without service_name="other": the exporter's own scrape
    connections (to its port, and from its front end to its internal port)
    are to ports the config names no service for."""
    return sum(v for n, l, v in samples
               if n == name and l.get("service_name") != "other"
               and all(l.get(k) == w for k, w in labels.items()))


def series(samples, name):
    return {tuple(sorted(l.items())): v for n, l, v in samples if n == name}


tmp = tempfile.TemporaryDirectory()
config_path = os.path.join(tmp.name, "config.yaml")
with open(config_path, "w") as f:
    f.write(CONFIG)

if not os.path.isdir("/sys/kernel/tracing/events") and \
        subprocess.run(["mount", "-t", "tracefs", "nodev", "/sys/kernel/tracing"]).returncode != 0:
    skip("tracefs is not mounted at /sys/kernel/tracing and cannot be mounted")
ns = fresh("ev")
other = fresh("evo")
other.sysctl("net.ipv4.ip_local_port_range", TEST_PORT_RANGE)
# The exporter listens outside the 10-port range, so all 10 are for the test.
exp = ExporterProcess(args.exporter, "--collector.events", f"--config.file={config_path}",
                     ns=Nsenter(ns), listen="127.0.0.1:18085")
ns.sysctl("net.ipv4.ip_local_port_range", TEST_PORT_RANGE)
before = in_netns(ns, scrape, exp.port)
success = total(before, "socket_exporter_collector_success", collector="events")
if success != 1:
    log = "".join(exp.log)
    if "BPF" in log:
        skip("the events collector cannot load its BPF programs here: "
             + next(l for l in reversed(exp.log) if "BPF" in l).strip())
    res.check(False, "the events collector loads", log)
    res.finish()

# The same workload in another namespace at the same time: not counted.
other_result = {}
other_thread = threading.Thread(target=lambda: other_result.update(in_netns(other, workload)))
other_thread.start()
got = in_netns(ns, measured_workload)
other_thread.join(60)
after = in_netns(ns, scrape, exp.port)
exp.stop()

res.equal(got.get(("connect", "no_ports", "web")), NO_PORTS,
          f"the test saw {NO_PORTS} EADDRNOTAVAIL (10-port range)")
res.equal(got.get(("connect", "refused", "closed")), REFUSED, "the test saw the refused connects")
res.equal(got.get(("connect", "timed_out", "slow")), TIMED_OUT,
          "the test saw the timed-out connects")
res.equal(got.get(("recv", "reset", "peer")), RESETS, "the test saw the resets")
res.equal(got.get(("bind", "addr_in_use", "held")), BIND_CONFLICTS, "the test saw EADDRINUSE")
res.equal(other_result.get(("connect", "no_ports", "web")), NO_PORTS,
          "the other namespace ran the same workload")


def delta(name, **labels):
    return total(after, name, **labels) - total(before, name, **labels)


def delta_named(name, **labels):
    return total_named(after, name, **labels) - total_named(before, name, **labels)


for (kind, result, service), count in sorted(got.items()):
    if kind == "connect":
        res.equal(delta("socket_connects_total", result=result, service_name=service,
                        family="ipv4"),
                  count, f"socket_connects_total{{result={result}, service_name={service}}}")
    elif kind == "bind":
        res.equal(delta("socket_bind_failures_total", result=result, service_name=service,
                        protocol="tcp"),
                  count, f"socket_bind_failures_total{{result={result}, service_name={service}}}")
res.equal(delta_named("socket_connects_total"),
          sum(v for k, v in got.items() if k[0] == "connect"),
          "no connect counted beyond the test's own (the other namespace is filtered out)")
res.check(delta("socket_connects_total", service_name="other", result="ok") >= 1,
          "the exporter's own scrape connection is counted (service other)")
res.equal(delta("socket_bind_failures_total"), BIND_CONFLICTS, "no other bind failure counted")
res.equal(delta("socket_connects_total", port_range="registered", result="no_ports"), NO_PORTS,
          "port_range from the remote port")

# Per destination: the failures, with the addresses.
dest = series(after, "socket_connect_destination_failures_total")
want_dest = {
    ("127.0.0.1", "127.0.0.1", "8080", "no_ports"): NO_PORTS,
    ("127.0.0.1", "127.0.0.2", "8081", "refused"): REFUSED,
    ("127.0.0.1", "127.0.0.1", "8082", "timed_out"): TIMED_OUT,
}
got_dest = {(dict(k)["local_address"], dict(k)["remote_address"], dict(k)["remote_port"],
             dict(k)["result"]): v for k, v in dest.items()}
res.equal(got_dest, want_dest, "failures per destination (local, remote, port, result)")

# Resets: each SO_LINGER 0 close is one RST sent (inbound, peer) and one
# received (outbound, peer); each refused connect one RST sent by the kernel
# for the closed port (inbound, closed) and one received (outbound, closed).
# The namespace's own Tcp OutRsts counter must agree with the total sent (the
# exporter's own resets, service other, are left out and settle before).
res.equal(delta_named("socket_tcp_resets_total", side="sent"), got[("mib", "OutRsts", "")],
          "resets sent = the namespace's Tcp OutRsts")
for side, direction, service, count in [("sent", "inbound", "peer", RESETS),
                                        ("received", "outbound", "peer", RESETS),
                                        ("sent", "inbound", "closed", REFUSED),
                                        ("received", "outbound", "closed", REFUSED)]:
    res.equal(delta("socket_tcp_resets_total", side=side, direction=direction,
                    service_name=service),
              count, f"socket_tcp_resets_total{{side={side}, direction={direction}, "
                     f"service_name={service}}}")
# Retransmits: only the timed-out connects' SYNs are retransmitted here; the
# namespace's Tcp RetransSegs counter says how many there were.
res.check(got[("mib", "RetransSegs", "")] >= TIMED_OUT, "each timed-out SYN was retransmitted",
          str(got[("mib", "RetransSegs", "")]))
res.equal(delta("socket_tcp_retransmits_total", direction="outbound", service_name="slow"),
          got[("mib", "RetransSegs", "")], "retransmits = the namespace's Tcp RetransSegs")
res.equal(delta("socket_tcp_retransmits_total"), got[("mib", "RetransSegs", "")],
          "no other retransmit counted")
res.equal(total(after, "socket_exporter_events_dropped_total"), 0, "no event dropped")

# ---- --collector.netns: every namespace, labelled -------------------------
exp = ExporterProcess(args.exporter, "--collector.events", "--collector.netns",
                      f"--config.file={config_path}")
status, _, text = exp.get("/metrics", timeout=60)
before = parse_exposition(text)
got = in_netns(other, workload)
status, _, text = exp.get("/metrics", timeout=60)
after = parse_exposition(text)
exp.stop()
res.equal(delta("socket_connects_total", netns=other.name, result="no_ports"),
          got.get(("connect", "no_ports", "web")),
          "with --collector.netns, the other namespace's no_ports under netns=<its name>")
res.equal(delta("socket_connects_total", netns=ns.name), 0,
          "an idle namespace's counters do not move")
res.check(all("netns" in l for n, l, v in after if n == "socket_connects_total"),
          "every socket_connects_total series has a netns label")

other.close()
ns.close()
res.finish()
