"""Failure isolation and privileges, against the real exporter in fresh
network namespaces:

(a) a procfs without sys/net/ipv4/ip_local_port_range: the ephemeral
    collector reports success 0 with the reason in the log, connections and
    listeners succeed, HTTP answers 200 with a complete body;
(b) --socket.source=procfs on a procfs without net/tcp: every collector that
    reads sockets reports success 0, the exporter still answers, --once
    exits non-zero;
(c) as nobody (uid 65534) with no capabilities at all: the default
    collectors succeed and publish exactly the counts a root run publishes
    in the same namespace, from netlink and from /proc/net; a collector that
    fails unprivileged says so in the log and in success 0, never a crash;
(d) SIGTERM and SIGINT stop a serving exporter within 1 s, also while every
    HTTP worker is held by an idle client.
"""

import http.client
import re
import shutil
import socket
import tempfile
import threading

from harness import *
from harness import _cleanups

args = parse_args()
install_cleanup()
require_netns()
if shutil.which("setpriv") is None:
    skip("setpriv (util-linux) not found; it drops uid, groups and capabilities for test (c)")
res = Results()

NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all",
          "--bounding-set=-all", "--no-new-privs"]
SOCKET_COLLECTORS = ("connections", "ephemeral", "listeners")

# ---- helpers: HTTP from inside a namespace (in_netns, harness.py), the
# exporter as a server --------------------------------------------------------


def fetch(port, path="/metrics", timeout=30):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


class Server:
    """The exporter serving on the namespace's 127.0.0.1:0, optionally under
    a command prefix (setpriv). The pid is the exporter's: ip netns exec and
    setpriv both exec. stderr lines are kept in .log."""

    def __init__(self, ns, *exporter_args, prefix=()):
        argv = ns.cmd([*prefix, args.exporter, "--web.listen-address=127.0.0.1:0", *exporter_args])
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     text=True)
        self.ns = ns
        _cleanups.append(self.kill)
        self.log = []
        self.port = None
        ready = threading.Event()

        def read_stderr():
            for line in self.proc.stderr:
                self.log.append(line)
                m = re.search(r"\(port (\d+)\)", line)
                if m and self.port is None:
                    self.port = int(m.group(1))
                    ready.set()
            ready.set()

        threading.Thread(target=read_stderr, daemon=True).start()
        if not ready.wait(20) or self.port is None:
            self.kill()
            raise RuntimeError("exporter did not start:\n" + "".join(self.log))

    def get(self, path="/metrics"):
        return in_netns(self.ns, fetch, self.port, path)

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        if self.kill in _cleanups:
            _cleanups.remove(self.kill)

    def enabled_collectors(self):
        for line in self.log:
            m = re.search(r"collectors ([a-z_,]+)", line)
            if m:
                return m.group(1).split(",")
        return []


def complete_scrape(server, what):
    """One scrape that must be a 200 with a whole, valid exposition body;
    returns its samples."""
    status, headers, body = server.get()
    res.equal(status, 200, f"{what}: HTTP 200")
    if "content-length" in headers:
        res.equal(int(headers["content-length"]), len(body), f"{what}: body has Content-Length bytes")
    res.check(body.endswith(b"\n"), f"{what}: body ends with a newline")
    try:
        samples = parse_exposition(body.decode())
    except ValueError as e:
        res.check(False, f"{what}: every line is valid exposition", str(e))
        return []
    res.check(any(n == "socket_exporter_build_info" for n, _, _ in samples),
              f"{what}: body has socket_exporter_build_info (the last family is there)")
    return samples


def success_of(samples):
    return {l["collector"]: v for n, l, v in samples if n == "socket_exporter_collector_success"}


def series(samples, prefixes):
    """name + sorted labels -> value, for metrics starting with a prefix."""
    out = {}
    for n, l, v in samples:
        if n.startswith(prefixes):
            out[(n, tuple(sorted(l.items())))] = v
    return out


def error_lines(log, *needles):
    return [l for l in log if "level=error" in l and all(n in l for n in needles)]


# ---- (a) one collector's input missing ------------------------------------

