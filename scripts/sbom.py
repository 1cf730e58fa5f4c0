#!/usr/bin/env python3
"""Writes the SPDX 2.3 JSON SBOM of one static release binary.

    sbom.py --map BINARY.map --binary BINARY --arch ARCH --version VERSION --out FILE

The linker's map (CMakeLists.txt links every static binary with
-Wl,-Map=BINARY.map) names every archive and object file the link loaded.
Each file outside the build directory belongs to a Debian package: dpkg's
records for the packages it installed (native or multiarch), or the
DEBIAN/control kept beside a package that install-deps.sh unpacked under
LP_CROSS_ROOT (libevent-dev for a cross build). The SBOM lists one SPDX
package per Debian source package (grpc, abseil, lua5.4, libevent, ...):
its source version, its licence from the binary package's copyright file,
and in its comment which archives came from which binary package, plus the
binary itself as the described package, which STATIC_LINKs each of them.

Everything is read from the build machine: run it right after the link.
SOURCE_DATE_EPOCH, when set, fixes the creation time (reproducible output).
Exits 1 naming any linked file whose package it cannot find: an SBOM that
leaves out a library is worse than none.
"""

import argparse
import datetime
import hashlib
import json
import os
import re
import subprocess
import sys

CROSS_ROOT = os.environ.get("LP_CROSS_ROOT", "/opt/livenessprobe-cross")

# Debian's short licence names (copyright-format 1.0) that differ from SPDX's.
# "LGPL-2.1" there means that version only, "LGPL-2.1+" or any later one.
DEBIAN_TO_SPDX = {
    "Expat": "MIT",
    "BSD-3-clause": "BSD-3-Clause",
    "BSD-2-clause": "BSD-2-Clause",
    "zlib": "Zlib",
    "Apache-2": "Apache-2.0",
    "LGPL-2.1": "LGPL-2.1-only",
    "LGPL-2.1+": "LGPL-2.1-or-later",
    "GPL-2": "GPL-2.0-only",
    "GPL-2+": "GPL-2.0-or-later",
    "GPL-3+": "GPL-3.0-or-later",
    "public-domain": "LicenseRef-public-domain",
}

# Source packages whose copyright files are prose, not copyright-format 1.0;
# each value is what that file states for the parts linked here.
PROSE_LICENCES = {
    # "The project in general is under the MIT License".
    "c-ares": "MIT",
    # "The GNU C Library is free software; ... GNU Lesser General Public
    # License ... version 2.1 of the License, or (at your option) any later".
    "glibc": "LGPL-2.1-or-later",
    # libgcc and libstdc++: GPLv3 or later with the GCC Runtime Library Exception.
    "gcc-12": "GPL-3.0-or-later WITH GCC-exception-3.1",
}

# Debian's cross toolchains repackage other sources; Built-Using names them.
# cross-toolchain-base is built from glibc, linux, binutils and gcc: its
# libc6-dev-*-cross, the only one of its packages a link loads, is glibc.
CROSS_ORIGIN = {"cross-toolchain-base": "glibc"}

SPDX_ID_UNSAFE = re.compile(r"[^A-Za-z0-9.-]")


def die(message):
    print(f"sbom: {message}", file=sys.stderr)
    sys.exit(1)


def loaded_files(map_path):
    """The absolute paths of the archives and objects the link loaded."""
    files = []
    with open(map_path, encoding="utf-8", errors="replace") as f:
        for line in f:
            if line.startswith("LOAD "):
                path = line[5:].strip()
                if path.startswith("/"):
                    files.append(os.path.normpath(path))
    if not files:
        die(f"{map_path} loads no file outside the build directory: not a linker map?")
    return sorted(set(files))


def dpkg_path_variants(path):
    """Spellings dpkg may have recorded for a path on a merged-/usr system."""
    variants = [path, os.path.realpath(path)]
    for p in list(variants):
        if p.startswith("/usr/"):
            variants.append(p[4:])
        else:
            variants.append("/usr" + p)
    return list(dict.fromkeys(variants))


def dpkg_owners(paths):
    """{path: 'package:arch'} for the paths dpkg says it installed. One
    dpkg-query for all of them: each call reads dpkg's whole database."""
    variants = {v: path for path in paths for v in dpkg_path_variants(path)}
    if not variants:
        return {}
    # Exits 1 when some spelling is unknown; the others are still printed.
    r = subprocess.run(["dpkg-query", "-S", *variants], capture_output=True, text=True)
    owners = {}
    for line in r.stdout.splitlines():
        names, _, owned = line.rpartition(": ")
        # "a:arch, b:arch: /dir" lists a shared directory, never a file.
        if owned in variants and "," not in names and " " not in names:
            owners.setdefault(variants[owned], names)
    return owners


