"""The README's metrics table and the exporter's output must list the same
metric names with the same label names, so the documentation cannot drift
from the code. Runs --once with every collector the build knows (no root
needed; collectors that cannot run here still publish their families or are
reported), and takes the HTTP front end's families from a served scrape."""

import os
import re
import subprocess

from harness import *
from exporter_process import ExporterProcess

args = parse_args()
install_cleanup()
res = Results()

with open(os.path.join(args.source_dir, "README.md")) as f:
    readme = f.read()
table = readme.split("<!-- metrics-table:start -->")[1].split("<!-- metrics-table:end -->")[0]
documented = {}
for line in table.splitlines():
    m = re.match(r"\|\s*`([a-z_:]+)`\s*\|([^|]*)\|", line)
    if m:
        labels = {l.strip() for l in m.group(2).split(",") if l.strip()}
        documented[m.group(1)] = labels

r = subprocess.run([args.exporter, "--once"], capture_output=True, text=True)
res.check(r.returncode == 0, "--once succeeds", r.stderr[-2000:])
text = r.stdout
# The netns collector is off by default and needs root; its metrics are
# documented too, so include them where it can run.
if os.geteuid() == 0:
    r = subprocess.run([args.exporter, "--once", "--collector.netns"], capture_output=True, text=True)
    res.check(r.returncode == 0, "--once --collector.netns succeeds", r.stderr[-2000:])
    text += r.stdout
else:
    print("note: not root, the netns collector's metrics are not compared")
    documented = {k: v for k, v in documented.items() if not k.startswith("socket_exporter_netns")}
# The HTTP front end's families exist only while serving: take them from a
# served scrape (the rest of it is the --once output again, plus
# prometheus-cpp's own exposer_* families, which are not ours to document).
served = ExporterProcess(args.exporter)
status, _, body = served.get("/metrics")
served.stop()
res.check(status == 200, "a served scrape answers 200", str(status))
http_lines = [l for l in body.splitlines()
              if re.match(r"(# (TYPE|HELP) )?socket_exporter_http_", l)]
res.check(len(http_lines) > 0, "the served scrape has socket_exporter_http_* families")
text += "\n".join(http_lines) + "\n"
# The events collector (off by default) publishes its families only where
# its BPF programs load (root, a BPF build); elsewhere its rows are left out.
EVENTS = ("socket_connects_total", "socket_connect_destination_failures_total",
          "socket_bind_failures_total", "socket_tcp_retransmits_total", "socket_tcp_resets_total",
          "socket_exporter_events_dropped_total")
r = subprocess.run([args.exporter, "--once", "--collector.events"], capture_output=True, text=True)
if r.returncode == 0:
    text += r.stdout
else:
    print("note: the events collector cannot load here, its metrics are not compared: "
          + r.stderr.strip().splitlines()[-1] if r.stderr.strip() else "")
    documented = {k: v for k, v in documented.items() if k not in EVENTS}
published = {}
for line in text.splitlines():
    m = re.match(r"# TYPE (\S+) (\S+)", line)
    if m:
        published.setdefault(m.group(1), set())
for name, labels, _ in parse_exposition(text):
    base = re.sub(r"_(bucket|sum|count)$", "", name) if name not in published else name
    # The netns label is added to every socket metric by the netns collector
    # (documented once, above the table); it is part of the netns_* rows.
    own = base.startswith("socket_exporter_netns")
    published.setdefault(base, set()).update(
        k for k in labels if k != "le" and (own or k != "netns"))

res.equal(sorted(set(published) - set(documented)), [], "every published metric is documented")
res.equal(sorted(set(documented) - set(published)), [],
          "every documented metric is published by --once on this host")
for name in sorted(set(published) & set(documented)):
    if published[name]:  # a family with no samples has no label names to compare
        res.equal(published[name], documented[name], f"labels of {name}")
res.finish()
