"""The Debian package, built and installed for real: `cpack -G DEB` in the
build tree that made --exporter (or $SOCKET_EXPORTER_BUILD_DIR), then

- dpkg-deb -I: name, version, architecture, and Depends naming the package
  of every shared library the binary needs (found with dpkg -S on its
  DT_NEEDED libraries: the real thing, not a list kept by hand), no -dev
  package; conffiles for the config and the environment file;
- dpkg-deb -c: the binary in /usr/bin, the config in /etc/socket_exporter/,
  the unit in /lib/systemd/system, the environment file in /etc/default;
- dpkg -i; the installed binary's --version and --once (collectors succeed,
  promtool check metrics clean), --config.check on the installed config,
  systemd-analyze verify on the installed unit; every program the unit runs
  (ExecStart, ExecReload) shipped by the package, an Essential package or
  one in Depends;
- dpkg -r removes the binary and keeps the conffiles, dpkg --purge removes
  them.

Needs root (dpkg -i). Skips if a socket-exporter package is already
installed, rather than replace it. The package is purged at the end, also on
failure."""

import glob
import os
import re
import shutil
import subprocess
import tempfile

from harness import *
from harness import _cleanups

args = parse_args()
install_cleanup()
res = Results()

PACKAGE = "socket-exporter"

if os.geteuid() != 0:
    skip("needs root to install the package with dpkg -i (CI runs as root)")
for tool in ("cpack", "dpkg-deb", "dpkg-shlibdeps", "file"):
    if not shutil.which(tool):
        skip(f"{tool} not installed (scripts/install-deps.sh installs it)")
r = subprocess.run(["dpkg-query", "-W", "-f=${Status}", PACKAGE], capture_output=True, text=True)
if "installed" in r.stdout and "not-installed" not in r.stdout:
    skip(f"package {PACKAGE} is already installed here; not replacing it")


def find_build_dir():
    explicit = os.environ.get("SOCKET_EXPORTER_BUILD_DIR")
    if explicit:
        return explicit
    d = os.path.dirname(os.path.abspath(args.exporter))
    while d != "/":
        if os.path.exists(os.path.join(d, "CMakeCache.txt")):
            return d
        d = os.path.dirname(d)
    return None


build_dir = find_build_dir()
if build_dir is None:
    skip("no CMake build tree above --exporter; set SOCKET_EXPORTER_BUILD_DIR")
if not os.path.exists(os.path.join(build_dir, "CPackConfig.cmake")):
    # Configured before the packaging rules existed: configure again.
    subprocess.run(["cmake", build_dir], check=True, capture_output=True)

workdir = tempfile.mkdtemp(prefix="se-deb-")
_cleanups.append(lambda: shutil.rmtree(workdir, ignore_errors=True))


def run(argv, **kw):
    kw.setdefault("capture_output", True)
    kw.setdefault("text", True)
    return subprocess.run(argv, **kw)


# ---- build ------------------------------------------------------------------
# cpack's preinstall step builds what is out of date (nothing, after the
# normal build), then installs into its own staging tree under workdir.
r = run(["cpack", "-G", "DEB", "-B", workdir], cwd=build_dir, timeout=600)
debs = [f for f in os.listdir(workdir) if f.endswith(".deb")]
res.check(r.returncode == 0 and len(debs) == 1, "cpack -G DEB makes one .deb",
          (r.stdout + r.stderr)[-3000:])
if len(debs) != 1:
    res.finish()
deb = os.path.join(workdir, debs[0])
print(f"package: {debs[0]} ({os.path.getsize(deb) // 1024} KiB)")

# ---- control ------------------------------------------------------------------
info = run(["dpkg-deb", "-f", deb]).stdout
fields = {}
for line in info.splitlines():
    if line and not line[0].isspace() and ":" in line:
        key, _, value = line.partition(":")
        fields[key] = value.strip()
version = run([args.exporter, "--version"]).stdout
arch = run(["dpkg", "--print-architecture"]).stdout.strip()
res.equal(fields.get("Package"), PACKAGE, "Package: socket-exporter")
res.check(fields.get("Version", "?") in version, f"Version {fields.get('Version')} is the binary's",
          version)
res.equal(fields.get("Architecture"), arch, f"Architecture: {arch}")
res.check(bool(fields.get("Maintainer")) and bool(fields.get("Description")),
          "Maintainer and Description are set")
