"""The deployment files under deploy/, parsed and held to what matters, and
run against the real tools where this machine has them:

- Kubernetes: DaemonSet (host network, non-root, read-only root, no
  privilege escalation, capabilities dropped, resource requests, probes on
  the metrics port), Service and ServiceMonitor agreeing on labels, port
  names and numbers; hostPID only with the netns collector; the job name
  matches the alert rules; the container args are accepted by the binary.
- Container: the Dockerfile statically (no Docker engine here): two
  bookworm-slim stages, a runtime stage without compilers or -dev packages,
  a numeric non-root USER equal to the DaemonSet's runAsUser.
- systemd: the unit's hardening settings, ExecStart using the environment
  file's $ARGS (whose flags the binary accepts), `systemd-analyze verify`
  and `systemd-analyze security` (exposure at most 2.0); every system call
  the exporter makes (strace, while serving, scraped, reloaded, stopped) is
  allowed by the unit's SystemCallFilter; and the unit's command run as an
  unprivileged user with no_new_privs: every default collector succeeds,
  which is why the unit needs no capabilities; with the capabilities of
  the netns drop-in (deploy/systemd/netns.conf), the netns collector reaches a
  namespace held only by a process, and with fewer it does not.
- Grafana: the dashboard JSON (unique ids, panels on the 24-column grid
  without overlap, every query through the data source variable, the
  instance variable) and the provisioning file.
- Debian maintainer scripts: shellcheck.

No root needed (the unprivileged run is skipped without root)."""

import glob
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request

from harness import *
from harness import _cleanups

args = parse_args()
install_cleanup()
res = Results()

try:
    import yaml
except ImportError:
    skip("python3-yaml not installed (scripts/install-deps.sh installs it)")

deploy = os.path.join(args.source_dir, "deploy")
default_config = os.path.join(args.source_dir, "config", "default.yaml")
workdir = tempfile.mkdtemp(prefix="se-manifests-")
_cleanups.append(lambda: shutil.rmtree(workdir, ignore_errors=True))


def flag_value(argv, flag):
    for a in argv:
        if a.startswith(flag + "="):
            return a.split("=", 1)[1]
    return None


def binary_accepts(argv, what):
    """Runs the real binary with argv + --config.check, the config path
    pointed at the source tree's default config (what the package installs
    as /etc/socket_exporter/config.yml)."""
    argv = [a.replace("/etc/socket_exporter/config.yml", default_config) for a in argv]
    r = subprocess.run([args.exporter, *argv, "--config.check"], capture_output=True, text=True)
    res.check(r.returncode == 0, f"{what}: the exporter accepts {' '.join(argv)}",
              r.stdout + r.stderr)


# ===== Kubernetes =============================================================
k8s_dir = os.path.join(deploy, "kubernetes")
objects = {}
for path in sorted(glob.glob(os.path.join(k8s_dir, "*.yaml"))):
    with open(path) as f:
        for doc in yaml.safe_load_all(f):
            if doc:
                objects[doc["kind"]] = doc
for kind in ("DaemonSet", "Service", "ServiceMonitor", "Kustomization"):
    res.check(kind in objects, f"deploy/kubernetes has a {kind}")
ds, svc, sm = objects["DaemonSet"], objects["Service"], objects["ServiceMonitor"]
kust = objects["Kustomization"]
res.equal(sorted(kust["resources"]),
          sorted(os.path.basename(p) for p in glob.glob(os.path.join(k8s_dir, "*.yaml"))
                 if not p.endswith("kustomization.yaml")),
          "kustomization.yaml lists every manifest")

res.equal(ds["apiVersion"], "apps/v1", "DaemonSet apiVersion apps/v1")
res.equal(ds["spec"]["selector"]["matchLabels"],
          {k: v for k, v in ds["spec"]["template"]["metadata"]["labels"].items()
           if k in ds["spec"]["selector"]["matchLabels"]},
          "DaemonSet selector matches its pod labels")
