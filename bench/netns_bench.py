#!/usr/bin/env python3
"""Cost of the netns collector (docs/netns.md, BENCHMARKS.md). As root:

    bench/netns_bench.py --exporter build/exporter/socket_exporter
    bench/netns_bench.py --exporter ... --namespaces 20 --sockets 100000 --rounds 9
    bench/netns_bench.py --exporter ... --sources netlink   # netns.source values to compare

Two populations of the same size, one after the other:

  one    one namespace "senb-one" holding every socket;
  many   N namespaces "senb-00".."senb-NN" holding sockets/N each.

Sockets are loopback TCP connections (two ESTABLISHED sockets each) to four
listeners per namespace, made by a holder process per namespace
(RLIMIT_NOFILE raised, ip_local_port_range widened). Nothing else changes
between the two: the host holds the same number of sockets.

Contenders, each a running exporter scraped over HTTP (connect to last
byte), alternating every round:

  plain       `one` only: the exporter without --collector.netns, started
              inside senb-one (the scrape is made from a thread that
              setns()'d there): today's single-namespace scrape;
  netns-one[S]   `one` only: --collector.netns selecting senb-one, with
                 netns.source S (netlink: a dump inside each namespace;
                 bpf: one walk of the shared tables for all of them);
  netns-many[S]  `many` only: --collector.netns selecting every senb-NN.

The goal: netns-many <= 2 x plain (and netns-one). CPU per scrape is the
exporter's user+system time across the scrape (/proc/PID/stat, all
threads). Everything started is removed at the end, also on error or
Ctrl-C. Exit 0 when every scrape answered and the per-namespace
socket_exporter_sockets_scanned add up to the population; 77 without root.
"""

import argparse
import ctypes
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

SKIP = 77
CLONE_NEWNET = 0x40000000
LISTENERS = 4
CLK_TCK = os.sysconf("SC_CLK_TCK")

HOLDER = r"""
import resource, socket, sys, time, signal
conns, base_port = int(sys.argv[1]), int(sys.argv[2])
hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
listeners = []
for i in range(%d):
    l = socket.socket()
    l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    l.bind(("127.0.0.1", base_port + i))
    l.listen(4096)
    listeners.append(l)
held = []
for i in range(conns):
    l = listeners[i %% len(listeners)]
    c = socket.create_connection(l.getsockname())
    s, _ = l.accept()
    held += [c, s]
print("READY", flush=True)
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
while True:
    time.sleep(3600)
""" % LISTENERS

cleanups = []


def cleanup():
    while cleanups:
        fn = cleanups.pop()
        try:
            fn()
        except Exception as e:
            print(f"cleanup: {e}", file=sys.stderr)


def make_namespace(name):
    subprocess.run(["ip", "netns", "del", name], capture_output=True)
    subprocess.run(["ip", "netns", "add", name], check=True)
    cleanups.append(lambda: subprocess.run(["ip", "netns", "del", name], capture_output=True))
    subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
    subprocess.run(["ip", "netns", "exec", name, "sysctl", "-qw",
                    "net.ipv4.ip_local_port_range=1024 65000"], check=True)


# Connections per holder process: two descriptors each, under the
# RLIMIT_NOFILE hard limit (20000 here; raising it needs CAP_SYS_RESOURCE).
MAX_CONNECTIONS_PER_HOLDER = 9000


def start_holders(name, connections):
    """Processes in namespace `name` holding `connections` loopback
    connections (2 sockets each) plus LISTENERS listeners per process."""
    holders = []
    base_port = 65100  # above ip_local_port_range: no client can hold it
    while connections > 0:
        n = min(connections, MAX_CONNECTIONS_PER_HOLDER)
        p = subprocess.Popen(["ip", "netns", "exec", name, sys.executable, "-c", HOLDER, str(n),
                              str(base_port)], stdout=subprocess.PIPE, text=True)

        def stop(p=p):
            p.kill()
            p.wait()
        cleanups.append(stop)
        holders.append(p)
        connections -= n
        base_port += LISTENERS
    return holders


def wait_ready(holders):
    for p in holders:
        line = p.stdout.readline()
        if not line.startswith("READY"):
            raise RuntimeError("a holder did not start")


class Exporter:
    def __init__(self, exporter, args, netns=None):
        argv = [exporter, "--web.listen-address=127.0.0.1:0", *args]
        if netns:
            argv = ["ip", "netns", "exec", netns] + argv
        self.netns = netns
        self.proc = subprocess.Popen(argv, stderr=subprocess.PIPE, text=True)
        cleanups.append(self.stop)
        self.port = None
        deadline = time.monotonic() + 20
        while self.port is None and time.monotonic() < deadline:
            line = self.proc.stderr.readline()
            if not line:
                break
            m = re.search(r"\(port (\d+)\)", line)
            if m:
                self.port = int(m.group(1))
        if self.port is None:
            raise RuntimeError("exporter did not start")
        threading.Thread(target=self.proc.stderr.read, daemon=True).start()
        # The exporter's process: `ip netns exec` execs it, so same pid.
        self.pid = self.proc.pid

    def cpu_seconds(self):
        with open(f"/proc/{self.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


class NetnsThread:
    """Runs calls on a thread that entered a network namespace (or stayed)."""

    def __init__(self, name):
        self.requests = []
        self.ready = threading.Event()
        self.cv = threading.Condition()
        self.name = name

    def call(self, fn):
        result = {}
        done = threading.Event()

        def body():
            if self.name:
                libc = ctypes.CDLL(None, use_errno=True)
                fd = os.open(f"/var/run/netns/{self.name}", os.O_RDONLY)
                if libc.setns(fd, CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), "setns")
                os.close(fd)
            try:
                result["value"] = fn()
            except Exception as e:
                result["error"] = e
            done.set()
        threading.Thread(target=body, daemon=True).start()
        done.wait()
        if "error" in result:
            raise result["error"]
        return result["value"]


