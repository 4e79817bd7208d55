"""Ephemeral port exhaustion against the kernel's own behaviour, in fresh
namespaces with a 10-port range: the exporter's numbers must be exact and
must agree with what connect() actually does."""

from harness import *

args = parse_args()
install_cleanup()
require_netns()
res = Results()


def gauge(samples, name, **labels):
    values = [v for n, l, v in samples if n == name and all(l.get(k) == w for k, w in labels.items())]
    return values[0] if len(values) == 1 else values


def fresh(tag):
    ns = Namespace(tag)
    ns.sysctl("net.ipv4.ip_local_port_range", "40000 40009")
    ns.sysctl("net.ipv4.tcp_tw_reuse", 0)
    ns.run(["ip", "addr", "add", "127.0.0.2/8", "dev", "lo"], check=False)
    return ns


# 1. Ten connections to one destination fill it; the 11th fails; a second
#    destination still works and the max stays at 1.
ns = fresh("eph1")
_, info = start_population(ns, args.source_dir, {
    "tcp_listen": [{"addr": "0.0.0.0", "port": 8080}],
    "tcp_connect": [{"to": ["127.0.0.1", 8080], "count": 11}],
})
res.equal(info["errors"], ["connect 127.0.0.1:8080: Cannot assign requested address"],
          "the 11th connect() to 127.0.0.1:8080 fails with EADDRNOTAVAIL")
s = once(ns, args.exporter)
res.equal(gauge(s, "socket_ephemeral_range_ports"), 10.0, "range_ports is 10")
res.equal(gauge(s, "socket_ephemeral_destination_utilization_max_ratio", protocol="tcp"), 1.0,
          "10 connections to one destination: max utilization exactly 1.0")
res.equal(gauge(s, "socket_ephemeral_destination_ports_used", remote_address="127.0.0.1",
                remote_port="8080"), 10.0, "the destination is listed with 10 ports")
_, info = start_population(ns, args.source_dir, {"tcp_connect": [{"to": ["127.0.0.2", 8080], "count": 10}]})
res.equal(info["errors"], [], "10 more connections to 127.0.0.2:8080 succeed")
s = once(ns, args.exporter)
res.equal(gauge(s, "socket_ephemeral_destination_utilization_max_ratio", protocol="tcp"), 1.0,
          "max stays at 1.0 with two full destinations")
listed = {l["remote_address"]: v for n, l, v in s
          if n == "socket_ephemeral_destination_ports_used" and l["protocol"] == "tcp"}
res.equal(listed, {"127.0.0.1": 10.0, "127.0.0.2": 10.0}, "two destinations listed, 10 ports each")
res.equal(gauge(s, "socket_ephemeral_ports_used", protocol="tcp"), 10.0,
          "whole-range occupancy counts distinct ports (10), not sockets (20)")
ns.close()

# 2. Reserved ports shrink the range; a listener and a bound-only socket in the
#    range are bind-locked and raise the utilization.
ns = fresh("eph2")
ns.sysctl("net.ipv4.ip_local_reserved_ports", "40000-40001")
start_population(ns, args.source_dir, {
    "tcp_listen": [{"addr": "0.0.0.0", "port": 8080}, {"addr": "0.0.0.0", "port": 40003}],
    "tcp_bind_only": [{"addr": "127.0.0.1", "port": 40004}],
    "tcp_connect": [{"to": ["127.0.0.1", 8080], "count": 3}],
})
s = once(ns, args.exporter)
res.equal(gauge(s, "socket_ephemeral_range_ports"), 8.0, "reserved 40000-40001 leave 8 ports")
res.equal(gauge(s, "socket_ephemeral_bind_locked_ports", protocol="tcp"), 2.0,
          "listener on 40003 and bound socket on 40004 are bind-locked")
res.equal(gauge(s, "socket_ephemeral_destination_utilization_max_ratio", protocol="tcp"), 0.5,
          "3 connections over capacity 8-2=6: utilization 0.5")
_, info = start_population(ns, args.source_dir, {"tcp_connect": [{"to": ["127.0.0.1", 8080], "count": 4}]})
res.equal(len(info["errors"]), 1, "the kernel agrees: only 3 more connects fit (capacity 6)")
ns.close()

# 3. TIME_WAIT sockets hold their destination's ports.
ns = fresh("eph3")
start_population(ns, args.source_dir, {
    "tcp_listen": [{"addr": "0.0.0.0", "port": 8080}],
    "tcp_connect": [{"to": ["127.0.0.1", 8080], "count": 4, "close": "both"},
                    {"to": ["127.0.0.1", 8080], "count": 2}],
})
s = once(ns, args.exporter)
res.equal(gauge(s, "socket_ephemeral_destination_utilization_max_ratio", protocol="tcp"), 0.6,
          "4 TIME_WAIT + 2 established to one destination: 0.6")
res.equal(gauge(s, "socket_ephemeral_destination_time_wait_ports", remote_port="8080"), 4.0,
          "4 of them in TIME_WAIT")
ns.close()

# 4. UDP is counted apart from TCP.
ns = fresh("eph4")
start_population(ns, args.source_dir, {
    "udp_bind": [{"addr": "127.0.0.1", "port": 5353}],
    "udp_connect": [{"to": ["127.0.0.1", 5353], "count": 3}],
    "tcp_listen": [{"addr": "0.0.0.0", "port": 8080}],
    "tcp_connect": [{"to": ["127.0.0.1", 8080], "count": 1}],
})
s = once(ns, args.exporter)
res.equal(gauge(s, "socket_ephemeral_destination_utilization_max_ratio", protocol="udp"), 0.3,
          "3 connected UDP sockets to one destination: udp 0.3")
res.equal(gauge(s, "socket_ephemeral_destination_utilization_max_ratio", protocol="tcp"), 0.1,
          "tcp unaffected by UDP: 0.1")
res.equal(gauge(s, "socket_ephemeral_ports_used", protocol="udp"), 3.0, "udp ports_used 3")
ns.close()

res.finish()
