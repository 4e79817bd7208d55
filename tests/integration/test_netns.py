"""The netns collector against the real thing: namespaces with different
populations, scraped by one exporter in the root namespace with
--collector.netns, each namespace's series compared exactly with ss run inside
it; namespaces appearing and disappearing between scrapes of a running server;
namespace churn during discovery; include/exclude/max_namespaces; and an
unprivileged exporter that can only report its own namespace."""

import os
import platform
import shutil
import subprocess
import tempfile
import threading
import time

from exporter_process import ExporterProcess
from harness import *
from harness import _cleanups

args = parse_args()
install_cleanup()
require_netns()
res = Results()

SOCKET_LABELS = ("protocol", "family", "state", "direction", "port_range", "service_name")
tmp = tempfile.mkdtemp(prefix="se-netns-")
_cleanups.append(lambda: shutil.rmtree(tmp, ignore_errors=True))


def write_config(name, text):
    path = os.path.join(tmp, name)
    with open(path, "w") as f:
        f.write(text)
    return path


def ns_inode(ns):
    return os.stat(f"/var/run/netns/{ns.name}").st_ino


def expected_connections(ns, extra=()):
    """socket_connections as ss sees it in ns, by every label; `extra` adds
    sockets ss 6.1 cannot show (bound but inactive TCP)."""
    ref = classify_reference(ss_sockets(ns), DEFAULT_SERVICES, DEFAULT_RANGES)
    want = count_by(ref, SOCKET_LABELS)
    for key in extra:
        want[key] = want.get(key, 0) + 1
    return want


def stable_scrape(namespaces, scrape, extras):
    """Scrapes until ss shows the same population before and after in every
    namespace (loopback handshakes can still be settling)."""
    for _attempt in range(3):
        before = {ns.name: expected_connections(ns, extras.get(ns.name, ())) for ns in namespaces}
        samples = scrape()
        after = {ns.name: expected_connections(ns, extras.get(ns.name, ())) for ns in namespaces}
        if before == after:
            break
    return before, samples


def gauge(samples, name, **labels):
    values = [v for n, l, v in samples if n == name and all(l.get(k) == w for k, w in labels.items())]
    return values[0] if len(values) == 1 else values


def netns_values(samples, name):
    return sorted({l.get("netns") for n, l, v in samples if n == name})


def fake_container(pid):
    """Puts pid into a cgroup whose path names a container the way Docker
    does (systemd driver on cgroup v2, cgroupfs driver on v1); returns the id,
    or None where cgroups cannot be made here."""
    cid = ("%064x" % (os.getpid() * 7919 + 0xC0FFEE))[-64:]
    for root, rel in (("/sys/fs/cgroup/unified", f"docker-{cid}.scope"),
                      ("/sys/fs/cgroup", f"docker-{cid}.scope"),
                      ("/sys/fs/cgroup/pids", f"docker/{cid}")):
        if not os.path.exists(os.path.join(root, "cgroup.procs")):
            continue
        path = os.path.join(root, rel)
        try:
            os.makedirs(path, exist_ok=True)
            with open(os.path.join(path, "cgroup.procs"), "w") as f:
                f.write(str(pid))
        except OSError:
            continue

        def remove(root=root, path=path):
            # A cgroup with processes cannot be removed: move them back first.
            try:
                with open(os.path.join(path, "cgroup.procs")) as f:
                    for p in f.read().split():
                        with open(os.path.join(root, "cgroup.procs"), "w") as back:
                            back.write(p)
            except OSError:
                pass
            while path != root:
                try:
                    os.rmdir(path)
                except OSError:
                    break
                path = os.path.dirname(path)
        _cleanups.append(remove)
        return cid
    return None


class RootNamespace:
    """The test's own namespace, with the part of Namespace's interface that
    once() and ss_sockets() use."""
    name = "root"

    def cmd(self, argv):
        return list(argv)

    def run(self, argv, **kw):
        kw.setdefault("capture_output", True)
        kw.setdefault("text", True)
        return subprocess.run(argv, **kw)


root = RootNamespace()


# ---- three namespaces, three populations ------------------------------------

web = Namespace("web")
db = Namespace("db")
quiet = Namespace("quiet")
web.sysctl("net.ipv4.ip_local_port_range", "40000 40999")
db.sysctl("net.ipv4.ip_local_port_range", "50000 50099")
for ns in (web, db):
    ns.sysctl("net.ipv4.tcp_fin_timeout", 60)

