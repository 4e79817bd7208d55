#!/usr/bin/env bash
# Regenerates tests/fixtures: builds a known socket population in a fresh
# network namespace, records it with record_fixtures, and tears everything
# down. Needs root (ip netns) and python3.
#
#   tests/tools/make_fixtures.sh RECORD_FIXTURES_BINARY [OUTDIR]
#
# OUTDIR defaults to tests/fixtures next to this script. The population is
# described in tests/fixtures/README.md; the unit tests assert its exact
# counts, so change both together.
set -euo pipefail

recorder=${1:?usage: $0 RECORD_FIXTURES_BINARY [OUTDIR]}
outdir=${2:-$(cd "$(dirname "$0")/../fixtures" && pwd)}
recorder=$(readlink -f "$recorder")
mkdir -p "$outdir"

ns=sockfix$$
workdir=$(mktemp -d)
population_pid=

cleanup() {
  if [[ -n $population_pid ]]; then kill "$population_pid" 2>/dev/null || true; fi
  wait 2>/dev/null || true
  ip netns del "$ns" 2>/dev/null || true
  rm -rf "$workdir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM  # so that the EXIT trap runs on Ctrl-C too

ip netns add "$ns"
ip netns exec "$ns" ip link set lo up

cat >"$workdir/population.py" <<'PY'
import socket, sys, time

ready_file = sys.argv[1]
keep = []  # every socket stays open until the process is killed
V4, V6 = socket.AF_INET, socket.AF_INET6


def tcp(family, bind=None, v6only=None):
    s = socket.socket(family, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if v6only is not None:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1 if v6only else 0)
    if bind:
        s.bind(bind)
    keep.append(s)
    return s


def listener(family, addr, port, backlog, v6only=None):
    s = tcp(family, (addr, port), v6only)
    s.listen(backlog)
    return s


def connect(family, src, dst):
    c = tcp(family, src)
    c.connect(dst)
    return c


def accept(lst):
    conn, _ = lst.accept()
    keep.append(conn)
    return conn


# Listeners: two IPv4, one IPv6-only, one dual-stack [::].
l8080 = listener(V4, "127.0.0.1", 8080, 16)
l9090 = listener(V4, "0.0.0.0", 9090, 5)
l8081 = listener(V6, "::1", 8081, 8, v6only=True)
l9091 = listener(V6, "::", 9091, 7, v6only=False)

# Established, accepted: 3 x IPv4 -> 8080, 2 x IPv6 -> [::1]:8081.
for port in (40001, 40002, 40003):
    connect(V4, ("127.0.0.1", port), ("127.0.0.1", 8080))
    accept(l8080)
for port in (40011, 40012):
    connect(V6, ("::1", port), ("::1", 8081))
    accept(l8081)
# IPv4 clients of the dual-stack listener: the accepted side is AF_INET6
# with ::ffff:127.0.0.1.
for port in (40021, 40022):
    connect(V4, ("127.0.0.1", port), ("127.0.0.1", 9091))
    accept(l9091)
# Left in 9090's accept queue (rqueue 1): both ends ESTABLISHED.
connect(V4, ("127.0.0.1", 40031), ("127.0.0.1", 9090))

# TIME_WAIT: the client closes first, then the server.
def time_wait(family, src, dst, lst):
    c = connect(family, src, dst)
    a = accept(lst)
    c.close()
    time.sleep(0.05)
    a.close()


for port in (40041, 40042, 40043):
    time_wait(V4, ("127.0.0.1", port), ("127.0.0.1", 8080), l8080)
time_wait(V6, ("::1", 40051), ("::1", 8081), l8081)

# Half closed: the client shuts down its side (FIN_WAIT2), the server does
# not (CLOSE_WAIT).
for family, src, dst, lst in ((V4, ("127.0.0.1", 40061), ("127.0.0.1", 8080), l8080),
                              (V6, ("::1", 40071), ("::1", 8081), l8081)):
    c = connect(family, src, dst)
    accept(lst)
    c.shutdown(socket.SHUT_WR)

# SYN_SENT: a listener with backlog 0 takes one connection into its accept
# queue and is then full; it drops further SYNs without answering, so the
# next client keeps retrying in SYN_SENT for the whole recording.
for family, addr, port in ((V4, "127.0.0.1", 9092), (V6, "::1", 8082)):
    listener(family, addr, port, 0, v6only=True if family == V6 else None)
    connect(family, (addr, port + 30000), (addr, port))
    c = tcp(family, (addr, port + 30001))
    c.setblocking(False)
    try:
        c.connect((addr, port))
    except BlockingIOError:
        pass

# Bound but never listening or connecting: bound_inactive (kernel 6.8+).
tcp(V4, ("127.0.0.1", 7000))
tcp(V6, ("::", 7001), v6only=False)


def udp(family, bind, peer=None):
    s = socket.socket(family, socket.SOCK_DGRAM)
    s.bind(bind)
    if peer:
        s.connect(peer)
    keep.append(s)
    return s


# UDP unconnected: two IPv4, two IPv6 (one dual-stack).
udp(V4, ("127.0.0.1", 5000))
udp(V4, ("0.0.0.0", 5001))
udp(V6, ("::1", 5002))
udp(V6, ("::", 5003))
# UDP connected: two IPv4, one IPv6.
udp(V4, ("127.0.0.1", 45001), ("127.0.0.1", 5000))
udp(V4, ("127.0.0.1", 45002), ("127.0.0.1", 5001))
udp(V6, ("::1", 45011), ("::1", 5002))

time.sleep(0.2)  # let the last FIN/ACK exchanges settle
with open(ready_file, "w") as f:
    f.write("ready\n")
while True:
    time.sleep(60)
PY

ip netns exec "$ns" python3 "$workdir/population.py" "$workdir/ready" &
population_pid=$!
for _ in $(seq 100); do
  [[ -e $workdir/ready ]] && break
  if ! kill -0 "$population_pid" 2>/dev/null; then
    echo "make_fixtures: the population script died" >&2
    exit 1
  fi
  sleep 0.1
done
[[ -e $workdir/ready ]] || { echo "make_fixtures: population not ready after 10 s" >&2; exit 1; }

ip netns exec "$ns" "$recorder" "$outdir"
echo "fixtures written to $outdir"
