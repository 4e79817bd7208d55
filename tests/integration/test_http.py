"""The real exposer on an ephemeral loopback port: /metrics, /, /-/healthy,
HEAD, unknown paths, promtool check metrics, SIGHUP reload (bad file keeps the
old config and sets the metric to 0; a good file applies), SIGTERM stops it
within a second."""

import os
import shutil
import signal
import subprocess
import tempfile
import time

from harness import *
from harness import _cleanups
from exporter_process import ExporterProcess

args = parse_args()
install_cleanup()
res = Results()

if not shutil.which("promtool"):
    skip("promtool not installed (Debian package prometheus; scripts/install-deps.sh installs it)")

workdir = tempfile.mkdtemp(prefix="se-http-")
_cleanups.append(lambda: shutil.rmtree(workdir, ignore_errors=True))
config_path = os.path.join(workdir, "config.yaml")
with open(os.path.join(args.source_dir, "config", "default.yaml")) as f:
    default_yaml = f.read()
with open(config_path, "w") as f:
    f.write(default_yaml)

exp = ExporterProcess(args.exporter, f"--config.file={config_path}")

status, headers, body = exp.get("/metrics")
res.equal(status, 200, "/metrics answers 200")
res.check(headers.get("Content-Type", "").startswith("text/plain"), "/metrics is text/plain",
          headers.get("Content-Type"))
samples = parse_exposition(body)
names = {n for n, _, _ in samples}
for name in ("socket_connections", "socket_exporter_collector_duration_seconds",
             "socket_exporter_collector_success", "socket_exporter_build_info",
             "socket_exporter_config_last_reload_successful"):
    res.check(name in names, f"/metrics has {name}")

lint = subprocess.run(["promtool", "check", "metrics"], input=body, capture_output=True, text=True)
res.check(lint.returncode == 0, "promtool check metrics is clean", lint.stdout + lint.stderr)

status, headers, body = exp.get("/")
res.equal(status, 200, "/ answers 200")
res.check("href=\"/metrics\"" in body and "text/html" in headers.get("Content-Type", ""),
          "/ is an HTML page linking to /metrics")
status, _, body = exp.get("/-/healthy")
res.equal((status, body.strip()), (200, "Healthy"), "/-/healthy answers 200")
status, _, body = exp.get("/metrics", method="HEAD")
res.equal(status, 200, "HEAD /metrics answers 200")
status, _, _ = exp.get("/no-such-page")
res.equal(status, 404, "unknown path answers 404")


def reload_metric():
    _, _, text = exp.get("/metrics")
    return {n: v for n, _, v in parse_exposition(text)
            if n.startswith("socket_exporter_config_last_reload")}


res.equal(reload_metric()["socket_exporter_config_last_reload_successful"], 1.0,
          "reload metric is 1 after start")

# A broken file: reload fails, metric 0, old service names keep working.
with open(config_path, "w") as f:
    f.write("services:\n  - name: ssh\n    ports: [99999]\n")
exp.proc.send_signal(signal.SIGHUP)
wait_for(lambda: reload_metric()["socket_exporter_config_last_reload_successful"] == 0.0,
         what="reload failure to show")
res.check(True, "bad config on SIGHUP sets last_reload_successful to 0")
_, _, text = exp.get("/metrics")
services = {l.get("service_name") for n, l, _ in parse_exposition(text) if n == "socket_connections"}
res.check(any("99999" in line and "config" in line for line in exp.log),
          "the reload error is logged with the file position", "".join(exp.log[-3:]))

# A good file with a new service applies.
with open(config_path, "w") as f:
    f.write(default_yaml.replace("  - name: https\n    ports: [443]\n",
                                 "  - name: https\n    ports: [443]\n  - name: exporter\n"
                                 "    ports: [%d]\n" % exp.port))
exp.proc.send_signal(signal.SIGHUP)
wait_for(lambda: reload_metric()["socket_exporter_config_last_reload_successful"] == 1.0,
         what="reload success to show")
_, _, text = exp.get("/metrics")
services = {l.get("service_name") for n, l, v in parse_exposition(text)
            if n == "socket_connections" and v > 0}
res.check("exporter" in services, "a good config on SIGHUP applies (new service is counted)",
          str(services))

start = time.monotonic()
exp.proc.send_signal(signal.SIGTERM)
code = exp.proc.wait(5)
elapsed = time.monotonic() - start
res.check(code == 0 and elapsed < 1.0, f"SIGTERM stops it within a second ({elapsed:.2f}s, exit {code})")

res.finish()
