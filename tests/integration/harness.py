"""Shared helpers for integration tests: network namespaces that clean up
after themselves, processes inside them, the exporter's --once output, ss.

Every namespace and process a test starts is removed when the test ends,
also on failure or SIGTERM (see Namespace.close and install_cleanup)."""

import argparse
import atexit
import ctypes
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

SKIP = 77  # ctest SKIP_RETURN_CODE

_cleanups = []


def _run_cleanups():
    while _cleanups:
        fn = _cleanups.pop()
        try:
            fn()
        except Exception as e:  # cleanup must go on
            print(f"cleanup error: {e}", file=sys.stderr)


def install_cleanup():
    atexit.register(_run_cleanups)

    def on_signal(signum, _frame):
        _run_cleanups()
        sys.exit(128 + signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)


def parse_args():
    p = argparse.ArgumentParser()
    p.add_argument("--exporter", required=True)
    p.add_argument("--source-dir", required=True)
    return p.parse_args()


def skip(reason):
    print(f"SKIP: {reason}")
    sys.exit(SKIP)


def require_netns():
    """Skips the test (exit 77) with a reason where namespaces can't be made."""
    if os.geteuid() != 0:
        skip("needs root to create network namespaces (CI runs as root)")
    name = f"se-probe-{os.getpid()}"
    r = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True)
    if r.returncode != 0:
        skip(f"cannot create a network namespace: {r.stderr.strip()}")
    subprocess.run(["ip", "netns", "del", name], check=False)


_libc = ctypes.CDLL(None, use_errno=True)
_CLONE_NEWNET = 0x40000000


def in_netns(ns, fn, *fn_args):
    """Runs fn on a thread moved into ns (setns moves only the calling
    thread), so its sockets live in the namespace; returns fn's result."""
    out = {}

    def run():
        try:
            fd = os.open(f"/var/run/netns/{ns.name}", os.O_RDONLY | os.O_CLOEXEC)
            try:
                if _libc.setns(fd, _CLONE_NEWNET) != 0:
                    err = ctypes.get_errno()
                    raise OSError(err, os.strerror(err))
            finally:
                os.close(fd)
            out["value"] = fn(*fn_args)
        except BaseException as e:  # handed to the caller
            out["error"] = e

    t = threading.Thread(target=run)
    t.start()
    t.join()
    if "error" in out:
        raise out["error"]
    return out["value"]


class Namespace:
    """A fresh network namespace with loopback up. Removed by close()."""

    counter = 0

    def __init__(self, tag="t"):
        Namespace.counter += 1
        self.name = f"se-{tag}-{os.getpid()}-{Namespace.counter}"
        subprocess.run(["ip", "netns", "add", self.name], check=True)
        _cleanups.append(self.close)
        self.run(["ip", "link", "set", "lo", "up"], check=True)
        self.procs = []

    def cmd(self, argv):
        return ["ip", "netns", "exec", self.name] + list(argv)

    def run(self, argv, **kw):
        kw.setdefault("capture_output", True)
        kw.setdefault("text", True)
        return subprocess.run(self.cmd(argv), **kw)

    def sysctl(self, key, value):
        self.run(["sysctl", "-qw", f"{key}={value}"], check=True)

    def spawn(self, argv, **kw):
        p = subprocess.Popen(self.cmd(argv), **kw)
        self.procs.append(p)
        return p

    def close(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        self.procs = []
        # Anything else still running inside (e.g. a crashed test's children).
        r = subprocess.run(["ip", "netns", "pids", self.name], capture_output=True, text=True)
        for pid in r.stdout.split():
            try:
                os.kill(int(pid), signal.SIGKILL)
            except (ProcessLookupError, ValueError):
                pass
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True)
        if self.close in _cleanups:
            _cleanups.remove(self.close)


def start_population(ns, source_dir, spec):
    """Starts tests/integration/population.py in ns with a JSON spec; returns
    once it printed READY. It holds the sockets until killed."""
    script = os.path.join(source_dir, "tests", "integration", "population.py")
    p = ns.spawn([sys.executable, script, json.dumps(spec)], stdout=subprocess.PIPE,
                 stderr=sys.stderr, text=True)
    line = p.stdout.readline()
    if not line.startswith("READY"):
        raise RuntimeError(f"population did not start: {line!r}")
    return p, json.loads(line[len("READY"):] or "{}")


# ---- exposition text ------------------------------------------------------

_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)$')
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_exposition(text):
    """Returns a list of (name, labels dict, float value)."""
    samples = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        if not m:
            raise ValueError(f"bad exposition line: {line!r}")
        labels = dict(_LABEL.findall(m.group(3) or ""))
        samples.append((m.group(1), labels, float(m.group(4))))
    return samples


def once(ns, exporter, *args):
    r = ns.run([exporter, "--once", *args])
    if r.returncode != 0:
        raise RuntimeError(f"--once failed ({r.returncode}): {r.stderr}")
    return parse_exposition(r.stdout)


