"""Ten scrapers hitting /metrics at once cause one collection (one read of
the socket tables), not ten: a scrape that arrives while a collection runs
shares its result (exporter/scraper.h). And a scrape that arrives after a
collection finished gets a new one, so no answer is staler than that.

Checked with socket_exporter_collections_total, and independently of it: the
bodies that claim the same collection must carry the very same
socket_exporter_collector_duration_seconds values (timings of two separate
collections never agree to the nanosecond). The namespace holds ~9,000
sockets so that a collection lasts long enough (several ms) for ten
simultaneous requests to arrive inside it."""

import ctypes
import os
import threading
import urllib.request

from harness import *
from harness import _cleanups
from exporter_process import ExporterProcess

args = parse_args()
install_cleanup()
require_netns()
res = Results()

SCRAPERS = 10
BATCHES = 3
CLONE_NEWNET = 0x40000000


def enter_netns(namespace):
    """setns() for the calling thread; threads started later inherit it. The
    way back is registered as a cleanup that runs before the namespace's own
    (which kills every process inside, this one included if still there)."""
    libc = ctypes.CDLL(None, use_errno=True)
    original = os.open("/proc/self/ns/net", os.O_RDONLY)

    def leave():
        libc.setns(original, CLONE_NEWNET)
        os.close(original)

    fd = os.open(f"/var/run/netns/{namespace.name}", os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            os.close(original)
            skip(f"setns into {namespace.name}: {os.strerror(ctypes.get_errno())}")
    finally:
        os.close(fd)
    _cleanups.append(leave)

ns = Namespace("conc")
# population.py connects a group's clients before accepting them: groups stay
# under the accept backlog.
PORTS = (8080, 8081, 8082)
_, info = start_population(ns, args.source_dir, {
    "tcp_listen": [{"addr": "127.0.0.1", "port": p, "backlog": 4096} for p in PORTS],
    "tcp_connect": [{"to": ["127.0.0.1", p], "count": 1500} for p in PORTS],
})
res.equal(info["errors"], [], "population built")
exp = ExporterProcess(args.exporter, ns=ns)
# The exporter listens on the namespace's loopback: move this process (still
# single-threaded apart from the log reader, which makes no connections) there.
enter_netns(ns)


def scrape_all_at_once(n):
    """n threads released together by a barrier; returns [(status, body)]."""
    barrier = threading.Barrier(n)
    out = [None] * n

    def one(i):
        barrier.wait()
        try:
            with urllib.request.urlopen(exp.url("/metrics"), timeout=60) as r:
                out[i] = (r.status, r.read().decode())
        except Exception as e:  # reported as a failed scrape below
            out[i] = (0, str(e))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def collections(samples):
    values = [v for n, _, v in samples if n == "socket_exporter_collections_total"]
    return int(values[0]) if values else None


def durations(samples):
    return tuple(sorted((l.get("collector"), v) for n, l, v in samples
                        if n == "socket_exporter_collector_duration_seconds"))


def tcp_sockets(samples):
    return sum(v for n, l, v in samples if n == "socket_connections" and l.get("protocol") == "tcp")


_, _, body = exp.get("/metrics")
before = collections(parse_exposition(body))
res.check(before is not None and before >= 1, "socket_exporter_collections_total is published",
          f"{before}")

for batch in range(BATCHES):
    answers = scrape_all_at_once(SCRAPERS)
    res.equal([status for status, _ in answers], [200] * SCRAPERS,
              f"batch {batch}: all {SCRAPERS} scrapes answer 200")
    parsed = []
    for status, text in answers:
        try:
            samples = parse_exposition(text) if status == 200 else []
        except ValueError as e:
            samples = []
            res.check(False, f"batch {batch}: body parses", str(e))
        parsed.append(samples)
    res.check(all(tcp_sockets(s) >= 9000 for s in parsed),
              f"batch {batch}: every body counts the ~9,000 TCP sockets",
              str([tcp_sockets(s) for s in parsed]))
    seen = sorted({collections(s) for s in parsed if s})
    res.check(seen and seen[0] == before + 1 and len(seen) <= 2 and seen[-1] <= before + 2,
              f"batch {batch}: {SCRAPERS} simultaneous scrapes ran 1 collection (at most 2)",
              f"collections_total before {before}, in the answers {seen}")
    print(f"     batch {batch}: collections_total before {before}, in the answers {seen}")
    by_collection = {}
    for s in parsed:
        by_collection.setdefault(collections(s), set()).add(durations(s))
    res.check(all(len(d) == 1 for d in by_collection.values()),
              f"batch {batch}: answers of one collection carry identical timings (shared result)",
              str({k: len(v) for k, v in by_collection.items()}))
    # A scrape after the batch is answered by a new collection, never by the
    # batch's result.
    _, _, body = exp.get("/metrics")
    after = collections(parse_exposition(body))
    res.equal(after, seen[-1] + 1 if seen else None,
              f"batch {batch}: the next scrape runs a fresh collection")
    before = after

res.finish()