pod = ds["spec"]["template"]["spec"]
res.equal(pod.get("hostNetwork"), True, "pod uses the host network (counts the node's sockets)")
res.equal(pod.get("dnsPolicy"), "ClusterFirstWithHostNet", "dnsPolicy fits hostNetwork")
res.equal(len(pod["containers"]), 1, "one container")
ctr = pod["containers"][0]
psc, csc = pod.get("securityContext", {}), ctr.get("securityContext", {})
netns = "--collector.netns" in ctr.get("args", [])
res.equal(bool(pod.get("hostPID")), netns, "hostPID is on exactly when the netns collector is")
res.equal(csc.get("readOnlyRootFilesystem"), True, "readOnlyRootFilesystem")
res.equal(csc.get("allowPrivilegeEscalation"), False, "allowPrivilegeEscalation false")
res.check(not csc.get("privileged"), "not privileged")
res.equal(csc.get("capabilities", {}).get("drop"), ["ALL"], "all capabilities dropped")
added = set(csc.get("capabilities", {}).get("add", []))
res.equal(added, {"SYS_ADMIN", "SYS_PTRACE"} if netns else set(),
          "capabilities added only for the netns collector")
run_as_non_root = csc.get("runAsNonRoot", psc.get("runAsNonRoot"))
run_as_user = csc.get("runAsUser", psc.get("runAsUser"))
if not netns:
    res.equal(run_as_non_root, True, "runAsNonRoot")
    res.check(isinstance(run_as_user, int) and run_as_user > 0, "runAsUser is a non-zero uid",
              str(run_as_user))
res.equal((psc.get("seccompProfile") or csc.get("seccompProfile") or {}).get("type"),
          "RuntimeDefault", "seccomp RuntimeDefault")
res.equal(pod.get("automountServiceAccountToken"), False, "no service account token (no API access needed)")
requests = ctr.get("resources", {}).get("requests", {})
res.check("cpu" in requests and "memory" in requests, "resources.requests has cpu and memory",
          str(requests))
res.check("memory" in ctr.get("resources", {}).get("limits", {}), "a memory limit")

ports = ctr.get("ports", [])
res.equal(len(ports), 1, "the container exposes one port")
cport = ports[0]
listen = flag_value(ctr["args"], "--web.listen-address") or ":19375"
res.equal(int(listen.rsplit(":", 1)[1]), cport["containerPort"],
          "--web.listen-address port is the containerPort")
res.equal(cport.get("hostPort"), cport["containerPort"], "hostPort = containerPort (host network)")
for probe in ("livenessProbe", "readinessProbe"):
    http = ctr.get(probe, {}).get("httpGet", {})
    res.equal((http.get("path"), http.get("port")), ("/-/healthy", cport["name"]),
              f"{probe} GETs /-/healthy on the metrics port")
binary_accepts(ctr["args"], "DaemonSet args")

# Service <-> DaemonSet <-> ServiceMonitor.
pod_labels = ds["spec"]["template"]["metadata"]["labels"]
res.check(all(pod_labels.get(k) == v for k, v in svc["spec"]["selector"].items()),
          "Service selector matches the DaemonSet's pods", str(svc["spec"]["selector"]))
sport = svc["spec"]["ports"][0]
res.check(sport["targetPort"] in (cport["name"], cport["containerPort"]),
          "Service targetPort is the container port", str(sport))
res.equal(sport["port"], cport["containerPort"], "Service port number = container port")
res.equal(svc["spec"].get("clusterIP"), "None", "headless Service (one endpoint per node)")
res.equal(sm["apiVersion"], "monitoring.coreos.com/v1", "ServiceMonitor apiVersion")
res.check(all(svc["metadata"]["labels"].get(k) == v
              for k, v in sm["spec"]["selector"]["matchLabels"].items()),
          "ServiceMonitor selector matches the Service's labels")
endpoint = sm["spec"]["endpoints"][0]
res.equal(endpoint["port"], sport["name"], "ServiceMonitor scrapes the Service's named port")
res.equal(endpoint.get("path", "/metrics"),
          flag_value(ctr["args"], "--web.telemetry-path") or "/metrics",
          "ServiceMonitor path = the exporter's telemetry path")
