"""Drives listen queues step by step for test_listeners.py, inside the network
namespace it runs in. Reads one JSON command per line on stdin, answers one
JSON object per line on stdout, and holds every socket until stdin closes or
it is killed.

Commands:
  {"op": "listen", "addr": "127.0.0.1", "port": 8080, "backlog": 8,
   "reuseport": false, "v6only": true}                  -> {"id": N}
      a listener that never accepts on its own
  {"op": "connect", "to": ["127.0.0.1", 8080], "count": 3, "wait": 0.5}
      -> {"connected": k, "pending": m}
      non-blocking connects, made one after the other; each gets up to
      `wait` seconds to complete. A connect whose SYN the listener dropped
      stays pending (SYN_SENT, retransmitting) until close_pending.
  {"op": "close_pending"}                               -> {"closed": m}
      closes the pending connects, which stops their SYN retransmissions
  {"op": "accept", "id": N}                             -> {"accepted": k}
      accepts everything queued on listener N (and keeps the sockets)
  {"op": "syn", "src": "10.99.0.1", "dst": ["127.0.0.1", 8081], "count": 5,
   "sport": 40000}                                      -> {"sent": 5}
      raw IPv4 SYNs from src, source ports sport, sport+1, ...: with src
      routed into nowhere (`ip route add 10.99.0.0/24 dev lo`, not a local
      address) the SYN-ACKs go unanswered and the connections stay half-open
  {"op": "ack", "src": "10.99.0.9", "dst": ["127.0.0.1", 8083], "sport": 5555}
      a raw bare ACK that completes no handshake (a forged SYN cookie)
  {"op": "netstat"}                                     -> {"TcpExt.ListenOverflows": n, ...}
      this namespace's /proc/net/netstat, read by this process
"""

import json
import select
import socket
import struct
import sys

listeners = []
pending = []
held = []


def family_of(addr):
    return socket.AF_INET6 if ":" in addr else socket.AF_INET


def checksum(data):
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def ipv4_tcp_segment(src, dst, sport, dport, seq, ack, flags):
    """An IPv4 packet carrying a 20-byte TCP header (no options), checksummed.
    The kernel fills the IP header checksum and id (IP_HDRINCL)."""
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 5 << 4, flags, 65535, 0, 0)
    pseudo = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!BBH", 0, 6, len(tcp))
    tcp = tcp[:16] + struct.pack("!H", checksum(pseudo + tcp)) + tcp[18:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 0, 0, 64, socket.IPPROTO_TCP, 0,
                     socket.inet_aton(src), socket.inet_aton(dst))
    return ip + tcp


def send_raw(packets, dst):
    raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    try:
        for p in packets:
            raw.sendto(p, (dst, 0))
    finally:
        raw.close()


def read_netstat():
    lines = [l for l in open("/proc/net/netstat").read().splitlines() if l.strip()]
    out = {}
    for header, values in zip(lines[0::2], lines[1::2]):
        prefix = header.split(":")[0]
        for name, value in zip(header.split()[1:], values.split()[1:]):
            out[f"{prefix}.{name}"] = int(value)
    return out


def connected(sock, timeout):
    _, writable, _ = select.select([], [sock], [], timeout)
    return bool(writable) and sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0


def handle(cmd):
    op = cmd["op"]
    if op == "listen":
        s = socket.socket(family_of(cmd["addr"]), socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if cmd.get("reuseport"):
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family_of(cmd["addr"]) == socket.AF_INET6:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1 if cmd.get("v6only", True) else 0)
        s.bind((cmd["addr"], cmd["port"]))
        s.listen(cmd["backlog"])
        s.setblocking(False)
        listeners.append(s)
        return {"id": len(listeners) - 1}
    if op == "connect":
        host, port = cmd["to"]
        done = waiting = 0
        for _ in range(cmd.get("count", 1)):
            c = socket.socket(family_of(host), socket.SOCK_STREAM)
            c.setblocking(False)
            c.connect_ex((host, port))
            if connected(c, cmd.get("wait", 0.5)):
                held.append(c)
                done += 1
            else:
                pending.append(c)
                waiting += 1
        return {"connected": done, "pending": waiting}
    if op == "close_pending":
        n = len(pending)
        for c in pending:
            c.close()
        pending.clear()
        return {"closed": n}
    if op == "accept":
        s = listeners[cmd["id"]]
        n = 0
        while True:
            try:
                conn, _ = s.accept()
            except BlockingIOError:
                break
            held.append(conn)
            n += 1
        return {"accepted": n}
    if op == "syn":
        host, port = cmd["dst"]
        sport = cmd.get("sport", 40000)
        packets = [ipv4_tcp_segment(cmd["src"], host, sport + i, port, 1000 + i, 0, 0x02)
                   for i in range(cmd.get("count", 1))]
        send_raw(packets, host)
        return {"sent": len(packets)}
    if op == "ack":
        host, port = cmd["dst"]
        send_raw([ipv4_tcp_segment(cmd["src"], host, cmd.get("sport", 5555), port, 777, 12345,
                                   0x10)], host)
        return {"sent": 1}
    if op == "netstat":
        return read_netstat()
    raise ValueError(f"unknown op {op!r}")


print(json.dumps({"ready": True}), flush=True)
for line in sys.stdin:
    if not line.strip():
        continue
    try:
        answer = handle(json.loads(line))
    except Exception as e:  # report, keep serving: the test decides
        answer = {"error": f"{type(e).__name__}: {e}"}
    print(json.dumps(answer), flush=True)
