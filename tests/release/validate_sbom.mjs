#!/usr/bin/env node
// Checks the SBOMs a release build wrote (scripts/build-release.sh):
//
//   node tests/release/validate_sbom.mjs DIR
//
// For each of DIR/livenessprobe.spdx.json and DIR/csi-mock-driver.spdx.json:
//   1. schema: valid against spdx-2.3.schema.json (this project's schema of
//      SPDX 2.3's required document and package fields) with ajv, pinned in
//      package-lock.json;
//   2. document: SPDXIDs unique, relationships between elements it has, the
//      document DESCRIBES the binary, whose SHA-256 is that of DIR/BINARY,
//      every Debian package STATIC_LINKed from it with a licence whose
//      identifiers are on SPDX's licence list (spdx-expression-parse, pinned);
//   3. link line: every library on the binary's link line
//      (DIR/CMakeFiles/BINARY.dir/link.txt, resolved the way the linker
//      does: -L directories, then the compiler's own search path) is listed
//      as linked by one package of the SBOM, and the libraries the project
//      is built on are under the Debian source package they come from.
// Then a self-test: altered copies of the first SBOM (a required field
// removed, a wrong version, a bad licence, a library left out, ...) must
// each be rejected, for the reason the alteration targets.
// Ends with "N passed, N failed"; exits 1 on any failure.

import { createHash } from "node:crypto";
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import Ajv from "ajv";
import parseLicence from "spdx-expression-parse";

const here = dirname(fileURLToPath(import.meta.url));
const BINARIES = ["livenessprobe", "csi-mock-driver"];
// The Debian source package each of these libraries must be listed under.
const EXPECTED_SOURCE = {
  "libgrpc_unsecure.a": "grpc",
  "libgpr.a": "grpc",
  "libupb.a": "grpc",
  "libabsl_base.a": "abseil",
  "liblua5.4.a": "lua5.4",
  "libevent_core.a": "libevent",
  "libprotobuf-c.a": "protobuf-c",
  "libseccomp.a": "libseccomp",
  "libcares.a": "c-ares",
  "libz.a": "zlib",
  "libstdc++.a": "gcc-12",
  "libm.a": "glibc",
};

let passed = 0;
let failed = 0;
function report(name, errors) {
  if (errors.length === 0) {
    passed++;
    console.log(`ok - ${name}`);
  } else {
    failed++;
    console.log(`not ok - ${name}`);
    for (const e of errors.slice(0, 12)) console.log(`    ${e}`);
  }
}

const ajv = new Ajv({ allErrors: true, strict: true, strictRequired: false }) // "then" names a property defined beside it;
const schemaCheck = ajv.compile(JSON.parse(readFileSync(join(here, "spdx-2.3.schema.json"), "utf8")));

function schemaErrors(doc) {
  if (schemaCheck(doc)) return [];
  return schemaCheck.errors.map((e) => `${e.instancePath || "/"} ${e.message}`);
}

// Which library files each package says it links: its comment reads
// "Linked from PKG:ARCH VERSION: a.a b.a; from PKG2:ARCH VERSION: c.a"
// (scripts/sbom.py).
function linkedFiles(pkg) {
  const files = [];
  for (const part of (pkg.comment || "").replace(/^Linked /, "").split("; ")) {
    const m = part.match(/^from \S+ \S+: (.+)$/);
    if (m) files.push(...m[1].split(" "));
  }
  return files;
}

