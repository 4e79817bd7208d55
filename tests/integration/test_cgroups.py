"""Sockets per cgroup against ss --cgroup, with real cgroups: a .service, a
docker-<64 hex>.scope and a kubelet pod's container scope in a test slice
under the host's cgroup2 mount. Populations are started inside them (a
socket belongs to the cgroup of the process that created it), in a fresh
network namespace. The exporter and ss run with only the network namespace
entered (nsenter --net): `ip netns exec` remounts /sys and would hide the
cgroup2 mount.

Every cgroup the test makes is removed at the end, also on failure."""

import os
import secrets
import subprocess
import tempfile
import time

from harness import *

args = parse_args()
install_cleanup()
require_netns()
res = Results()


def cgroup2_mount():
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            dash = fields.index("-")
            if fields[dash + 1] == "cgroup2" and fields[3] == "/":
                return fields[4]
    return None


mount = cgroup2_mount()
if mount is None:
    skip("no cgroup2 hierarchy is mounted (/proc/self/mountinfo)")
slice_rel = f"/socket-exporter-test-{os.getpid()}.slice"
try:
    os.mkdir(mount + slice_rel)
except OSError as e:
    skip(f"cannot create a cgroup under {mount}: {e.strerror}")
made = [slice_rel]  # removed deepest first


def remove_cgroups():
    for rel in reversed(made):
        path = mount + rel
        for _ in range(100):  # a killed process leaves its cgroup a moment later
            try:
                os.rmdir(path)
                break
            except FileNotFoundError:
                break
            except OSError:
                time.sleep(0.05)
        else:
            print(f"cleanup: could not remove cgroup {path}", file=sys.stderr)


# Registered before any namespace: cleanups run last-in first-out, so the
# namespace (and every process in it) goes first, then the cgroups.
import harness  # noqa: E402

harness._cleanups.append(remove_cgroups)


def make_cgroup(rel):
    os.mkdir(mount + rel)
    made.append(rel)
    return rel


container_id = secrets.token_hex(32)
pod_uid = "1f2e3d4c-5b6a-4789-8abc-def012345678"
pod_container_id = secrets.token_hex(32)
service = make_cgroup(slice_rel + "/se-listen.service")
docker = make_cgroup(slice_rel + f"/docker-{container_id}.scope")
pod = make_cgroup(slice_rel + "/kubepods-besteffort-pod" + pod_uid.replace("-", "_") + ".slice")
pod_container = make_cgroup(pod + f"/cri-containerd-{pod_container_id}.scope")
leaving = make_cgroup(slice_rel + "/se-leaving.service")
parking = make_cgroup(slice_rel + "/se-parking.service")

ns = Namespace("cg")
ns.sysctl("net.ipv4.ip_local_port_range", "40000 40999")
ns.sysctl("net.ipv4.ip_local_reserved_ports", "40990-40999")
ns.sysctl("net.ipv4.tcp_tw_reuse", 0)
NSENTER = ["nsenter", f"--net=/run/netns/{ns.name}"]


def join(rel):
    """preexec_fn: the child joins the cgroup before it execs (and so
    before the population creates any socket)."""
    def enter():
        with open(mount + rel + "/cgroup.procs", "w") as f:
            f.write(str(os.getpid()))
    return enter


def population(rel, spec):
    script = os.path.join(args.source_dir, "tests", "integration", "population.py")
    p = subprocess.Popen(NSENTER + [sys.executable, script, json.dumps(spec)],
                         stdout=subprocess.PIPE, stderr=sys.stderr, text=True,
                         preexec_fn=join(rel))
    ns.procs.append(p)
    line = p.stdout.readline()
    if not line.startswith("READY"):
        raise RuntimeError(f"population did not start: {line!r}")
    info = json.loads(line[len("READY"):] or "{}")
    if info["errors"]:
        raise RuntimeError(f"population errors: {info['errors']}")
    return p