depends = {re.split(r"[\s(]", d.strip())[0] for d in fields.get("Depends", "").split(",") if d.strip()}
print(f"Depends: {fields.get('Depends')}")

# The package of every library the binary needs must be a dependency.
unpacked = os.path.join(workdir, "root")
run(["dpkg-deb", "-x", deb, unpacked], check=True)
needed = re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]",
                    run(["readelf", "-d", os.path.join(unpacked, "usr/bin/socket_exporter")]).stdout)
res.check(len(needed) >= 3, f"the binary needs {len(needed)} shared libraries", str(needed))
lib_packages = {}


def declared_dependencies(pkg, soname):
    """Package names pkg's own shlibs or symbols file says a binary linked
    against soname should depend on (what dpkg-shlibdeps reads)."""
    names = set()
    m = re.fullmatch(r"(.+)\.so\.(.+)", soname)
    for suffix in ("shlibs", "symbols"):
        for path in glob.glob(f"/var/lib/dpkg/info/{pkg}.{suffix}") + \
                glob.glob(f"/var/lib/dpkg/info/{pkg}:*.{suffix}"):
            with open(path) as f:
                for line in f:
                    if not line.strip() or line[0] in " \t|*#":
                        continue
                    fields = line.split(None, 2)
                    if suffix == "symbols" and fields[0] == soname and len(fields) > 1:
                        names.add(fields[1])
                    elif suffix == "shlibs" and m and fields[:2] == [m.group(1), m.group(2)] \
                            and len(fields) > 2:
                        names |= {re.split(r"[\s(]", d.strip())[0]
                                  for d in re.split(r"[,|]", fields[2]) if d.strip()}
    return names


resolved = run(["ldconfig", "-p"]).stdout
for lib in needed:
    m = re.search(rf"^\s*{re.escape(lib)} \(libc6,x86-64[^)]*\) => (\S+)", resolved, re.M) or \
        re.search(rf"^\s*{re.escape(lib)} \([^)]*\) => (\S+)", resolved, re.M)
    if not m:
        res.check(False, f"{lib} resolves on this system")
        continue
    # Merged /usr: dpkg knows a file under the spelling its package ships,
    # /lib/... or /usr/lib/..., symlink name or real file: try each.
    candidates = []
    for path in (m.group(1), os.path.realpath(m.group(1))):
        plain = path[len("/usr"):] if path.startswith("/usr/") else path
        candidates += [plain, "/usr" + plain]
    pkg = ""
    for path in candidates:
        owner = run(["dpkg", "-S", path])
        if owner.returncode == 0:
            pkg = owner.stdout.split(":")[0].strip()
            break
    lib_packages[lib] = pkg
    # The owner, or the name its shlibs/symbols file declares for this
    # library (libspdlog1.10 declares the virtual libspdlog1.10-fmt9).
    acceptable = {pkg} | declared_dependencies(pkg, lib)
    res.check(bool(acceptable & depends), f"Depends names {' or '.join(sorted(acceptable))} (for {lib})",
              str(sorted(depends)))
res.check(not any(d.endswith("-dev") for d in depends), "no -dev package in Depends",
          str(sorted(depends)))

control_dir = os.path.join(workdir, "control")
run(["dpkg-deb", "-e", deb, control_dir], check=True)
with open(os.path.join(control_dir, "conffiles")) as f:
    conffiles = set(f.read().split())
res.equal(conffiles, {"/etc/socket_exporter/config.yml", "/etc/default/socket_exporter"},
          "conffiles: the config and the environment file")
for script in ("postinst", "prerm", "postrm"):
    path = os.path.join(control_dir, script)
    res.check(os.path.exists(path) and os.access(path, os.X_OK), f"maintainer script {script}")

# ---- contents ---------------------------------------------------------------------
listing = {}
for line in run(["dpkg-deb", "-c", deb]).stdout.splitlines():
    f = line.split()
    listing[f[-1].lstrip(".")] = (f[0], f[1])
expect = {
    "/usr/bin/socket_exporter": "-rwxr-xr-x",
    "/etc/socket_exporter/config.yml": "-rw-r--r--",
    "/etc/default/socket_exporter": "-rw-r--r--",
    "/lib/systemd/system/socket_exporter.service": "-rw-r--r--",
    "/usr/share/doc/socket-exporter/examples/netns.conf": "-rw-r--r--",
}
for path, mode in expect.items():
    got = listing.get(path)
    res.equal(got, (mode, "root/root"), f"package has {path} ({mode}, root/root)")

# ---- install and run ----------------------------------------------------------------


