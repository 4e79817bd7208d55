"""Core contract against the real thing: a known population in a fresh network
namespace (plus a peer namespace behind a veth pair, so some connections have
only one end here), counted by the exporter's --once and by ss. Every
(protocol, family, state), (service_name, direction) and (port_range,
direction) count must match exactly, for the netlink and the procfs source."""

import os
import platform

from harness import *

args = parse_args()
install_cleanup()
require_netns()
res = Results()

ns = Namespace("core")
peer = Namespace("peer")
veth_a, veth_b = f"sea{os.getpid() % 100000}", f"seb{os.getpid() % 100000}"
ns.run(["ip", "link", "add", veth_a, "type", "veth", "peer", "name", veth_b, "netns", peer.name],
       check=True)
for n, dev, v4, v6 in ((ns, veth_a, "192.0.2.1/24", "2001:db8::1/64"),
                       (peer, veth_b, "192.0.2.2/24", "2001:db8::2/64")):
    n.run(["ip", "addr", "add", v4, "dev", dev], check=True)
    n.run(["ip", "addr", "add", v6, "dev", dev, "nodad"], check=True)
    n.run(["ip", "link", "set", dev, "up"], check=True)
# Keep TIME_WAIT / FIN_WAIT2 sockets for the whole test.
ns.sysctl("net.ipv4.tcp_fin_timeout", 60)

start_population(peer, args.source_dir, {
    "tcp_listen": [{"addr": "192.0.2.2", "port": 80}, {"addr": "2001:db8::2", "port": 80},
                   {"addr": "0.0.0.0", "port": 5432}],
})
start_population(ns, args.source_dir, {
    "tcp_listen": [{"addr": "0.0.0.0", "port": 22}, {"addr": "::", "port": 80, "v6only": False},
                   {"addr": "127.0.0.1", "port": 443}, {"addr": "::1", "port": 8080},
                   {"addr": "0.0.0.0", "port": 5432}, {"addr": "192.0.2.1", "port": 25}],
    "tcp_connect": [
        {"to": ["127.0.0.1", 22], "count": 120},
        {"to": ["127.0.0.1", 80], "count": 40},          # IPv4 client, dual-stack server
        {"to": ["::1", 80], "count": 20},
        {"to": ["127.0.0.1", 443], "count": 30, "close": "both"},          # client TIME_WAIT
        {"to": ["::1", 8080], "count": 25, "close": "client"},             # FIN_WAIT2/CLOSE_WAIT
        {"to": ["127.0.0.1", 5432], "count": 20, "close": "server_first"},  # server TIME_WAIT
        {"to": ["192.0.2.2", 80], "count": 60},
        {"to": ["2001:db8::2", 80], "count": 30},
        {"to": ["192.0.2.2", 5432], "count": 20, "close": "both"},
        {"to": ["192.0.2.1", 25], "count": 10},
    ],
    "tcp_bind_only": [{"addr": "127.0.0.1", "port": 0}],
    "udp_bind": [{"addr": "0.0.0.0", "port": 53}, {"addr": "::", "port": 53},
                 {"addr": "127.0.0.1", "port": 161}, {"addr": "0.0.0.0", "port": 0}],
    "udp_connect": [{"to": ["127.0.0.1", 53], "count": 5}, {"to": ["::1", 53], "count": 3},
                    {"to": ["192.0.2.2", 53], "count": 4}],
})
start_population(peer, args.source_dir, {
    "tcp_connect": [{"to": ["192.0.2.1", 22], "count": 50}, {"to": ["2001:db8::1", 80], "count": 15},
                    {"to": ["192.0.2.1", 5432], "count": 10}],
})

kernel = tuple(int(x) for x in platform.release().split("-")[0].split(".")[:2])
bound_inactive = 1 if kernel >= (6, 8) else 0


def key(s):
    return (s["protocol"], s["family"], s["state"], s["laddr"], s["lport"], s["raddr"], s["rport"])


