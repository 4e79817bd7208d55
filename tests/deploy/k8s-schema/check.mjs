// Validates deploy/kubernetes/*.yaml against the schemas of the Kubernetes
// API (npm kubernetes-models) and of the Prometheus Operator's CRDs
// (@kubernetes-models/prometheus-operator), versions pinned in
// package-lock.json. Run by tests/deploy/run.sh (stage deploy) after
// `npm ci` here:
//
//   node check.mjs DIR      DIR = deploy/kubernetes
//
// Two checkers, because neither catches everything:
// - validate(): the models' JSON schema validation (ajv). Catches wrong
//   types, bad formats and missing required fields; it accepts unknown
//   fields (the API's schemas do not forbid additional properties).
// - the TypeScript compiler (--strict): every manifest becomes an object
//   literal typed as the model's interface (IDaemonSet, IService,
//   IServiceMonitor), so an unknown or misplaced field is an excess-property
//   error at any depth; wrong types are errors too.
//
// Then negative cases, mutations of the real manifests (a misspelled field,
// a misplaced field, wrong types, a missing required field, a malformed
// duration), must each be rejected by the checker named for it, with the
// field in the message: so a checker that passes everything fails here.
//
// Prints PASS/FAIL per check and "k8s-schema: N passed, M failed"; exits 1
// on any failure.

import { readFileSync, readdirSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseAllDocuments } from "yaml";
import ts from "typescript";
import { DaemonSet } from "kubernetes-models/apps/v1/DaemonSet";
import { Service } from "kubernetes-models/v1/Service";
import { ServiceMonitor } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor";

const here = path.dirname(fileURLToPath(import.meta.url));

// apiVersion + kind -> the model class and its TypeScript interface. A
// manifest of a kind not listed here fails: add its model when adding it.
const MODELS = {
  "apps/v1 DaemonSet": {
    model: DaemonSet, module: "kubernetes-models/apps/v1/DaemonSet", type: "IDaemonSet",
  },
  "v1 Service": { model: Service, module: "kubernetes-models/v1/Service", type: "IService" },
  "monitoring.coreos.com/v1 ServiceMonitor": {
    model: ServiceMonitor,
    module: "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor",
    type: "IServiceMonitor",
  },
};
// Not a Kubernetes API object (kustomize's own file): no schema in these
// packages; tests/integration/test_deploy_manifests.py checks its resources.
const NOT_API_OBJECTS = new Set(["kustomize.config.k8s.io/v1beta1 Kustomization"]);

let passed = 0;
let failed = 0;
function check(ok, what, detail = "") {
  if (ok) {
    passed++;
    console.log(`PASS ${what}`);
  } else {
    failed++;
    console.log(`FAIL ${what}${detail ? `\n     ${detail.replace(/\n/g, "\n     ")}` : ""}`);
  }
}

const dir = path.resolve(process.argv[2] ?? path.join(here, "../../../deploy/kubernetes"));
const versions = ["kubernetes-models", "@kubernetes-models/prometheus-operator", "typescript"]
  .map((p) => `${p} ${JSON.parse(readFileSync(path.join(here, "node_modules", p, "package.json"))).version}`);
console.log(`schemas: ${versions.join(", ")}; manifests: ${dir}`);

// ---- load --------------------------------------------------------------------
const manifests = [];
for (const file of readdirSync(dir).filter((f) => /\.ya?ml$/.test(f)).sort()) {
  const docs = parseAllDocuments(readFileSync(path.join(dir, file), "utf8"));
  docs.forEach((doc, i) => {
    check(doc.errors.length === 0, `${file}: document ${i + 1} is valid YAML`,
      doc.errors.map((e) => e.message).join("\n"));
    const obj = doc.toJS();
    if (obj === null || obj === undefined) return;
    const key = `${obj.apiVersion} ${obj.kind}`;
    if (NOT_API_OBJECTS.has(key)) {
      console.log(`NOTE ${file}: ${key} is not a Kubernetes API object; no schema (not checked here)`);
      return;
    }
    check(key in MODELS, `${file}: ${key} has a schema registered in check.mjs`);
    if (key in MODELS) manifests.push({ name: `${file} (${obj.kind} ${obj.metadata?.name})`, key, obj });
  });
}
check(manifests.length >= 3, `found the DaemonSet, Service and ServiceMonitor (${manifests.length} objects)`);

// ---- the two checkers ----------------------------------------------------------
// validate(): returns the error message, or "" when valid.
function validate({ key, obj }) {
  try {
    new MODELS[key].model(structuredClone(obj)).validate();
    return "";
  } catch (e) {
    return String(e?.message ?? e) || "invalid";
  }
}