def purge():
    run(["dpkg", "--purge", PACKAGE])


_cleanups.append(purge)
r = run(["dpkg", "-i", deb], timeout=120)
res.check(r.returncode == 0, "dpkg -i installs it (dependencies satisfied)", r.stdout + r.stderr)

r = run(["/usr/bin/socket_exporter", "--version"])
res.check(r.returncode == 0 and fields.get("Version", "?") in r.stdout,
          "installed /usr/bin/socket_exporter --version", r.stdout + r.stderr)
r = run(["/usr/bin/socket_exporter", "--once"])
res.check(r.returncode == 0 and "socket_connections{" in r.stdout,
          "installed binary --once succeeds and counts sockets", r.stderr[-1000:])
successes = {l["collector"]: v for n, l, v in parse_exposition(r.stdout)
             if n == "socket_exporter_collector_success"}
res.check(successes and all(v == 1.0 for v in successes.values()),
          f"every default collector succeeds {successes}")
if shutil.which("promtool"):
    lint = run(["promtool", "check", "metrics"], input=r.stdout)
    res.check(lint.returncode == 0, "promtool check metrics is clean on its output",
              lint.stdout + lint.stderr)
r = run(["/usr/bin/socket_exporter", "--config.check",
         "--config.file=/etc/socket_exporter/config.yml"])
res.check(r.returncode == 0, "--config.check accepts the installed /etc/socket_exporter/config.yml",
          r.stdout + r.stderr)
with open("/etc/socket_exporter/config.yml") as f, \
        open(os.path.join(args.source_dir, "config", "default.yaml")) as g:
    res.check(f.read() == g.read(), "the installed config is config/default.yaml")
if shutil.which("systemd-analyze"):
    r = run(["systemd-analyze", "verify", "/lib/systemd/system/socket_exporter.service"])
    res.check(r.returncode == 0 and not r.stderr.strip(),
              "systemd-analyze verify is clean on the installed unit", r.stdout + r.stderr)



def owner_of(path):
    """The package that ships path, under either spelling of merged /usr."""
    candidates = []
    for p in (path, os.path.realpath(path)):
        plain = p[len("/usr"):] if p.startswith("/usr/") else p
        candidates += [plain, "/usr" + plain]
    for c in candidates:
        r = run(["dpkg", "-S", c])
        if r.returncode == 0:
            return r.stdout.split(":")[0].strip()
    return ""


# Every program the installed unit runs (ExecStart, ExecReload, ...) comes
# from this package, an Essential package or one in Depends: a minimal
# Debian (a container image) has nothing else. ExecReload's /bin/kill is
# procps', which is not Essential: `systemctl reload` failed with 203/EXEC
# under a real systemd until procps was in Depends (tests/deploy/).
with open("/lib/systemd/system/socket_exporter.service") as f:
    unit_text = re.sub(r"\\\n", " ", f.read())
programs = set()
for line in unit_text.splitlines():
    m = re.match(r"\s*Exec[A-Za-z]*=\s*(\S+)", line)
    if m:
        programs.add(m.group(1).lstrip("-@:+!|"))
res.check("/usr/bin/socket_exporter" in programs and len(programs) >= 2,
          f"the installed unit runs {sorted(programs)}")
for prog in sorted(programs):
    pkg = owner_of(prog)
    essential = bool(pkg) and run(["dpkg-query", "-W", "-f=${Essential}", pkg]).stdout.strip() == "yes"
    res.check(pkg == PACKAGE or essential or pkg in depends,
              f"the unit's {prog} is shipped by {pkg or '?'}: this package, an Essential one or one in "
              "Depends", f"Depends: {sorted(depends)}")

# ---- remove, purge ------------------------------------------------------------------
r = run(["dpkg", "-r", PACKAGE])
res.check(r.returncode == 0 and not os.path.exists("/usr/bin/socket_exporter")
          and not os.path.exists("/lib/systemd/system/socket_exporter.service"),
          "dpkg -r removes the binary and the unit", r.stdout + r.stderr)
res.check(os.path.exists("/etc/socket_exporter/config.yml"), "dpkg -r keeps the conffiles")
r = run(["dpkg", "--purge", PACKAGE])
res.check(r.returncode == 0 and not os.path.exists("/etc/socket_exporter/config.yml")
          and not os.path.exists("/etc/default/socket_exporter"),
          "dpkg --purge removes the conffiles", r.stdout + r.stderr)
res.finish()
