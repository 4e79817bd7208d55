"""The cardinality guard end to end (limits.max_series, README "Cardinality"):
a config with 3000 services and a population in a fresh namespace that
touches 2700 of them (2000 TCP listeners, 500 connections, 200 UDP sockets).

With limits.max_series 1000, socket_connections must publish exactly 1000
series, fold the rest into service_name="other" without losing a socket,
count the folded label sets in socket_exporter_cardinality_folded_series,
keep the same series from scrape to scrape, and log the folding once. With
the default cap (5000) nothing is folded and every service's series is exact.
The oracle is ss plus the independent classifier of harness.py."""

import ctypes
import http.client
import resource
import shutil
import tempfile
import threading

from harness import *
from harness import _cleanups

args = parse_args()
install_cleanup()
require_netns()
res = Results()

SERVICES = 3000
FIRST_PORT = 20000
MAX_SERIES = 1000
TCP_STATES = 12  # README: 12 TCP states + 2 UDP states are seeded per range
UDP_STATES = 2

# 2000 listeners and their accepted sockets in one process need more than
# the usual 1024 descriptors; children inherit the raised limit.
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
if hard != resource.RLIM_INFINITY and hard < 8192:
    skip(f"RLIMIT_NOFILE hard limit {hard} is below the 8192 the population needs")
resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 8192) if hard == resource.RLIM_INFINITY
                                            else hard, hard))

workdir = tempfile.mkdtemp(prefix="se-cardinality-")
_cleanups.append(lambda: shutil.rmtree(workdir, ignore_errors=True))


def write_config(name, max_series=None):
    lines = ["services:"]
    for i in range(SERVICES):
        lines.append(f"  - {{name: s{i}, ports: [{FIRST_PORT + i}]}}")
    if max_series is not None:
        lines.append(f"limits: {{max_series: {max_series}}}")
    path = os.path.join(workdir, name)
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


capped = write_config("capped.yaml", MAX_SERIES)
default_cap = write_config("default.yaml")
services = {}
for i in range(SERVICES):
    services[("tcp", FIRST_PORT + i)] = f"s{i}"
    services[("udp", FIRST_PORT + i)] = f"s{i}"

ns = Namespace("card")
ns.sysctl("net.ipv4.ip_local_port_range", "40000 60999")  # clients stay out of 20000-22999
start_population(ns, args.source_dir, {
    "tcp_listen": [{"addr": "0.0.0.0", "port": FIRST_PORT + i, "backlog": 16} for i in range(2000)],
    "tcp_connect": [{"to": ["127.0.0.1", FIRST_PORT + i], "count": 1} for i in range(500)],
    "udp_bind": [{"addr": "0.0.0.0", "port": FIRST_PORT + 2000 + i} for i in range(200)],
})

KEYS = ("protocol", "family", "state", "direction", "port_range", "service_name")
GROUP = KEYS[:-1]


def reference():
    sockets = ss_sockets(ns)
    classified = classify_reference(sockets, services, DEFAULT_RANGES)
    return len(sockets), count_by(classified, KEYS)


def connections(samples):
    return {tuple(l[k] for k in KEYS): v for n, l, v in samples if n == "socket_connections"}


def folded_of(samples):
    values = [v for n, l, v in samples if n == "socket_exporter_cardinality_folded_series"]
    return values[0] if len(values) == 1 else values


def group_sums(label_sets):
    out = {}
    for key, value in label_sets.items():
        out[key[:-1]] = out.get(key[:-1], 0) + value
    return {k: v for k, v in out.items() if v}


total, ref = reference()
named = {k: v for k, v in ref.items() if k[-1] != "other"}
touched = {k[-1] for k in named}
seeded = (TCP_STATES + UDP_STATES) * 2 * 2 * len(DEFAULT_RANGES)
print(f"population: {total} sockets, {len(named)} label sets naming {len(touched)} services; "
      f"{seeded} seeded series")
res.check(len(touched) >= 2000, f"the population touches thousands of services ({len(touched)})")

# ---- capped: folding, exact where published, nothing lost ----------------