# ---- ss ---------------------------------------------------------------------

SS_STATE = {
    "ESTAB": "established", "SYN-SENT": "syn_sent", "SYN-RECV": "syn_recv",
    "FIN-WAIT-1": "fin_wait1", "FIN-WAIT-2": "fin_wait2", "TIME-WAIT": "time_wait",
    "UNCONN": "close", "CLOSE-WAIT": "close_wait", "LAST-ACK": "last_ack",
    "LISTEN": "listen", "CLOSING": "closing",
}


def _split_endpoint(text):
    host, _, port = text.rpartition(":")
    host = host.strip("[]")
    if "%" in host:
        host = host.split("%")[0]
    return host, (0 if port == "*" else int(port))


def ss_sockets(ns):
    """Every TCP/UDP socket ss sees in ns, as dicts."""
    out = []
    for family, flag in (("ipv4", "-4"), ("ipv6", "-6")):
        r = ns.run(["ss", "-tuanH", flag], check=True)
        for line in r.stdout.splitlines():
            f = line.split()
            if len(f) < 6:
                continue
            proto, state = f[0], f[1]
            laddr, lport = _split_endpoint(f[4])
            raddr, rport = _split_endpoint(f[5])
            st = SS_STATE[state]
            if proto == "udp":
                st = "established" if state == "ESTAB" else "unconnected"
            out.append(dict(protocol=proto, family=family, state=st, laddr=laddr, lport=lport,
                            raddr=raddr, rport=rport, rq=int(f[2]), wq=int(f[3])))
    return out


def _norm(addr):
    if addr.startswith("::ffff:") and "." in addr:
        return addr[len("::ffff:"):]
    return addr


def classify_reference(sockets, services, ranges):
    """An independent implementation of the README's classification rules,
    used as the oracle. services: {(proto, port): name}; ranges: [(name, lo, hi)]."""
    wildcard = {"0.0.0.0", "::", "*", ""}
    listeners = set()
    for s in sockets:
        is_listener = (s["protocol"] == "tcp" and s["state"] == "listen") or (
            s["protocol"] == "udp" and s["state"] == "unconnected" and s["lport"] != 0)
        if is_listener:
            a = _norm(s["laddr"])
            listeners.add((s["protocol"], "*" if a in wildcard else a, s["lport"]))
    result = []
    for s in sockets:
        no_peer = s["rport"] == 0 and s["raddr"] in wildcard
        a = _norm(s["laddr"])
        if s["state"] in ("listen",) or no_peer or (s["protocol"], "*", s["lport"]) in listeners \
                or (s["protocol"], a, s["lport"]) in listeners:
            direction, port = "inbound", s["lport"]
        else:
            direction, port = "outbound", s["rport"]
        service = services.get((s["protocol"], port), "other")
        rng = next(n for n, lo, hi in ranges if lo <= port <= hi)
        result.append(dict(s, direction=direction, service_name=service, port_range=rng))
    return result


DEFAULT_SERVICES = {}
for _name, _ports in [("ftp", [20, 21]), ("ssh", [22]), ("telnet", [23]), ("smtp", [25]),
                      ("dns", [53]), ("dhcp", [67, 68]), ("tftp", [69]), ("http", [80]),
                      ("pop3", [110]), ("imap", [143]), ("snmp", [161]), ("https", [443])]:
    for _p in _ports:
        DEFAULT_SERVICES[("tcp", _p)] = _name
        DEFAULT_SERVICES[("udp", _p)] = _name
DEFAULT_RANGES = [("well_known", 0, 1023), ("registered", 1024, 49151), ("dynamic", 49152, 65535)]


def count_by(items, keys):
    out = {}
    for it in items:
        k = tuple(it[key] for key in keys)
        out[k] = out.get(k, 0) + 1
    return out


def metric_by(samples, name, keys, where=None):
    out = {}
    for n, labels, v in samples:
        if n != name:
            continue
        if where and any(labels.get(k) != val for k, val in where.items()):
            continue
        k = tuple(labels[key] for key in keys)
        out[k] = out.get(k, 0) + v
    return {k: int(v) if float(v).is_integer() else v for k, v in out.items() if v != 0}


def wait_for(predicate, timeout=10.0, interval=0.05, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}")


class Results:
    """Collects check results and prints the closing 'N passed, N failed' line."""

    def __init__(self):
        self.passed = 0
        self.failed = 0

    def check(self, ok, what, detail=""):
        if ok:
            self.passed += 1
            print(f"ok   {what}")
        else:
            self.failed += 1
            print(f"FAIL {what} {detail}")

    def equal(self, got, want, what):
        self.check(got == want, what, f"\n  got:  {got}\n  want: {want}")

    def finish(self):
        print(f"{self.passed} passed, {self.failed} failed")
        sys.exit(1 if self.failed else 0)