# The operator names the job after the Service (unless jobLabel says
# otherwise); the health alerts select it by job.
res.check("jobLabel" not in sm["spec"], "job = the Service name (no jobLabel)")
with open(os.path.join(deploy, "prometheus", "rules", "socket_exporter.rules.yml")) as f:
    rules_text = f.read()
job_selectors = set(re.findall(r'job=~"([^"]+)"', rules_text))
res.check(job_selectors and all(re.fullmatch(sel, svc["metadata"]["name"]) for sel in job_selectors),
          f"the alert rules' job selector matches the Service name {svc['metadata']['name']}",
          str(job_selectors))
with open(os.path.join(deploy, "prometheus", "prometheus.yml")) as f:
    prom_jobs = [j["job_name"] for j in yaml.safe_load(f)["scrape_configs"]]
res.check(all(re.fullmatch(sel, prom_jobs[0]) for sel in job_selectors),
          "the alert rules' job selector matches the example scrape config's job", str(prom_jobs))

# ===== Dockerfile (static: no Docker engine here) ============================
with open(os.path.join(deploy, "docker", "Dockerfile")) as f:
    dockerfile = f.read()
# Join continuation lines, drop comments.
logical = re.sub(r"\\\n", " ", "\n".join(l for l in dockerfile.splitlines()
                                         if not l.lstrip().startswith("#")))
stages = re.split(r"^FROM\s+", logical, flags=re.M)[1:]
res.equal(len(stages), 2, "Dockerfile has two stages")
res.check(all(s.split()[0] == "debian:bookworm-slim" for s in stages),
          "both stages are FROM debian:bookworm-slim", str([s.split()[0] for s in stages]))
runtime = stages[-1]
installs = " ".join(re.findall(r"apt-get install[^&\n]*", runtime))
res.check(not re.search(r"-dev\b|build-essential|cmake|\bg\+\+|\bgcc\b|\bgit\b", runtime),
          "the runtime stage installs no compiler, build tool or -dev package", installs)
res.check("COPY --from=" in runtime, "the runtime stage copies the build stage's output")
res.check("--no-install-recommends" in installs and "rm -rf /var/lib/apt/lists" in runtime,
          "apt in the runtime stage: no recommends, lists removed")
user = re.findall(r"^USER\s+(\S+)", runtime, re.M)
res.check(bool(user) and re.fullmatch(r"[1-9][0-9]*(:[1-9][0-9]*)?", user[-1]) is not None,
          "the runtime stage ends as a numeric non-root USER (runAsNonRoot can verify it)", str(user))
if user:
    uid = int(user[-1].split(":")[0])
    res.equal(uid, run_as_user, "the image's USER uid is the DaemonSet's runAsUser")
    res.check(re.search(rf"useradd\b[^\n]*--uid {uid}\b", runtime) is not None,
              "the runtime stage creates that user")
entrypoint = json.loads(re.search(r"^ENTRYPOINT\s+(\[.*\])", runtime, re.M).group(1))
cmd = json.loads(re.search(r"^CMD\s+(\[.*\])", runtime, re.M).group(1))
res.equal(entrypoint, ["/usr/bin/socket_exporter"], "ENTRYPOINT is the packaged binary")
binary_accepts(cmd, "Dockerfile CMD")
exposed = re.findall(r"^EXPOSE\s+(\d+)", runtime, re.M)
res.equal([int(p) for p in exposed], [cport["containerPort"]], "EXPOSE the metrics port")
res.check(os.path.exists(os.path.join(deploy, "docker", "Dockerfile.dockerignore")),
          "a .dockerignore next to the Dockerfile keeps build trees out of the context")

# ===== systemd ================================================================


def parse_unit(text):
    """systemd unit syntax: [Section], Key=Value, repeated keys accumulate,
    '#'/';' comments, backslash continuation."""
    sections, section = {}, None
    text = re.sub(r"\\\n", " ", text)
    for line in text.splitlines():
        line = line.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            section = sections.setdefault(line.strip("[]"), {})
            continue
        key, _, value = line.partition("=")
        section.setdefault(key.strip(), []).append(value.strip())
    return sections


unit_path = os.path.join(deploy, "systemd", "socket_exporter.service")
with open(unit_path) as f:
    unit = parse_unit(f.read())
