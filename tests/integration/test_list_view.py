"""--list and --summary against the real thing, in a fresh namespace with a
known population: --list shows the sockets ss shows (same count, endpoints
and states; plus the TCP bound_inactive sockets ss 6.1 cannot show), its
classification agrees with an independent implementation of the README's
rules and with the exporter's own counts, every filter narrows to exactly
the matching sockets, and --summary prints the numbers --once publishes."""

import os
import re
import tempfile

from harness import *

args = parse_args()
install_cleanup()
require_netns()
res = Results()

CONFIG = """
services:
  - name: web
    ports: [8080, 8443]
    protocols: [tcp]
  - name: admin
    ports: [2222]
    protocols: [tcp]
  - name: mdns
    ports: ["5353-5354"]
    protocols: [udp]
"""
SERVICES = {("tcp", 8080): "web", ("tcp", 8443): "web", ("tcp", 2222): "admin",
            ("udp", 5353): "mdns", ("udp", 5354): "mdns"}

tmp = tempfile.TemporaryDirectory()
config_path = os.path.join(tmp.name, "config.yaml")
with open(config_path, "w") as f:
    f.write(CONFIG)

ns = Namespace("list")
# A listener inside the ephemeral range makes bind_locked nonzero.
ns.sysctl("net.ipv4.ip_local_port_range", "40000 40999")
_, info = start_population(ns, args.source_dir, {
    "tcp_listen": [{"addr": "0.0.0.0", "port": 8080},
                   {"addr": "::", "port": 8443, "v6only": False},
                   {"addr": "::1", "port": 2222},
                   {"addr": "127.0.0.1", "port": 40500}],
    "tcp_connect": [{"to": ["127.0.0.1", 8080], "count": 5},
                    {"to": ["127.0.0.1", 8443], "count": 2},   # IPv4 client, dual-stack server
                    {"to": ["::1", 8443], "count": 2},
                    {"to": ["::1", 2222], "count": 3, "close": "both"},      # TIME_WAIT
                    {"to": ["127.0.0.1", 8080], "count": 2, "close": "client"},  # FIN_WAIT2/CLOSE_WAIT
                    {"to": ["127.0.0.1", 40500], "count": 1}],
    "tcp_bind_only": [{"addr": "127.0.0.1", "port": 7000}],
    "udp_bind": [{"addr": "127.0.0.1", "port": 5353}, {"addr": "::1", "port": 5354}],
    "udp_connect": [{"to": ["127.0.0.1", 5353], "count": 2}, {"to": ["::1", 5354], "count": 1}],
})
res.equal(info["errors"], [], "population built without errors")


def run_exporter(*argv):
    return ns.run([args.exporter, *argv])


def list_json(*argv, config=True):
    extra = ["--config.file", config_path] if config else []
    r = run_exporter("--list", "--output", "json", *extra, *argv)
    if r.returncode != 0:
        raise RuntimeError(f"--list failed ({r.returncode}): {r.stderr}")
    return [json.loads(line) for line in r.stdout.splitlines()]


def endpoint_key(s):
    return (s["protocol"], s["family"], s["state"], s["laddr"], s["lport"], s["raddr"], s["rport"])


def from_list(item):
    return dict(protocol=item["protocol"], family=item["family"], state=item["state"],
                laddr=item["local_address"], lport=item["local_port"],
                raddr=item["remote_address"], rport=item["remote_port"])


def from_ss(s):
    # ss writes the unspecified address of a dual-stack socket as "*".
    unspecified = "0.0.0.0" if s["family"] == "ipv4" else "::"
    s = dict(s)
    for key in ("laddr", "raddr"):
        if s[key] == "*":
            s[key] = unspecified
    return s


# 1. The same sockets as ss, plus bound_inactive ----------------------------
listed = list_json()
ss = [from_ss(s) for s in ss_sockets(ns)]
bound = [item for item in listed if item["state"] == "bound_inactive"]
res.equal([(b["local_address"], b["local_port"]) for b in bound], [("127.0.0.1", 7000)],
          "the one bind()-only TCP socket is listed as bound_inactive (ss 6.1 cannot show it)")
shown = [from_list(item) for item in listed if item["state"] != "bound_inactive"]
res.equal(len(shown), len(ss), "--list prints one line per socket ss -tuan prints")
res.equal(sorted(map(endpoint_key, shown)), sorted(map(endpoint_key, ss)),
          "same protocols, families, states and endpoints as ss")