ns = Namespace("iso-a")
procfs_a = tempfile.mkdtemp(prefix="se-procfs-a-")
_cleanups.append(lambda: shutil.rmtree(procfs_a, ignore_errors=True))
# net/ follows the reading process's namespace; sys/net/ipv4 exists but has
# no ip_local_port_range.
os.symlink("/proc/self/net", os.path.join(procfs_a, "net"))
os.makedirs(os.path.join(procfs_a, "sys", "net", "ipv4"))
server = Server(ns, f"--path.procfs={procfs_a}")
for attempt in (1, 2):
    samples = complete_scrape(server, f"(a) scrape {attempt}")
    ok = success_of(samples)
    res.equal(ok.get("ephemeral"), 0.0, f"(a) scrape {attempt}: ephemeral success 0")
    res.equal(ok.get("connections"), 1.0, f"(a) scrape {attempt}: connections success 1")
    res.equal(ok.get("listeners"), 1.0, f"(a) scrape {attempt}: listeners success 1")
    res.check(any(n == "socket_connections" for n, _, _ in samples),
              f"(a) scrape {attempt}: socket_connections still published")
    res.check(not any(n.startswith("socket_ephemeral_") for n, _, _ in samples),
              f"(a) scrape {attempt}: the failed collector publishes nothing")
missing = os.path.join(procfs_a, "sys/net/ipv4/ip_local_port_range")
reason = error_lines(server.log, "ephemeral", missing)
res.check(len(reason) >= 1, "(a) the log names the collector and the missing file",
          "".join(server.log[-5:]))
if reason:
    print("     log: " + reason[0].strip())
server.kill()
r = ns.run([args.exporter, "--once", f"--path.procfs={procfs_a}"])
res.equal(r.returncode, 2, "(a) --once exits 2 when a collector failed")
res.check("socket_connections{" in r.stdout, "(a) --once still prints the other collectors")
ns.close()

# ---- (b) the socket table itself unreadable --------------------------------

ns = Namespace("iso-b")
procfs_b = tempfile.mkdtemp(prefix="se-procfs-b-")
_cleanups.append(lambda: shutil.rmtree(procfs_b, ignore_errors=True))
os.symlink("/proc/sys", os.path.join(procfs_b, "sys"))
os.makedirs(os.path.join(procfs_b, "net"))
os.symlink("/proc/self/net/netstat", os.path.join(procfs_b, "net", "netstat"))
server = Server(ns, f"--path.procfs={procfs_b}", "--socket.source=procfs")
samples = complete_scrape(server, "(b) scrape")
ok = success_of(samples)
enabled = server.enabled_collectors()
res.check(set(SOCKET_COLLECTORS) <= set(enabled), "(b) the default socket collectors are enabled",
          f"enabled: {enabled}")
res.equal({c: ok.get(c) for c in SOCKET_COLLECTORS}, {c: 0.0 for c in SOCKET_COLLECTORS},
          "(b) every socket collector reports success 0")
res.equal(sorted(ok), sorted(enabled), "(b) every enabled collector still has a success series")
res.check(not any(n == "socket_connections" for n, _, _ in samples),
          "(b) no partial socket counts are published")
reason = error_lines(server.log, "procfs", os.path.join(procfs_b, "net/tcp"), "does not exist")
res.check(len(reason) >= 1, "(b) the log says which file is missing", "".join(server.log[-5:]))
if reason:
    print("     log: " + reason[0].strip())
status, _, body = server.get("/-/healthy")
res.equal(status, 200, "(b) /-/healthy still answers 200")
server.kill()
r = ns.run([args.exporter, "--once", f"--path.procfs={procfs_b}", "--socket.source=procfs"])
res.check(r.returncode > 0,
          f"(b) --once exits non-zero, not by a signal (got {r.returncode})")
ns.close()

# ---- (c) unprivileged, no capabilities -------------------------------------

ns = Namespace("iso-c")
start_population(ns, args.source_dir, {
    "tcp_listen": [{"addr": "0.0.0.0", "port": 22}, {"addr": "127.0.0.1", "port": 8080},
                   {"addr": "::", "port": 443, "v6only": False}, {"addr": "0.0.0.0", "port": 40100}],
    "tcp_connect": [{"to": ["127.0.0.1", 22], "count": 5},
                    {"to": ["127.0.0.1", 8080], "count": 3, "close": "both"},
                    {"to": ["127.0.0.1", 443], "count": 2},
                    {"to": ["::1", 443], "count": 2, "close": "client"},
                    {"to": ["127.0.0.1", 40100], "count": 4}],
    "tcp_bind_only": [{"addr": "127.0.0.1", "port": 7000}],
    "udp_bind": [{"addr": "0.0.0.0", "port": 53}, {"addr": "::1", "port": 5353}],
    "udp_connect": [{"to": ["127.0.0.1", 53], "count": 3}],
})
probe = ns.run([*NOBODY, "test", "-x", args.exporter])
if probe.returncode != 0:
    skip(f"uid 65534 cannot execute {args.exporter} (a private build directory?): "
         f"{probe.stderr.strip()}")
