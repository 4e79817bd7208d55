#!/usr/bin/env python3
"""End-to-end scrape benchmark (BENCHMARKS.md). As root:

    bench/run_bench.py                      # 1k, 10k, 100k, 250k TCP sockets, 7 rounds
    bench/run_bench.py --sizes 1000,10000 --rounds 5
    bench/run_bench.py --smoke              # 1k sockets, 3 rounds: what ctest runs

It builds the exporter and the reference loop (cmake, into BUILD, default
<repo>/build-bench) unless --exporter/--reference name binaries, creates a
fresh network namespace, and in it:

  * a socket population, grown size by size: worker processes (at most
    ~19,600 sockets each, RLIMIT_NOFILE 20000; as many as the largest size
    needs, started at the first size, so listening ports and destinations are
    the same at every size) that each listen on two ports (IPv4 and IPv6),
    connect to themselves and accept, so every connection is two sockets;
    every 10th client half-closes (FIN_WAIT2 / CLOSE_WAIT), the rest stay
    ESTABLISHED. 1/4 of the connections are IPv6; the IPv4 ones go to three
    destination addresses. Plus about 2% UDP (half unconnected, half
    connected). ip_local_port_range is widened to 1024-65535 so no
    destination runs out of ports. No TIME_WAIT: it expires after 60 s and
    the population must stay the same while the contenders take turns;
  * three contenders, run alternately (the order rotates every round) on the
    same population:
      exporter       GET /metrics of socket_exporter with its default
                     collectors, timed from the client (connect to last byte);
      reference      bench/reference_dump: one legacy TCPDIAG_GETSOCK dump of
                     the same TCP sockets into a state counter (its own timer,
                     around the dump only);
      node_exporter  GET /metrics of prometheus-node-exporter
                     --collector.disable-defaults --collector.tcpstat.
    And, when bench/stack_floor is built or given (--stack-floor), the stack's
    floor: GET /metrics of stack_floor, which serves the exporter's families
    for this population (collected once per size) through the same
    prometheus-cpp Exposer on CivetWeb without walking anything. reference +
    floor is what a scrape would cost if the exporter's own code were free.
    Optional extra reference modes (--extra-modes) time other dump strategies.

CPU per scrape: for the servers, the change in the summed per-thread run time
(/proc/PID/task/*/schedstat, nanoseconds, user+system) across the scrape;
user/system split from /proc/PID/stat over all rounds. For the reference:
its getrusage around the dump. Memory: the exporter's VmRSS after each size
(the same process across sizes). Body: bytes and sample lines of the
exporter's answer.

Everything the run starts runs at nice -20 (--no-nice to keep the default),
so that other work on a shared machine disturbs the contenders less; it is
the same for all of them. Sockets of other namespaces still slow every dump
(the kernel's hash tables are shared): each size reports how many TCP
sockets the host holds in all namespaces.

Everything the run starts -- processes, the namespace -- is removed at the
end, also on error or Ctrl-C. Exit status: 0 when every contender answered
and agreed on the TCP socket count (the goals are reported, not enforced);
77 (skip) without root or namespaces.
"""

import argparse
import ctypes
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time

SKIP = 77
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLONE_NEWNET = 0x40000000
EXPORTER_PORT = 19375
STACK_FLOOR_PORT = 19376
NODE_EXPORTER_PORT = 9100
EXPORTER_OFF_PORT = 19376  # --compare-off
FILES_PER_PROCESS = 20000
# Sockets per worker: 2 per connection plus listeners, UDP and a margin for
# stdio and Python's own descriptors, under FILES_PER_PROCESS.
MAX_PAIRS_PER_WORKER = 9600
LISTEN_PORTS_PER_WORKER = 2
# Below the widened ephemeral range (1024-65535), so clients never hold them.
LISTEN_PORT_BASE = 200
# UDP: per worker, one unconnected and one connected socket per UDP_EVERY
# connections (at least UDP_MIN_PER_WORKER of each): about 2% of the sockets.
UDP_EVERY = 50
UDP_MIN_PER_WORKER = 4  # both families (every 4th is IPv6) from the first size


# ---- population worker (runs as a separate process) -------------------------