web_pop, _ = start_population(web, args.source_dir, {
    "tcp_listen": [{"addr": "0.0.0.0", "port": 80, "backlog": 128},
                   {"addr": "::", "port": 443, "v6only": False, "backlog": 64}],
    "tcp_connect": [{"to": ["127.0.0.1", 80], "count": 40},
                    {"to": ["127.0.0.1", 443], "count": 12},
                    {"to": ["::1", 443], "count": 7},
                    {"to": ["127.0.0.1", 80], "count": 9, "close": "both"}],
    "udp_connect": [{"to": ["127.0.0.1", 53], "count": 2}],
})
start_population(db, args.source_dir, {
    "tcp_listen": [{"addr": "127.0.0.1", "port": 5432, "backlog": 32}],
    "tcp_connect": [{"to": ["127.0.0.1", 5432], "count": 15},
                    {"to": ["127.0.0.1", 5432], "count": 6, "close": "client"}],
    "tcp_bind_only": [{"addr": "127.0.0.1", "port": 7000}],
    "udp_bind": [{"addr": "0.0.0.0", "port": 53}, {"addr": "::", "port": 5353}],
})
start_population(quiet, args.source_dir, {"udp_bind": [{"addr": "127.0.0.1", "port": 161}]})

# A bound-but-inactive socket is reported by the kernel (6.8+) but not by ss 6.1.
kernel = tuple(int(x) for x in platform.release().split("-")[0].split(".")[:2])
extras = {db.name: [("tcp", "ipv4", "bound_inactive", "inbound", "registered", "other")]
          if kernel >= (6, 8) else []}
container_id = fake_container(web_pop.pid)

namespaces = (web, db, quiet)
before, samples = stable_scrape(namespaces, lambda: once(root, args.exporter, "--collector.netns"),
                                extras)

for ns in namespaces:
    got = metric_by(samples, "socket_connections", SOCKET_LABELS, where={"netns": ns.name})
    res.equal(got, before[ns.name], f"[{ns.name}] socket_connections match ss inside it, every label")

res.check(sum(before[web.name].values()) > 100 and sum(before[quiet.name].values()) == 1,
          "the populations differ", str({k: sum(v.values()) for k, v in before.items()}))

# Each namespace's own sysctls and listeners.
for ns, first in ((web, 40000), (db, 50000), (quiet, 32768)):
    res.equal(gauge(samples, "socket_ephemeral_range_start_port", netns=ns.name), float(first),
              f"[{ns.name}] ephemeral range read inside the namespace ({first})")
res.equal(gauge(samples, "socket_listen_queue_limit", netns=web.name, port="80"), 128.0,
          "[web] listen backlog of :80 is web's (128)")
res.equal(gauge(samples, "socket_listen_queue_limit", netns=db.name, port="5432"), 32.0,
          "[db] listen backlog of :5432 is db's (32)")
res.equal(gauge(samples, "socket_listen_queue_limit", netns=web.name, port="5432"), [],
          "[web] has no :5432 listener (db's stays in db)")

# netstat counters are the namespace's: compare with its own /proc/net/netstat.
def netstat_value(ns, key):
    text = ns.run(["cat", "/proc/net/netstat"], check=True).stdout.splitlines()
    for header, values in zip(text[0::2], text[1::2]):
        h, v = header.split(), values.split()
        if h[0] == key.split(".")[0] + ":":
            return float(v[h.index(key.split(".")[1])])
for ns in namespaces:
    res.equal(gauge(samples, "socket_listen_drops_total", netns=ns.name),
              netstat_value(ns, "TcpExt.ListenDrops"), f"[{ns.name}] ListenDrops from its own netstat")

# Every socket family carries the label; the exporter's own ones do not.
unlabelled = sorted({n for n, l, v in samples
                     if (n.startswith("socket_") and not n.startswith("socket_exporter_"))
                     and "netns" not in l})
res.equal(unlabelled, [], "every socket metric has a netns label")
res.equal(netns_values(samples, "socket_exporter_collector_success"), [None],
          "collector_success has no netns label")
res.check("host" in netns_values(samples, "socket_connections"),
          "the exporter's own namespace is included as netns=\"host\"")

info = {l["netns"]: l for n, l, v in samples if n == "socket_exporter_netns_info"}
for ns in namespaces:
    l = info.get(ns.name, {})
    pids = ns.run(["ip", "netns", "pids", ns.name]).stdout.split()
    res.check(l.get("name") == ns.name and l.get("inode") == str(ns_inode(ns)) and
              l.get("pid") in pids and l.get("comm") == "python3",
              f"[{ns.name}] netns_info names the namespace, its inode, a pid in it and its comm",
              str(l))
if container_id:
    res.equal(info.get(web.name, {}).get("container_id"), container_id,
              "[web] container_id read from its process's cgroup")
else:
    print("note: cannot create cgroups here; container_id not checked")