def scrape(exporter):
    """Wall seconds of one GET /metrics, CPU seconds of the exporter, body."""
    def get():
        cpu0 = exporter.cpu_seconds()
        t0 = time.perf_counter()
        with urllib.request.urlopen(f"http://127.0.0.1:{exporter.port}/metrics", timeout=60) as r:
            body = r.read().decode()
        wall = time.perf_counter() - t0
        # The exporter's CPU is charged when its threads run; read it after.
        return wall, exporter.cpu_seconds() - cpu0, body
    return NetnsThread(exporter.netns).call(get)


def scanned(body):
    total = 0
    for line in body.splitlines():
        if line.startswith("socket_exporter_sockets_scanned"):
            total += float(line.split()[-1])
    return int(total)


def run_contenders(contenders, rounds, results, expected):
    ok = True
    for i in range(rounds):
        order = contenders[i % len(contenders):] + contenders[:i % len(contenders)]
        for name, exporter in order:
            wall, cpu, body = scrape(exporter)
            got = scanned(body)
            if abs(got - expected) > expected // 100 + 10:
                print(f"  {name}: scanned {got}, expected about {expected}", file=sys.stderr)
                ok = False
            results.setdefault(name, []).append((wall, cpu))
    return ok


def summary(samples):
    walls = sorted(w for w, _ in samples)
    cpus = sorted(c for _, c in samples)
    return statistics.median(walls) * 1000, walls[0] * 1000, statistics.median(cpus) * 1000


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--exporter", required=True)
    p.add_argument("--namespaces", type=int, default=20)
    p.add_argument("--sockets", type=int, default=100000)
    p.add_argument("--rounds", type=int, default=9)
    p.add_argument("--sources", default="netlink,bpf",
                   help="comma-separated values of the config's netns.source to compare")
    p.add_argument("--json", help="write the results here too")
    args = p.parse_args()
    if os.geteuid() != 0:
        print("SKIP: needs root (namespaces, setns)")
        return SKIP
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    sources = [s for s in args.sources.split(",") if s]
    tmp = tempfile.mkdtemp(prefix="senb-")

    def config(name, include, source):
        path = os.path.join(tmp, f"{name}-{source}.yaml")
        with open(path, "w") as f:
            f.write(f'netns: {{include: ["{include}"], cache_seconds: 60, '
                    f'max_namespaces: {args.namespaces}, source: {source}}}\n')
        return path

    results = {}
    ok = True
    conns_total = args.sockets // 2
    # ---- one namespace ----
    print(f"population: {args.sockets} sockets in 1 namespace", file=sys.stderr)
    make_namespace("senb-one")
    holders = start_holders("senb-one", conns_total)
    wait_ready(holders)
    expected = 2 * conns_total + LISTENERS * len(holders)
    contenders = [("plain", Exporter(args.exporter, [], netns="senb-one"))]
    for source in sources:
        contenders.append((f"netns-one[{source}]",
                           Exporter(args.exporter, ["--collector.netns",
                                                    f"--config.file={config('one', 'senb-one', source)}"])))
    for _, e in contenders:  # warm-up: caches, first discovery
        scrape(e)
    ok &= run_contenders(contenders, args.rounds, results, expected)
    for _, e in contenders:
        e.stop()
    for h in holders:
        h.kill()
        h.wait()
    subprocess.run(["ip", "netns", "del", "senb-one"], capture_output=True)
    time.sleep(1)

    # ---- many namespaces ----
    print(f"population: {args.sockets} sockets in {args.namespaces} namespaces", file=sys.stderr)
    holders = []
    per_ns = conns_total // args.namespaces
    for i in range(args.namespaces):
        name = f"senb-{i:02d}"
        make_namespace(name)
        holders += start_holders(name, per_ns)
    wait_ready(holders)
    expected = 2 * per_ns * args.namespaces + LISTENERS * len(holders)
    contenders = []
    for source in sources:
        contenders.append((f"netns-many[{source}]",
                           Exporter(args.exporter, ["--collector.netns",
                                                    f"--config.file={config('many', 'senb-[0-9]*', source)}"])))
    for _, e in contenders:
        scrape(e)
    ok &= run_contenders(contenders, args.rounds, results, expected)

    base = summary(results["plain"])[0]
    print(f"\n{args.sockets} sockets, {args.namespaces} namespaces, {args.rounds} rounds "
          f"(ms per scrape; ratio = median wall / plain's median wall)")
    print(f"| contender | wall median | wall min | CPU median | ratio |")
    print(f"|---|---|---|---|---|")
    for name, samples in results.items():
        med, low, cpu = summary(samples)
        print(f"| {name} | {med:.1f} | {low:.1f} | {cpu:.0f} | {med / base:.2f} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({k: v for k, v in results.items()}, f)
    return 0 if ok else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    finally:
        cleanup()