def worker_main(spec):
    """Listens on spec["ports"] (IPv4 and IPv6), opens spec["udp"] unconnected
    and as many connected UDP sockets, prints READY <json>; then, for every
    line "grow N" on stdin, makes N more loopback connections (both ends held)
    and prints "OK <pairs so far>". Holds everything until killed."""
    resource.setrlimit(resource.RLIMIT_NOFILE, (FILES_PER_PROCESS, FILES_PER_PROCESS))
    held = []
    targets = []  # (family, address, port, listener)
    for port in spec["ports"]:
        l4 = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        l4.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        l4.bind(("0.0.0.0", port))
        l4.listen(4096)
        l6 = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        l6.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        l6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        l6.bind(("::1", port))
        l6.listen(4096)
        held += [l4, l6]
        # Three IPv4 destinations for one IPv6: several destinations per
        # listening port, as behind a load balancer.
        for last in (1, 2, 3):
            targets.append((socket.AF_INET, f"127.0.0.{last}", port, l4))
        targets.append((socket.AF_INET6, "::1", port, l6))

    udp = 0

    def add_udp(target):
        """One unconnected (bound) and one connected UDP socket per step."""
        nonlocal udp
        while udp < target:
            family = socket.AF_INET6 if udp % 4 == 3 else socket.AF_INET
            local = "::1" if family == socket.AF_INET6 else "127.0.0.1"
            u = socket.socket(family, socket.SOCK_DGRAM)
            u.bind((local, 0))
            c = socket.socket(family, socket.SOCK_DGRAM)
            c.connect((local, 5353))
            held.extend((u, c))
            udp += 1

    add_udp(UDP_MIN_PER_WORKER)
    made = 0
    print("READY" + json.dumps({"sockets": len(held)}), flush=True)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    for line in sys.stdin:
        remaining = int(line.split()[1])
        while remaining > 0:
            # Connect a chunk, then accept it: a chunk stays under the backlog.
            chunk = min(remaining, 1024)
            pending = {}
            for i in range(chunk):
                family, address, port, listener = targets[(made + i) % len(targets)]
                c = socket.socket(family, socket.SOCK_STREAM)
                c.connect((address, port))
                held.append(c)
                if (made + i) % 10 == 9:
                    c.shutdown(socket.SHUT_WR)  # client FIN_WAIT2, server CLOSE_WAIT
                pending[listener] = pending.get(listener, 0) + 1
            for listener, count in pending.items():
                for _ in range(count):
                    conn, _ = listener.accept()
                    held.append(conn)
            made += chunk
            remaining -= chunk
        add_udp(made // UDP_EVERY)
        print(f"OK {made}", flush=True)
    # stdin closed: the driver is gone; hold until killed anyway.
    while True:
        time.sleep(3600)


# ---- namespace and process bookkeeping ---------------------------------------

class Cleanup:
    """Processes and the namespace this run made; undone in reverse order."""

    def __init__(self):
        self.procs = []
        self.netns = None
        self.original_ns_fd = None

    def spawn(self, argv, **kw):
        p = subprocess.Popen(argv, **kw)
        self.procs.append(p)
        return p

    def run(self):
        for p in reversed(self.procs):
            if p.poll() is None:
                p.kill()
        for p in self.procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        self.procs = []
        if self.original_ns_fd is not None:
            setns(self.original_ns_fd)
            os.close(self.original_ns_fd)
            self.original_ns_fd = None
        if self.netns:
            # Anything still inside (children of a crashed worker).
            r = subprocess.run(["ip", "netns", "pids", self.netns], capture_output=True, text=True)
            for pid in r.stdout.split():
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except (ProcessLookupError, ValueError):
                    pass
            subprocess.run(["ip", "netns", "del", self.netns], capture_output=True)
            self.netns = None


_libc = ctypes.CDLL(None, use_errno=True)


def setns(fd):
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


def enter_new_netns(cleanup):
    """Creates a namespace and moves this (single-threaded) process into it, so
    the HTTP client and every child process run there."""
    name = f"se-bench-{os.getpid()}"
    r = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True)
    if r.returncode != 0:
        raise SkipRun(f"cannot create a network namespace: {r.stderr.strip()}")
    cleanup.netns = name
    cleanup.original_ns_fd = os.open("/proc/self/ns/net", os.O_RDONLY)
    fd = os.open(f"/var/run/netns/{name}", os.O_RDONLY)
    try:
        setns(fd)
    finally:
        os.close(fd)
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    with open("/proc/sys/net/ipv4/ip_local_port_range", "w") as f:
        f.write("1024 65535\n")
    return name


class SkipRun(Exception):
    pass


# ---- measurement helpers --------------------------------------------------------