res.equal(info.get(quiet.name, {}).get("container_id"), "", "[quiet] no container: empty id")
success = {l["collector"]: v for n, l, v in samples if n == "socket_exporter_collector_success"}
res.equal(success.get("netns"), 1.0, "collector netns succeeded")
res.check(all(gauge(samples, "socket_exporter_netns_scrape_success", netns=ns.name) == 1.0
              for ns in namespaces), "every namespace scraped successfully")
scanned = {l.get("netns"): v for n, l, v in samples if n == "socket_exporter_sockets_scanned"}
res.equal(scanned.get(quiet.name), 1.0, "[quiet] sockets_scanned per namespace")

if shutil.which("promtool"):
    text = root.run([args.exporter, "--once", "--collector.netns"]).stdout
    lint = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True,
                          text=True)
    res.check(lint.returncode == 0, "promtool check metrics accepts the netns output",
              lint.stdout + lint.stderr)

# Without the collector: exactly the old output, no netns label anywhere.
plain = once(root, args.exporter)
res.equal(sorted({n for n, l, v in plain if "netns" in l or n.startswith("socket_exporter_netns")}),
          [], "without --collector.netns no series has a netns label")

# ---- the BPF walk gives exactly what netlink gives ------------------------------

def socket_series(samples, names):
    """Every socket series of the named namespaces, as {(name, labels): value}."""
    out = {}
    for n, l, v in samples:
        if l.get("netns") in names and n.startswith("socket_") and \
                not n.startswith("socket_exporter_"):
            out[(n, tuple(sorted(l.items())))] = v
    return out


nl_cfg = write_config("nl.yaml", "netns: {source: netlink}\n")
bpf_cfg = write_config("bpf.yaml", "netns: {source: bpf}\n")
ours = {ns.name for ns in namespaces}
for _attempt in range(3):
    by_netlink = once(root, args.exporter, "--collector.netns", f"--config.file={nl_cfg}")
    r = root.run([args.exporter, "--once", "--collector.netns", f"--config.file={bpf_cfg}"])
    by_bpf = parse_exposition(r.stdout)
    if socket_series(by_netlink, ours) == socket_series(by_bpf, ours):
        break
sources = {l.get("source") for n, l, v in by_bpf if n == "socket_exporter_sockets_scanned"}
if sources == {"bpf"}:
    res.equal(socket_series(by_bpf, ours), socket_series(by_netlink, ours),
              "netns.source bpf: every socket series of every namespace equals netlink's")
    res.check(len(socket_series(by_bpf, ours)) > 100, "the comparison covers many series")
    scanned_bpf = {l["netns"]: v for n, l, v in by_bpf if n == "socket_exporter_sockets_scanned"}
    scanned_nl = {l["netns"]: v for n, l, v in by_netlink if n == "socket_exporter_sockets_scanned"}
    res.equal({k: scanned_bpf.get(k) for k in ours}, {k: scanned_nl.get(k) for k in ours},
              "netns.source bpf: the same sockets per namespace as netlink")
else:
    # A build without libbpf/clang/bpftool, or a kernel that refuses the
    # program, falls back to netlink: say so, and check the fallback works.
    print(f"note: BPF walk unavailable here ({r.stderr.strip()}); parity not checked")
    res.equal(sources, {"netlink"}, "netns.source bpf falls back to netlink")

# ---- selection ---------------------------------------------------------------

cfg = write_config("select.yaml", f"""
netns:
  exclude: ["{db.name}"]
  cache_seconds: 0
""")
s = once(root, args.exporter, "--collector.netns", f"--config.file={cfg}")
labels = netns_values(s, "socket_connections")
res.check(db.name not in labels and web.name in labels and "host" in labels,
          "exclude by name drops that namespace only", str(labels))
res.check(gauge(s, "socket_exporter_netns_skipped", reason="filtered") >= 1.0,
          "the excluded namespace is counted as filtered")
if container_id:
    cfg = write_config("container.yaml", f"""
netns:
  include: ["{container_id[:12]}*"]
""")
    s = once(root, args.exporter, "--collector.netns", f"--config.file={cfg}")
    res.equal(netns_values(s, "socket_connections"), [web.name],
              "include by container ID prefix selects that namespace only")
cfg = write_config("limit.yaml", f"""
netns:
  include: ["host", "se-*-{os.getpid()}-*"]
  max_namespaces: 2
""")
s = once(root, args.exporter, "--collector.netns", f"--config.file={cfg}")
labels = netns_values(s, "socket_connections")
res.equal(len(labels), 2, "max_namespaces 2 scrapes two namespaces")
res.check("host" in labels, "the own namespace comes first", str(labels))
res.equal(gauge(s, "socket_exporter_netns_skipped", reason="max_namespaces"), 2.0,
          "the two beyond the limit are counted")