// The compiler: one program for every case (a virtual file each), so tsc
// loads the models' declarations once. Returns file name -> error text.
function typecheck(cases) {
  const options = {
    strict: true, noEmit: true, skipLibCheck: true, types: [],
    target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
  };
  const files = new Map();
  cases.forEach((c, i) => {
    const m = MODELS[c.key];
    // Under this folder, so that imports resolve to ./node_modules.
    const name = path.join(here, `__case${i}.mts`).split(path.sep).join("/");
    c.file = name;
    files.set(name, `import type { ${m.type} } from "${m.module}";\n` +
      `export const manifest: ${m.type} = ${JSON.stringify(c.obj, null, 2)};\n`);
  });
  const host = ts.createCompilerHost(options);
  const { getSourceFile, fileExists, readFile } = host;
  host.getSourceFile = (name, lang, ...rest) => files.has(name)
    ? ts.createSourceFile(name, files.get(name), lang) : getSourceFile.call(host, name, lang, ...rest);
  host.fileExists = (name) => files.has(name) || fileExists.call(host, name);
  host.readFile = (name) => files.get(name) ?? readFile.call(host, name);
  const program = ts.createProgram([...files.keys()], options, host);
  const errors = new Map([...files.keys()].map((f) => [f, []]));
  const other = [];
  for (const d of ts.getPreEmitDiagnostics(program)) {
    const text = ts.flattenDiagnosticMessageText(d.messageText, "\n");
    const where = d.file ? d.file.fileName : "";
    if (errors.has(where)) {
      // With the line's text: a type error names the type, not the field.
      const { line } = d.file.getLineAndCharacterOfPosition(d.start ?? 0);
      const source = d.file.text.split("\n")[line].trim();
      errors.get(where).push(`line ${line + 1} (${source}): ${text}`);
    } else {
      other.push(text);
    }
  }
  check(other.length === 0, "the compiler reports nothing outside the manifests (the models' types load)",
    other.join("\n"));
  return new Map([...errors].map(([f, list]) => [f, list.join("\n")]));
}

// ---- negative cases: each must be rejected by its checker, naming the field ----------
const find = (key) => manifests.find((m) => m.key === key);
const ds = "apps/v1 DaemonSet", svc = "v1 Service", sm = "monitoring.coreos.com/v1 ServiceMonitor";
function rename(obj, key, to) {
  if (!(key in obj)) throw new Error(`the manifest has no field ${key} to mutate`);
  obj[to] = obj[key];
  delete obj[key];
}
const NEGATIVE = [
  { what: "DaemonSet: misspelled hostNetwork (hostNetwrok)", key: ds, by: ["tsc"], field: "hostNetwrok",
    mutate: (o) => rename(o.spec.template.spec, "hostNetwork", "hostNetwrok") },
  { what: "DaemonSet: runAsUser on the container instead of its securityContext", key: ds, by: ["tsc"],
    field: "runAsUser", mutate: (o) => { o.spec.template.spec.containers[0].runAsUser = 10001; } },
  { what: "DaemonSet: containerPort as a string", key: ds, by: ["validate", "tsc"], field: "containerPort",
    mutate: (o) => { o.spec.template.spec.containers[0].ports[0].containerPort = "19375"; } },
  { what: "DaemonSet: hostNetwork as a string", key: ds, by: ["validate", "tsc"], field: "hostNetwork",
    mutate: (o) => { o.spec.template.spec.hostNetwork = "true"; } },
  { what: "DaemonSet: required spec.selector missing", key: ds, by: ["validate", "tsc"], field: "selector",
    mutate: (o) => { delete o.spec.selector; } },
  { what: "Service: port as a string", key: svc, by: ["validate", "tsc"], field: "port",
    mutate: (o) => { o.spec.ports[0].port = "19375"; } },
  { what: "ServiceMonitor: misspelled interval (intervall)", key: sm, by: ["tsc"], field: "intervall",
    mutate: (o) => rename(o.spec.endpoints[0], "interval", "intervall") },
  { what: "ServiceMonitor: misspelled spec.endpoints (endpoint)", key: sm, by: ["tsc"], field: "endpoint",
    mutate: (o) => rename(o.spec, "endpoints", "endpoint") },
  { what: "ServiceMonitor: interval as a number", key: sm, by: ["validate", "tsc"], field: "interval",
    mutate: (o) => { o.spec.endpoints[0].interval = 30; } },
  { what: "ServiceMonitor: interval not a duration (\"30 seconds\")", key: sm, by: ["validate"],
    field: "interval", mutate: (o) => { o.spec.endpoints[0].interval = "30 seconds"; } },
];

const negatives = [];
for (const n of NEGATIVE) {
  const base = find(n.key);
  if (!base) {
    check(false, `negative case "${n.what}": no ${n.key} manifest to mutate`);
    continue;
  }
  const obj = structuredClone(base.obj);
  try {
    n.mutate(obj);
  } catch (e) {
    check(false, `negative case "${n.what}": cannot apply it`, String(e.message));
    continue;
  }
  negatives.push({ ...n, name: n.what, obj });
}

const tscErrors = typecheck([...manifests, ...negatives]);

for (const m of manifests) {
  const err = validate(m);
  check(err === "", `${m.name}: valid against the schema (validate)`, err);
  check(tscErrors.get(m.file) === "", `${m.name}: no unknown field or wrong type (tsc --strict)`,
    tscErrors.get(m.file));
}
for (const n of negatives) {
  const results = { validate: validate(n), tsc: tscErrors.get(n.file) };
  for (const checker of ["validate", "tsc"]) {
    const err = results[checker];
    if (n.by.includes(checker)) {
      check(err !== "" && err.includes(n.field),
        `rejected by ${checker}: ${n.what}`, err ? `the message does not name ${n.field}: ${err}` : "accepted");
    } else {
      console.log(`NOTE ${checker} ${err ? "also rejects" : "accepts"}: ${n.what}`);
    }
  }
}

console.log(`k8s-schema: ${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