svc_unit = unit.get("Service", {})


def last(key):
    return (svc_unit.get(key) or [None])[-1]


res.check(last("User") not in (None, "", "root", "0"), "the unit runs as a non-root User",
          str(last("User")))
res.equal(last("NoNewPrivileges"), "yes", "NoNewPrivileges=yes")
res.equal(last("ProtectSystem"), "strict", "ProtectSystem=strict")
res.equal(last("ProtectHome"), "yes", "ProtectHome=yes")
res.equal(last("CapabilityBoundingSet"), "", "CapabilityBoundingSet= empty (no capabilities)")
res.equal(last("AmbientCapabilities"), "", "AmbientCapabilities= empty")
res.check(last("PrivateNetwork") in (None, "no", "false", "0"),
          "no PrivateNetwork (it must see the host's sockets)", str(last("PrivateNetwork")))
families = set(" ".join(svc_unit.get("RestrictAddressFamilies", [])).split())
res.check({"AF_NETLINK", "AF_INET", "AF_INET6"} <= families,
          "RestrictAddressFamilies allows AF_NETLINK (sock_diag) and AF_INET/AF_INET6", str(families))
res.check(last("EnvironmentFile") in ("/etc/default/socket_exporter", "-/etc/default/socket_exporter"),
          "EnvironmentFile=/etc/default/socket_exporter", str(last("EnvironmentFile")))
exec_start = shlex.split(last("ExecStart"))
res.equal(exec_start, ["/usr/bin/socket_exporter", "$ARGS"],
          "ExecStart runs /usr/bin/socket_exporter $ARGS (unquoted: split into words)")
res.equal(unit.get("Install", {}).get("WantedBy"), ["multi-user.target"], "WantedBy=multi-user.target")

env_path = os.path.join(deploy, "systemd", "socket_exporter.default")
env = {}
with open(env_path) as f:
    for line in f:
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            env[key] = shlex.split(value)[0] if value else ""
res.check("ARGS" in env, "the environment file sets ARGS")
unit_args = env.get("ARGS", "").split()
binary_accepts(unit_args, "environment file ARGS")
res.equal(flag_value(unit_args, "--config.file"), "/etc/socket_exporter/config.yml",
          "ARGS point at the packaged config /etc/socket_exporter/config.yml")

# The unit with ExecStart pointing at this build's binary (verify needs an
# existing executable).
local_unit = os.path.join(workdir, "socket_exporter.service")
with open(unit_path) as f:
    text = f.read()
with open(local_unit, "w") as f:
    f.write(text.replace("/usr/bin/socket_exporter", os.path.abspath(args.exporter)))
if shutil.which("systemd-analyze"):
    r = subprocess.run(["systemd-analyze", "verify", local_unit], capture_output=True, text=True)
    res.check(r.returncode == 0 and not r.stderr.strip(), "systemd-analyze verify is clean",
              r.stdout + r.stderr)
    r = subprocess.run(["systemd-analyze", "security", "--offline=yes", "--threshold=20",
                        local_unit], capture_output=True, text=True)
    m = re.search(r"Overall exposure level for \S+: ([0-9.]+)", r.stdout + r.stderr)
    res.check(r.returncode == 0 and m is not None,
              f"systemd-analyze security: exposure {m.group(1) if m else '?'} <= 2.0",
              (r.stdout + r.stderr)[-1500:])
else:
    print("NOT CHECKED systemd-analyze verify/security: systemd-analyze not installed")


def expand_syscall_set(group, seen=None):
    """A systemd syscall group (@name) expanded to system call names, as
    this machine's systemd defines it."""
    seen = seen if seen is not None else set()
    if group in seen:
        return set()
    seen.add(group)
    r = subprocess.run(["systemd-analyze", "syscall-filter", group], capture_output=True,
                       text=True, check=True)
    names = set()
    for line in r.stdout.splitlines()[1:]:
        item = line.strip()
        if not item or item.startswith("#"):
            continue
        names |= expand_syscall_set(item, seen) if item.startswith("@") else {item}
    return names