# Listeners (one inside the ephemeral range: it bind-locks 40500), their own
# connections (TIME_WAIT ones carry no cgroup), UDP servers.
population(service, {
    "tcp_listen": [{"addr": "127.0.0.1", "port": 8080}, {"addr": "::1", "port": 8081},
                   {"addr": "0.0.0.0", "port": 40500, "accept": False}],
    "tcp_connect": [{"to": ["127.0.0.1", 8080], "count": 3, "close": "both"},
                    {"to": ["::1", 8081], "count": 2, "close": "none"}],
    "udp_bind": [{"addr": "0.0.0.0", "port": 5353}, {"addr": "::1", "port": 5354}],
})
# Clients in the "container": their server sides wait in the listeners'
# accept queues and so belong to the service's cgroup.
population(docker, {
    "tcp_connect": [{"to": ["127.0.0.1", 8080], "count": 4},
                    {"to": ["::1", 8081], "count": 2},
                    {"to": ["127.0.0.1", 8080], "count": 2, "close": "client"},
                    {"to": ["127.0.0.1", 40500], "count": 2}],
    "udp_connect": [{"to": ["127.0.0.1", 5353], "count": 3}, {"to": ["::1", 5354], "count": 1}],
})
population(pod_container, {
    "udp_bind": [{"addr": "127.0.0.1", "port": 0}],
    "udp_connect": [{"to": ["127.0.0.1", 5353], "count": 2}],
    "tcp_connect": [{"to": ["::1", 8081], "count": 1}],
})
# A process that makes its sockets, then moves to another cgroup; its first
# cgroup is removed: its sockets keep the removed cgroup's ID.
leaver = population(leaving, {"udp_connect": [{"to": ["127.0.0.1", 5353], "count": 2}]})
with open(mount + parking + "/cgroup.procs", "w") as f:
    f.write(str(leaver.pid))
os.rmdir(mount + leaving)
made.remove(leaving)


def ss_by_cgroup():
    """(cgroup, protocol, state) -> count, and the parsed lines, from
    ss -tan/-uan --cgroup in the namespace."""
    lines = []
    for proto, flag in (("tcp", "-tanH"), ("udp", "-uanH")):
        r = subprocess.run(NSENTER + ["ss", flag, "--cgroup"], capture_output=True, text=True,
                           check=True)
        for line in r.stdout.splitlines():
            f = line.split()
            if len(f) < 5:
                continue
            cg = next((x[len("cgroup:"):] for x in f if x.startswith("cgroup:")), None)
            if cg is None:
                cg = "unowned"
            elif cg.startswith("unreachable:"):
                cg = "removed"  # ss could not find the ID's path either
            state = SS_STATE[f[0]]
            if proto == "udp":
                state = "established" if f[0] == "ESTAB" else "unconnected"
            _, lport = harness._split_endpoint(f[3])
            raddr, rport = harness._split_endpoint(f[4])
            lines.append(dict(cgroup=cg, protocol=proto, state=state, lport=lport,
                              raddr=raddr, rport=rport))
    return count_by(lines, ["cgroup", "protocol", "state"]), lines


def ephemeral_from_ss(lines):
    usable = set(range(40000, 40990))
    locked = {p: set() for p in ("tcp", "udp")}
    for s in lines:
        no_peer = s["rport"] == 0
        if s["state"] in ("listen", "unconnected") or no_peer:
            locked[s["protocol"]].add(s["lport"])
    out = {}
    for s in lines:
        if s["lport"] not in usable:
            continue
        holder = s["state"] in ("listen", "unconnected") or s["rport"] == 0
        if not holder and s["lport"] in locked[s["protocol"]]:
            continue  # shares its listener's port
        key = (s["cgroup"], s["protocol"])
        out[key] = out.get(key, 0) + 1
    return out


def scrape(*extra):
    r = subprocess.run(NSENTER + [args.exporter, "--once", *extra], capture_output=True,
                       text=True)
    if r.returncode != 0:
        raise RuntimeError(f"--once failed ({r.returncode}): {r.stderr}")
    return parse_exposition(r.stdout), r.stderr


want, lines = ss_by_cgroup()
print("ss --cgroup:", json.dumps({"/".join(k): v for k, v in sorted(want.items())}))
samples, _ = scrape()
got = metric_by(samples, "socket_cgroup_connections", ["cgroup", "protocol", "state"])
res.equal(got, want, "socket_cgroup_connections equals ss --cgroup per (cgroup, protocol, state)")
res.check(any(k[0] == service for k in got) and any(k[0] == docker for k in got)
          and any(k[0] == pod_container for k in got),
          "the service, the docker scope and the pod's container each have sockets")
