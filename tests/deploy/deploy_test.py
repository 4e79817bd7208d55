"""The deploy stage: the deploy/ files proven live on this machine.

Steps, in order (SOCKET_EXPORTER_DEPLOY_STEPS=a,b picks some; a step whose
input a skipped or failed step makes is skipped saying so):

  k8s-schema  npm ci in tests/deploy/k8s-schema, then check.mjs: the
              manifests against the Kubernetes and Prometheus Operator
              schemas, and negative cases the checkers must reject
  base        debian:bookworm-slim made by mmdebstrap from this machine's
              apt sources (cached, see below)
  podman      podman with the stage's own storage and config, the base
              imported; skips the container steps where podman cannot run
  image       podman build of deploy/docker/Dockerfile; size bound, the
              image's non-root USER; the .deb its build stage made
  container   the image run as docs/deploy.md says (host network,
              read-only, no capabilities, no-new-privileges, 128 MiB):
              /metrics with every collector at success 1, the process
              status, the read-only root, the memory limit, a clean stop
  netns       the image with the netns collector as the docs say (host
              PID, SYS_ADMIN + SYS_PTRACE, root): success 1 and a namespace
              held only by a process found; without the capabilities not
  rootfs      a minimal Debian with systemd (mmdebstrap, cached) and the
              .deb installed with dpkg
  systemd     that root booted with systemd-nspawn (systemd as PID 1):
              enable --now, status, /metrics, /proc/PID/status of the
              service (uid, capabilities, NoNewPrivs, seccomp), read-only
              /, systemd-analyze security at most SECURITY_BASELINE,
              systemctl reload applying a changed config and keeping the
              old one on a broken one, stop within TimeoutStopSec; each
              optional collector of OPTIONAL_COLLECTORS fails without its
              drop-in and succeeds with it, with exactly its capabilities

Cache: the two mmdebstrap tarballs are kept in SOCKET_EXPORTER_DEPLOY_CACHE
(default /var/cache/socket_exporter-ci; "none" turns it off), keyed by the
apt sources, the package list and the ISO week (so they are rebuilt at
least weekly). Without a cache entry they are built; nothing else is kept.

Everything the stage starts is removed at the end, also on failure or
SIGTERM: containers, images and podman's storage (a private graphroot under
the work directory), the booted container, the holder processes, the cgroups
made for podman and nspawn, mounts under the work directory, the work
directory. Exit: 0 passed, 1 a check failed, 77 something skipped (and
nothing failed). The last line is "deploy: N passed, N failed, N skipped"
(checks), after a table of each step's result and time."""

import concurrent.futures
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEPLOY = os.path.join(ROOT, "deploy")
HERE = os.path.join(ROOT, "tests", "deploy")
SKIP = 77

# The image's size bound (bytes, as podman reports it). Measured 2026-12-07:
# see docs/robustness.md, "Deploy stage".
IMAGE_SIZE_LIMIT = 110 * 1000 * 1000
IMAGE_USER = "10001:10001"
# `systemd-analyze security socket_exporter.service` under the booted
# systemd, lower is better: the unit must stay at this level or better.
SECURITY_BASELINE = 1.6
# Collectors that need capabilities, each with the drop-in under
# deploy/systemd/ that grants them (and the matching `podman run` flags).
# Adding a collector's capability check is one entry here plus its drop-in:
#   collector     the --collector.NAME flag
#   capabilities  exactly what its drop-in grants and the process must hold
#   dropin        file under deploy/systemd/, installed as
#                 /etc/systemd/system/socket_exporter.service.d/NAME.conf
#   fails_without True: with the flag but without the drop-in, its
#                 socket_exporter_collector_success must be 0
#   probe         a function name in this file (or None): it sets up what the
#                 collector must find inside the booted system and returns a
#                 predicate on the parsed scrape (see probe_netns)
#   container     the extra `podman run` flags docs/deploy.md gives for it
# The BPF collectors (events, cgroups) will need CAP_BPF and CAP_PERFMON and
# `SystemCallFilter=bpf` (bpf is in @privileged, which the unit denies).
OPTIONAL_COLLECTORS = [
    {"collector": "netns", "capabilities": ["CAP_SYS_ADMIN", "CAP_SYS_PTRACE"],
     "dropin": "netns.conf", "fails_without": True, "probe": "probe_netns",
     "container": ["--pid", "host", "--user", "0"]},
]

DEB_DEPENDS_FIELD = "Depends"
MIRROR_SOURCES = "/etc/apt/sources.list.d/debian.sources"
SUITE = "bookworm"
# As Debian's official slim images: no manuals, documentation (but the
# copyright files) or translations, and apt keeps no package caches.
SLIM_DPKG = ["path-exclude=/usr/share/man/*", "path-exclude=/usr/share/doc/*",
             "path-include=/usr/share/doc/*/copyright", "path-exclude=/usr/share/locale/*",
             "path-exclude=/usr/share/info/*", "path-exclude=/usr/share/groff/*",
             "path-exclude=/usr/share/lintian/*", "path-exclude=/usr/share/linda/*"]
APT_CLEAN_CONF = """\
// No downloaded packages or package caches left in image layers, as in
// the official Debian container images; written by tests/deploy/.
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
Acquire::Languages "none";
"""


class Skip(Exception):
    pass


class Stage:
    def __init__(self):
        self.passed = self.failed = self.skipped = 0
        self.cleanups = []
        self.live = set()        # processes run() is waiting for
        self.pool = concurrent.futures.ThreadPoolExecutor(max_workers=2)
        self.started = time.monotonic()  # of the current step
        self.steps = []          # (name, result, seconds)
        self.state = {}          # what steps hand to later ones
        self.step_failed = False
        # Short: podman's runroot (under it) must be at most 50 characters,
        # or conmon's cleanup of each exited container fails and every
        # attached `podman run` waits 20 s for it.
        self.work = tempfile.mkdtemp(prefix="se-deploy.", dir="/var/tmp")
        os.chmod(self.work, 0o755)
        self.tag = f"socket_exporter-deploy-{os.getpid()}"
        cache = os.environ.get("SOCKET_EXPORTER_DEPLOY_CACHE", "/var/cache/socket_exporter-ci")
        self.cache = None if cache in ("", "none", "off") else cache
        self.wanted = None
        # Registered first, so run last: the stage's own cgroup, under which
        # podman's and nspawn's are made.
        self.cleanups.append((lambda: remove_cgroup(self.tag), "the stage's cgroups"))

    # ---- reporting ------------------------------------------------------------
    def check(self, ok, what, detail=""):
        at = f"{time.monotonic() - self.started:6.1f}"  # seconds into the step
        if ok:
            self.passed += 1
            print(f"  ok     {at}  {what}", flush=True)
        else:
            self.failed += 1
            self.step_failed = True
            print(f"  FAILED {at}  {what}", flush=True)
            if detail:
                print("          " + str(detail).strip().replace("\n", "\n          "), flush=True)
        return ok

    def note(self, text):
        print(f"  note   {time.monotonic() - self.started:6.1f}  {text}", flush=True)

    # ---- cleanup ----------------------------------------------------------------
    def on_cleanup(self, fn, what):
        self.cleanups.append((fn, what))
        return fn

    def drop_cleanup(self, fn):
        self.cleanups = [(f, w) for f, w in self.cleanups if f is not fn]

    def cleanup(self):
        for proc in list(self.live):  # a background build still running
            end(proc)
        self.pool.shutdown(wait=True, cancel_futures=True)
        while self.cleanups:
            fn, what = self.cleanups.pop()
            try:
                fn()
            except Exception as e:  # the rest must still run
                print(f"  cleanup of {what} failed: {e}", file=sys.stderr, flush=True)