def allowed_syscalls():
    """The unit's SystemCallFilter lines, applied in order: an allow list,
    then ~ deny lists."""
    allowed = None
    for value in svc_unit.get("SystemCallFilter", []):
        deny = value.startswith("~")
        items = value.lstrip("~").split()
        names = set()
        for item in items:
            names |= expand_syscall_set(item) if item.startswith("@") else {item}
        if deny:
            allowed = (allowed or set()) - names
        else:
            allowed = (allowed or set()) | names
    return allowed


def wait_port(log_path, proc, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with open(log_path) as f:
            m = re.search(r"\(port (\d+)\)", f.read())
        if m:
            return int(m.group(1))
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    return None


def get(port, path):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
        return r.status, r.read().decode()


def serve_briefly(argv, tag, reload=True, env=None):
    """Starts argv (which must serve on 127.0.0.1:0), scrapes /metrics,
    /-/healthy, sends SIGHUP, scrapes again, stops it with SIGTERM. Returns
    (exit code, /metrics text)."""
    log_path = os.path.join(workdir, f"{tag}.log")
    with open(log_path, "w") as log:
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=log, env=env)

    def stop():
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
    _cleanups.append(stop)
    port = wait_port(log_path, proc)
    # Signals go to the exporter itself: under strace it is strace's child.
    target = proc.pid
    try:
        with open(f"/proc/{proc.pid}/task/{proc.pid}/children") as f:
            children = f.read().split()
        target = int(children[0]) if children else proc.pid
    except OSError:
        pass
    body = ""
    if port is not None:
        _, body = get(port, "/metrics")
        get(port, "/-/healthy")
        if reload:
            os.kill(target, signal.SIGHUP)
            time.sleep(0.3)
            _, body = get(port, "/metrics")
    if proc.poll() is None:
        os.kill(target, signal.SIGTERM)
    try:
        code = proc.wait(10)
    except subprocess.TimeoutExpired:
        code = None
    stop()
    _cleanups.remove(stop)
    if port is None:
        with open(log_path) as f:
            print(f.read()[-2000:])
    return code, body


serve_args = [a.replace("/etc/socket_exporter/config.yml", default_config)
              for a in unit_args if not a.startswith("--web.listen-address")]
serve_args.append("--web.listen-address=127.0.0.1:0")

# Every system call made while serving is allowed by SystemCallFilter.
if shutil.which("strace") and shutil.which("systemd-analyze"):
    allowed = allowed_syscalls()
    trace = os.path.join(workdir, "strace.log")
    # LeakSanitizer cannot run under ptrace (it exits 1 saying so); under the
    # sanitizer stage the leak check is left to the other tests here.
    env = None
    if os.environ.get("SOCKET_EXPORTER_SANITIZED") == "1":
        env = dict(os.environ)
        env["ASAN_OPTIONS"] = (env.get("ASAN_OPTIONS", "") + ":detect_leaks=0").lstrip(":")
    code, body = serve_briefly(["strace", "-f", "-qq", "-o", trace, args.exporter, *serve_args],
                               "strace", env=env)
    res.check(code == 0 and "socket_connections" in body,
              "the exporter served and stopped cleanly under strace", f"exit {code}")
    called = set()
    with open(trace) as f:
        for line in f:
            m = re.match(r"^\d+\s+(?:<\.\.\. )?([a-z0-9_]+)[( ]", line)
            if m and m.group(1) not in ("exited", "killed", "resumed"):
                called.add(m.group(1))
    # execve is strace's exec of the exporter (systemd performs it before the
    # filter applies to the service's code).
    called.discard("execve")
    res.check(len(called) > 10, f"strace saw {len(called)} distinct system calls")
    res.equal(sorted(called - allowed), [], "every system call the exporter makes is allowed by "
              "the unit's SystemCallFilter")
else:
    print("NOT CHECKED SystemCallFilter against strace: strace or systemd-analyze not installed")