function documentErrors(doc, binaryPath) {
  const errors = [];
  const ids = new Set(["SPDXRef-DOCUMENT"]);
  for (const p of doc.packages || []) {
    if (ids.has(p.SPDXID)) errors.push(`SPDXID ${p.SPDXID} used twice`);
    ids.add(p.SPDXID);
  }
  for (const r of doc.relationships || []) {
    for (const id of [r.spdxElementId, r.relatedSpdxElement]) {
      if (!ids.has(id) && id !== "NONE" && id !== "NOASSERTION")
        errors.push(`relationship ${r.spdxElementId} ${r.relationshipType} ${r.relatedSpdxElement}: no element ${id}`);
    }
  }
  const described = (doc.relationships || []).filter(
    (r) => r.spdxElementId === "SPDXRef-DOCUMENT" && r.relationshipType === "DESCRIBES");
  const main = (doc.packages || []).find((p) => described.length === 1 && p.SPDXID === described[0].relatedSpdxElement);
  if (!main) return errors.concat(["the document DESCRIBES no single package"]);
  if (main.name !== basename(binaryPath)) errors.push(`it describes ${main.name}, not ${basename(binaryPath)}`);
  const sha = createHash("sha256").update(readFileSync(binaryPath)).digest("hex");
  const listed = (main.checksums || []).find((c) => c.algorithm === "SHA256");
  if (!listed || listed.checksumValue !== sha)
    errors.push(`SHA256 ${listed ? listed.checksumValue : "(none)"} is not ${binaryPath}'s ${sha}`);
  const linked = new Set((doc.relationships || [])
    .filter((r) => r.spdxElementId === main.SPDXID && r.relationshipType === "STATIC_LINK")
    .map((r) => r.relatedSpdxElement));
  const declaredRefs = new Set((doc.hasExtractedLicensingInfos || []).map((l) => l.licenseId));
  for (const p of doc.packages || []) {
    if (p === main) continue;
    if (!linked.has(p.SPDXID)) errors.push(`${p.name}: ${main.name} does not STATIC_LINK it`);
    if (!p.licenseDeclared || p.licenseDeclared === "NOASSERTION" || p.licenseDeclared === "NONE") {
      errors.push(`${p.name}: no licence declared`);
    } else {
      try {
        parseLicence(p.licenseDeclared);
      } catch (e) {
        errors.push(`${p.name}: licence "${p.licenseDeclared}" is no SPDX expression (${e.message})`);
      }
    }
    for (const ref of (p.licenseDeclared || "").match(/LicenseRef-[A-Za-z0-9.-]+/g) || [])
      if (!declaredRefs.has(ref)) errors.push(`${p.name}: ${ref} has no extracted licensing info`);
    if (linkedFiles(p).length === 0) errors.push(`${p.name}: its comment names no linked library`);
  }
  return errors;
}

// The link line as the linker saw it: -L directories and -l names.
function linkLine(dir, binary) {
  const words = readFileSync(join(dir, "CMakeFiles", `${binary}.dir`, "link.txt"), "utf8").trim().split(/\s+/);
  const libDirs = words.filter((w) => w.startsWith("-L")).map((w) => w.slice(2));
  const names = [...new Set(words.filter((w) => w.startsWith("-l")).map((w) => `lib${w.slice(2)}.a`))];
  return { compiler: words[0], libDirs, names };
}

function resolveLibrary(line, name) {
  for (const d of line.libDirs) if (existsSync(join(d, name))) return join(d, name);
  const found = execFileSync(line.compiler, [`-print-file-name=${name}`], { encoding: "utf8" }).trim();
  return found.startsWith("/") ? found : null;
}

function linkLineErrors(doc, line) {
  const errors = [];
  const holder = new Map();
  for (const p of doc.packages || []) for (const f of linkedFiles(p)) holder.set(f, p.name);
  for (const name of line.names) {
    if (!resolveLibrary(line, name)) {
      errors.push(`${name}: ${line.compiler} cannot find it`);
    } else if (!holder.has(name)) {
      errors.push(`${name} is on the link line but in no package of the SBOM`);
    } else if (EXPECTED_SOURCE[name] && holder.get(name) !== EXPECTED_SOURCE[name]) {
      errors.push(`${name} is listed under ${holder.get(name)}, not ${EXPECTED_SOURCE[name]}`);
    }
  }
  for (const name of Object.keys(EXPECTED_SOURCE))
    if (!line.names.includes(name) && !holder.has(name)) errors.push(`${name} is neither linked nor listed`);
  return errors;
}

