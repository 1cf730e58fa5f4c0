#!/usr/bin/env node
// Offline validation of the example Kubernetes manifests (CTest
// "manifests/validate"). Every YAML document of examples/kubernetes/*.yaml
// is checked twice against the Kubernetes API schemas shipped by the npm
// package kubernetes-models (no cluster, no network):
//
//   1. types: the model class's validate() (wrong types, missing required
//      fields, bad enum values, int-or-string, quantities...);
//   2. unknown fields: the schemas compiled into kubernetes-models do not
//      forbid extra properties, so a misspelt field (httpGett) passes
//      validate(). We run the same compiled validator over a copy of the
//      document in which every object records which of its keys the
//      validator read. The validator reads each property its schema
//      declares (and every key of a map such as labels or data), so a key
//      it never read is unknown to the schema and is reported.
//
// Then a self-test: every fixture in tests/manifests/bad/ must be rejected,
// with exactly the errors its "# expect:" lines name (kind and path), so a
// fixture cannot pass by failing for an unrelated reason.
//
// Usage: node tests/manifests/validate.mjs            (examples + self-test)
//        node tests/manifests/validate.mjs FILE...     (just these files)
// Ends with "N passed, N failed"; exits 1 on any failure.

import { readFileSync, readdirSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseAllDocuments } from "yaml";

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, "../..");

// apiVersion "v1" → kubernetes-models/v1, "apps/v1" → kubernetes-models/apps/v1.
const modules = new Map();
async function modelClass(apiVersion, kind) {
  if (typeof apiVersion !== "string" || !/^([a-z0-9.-]+\/)?v[0-9a-z]+$/.test(apiVersion)) {
    throw new Error(`apiVersion ${JSON.stringify(apiVersion)} is not a Kubernetes API version`);
  }
  if (!modules.has(apiVersion)) {
    let mod = null;
    try {
      mod = await import(`kubernetes-models/${apiVersion}`);
    } catch {
      mod = null;
    }
    modules.set(apiVersion, mod);
  }
  const mod = modules.get(apiVersion);
  if (!mod) throw new Error(`unknown apiVersion ${apiVersion}`);
  const cls = typeof kind === "string" ? mod[kind] : undefined;
  if (typeof cls !== "function" || cls.kind !== kind) {
    throw new Error(`unknown kind ${JSON.stringify(kind)} in ${apiVersion}`);
  }
  return cls;
}

// A copy of value where each object and array is a Proxy noting, per node,
// the keys the validator read. nodes collects [path, plain object, read keys].
function tracked(value, path, nodes) {
  if (Array.isArray(value)) {
    return value.map((v, i) => tracked(v, `${path}/${i}`, nodes));
  }
  if (value === null || typeof value !== "object") return value;
  const target = {};
  for (const [k, v] of Object.entries(value)) target[k] = tracked(v, `${path}/${escape(k)}`, nodes);
  const read = new Set();
  nodes.push([path, value, read]);
  return new Proxy(target, {
    get(t, key, receiver) {
      if (typeof key === "string") read.add(key);
      return Reflect.get(t, key, receiver);
    },
    has(t, key) {
      if (typeof key === "string") read.add(key);
      return Reflect.has(t, key);
    },
    getOwnPropertyDescriptor(t, key) {
      if (typeof key === "string") read.add(key);
      return Reflect.getOwnPropertyDescriptor(t, key);
    },
  });
}

