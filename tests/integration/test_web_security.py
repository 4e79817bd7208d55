"""--web.config.file against the real exporter on loopback, checked with curl
and certificates made here with the openssl CLI: HTTPS with --cacert, plain
HTTP refused on the TLS port, basic auth (401 without or with wrong
credentials, 200 with right ones on /metrics, / and /-/healthy), mTLS
(RequireAndVerifyClientCert refuses no certificate and a certificate from
another CA), min_version TLS13 refuses a TLS 1.2 client, IPv4 and IPv6
loopback served at once (TLS and plain), the internal CivetWeb port refuses
direct clients (403), SIGHUP applies new users and certificates and keeps the
old ones when the file is broken (reload metric 0), a broken file at startup
exits non-zero naming file:line:column, silent clients are dropped and idle
ones do not hold scrapes up, and 100 HTTPS scrapes leave no file descriptors
or threads behind."""

import ctypes
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time

from harness import *
from harness import _cleanups
from exporter_process import ExporterProcess

args = parse_args()
install_cleanup()
res = Results()

for tool in ("openssl", "curl"):
    if not shutil.which(tool):
        skip(f"{tool} not installed (scripts/install-deps.sh installs it)")

work = tempfile.mkdtemp(prefix="se-websec-")
_cleanups.append(lambda: shutil.rmtree(work, ignore_errors=True))


def path(name):
    return os.path.join(work, name)


# ---- certificates and hashes --------------------------------------------------

def openssl(*argv):
    r = subprocess.run(["openssl", *argv], capture_output=True, text=True, cwd=work)
    if r.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(argv)} failed: {r.stderr}")


def make_ca(name):
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", f"{name}.key", "-out", f"{name}.crt", "-days", "2",
            "-subj", f"/CN=socket_exporter test {name}")


def make_cert(name, ca, subject, extensions):
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={subject}")
    with open(path(f"{name}.ext"), "w") as f:
        f.write(extensions + "\n")
    openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key",
            "-CAcreateserial", "-out", f"{name}.crt", "-days", "2", "-extfile", f"{name}.ext")


make_ca("ca")
make_ca("other-ca")
make_cert("server", "ca", "localhost", "subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost")
make_cert("server2", "other-ca", "localhost", "subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost")
make_cert("client", "ca", "prometheus", "extendedKeyUsage=clientAuth")
make_cert("stranger", "other-ca", "prometheus", "extendedKeyUsage=clientAuth")

# bcrypt through libcrypt (what the exporter verifies with; unit tests check
# it against an independent implementation). Python's crypt module is gone in
# 3.13, so call the library directly.
_libcrypt = ctypes.CDLL("libcrypt.so.1")
_libcrypt.crypt_gensalt.restype = ctypes.c_char_p
_libcrypt.crypt_gensalt.argtypes = [ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p, ctypes.c_int]
_libcrypt.crypt.restype = ctypes.c_char_p
_libcrypt.crypt.argtypes = [ctypes.c_char_p, ctypes.c_char_p]


def bcrypt(password, cost=10):
    salt = _libcrypt.crypt_gensalt(b"$2y$", cost, None, 0)
    hashed = _libcrypt.crypt(password.encode(), salt).decode()
    assert hashed.startswith("$2y$") and len(hashed) == 60, hashed
    return hashed


PROM_HASH = bcrypt("s3cret pass")
OTHER_HASH = bcrypt("other")


def write_web_config(name, text):
    with open(path(name), "w") as f:
        f.write(text)
    return path(name)


TLS_AUTH = f"""tls_server_config:
  cert_file: server.crt
  key_file: server.key
basic_auth_users:
  prometheus: '{PROM_HASH}'
"""

# ---- helpers ---------------------------------------------------------------------


def curl(url, *opts, timeout=15):
    """Returns (curl exit code, HTTP status or 0, headers text, body)."""
    headers_file = path("headers.txt")
    if os.path.exists(headers_file):
        os.unlink(headers_file)
    r = subprocess.run(["curl", "-sS", "--max-time", str(timeout), "-D", headers_file,
                        "-o", "-", "-w", "\n%{http_code}", *opts, url],
                       capture_output=True, text=True)
    body, _, code = r.stdout.rpartition("\n")
    headers = open(headers_file).read() if os.path.exists(headers_file) else ""
    return r.returncode, int(code or 0), headers, body


def have_ipv6_loopback():
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