def parse_control(text):
    """The fields of one Debian control paragraph (continuation lines joined)."""
    fields = {}
    key = None
    for line in text.splitlines():
        if line[:1] in (" ", "\t") and key:
            fields[key] += "\n" + line.strip()
        elif ":" in line:
            key, _, value = line.partition(":")
            fields[key] = value.strip()
    return fields


def built_using(fields):
    """[(source, version)] from a Built-Using field."""
    out = []
    for entry in fields.get("Built-Using", "").split(","):
        m = re.match(r"\s*(\S+)\s*\(\s*=\s*([^)\s]+)\s*\)", entry)
        if m:
            out.append((m.group(1), m.group(2)))
    return out


def records_for(paths):
    """{path: what the SBOM needs of the package that holds it}: a dict with
    binary (name:arch), version, source, source_version, copyright."""
    fields_of = {}  # path -> (control fields, doc directory)
    outside = [p for p in paths if not p.startswith(CROSS_ROOT + "/")]
    owners = dpkg_owners(outside)
    missing = [p for p in outside if p not in owners]
    if missing:
        die("no installed Debian package holds " + ", ".join(missing) + " (linked from outside dpkg?)")
    fmt = "Package: ${Package}\nArchitecture: ${Architecture}\nVersion: ${Version}\n" \
          "Source: ${source:Package}\nSource-Version: ${source:Version}\n" \
          "Built-Using: ${Built-Using}\n\n"
    wanted = sorted(set(owners.values()))
    r = subprocess.run(["dpkg-query", "-W", "-f", fmt, *wanted], capture_output=True, text=True)
    if r.returncode != 0:
        die(f"dpkg-query -W: {r.stderr.strip()}")
    by_owner = {}
    for paragraph in r.stdout.split("\n\n"):
        if paragraph.strip():
            fields = parse_control(paragraph)
            by_owner[f"{fields['Package']}:{fields['Architecture']}"] = fields
    for path, owner in owners.items():
        if owner not in by_owner:
            # dpkg -S names an architecture-independent package without ":all".
            owner = next((o for o in by_owner if o.split(":")[0] == owner), owner)
        fields_of[path] = (by_owner[owner], "/usr/share/doc")
    for path in paths:
        if path in fields_of:
            continue
        # CROSS_ROOT/ARCH/PACKAGE/{usr,DEBIAN} (scripts/install-deps.sh).
        parts = path[len(CROSS_ROOT) + 1 :].split("/")
        root = os.path.join(CROSS_ROOT, parts[0], parts[1])
        try:
            with open(os.path.join(root, "DEBIAN", "control"), encoding="utf-8") as f:
                fields_of[path] = (parse_control(f.read()), os.path.join(root, "usr", "share", "doc"))
        except OSError as e:
            die(f"{path}: no DEBIAN/control beside it ({e})")
    return {path: describe(*fields_of[path]) for path in paths}


def describe(fields, doc_root):
    """The SBOM's view of one binary package's control fields."""
    package = fields["Package"]
    # "Source: name (version)" when the source version differs; "" when the
    # source is named like the package.
    source = fields.get("Source") or package
    source_version = fields.get("Source-Version") or fields["Version"]
    m = re.match(r"(\S+)\s*\((\S+)\)", source)
    if m:
        source, source_version = m.group(1), m.group(2)
    origin = CROSS_ORIGIN.get(source, source[: -len("-cross")] if source.endswith("-cross") else None)
    if origin:
        versions = dict(built_using(fields))
        if origin not in versions:
            die(f"{package}: built from {source}, but Built-Using names no {origin}")
        source, source_version = origin, versions[origin]
    return {
        "binary": f"{package}:{fields['Architecture']}",
        "version": fields["Version"],
        "source": source,
        "source_version": source_version,
        "copyright": os.path.join(doc_root, package, "copyright"),
    }


def licence_of(source, copyright_path):
    """(SPDX licence expression, how it was found) for a source package."""
    try:
        with open(copyright_path, encoding="utf-8", errors="replace") as f:
            text = f.read()
    except OSError:
        text = ""
    if text.startswith("Format:") and "copyright-format" in text.split("\n", 1)[0]:
        for paragraph in re.split(r"\n\s*\n", text):
            fields = parse_control(paragraph)
            if fields.get("Files", "").split() [:1] == ["*"] and "License" in fields:
                name = fields["License"].split("\n", 1)[0].strip()
                spdx = " ".join(DEBIAN_TO_SPDX.get(w, w) for w in name.split())
                spdx = spdx.replace(" or ", " OR ").replace(" and ", " AND ")
                return spdx, f"the 'Files: *' paragraph of {copyright_path} ({name})"
    if source in PROSE_LICENCES:
        return PROSE_LICENCES[source], f"read from the prose of {copyright_path}"
    return "NOASSERTION", f"{copyright_path} states no machine-readable licence"


