"""deploy/prometheus/rules/socket_exporter.rules.yml (listener group) against promtool: it checks
clean, its unit tests (deploy/prometheus/tests/listeners_test.yml) pass, they
fail when an alert's expression is broken (so they can fail), and every
metric the rules use is one the exporter publishes. No root needed."""

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

if not shutil.which("promtool"):
    skip("promtool not installed (Debian package prometheus; scripts/install-deps.sh installs it)")

prom_dir = os.path.join(args.source_dir, "deploy", "prometheus")
rules_path = os.path.join(prom_dir, "rules", "socket_exporter.rules.yml")
test_path = os.path.join(prom_dir, "tests", "listeners_test.yml")


def promtool(*argv, cwd=None):
    r = subprocess.run(["promtool", *argv], capture_output=True, text=True, cwd=cwd, timeout=120)
    return r.returncode, r.stdout + r.stderr


code, out = promtool("check", "rules", rules_path)
res.check(code == 0, "promtool check rules socket_exporter.rules.yml", out)

code, out = promtool("test", "rules", os.path.basename(test_path), cwd=os.path.dirname(test_path))
res.check(code == 0, "promtool test rules listeners_test.yml", out)

# The rules as text: alert name -> expression (single line or block scalar).
with open(rules_path) as f:
    text = f.read()
exprs = {}
for m in re.finditer(r"- alert: (\w+)\n\s+expr: (\|\n)?\s*(.+)\n", text):
    if m.group(1).startswith(("SocketListen", "SocketSynCookies")):
        exprs[m.group(1)] = m.group(3).strip()
res.equal(sorted(exprs), ["SocketListenOverflows", "SocketListenQueueFilling", "SocketSynCookiesSent"],
          "the three listeners alerts")

# Mutation: an expression that never fires must make the tests fail.
workdir = tempfile.mkdtemp(prefix="se-rules-listeners-")
_cleanups.append(lambda: shutil.rmtree(workdir, ignore_errors=True))
for name, expr in sorted(exprs.items()):
    copy = os.path.join(workdir, name)
    shutil.copytree(prom_dir, copy)
    copy_rules = os.path.join(copy, "rules", "socket_exporter.rules.yml")
    with open(copy_rules) as f:
        mutated = f.read().replace(expr, "vector(1) < 0", 1)
    with open(copy_rules, "w") as f:
        f.write(mutated)
    code, _ = promtool("test", "rules", "listeners_test.yml", cwd=os.path.join(copy, "tests"))
    res.check(code != 0, f"{name}: the tests fail when its expression never fires")

# Every metric the rules name is published by the exporter under that name.
r = subprocess.run([args.exporter, "--once"], capture_output=True, text=True, timeout=60)
res.check(r.returncode == 0, "exporter --once runs", r.stderr)
published = set(re.findall(r"^# TYPE (\S+) ", r.stdout, re.M))
used = set()
for expr in exprs.values():
    used.update(re.findall(r"\b(socket_[a-z_]+)\b", expr))
res.check(used and used <= published, "every metric the rules use is published",
          f"missing: {sorted(used - published)}")

res.finish()
