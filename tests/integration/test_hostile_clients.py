"""Hostile clients against the real exporter, over plain HTTP and TLS, and the
same load against prometheus-node-exporter side by side (issue #15).

The load: 300 connections that send nothing and 100 that send a request head
one byte every 0.5 s (reconnecting when cut off). While it holds, 8 scrapes
of /metrics, each on a new connection, must all answer 200 within 2 s, and
the exporter's threads and RSS must stay bounded (printed). Then, one at a
time against the exporter with short bounds: a 1 MiB request head gets 431,
a client that stops mid-handshake and one that never reads its answers are
cut off at their bounds, and scrapes keep answering meanwhile. Finally
":PORT" serves 127.0.0.1 and [::1], plain and TLS.

node_exporter runs with one cheap collector (loadavg); the test skips its
half with a message when the binary is absent (scripts/install-deps.sh
installs it)."""

import os
import re
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time

from harness import *
from harness import _cleanups
from exporter_process import ExporterProcess

args = parse_args()
install_cleanup()
res = Results()

SANITIZED = os.environ.get("SOCKET_EXPORTER_SANITIZED") == "1"
SLOW = 4 if SANITIZED else 1
SCRAPE_LIMIT = 2.0  # seconds, the bound; not multiplied: the point of the test
SILENT, DRIP, SCRAPES = 300, 100, 8

if not shutil.which("openssl"):
    skip("openssl not installed (scripts/install-deps.sh installs it)")
work = tempfile.mkdtemp(prefix="se-hostile-")
_cleanups.append(lambda: shutil.rmtree(work, ignore_errors=True))
r = subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", "server.key", "-out",
                    "server.crt", "-days", "2", "-subj", "/CN=localhost", "-addext",
                    "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1"],
                   capture_output=True, text=True, cwd=work)
if r.returncode != 0:
    raise RuntimeError(r.stderr)
web_config = os.path.join(work, "web.yml")
with open(web_config, "w") as f:
    f.write("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n")
client_tls = ssl.create_default_context(cafile=os.path.join(work, "server.crt"))


