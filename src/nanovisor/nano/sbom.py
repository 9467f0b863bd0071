"""What went into a nano image, for whoever has to patch it: an SPDX 2.3 JSON document (package names,
versions, source packages, .deb checksums, purls) and dpkg-style status.d records (what distroless writes,
and what image scanners read). Deterministic: the same packages give the same bytes."""

from __future__ import annotations

import hashlib
import json
from urllib.parse import quote

from nanovisor.images.store import rfc3339
from nanovisor.nano.debcache import Deb

SBOM_PATH = "usr/share/nano/sbom.spdx.json"
STATUS_DIR = "var/lib/dpkg/status.d"
# control fields a status record keeps (no Description: long, and not what a scanner matches on)
STATUS_FIELDS = ("Package", "Source", "Version", "Architecture", "Maintainer", "Installed-Size", "Depends",
                 "Pre-Depends", "Provides", "Homepage")


def _spdx_id(name: str) -> str:
    return "SPDXRef-Package-deb-" + "".join(c if c.isalnum() or c in ".-" else "-" for c in name)


def purl(deb: Deb) -> str:
    return f"pkg:deb/debian/{deb.name}@{quote(deb.version, safe='')}?arch={deb.arch}&distro=debian-12"


def spdx(debs: list[Deb], requested: list[str], name: str, created: int) -> dict:
    ordered = sorted(debs, key=lambda d: d.name)
    digest = hashlib.sha256("\n".join(f"{d.name} {d.version} {d.arch}" for d in ordered).encode()).hexdigest()
    packages = []
    for d in ordered:
        src, src_version = d.source
        packages.append({
            "SPDXID": _spdx_id(d.name), "name": d.name, "versionInfo": d.version,
            "supplier": f"Organization: {d.control.get('Maintainer', 'Debian')}",
            "sourceInfo": f"built from Debian source package {src} {src_version}",
            "downloadLocation": "NOASSERTION", "filesAnalyzed": False,
            "licenseConcluded": "NOASSERTION", "licenseDeclared": "NOASSERTION", "copyrightText": "NOASSERTION",
            "checksums": [{"algorithm": "SHA256", "checksumValue": d.sha256()}],
            "externalRefs": [{"referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl",
                              "referenceLocator": purl(d)}],
        })
    present = {d.name for d in debs}
    return {
        "spdxVersion": "SPDX-2.3", "dataLicense": "CC0-1.0", "SPDXID": "SPDXRef-DOCUMENT", "name": name,
        "documentNamespace": f"urn:nanovisor:nano:{digest}",
        "creationInfo": {"created": rfc3339(created), "creators": ["Tool: nanovisor-nano-build"]},
        "packages": packages,
        "relationships": [{"spdxElementId": "SPDXRef-DOCUMENT", "relationshipType": "DESCRIBES",
                           "relatedSpdxElement": _spdx_id(r)} for r in requested if r in present],
    }


def dumps(doc: dict) -> str:
    return json.dumps(doc, sort_keys=True, separators=(",", ":"))


def status_record(deb: Deb) -> str:
    lines = [f"{k}: {deb.control[k]}" for k in STATUS_FIELDS if deb.control.get(k)]
    lines.insert(1, "Status: install ok installed")
    return "\n".join(lines) + "\n"
