"""Builds a socket population described by a JSON spec in the current network
namespace, prints READY <json>, and holds every socket until killed.

Spec keys (all optional):
  tcp_listen:   [{"addr": "0.0.0.0", "port": 22, "v6only": true, "backlog": 4096, "accept": true}]
  tcp_connect:  [{"to": ["127.0.0.1", 22], "count": 10, "bind": ["127.0.0.1", 0],
                  "close": "none" | "client" | "both" | "server_first"}]
                close: none keeps ESTABLISHED; client closes the client side only
                (client FIN_WAIT2, server CLOSE_WAIT); both closes client then
                server (client TIME_WAIT); server_first closes server then client
                (server TIME_WAIT). Server sides exist only when the listener is in
                this process with accept true.
  tcp_bind_only: [{"addr": "127.0.0.1", "port": 0}]      bound, neither listen nor connect
  udp_bind:     [{"addr": "0.0.0.0", "port": 53}]
  udp_connect:  [{"to": ["127.0.0.1", 53], "count": 3, "bind": ["0.0.0.0", 0]}]
"""

import json
import signal
import socket
import sys
import time

spec = json.loads(sys.argv[1])
held = []
listeners = {}
info = {"errors": []}


def family_of(addr):
    return socket.AF_INET6 if ":" in addr else socket.AF_INET


def is_local(addr):
    """True if addr is an address of this namespace (binding to it works)."""
    probe = socket.socket(family_of(addr), socket.SOCK_DGRAM)
    try:
        probe.bind((addr, 0))
        return True
    except OSError:
        return False
    finally:
        probe.close()


for item in spec.get("tcp_listen", []):
    s = socket.socket(family_of(item["addr"]), socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if family_of(item["addr"]) == socket.AF_INET6:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1 if item.get("v6only", True) else 0)
    s.bind((item["addr"], item["port"]))
    s.listen(item.get("backlog", 4096))
    held.append(s)
    if item.get("accept", True):
        listeners[(item["addr"], item["port"])] = s

for item in spec.get("tcp_bind_only", []):
    s = socket.socket(family_of(item["addr"]), socket.SOCK_STREAM)
    s.bind((item["addr"], item["port"]))
    held.append(s)

for group in spec.get("tcp_connect", []):
    host, port = group["to"]
    mode = group.get("close", "none")
    clients = []
    for _ in range(group.get("count", 1)):
        c = socket.socket(family_of(host), socket.SOCK_STREAM)
        if "bind" in group:
            c.bind(tuple(group["bind"]))
        try:
            c.connect((host, port))
        except OSError as e:
            info["errors"].append(f"connect {host}:{port}: {e.strerror}")
            c.close()
            break
        clients.append(c)
    # Find the listener that accepts these (same port, any matching address).
    listener = None
    for (laddr, lport), ls in listeners.items():
        if lport != port:
            continue
        if laddr == host:
            listener = ls
        elif laddr in ("0.0.0.0", "::") and is_local(host) and (
                family_of(laddr) == family_of(host) or laddr == "::"):
            listener = ls
    servers = []
    if listener is not None:
        listener.settimeout(5)
        for _ in clients:
            conn, _addr = listener.accept()
            servers.append(conn)
    if mode == "none":
        held += clients + servers
    elif mode == "client":
        for c in clients:
            c.close()
        held += servers
    elif mode == "both":
        for c in clients:
            c.close()
        time.sleep(0.05)
        for s in servers:
            s.close()
    elif mode == "server_first":
        for s in servers:
            s.close()
        time.sleep(0.05)
        for c in clients:
            c.close()

for item in spec.get("udp_bind", []):
    s = socket.socket(family_of(item["addr"]), socket.SOCK_DGRAM)
    if family_of(item["addr"]) == socket.AF_INET6:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    s.bind((item["addr"], item["port"]))
    held.append(s)

for group in spec.get("udp_connect", []):
    host, port = group["to"]
    for _ in range(group.get("count", 1)):
        c = socket.socket(family_of(host), socket.SOCK_DGRAM)
        if "bind" in group:
            c.bind(tuple(group["bind"]))
        c.connect((host, port))
        held.append(c)

# Let FIN/ACK exchanges on loopback settle into their final states.
time.sleep(0.3)
print("READY" + json.dumps(info), flush=True)
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
try:
    while True:
        time.sleep(3600)
except KeyboardInterrupt:
    pass
