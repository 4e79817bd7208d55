"""Helpers shared by the deploy/ tests: which metrics the exporter really
publishes, which collectors the build has, the metric names a PromQL
expression uses, the dashboard's queries with Grafana's variables filled in,
and free loopback ports.

A metric named in a rule or a panel must be published by the exporter. The
one excuse is a collector that is not in this build yet: such a metric is
reported as "not checked", never silently passed."""

import json
import os
import re
import socket
import subprocess

# Which collector publishes a metric, by name prefix (first match wins).
# socket_exporter_* is the exporter's own and always present.
COLLECTOR_OF_PREFIX = [
    ("socket_exporter_events_", "events"),
    ("socket_exporter_", None),
    ("socket_connects_", "events"),
    ("socket_connect_destination_", "events"),
    ("socket_bind_failures_", "events"),
    ("socket_tcp_", "events"),
    ("socket_connections", "connections"),
    ("socket_ephemeral_", "ephemeral"),
    ("socket_listen_", "listeners"),
    ("socket_syncookies_", "listeners"),
    ("socket_netns_", "netns"),
]


def collector_of(metric):
    for prefix, collector in COLLECTOR_OF_PREFIX:
        if metric.startswith(prefix):
            return collector
    raise KeyError(f"no collector known for metric {metric}")


# Collectors off by default whose metrics the rules and dashboard use: they
# are scraped too where they can run. One that cannot run here (events
# without BPF or its privileges) counts as absent, so its metrics are
# reported as not checked.
OPTIONAL_COLLECTORS = ["events"]


def _optional_once(exporter, collector):
    return subprocess.run([exporter, "--once", f"--collector.{collector}"], capture_output=True,
                          text=True)


def registered_collectors(exporter):
    """Collector names this build knows, from --help (--collector.NAME), less
    optional ones that cannot run here."""
    r = subprocess.run([exporter, "--help"], capture_output=True, text=True, check=True)
    known = set(re.findall(r"--collector\.([a-z_]+)", r.stdout))
    for collector in OPTIONAL_COLLECTORS:
        if collector in known and _optional_once(exporter, collector).returncode != 0:
            print(f"note: collector {collector} cannot run here; its metrics are not checked")
            known.discard(collector)
    return known


def published_metrics(exporter):
    """Metric families the exporter declares (# TYPE) in one --once scrape with
    its default collectors (those a deployment runs). A family with no
    samples (no ephemeral destination yet) still counts: the exporter
    publishes it."""
    r = subprocess.run([exporter, "--once"], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"--once failed ({r.returncode}): {r.stderr[-2000:]}")
    published = set(re.findall(r"^# TYPE (\S+) ", r.stdout, re.M))
    for collector in OPTIONAL_COLLECTORS:
        o = _optional_once(exporter, collector)
        if o.returncode == 0:
            published |= set(re.findall(r"^# TYPE (\S+) ", o.stdout, re.M))
    return published


_METRIC = re.compile(r"\b(socket_[a-z0-9_]+)\b")


def metrics_in(expr):
    """socket_* metric names used in a PromQL expression (label names of this
    project never start with socket_)."""
    return set(_METRIC.findall(expr))


def classify_metrics(names, published, collectors):
    """Splits metric names into (missing, unchecked): missing = its collector
    is in this build but the metric is not published (a typo or a renamed
    metric: a failure); unchecked = its collector is not in this build yet."""
    missing, unchecked = set(), set()
    for name in names:
        if name in published:
            continue
        try:
            collector = collector_of(name)
        except KeyError:
            missing.add(name)
            continue
        if collector is not None and collector not in collectors:
            unchecked.add(name)
        else:
            missing.add(name)
    return missing, unchecked


def dashboard_panels(dashboard):
    """Every panel, those inside collapsed rows included."""
    for panel in dashboard.get("panels", []):
        yield panel
        for inner in panel.get("panels", []) or []:
            yield inner


def load_dashboard(source_dir):
    with open(os.path.join(source_dir, "deploy", "grafana", "socket_exporter.json")) as f:
        return json.load(f)


_VARIABLE = re.compile(r"\$\{?(__[a-z_]+|[A-Za-z_][A-Za-z0-9_]*)(?::[a-z]+)?\}?")


def substitute(expr, values):
    """Fills Grafana variables ($name, ${name}, ${name:fmt}) from values;
    raises KeyError on a variable values does not define."""
    def one(m):
        name = m.group(1)
        if name not in values:
            raise KeyError(name)
        return values[name]
    return _VARIABLE.sub(one, expr)


def free_loopback_port():
    """A TCP port free on 127.0.0.1 right now (the caller retries if another
    process takes it before it binds)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