res.check(("unowned", "tcp", "time_wait") in got, "TIME_WAIT sockets are cgroup=\"unowned\"")
res.equal(got.get(("removed", "udp", "established")), 2,
          "sockets of a removed cgroup are cgroup=\"removed\"")
res.equal(metric_by(samples, "socket_cgroup_ephemeral_ports_used", ["cgroup", "protocol"]),
          ephemeral_from_ss(lines), "socket_cgroup_ephemeral_ports_used as derived from ss")

info = {l["cgroup"]: (l["unit"], l["container_id"], l["pod_uid"])
        for n, l, v in samples if n == "socket_cgroup_info" and v == 1}
res.equal(info.get(docker), (f"docker-{container_id}.scope", container_id, ""),
          "info: the docker scope's unit and container ID")
res.equal(info.get(service), ("se-listen.service", "", ""), "info: the service's unit")
res.equal(info.get(pod_container),
          (f"cri-containerd-{pod_container_id}.scope", pod_container_id, pod_uid),
          "info: the pod container's unit, container ID and pod UID")

# Destinations: 127.0.0.1:8080 has the most ephemeral ports held towards it
# (docker's 6 clients); the breakdown names the docker scope with 6.
dest = {(l["remote_address"], l["remote_port"], l["cgroup"]): v for n, l, v in samples
        if n == "socket_cgroup_destination_ports_used" and l["protocol"] == "tcp"}
want_dest = {}
for s in lines:
    if s["protocol"] == "tcp" and s["rport"] == 8080 and s["lport"] in range(40000, 40990) \
            and s["raddr"] == "127.0.0.1":
        key = ("127.0.0.1", "8080", s["cgroup"])
        want_dest[key] = want_dest.get(key, 0) + 1
res.equal({k: v for k, v in dest.items() if k[:2] == ("127.0.0.1", "8080")},
          {k: float(v) for k, v in sorted(want_dest.items(), key=lambda kv: -kv[1])[:3]},
          "destination 127.0.0.1:8080 broken down by cgroup as ss shows it")

# The netns collector's BPF walk (or netlink per namespace where BPF does not
# load) reads the cgroup too: the same counts under netns="<name>".
r = subprocess.run([args.exporter, "--once", "--collector.netns"], capture_output=True, text=True)
if r.returncode != 0:
    raise RuntimeError(f"--once --collector.netns failed ({r.returncode}): {r.stderr}")
netns_samples = parse_exposition(r.stdout)
res.equal(metric_by(netns_samples, "socket_cgroup_connections", ["cgroup", "protocol", "state"],
                    where={"netns": ns.name}), want,
          "--collector.netns: the namespace's per-cgroup counts equal ss --cgroup")
walk = [l.get("source") for n, l, v in netns_samples
        if n == "socket_exporter_sockets_scanned" and l.get("netns") == ns.name]
print(f"netns source for {ns.name}: {walk}")

# Grouping: workload level makes the pod one series; top 1 folds the rest.
with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as cfg:
    cfg.write("cgroups:\n  group_by: workload\n  top: 1\n")
try:
    samples, _ = scrape("--config.file", cfg.name)
finally:
    os.unlink(cfg.name)
groups = metric_by(samples, "socket_cgroup_connections", ["cgroup"])
real = sorted(k[0] for k in groups if k[0].startswith("/"))
totals = {}
for s in lines:
    if s["cgroup"].startswith("/"):
        g = pod if s["cgroup"].startswith(pod) else s["cgroup"]
        totals[g] = totals.get(g, 0) + 1
biggest = max(totals, key=lambda g: (totals[g], g))
res.equal(real, [biggest], "top 1: only the biggest workload keeps its own series")
res.equal(groups.get(("other",)), sum(v for g, v in totals.items() if g != biggest),
          "the other workloads are summed into cgroup=\"other\"")
res.equal(metric_by(samples, "socket_cgroup_other_cgroups", []), {(): len(totals) - 1},
          "socket_cgroup_other_cgroups counts the folded workloads")

# The /proc/net source has no cgroups: everything unowned, said once.
samples, err = scrape("--socket.source", "procfs")
got = metric_by(samples, "socket_cgroup_connections", ["cgroup"])
res.equal(list(got), [("unowned",)], "procfs source: every socket is cgroup=\"unowned\"")
res.check("reported no cgroup" in err, "procfs source: one log line says why", err)

res.finish()