r = ns.run([args.exporter, "--once", f"--config.file={capped}"])
res.equal(r.returncode, 0, "capped --once succeeds")
samples = parse_exposition(r.stdout)
got = connections(samples)
res.equal(len(got), MAX_SERIES, f"socket_connections has exactly limits.max_series={MAX_SERIES} series")
expected_folded = len(named) - (MAX_SERIES - seeded)
res.equal(folded_of(samples), float(expected_folded),
          f"folded_series = {len(named)} label sets - {MAX_SERIES - seeded} that fit = {expected_folded}")
res.equal(int(sum(got.values())), total, f"every socket is still counted ({total}, as ss)")
published_named = {k: v for k, v in got.items() if k[-1] != "other"}
wrong = {k: (v, ref.get(k)) for k, v in published_named.items() if ref.get(k) != v}
res.equal(wrong, {}, f"each of the {len(published_named)} published services' series is exact")
res.equal(group_sums(got), group_sums(ref),
          "per (protocol, family, state, direction, port_range), named + other = ss")
warnings = [l for l in r.stderr.splitlines() if "level=warning" in l and "max_series" in l]
res.equal(len(warnings), 1, "--once logs the folding once")

# ---- capped server: sticky series, stable count, one log line -------------

_libc = ctypes.CDLL(None, use_errno=True)


def scrape_in_ns(port):
    """HTTP GET from a thread moved into the namespace (setns is per thread)."""
    out = {}

    def run():
        try:
            fd = os.open(f"/var/run/netns/{ns.name}", os.O_RDONLY | os.O_CLOEXEC)
            try:
                if _libc.setns(fd, 0x40000000) != 0:  # CLONE_NEWNET
                    raise OSError(ctypes.get_errno(), "setns")
            finally:
                os.close(fd)
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            conn.request("GET", "/metrics")
            resp = conn.getresponse()
            out["value"] = (resp.status, resp.read().decode())
            conn.close()
        except BaseException as e:
            out["error"] = e

    t = threading.Thread(target=run)
    t.start()
    t.join()
    if "error" in out:
        raise out["error"]
    return out["value"]


from exporter_process import ExporterProcess  # noqa: E402 (after the skips above)

server = ExporterProcess(args.exporter, f"--config.file={capped}", ns=ns)
published = []
for attempt in range(3):
    status, body = scrape_in_ns(server.port)
    res.equal(status, 200, f"scrape {attempt + 1}: HTTP 200")
    samples = parse_exposition(body)
    got = connections(samples)
    res.equal(len(got), MAX_SERIES, f"scrape {attempt + 1}: {MAX_SERIES} series")
    # The scrape's own sockets are "other" (ports outside the services), so
    # the folded count does not move.
    res.equal(folded_of(samples), float(expected_folded), f"scrape {attempt + 1}: folded_series")
    published.append({k for k in got if k[-1] != "other"})
res.check(published[0] == published[1] == published[2],
          "the same services keep their series from scrape to scrape (sticky)")
time.sleep(0.2)
warnings = [l for l in server.log if "level=warning" in l and "max_series" in l]
res.equal(len(warnings), 1, "the server logs the folding once over 3 scrapes")
if warnings:
    print("     log: " + warnings[0].strip())
server.stop()

# ---- default cap (5000): nothing folded, every service exact -------------

# The server's scrapes left TIME_WAIT sockets behind: look again.
total, ref = reference()
named = {k: v for k, v in ref.items() if k[-1] != "other"}

r = ns.run([args.exporter, "--once", f"--config.file={default_cap}"])
res.equal(r.returncode, 0, "default-cap --once succeeds")
samples = parse_exposition(r.stdout)
got = connections(samples)
res.equal(folded_of(samples), 0.0, "under the default cap of 5000 nothing is folded")
nonzero = {k: v for k, v in got.items() if v}
diff = {k: (nonzero.get(k), ref.get(k)) for k in set(nonzero) | set(ref) if nonzero.get(k) != ref.get(k)}
res.equal(dict(list(diff.items())[:10]), {},
          f"all {len(ref)} label sets exact, {len(named)} of them naming a service "
          f"({len(diff)} differ; (exporter, ss) shown)")
res.equal(len(got), seeded + len(named), f"{seeded} seeded + {len(named)} named series")

ns.close()
res.finish()
