#!/usr/bin/env python3
"""Cost of the events collector (docs/events.md, BENCHMARKS.md). As root:

    bench/events_bench.py --exporter build/exporter/socket_exporter [--rounds 5 --seconds 5]

1. Overhead on the hottest path it traces: a loopback connect/accept/close
   storm (bench/connect_storm.c, compiled here with cc) in a fresh namespace
   "seevb", at the machine's limit (one client thread, one server thread).
   Rounds alternate: `off` = no BPF program attached; `on` = the exporter
   running in the namespace with --collector.events (attached by a first
   scrape). Per run: connections per second and the storm's user+system CPU
   per connection (getrusage: loopback softirq work runs in the process's
   context and is part of its system time). Overhead = median(on) /
   median(off) - 1, CPU per connection.
   In every `on` run, socket_connects_total{result="ok"} must have risen by
   the storm's connections (the counters are exact, not sampled).
2. ns per traced event: one more `on` run with kernel.bpf_stats_enabled=1;
   the kernel's run_time_ns / run_cnt of each of the exporter's programs
   (the BPF program itself, not the tracepoint's dispatch).
3. Scrape cost: the events collector's own duration
   (socket_exporter_collector_duration_seconds{collector="events"}) with
   the maps nearly empty and with ~4000 keys in connects and destinations
   (refused connects to 4000 distinct closed ports).
"""

import argparse
import http.client
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import types

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                "integration"))
from harness import in_netns  # noqa: E402

NS = "seevb"
PORT = 18095


def sh(*argv, **kw):
    return subprocess.run(argv, check=True, capture_output=True, text=True, **kw)


def in_ns(argv):
    return ["nsenter", f"--net=/var/run/netns/{NS}"] + list(argv)


def scrape():
    """GET /metrics from inside the namespace (harness.in_netns moves one
    thread there)."""
    def fetch():
        c = http.client.HTTPConnection("127.0.0.1", PORT, timeout=60)
        c.request("GET", "/metrics")
        text = c.getresponse().read().decode()
        c.close()
        return text

    return in_netns(types.SimpleNamespace(name=NS), fetch)


def value(text, name, **labels):
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name) or line.startswith("#"):
            continue
        m = re.match(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)$', line)
        if not m or m.group(1) != name:
            continue
        got = dict(re.findall(r'([a-zA-Z_]+)="([^"]*)"', m.group(3) or ""))
        if all(got.get(k) == v for k, v in labels.items()):
            total += float(m.group(4))
    return total