res.check(len(ss) >= 35, "the population is not trivially small", f"{len(ss)} sockets")
res.check(any(s["laddr"] == "::ffff:127.0.0.1" for s in shown),
          "IPv4 clients of the dual-stack listener appear as ::ffff:127.0.0.1, as in ss")

text = run_exporter("--list", "--config.file", config_path)
text_lines = text.stdout.splitlines()
res.equal(len(text_lines), len(listed) + 1, "text output: a header and one line per socket")
res.check(all(len(line) >= 136 and line[5] == " " and line[53] == " " and line[101] == " "
              for line in text_lines),
          "text columns align (fixed widths: proto 5, endpoints 47)")
res.check("[::1]:2222" in text.stdout and "[::ffff:127.0.0.1]:8443" in text.stdout,
          "IPv6 endpoints in brackets in the text output")

# 2. Classification: an independent oracle and the exporter's counts --------
ranges = DEFAULT_RANGES
oracle = classify_reference(ss, SERVICES, ranges)
want = sorted((endpoint_key(s), s["direction"], s["service_name"], s["port_range"])
              for s in oracle)
got = sorted((endpoint_key(from_list(i)), i["direction"], i["service_name"], i["port_range"])
             for i in listed if i["state"] != "bound_inactive")
res.equal(got, want, "direction, service and port range agree with the README's rules")
res.equal((bound[0]["direction"], bound[0]["service_name"], bound[0]["port_range"]) if bound else None,
          ("inbound", "other", "registered"), "bound_inactive: inbound on its local port")

samples = once(ns, args.exporter, "--config.file", config_path)
label_keys = ["protocol", "family", "state", "direction", "port_range", "service_name"]
res.equal(count_by(listed, label_keys), metric_by(samples, "socket_connections", label_keys),
          "--list counted by label set equals socket_connections from --once")

default_listed = list_json(config=False)
res.check(all(i["service_name"] == "other" for i in default_listed)
          and any(i["service_name"] == "web" for i in listed),
          "--config.file is honoured (8080 is web with it, other without)")

# 3. Filters ----------------------------------------------------------------
FILTERS = [
    (["--filter.protocol", "udp"], lambda i: i["protocol"] == "udp"),
    (["--filter.family", "ipv6"], lambda i: i["family"] == "ipv6"),
    (["--filter.state", "established"], lambda i: i["state"] == "established"),
    (["--filter.state", "time_wait,fin_wait2", "--filter.state", "close_wait"],
     lambda i: i["state"] in ("time_wait", "fin_wait2", "close_wait")),
    (["--filter.service", "web"], lambda i: i["service_name"] == "web"),
    (["--filter.service", "other"], lambda i: i["service_name"] == "other"),
    (["--filter.port", "8443"], lambda i: 8443 in (i["local_port"], i["remote_port"])),
    (["--filter.port", "40000-40999"],
     lambda i: 40000 <= i["local_port"] <= 40999 or 40000 <= i["remote_port"] <= 40999),
    (["--filter.direction", "inbound"], lambda i: i["direction"] == "inbound"),
    (["--filter.direction", "outbound", "--filter.protocol", "tcp", "--filter.family", "ipv4"],
     lambda i: i["direction"] == "outbound" and i["protocol"] == "tcp" and i["family"] == "ipv4"),
    (["--filter.state", "bound_inactive"], lambda i: i["state"] == "bound_inactive"),
]
canon = lambda items: sorted(json.dumps(i, sort_keys=True) for i in items)
for argv, predicate in FILTERS:
    want = [i for i in listed if predicate(i)]
    got = list_json(*argv)
    res.check(len(want) > 0 and len(want) < len(listed) and canon(got) == canon(want),
              f"{' '.join(argv)} narrows to exactly the {len(want)} matching sockets",
              f"got {len(got)}")

r = run_exporter("--list", "--config.file", config_path, "--filter.service", "ssh")
res.check(r.returncode == 1 and "--filter.service: \"ssh\" is not a service" in r.stderr
          and r.stdout == "", "an unknown service name is an error naming the flag",
          f"rc {r.returncode} {r.stderr!r}")
r = run_exporter("--list", "--filter.state", "ESTAB")
res.check(r.returncode != 0 and "--filter.state" in r.stderr, "ss state names are rejected",
          f"rc {r.returncode} {r.stderr!r}")
r = run_exporter("--filter.port", "80")
res.check(r.returncode != 0 and "--list" in r.stderr, "filters require --list",
          f"rc {r.returncode} {r.stderr!r}")
r = run_exporter("--list", "--summary")
res.check(r.returncode != 0, "--list and --summary exclude each other")