status_text = ns.run([*NOBODY, "cat", "/proc/self/status"], check=True).stdout
creds = dict(line.split(":", 1) for line in status_text.splitlines() if ":" in line)
res.equal((creds["Uid"].split(), creds["CapEff"].strip(), creds["CapPrm"].strip(),
           creds["CapBnd"].strip()),
          (["65534"] * 4, "0000000000000000", "0000000000000000", "0000000000000000"),
          "(c) setpriv gives uid 65534 with empty effective, permitted and bounding sets")

COMPARED = ("socket_connections", "socket_ephemeral_", "socket_listen_", "socket_exporter_sockets_scanned",
            "socket_exporter_collector_success")
for source in ("netlink", "procfs"):
    root_run = ns.run([args.exporter, "--once", f"--socket.source={source}"])
    nobody_run = ns.run([*NOBODY, args.exporter, "--once", f"--socket.source={source}"])
    res.equal(root_run.returncode, 0, f"(c) {source}: root --once succeeds")
    res.equal(nobody_run.returncode, 0,
              f"(c) {source}: unprivileged --once succeeds (every default collector)")
    if nobody_run.returncode != 0:
        print(nobody_run.stderr)
    root_series = series(parse_exposition(root_run.stdout), COMPARED)
    nobody_series = series(parse_exposition(nobody_run.stdout), COMPARED)
    counted = sum(v for (n, _), v in root_series.items() if n == "socket_connections")
    res.check(counted >= 30, f"(c) {source}: the population is counted ({counted:.0f} sockets)")
    diff = {k: (root_series.get(k), nobody_series.get(k))
            for k in set(root_series) | set(nobody_series) if root_series.get(k) != nobody_series.get(k)}
    res.equal(diff, {}, f"(c) {source}: unprivileged counts equal root's, series by series "
                        f"({len(root_series)} series)")

server = Server(ns, prefix=NOBODY)
proc_status = open(f"/proc/{server.proc.pid}/status").read()
creds = dict(line.split(":", 1) for line in proc_status.splitlines() if ":" in line)
res.equal((creds["Name"].strip(), creds["Uid"].split()[1], creds["CapEff"].strip()),
          ("socket_exporter", "65534", "0000000000000000"),
          "(c) the serving exporter runs as uid 65534 with no capabilities")
samples = complete_scrape(server, "(c) unprivileged scrape")
ok = success_of(samples)
res.check(ok and all(v == 1.0 for v in ok.values()),
          "(c) unprivileged server: every default collector succeeds", str(ok))
server.kill()

# Every collector the binary has, switched on, as nobody: success or a clear
# failure, never a crash.
help_text = subprocess.run([args.exporter, "--help"], capture_output=True, text=True).stdout
all_collectors = sorted(set(re.findall(r"--collector\.([a-z_]+)", help_text)))
r = ns.run([*NOBODY, args.exporter, "--once", *[f"--collector.{c}" for c in all_collectors]])
res.check(r.returncode in (0, 2), f"(c) all collectors {all_collectors} as nobody: exit 0 or 2, "
                                  f"no crash (got {r.returncode})", r.stderr[-2000:])
ok = success_of(parse_exposition(r.stdout)) if r.returncode in (0, 2) else {}
for name in all_collectors:
    if ok.get(name) == 0.0:
        lines = [l for l in r.stderr.splitlines()
                 if ("level=error" in l or "level=warning" in l) and name in l]
        res.check(len(lines) >= 1, f"(c) collector {name} fails unprivileged and logs why "
                                   f"(success 0 and a warning or error naming it)")
        if lines:
            print("     log: " + lines[0].strip())
    else:
        res.equal(ok.get(name), 1.0, f"(c) collector {name} succeeds unprivileged")
ns.close()

# ---- (d) signals -----------------------------------------------------------

ns = Namespace("iso-d")
for signame in ("SIGTERM", "SIGINT"):
    server = Server(ns)
    complete_scrape(server, f"(d) scrape before {signame}")

    # Hold every HTTP worker: clients that connect and never send a request.
    def hold_workers(port):
        held = []
        for _ in range(12):
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            held.append(s)
        return held

    idle = in_netns(ns, hold_workers, server.port)
    time.sleep(0.3)
    start = time.monotonic()
    server.proc.send_signal(getattr(signal, signame))
    try:
        code = server.proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        code = None
    elapsed = time.monotonic() - start
    res.check(code is not None and elapsed < 1.0,
              f"(d) {signame} stops the server in {elapsed:.3f} s (< 1 s) with 12 idle clients")
    res.equal(code, 0, f"(d) {signame}: exit code 0")
    res.check(any("shutting down" in l for l in server.log), f"(d) {signame}: logged")
    for s in idle:
        s.close()
    server.kill()
ns.close()

res.finish()
