"""The Prometheus files under deploy/prometheus against promtool: the example
config and every rules file check clean, every unit test file passes, every
alert has a test that sees it fire, and that test fails when the alert's
expression is broken (so the tests can fail). Every metric a rule names is
one the exporter publishes. No root needed."""

import glob
import os
import shutil
import subprocess
import tempfile

from harness import *
from harness import _cleanups
import deploy_common

args = parse_args()
install_cleanup()
res = Results()

if not shutil.which("promtool"):
    skip("promtool not installed (Debian package prometheus; scripts/install-deps.sh installs it)")
try:
    import yaml
except ImportError:
    skip("python3-yaml not installed (scripts/install-deps.sh installs it)")

prom_dir = os.path.join(args.source_dir, "deploy", "prometheus")
config_path = os.path.join(prom_dir, "prometheus.yml")
rules_files = sorted(glob.glob(os.path.join(prom_dir, "rules", "*.yml")))
test_files = sorted(glob.glob(os.path.join(prom_dir, "tests", "*.yml")))
res.check(bool(rules_files), "deploy/prometheus/rules has rules files", str(rules_files))
res.check(bool(test_files), "deploy/prometheus/tests has promtool test files", str(test_files))


def promtool(*argv, cwd=None):
    r = subprocess.run(["promtool", *argv], capture_output=True, text=True, cwd=cwd, timeout=120)
    return r.returncode, r.stdout + r.stderr


# 1. The example config (and through it the rule files it loads) is valid,
#    and it loads every rules file that ships.
code, out = promtool("check", "config", config_path)
res.check(code == 0, "promtool check config deploy/prometheus/prometheus.yml", out)
with open(config_path) as f:
    config = yaml.safe_load(f)
loaded = set()
for pattern in config.get("rule_files", []):
    loaded.update(glob.glob(os.path.join(prom_dir, pattern)))
res.equal(sorted(loaded), rules_files, "prometheus.yml's rule_files load every shipped rules file")

# 2. Each rules file checks clean; alerts are well formed and unique.
alerts = {}  # name -> (file, rule)
groups = set()
for path in rules_files:
    code, out = promtool("check", "rules", path)
    res.check(code == 0, f"promtool check rules {os.path.relpath(path, args.source_dir)}", out)
    with open(path) as f:
        doc = yaml.safe_load(f)
    for group in doc["groups"]:
        res.check(group["name"] not in groups, f"group {group['name']} defined once")
        groups.add(group["name"])
        for rule in group["rules"]:
            if "alert" not in rule:
                continue
            name = rule["alert"]
            res.check(name not in alerts, f"alert {name} defined once",
                      f"also in {alerts.get(name, ('',))[0]}")
            alerts[name] = (path, rule)
            labels = rule.get("labels", {})
            notes = rule.get("annotations", {})
            res.check(labels.get("severity") in ("warning", "critical", "info"),
                      f"{name} has a severity label", str(labels))
            res.check(bool(notes.get("summary")) and bool(notes.get("description")),
                      f"{name} has summary and description annotations")
print(f"{len(rules_files)} rules file(s), {len(groups)} groups, {len(alerts)} alerts")
if len(rules_files) > 1:
    # All load through the glob, but operators should copy one file.
    print("NOTE more than one rules file: merge their groups into socket_exporter.rules.yml "
          "(and point the tests' rule_files at it)")

# 3. Every metric a rule names is published by the exporter (or belongs to a
#    collector this build does not have yet: reported, not passed).
published = deploy_common.published_metrics(args.exporter)
collectors = deploy_common.registered_collectors(args.exporter)
for name, (_, rule) in sorted(alerts.items()):
    used = deploy_common.metrics_in(rule["expr"])
    missing, unchecked = deploy_common.classify_metrics(used, published, collectors)
    res.check(not missing, f"{name}: every metric it uses is published", str(sorted(missing)))
    if unchecked:
        print(f"NOT CHECKED {name}: {sorted(unchecked)} (collector not in this build)")

# 4. The unit tests pass.
for path in test_files:
    code, out = promtool("test", "rules", os.path.basename(path), cwd=os.path.dirname(path))
    res.check(code == 0, f"promtool test rules {os.path.relpath(path, args.source_dir)}", out)

# 5. Every alert has a test case expecting it to fire.
tested = {}  # alert -> test files with a positive case
for path in test_files:
    with open(path) as f:
        doc = yaml.safe_load(f)
    for case in doc.get("tests", []):
        for check in case.get("alert_rule_test", []) or []:
            if check.get("exp_alerts"):
                tested.setdefault(check["alertname"], set()).add(path)
for name in sorted(alerts):
    res.check(name in tested, f"{name} has a test that expects it to fire")

# 6. Mutation: with an alert's expression replaced by one that never fires,
#    its tests must fail. Runs on a copy of deploy/prometheus.
workdir = tempfile.mkdtemp(prefix="se-rules-")
_cleanups.append(lambda: shutil.rmtree(workdir, ignore_errors=True))
for name, (path, _) in sorted(alerts.items()):
    if name not in tested:
        continue
    copy = os.path.join(workdir, name)
    shutil.copytree(prom_dir, copy)
    copy_rules = os.path.join(copy, os.path.relpath(path, prom_dir))
    with open(copy_rules) as f:
        doc = yaml.safe_load(f)
    for group in doc["groups"]:
        for rule in group["rules"]:
            if rule.get("alert") == name:
                rule["expr"] = "vector(1) < 0"
    with open(copy_rules, "w") as f:
        yaml.safe_dump(doc, f, sort_keys=False)
    failed = False
    for test_path in sorted(tested[name]):
        code, _ = promtool("test", "rules", os.path.basename(test_path),
                           cwd=os.path.join(copy, "tests"))
        failed = failed or code != 0
    res.check(failed, f"{name}'s tests fail when its expression never fires")

res.finish()