def ports_of(exp, count):
    """Every 'listening on ADDR (port N)' as {addr: port}, once count are logged
    (the log is read on another thread)."""
    def scan():
        out = {}
        for line in list(exp.log):
            m = re.search(r"listening on (\S+) \(port (\d+)\)", line)
            if m:
                out.setdefault(m.group(1), int(m.group(2)))
        return out
    try:
        wait_for(lambda: len(scan()) >= count, timeout=5, what=f"{count} listen addresses")
    except AssertionError:
        pass
    return scan()


def internal_port(exp):
    def scan():
        for line in list(exp.log):
            m = re.search(r"internal HTTP port 127\.0\.0\.1:(\d+)", line)
            if m:
                return int(m.group(1))
        return None
    try:
        wait_for(scan, timeout=5, what="the internal port in the log")
    except AssertionError:
        pass
    return scan()


def fd_count(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def thread_count(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"^Threads:\s+(\d+)", f.read(), re.M).group(1))


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def reload_ok(exp, *curl_opts, url):
    _, status, _, body = curl(url, *curl_opts)
    if status != 200:
        return None
    return {n: v for n, _, v in parse_exposition(body)}.get(
        "socket_exporter_config_last_reload_successful")


ipv6 = have_ipv6_loopback()
if not ipv6:
    print("SKIP (part): this host has no IPv6 loopback; the [::1] checks are left out")

# ---- TLS + basic auth on 127.0.0.1 and [::1] at once -----------------------------

web = write_web_config("web.yml", TLS_AUTH)
listen = "127.0.0.1:0" + (",[::1]:0" if ipv6 else "")
exp = ExporterProcess(args.exporter, f"--web.config.file={web}", "--log.level=debug",
                      listen=listen)
ports = ports_of(exp, 2 if ipv6 else 1)
p4 = ports["127.0.0.1:0"]
base = f"https://127.0.0.1:{p4}"
ca = ["--cacert", path("ca.crt")]
good = ca + ["-u", "prometheus:s3cret pass"]

for page, marker in (("/metrics", "socket_exporter_build_info"), ("/", "href=\"/metrics\""),
                     ("/-/healthy", "Healthy")):
    code, status, _, body = curl(base + page, *good)
    res.check(code == 0 and status == 200 and marker in body,
              f"HTTPS {page} with --cacert and the right password answers 200",
              f"curl exit {code}, status {status}, body {body[:200]!r}")

code, status, headers, body = curl(base + "/metrics", *ca)
res.check(status == 401 and 'WWW-Authenticate: Basic realm="socket_exporter"' in headers
          and "socket_exporter_build_info" not in body,
          "no credentials: 401 with WWW-Authenticate: Basic realm=\"socket_exporter\"",
          f"status {status}, headers {headers!r}")
for who, opts in (("wrong password", ["-u", "prometheus:wrong"]),
                  ("unknown user", ["-u", "mallory:s3cret pass"])):
    for page in ("/metrics", "/", "/-/healthy"):
        _, status, _, body = curl(base + page, *ca, *opts)
        res.check(status == 401 and "socket_exporter" not in body,
                  f"{who}: {page} answers 401", f"status {status}")

code, status, _, body = curl(f"https://localhost:{p4}/-/healthy", *good)
res.check(status == 200, "the certificate's DNS name (localhost) verifies", f"exit {code}")

code, status, _, _ = curl(base + "/metrics", "-u", "prometheus:s3cret pass")
res.check(code == 60 and status == 0,
          "without --cacert curl refuses the certificate (it is really our TLS)",
          f"exit {code}, status {status}")

code, status, _, body = curl(f"http://127.0.0.1:{p4}/metrics", "-u", "prometheus:s3cret pass")
res.check(status == 400 and "socket_exporter_build_info" not in body and "HTTPS" in body,
          "plain HTTP to the TLS port is refused (400, no metrics)",
          f"exit {code}, status {status}, body {body[:200]!r}")

if ipv6:
    p6 = ports["[::1]:0"]
    code, status, _, body = curl(f"https://[::1]:{p6}/metrics", *good)
    res.check(status == 200 and "socket_exporter_build_info" in body,
              "HTTPS on [::1] answers 200 at the same time as 127.0.0.1", f"exit {code}")
    _, status, _, _ = curl(f"https://[::1]:{p6}/metrics", *ca)
    res.check(status == 401, "[::1] without credentials: 401", f"status {status}")

# The internal CivetWeb port must not be a way around TLS and auth.
internal = internal_port(exp)
res.check(internal is not None and internal not in ports.values(),
          "the internal port is logged at debug level and is not a public port", str(internal))