# The unit's command, as an unprivileged user with no_new_privs and no
# capabilities (what the unit gives it): every default collector succeeds.
if os.geteuid() == 0 and shutil.which("setpriv"):
    exporter_copy = os.path.join(workdir, "socket_exporter")
    shutil.copy(args.exporter, exporter_copy)
    config_copy = os.path.join(workdir, "config.yml")
    shutil.copy(default_config, config_copy)
    os.chmod(workdir, 0o755)
    nobody_args = [a.replace(default_config, config_copy) for a in serve_args]
    code, body = serve_briefly(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                                "--no-new-privs", "--inh-caps=-all", "--bounding-set=-all",
                                exporter_copy, *nobody_args], "nobody")
    successes = {l["collector"]: v for n, l, v in parse_exposition(body)
                 if n == "socket_exporter_collector_success"}
    res.check(code == 0 and successes and all(v == 1.0 for v in successes.values()),
              f"as uid 65534 without capabilities every default collector succeeds {successes}",
              f"exit {code}")
    scanned = sum(v for n, l, v in parse_exposition(body) if n == "socket_exporter_sockets_scanned")
    res.check(scanned >= 1, "and it sees the host's sockets (at least its own listener)", str(scanned))

    # The netns drop-in (deploy/systemd/netns.conf): with exactly its capabilities
    # (as ambient capabilities of uid 65534, no_new_privs) the netns
    # collector reaches a namespace held only by a process (a container's,
    # with no name under /var/run/netns); without them it fails.
    collectors = set(re.findall(r"--collector\.([a-z_]+)",
                                subprocess.run([args.exporter, "--help"], capture_output=True,
                                               text=True).stdout))
    dropin_path = os.path.join(deploy, "systemd", "netns.conf")
    res.check(os.path.exists(dropin_path), "the netns drop-in deploy/systemd/netns.conf exists")
    dropin = {}
    if os.path.exists(dropin_path):
        with open(dropin_path) as f:
            dropin = parse_unit(f.read()).get("Service", {})
    ambient = " ".join(dropin.get("AmbientCapabilities", [])).split()
    res.equal(sorted(" ".join(dropin.get("CapabilityBoundingSet", [])).split()), sorted(ambient),
              "the netns drop-in's bounding set is its ambient set")
    dropin_caps = [c.lower().removeprefix("cap_") for c in ambient]
    if "netns" in collectors and dropin_caps and shutil.which("unshare"):
        holder = subprocess.Popen(["unshare", "--net", "sleep", "120"])

        def stop_holder():
            if holder.poll() is None:
                holder.kill()
                holder.wait(5)
        _cleanups.append(stop_holder)
        own = os.stat("/proc/self/ns/net").st_ino
        inode = wait_for(lambda: (os.stat(f"/proc/{holder.pid}/ns/net").st_ino != own
                                  and os.stat(f"/proc/{holder.pid}/ns/net").st_ino),
                         what="unshare to enter its namespace")
        caps = ",".join("+" + c for c in dropin_caps)

        def netns_once(cap_args):
            r = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                                "--no-new-privs", *cap_args, exporter_copy, "--once",
                                "--collector.netns", f"--config.file={config_copy}"],
                               capture_output=True, text=True, timeout=60)
            samples = parse_exposition(r.stdout) if r.stdout else []
            ok = {l["collector"]: v for n, l, v in samples
                  if n == "socket_exporter_collector_success"}.get("netns")
            seen = any(l.get("inode") == str(inode) for _, l, _ in samples)
            return ok, seen, r.stderr[-1500:]

        ok, seen, err = netns_once([f"--inh-caps=-all,{caps}", f"--ambient-caps=-all,{caps}",
                                    f"--bounding-set=-all,{caps}"])
        res.check(ok == 1.0 and seen, f"with the drop-in's capabilities ({', '.join(dropin_caps)}) "
                  "as uid 65534 the netns collector reaches a process-only namespace",
                  f"success={ok} seen={seen}\n{err}")
        ok, seen, err = netns_once(["--inh-caps=-all", "--bounding-set=-all"])
        res.check(ok == 0.0 and not seen, "without them it cannot (so they are needed)",
                  f"success={ok} seen={seen}")
        if "sys_ptrace" in dropin_caps:
            # Named namespaces (/var/run/netns) open without it; a process's
            # /proc/PID/ns/net of another user needs ptrace read access.
            fewer = ",".join("+" + c for c in dropin_caps if c != "sys_ptrace")
            ok, seen, err = netns_once([f"--inh-caps=-all,{fewer}", f"--ambient-caps=-all,{fewer}",
                                        f"--bounding-set=-all,{fewer}"])
            res.check(not seen, "without sys_ptrace the process-only namespace is not reached",
                      f"success={ok} seen={seen}")
        stop_holder()
    else:
        print("NOT CHECKED the netns drop-in's capabilities: no netns collector in this build, "
              "no capabilities in deploy/systemd/netns.conf, or no unshare")