// JSON Pointer escaping, as ajv writes instancePath.
function escape(key) {
  return key.replace(/~/g, "~0").replace(/\//g, "~1");
}

// Errors of one parsed document: [{kind: "type"|"unknown"|"schema", path, message}].
async function checkDocument(doc) {
  const errors = [];
  if (doc === null || typeof doc !== "object" || Array.isArray(doc)) {
    return [{ kind: "schema", path: "", message: "document is not a mapping" }];
  }
  let cls;
  try {
    cls = await modelClass(doc.apiVersion, doc.kind);
  } catch (e) {
    return [{ kind: "schema", path: "", message: e.message }];
  }
  // 1. The model's own validation.
  try {
    new cls(doc).validate();
  } catch (e) {
    for (const err of e.errors || [{ instancePath: "", message: e.message }]) {
      errors.push({ kind: "type", path: err.instancePath, message: `${err.instancePath || "/"} ${err.message}` });
    }
  }
  // 2. The same validator over the recording copy: unread keys are unknown.
  const nodes = [];
  const copy = tracked(doc, "", nodes);
  try {
    cls.prototype.validate.call(copy);
  } catch {
    // already reported by step 1
  }
  const unknown = [];
  for (const [path, obj, read] of nodes) {
    for (const key of Object.keys(obj)) {
      if (!read.has(key)) unknown.push({ path: `${path}/${escape(key)}`, parent: path || "/", key });
    }
  }
  // Report the outermost unknown field only, not what lies beneath it.
  for (const u of unknown) {
    if (unknown.some((o) => u.path.startsWith(`${o.path}/`))) continue;
    errors.push({ kind: "unknown", path: u.path, message: `${u.parent}: unknown field "${u.key}"` });
  }
  return errors;
}

// Errors of one file, each with its document's index and name.
async function checkFile(file) {
  const text = readFileSync(file, "utf8");
  // Kubernetes reads manifests as YAML 1.1 (yes/no/on/off are booleans).
  const docs = parseAllDocuments(text, { version: "1.1", uniqueKeys: true });
  const out = [];
  let n = 0;
  for (const [i, d] of docs.entries()) {
    if (d.errors.length) {
      for (const e of d.errors) out.push({ doc: i, name: "", kind: "yaml", path: "", message: e.message });
      continue;
    }
    const doc = d.toJS({ maxAliasCount: 100 });
    if (doc === null || doc === undefined) continue; // empty document
    n++;
    const name = `${doc.kind ?? "?"}/${doc.metadata?.name ?? "?"}`;
    for (const e of await checkDocument(doc)) out.push({ doc: i, name, ...e });
  }
  if (n === 0) out.push({ doc: 0, name: "", kind: "yaml", path: "", message: "no YAML document" });
  return { errors: out, documents: n };
}

// Expected errors of a bad fixture: lines "# expect: KIND PATH".
function expectations(file) {
  const exp = [];
  for (const line of readFileSync(file, "utf8").split("\n")) {
    const m = line.match(/^#\s*expect:\s*(\S+)\s+(\S+)\s*$/);
    if (m) exp.push(`${m[1]} ${m[2]}`);
  }
  return exp;
}

let passed = 0;
let failed = 0;
function report(ok, what, details = []) {
  if (ok) passed++;
  else failed++;
  console.log(`${ok ? "PASS" : "FAIL"}  ${what}`);
  for (const d of details) console.log(`      ${d}`);
}

const rel = (f) => relative(root, f) || f;
const listYaml = (dir) =>
  readdirSync(dir)
    .filter((f) => /\.ya?ml$/.test(f))
    .sort()
    .map((f) => join(dir, f));

const args = process.argv.slice(2);
const good = args.length ? args.map((f) => resolve(f)) : listYaml(join(root, "examples/kubernetes"));
if (good.length === 0) report(false, "no manifests found in examples/kubernetes");

for (const file of good) {
  const { errors, documents } = await checkFile(file);
  report(
    errors.length === 0,
    `${rel(file)} (${documents} document${documents === 1 ? "" : "s"})`,
    errors.map((e) => `document ${e.doc} ${e.name}: [${e.kind}] ${e.message}`),
  );
}

if (args.length === 0) {
  const bad = listYaml(join(here, "bad"));
  if (bad.length === 0) report(false, "self-test: no fixtures in tests/manifests/bad");
  for (const file of bad) {
    const want = expectations(file);
    const { errors } = await checkFile(file);
    const got = [...new Set(errors.map((e) => `${e.kind} ${e.path}`))].sort();
    const details = [];
    if (want.length === 0) details.push('fixture has no "# expect: KIND PATH" line');
    for (const w of want) if (!got.includes(w)) details.push(`not reported: ${w}`);
    for (const g of got) if (!want.includes(g)) details.push(`unexpected: ${g}`);
    report(
      want.length > 0 && details.length === 0,
      `self-test: ${rel(file)} rejected (${want.join(", ") || "nothing expected"})`,
      details.length ? [...details, ...errors.map((e) => `got [${e.kind}] ${e.message}`)] : [],
    );
  }
}

console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