if internal:
    _, status, _, body = curl(f"http://127.0.0.1:{internal}/metrics", "-u",
                              "prometheus:s3cret pass")
    res.check(status == 403 and "socket_exporter_build_info" not in body,
              "a direct local connection to the internal port gets 403", f"status {status}")

# ---- leak guard: 100 sequential HTTPS scrapes --------------------------------------

pid = exp.proc.pid
curl(base + "/metrics", *good)  # warm up: first-use allocations, CivetWeb threads
time.sleep(0.5)
fds_before, threads_before = fd_count(pid), thread_count(pid)
failures = 0
for _ in range(100):
    _, status, _, _ = curl(base + "/metrics", *good)
    failures += status != 200
res.equal(failures, 0, "100 sequential HTTPS scrapes all answer 200")


def settled():
    return fd_count(pid) <= fds_before and thread_count(pid) <= threads_before


try:
    wait_for(settled, timeout=10, what="fds and threads to settle")
except AssertionError:
    pass
res.check(settled(), "after 100 HTTPS scrapes no file descriptor or thread is left behind",
          f"fds {fds_before} -> {fd_count(pid)}, threads {threads_before} -> {thread_count(pid)}")

# ---- slow and silent clients ---------------------------------------------------------

# A client that connects and never starts the handshake is dropped after the
# 10 s handshake timeout, and waiting for it costs no CPU (poll, no spinning).
cpu_before = cpu_seconds(pid)
silent = socket.create_connection(("127.0.0.1", p4))
silent.settimeout(20)
start = time.monotonic()
try:
    data = silent.recv(1)
except OSError:
    data = b""
waited = time.monotonic() - start
silent.close()
cpu_used = cpu_seconds(pid) - cpu_before
res.check(data == b"" and 8 <= waited <= 15,
          f"a client that never starts TLS is dropped after the handshake timeout ({waited:.1f}s)")
res.check(cpu_used < 0.5, f"waiting on it costs no CPU ({cpu_used:.2f}s of CPU in {waited:.1f}s)")

# 200 idle connections (more than the old relay's cap of 64 and than
# CivetWeb's 16 workers) do not keep a scrape waiting.
idle = [socket.create_connection(("127.0.0.1", p4)) for _ in range(200)]
time.sleep(0.3)
start = time.monotonic()
status = curl(base + "/-/healthy", *good)[1]
took = time.monotonic() - start
res.check(status == 200 and took < 2,
          f"with 200 idle connections open a scrape answers at once ({status}, {took:.2f}s)")
for s in idle:
    s.close()

# ---- SIGHUP ------------------------------------------------------------------------

metrics = base + "/metrics"
res.equal(reload_ok(exp, *good, url=metrics), 1.0, "reload metric is 1 after start")


def reload_web_config(text, settled, what):
    """Writes the web config, sends SIGHUP and waits (up to 10 s) until
    settled() holds; the checks after it say what went wrong if it never does."""
    with open(web, "w") as f:
        f.write(text)
    exp.proc.send_signal(signal.SIGHUP)
    try:
        wait_for(settled, what=what)
    except AssertionError:
        pass


reload_web_config(TLS_AUTH.replace("key_file: server.key", "key_file: server.key\n  bogus: 1"),
                  lambda: reload_ok(exp, *good, url=metrics) == 0.0, "reload failure")
res.equal(reload_ok(exp, *good, url=metrics), 0.0,
          "a broken web config on SIGHUP sets last_reload_successful to 0")
_, status, _, _ = curl(metrics, *good)
res.equal(status, 200, "after the failed reload TLS and the old password keep working")
res.check(any(re.search(r"web\.yml:4:3: unknown key \"bogus\"", line) for line in exp.log),
          "the reload error is logged with file:line:column", "".join(exp.log[-3:]))

# yaml-cpp 0.7 loops forever on a stray ',' (jbeder/yaml-cpp#1040); before
# the web config shared the config file's guarded loader, SIGHUP with this
# file grew the exporter's memory until it exited. Now: an error, the old
# config serving.
for trap, where in [(",", "1:1"), ("&anchor ,\n", "1:9")]:
    before = len(exp.log)
    reload_web_config(trap, lambda: any("invalid YAML" in l for l in exp.log[before:]), "log")
    res.check(any(f"web.yml:{where}: invalid YAML: unexpected ','" in l for l in exp.log[before:]),
              f"SIGHUP with the web config {trap!r} logs file:line:column",
              "".join(exp.log[before:][-3:]))
    res.equal(exp.proc.poll(), None, f"and the exporter is still running ({trap!r})")
    res.equal(reload_ok(exp, *good, url=metrics), 0.0,
              f"and last_reload_successful is 0, the old web config serving ({trap!r})")