S = None  # the Stage, set in main()


# ---- small tools ------------------------------------------------------------------
def run(argv, timeout=600, check=False, log=None, **kw):
    """Runs argv; output captured (or to the file log). Raises on timeout.
    While it runs, the stage's cleanup can end it (a background build)."""
    kw.setdefault("text", True)
    out = open(log, "a") if log else None
    try:
        if out:
            out.write(f"$ {' '.join(argv)}\n")
            out.flush()
            proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, **kw)
        else:
            proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)
        if S:
            S.live.add(proc)
        try:
            stdout, stderr = proc.communicate(timeout=timeout)
        except BaseException:
            end(proc)
            raise
        finally:
            if S:
                S.live.discard(proc)
    finally:
        if out:
            out.close()
    r = subprocess.CompletedProcess(argv, proc.returncode, stdout, stderr)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {r.returncode}: "
                           f"{tail(log) if log else (r.stdout or '') + (r.stderr or '')}")
    return r


def end(proc):
    """SIGTERM (podman and mmdebstrap clean up after themselves on it), then
    SIGKILL after 30 s."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def tail(path, n=40):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-n:])
    except OSError:
        return ""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(port, path, timeout=10):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, ""
    except OSError:
        return None, ""


def wait_until(predicate, timeout, interval=0.2):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


def parse_exposition(text):
    """[(name, {label: value}, float)] of a Prometheus text exposition."""
    samples = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)', line)
        if not m:
            continue
        labels = dict(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
        samples.append((m.group(1), labels, float(m.group(3))))
    return samples


def successes(samples):
    return {l.get("collector"): v for n, l, v in samples if n == "socket_exporter_collector_success"}


def value(samples, name, **labels):
    for n, l, v in samples:
        if n == name and all(l.get(k) == want for k, want in labels.items()):
            return v
    return None


def proc_status(text):
    return {k: v.strip() for k, _, v in (line.partition(":") for line in text.splitlines()) if v}


def decode_caps(hexmask):
    """Capability names (CAP_...) of a /proc/PID/status mask, by capsh."""
    if int(hexmask, 16) == 0:
        return []
    r = run(["capsh", f"--decode={hexmask}"], check=True)
    return sorted(c.upper() for c in r.stdout.strip().split("=", 1)[1].split(",") if c)


def check_status(status, what, uid_ok, caps, no_new_privs=True):
    """The process status the stage requires: uid (all four ids), exactly
    caps effective/permitted (bounding: at most caps), NoNewPrivs, seccomp."""
    uids = status.get("Uid", "").split()
    S.check(len(uids) == 4 and len(set(uids)) == 1 and uid_ok(int(uids[0])),
            f"{what}: Uid {' '.join(uids)}", str(status))
    eff, prm, bnd = (decode_caps(status.get(k, "0")) for k in ("CapEff", "CapPrm", "CapBnd"))
    S.check(eff == sorted(caps) and prm == sorted(caps),
            f"{what}: CapEff {status.get('CapEff')} = {eff or 'none'}", f"want {sorted(caps) or 'none'}")
    S.check(set(bnd) <= set(caps), f"{what}: CapBnd {status.get('CapBnd')} within {sorted(caps) or 'none'}",
            str(bnd))
    if no_new_privs:
        S.check(status.get("NoNewPrivs") == "1", f"{what}: NoNewPrivs 1", status.get("NoNewPrivs"))
    S.check(status.get("Seccomp") == "2" and int(status.get("Seccomp_filters", "0")) >= 1,
            f"{what}: Seccomp 2 (filter), {status.get('Seccomp_filters')} filter(s)")


def root_mount_options(mountinfo):
    for line in mountinfo.splitlines():
        f = line.split()
        if len(f) > 5 and f[4] == "/":
            return f[5]
    return ""


def cgroup_mounts():
    """[(mount point, fstype, super options)] of every cgroup hierarchy, from
    /proc/self/mountinfo (cgroup2 is /sys/fs/cgroup/unified on hybrid hosts,
    /sys/fs/cgroup on pure v2 ones)."""
    mounts = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            pre, _, post = line.partition(" - ")
            fields = post.split()
            if fields and fields[0] in ("cgroup", "cgroup2"):
                mounts.append((pre.split()[4], fields[0], fields[2] if len(fields) > 2 else ""))
    return mounts


def remove_cgroup(name):
    """rmdir name and everything below it in every hierarchy, deepest first;
    a process still in them (the stage's own, left by a killed run) is
    killed first."""
    leftover = []
    for mount, _, _ in cgroup_mounts():
        top = os.path.join(mount, name)
        if not os.path.isdir(top):
            continue
        for attempt in range(50):
            dirs = [d for d, _, _ in os.walk(top)]
            for d in sorted(dirs, key=len, reverse=True):
                if attempt == 10:
                    try:
                        with open(os.path.join(d, "cgroup.procs")) as f:
                            for pid in f.read().split():
                                os.kill(int(pid), signal.SIGKILL)
                    except OSError:
                        pass
                try:
                    os.rmdir(d)
                except OSError:
                    pass
            if not os.path.isdir(top):
                break
            time.sleep(0.1)
        if os.path.isdir(top):
            leftover.append(top)
    if leftover:
        raise RuntimeError(f"cgroups still in use: {leftover}")


def unmount_under(path):
    r = run(["findmnt", "-rn", "-o", "TARGET"])
    targets = [t.encode().decode("unicode_escape") for t in r.stdout.split()]
    for t in sorted((t for t in targets if t == path or t.startswith(path + "/")), key=len, reverse=True):
        run(["umount", "-l", t])


def sha(*parts):
    h = hashlib.sha256()
    for p in parts:
        h.update(p.encode() if isinstance(p, str) else p)
        h.update(b"\0")
    return h.hexdigest()[:16]


# ---- mmdebstrap tarballs, cached -----------------------------------------------------
def mmdebstrap_tar(kind, include, extra_args, log):
    """A minbase tarball of SUITE with include, from this machine's apt
    sources; taken from the cache when the same inputs made one this week.
    Returns (path, notes); runs in a background thread (S.pool)."""
    sources = MIRROR_SOURCES if os.path.exists(MIRROR_SOURCES) else None
    args = ["--variant=minbase", "--format=tar", "--dpkgopt=force-unsafe-io",
            "--hook-dir=/usr/share/mmdebstrap/hooks/merged-usr",
            "--aptopt=Acquire::Languages \"none\"", *extra_args]
    if include:
        args.append("--include=" + ",".join(include))
    listing = ""
    if sources:
        with open(sources) as f:
            listing = f.read()
    key = sha(kind, SUITE, " ".join(args), listing, time.strftime("%G-W%V"))
    name = f"{kind}-{SUITE}-{key}.tar"
    if S.cache:
        cached = os.path.join(S.cache, name)
        if os.path.exists(cached) and run(["tar", "-tf", cached], timeout=120).returncode == 0:
            return cached, [f"{kind}: cached {cached} ({os.path.getsize(cached) // 1000000} MB)"]
    out = os.path.join(S.work, name)
    argv = ["mmdebstrap", *args, SUITE, out]
    if sources:
        argv.append(sources)
    start = time.monotonic()
    # Its temporary directory (a chroot with /proc, /sys and /dev mounted
    # while it runs) under the work directory, which cleanup unmounts.
    r = run(argv, timeout=1200, log=log, env=dict(os.environ, TMPDIR=S.work))
    if r.returncode != 0:
        raise RuntimeError(f"mmdebstrap failed ({r.returncode}):\n{tail(log)}")
    notes = [f"{kind}: mmdebstrap took {time.monotonic() - start:.0f} s, "
             f"{os.path.getsize(out) // 1000000} MB"]
    if S.cache:
        os.makedirs(S.cache, exist_ok=True)
        for old in os.listdir(S.cache):  # one tarball per kind
            if old.startswith(f"{kind}-") and old.endswith(".tar") and old != name:
                os.unlink(os.path.join(S.cache, old))
        tmp = os.path.join(S.cache, f".{name}.{os.getpid()}")
        shutil.copyfile(out, tmp)
        os.replace(tmp, os.path.join(S.cache, name))
        os.unlink(out)
        out = os.path.join(S.cache, name)
        notes.append(f"{kind}: cached as {out}")
    return out, notes


def background(key, fn, *args):
    """Starts fn(*args) on S.pool; step code takes it with result(key)."""
    start = time.monotonic()

    def timed():
        value = fn(*args)
        return value, time.monotonic() - start
    S.state[key] = S.pool.submit(timed)


def result(key):
    """(value, notes) of a background job: waits for it, re-raises its error."""
    (value, notes), took = S.state[key].result()
    for n in notes:
        S.note(n)
    S.note(f"(made in the background in {took:.0f} s)")
    return value


def base_tar():
    return mmdebstrap_tar("bookworm-slim", [], [f"--dpkgopt={o}" for o in SLIM_DPKG] + [
        "--customize-hook=printf '%s' '" + APT_CLEAN_CONF.replace("'", "'\\''") +
        "' > \"$1/etc/apt/apt.conf.d/docker-clean\"",
        # apt-get clean (mmdebstrap's last step) no longer knows these names.
        "--customize-hook=rm -f \"$1\"/var/cache/apt/*.bin"], os.path.join(S.work, "base.log"))


def systemd_root_tar(depends):
    # The .deb's Depends by name, so that dpkg -i in step_rootfs proves they
    # are complete; nothing else is added (no procps, no curl).
    return mmdebstrap_tar("systemd-root", ["systemd", "systemd-sysv", "dbus", *depends], [],
                          os.path.join(S.work, "rootfs.log"))


# ---- steps ----------------------------------------------------------------------------
def step_k8s_schema():
    d = os.path.join(HERE, "k8s-schema")
    for tool in ("node", "npm"):
        if not shutil.which(tool):
            raise RuntimeError(f"{tool} not installed (tests/deploy/install-deps.sh installs it)")
    log = os.path.join(S.work, "npm.log")
    start = time.monotonic()
    r = run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=d, log=log, timeout=600)
    if not S.check(r.returncode == 0, f"npm ci (package-lock.json) in {time.monotonic() - start:.0f} s",
                   tail(log)):
        return
    r = run(["node", "check.mjs", os.path.join(DEPLOY, "kubernetes")], cwd=d, timeout=300)
    out = r.stdout + r.stderr
    lines = out.splitlines()
    for line in lines:
        if line.startswith("PASS "):
            S.check(True, line[5:])
        elif line.startswith("FAIL "):
            S.check(False, line[5:], "\n".join(l for l in lines[lines.index(line) + 1:]
                                                 if l.startswith("     ")))
        elif not line.startswith("     "):
            S.note(line.removeprefix("NOTE "))
    S.check(r.returncode == 0 and "FAIL " not in out and "PASS " in out,
            f"check.mjs exit {r.returncode}", out[-3000:] if r.returncode else "")


def podman_env():
    return S.state["podman_env"]


def podman(*argv, timeout=600, log=None, check=False):
    return run(["podman", *argv], timeout=timeout, log=log, check=check, env=podman_env())


def step_base():
    tar = result("base_tar_job")
    S.check(os.path.getsize(tar) > 10_000_000, f"base tarball {tar}")
    S.state["base_tar"] = tar


def step_podman():
    need("base_tar", "base")
    if os.geteuid() != 0:
        raise Skip("podman with the stage's storage needs root (CI runs as root)")
    if not shutil.which("podman"):
        raise RuntimeError("podman not installed (tests/deploy/install-deps.sh installs it)")
    pdir = os.path.join(S.work, "podman")
    os.makedirs(pdir)
    if len(f"{pdir}/run") > 50:
        raise RuntimeError(f"podman's runroot {pdir}/run is longer than podman's limit of 50 characters")
    with open(os.path.join(pdir, "storage.conf"), "w") as f:
        f.write(f'[storage]\ndriver = "overlay"\ngraphroot = "{pdir}/graph"\nrunroot = "{pdir}/run"\n')
    # runc: crun fails on hybrid cgroup hosts; cgroupfs: no systemd to ask;
    # a file event log; nofile within what this host lets root set (podman's
    # default 1048576 fails here with setrlimit EPERM).
    with open(os.path.join(pdir, "containers.conf"), "w") as f:
        f.write('[containers]\ndefault_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]\n'
                '[engine]\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\nruntime = "runc"\n'
                f'tmp_dir = "{pdir}/tmp"\n')
    # TMPDIR: podman build's and import's temporary copies (else /var/tmp).
    os.makedirs(f"{pdir}/tmpdir")
    env = dict(os.environ, CONTAINERS_STORAGE_CONF=f"{pdir}/storage.conf",
               CONTAINERS_CONF=f"{pdir}/containers.conf", TMPDIR=f"{pdir}/tmpdir")
    S.state["podman_env"] = env
    S.state["cgroup_parent"] = f"/{S.tag}/podman"
    # What podman writes outside its storage whatever the config: its blob
    # cache in /var/lib/containers/cache, runc's state in /run/runc.
    created = [p for p in ("/var/lib/containers", "/run/runc") if not os.path.exists(p)]

    def reset():
        run(["podman", "rm", "-af", "-t", "2"], env=env, timeout=120)
        # Build containers of an interrupted podman build.
        ids = run(["podman", "ps", "-aq", "--external"], env=env, timeout=60).stdout.split()
        if ids:
            run(["podman", "rm", "-f", *ids], env=env, timeout=120)
        run(["podman", "rmi", "-af"], env=env, timeout=120)
        unmount_under(pdir)
        shutil.rmtree(pdir, ignore_errors=True)
        for p in created:
            shutil.rmtree(p, ignore_errors=True)
        remove_cgroup(S.tag + "/podman")
        remove_cgroup(S.tag + "/build")
    S.on_cleanup(reset, "podman storage")
    r = podman("import", "-q", S.state["base_tar"], "docker.io/library/debian:bookworm-slim",
               timeout=300)
    S.check(r.returncode == 0, "podman import of the base as docker.io/library/debian:bookworm-slim",
            r.stderr)
    if r.returncode != 0:
        return
    r = podman("run", "--rm", "--pull=never", "--network", "host", "--cgroup-parent",
               S.state["cgroup_parent"], "docker.io/library/debian:bookworm-slim", "true", timeout=120)
    if r.returncode != 0:
        raise Skip(f"podman cannot run a container here: {(r.stderr or r.stdout).strip()[-800:]}")
    S.check(True, "podman runs a container (runc, cgroupfs, host network)")
    S.state["podman_ok"] = True


def step_image():
    need("podman_ok", "podman")
    image = f"localhost/socket-exporter:{S.tag}"
    log = os.path.join(S.work, "build.log")
    # podman build runs each RUN step in the --cgroup-parent itself (not a
    # child of it), so it gets a cgroup of its own.
    common = ["--pull=never", "--network", "host", "--cgroup-parent", f"/{S.tag}/build",
              "--ignorefile", "deploy/docker/Dockerfile.dockerignore", "-f", "deploy/docker/Dockerfile"]
    start = time.monotonic()
    r = run(["podman", "build", *common, "-t", image, "."], cwd=ROOT, env=podman_env(), log=log,
            timeout=1800)
    if not S.check(r.returncode == 0, f"podman build -f deploy/docker/Dockerfile "
                                      f"({time.monotonic() - start:.0f} s)", tail(log)):
        return
    S.state["image"] = image
    info = json.loads(podman("image", "inspect", image, check=True).stdout)[0]
    size = info.get("Size", 0)
    S.state["image_size"] = f"{size / 1e6:.1f} MB"
    S.check(0 < size <= IMAGE_SIZE_LIMIT,
            f"runtime image {size / 1e6:.1f} MB (bound {IMAGE_SIZE_LIMIT / 1e6:.0f} MB)")
    cfg = info.get("Config", {})
    S.check(cfg.get("User") == IMAGE_USER, f"the image's USER is {cfg.get('User')} (non-root)",
            f"want {IMAGE_USER}")
    S.check(cfg.get("Entrypoint") == ["/usr/bin/socket_exporter"],
            f"ENTRYPOINT {cfg.get('Entrypoint')}")
    r = podman("run", "--rm", "--pull=never", "--network", "none", "--cgroup-parent",
               S.state["cgroup_parent"], "--entrypoint", "/usr/bin/id", image, timeout=120)
    S.check(r.returncode == 0 and r.stdout.startswith("uid=10001(socket_exporter) gid=10001"),
            f"inside, the default user is {r.stdout.strip()}", r.stderr)
    # The build stage's .deb (cached layers: no second build), for rootfs.
    build_image = f"localhost/socket-exporter-build:{S.tag}"
    r = run(["podman", "build", *common, "--target", "build", "-t", build_image, "."], cwd=ROOT,
            env=podman_env(), log=log, timeout=600)
    if not S.check(r.returncode == 0, "the build stage again from the layer cache", tail(log)):
        return
    size = json.loads(podman("image", "inspect", build_image, check=True).stdout)[0].get("Size", 0)
    S.note(f"build stage image {size / 1e6:.0f} MB")
    ctr = podman("create", "--pull=never", build_image, "/bin/true", check=True).stdout.strip()
    deb = os.path.join(S.work, "socket-exporter.deb")
    r = podman("cp", f"{ctr}:/out/socket-exporter.deb", deb)
    podman("rm", ctr)
    podman("rmi", build_image)
    if S.check(r.returncode == 0 and os.path.getsize(deb) > 10000,
               f"the build stage's .deb ({os.path.getsize(deb) // 1000 if os.path.exists(deb) else 0} kB)",
               r.stderr):
        S.state["deb"] = deb
        if selected("rootfs"):  # while the container steps run
            background("rootfs_tar_job", systemd_root_tar, deb_depends(deb))


def selected(step):
    return not S.wanted or step in S.wanted


def need(key, step):
    if not S.state.get(key):
        raise Skip(f"needs the {step} step, which did not succeed")


def run_container(name, args, extra=(), wait_http=True):
    """podman run -d of the image; returns (port, pid). Removed at cleanup."""
    port = free_port()
    argv = ["run", "-d", "--pull=never", "--name", name, "--cgroup-parent", S.state["cgroup_parent"],
            *extra, S.state["image"], "--config.file=/etc/socket_exporter/config.yml",
            f"--web.listen-address=127.0.0.1:{port}", *args]
    r = podman(*argv, timeout=120)
    S.on_cleanup(lambda: podman("rm", "-f", "-t", "2", name), f"container {name}")
    if not S.check(r.returncode == 0, f"podman run -d {' '.join(extra)} IMAGE {' '.join(args)}",
                   r.stderr):
        return None, None
    pid = int(podman("inspect", "-f", "{{.State.Pid}}", name, check=True).stdout.strip())
    if wait_http:
        ok = wait_until(lambda: http_get(port, "/-/healthy", timeout=2)[0] == 200, 30)
        logs = podman("logs", name).stderr if not ok else ""
        S.check(ok, f"{name}: /-/healthy answers 200 (the probes' path)", logs)
    return port, pid


def scrape(port, what):
    code, body = http_get(port, "/metrics")
    S.check(code == 200 and "socket_connections" in body, f"{what}: /metrics answers 200", str(code))
    return parse_exposition(body)


def stop_container(name, what):
    start = time.monotonic()
    r = podman("stop", "-t", "10", name, timeout=60)
    took = time.monotonic() - start
    code = podman("inspect", "-f", "{{.State.ExitCode}}", name).stdout.strip()
    S.check(r.returncode == 0 and took < 10 and code == "0",
            f"{what}: podman stop (SIGTERM) in {took:.1f} s, exit code {code}", r.stderr)


def step_container():
    need("image", "image")
    name = f"{S.tag}-hardened"
    # docs/deploy.md's command, with the DaemonSet's memory limit.
    port, pid = run_container(name, [], ["--network", "host", "--read-only", "--cap-drop", "ALL",
                                         "--security-opt", "no-new-privileges", "--memory", "128m"])
    if port is None:
        return
    samples = scrape(port, "hardened container")
    ok = successes(samples)
    S.check(len(ok) >= 3 and all(v == 1.0 for v in ok.values()),
            f"every collector succeeds {ok}")
    scanned = sum(v for n, _, v in samples if n == "socket_exporter_sockets_scanned")
    S.check(scanned >= 1, f"it sees the host's sockets (host network): {scanned:.0f} scanned")
    with open(f"/proc/{pid}/status") as f:
        status = proc_status(f.read())
    print("  status  " + "  ".join(f"{k}={status.get(k)}" for k in
                                  ("Uid", "CapEff", "CapBnd", "NoNewPrivs", "Seccomp", "Seccomp_filters")))
    check_status(status, "container", lambda uid: uid == 10001, [])
    with open(f"/proc/{pid}/mountinfo") as f:
        opts = root_mount_options(f.read())
    S.check(opts.split(",")[0] == "ro", f"/ is mounted read-only ({opts})")
    limit = memory_limit(pid)
    S.check(limit == 128 * 1024 * 1024, f"memory limit {limit} bytes (128 MiB)")
    stop_container(name, "hardened container")


def memory_limit(pid):
    with open(f"/proc/{pid}/cgroup") as f:
        lines = [l.strip().split(":", 2) for l in f]
    for mount, fstype, opts in cgroup_mounts():
        for _, controllers, path in lines:
            if fstype == "cgroup" and "memory" in opts.split(",") and "memory" in controllers.split(","):
                p = os.path.join(mount + path, "memory.limit_in_bytes")
            elif fstype == "cgroup2" and controllers == "":
                p = os.path.join(mount + path, "memory.max")
            else:
                continue
            if os.path.exists(p):
                with open(p) as f:
                    text = f.read().strip()
                return int(text) if text.isdigit() else None
    return None


def namespace_holder():
    """A process alone in a new network namespace (a container's, with no
    name under /var/run/netns). Returns its namespace inode."""
    holder = subprocess.Popen(["unshare", "--net", "sleep", "600"])

    def stop():
        if holder.poll() is None:
            holder.kill()
            holder.wait(10)
    S.on_cleanup(stop, "namespace holder")
    own = os.stat("/proc/self/ns/net").st_ino
    ino = wait_until(lambda: (os.stat(f"/proc/{holder.pid}/ns/net").st_ino != own and
                              os.stat(f"/proc/{holder.pid}/ns/net").st_ino), 10, 0.05)
    if not ino:
        raise RuntimeError("unshare --net did not enter a new namespace")
    return ino, stop


def step_netns():
    need("image", "image")
    row = next(r for r in OPTIONAL_COLLECTORS if r["collector"] == "netns")
    help_text = podman("run", "--rm", "--pull=never", "--network", "none", "--cgroup-parent",
                       S.state["cgroup_parent"], S.state["image"], "--help").stdout
    S.note("podman run --rm IMAGE --help done")
    if "--collector.netns" not in help_text:
        raise Skip("this build has no netns collector")
    ino, stop_holder = namespace_holder()
    caps = [c.removeprefix("CAP_") for c in row["capabilities"]]
    base = ["--network", "host", "--read-only", "--cap-drop", "ALL",
            "--security-opt", "no-new-privileges"]
    added = [a for c in caps for a in ("--cap-add", c)]
    # docs/deploy.md: --pid host --cap-add SYS_ADMIN --cap-add SYS_PTRACE --user 0
    name = f"{S.tag}-netns"
    port, pid = run_container(name, ["--collector.netns"], base + row["container"] + added)
    if port is None:
        return
    samples = scrape(port, "netns container")
    ok = successes(samples)
    S.check(ok.get("netns") == 1.0 and all(v == 1.0 for v in ok.values()),
            f"with {', '.join(caps)} and host PID every collector succeeds {ok}")
    S.check(value(samples, "socket_exporter_netns_info", inode=str(ino)) == 1.0,
            f"it reaches the namespace held only by a process (inode {ino})")
    with open(f"/proc/{pid}/status") as f:
        status = proc_status(f.read())
    check_status(status, "netns container", lambda uid: uid == 0, row["capabilities"])
    stop_container(name, "netns container")

    def once(extra):
        start = time.monotonic()
        r = podman("run", "--rm", "--pull=never", "--cgroup-parent", S.state["cgroup_parent"],
                   *base, *extra, S.state["image"], "--once", "--collector.netns",
                   "--config.file=/etc/socket_exporter/config.yml", timeout=120)
        S.note(f"podman run --rm {' '.join(extra)} ... --once: {time.monotonic() - start:.1f} s; "
               f"its log: {r.stderr.strip()[-600:]}")
        samples = parse_exposition(r.stdout)
        return (r.returncode, successes(samples).get("netns"),
                value(samples, "socket_exporter_netns_info", inode=str(ino)) is not None)
    code, ok, seen = once(row["container"])
    S.check(code == 2 and ok == 0.0 and not seen,
            "without the added capabilities it cannot (netns success 0, --once exits 2)",
            f"exit {code}, success {ok}, seen {seen}")
    # Docker gives added capabilities to root only (docs/deploy.md); podman
    # makes them ambient, so there the image's own user works too.
    code, ok, seen = once(["--pid", "host", *added])
    S.check(code == 0 and ok == 1.0 and seen,
            "podman: as the image's uid 10001 with the capabilities added it works too",
            f"exit {code}, success {ok}, seen {seen}")
    stop_holder()


def deb_depends(deb):
    r = run(["dpkg-deb", "-f", deb, DEB_DEPENDS_FIELD], check=True)
    names = []
    for item in r.stdout.replace("\n", " ").split(","):
        first = item.split("|")[0].strip()
        if first:
            names.append(re.split(r"[\s(]", first)[0])
    return sorted(set(names))


def step_rootfs():
    need("deb", "image")
    deb = S.state["deb"]
    S.note(f"the .deb's Depends: {', '.join(deb_depends(deb))}")
    tar = result("rootfs_tar_job")
    rootfs = os.path.join(S.work, "rootfs")
    os.makedirs(rootfs)
    S.on_cleanup(lambda: (unmount_under(rootfs), shutil.rmtree(rootfs, ignore_errors=True)), "rootfs")
    run(["tar", "--numeric-owner", "-xpf", tar, "-C", rootfs], check=True, timeout=300)
    shutil.copy(deb, os.path.join(rootfs, "tmp", "socket-exporter.deb"))
    r = run(["chroot", rootfs, "dpkg", "-i", "/tmp/socket-exporter.deb"], timeout=300)
    S.check(r.returncode == 0, "dpkg -i of the .deb in a minimal Debian with systemd "
                               "(its Depends are all there)", r.stdout + r.stderr)
    os.unlink(os.path.join(rootfs, "tmp", "socket-exporter.deb"))
    if r.returncode == 0:
        S.state["rootfs"] = rootfs


class Booted:
    """systemd-nspawn -b of the root: systemd as PID 1 of its own PID
    namespace, on the host's network (so /metrics is on the host's
    loopback). Runs in cgroups of its own, removed afterwards."""

    def __init__(self, rootfs):
        self.rootfs = rootfs
        self.log = os.path.join(S.work, "nspawn.log")
        self.cgroup = f"{S.tag}/nspawn"
        targets = []
        for mount, fstype, opts in cgroup_mounts():
            if fstype == "cgroup2" or "name=systemd" in opts.split(","):
                os.makedirs(os.path.join(mount, self.cgroup), exist_ok=True)
                targets.append(os.path.join(mount, self.cgroup, "cgroup.procs"))
        S.on_cleanup(lambda: remove_cgroup(S.tag + "/nspawn"), "nspawn cgroups")

        def enter_cgroups():
            for t in targets:
                with open(t, "w") as f:
                    f.write(str(os.getpid()))
        with open(self.log, "w") as out:
            self.proc = subprocess.Popen(
                ["systemd-nspawn", "-q", "-D", rootfs, "-b", "--register=no", "--keep-unit",
                 f"--machine=se-deploy-{os.getpid()}", "--console=read-only"],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                preexec_fn=enter_cgroups)
        S.on_cleanup(self.shutdown, "booted systemd")
        self.leader = None

    def find_leader(self):
        if self.proc.poll() is not None:
            raise RuntimeError(f"systemd-nspawn exited {self.proc.returncode}:\n{tail(self.log)}")
        for task in os.listdir(f"/proc/{self.proc.pid}/task"):
            try:
                with open(f"/proc/{self.proc.pid}/task/{task}/children") as f:
                    for child in f.read().split():
                        with open(f"/proc/{child}/comm") as c:
                            if c.read().strip() == "systemd":
                                return int(child)
            except OSError:
                continue
        return None

    def boot(self, timeout=120):
        self.leader = wait_until(self.find_leader, timeout)
        if not self.leader:
            raise RuntimeError(f"no systemd under systemd-nspawn:\n{tail(self.log)}")
        if not wait_until(lambda: os.path.exists(f"/proc/{self.leader}/root/run/systemd/private"),
                          timeout):
            raise RuntimeError(f"systemd did not come up:\n{tail(self.log)}")
        r = self.sh("systemctl", "is-system-running", "--wait", timeout=timeout)
        return r.stdout.strip()

    def sh(self, *argv, timeout=120):
        return run(["nsenter", "-t", str(self.leader), "-a", *argv], timeout=timeout)

    def path(self, p):
        return os.path.join(self.rootfs, p.lstrip("/"))

    def shutdown(self):
        if self.proc.poll() is None:
            if self.leader:
                self.sh("systemctl", "poweroff", "--no-block", timeout=30)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def unit_show(b, *props):
    r = b.sh("systemctl", "show", "socket_exporter.service", *[f"--property={p}" for p in props])
    return dict(line.split("=", 1) for line in r.stdout.splitlines() if "=" in line)


def set_args(b, args):
    """Rewrites ARGS in /etc/default/socket_exporter (the package's conffile)."""
    path = b.path("/etc/default/socket_exporter")
    with open(path) as f:
        text = f.read()
    text, n = re.subn(r'^ARGS=".*"$', f'ARGS="{" ".join(args)}"', text, flags=re.M)
    if n != 1:
        raise RuntimeError(f"no ARGS= line in {path}")
    with open(path, "w") as f:
        f.write(text)


def main_pid(b):
    return int(unit_show(b, "MainPID")["MainPID"])


def service_status(b):
    pid = main_pid(b)
    status = b.sh("cat", f"/proc/{pid}/status").stdout
    mountinfo = b.sh("cat", f"/proc/{pid}/mountinfo").stdout
    return pid, proc_status(status), mountinfo


def dynamic_uid(uid):
    return 61184 <= uid <= 65519  # systemd's DynamicUser= range


def step_systemd():
    need("rootfs", "rootfs")
    if not shutil.which("systemd-nspawn"):
        raise RuntimeError("systemd-nspawn not installed (tests/deploy/install-deps.sh installs it)")
    rootfs = S.state["rootfs"]
    port = free_port()
    with open(os.path.join(rootfs, "etc/default/socket_exporter")) as f:
        packaged = re.search(r'^ARGS="(.*)"$', f.read(), re.M).group(1).split()
    # The package's ARGS, on a free loopback port (the host's network).
    args = [a if not a.startswith("--web.listen-address=") else f"--web.listen-address=127.0.0.1:{port}"
            for a in packaged]
    start = time.monotonic()
    b = Booted(rootfs)
    state = b.boot()
    S.check(state in ("running", "degraded"), f"systemd booted ({state}) in "
                                              f"{time.monotonic() - start:.1f} s", tail(b.log))
    if state == "degraded":
        S.note("failed units: " + b.sh("systemctl", "--failed", "--no-legend").stdout.strip())
    set_args(b, args)
    r = b.sh("systemctl", "enable", "--now", "socket_exporter")
    S.check(r.returncode == 0, "systemctl enable --now socket_exporter", r.stderr)
    r = b.sh("systemctl", "status", "--no-pager", "socket_exporter")
    S.check(r.returncode == 0 and "active (running)" in r.stdout, "systemctl status: active (running)",
            r.stdout + r.stderr)
    if not wait_until(lambda: http_get(port, "/-/healthy", timeout=2)[0] == 200, 30):
        S.check(False, "the service answers /-/healthy",
                b.sh("journalctl", "-u", "socket_exporter", "--no-pager").stdout[-3000:])
        return
    samples = scrape(port, "the service")
    ok = successes(samples)
    S.check(len(ok) >= 3 and all(v == 1.0 for v in ok.values()), f"every collector succeeds {ok}")

    pid, status, text = service_status(b)
    S.state["service_status"] = "  ".join(f"{k}={status.get(k)}" for k in (
        "Uid", "CapEff", "CapPrm", "CapBnd", "CapAmb", "NoNewPrivs", "Seccomp", "Seccomp_filters"))
    print("  status  " + S.state["service_status"])
    check_status(status, "service", dynamic_uid, [])
    S.check(status.get("CapAmb") == "0000000000000000", f"service: CapAmb {status.get('CapAmb')}")
    opts = root_mount_options(text)
    S.check(opts.split(",")[0] == "ro", f"service: / is read-only ({opts}; ProtectSystem=strict)")
    props = unit_show(b, "User", "DynamicUser")
    S.check(props.get("DynamicUser") == "yes" and props.get("User") == "socket_exporter",
            f"DynamicUser={props.get('DynamicUser')} User={props.get('User')}")

    r = b.sh("systemd-analyze", "security", "--no-pager", "socket_exporter.service")
    m = re.search(r"Overall exposure level for socket_exporter\.service: ([0-9.]+)", r.stdout)
    score = float(m.group(1)) if m else None
    S.state["security"] = score
    S.check(score is not None and score <= SECURITY_BASELINE,
            f"systemd-analyze security: {score} (at most {SECURITY_BASELINE})", r.stdout[-2000:])

    reload_checks(b, port, pid)
    stop_check(b)
    for row in OPTIONAL_COLLECTORS:
        optional_collector(b, port, args, row)
    b.shutdown()
    S.check(b.proc.returncode == 0, f"the booted system powered off (nspawn exit {b.proc.returncode})",
            tail(b.log))


def metrics_now(port):
    code, body = http_get(port, "/metrics")
    return parse_exposition(body) if code == 200 else []


def reload_checks(b, port, pid):
    config = b.path("/etc/socket_exporter/config.yml")
    with open(config) as f:
        original = f.read()
    before = value(metrics_now(port), "socket_exporter_config_last_reload_success_timestamp_seconds")
    # A changed config: the service's own port named "deploycheck".
    changed, n = re.subn(r"^services:\n", f"services:\n  - name: deploycheck\n    ports: [{port}]\n",
                         original, count=1, flags=re.M)
    if n != 1:
        S.check(False, "the packaged config has a services: list to extend")
        return
    with open(config, "w") as f:
        f.write(changed)
    time.sleep(0.1)
    r = b.sh("systemctl", "reload", "socket_exporter")
    S.check(r.returncode == 0, "systemctl reload socket_exporter",
            r.stderr + b.sh("journalctl", "-u", "socket_exporter", "-n", "20", "--no-pager").stdout)

    def applied():
        s = metrics_now(port)
        ts = value(s, "socket_exporter_config_last_reload_success_timestamp_seconds")
        listen = value(s, "socket_connections", service_name="deploycheck", state="listen")
        return s if (ts and before and ts > before and listen and
                     value(s, "socket_exporter_config_last_reload_successful") == 1.0) else None
    s = wait_until(applied, 15)
    after = value(s or metrics_now(port), "socket_exporter_config_last_reload_success_timestamp_seconds")
    S.check(bool(s), f"the reload applied: last_reload_success_timestamp {before} -> {after}, "
                     f"socket_connections{{service_name=\"deploycheck\",state=\"listen\"}} present")
    S.check(main_pid(b) == pid, f"same process after the reload (MainPID {pid})")
    # A broken config: the old one keeps serving.
    with open(config, "w") as f:
        f.write(changed + "limits: [\n")
    r = b.sh("systemctl", "reload", "socket_exporter")
    s = wait_until(lambda: (lambda x: x if value(x, "socket_exporter_config_last_reload_successful")
                            == 0.0 else None)(metrics_now(port)), 15)
    S.check(r.returncode == 0 and bool(s) and
            value(s, "socket_exporter_config_last_reload_success_timestamp_seconds") == after and
            value(s, "socket_connections", service_name="deploycheck", state="listen"),
            "a broken config on reload: last_reload_successful 0, the previous config still serving")
    with open(config, "w") as f:
        f.write(original)
    b.sh("systemctl", "reload", "socket_exporter")
    s = wait_until(lambda: (lambda x: x if value(x, "socket_exporter_config_last_reload_successful")
                            == 1.0 else None)(metrics_now(port)), 15)
    S.check(bool(s), "the packaged config restored by another reload")


def timespan_seconds(b, text):
    r = b.sh("systemd-analyze", "timespan", text)
    m = re.search(r"μs:\s*(\d+)", r.stdout)
    return int(m.group(1)) / 1e6 if m else None


def stop_check(b):
    timeout = timespan_seconds(b, unit_show(b, "TimeoutStopUSec")["TimeoutStopUSec"])
    start = time.monotonic()
    r = b.sh("systemctl", "stop", "socket_exporter", timeout=300)
    took = time.monotonic() - start
    props = unit_show(b, "ActiveState", "Result", "ExecMainCode", "ExecMainStatus")
    S.state["stop_seconds"] = took
    S.check(r.returncode == 0 and props.get("ActiveState") == "inactive" and
            props.get("Result") == "success" and timeout and took < timeout,
            f"systemctl stop in {took:.2f} s (TimeoutStopSec {timeout} s), Result={props.get('Result')}",
            str(props) + r.stderr)
    journal = b.sh("journalctl", "-u", "socket_exporter", "--no-pager").stdout
    S.check("SIGKILL" not in journal and "timed out" not in journal,
            "the journal shows no stop timeout or SIGKILL", journal[-2000:])


def probe_netns(b):
    """A transient service with a private network namespace in the booted
    system: a namespace held only by a root process."""
    r = b.sh("systemd-run", "--unit=socket-exporter-netns-holder", "--property=PrivateNetwork=yes",
             "sleep", "600")
    if r.returncode != 0:
        raise RuntimeError(f"systemd-run: {r.stderr}")
    pid = b.sh("systemctl", "show", "--property=MainPID", "--value",
               "socket-exporter-netns-holder").stdout.strip()
    link = b.sh("readlink", f"/proc/{pid}/ns/net").stdout.strip()
    ino = re.search(r"net:\[(\d+)\]", link).group(1)
    return (f"a namespace held only by a root process (inode {ino})",
            lambda samples: value(samples, "socket_exporter_netns_info", inode=ino) == 1.0,
            lambda: b.sh("systemctl", "stop", "socket-exporter-netns-holder"))


def optional_collector(b, port, args, row):
    name = row["collector"]
    exe = b.sh("/usr/bin/socket_exporter", "--help").stdout
    if f"--collector.{name}" not in exe:
        S.note(f"NOT CHECKED {name}: not in this build (--help has no --collector.{name})")
        return
    dropin_src = os.path.join(DEPLOY, "systemd", row["dropin"])
    with open(dropin_src) as f:
        dropin_text = f.read()
    granted = {k: sorted(" ".join(re.findall(rf"^{k}=(.*)$", dropin_text, re.M)).split())
               for k in ("CapabilityBoundingSet", "AmbientCapabilities")}
    S.check(granted["CapabilityBoundingSet"] == granted["AmbientCapabilities"] == sorted(row["capabilities"]),
            f"{name}: deploy/systemd/{row['dropin']} grants {granted['AmbientCapabilities']}",
            f"want {sorted(row['capabilities'])}")
    what, seen, stop_probe = globals()[row["probe"]](b) if row.get("probe") else ("", None, None)
    set_args(b, args + [f"--collector.{name}"])
    dropin = b.path(f"/etc/systemd/system/socket_exporter.service.d/{row['dropin']}")

    def start_and_scrape(label):
        b.sh("systemctl", "daemon-reload")
        r = b.sh("systemctl", "restart", "socket_exporter")
        up = wait_until(lambda: http_get(port, "/-/healthy", timeout=2)[0] == 200, 30)
        S.check(r.returncode == 0 and up, f"{name}: the service starts {label}", r.stderr)
        return metrics_now(port) if up else []

    if row.get("fails_without"):
        samples = start_and_scrape(f"with --collector.{name}, without the drop-in")
        got = successes(samples).get(name)
        S.check(got == 0.0, f"{name}: without the drop-in its success is {got} (it needs the capabilities)")
        if seen:
            S.check(not seen(samples), f"{name}: and it does not find {what}")
    os.makedirs(os.path.dirname(dropin), exist_ok=True)
    shutil.copy(dropin_src, dropin)
    samples = start_and_scrape("with the drop-in")
    ok = successes(samples)
    S.check(ok.get(name) == 1.0 and all(v == 1.0 for v in ok.values()),
            f"{name}: with the drop-in every collector succeeds {ok}")
    if seen:
        S.check(seen(samples), f"{name}: it finds {what}")
    pid, status, text = service_status(b)
    print(f"  status  ({name}) " + "  ".join(f"{k}={status.get(k)}" for k in
                                            ("Uid", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs",
                                             "Seccomp_filters")))
    check_status(status, f"service with {row['dropin']}", dynamic_uid, row["capabilities"])
    r = b.sh("systemd-analyze", "security", "--no-pager", "socket_exporter.service")
    m = re.search(r"Overall exposure level for socket_exporter\.service: ([0-9.]+)", r.stdout)
    S.note(f"{name}: systemd-analyze security with the drop-in: {m.group(1) if m else '?'}")
    b.sh("systemctl", "stop", "socket_exporter")
    os.unlink(dropin)
    set_args(b, args)
    b.sh("systemctl", "daemon-reload")
    if stop_probe:
        stop_probe()


STEPS = [
    ("k8s-schema", step_k8s_schema),
    ("base", step_base),
    ("podman", step_podman),
    ("image", step_image),
    ("container", step_container),
    ("netns", step_netns),
    ("rootfs", step_rootfs),
    ("systemd", step_systemd),
]


def main():
    global S
    S = Stage()

    def on_signal(signum, _frame):
        raise SystemExit(128 + signum)
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, on_signal)
    wanted = os.environ.get("SOCKET_EXPORTER_DEPLOY_STEPS")
    wanted = set(wanted.split(",")) if wanted else None
    unknown = (wanted or set()) - {n for n, _ in STEPS}
    if unknown:
        print(f"deploy: unknown steps {sorted(unknown)}; steps: {', '.join(n for n, _ in STEPS)}")
        return 2
    stage_start = time.monotonic()
    S.wanted = wanted
    if selected("base"):  # while the schema check runs
        background("base_tar_job", base_tar)
    deps = os.environ.get("SOCKET_EXPORTER_DEPLOY_DEPS_SECONDS")
    if deps:  # tests/deploy/run.sh's install-deps.sh, before this script
        S.steps.append(("deps", "ok", float(deps)))
        stage_start -= float(deps)
    try:
        for name, fn in STEPS:
            if wanted and name not in wanted:
                continue
            print(f"---- deploy step {name}", flush=True)
            start = S.started = time.monotonic()
            S.step_failed = False
            try:
                fn()
                result = "FAILED" if S.step_failed else "ok"
            except Skip as e:
                S.skipped += 1
                result = "SKIPPED"
                print(f"  SKIPPED {e}", flush=True)
            except Exception as e:
                S.check(False, f"step {name} raised {type(e).__name__}",
                        f"{e}\n{traceback.format_exc()[-2000:]}")
                result = "FAILED"
            S.steps.append((name, result, time.monotonic() - start))
    finally:
        print("---- deploy cleanup", flush=True)
        start = time.monotonic()
        S.cleanup()
        unmount_under(S.work)
        shutil.rmtree(S.work, ignore_errors=True)
        S.steps.append(("cleanup", "ok", time.monotonic() - start))
        print("---- deploy steps")
        for name, result, secs in S.steps:
            print(f"{name:12} {result:8} {secs:6.1f} s")
        print(f"{'total':12} {'':8} {time.monotonic() - stage_start:6.1f} s")
        for key in ("image_size", "security", "stop_seconds", "service_status"):
            if key in S.state:
                print(f"{key}: {S.state[key]}")
    print(f"deploy: {S.passed} passed, {S.failed} failed, {S.skipped} skipped")
    if S.failed:
        return 1
    return SKIP if S.skipped else 0


if __name__ == "__main__":
    sys.exit(main())