# 4. --summary against --once ----------------------------------------------
r = run_exporter("--summary", "--config.file", config_path)
res.equal(r.returncode, 0, "--summary exits 0")
samples = once(ns, args.exporter, "--config.file", config_path)


def sections(text):
    """title -> (header tokens, rows of tokens)."""
    out = {}
    for block in text.strip().split("\n\n"):
        lines = block.splitlines()
        if len(lines) >= 2 and lines[0].endswith(":"):
            out[lines[0]] = ([t for t in lines[1].split()], [l.split() for l in lines[2:]])
    return out


parts = sections(r.stdout)
by_title = {title.split(" (")[0]: (title, body) for title, body in parts.items()}

_, (header, rows) = by_title["Sockets by state and service"]
got = {}
for row in rows:
    if row[0] == "all":
        continue
    for name, value in zip(header[2:-1], row[2:-1]):
        if int(value):
            got[(row[0], row[1], name)] = int(value)
res.equal(got, metric_by(samples, "socket_connections", ["protocol", "state", "service_name"]),
          "summary state x service table equals --once")
total_row = next(row for row in rows if row[0] == "all")
res.equal(int(total_row[-1]), len(listed), "summary total equals the sockets --list printed")

_, (header, rows) = by_title["Sockets by service, port range and direction"]
got = {}
for row in rows:
    for direction, value in zip(("inbound", "outbound"), row[3:5]):
        if int(value):
            got[(row[0], row[1], row[2], direction)] = int(value)
res.equal(got, metric_by(samples, "socket_connections",
                         ["protocol", "service_name", "port_range", "direction"]),
          "summary service x port range x direction table equals --once")


def gauge(name, **labels):
    values = [v for n, l, v in samples if n == name and all(l.get(k) == w for k, w in labels.items())]
    return values[0] if len(values) == 1 else None


title, (header, rows) = by_title["Ephemeral ports"]
m = re.match(r"Ephemeral ports \(range (\d+)-(\d+): (\d+) usable, (\d+) reserved\):", title)
res.check(m is not None and [int(x) for x in m.groups()] == [
    gauge("socket_ephemeral_range_start_port"), gauge("socket_ephemeral_range_end_port"),
    gauge("socket_ephemeral_range_ports"), gauge("socket_ephemeral_reserved_ports")],
    "summary ephemeral range line equals --once", title)
columns = {"bind_locked": "socket_ephemeral_bind_locked_ports",
           "capacity": "socket_ephemeral_capacity_ports",
           "ports_used": "socket_ephemeral_ports_used",
           "destinations": "socket_ephemeral_destinations",
           "untracked": "socket_ephemeral_untracked_sockets"}
for row in rows:
    cells = dict(zip(header, row))
    protocol = cells["protocol"]
    got = {c: int(cells[c]) for c in columns}
    want = {c: int(gauge(metric, protocol=protocol)) for c, metric in columns.items()}
    res.equal(got, want, f"summary ephemeral counts ({protocol}) equal --once")
    ratio = gauge("socket_ephemeral_destination_utilization_max_ratio", protocol=protocol)
    res.check(abs(float(cells["max_utilization"]) - ratio) <= 0.0000005,
              f"summary max utilization ({protocol}) equals --once to 6 decimals",
              f"{cells['max_utilization']} vs {ratio}")
    for threshold in ("0.5", "0.8", "0.9"):
        res.equal(int(cells[">=" + threshold]),
                  int(gauge("socket_ephemeral_destinations_above_ratio", protocol=protocol,
                            threshold=threshold)),
                  f"summary destinations >= {threshold} ({protocol}) equal --once")
res.check(any(int(dict(zip(header, row))["bind_locked"]) == 1 for row in rows if row[0] == "tcp"),
          "the listener on 40500 is bind-locked")

_, (header, rows) = by_title["Top destinations"]
got = {(r[0], r[1], r[2], r[3]): (int(r[4]), int(r[5])) for r in rows}
want = {}
for n, l, v in samples:
    if n == "socket_ephemeral_destination_ports_used":
        key = (l["protocol"], l["local_address"], l["remote_address"], l["remote_port"])
        want[key] = (int(v), int(gauge("socket_ephemeral_destination_time_wait_ports", **l)))
res.equal(got, want, "summary top destinations (ports used, time_wait) equal --once")
res.check(got.get(("tcp", "127.0.0.1", "127.0.0.1", "8080"), (0, 0))[0] == 7,
          "127.0.0.1 -> 127.0.0.1:8080 holds 7 ports (5 established + 2 fin_wait2)")

ns.close()
tmp.cleanup()
res.finish()