# Turning TLS off needs a restart: refused, TLS keeps serving.
reload_web_config(f"basic_auth_users:\n  prometheus: '{PROM_HASH}'\n",
                  lambda: any("turning TLS off needs a restart" in l for l in exp.log), "log")
res.check(any("turning TLS off needs a restart" in l for l in exp.log),
          "removing tls_server_config on SIGHUP is refused (needs a restart)")
res.equal(curl(metrics, *good)[1], 200, "and TLS keeps serving")

# A good file with a new certificate (another CA) and new users applies to
# new connections.
other_ca = ["--cacert", path("other-ca.crt")]
new_good = other_ca + ["-u", "other:other"]
reload_web_config(f"tls_server_config:\n  cert_file: server2.crt\n  key_file: server2.key\n"
                  f"basic_auth_users:\n  other: '{OTHER_HASH}'\n",
                  lambda: reload_ok(exp, *new_good, url=metrics) == 1.0, "reload success")
res.equal(reload_ok(exp, *new_good, url=metrics), 1.0,
          "a good web config on SIGHUP applies: new certificate and user, metric back to 1")
code, _, _, _ = curl(metrics, *good)
res.equal(code, 60, "the old CA no longer verifies the rotated certificate")
_, status, _, _ = curl(metrics, *other_ca, "-u", "prometheus:s3cret pass")
res.equal(status, 401, "the removed user gets 401")
exp.stop()

# ---- mTLS ---------------------------------------------------------------------------

mtls = write_web_config("mtls.yml", """tls_server_config:
  cert_file: server.crt
  key_file: server.key
  client_auth_type: RequireAndVerifyClientCert
  client_ca_file: ca.crt
""")
exp = ExporterProcess(args.exporter, f"--web.config.file={mtls}")
url = f"https://127.0.0.1:{exp.port}/metrics"
code, status, _, body = curl(url, *ca)
res.check(code != 0 and status == 0 and "socket_exporter" not in body,
          "mTLS: a client without a certificate is refused", f"exit {code}, status {status}")
code, status, _, _ = curl(url, *ca, "--cert", path("stranger.crt"), "--key", path("stranger.key"))
res.check(code != 0 and status == 0,
          "mTLS: a client certificate from another CA is refused", f"exit {code}, status {status}")
code, status, _, body = curl(url, *ca, "--cert", path("client.crt"), "--key", path("client.key"))
res.check(status == 200 and "socket_exporter_build_info" in body,
          "mTLS: the right client certificate gets 200", f"exit {code}, status {status}")
exp.stop()

# ---- min_version TLS13 ---------------------------------------------------------------

tls13 = write_web_config("tls13.yml", """tls_server_config:
  cert_file: server.crt
  key_file: server.key
  min_version: TLS13
""")
exp = ExporterProcess(args.exporter, f"--web.config.file={tls13}")
url = f"https://127.0.0.1:{exp.port}/-/healthy"
code, status, _, _ = curl(url, *ca, "--tls-max", "1.2")
res.check(code != 0 and status == 0, "min_version TLS13 refuses a TLS 1.2-only client",
          f"exit {code}, status {status}")
code, status, _, _ = curl(url, *ca, "--tlsv1.3")
res.equal(status, 200, "min_version TLS13 serves a TLS 1.3 client")
exp.stop()

# ---- basic auth without TLS (CivetWeb serves IPv4 directly) -------------------------

auth_only = write_web_config("auth.yml", f"basic_auth_users:\n  prometheus: '{PROM_HASH}'\n")
exp = ExporterProcess(args.exporter, f"--web.config.file={auth_only}")
_, status, headers, _ = curl(exp.url("/metrics"))
res.check(status == 401 and "WWW-Authenticate: Basic" in headers,
          "plain HTTP with basic_auth_users: no credentials get 401", f"status {status}")
_, status, _, _ = curl(exp.url("/-/healthy"), "-u", "prometheus:nope")
res.equal(status, 401, "plain HTTP: wrong password gets 401")
_, status, _, body = curl(exp.url("/metrics"), "-u", "prometheus:s3cret pass")
res.check(status == 200 and "socket_exporter_build_info" in body,
          "plain HTTP: right password gets 200", f"status {status}")