const dir = process.argv[2];
if (!dir) {
  console.error("usage: validate_sbom.mjs DIR");
  process.exit(2);
}
let first = null;
for (const binary of BINARIES) {
  const path = join(dir, `${binary}.spdx.json`);
  let doc;
  try {
    doc = JSON.parse(readFileSync(path, "utf8"));
  } catch (e) {
    report(`${path} parses`, [String(e.message)]);
    continue;
  }
  const line = linkLine(dir, binary);
  report(`${path}: SPDX 2.3 schema`, schemaErrors(doc));
  report(`${path}: document`, documentErrors(doc, join(dir, binary)));
  report(`${path}: all ${line.names.length} libraries of the link line listed`, linkLineErrors(doc, line));
  if (!first) first = { doc, line, binaryPath: join(dir, binary) };
}

// Self-test: each alteration must be caught, for its reason.
if (first) {
  const pkgIndex = first.doc.packages.findIndex((p) => p.name === "grpc");
  const alterations = [
    ["no downloadLocation", (d) => delete d.packages[pkgIndex].downloadLocation, schemaErrors,
      `/packages/${pkgIndex} must have required property 'downloadLocation'`],
    ["no versionInfo", (d) => delete d.packages[pkgIndex].versionInfo, schemaErrors,
      `/packages/${pkgIndex} must have required property 'versionInfo'`],
    ["SPDX 2.2", (d) => (d.spdxVersion = "SPDX-2.2"), schemaErrors, "/spdxVersion must be equal to constant"],
    ["a licence name with a space", (d) => (d.packages[pkgIndex].licenseDeclared = "Apache 2"), schemaErrors,
      `/packages/${pkgIndex}/licenseDeclared must match pattern`],
    ["files analysed without a verification code", (d) => (d.packages[pkgIndex].filesAnalyzed = true), schemaErrors,
      `/packages/${pkgIndex} must have required property 'packageVerificationCode'`],
    ["no creators", (d) => (d.creationInfo.creators = []), schemaErrors, "/creationInfo/creators must NOT have fewer than 1 items"],
    ["an unknown relationship", (d) => (d.relationships[0].relationshipType = "LINKS"), schemaErrors,
      "/relationships/0/relationshipType must be equal to one of the allowed values"],
    ["a Debian licence name SPDX does not know", (d) => (d.packages.find((p) => p.name === "lua5.4").licenseDeclared = "Expat"),
      (d) => documentErrors(d, first.binaryPath), 'lua5.4: licence "Expat" is no SPDX expression'],
    ["a checksum of another binary", (d) => (d.packages[0].checksums[0].checksumValue = "0".repeat(64)),
      (d) => documentErrors(d, first.binaryPath), "is not"],
    ["a package without its STATIC_LINK", (d) => d.relationships.splice(
      d.relationships.findIndex((r) => r.relatedSpdxElement === d.packages[pkgIndex].SPDXID), 1),
      (d) => documentErrors(d, first.binaryPath), "grpc: livenessprobe does not STATIC_LINK it"],
    ["grpc left out", (d) => d.packages.splice(pkgIndex, 1), (d) => linkLineErrors(d, first.line),
      "libgrpc_unsecure.a is on the link line but in no package of the SBOM"],
    ["lua listed under another source", (d) => {
      const lua = d.packages.find((p) => p.name === "lua5.4");
      lua.name = "lua5.3";
    }, (d) => linkLineErrors(d, first.line), "liblua5.4.a is listed under lua5.3, not lua5.4"],
  ];
  for (const [what, alter, check, expected] of alterations) {
    const copy = JSON.parse(JSON.stringify(first.doc));
    alter(copy);
    const errors = check(copy);
    const caught = errors.some((e) => e.includes(expected));
    report(`self-test: ${what} is rejected`, caught ? [] : [`expected an error with "${expected}", got: ${JSON.stringify(errors)}`]);
  }
}

console.log(`sbom: ${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
