#!/usr/bin/env python3
"""Writes the checked-in seed corpora of the fuzz targets (tests/fuzz/corpus/)
from the recorded fixtures (tests/fixtures/) and the config files (config/).
Rerun it when the fixtures change:  python3 tests/fuzz/make_corpus.py

Input formats (see each target's header comment):
  netlink_parser: 1 byte (bit 0: 0 TCP, 1 UDP) + one reply datagram
  procnet_parser: 1 byte (bit 0: 0 TCP, 1 UDP; bit 1: 0 IPv4, 1 IPv6) + file text
  config_parser:  the YAML text
  events_decode:  1 byte (CPUs - 1) + 4 u16 lengths + the maps' bytes
Besides the recordings, a few hand-made seeds reach the paths a healthy
kernel rarely takes: NLMSG_ERROR, NLMSG_DONE with an errno, a NOOP, the
DUMP_INTR flag, a message without its trailing padding."""

import os
import shutil
import struct

root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
fixtures = os.path.join(root, "tests", "fixtures")
corpus = os.path.join(root, "tests", "fuzz", "corpus")


def reset(name):
    path = os.path.join(corpus, name)
    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(path)
    return path


def write(directory, name, data):
    with open(os.path.join(directory, name), "wb") as f:
        f.write(data)


def frames(path):
    """The datagrams of a .bin fixture: [u32 little-endian length][bytes]..."""
    data = open(path, "rb").read()
    at = 0
    while at < len(data):
        (length,) = struct.unpack_from("<I", data, at)
        yield data[at + 4:at + 4 + length]
        at += 4 + length


def nlmsg(msg_type, payload, flags=0x2):  # NLM_F_MULTI
    return struct.pack("=IHHII", 16 + len(payload), msg_type, flags, 1, 0) + payload


def diag_msg(family, state, sport, dport, src, dst):
    body = struct.pack("=BBBB", family, state, 0, 0)
    body += struct.pack(">HH", sport, dport)
    body += src.ljust(16, b"\0") + dst.ljust(16, b"\0")
    body += struct.pack("=I", 1) + struct.pack("=II", 0xFFFFFFFF, 0xFFFFFFFF)  # if, cookie
    body += struct.pack("=IIIII", 0, 3, 128, 1000, 4242)  # expires, rq, wq, uid, inode
    return body


netlink = reset("netlink_parser")
for name, proto in (("netlink_tcp", 0), ("netlink_tcp_v2", 0), ("netlink_udp", 1)):
    for i, datagram in enumerate(frames(os.path.join(fixtures, name + ".bin"))):
        write(netlink, f"{name}_{i:02d}", bytes([proto]) + datagram)
v4 = diag_msg(2, 1, 40000, 8080, bytes([127, 0, 0, 1]), bytes([127, 0, 0, 1]))
v6 = diag_msg(10, 10, 8081, 0, bytes(15) + b"\1", bytes(16))
write(netlink, "hand_error_eperm", b"\0" + nlmsg(2, struct.pack("=i", -1) + nlmsg(20, b"")[:16]))
write(netlink, "hand_done_enoent", b"\0" + nlmsg(20, v4) + nlmsg(3, struct.pack("=i", -2)))
# INT_MIN: the magnitude of the errno overflowed int until it was fixed.
write(netlink, "hand_done_int_min", b"\0" + nlmsg(3, struct.pack("=i", -2**31)))
write(netlink, "hand_noop_intr_close", b"\0" + nlmsg(1, b"") +
      nlmsg(18, diag_msg(2, 7, 7000, 0, bytes([127, 0, 0, 1]), bytes(4)), flags=0x12) +
      nlmsg(18, v6))
# INET_DIAG_CGROUP_ID (21) after INET_DIAG_SHUTDOWN; then one whose length
# runs past the message, and a zero-length attribute before it.
cg = struct.pack("=HHB3x", 5, 8, 0) + struct.pack("=HHQ", 12, 21, 0x1234)
write(netlink, "hand_cgroup_attrs", b"\0" + nlmsg(20, v4 + cg) +
      nlmsg(20, v4 + struct.pack("=HHI", 40, 21, 7)) + nlmsg(20, v6 + struct.pack("=HH", 0, 0) + cg))
write(netlink, "hand_udp_unpadded", b"\1" + nlmsg(20, v4) + nlmsg(20, v6 + b"\1\2\3")[:-1])

procnet = reset("procnet_parser")
for name, selector in (("tcp", 0), ("udp", 1), ("tcp6", 2), ("udp6", 3)):
    text = open(os.path.join(fixtures, f"proc_net_{name}.txt"), "rb").read()
    write(procnet, f"proc_net_{name}", bytes([selector]) + text)

config = reset("config_parser")
for name in sorted(os.listdir(os.path.join(root, "config"))):
    if name.endswith(".yaml"):
        write(config, name, open(os.path.join(root, "config", name), "rb").read())
write(config, "hand_flow_styles.yaml",
      b"port_ranges: [{name: low, ports: '0-32767'}, {name: high, ports: 32768-65535}]\n"
      b"services: [{name: web, ports: [80, 443, '8000-8099'], protocols: [tcp]},\n"
      b"           {name: dns, ports: 53}]\n"
      b"collectors: {connections: true, ephemeral: false}\n"
      b"ephemeral: {top_destinations: 0, utilization_thresholds: [0.25, 1]}\n"
      b"limits: {max_series: 10}\n")
write(config, "hand_errors.yaml",
      b"port_ranges:\n  - name: Low\n    ports: 0-70000\n  - name: low\n    port: 5\n"
      b"services:\n  - name: other\n    ports: [22, 22]\n    protocols: [sctp]\n"
      b"colectors: {conections: yes}\n---\nsecond: document\n")
write(config, "hand_anchors.yaml",
      b"services:\n  - &svc {name: a, ports: [1]}\n  - *svc\n  - {name: !!str b, ports: [&p 2, *p]}\n")
events = reset("events_decode")
maps = [open(os.path.join(fixtures, "events", f"{m}.bin"), "rb").read()
        for m in ("connects", "destinations", "binds", "tcp_events")]
# Recorded with 2 CPUs (byte 0 = 1).
write(events, "recorded", bytes([1]) + struct.pack("<4H", *map(len, maps)) + b"".join(maps))
write(events, "recorded_connects_only", bytes([1]) + struct.pack("<4H", len(maps[0]), 0, 0, 0)
      + maps[0])
# A cut entry and a one-CPU reading of the same bytes (sizes then do not fit).
write(events, "hand_cut", bytes([1]) + struct.pack("<4H", len(maps[0]) - 3, 0, 0, 0)
      + maps[0][:-3])
write(events, "hand_one_cpu", bytes([0]) + struct.pack("<4H", *map(len, maps)) + b"".join(maps))
print("corpus written to", corpus)