exp.stop()

# ---- plain HTTP on IPv4 and IPv6 at once (repeated flag) ----------------------------

if ipv6:
    proc_args = [f"--web.listen-address=[::1]:0"]
    exp = ExporterProcess(args.exporter, *proc_args, listen="127.0.0.1:0")
    ports = ports_of(exp, 2)
    _, s4, _, _ = curl(f"http://127.0.0.1:{ports['127.0.0.1:0']}/metrics")
    _, s6, _, b6 = curl(f"http://[::1]:{ports['[::1]:0']}/metrics")
    res.check(s4 == 200 and s6 == 200 and "socket_exporter_build_info" in b6,
              "plain HTTP: 127.0.0.1 and [::1] both answer (flag given twice)", f"{s4} {s6}")
    exp.stop()
    # [::] is dual-stack: IPv4 clients reach it too.
    exp = ExporterProcess(args.exporter, listen="[::]:0")
    _, s4, _, _ = curl(f"http://127.0.0.1:{exp.port}/-/healthy")
    _, s6, _, _ = curl(f"http://[::1]:{exp.port}/-/healthy")
    res.check(s4 == 200 and s6 == 200, "[::] serves IPv4 and IPv6 clients", f"{s4} {s6}")
    exp.stop()

# ---- invalid web config at startup -----------------------------------------------------

bad = write_web_config("bad.yml", """tls_server_config:
  cert_file: server.crt
  key_file: server.key
  client_auth_type: RequireAndVerifyClientCertificate
basic_auth_users:
  prometheus: hunter2
""")
r = subprocess.run([args.exporter, "--web.listen-address=127.0.0.1:0", f"--web.config.file={bad}"],
                   capture_output=True, text=True, timeout=15)
res.check(r.returncode != 0, "an invalid web config at startup exits non-zero", f"exit {r.returncode}")
res.check(f"{bad}:4:21: client_auth_type" in r.stderr and f"{bad}:6:15: basic_auth_users" in r.stderr,
          "and names every error as file:line:column", r.stderr)

broken_key = write_web_config("broken-key.yml", "tls_server_config:\n  cert_file: server.crt\n"
                                                "  key_file: server2.key\n")
r = subprocess.run([args.exporter, "--web.listen-address=127.0.0.1:0",
                    f"--web.config.file={broken_key}"], capture_output=True, text=True, timeout=15)
res.check(r.returncode != 0 and "does not belong to cert_file" in r.stderr,
          "a key that does not match the certificate is refused at startup", r.stderr)

# --config.check validates the web config as startup would, so a deploy can
# check both files before sending SIGHUP.
for config_path, expected, what in [
        (bad, f"{bad}:4:21: client_auth_type", "a web config with errors"),
        (broken_key, "does not belong to cert_file", "a key that does not match its certificate")]:
    r = subprocess.run([args.exporter, "--config.check", f"--web.config.file={config_path}"],
                       capture_output=True, text=True, timeout=15)
    res.check(r.returncode == 1 and expected in r.stderr,
              f"--config.check refuses {what} (exit 1, says why)", f"exit {r.returncode}: {r.stderr}")
comma = write_web_config("comma.yml", ",")
for argv, what in [(["--config.check"], "--config.check"),
                   (["--web.listen-address=127.0.0.1:0"], "start-up")]:
    start = time.monotonic()
    try:
        r = subprocess.run([args.exporter, *argv, f"--web.config.file={comma}"],
                           capture_output=True, text=True, timeout=10)
        took = time.monotonic() - start
        res.check(r.returncode == 1 and f"{comma}:1:1: invalid YAML: unexpected ','" in r.stderr
                  and took < 1.0,
                  f"{what} rejects a web config of one ',' in under a second with file:line:column "
                  f"({took:.2f} s)", f"exit {r.returncode}: {r.stderr}")
    except subprocess.TimeoutExpired:
        res.check(False, f"{what} with a web config of one ',' returns (it hung for 10 s)")
good = write_web_config("good-check.yml", "tls_server_config:\n  cert_file: server.crt\n"
                                          "  key_file: server.key\n")
r = subprocess.run([args.exporter, "--config.check", f"--web.config.file={good}"],
                   capture_output=True, text=True, timeout=15)
res.check(r.returncode == 0 and f"web config {good} is valid" in r.stdout,
          "--config.check accepts a good web config and says so", f"exit {r.returncode}: {r.stdout}{r.stderr}")

res.finish()