else:
    print("NOT CHECKED unprivileged run of the unit's command: needs root and setpriv")

# ===== Grafana ================================================================
with open(os.path.join(deploy, "grafana", "socket_exporter.json")) as f:
    dashboard = json.load(f)
panels = []
for p in dashboard["panels"]:
    panels.append(p)
    panels.extend(p.get("panels", []) or [])
ids = [p["id"] for p in panels]
res.equal(len(ids), len(set(ids)), "panel ids are unique")
res.check(dashboard.get("uid") and dashboard.get("title"), "the dashboard has a uid and a title")
variables = {v["name"]: v for v in dashboard["templating"]["list"]}
res.equal(variables.get("datasource", {}).get("type"), "datasource", "a data source variable")
res.equal(variables.get("datasource", {}).get("query"), "prometheus", "of type prometheus")
res.check("instance" in variables and variables["instance"]["type"] == "query",
          "an instance variable")
cells = {}
overlaps = []
for p in panels:
    g = p["gridPos"]
    res.check(0 <= g["x"] and g["x"] + g["w"] <= 24, f"panel '{p['title']}' fits the 24-column grid",
              str(g))
    for x in range(g["x"], g["x"] + g["w"]):
        for y in range(g["y"], g["y"] + g["h"]):
            if (x, y) in cells:
                overlaps.append((p["title"], cells[(x, y)]))
            cells[(x, y)] = p["title"]
res.equal(sorted(set(overlaps)), [], "no two panels overlap")
needed = {"Sockets by state": "socket_connections", "service": "service_name",
          "port range": "port_range", "utilization per destination": "socket_ephemeral_destination",
          "Accept queue": "socket_listen_queue", "duration": "socket_exporter_collector_duration",
          "Collector health": "socket_exporter_collector_success"}
for title_part, metric in needed.items():
    res.check(any(title_part in p["title"] and any(metric in t["expr"] for t in p.get("targets", []))
                  for p in panels), f"a panel for '{title_part}' ({metric})")
for p in panels:
    if p["type"] == "row":
        continue
    res.check(p.get("datasource", {}).get("uid") == "${datasource}" and p.get("targets")
              and all(t.get("expr") and t.get("datasource", {}).get("uid") == "${datasource}"
                      for t in p["targets"]),
              f"panel '{p['title']}' queries through $datasource")
    res.check(all('instance=~"$instance"' in t["expr"] for t in p["targets"]),
              f"panel '{p['title']}' filters on $instance")
with open(os.path.join(deploy, "grafana", "provisioning", "dashboards", "socket_exporter.yml")) as f:
    prov = yaml.safe_load(f)
res.equal(prov.get("apiVersion"), 1, "provisioning file apiVersion 1")
provider = prov["providers"][0]
res.check(provider.get("type") == "file" and provider.get("options", {}).get("path"),
          "a file provider with a path", str(provider))

# ===== Debian maintainer scripts ==============================================
scripts = sorted(glob.glob(os.path.join(deploy, "debian", "post*")) +
                 glob.glob(os.path.join(deploy, "debian", "pre*")))
res.check(len(scripts) >= 2, "maintainer scripts exist", str(scripts))
for s in scripts:
    res.check(os.access(s, os.X_OK), f"{os.path.basename(s)} is executable")
if shutil.which("shellcheck"):
    r = subprocess.run(["shellcheck", *scripts], capture_output=True, text=True)
    res.check(r.returncode == 0, "shellcheck is clean on the maintainer scripts", r.stdout)
else:
    print("NOT CHECKED shellcheck: not installed")

res.finish()