for source, extra in (("netlink", 0), ("procfs", 0)):
    # The bound-only socket is visible to netlink (kernel >= 6.8) but neither to
    # ss 6.1 nor to /proc/net/tcp.
    hidden = bound_inactive if source == "netlink" else 0
    for attempt in range(3):
        before = ss_sockets(ns)
        samples = once(ns, args.exporter, f"--socket.source={source}")
        after = ss_sockets(ns)
        if sorted(map(key, before)) == sorted(map(key, after)):
            break
    res.check(sorted(map(key, before)) == sorted(map(key, after)),
              f"[{source}] population stable while measuring")
    res.check(len(before) > 500, f"[{source}] population is large ({len(before)} sockets)")

    ref = classify_reference(before, DEFAULT_SERVICES, DEFAULT_RANGES)
    got = metric_by(samples, "socket_connections", ("protocol", "family", "state"))
    want = count_by(ref, ("protocol", "family", "state"))
    if hidden:
        want[("tcp", "ipv4", "bound_inactive")] = hidden
    res.equal(got, want, f"[{source}] counts by (protocol, family, state) match ss")

    got = metric_by(samples, "socket_connections", ("service_name", "direction"))
    want = count_by(ref, ("service_name", "direction"))
    if hidden:
        want[("other", "inbound")] = want.get(("other", "inbound"), 0) + hidden
    res.equal(got, want, f"[{source}] counts by (service_name, direction) match ss")

    got = metric_by(samples, "socket_connections", ("port_range", "direction"))
    want = count_by(ref, ("port_range", "direction"))
    if hidden:
        # The bound-only socket holds an ephemeral port: registered or dynamic.
        pass
    if not hidden:
        res.equal(got, want, f"[{source}] counts by (port_range, direction) match ss")
    else:
        total_got = sum(got.values())
        total_want = sum(want.values()) + hidden
        res.equal(total_got, total_want, f"[{source}] port_range totals match ss")

    # Spot checks that pin the classification rules down.
    by_full = metric_by(samples, "socket_connections",
                        ("protocol", "family", "state", "direction", "service_name"))
    res.equal(by_full.get(("tcp", "ipv6", "established", "inbound", "http")), 40 + 20 + 15,
              f"[{source}] dual-stack :80 accepted IPv4 (mapped) and IPv6 connections are inbound http")
    res.equal(by_full.get(("tcp", "ipv4", "established", "outbound", "http")), 40 + 60,
              f"[{source}] IPv4 clients of :80 (local and peer) are outbound http")
    res.equal(by_full.get(("tcp", "ipv4", "time_wait", "outbound", "https")), 30,
              f"[{source}] client-side TIME_WAIT to :443 is outbound https")
    res.equal(by_full.get(("tcp", "ipv4", "time_wait", "inbound", "other")), 20,
              f"[{source}] server-side TIME_WAIT on :5432 is inbound other")
    res.equal(by_full.get(("udp", "ipv4", "established", "outbound", "dns")), 5 + 4,
              f"[{source}] connected UDP sockets to :53 are outbound dns")

    states = {labels["state"] for n, labels, v in samples
              if n == "socket_connections" and labels["protocol"] == "tcp"}
    res.equal(sorted(states), sorted(["established", "syn_sent", "syn_recv", "fin_wait1",
                                      "fin_wait2", "time_wait", "close", "close_wait",
                                      "last_ack", "listen", "closing", "bound_inactive"]),
              f"[{source}] every TCP state is published, zeros included")
    success = {labels["collector"]: v for n, labels, v in samples
               if n == "socket_exporter_collector_success"}
    res.check(success and all(v == 1 for v in success.values()),
              f"[{source}] every collector succeeded", str(success))
    scanned = [v for n, labels, v in samples if n == "socket_exporter_sockets_scanned"]
    res.equal(scanned, [float(len(before) + hidden)], f"[{source}] sockets_scanned equals ss count")

res.finish()