class Exporter:
    def __init__(self, exporter):
        self.proc = subprocess.Popen(
            in_ns([exporter, "--collector.events", f"--web.listen-address=127.0.0.1:{PORT}"]),
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        for _ in range(100):
            try:
                text = scrape()
                break
            except ConnectionRefusedError:
                time.sleep(0.1)
        else:
            raise RuntimeError("exporter did not start")
        if value(text, "socket_exporter_collector_success", collector="events") != 1:
            self.stop()
            raise RuntimeError("the events collector did not load")

    def stop(self):
        self.proc.kill()
        self.proc.wait()


def storm(binary, seconds):
    r = sh(*in_ns([binary, str(seconds), "7070"]))
    conns, elapsed, user, system, failures = r.stdout.split()
    return {"connections": int(conns), "seconds": float(elapsed), "user": float(user),
            "system": float(system), "failures": int(failures)}


def prog_stats(pid):
    progs = json.loads(sh("bpftool", "prog", "show", "-j").stdout)
    out = {}
    for p in progs:
        owners = [o.get("pid") for o in p.get("pids", [])]
        if (pid in owners or not owners) and p.get("name", "").startswith("on_"):
            out[p["name"]] = (p.get("run_cnt", 0), p.get("run_time_ns", 0))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--exporter", required=True)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=5.0)
    a = ap.parse_args()
    tmp = tempfile.mkdtemp()
    binary = os.path.join(tmp, "connect_storm")
    sh("cc", "-O2", "-pthread", os.path.join(os.path.dirname(__file__), "connect_storm.c"),
       "-o", binary)
    subprocess.run(["ip", "netns", "del", NS], capture_output=True)
    sh("ip", "netns", "add", NS)
    try:
        sh("ip", "netns", "exec", NS, "ip", "link", "set", "lo", "up")
        sh("ip", "netns", "exec", NS, "sysctl", "-qw", "net.ipv4.tcp_max_tw_buckets=1024")
        print(f"# {time.strftime('%Y-%m-%d %H:%M:%S')} {os.uname().release} "
              f"{os.cpu_count()} CPUs; load before: {open('/proc/loadavg').read().strip()}")
        runs = {"off": [], "on": []}
        for r in range(a.rounds):
            for mode in ("off", "on") if r % 2 == 0 else ("on", "off"):
                exp = Exporter(a.exporter) if mode == "on" else None
                before = scrape() if exp else None
                s = storm(binary, a.seconds)
                if exp:
                    after = scrape()
                    counted = (value(after, "socket_connects_total", result="ok")
                               - value(before, "socket_connects_total", result="ok"))
                    s["counted"] = counted
                    exp.stop()
                s["rate"] = s["connections"] / s["seconds"]
                s["cpu_us"] = (s["user"] + s["system"]) / s["connections"] * 1e6
                s["sys_us"] = s["system"] / s["connections"] * 1e6
                runs[mode].append(s)
                extra = f" counted {s['counted']:.0f}" if "counted" in s else ""
                print(f"round {r} {mode:3s} {s['rate']:8.0f} conn/s  cpu {s['cpu_us']:.2f} us/conn"
                      f"  sys {s['sys_us']:.2f} us/conn{extra}  load "
                      f"{open('/proc/loadavg').read().split()[0]}", flush=True)
        for key in ("rate", "cpu_us", "sys_us"):
            off = statistics.median(x[key] for x in runs["off"])
            on = statistics.median(x[key] for x in runs["on"])
            print(f"median {key}: off {off:.2f} on {on:.2f} change {100 * (on / off - 1):+.1f}%  "
                  f"(off range {min(x[key] for x in runs['off']):.2f}-"
                  f"{max(x[key] for x in runs['off']):.2f}, on range "
                  f"{min(x[key] for x in runs['on']):.2f}-{max(x[key] for x in runs['on']):.2f})")
        # The scrape after the storm is one more successful connect.
        exact = all(x["counted"] == x["connections"] + 1 for x in runs["on"])
        print(f"counters exact in every on run: {exact}")

        # 2. ns per traced event.
        sh("sysctl", "-qw", "kernel.bpf_stats_enabled=1")
        try:
            exp = Exporter(a.exporter)
            s = storm(binary, a.seconds)
            stats = prog_stats(exp.proc.pid)
            # nsenter execs the exporter: same pid.
            exp.stop()
        finally:
            sh("sysctl", "-qw", "kernel.bpf_stats_enabled=0")
        total_cnt = sum(c for c, _ in stats.values())
        total_ns = sum(t for _, t in stats.values())
        for name, (cnt, ns) in sorted(stats.items()):
            print(f"  {name}: {cnt} runs, {ns / cnt if cnt else 0:.0f} ns/run")
        if total_cnt:
            print(f"events per connection {total_cnt / s['connections']:.1f}, "
                  f"{total_ns / total_cnt:.0f} ns per traced event, "
                  f"{total_ns / s['connections']:.0f} ns of BPF per connection")

        # 3. Scrape cost, with few and with ~4000 keys.
        exp = Exporter(a.exporter)

        def events_duration():
            return statistics.median(
                value(scrape(), "socket_exporter_collector_duration_seconds", collector="events")
                for _ in range(9))

        few = events_duration()
        filler = ("import socket\nfor p in range(20000, 24000):\n"
                  "    s = socket.socket()\n    try: s.connect(('127.0.0.1', p))\n"
                  "    except OSError: pass\n    s.close()\n")
        sh(*in_ns([sys.executable, "-c", filler]))
        text = scrape()
        keys = value(text, "socket_connects_total", result="refused")
        many = events_duration()
        exp.stop()
        print(f"scrape (events collector alone): {few * 1e3:.2f} ms with few keys, "
              f"{many * 1e3:.2f} ms after {keys:.0f} refused connects to 4000 distinct ports")
    finally:
        subprocess.run(["ip", "netns", "del", NS], capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