def proc_status(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            out[k] = v.strip()
    return int(out["Threads"]), int(out["VmRSS"].split()[0])


def connect(port, family=socket.AF_INET, timeout=5):
    host = "127.0.0.1" if family == socket.AF_INET else "::1"
    s = socket.socket(family, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect((host, port))
    return s


def scrape(port, tls, path="/metrics", family=socket.AF_INET, timeout=SCRAPE_LIMIT + 3):
    """One GET on a new connection: (status, seconds, body). Status 0 on error."""
    start = time.monotonic()
    try:
        s = connect(port, family, timeout)
        if tls:
            s = client_tls.wrap_socket(s, server_hostname="localhost")
        host = "127.0.0.1" if family == socket.AF_INET else "[::1]"
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n"
                  .encode())
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        s.close()
        head, _, body = data.partition(b"\r\n\r\n")
        m = re.match(rb"HTTP/1\.[01] (\d+)", head)
        cl = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
        if not m or (cl and int(cl.group(1)) != len(body)):
            return 0, time.monotonic() - start, body
        return int(m.group(1)), time.monotonic() - start, body
    except (OSError, ssl.SSLError):
        return 0, time.monotonic() - start, b""


class Load:
    """SILENT silent connections and DRIP drippers (one byte every 0.5 s,
    reconnecting when closed), over TLS when tls (the drippers finish the
    handshake first; the silent ones never start it)."""

    def __init__(self, port, tls):
        self.port, self.tls = port, tls
        self.stop = threading.Event()
        self.silent = []
        for _ in range(SILENT):
            try:
                self.silent.append(connect(self.port))
            except OSError:
                pass
        self.drip = [self._dripper() for _ in range(DRIP)]
        self.reconnects = 0
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        _cleanups.append(self.close)

    def _dripper(self):
        try:
            s = connect(self.port)
            if self.tls:
                s = client_tls.wrap_socket(s, server_hostname="localhost")
            s.setblocking(False) if not self.tls else s.settimeout(0.2)
            return [s, 0]
        except (OSError, ssl.SSLError):
            return [None, 0]

    def _run(self):
        head = b"GET /metrics HTTP/1.1\r\nHost: x\r\nUser-Agent: " + b"d" * 200 + b"\r\n\r\n"
        while not self.stop.wait(0.5):
            for i, entry in enumerate(self.drip):
                s, sent = entry
                try:
                    if s is None:
                        raise OSError("not connected")
                    s.send(head[sent % len(head):sent % len(head) + 1])
                    entry[1] += 1
                except (OSError, ssl.SSLError):
                    if s is not None:
                        s.close()
                    self.reconnects += 1
                    if not self.stop.is_set():
                        self.drip[i] = self._dripper()

    def close(self):
        if self.close in _cleanups:
            _cleanups.remove(self.close)
        self.stop.set()
        self.thread.join(5)
        for s in self.silent:
            s.close()
        for s, _ in self.drip:
            if s is not None:
                s.close()


def under_load(name, port, tls, pid):
    """Runs the load and the scrapes; returns a result dict."""
    threads0, rss0 = proc_status(pid)
    load = Load(port, tls)
    time.sleep(1.0)  # every connection open, the drippers a few bytes in
    held = len(load.silent) + sum(1 for s, _ in load.drip if s is not None)
    times, statuses = [], []
    threads_max, rss_max = threads0, rss0
    for _ in range(SCRAPES):
        status, seconds, _ = scrape(port, tls)
        statuses.append(status)
        times.append(seconds)
        t, m = proc_status(pid)
        threads_max, rss_max = max(threads_max, t), max(rss_max, m)
        time.sleep(0.5)
    open_now = None
    if name.startswith("socket_exporter"):
        _, _, body = scrape(port, tls)
        m = re.search(rb"\nsocket_exporter_http_connections_open (\S+)", body)
        open_now = float(m.group(1)) if m else None
    load.close()
    ok = sum(1 for s, t in zip(statuses, times) if s == 200 and t <= SCRAPE_LIMIT)
    return dict(name=name, ok=ok, worst=max(times), held=held, open=open_now,
                threads=(threads0, threads_max), rss=(rss0, rss_max),
                reconnects=load.reconnects, statuses=statuses)


def report(r):
    line = (f"{r['name']:<28} {r['ok']}/{SCRAPES} scrapes 200 within {SCRAPE_LIMIT:.0f} s, "
            f"worst {r['worst'] * 1000:.0f} ms; load held {r['held']} connections; "
            f"threads {r['threads'][0]} -> {r['threads'][1]}; "
            f"RSS {r['rss'][0] / 1024:.1f} -> {r['rss'][1] / 1024:.1f} MiB")
    print("HOSTILE-LOAD | " + line)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# ---- the load: socket_exporter, plain and TLS --------------------------------------

results = []
for tls in (False, True):
    extra = [f"--web.config.file={web_config}"] if tls else []
    exp = ExporterProcess(args.exporter, *extra)
    r = under_load("socket_exporter " + ("TLS" if tls else "plain"), exp.port, tls, exp.proc.pid)
    results.append(r)
    report(r)
    what = "TLS" if tls else "plain HTTP"
    res.check(r["held"] >= SILENT + DRIP - 5,
              f"{what}: the load holds its {SILENT + DRIP} connections", str(r["held"]))
    res.check(r["open"] is not None and r["open"] >= SILENT + DRIP - 5,
              f"{what}: socket_exporter_http_connections_open counts them", str(r["open"]))
    res.check(r["ok"] == SCRAPES,
              f"{what}: every scrape under load answers 200 within {SCRAPE_LIMIT} s",
              f"statuses {r['statuses']}, worst {r['worst']:.2f}s")
    res.check(r["threads"][1] <= r["threads"][0] + 1,
              f"{what}: no thread per connection ({r['threads'][0]} -> {r['threads'][1]})")
    res.check(r["rss"][1] - r["rss"][0] <= 32 * 1024 * SLOW,
              f"{what}: RSS grows by at most 32 MiB under the load "
              f"({(r['rss'][1] - r['rss'][0]) / 1024:.1f} MiB)")
    res.check(exp.proc.poll() is None, f"{what}: the exporter is still running")
    exp.stop()

# ---- the same load: node_exporter ----------------------------------------------------

node = shutil.which("prometheus-node-exporter") or shutil.which("node_exporter")
if node is None:
    print("SKIP (node_exporter half): prometheus-node-exporter is not installed; "
          "scripts/install-deps.sh installs it")
else:
    for tls in (False, True):
        port = free_port()
        argv = [node, f"--web.listen-address=127.0.0.1:{port}", "--collector.disable-defaults",
                "--collector.loadavg"]
        if tls:
            argv.append(f"--web.config.file={web_config}")
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        def stop_node(proc=proc):
            if proc.poll() is None:
                proc.kill()
                proc.wait(5)
        _cleanups.append(stop_node)
        wait_for(lambda: scrape(port, tls)[0] == 200, timeout=10, what="node_exporter")
        r = under_load("node_exporter " + ("TLS" if tls else "plain"), port, tls, proc.pid)
        results.append(r)
        report(r)
        stop_node()
        _cleanups.remove(stop_node)
    print("HOSTILE-LOAD | side by side:")
    for r in results:
        report(r)

# ---- one bound at a time, against the exporter with short bounds ----------------------

exp = ExporterProcess(args.exporter, f"--web.config.file={web_config}",
                      f"--web.tls-handshake-timeout={1 * SLOW}s",
                      f"--web.write-timeout={1 * SLOW}s", "--web.header-timeout=2s")


def closed_count(reason):
    _, _, body = scrape(exp.port, True)
    m = re.search(rb'\nsocket_exporter_http_connections_closed_total\{reason="' +
                  reason.encode() + rb'"\} (\S+)', body)
    return float(m.group(1)) if m else None


def time_to_close(s, limit):
    """Reads until EOF or reset; seconds it took, or None after limit."""
    start = time.monotonic()
    s.settimeout(0.2)
    while time.monotonic() - start < limit:
        try:
            if not s.recv(65536):
                return time.monotonic() - start
        except socket.timeout:
            continue
        except (OSError, ssl.SSLError):
            return time.monotonic() - start
    return None


# A 1 MiB request head: 431, then closed; the front end reads 16 KiB of it.
s = client_tls.wrap_socket(connect(exp.port), server_hostname="localhost")
sender = threading.Thread(target=lambda: s.sendall(b"GET / HTTP/1.1\r\nX: " + b"a" * (1 << 20)),
                          daemon=True)
before = closed_count("head_too_large")
try:
    sender.start()
    first = s.recv(200)
except (OSError, ssl.SSLError):
    first = b""
s.close()
res.check(first.startswith(b"HTTP/1.1 431 "), "a 1 MiB request head gets 431", repr(first[:60]))
res.equal(closed_count("head_too_large"), (before or 0) + 1,
          "it is counted as reason head_too_large")

# A client that stops mid-handshake: cut off at the 1 s handshake timeout.
s = connect(exp.port)
s.sendall(bytes([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03]))
waited = time_to_close(s, 10 * SLOW)
s.close()
res.check(waited is not None and 0.8 <= waited <= 3 * SLOW,
          f"a client stopping mid-handshake is cut off at the handshake timeout ({waited})")
status, seconds, _ = scrape(exp.port, True)
res.check(status == 200, "scrapes still answer after it")

# A client that never reads: 400 pipelined scrapes into a 4 KiB receive
# buffer; once the kernel's buffers are full, cut off after the 1 s write
# timeout, while others are served.
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
s.settimeout(5)
s.connect(("127.0.0.1", exp.port))
s = client_tls.wrap_socket(s, server_hostname="localhost")
before = closed_count("write_timeout") or 0
s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n" * 400)
during = [scrape(exp.port, True) for _ in range(3)]
res.check(all(st == 200 and t <= SCRAPE_LIMIT for st, t, _ in during),
          "scrapes answer while a client does not read its answers",
          str([(st, round(t, 2)) for st, t, _ in during]))
try:
    cut = wait_for(lambda: (closed_count("write_timeout") or 0) > before, timeout=30 * SLOW,
                   what="the write timeout")
except AssertionError:
    cut = False
res.check(bool(cut), "the client that never reads is cut off, reason write_timeout")
s.close()
res.check(exp.proc.poll() is None, "the exporter is still running")
exp.stop()

# ---- ":PORT": IPv4 and IPv6, plain and TLS -----------------------------------------------

have_v6 = True
try:
    probe = socket.socket(socket.AF_INET6)
    probe.bind(("::1", 0))
    probe.close()
except OSError:
    have_v6 = False
for tls in (False, True):
    extra = [f"--web.config.file={web_config}"] if tls else []
    exp = ExporterProcess(args.exporter, *extra, listen=":0")
    what = "TLS" if tls else "plain"
    res.equal(scrape(exp.port, tls, "/-/healthy")[0], 200, f":PORT ({what}) answers on 127.0.0.1")
    if have_v6:
        res.equal(scrape(exp.port, tls, "/-/healthy", socket.AF_INET6)[0], 200,
                  f":PORT ({what}) answers on [::1]")
    else:
        print(f"SKIP ([::1] half): this host has no IPv6 loopback")
    exp.stop()

res.finish()