def sha256_of(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def distro():
    """'debian-bookworm', for package URLs."""
    try:
        with open("/etc/os-release", encoding="utf-8") as f:
            release = dict(l.rstrip("\n").split("=", 1) for l in f if "=" in l)
        return f"{release.get('ID', 'debian')}-{release.get('VERSION_CODENAME', '').strip(chr(34))}"
    except OSError:
        return "debian"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--map", required=True, help="the linker map of the binary")
    ap.add_argument("--binary", required=True, help="the static binary")
    ap.add_argument("--arch", required=True, help="its Debian architecture (amd64, arm64)")
    ap.add_argument("--version", required=True, help="the project's version")
    ap.add_argument("--out", required=True, help="where to write the SPDX JSON")
    args = ap.parse_args()

    # Group the loaded files by source package, then by binary package.
    sources = {}
    files = loaded_files(args.map)
    records = records_for(files)
    for path in files:
        rec = records[path]
        src = sources.setdefault(rec["source"], {"version": rec["source_version"], "binaries": {},
                                                 "copyright": rec["copyright"]})
        if src["version"] != rec["source_version"]:
            die(f"{rec['source']} linked at two versions: {src['version']} and {rec['source_version']}")
        src["binaries"].setdefault((rec["binary"], rec["version"]), set()).add(os.path.basename(path))

    name = os.path.basename(args.binary)
    digest = sha256_of(args.binary)
    doc_name = f"{name}-{args.version}-linux-{args.arch}"
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    when = datetime.datetime.fromtimestamp(int(epoch), datetime.timezone.utc) if epoch \
        else datetime.datetime.now(datetime.timezone.utc)
    main_id = "SPDXRef-Package-" + SPDX_ID_UNSAFE.sub("-", name)
    packages = [{
        "name": name,
        "SPDXID": main_id,
        "versionInfo": args.version,
        "packageFileName": name,
        "primaryPackagePurpose": "APPLICATION",
        "downloadLocation": "NOASSERTION",
        "filesAnalyzed": False,
        "checksums": [{"algorithm": "SHA256", "checksumValue": digest}],
        # The project has not declared a licence of its own.
        "licenseConcluded": "NOASSERTION",
        "licenseDeclared": "NOASSERTION",
        "copyrightText": "NOASSERTION",
        "comment": f"Fully static executable for linux/{args.arch}; every library below is linked into it.",
    }]
    relationships = [{"spdxElementId": "SPDXRef-DOCUMENT", "relationshipType": "DESCRIBES",
                      "relatedSpdxElement": main_id}]
    for source in sorted(sources):
        src = sources[source]
        licence, found = licence_of(source, src["copyright"])
        spdx_id = "SPDXRef-Package-deb-" + SPDX_ID_UNSAFE.sub("-", source)
        linked = "; ".join(f"from {binary} {version}: {' '.join(sorted(files))}"
                           for (binary, version), files in sorted(src["binaries"].items()))
        packages.append({
            "name": source,
            "SPDXID": spdx_id,
            "versionInfo": src["version"],
            "supplier": "Organization: Debian",
            "primaryPackagePurpose": "LIBRARY",
            "downloadLocation": "NOASSERTION",
            "filesAnalyzed": False,
            "licenseConcluded": "NOASSERTION",
            "licenseDeclared": licence,
            "copyrightText": "NOASSERTION",
            "sourceInfo": f"Debian source package {source} {src['version']}; licence from {found}",
            "externalRefs": [{
                "referenceCategory": "PACKAGE-MANAGER",
                "referenceType": "purl",
                "referenceLocator": f"pkg:deb/debian/{binary.split(':')[0]}@{version}"
                                    f"?arch={binary.split(':')[1]}&distro={distro()}",
            } for (binary, version) in sorted(src["binaries"])],
            "comment": f"Linked {linked}",
        })
        relationships.append({"spdxElementId": main_id, "relationshipType": "STATIC_LINK",
                              "relatedSpdxElement": spdx_id})
    # Only "LicenseRef-" names need their text in the document.
    refs = sorted({ref for p in packages for ref in re.findall(r"LicenseRef-[A-Za-z0-9.-]+",
                                                                p["licenseDeclared"])})
    document = {
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": doc_name,
        "documentNamespace": f"https://example.invalid/livenessprobe-c/spdx/{doc_name}-{digest[:16]}",
        "creationInfo": {
            "created": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "creators": ["Tool: livenessprobe-c scripts/sbom.py"],
            "comment": "Libraries from the linker's map of the static link, named by Debian source package.",
        },
        "packages": packages,
        "relationships": relationships,
    }
    if refs:
        document["hasExtractedLicensingInfos"] = [
            {"licenseId": ref, "extractedText": f"See the Debian copyright file named in sourceInfo ({ref}).",
             "name": ref[len("LicenseRef-"):]} for ref in refs]
    tmp = args.out + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(document, f, indent=2)
        f.write("\n")
    os.replace(tmp, args.out)
    print(f"sbom: {args.out}: {len(packages) - 1} Debian source packages linked into {name}")


if __name__ == "__main__":
    main()