# ---- appear / disappear between scrapes of a running server ------------------

cfg = write_config("live.yaml", "netns:\n  cache_seconds: 0\n")
server = ExporterProcess(args.exporter, "--collector.netns", f"--config.file={cfg}")


def scrape():
    # Generous: with cache_seconds 0 and namespaces churning, a scrape on a
    # busy host walks its socket table once per short-lived namespace.
    status, _, body = server.get("/metrics", timeout=60)
    if status != 200:
        raise AssertionError(f"scrape answered {status}")
    return parse_exposition(body)


s1 = scrape()
late = Namespace("late")
start_population(late, args.source_dir, {"tcp_listen": [{"addr": "0.0.0.0", "port": 8080}],
                                         "tcp_connect": [{"to": ["127.0.0.1", 8080], "count": 3}]})
want_late = expected_connections(late)
s2 = scrape()
res.check(late.name not in netns_values(s1, "socket_connections") and
          late.name in netns_values(s2, "socket_connections"),
          "a namespace created between scrapes appears")
res.equal(metric_by(s2, "socket_connections", SOCKET_LABELS, where={"netns": late.name}), want_late,
          "[late] its counts match ss")
late.close()
s3 = scrape()
res.equal([n for n, l, v in s3 if l.get("netns") == late.name], [],
          "a namespace deleted between scrapes disappears, every series of it")
res.check(web.name in netns_values(s3, "socket_connections"), "the others stay")

# ---- churn: processes in fresh namespaces exiting during discovery ------------

stop = threading.Event()
spawned = [0]


def churn():
    while not stop.is_set():
        procs = [subprocess.Popen(["unshare", "-n", "sleep", "0.01"]) for _ in range(20)]
        for p in procs:
            p.wait()
        spawned[0] += len(procs)


threads = [threading.Thread(target=churn, daemon=True) for _ in range(2)]
for t in threads:
    t.start()
failures = []
baseline = gauge(s3, "socket_exporter_netns_discovered")
churn_seen = 0  # scrapes whose discovery or passes met a short-lived namespace
for i in range(25):
    try:
        s = scrape()
        if gauge(s, "socket_exporter_netns_discovered") > baseline or \
                gauge(s, "socket_exporter_netns_skipped", reason="vanished") > 0:
            churn_seen += 1
        ok = gauge(s, "socket_exporter_collector_success", collector="netns")
        if ok != 1.0:
            failures.append(f"scrape {i}: netns success {ok}")
        if gauge(s, "socket_exporter_netns_scrape_success", netns=web.name) != 1.0:
            failures.append(f"scrape {i}: web not scraped")
    except Exception as e:  # a failed scrape is what this checks for
        failures.append(f"scrape {i}: {e}")
stop.set()
for t in threads:
    t.join()
res.check(spawned[0] > 100, f"namespaces churned during the scrapes ({spawned[0]} processes)")
res.check(churn_seen > 0, f"discovery met short-lived namespaces ({churn_seen} of 25 scrapes)")
res.equal(failures, [], "no scrape failed while processes exited during discovery")
res.check(not any("cannot enter" in line for line in server.log),
          "no namespace failure logged for vanished processes", "".join(server.log[-5:]))
server.stop()

# ---- unprivileged: only the own namespace, success 0, said once ---------------

if shutil.which("setpriv"):
    r = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                        "--inh-caps=-all", args.exporter, "--once", "--collector.netns"],
                       capture_output=True, text=True)
    if r.returncode in (126, 127) or "Permission denied" in r.stderr:
        # The build directory is not reachable for uid 65534 here.
        print(f"note: uid 65534 cannot run {args.exporter}; unprivileged run not checked")
        res.finish()
    res.equal(r.returncode, 2, "unprivileged --once exits 2 (a collector failed)")
    s = parse_exposition(r.stdout)
    res.equal(netns_values(s, "socket_connections"), ["host"],
              "unprivileged: only its own namespace, as netns=\"host\"")
    res.equal(gauge(s, "socket_exporter_collector_success", collector="netns"), 0.0,
              "unprivileged: collector netns success 0")
    res.equal(gauge(s, "socket_exporter_collector_success", collector="connections"), 1.0,
              "unprivileged: the socket collectors still succeed")
    res.equal(r.stderr.count("CAP_SYS_ADMIN"), 1, "unprivileged: the reason is logged once")
    ss_root = subprocess.run(["ss", "-tuanH"], capture_output=True, text=True).stdout.splitlines()
    res.check(abs(gauge(s, "socket_exporter_sockets_scanned", netns="host") - len(ss_root)) <= 5,
              "unprivileged: the host's own sockets are still counted")
else:
    print("note: setpriv missing; unprivileged run not checked")

res.finish()