def sched_ns(pid):
    """(run, runqueue wait) of every live thread of pid, summed, in ns: time on
    a CPU (user+system), and time runnable but waiting for one."""
    run = wait = 0
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except FileNotFoundError:
        return 0, 0
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                fields = f.read().split()
            run += int(fields[0])
            wait += int(fields[1])
        except (FileNotFoundError, ProcessLookupError):
            pass
    return run, wait


def stat_ticks(pid):
    """(utime, stime) of the whole process in clock ticks, dead threads included."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]), int(fields[12])


def rss_kib(pid, key="VmRSS"):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def http_get(port, path="/metrics", timeout=60):
    """Returns (seconds from connect to last byte, status, body bytes).

    A minimal HTTP/1.1 client on a raw socket: one request, read until the
    body has Content-Length bytes, or until the server closes (a chunked
    answer, as node_exporter sends, is then decoded). http.client spends
    ~0.3 ms per request in Python, which would be billed to the servers."""
    start = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
        data = bytearray()
        head_end = -1
        length = None
        while True:
            chunk = s.recv(1 << 20)
            if not chunk:
                break
            data += chunk
            if head_end < 0:
                head_end = data.find(b"\r\n\r\n")
                if head_end >= 0:
                    for line in bytes(data[:head_end]).split(b"\r\n")[1:]:
                        name, _, value = line.partition(b":")
                        if name.strip().lower() == b"content-length":
                            length = int(value)
            if length is not None and len(data) - head_end - 4 >= length:
                break
    seconds = time.perf_counter() - start
    if head_end < 0:
        raise RuntimeError(f"port {port}: no complete HTTP header in {len(data)} bytes")
    head = bytes(data[:head_end]).lower()
    status = int(head.split(b" ", 2)[1])
    body = bytes(data[head_end + 4:])
    if length is not None and len(body) != length:
        raise RuntimeError(f"port {port}: {len(body)} body bytes, Content-Length {length}")
    if length is None and b"transfer-encoding: chunked" in head:
        body = _dechunk(body, port)
    return seconds, status, body


def _dechunk(raw, port):
    out = bytearray()
    position = 0
    while True:
        line_end = raw.find(b"\r\n", position)
        if line_end < 0:
            raise RuntimeError(f"port {port}: truncated chunked body")
        size = int(raw[position:line_end].split(b";")[0], 16)
        if size == 0:
            return bytes(out)
        out += raw[line_end + 2:line_end + 2 + size]
        position = line_end + 2 + size + 2


def wait_http(port, proc, what, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with status {proc.returncode}")
        try:
            _, status, _ = http_get(port, "/metrics", timeout=30)
            if status == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not answer on port {port} within {timeout} s")


_SAMPLE = re.compile(rb'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)', re.M)


def sum_metric(body, name, must_contain=b"", must_not_contain=None):
    total = 0.0
    for m in _SAMPLE.finditer(body):
        labels = m.group(2) or b""
        if m.group(1) != name or must_contain not in labels:
            continue
        if must_not_contain is not None and must_not_contain in labels:
            continue
        total += float(m.group(3))
    return total


def host_tcp_allocated():
    """TCP sockets allocated in every namespace of the host (/proc/net/sockstat
    "alloc" is global). Every dump walks them all: the hash tables are shared,
    so sockets of other namespaces slow every contender alike."""
    try:
        with open("/proc/net/sockstat") as f:
            for line in f:
                if line.startswith("TCP:"):
                    fields = line.split()
                    return int(fields[fields.index("alloc") + 1])
    except (OSError, ValueError):
        pass
    return -1


def median(values):
    return statistics.median(values) if values else float("nan")


# ---- contenders ----------------------------------------------------------------

class ServerContender:
    def __init__(self, name, port, proc, count_metric, count_filter=b"", count_exclude=None):
        self.name = name
        self.port = port
        self.proc = proc
        self.count_metric = count_metric
        self.count_filter = count_filter
        self.count_exclude = count_exclude

    def measure(self):
        before = sched_ns(self.proc.pid)
        seconds, status, body = http_get(self.port)
        after = sched_ns(self.proc.pid)
        if status != 200:
            raise RuntimeError(f"{self.name}: /metrics answered {status}")
        names = [line.rsplit(b" ", 1)[0].decode() for line in body.splitlines()
                 if line and not line.startswith(b"#")]
        return {"ms": seconds * 1e3, "cpu_ms": (after[0] - before[0]) / 1e6,
                "wait_ms": (after[1] - before[1]) / 1e6, "body": len(body),
                "series": len(names), "series_names": names,
                "tcp": sum_metric(body, self.count_metric, self.count_filter, self.count_exclude)}


class ReferenceContender:
    def __init__(self, name, binary, mode):
        self.name = name
        self.binary = binary
        self.mode = mode

    def measure(self):
        r = subprocess.run([self.binary, "--mode", self.mode], capture_output=True, text=True,
                           check=True)
        fields = dict(kv.split("=", 1) for kv in r.stdout.split())
        return {"ms": float(fields["elapsed_ms"]), "cpu_ms": float(fields["cpu_ms"]),
                "user_ms": float(fields["user_ms"]), "sys_ms": float(fields["sys_ms"]),
                "wait_ms": float("nan"), "tcp": float(fields["sockets"]), "body": 0}


# ---- the run -------------------------------------------------------------------

def build(build_dir):
    print(f"building socket_exporter, reference_dump and stack_floor in {build_dir}", flush=True)
    subprocess.run(["cmake", "-S", REPO, "-B", build_dir, "-DCMAKE_BUILD_TYPE=RelWithDebInfo"],
                   check=True, stdout=subprocess.DEVNULL)
    subprocess.run(["cmake", "--build", build_dir, "-j", str(os.cpu_count() or 2), "--target",
                    "socket_exporter", "reference_dump", "stack_floor"], check=True,
                   stdout=subprocess.DEVNULL)
    return (os.path.join(build_dir, "exporter", "socket_exporter"),
            os.path.join(build_dir, "bench", "reference_dump"),
            os.path.join(build_dir, "bench", "stack_floor"))


class StackFloor(ServerContender):
    """bench/stack_floor. Started before the population, like the other
    servers (the population's connections take ephemeral ports from the
    whole widened range, so a later bind could collide); refreshed at every
    size so that it serves the families of the population it is measured on."""

    def __init__(self, cleanup, binary):
        proc = cleanup.spawn([binary, "--port", str(STACK_FLOOR_PORT)], stdout=subprocess.PIPE,
                             text=True)
        super().__init__("stack_floor", STACK_FLOOR_PORT, proc, b"socket_connections",
                         b'protocol="tcp"')
        self._expect("READY")

    def refresh(self):
        self.proc.send_signal(signal.SIGHUP)
        self._expect("REFRESHED")

    def _expect(self, word):
        line = self.proc.stdout.readline()
        if not line.startswith(word):
            raise RuntimeError(f"stack_floor: expected {word}, got {line!r} "
                               f"(exit {self.proc.poll()})")


def find_node_exporter(install):
    for name in ("prometheus-node-exporter", "node_exporter"):
        path = shutil.which(name)
        if path:
            return path
    if not install:
        return None
    print("installing prometheus-node-exporter (apt-get)", flush=True)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends",
                    "prometheus-node-exporter"], check=True, env=env, stdout=subprocess.DEVNULL)
    return shutil.which("prometheus-node-exporter")


class Population:
    """Worker processes holding the sockets. The shape is fixed by the largest
    size -- the same workers, listening ports, destinations and UDP sockets at
    every size -- so that only the connection count changes between sizes."""

    def __init__(self, cleanup, largest):
        self.cleanup = cleanup
        per_worker = 2 * MAX_PAIRS_PER_WORKER
        self.workers = []
        for w in range(max(1, -(-largest // per_worker))):
            plan = {"ports": [LISTEN_PORT_BASE + w * LISTEN_PORTS_PER_WORKER + i
                              for i in range(LISTEN_PORTS_PER_WORKER)]}
            p = cleanup.spawn([sys.executable, os.path.abspath(__file__), "--worker",
                               json.dumps(plan)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True)
            self.workers.append(p)
        for p in self.workers:
            line = p.stdout.readline()
            if not line.startswith("READY"):
                raise RuntimeError(f"population worker failed (exit {p.poll()}): {line!r}")
        self.listeners = len(self.workers) * 2 * LISTEN_PORTS_PER_WORKER
        self.pairs = [0] * len(self.workers)

    def tcp_sockets(self):
        return self.listeners + 2 * sum(self.pairs)

    def grow_to(self, tcp_target):
        """Adds connections, spread evenly over the workers, until the
        population holds about tcp_target TCP sockets."""
        total_pairs = max(0, (tcp_target - self.listeners) // 2)
        n = len(self.workers)
        asked = []
        for i, p in enumerate(self.workers):
            want = total_pairs // n + (1 if i < total_pairs % n else 0)
            if want > MAX_PAIRS_PER_WORKER:
                raise RuntimeError("population plan exceeds the per-process file limit")
            more = want - self.pairs[i]
            if more > 0:
                p.stdin.write(f"grow {more}\n")
                p.stdin.flush()
                asked.append((i, p))
        for i, p in asked:  # the workers connect in parallel
            line = p.stdout.readline()
            if not line.startswith("OK"):
                raise RuntimeError(f"population worker failed (exit {p.poll()}): {line!r}")
            self.pairs[i] = int(line.split()[1])


def run(args):
    if os.geteuid() != 0:
        raise SkipRun("needs root (network namespaces, RLIMIT_NOFILE 20000, sysctls)")
    if args.exporter and args.reference:
        exporter, reference, stack_floor = args.exporter, args.reference, args.stack_floor
    else:
        exporter, reference, stack_floor = build(args.build_dir)
    node_exporter = None if args.no_node_exporter else find_node_exporter(not args.smoke)
    if node_exporter is None and not args.no_node_exporter:
        print("node_exporter not installed (Debian: prometheus-node-exporter): not measured")

    if not args.no_nice:
        # Inherited by every process the run starts: on a shared machine the
        # contenders then lose less time to whatever else runs. Equal for all.
        os.setpriority(os.PRIO_PROCESS, 0, -20)
    cleanup = Cleanup()
    results = []
    try:
        netns = enter_new_netns(cleanup)
        print(f"namespace {netns}", flush=True)
        contenders = []
        exp_proc = cleanup.spawn([exporter, f"--web.listen-address=127.0.0.1:{EXPORTER_PORT}",
                                  "--log.level=warn"], stdout=subprocess.DEVNULL)
        wait_http(EXPORTER_PORT, exp_proc, "socket_exporter")
        contenders.append(ServerContender("exporter", EXPORTER_PORT, exp_proc,
                                          b"socket_connections", b'protocol="tcp"'))
        contenders.append(ReferenceContender("reference", reference, "legacy"))
        node_proc = None
        if node_exporter:
            node_proc = cleanup.spawn(
                [node_exporter, "--collector.disable-defaults", "--collector.tcpstat",
                 f"--web.listen-address=127.0.0.1:{NODE_EXPORTER_PORT}", "--log.level=warn"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            wait_http(NODE_EXPORTER_PORT, node_proc, "node_exporter")
            # Its tcpstat adds rx/tx_queued_bytes as pseudo-states of the same metric.
            contenders.append(ServerContender("node_exporter", NODE_EXPORTER_PORT, node_proc,
                                              b"node_tcp_connection_states", b"",
                                              b"queued_bytes"))
        floor = None
        if stack_floor:
            floor = StackFloor(cleanup, stack_floor)
            contenders.append(floor)
        for mode in args.extra_modes:
            contenders.append(ReferenceContender(f"ref:{mode}", reference, mode))
        # --compare-off NAME: the same exporter with one collector off, side
        # by side, to measure what that collector costs.
        if args.compare_off:
            off_proc = cleanup.spawn(
                [exporter, f"--web.listen-address=127.0.0.1:{EXPORTER_OFF_PORT}",
                 "--log.level=warn", f"--no-collector.{args.compare_off}"],
                stdout=subprocess.DEVNULL)
            wait_http(EXPORTER_OFF_PORT, off_proc, f"socket_exporter without {args.compare_off}")
            contenders.append(ServerContender("exporter_off", EXPORTER_OFF_PORT, off_proc,
                                              b"socket_connections", b'protocol="tcp"'))

        population = Population(cleanup, args.sizes[-1])
        for size in args.sizes:
            t0 = time.monotonic()
            population.grow_to(size)
            if floor:
                floor.refresh()
            host_alloc = host_tcp_allocated()
            print(f"\n== {size} TCP sockets (population built in {time.monotonic() - t0:.1f} s, "
                  f"{len(population.workers)} worker processes; {host_alloc} TCP sockets "
                  f"allocated host-wide, load {os.getloadavg()[0]:.1f})", flush=True)
            for c in contenders:  # warm up: first scrape allocates, fills caches
                c.measure()
            samples = {c.name: [] for c in contenders}
            servers = [c for c in contenders if isinstance(c, ServerContender)]
            ticks_before = {c.name: stat_ticks(c.proc.pid) for c in servers}
            for r in range(args.rounds):
                k = r % len(contenders)
                for c in contenders[k:] + contenders[:k]:
                    samples[c.name].append(c.measure())
            ticks_after = {c.name: stat_ticks(c.proc.pid) for c in servers}
            row = {"size": size, "tcp_sockets": median([s["tcp"] for s in samples["reference"]]),
                   "host_tcp_allocated": host_alloc, "load": os.getloadavg()[0],
                   "exporter_rss_kib": rss_kib(exp_proc.pid),
                   "exporter_hwm_kib": rss_kib(exp_proc.pid, "VmHWM"),
                   "exporter_body_bytes": samples["exporter"][-1]["body"],
                   "exporter_series": samples["exporter"][-1]["series"],
                   "exporter_series_names": samples["exporter"][-1]["series_names"],
                   "stack_floor_series": samples["stack_floor"][-1]["series"] if floor else 0,
                   "contenders": {}}
            # Per-round ratios: the two measured within one round, seconds
            # apart, share the machine's state of that moment (this VM's
            # speed drifts by up to 1.7x over minutes); their median is the
            # steadiest of the ratios.
            for other in ("reference", "node_exporter"):
                if other in samples:
                    row[f"paired_exporter_{other}"] = median(
                        [e["ms"] / o["ms"] for e, o in zip(samples["exporter"], samples[other])])
            if "exporter_off" in samples:
                pairs = list(zip(samples["exporter"], samples["exporter_off"]))
                row["paired_on_off_ms"] = median([e["ms"] / o["ms"] for e, o in pairs])
                row["paired_on_off_cpu"] = median([e["cpu_ms"] / o["cpu_ms"] for e, o in pairs])
                print(f"  {args.compare_off} on/off, paired per round: wall "
                      f"{row['paired_on_off_ms']:.3f}x, cpu {row['paired_on_off_cpu']:.3f}x "
                      f"(rounds: {[round(e['cpu_ms'] / o['cpu_ms'], 3) for e, o in pairs]})",
                      flush=True)
            if floor:
                rounds = list(zip(samples["exporter"], samples["reference"],
                                  samples["stack_floor"]))
                # The best any exporter on this HTTP stack can do against the
                # reference: the kernel's walk, then the stack's own cost.
                row["paired_floor_reference"] = median([(r["ms"] + f["ms"]) / r["ms"]
                                                        for _, r, f in rounds])
                # What the exporter adds beyond walk and stack, in the same unit.
                row["paired_own_code_reference"] = median([(e["ms"] - f["ms"]) / r["ms"]
                                                           for e, r, f in rounds])
            for c in contenders:
                s = samples[c.name]
                entry = {"ms": median([x["ms"] for x in s]),
                         "ms_min": min(x["ms"] for x in s),
                         "cpu_ms": median([x["cpu_ms"] for x in s]),
                         "wait_ms": median([x["wait_ms"] for x in s]),
                         "tcp": median([x["tcp"] for x in s]),
                         "samples_ms": [round(x["ms"], 3) for x in s],
                         "samples_cpu_ms": [round(x["cpu_ms"], 3) for x in s]}
                if c.name in ticks_before:
                    # Whole-process ticks (10 ms each) over all rounds: coarse,
                    # used for the user/system split only.
                    hz = os.sysconf("SC_CLK_TCK")
                    (u0, s0), (u1, s1) = ticks_before[c.name], ticks_after[c.name]
                    entry["user_ms"] = (u1 - u0) * 1e3 / hz / args.rounds
                    entry["sys_ms"] = (s1 - s0) * 1e3 / hz / args.rounds
                else:
                    entry["user_ms"] = median([x["user_ms"] for x in s])
                    entry["sys_ms"] = median([x["sys_ms"] for x in s])
                row["contenders"][c.name] = entry
                waited = "" if entry["wait_ms"] != entry["wait_ms"] else \
                    f", waited for a CPU {entry['wait_ms']:.1f}"
                print(f"  {c.name:<22} median {entry['ms']:9.2f} ms  (min {entry['ms_min']:8.2f})"
                      f"  cpu {entry['cpu_ms']:8.2f} ms/scrape (user {entry['user_ms']:.1f}, "
                      f"sys {entry['sys_ms']:.1f}{waited})  tcp sockets {entry['tcp']:.0f}",
                      flush=True)
            print(f"  exporter RSS {row['exporter_rss_kib']} KiB (peak {row['exporter_hwm_kib']}),"
                  f" body {row['exporter_body_bytes']} bytes, {row['exporter_series']} series",
                  flush=True)
            results.append(row)
        if args.hold:
            print(f"\nholding namespace {netns} (exporter :{EXPORTER_PORT}, node_exporter "
                  f":{NODE_EXPORTER_PORT}); Ctrl-C or SIGTERM cleans up", flush=True)
            try:
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                pass
    finally:
        cleanup.run()
    return results, node_exporter is not None


def report(results, args, have_node):
    print("\n## Results\n")
    print(f"machine: {platform.node()}, {os.cpu_count()} CPUs, "
          f"{_cpu_model()}; kernel {platform.release()}; "
          f"{time.strftime('%Y-%m-%d')}; rounds {args.rounds}")
    print("Wall ms: median (min); CPU ms per scrape: median. exp/ref and exp/node: ratio of the "
          "medians, then of the minima and of the CPU medians; paired: the median of the "
          "per-round ratios.\n")
    header = ("| TCP sockets | exporter ms | reference ms | node_exporter ms | exp/ref | paired "
              "| exp/node | paired "
              "| exporter CPU | reference CPU | node_exporter CPU | exporter RSS KiB "
              "| body bytes | series |")
    print(header)
    print("|---" * (header.count("|") - 1) + "|")
    nan = {"ms": float("nan"), "ms_min": float("nan"), "cpu_ms": float("nan")}
    for row in results:
        c = row["contenders"]
        e, ref, n = c["exporter"], c["reference"], c.get("node_exporter", nan)

        def ratios(a, b):
            return (f"{a['ms'] / b['ms']:.2f} ({a['ms_min'] / b['ms_min']:.2f}, "
                    f"{a['cpu_ms'] / b['cpu_ms']:.2f})")

        print(f"| {row['tcp_sockets']:.0f} | {e['ms']:.2f} ({e['ms_min']:.2f}) | "
              f"{ref['ms']:.2f} ({ref['ms_min']:.2f}) | {n['ms']:.2f} ({n['ms_min']:.2f}) | "
              f"{ratios(e, ref)} | {row['paired_exporter_reference']:.2f} | {ratios(e, n)} | "
              f"{row.get('paired_exporter_node_exporter', float('nan')):.2f} | "
              f"{e['cpu_ms']:.2f} | {ref['cpu_ms']:.2f} | "
              f"{n['cpu_ms']:.2f} | {row['exporter_rss_kib']} | {row['exporter_body_bytes']} | "
              f"{row['exporter_series']} |")
    if "stack_floor" in results[0]["contenders"]:
        print("\nThe stack's floor (bench/stack_floor: the exporter's families served by "
              "prometheus-cpp on CivetWeb, nothing walked); paired, per round: (reference + "
              "floor) / reference, and (exporter - floor) / reference:\n")
        print("| TCP sockets | floor ms | floor CPU ms | series | (ref + floor) / ref | "
              "(exporter - floor) / ref | exporter / ref |")
        print("|---" * 7 + "|")
        for row in results:
            f = row["contenders"]["stack_floor"]
            print(f"| {row['tcp_sockets']:.0f} | {f['ms']:.2f} ({f['ms_min']:.2f}) | "
                  f"{f['cpu_ms']:.2f} | {row['stack_floor_series']} | "
                  f"{row['paired_floor_reference']:.2f} | "
                  f"{row['paired_own_code_reference']:.2f} | "
                  f"{row['paired_exporter_reference']:.2f} |")
    extra = [name for name in results[0]["contenders"] if name.startswith("ref:")]
    if extra:
        print("\nDump strategies (reference_dump --mode), median ms / CPU ms:\n")
        print("| TCP sockets | legacy | " + " | ".join(m[4:] for m in extra) + " |")
        print("|---" * (len(extra) + 2) + "|")
        for row in results:
            c = row["contenders"]
            cells = [f"{c['reference']['ms']:.2f} / {c['reference']['cpu_ms']:.2f}"]
            cells += [f"{c[m]['ms']:.2f} / {c[m]['cpu_ms']:.2f}" for m in extra]
            print(f"| {row['tcp_sockets']:.0f} | " + " | ".join(cells) + " |")

    print("\nGoals:")
    for row in results:
        c = row["contenders"]
        ratio = c["exporter"]["ms"] / c["reference"]["ms"]
        line = (f"  {row['tcp_sockets']:>7.0f} sockets: exporter/reference {ratio:.2f}, paired "
                f"{row['paired_exporter_reference']:.2f} (goal <= 1.2)")
        if "paired_floor_reference" in row:
            line += f"; the stack's floor alone: {row['paired_floor_reference']:.2f}"
        if have_node:
            line += (f", exporter/node_exporter {c['exporter']['ms'] / c['node_exporter']['ms']:.2f}"
                     f", paired {row['paired_exporter_node_exporter']:.2f} (goal <= 0.5)")
        print(line)
    if len(results) > 1:
        growth = (results[-1]["exporter_rss_kib"] - results[0]["exporter_rss_kib"]) / 1024
        body_growth = results[-1]["exporter_body_bytes"] - results[0]["exporter_body_bytes"]
        series = [row["exporter_series"] for row in results]
        print(f"  exporter RSS growth {results[0]['tcp_sockets']:.0f} -> "
              f"{results[-1]['tcp_sockets']:.0f} sockets: {growth:.2f} MiB (goal <= 2)")
        print(f"  /metrics body: series {' -> '.join(map(str, series))}, {body_growth:+d} bytes "
              "(goal: does not grow with sockets)")
        first = set(results[0]["exporter_series_names"])
        last = set(results[-1]["exporter_series_names"])
        for name in sorted(last - first):
            print(f"    series added since the first size: {name}")
        for name in sorted(first - last):
            print(f"    series gone since the first size: {name}")


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.machine()


def check(results):
    """Functional checks: every contender counted the same TCP sockets, within
    what the run itself adds meanwhile (each scrape's HTTP connection, and
    the TIME_WAIT it leaves for 60 s) -- a lost family or state is far more."""
    ok = True
    for row in results:
        ref = row["contenders"]["reference"]["tcp"]
        for name, entry in row["contenders"].items():
            if abs(entry["tcp"] - ref) > 60 + ref / 1000:
                print(f"FAIL at {row['size']}: {name} counted {entry['tcp']:.0f} TCP sockets, "
                      f"reference {ref:.0f}")
                ok = False
        if row["exporter_body_bytes"] <= 0:
            print(f"FAIL at {row['size']}: empty exporter body")
            ok = False
    return ok


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--worker":
        worker_main(json.loads(sys.argv[2]))
        return 0
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="1000,10000,100000,250000",
                   help="TCP socket counts, ascending (default %(default)s)")
    p.add_argument("--rounds", type=int, default=7, help="measurements per contender and size")
    p.add_argument("--build-dir", default=os.path.join(REPO, "build-bench"))
    p.add_argument("--exporter", help="socket_exporter binary (skips the build)")
    p.add_argument("--reference", help="reference_dump binary (skips the build)")
    p.add_argument("--stack-floor", help="stack_floor binary (with --exporter and --reference; "
                   "without it the floor is not measured)")
    p.add_argument("--extra-modes", default="",
                   help="more reference_dump modes to time, e.g. v2,v2-parallel,states-parallel,"
                        "split-parallel")
    p.add_argument("--no-node-exporter", action="store_true")
    p.add_argument("--compare-off", metavar="COLLECTOR",
                   help="also run the exporter with --no-collector.COLLECTOR, alternating with "
                        "the default one, and report the paired on/off ratios")
    p.add_argument("--no-nice", action="store_true",
                   help="keep the normal priority (default: nice -20 for everything the run starts)")
    p.add_argument("--json", help="also write the results to this file")
    p.add_argument("--hold", action="store_true",
                   help="after measuring, keep the namespace and population for profiling "
                        "(ip netns exec se-bench-PID ...) until Ctrl-C")
    p.add_argument("--smoke", action="store_true",
                   help="1000 sockets, 3 rounds, no node_exporter install (ctest)")
    args = p.parse_args()
    if args.smoke:
        args.sizes, args.rounds = "1000", 3
    args.sizes = [int(s) for s in args.sizes.split(",")]
    args.extra_modes = [m for m in args.extra_modes.split(",") if m]
    if args.sizes != sorted(args.sizes):
        p.error("--sizes must be ascending (the population only grows)")

    def on_signal(signum, _frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    try:
        results, have_node = run(args)
    except SkipRun as e:
        print(f"SKIP: {e}")
        return SKIP
    report(results, args, have_node)
    for row in results:
        row.pop("exporter_series_names", None)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"date": time.strftime("%Y-%m-%d"), "kernel": platform.release(),
                       "rounds": args.rounds, "results": results}, f, indent=2)
    ok = check(results)
    print("bench: " + ("ok" if ok else "FAILED"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
