"""Manifests and indexes, Docker's (schema 2) and OCI's: what we accept, how we pick a platform from a list,
and the manifest we write when pushing (Docker's exact layout, so the digest is stable)."""

from __future__ import annotations

import json
from dataclasses import dataclass

from nanovisor.errors import InvalidParameter
from nanovisor.images.content import check_digest

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_FOREIGN_LAYER = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = OCI_LAYER + "+gzip"
OCI_LAYER_ZSTD = OCI_LAYER + "+zstd"
SCHEMA1 = ("application/vnd.docker.distribution.manifest.v1+json",
           "application/vnd.docker.distribution.manifest.v1+prettyjws")

MANIFESTS = (DOCKER_MANIFEST, OCI_MANIFEST)
INDEXES = (DOCKER_LIST, OCI_INDEX)
ACCEPT = ", ".join(MANIFESTS + INDEXES)
LAYERS = (DOCKER_LAYER, DOCKER_FOREIGN_LAYER, OCI_LAYER, OCI_LAYER_GZIP, OCI_LAYER_ZSTD,
          "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip")
MAX_MANIFEST = 4 << 20      # containerd's limit; a manifest is small


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    platform: dict | None = None

    @classmethod
    def parse(cls, d: object, what: str) -> Descriptor:
        if not isinstance(d, dict):
            raise InvalidParameter(f"invalid manifest: {what} is not an object")
        digest, size = d.get("digest"), d.get("size")
        if not isinstance(digest, str) or not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise InvalidParameter(f"invalid manifest: {what} needs a digest and a size")
        check_digest(digest)
        return cls(str(d.get("mediaType") or ""), digest, size, d.get("platform"))

    def to_json(self) -> dict:
        return {"mediaType": self.media_type, "size": self.size, "digest": self.digest}


@dataclass
class Manifest:
    media_type: str
    config: Descriptor
    layers: list[Descriptor]


def media_type_of(data: bytes, header: str) -> tuple[str, dict]:
    """(media type, parsed JSON): the mediaType field wins over Content-Type, as containerd decides."""
    try:
        doc = json.loads(data)
    except ValueError:
        raise InvalidParameter("invalid manifest: not JSON") from None
    if not isinstance(doc, dict):
        raise InvalidParameter("invalid manifest: not an object")
    mt = doc.get("mediaType") or header.split(";")[0].strip()
    if not mt or mt in ("application/json", "text/plain"):
        mt = OCI_INDEX if "manifests" in doc else OCI_MANIFEST if "config" in doc else mt
    if doc.get("schemaVersion") == 1 or mt in SCHEMA1:
        raise InvalidParameter("unsupported media type " + (mt if mt in SCHEMA1 else SCHEMA1[1]) +
                               ": Docker Image manifest version 2, schema 1 is not supported")
    if mt not in MANIFESTS + INDEXES:
        raise InvalidParameter(f"unsupported media type {mt}")
    return mt, doc


def parse_manifest(mt: str, doc: dict) -> Manifest:
    config = Descriptor.parse(doc.get("config"), "config")
    layers_raw = doc.get("layers")
    if not isinstance(layers_raw, list):
        raise InvalidParameter("invalid manifest: layers is not a list")
    layers = [Descriptor.parse(x, f"layer {i}") for i, x in enumerate(layers_raw)]
    for d in layers:
        if d.media_type and d.media_type not in LAYERS:
            raise InvalidParameter(f"unsupported media type {d.media_type}")
    return Manifest(mt, config, layers)


def parse_platform(text: str | None) -> tuple[str, str, str]:
    """"linux/arm64/v8" -> (os, arch, variant); default linux/amd64 (this engine runs amd64 images)."""
    if not text:
        return "linux", "amd64", ""
    parts = text.lower().split("/")
    if len(parts) == 1:
        return parts[0], "amd64", ""
    if len(parts) > 3 or not all(parts):
        raise InvalidParameter(f'"{text}": unknown operating system or architecture: invalid argument')
    return parts[0], parts[1], parts[2] if len(parts) == 3 else ""


def pick(doc: dict, platform: str | None) -> Descriptor:
    """The manifest for the wanted platform from an index ("no matching manifest ..." as moby says)."""
    os_, arch, variant = parse_platform(platform)
    entries = doc.get("manifests")
    if not isinstance(entries, list):
        raise InvalidParameter("invalid manifest list: manifests is not a list")
    candidates = []
    for i, e in enumerate(entries):
        d = Descriptor.parse(e, f"manifest {i}")
        p = d.platform or {}
        if d.media_type and d.media_type not in MANIFESTS:
            continue  # nested indexes, attestations stored as something else
        if p.get("os") == os_ and p.get("architecture") == arch:
            if variant and p.get("variant", "") != variant:
                continue
            candidates.append(d)
    if not candidates:
        want = "/".join(x for x in (os_, arch, variant) if x)
        raise InvalidParameter(f"no matching manifest for {want} in the manifest list entries")
    return candidates[0]


def docker_manifest(config: Descriptor, layers: list[Descriptor], oci: bool = False) -> bytes:
    """The manifest bytes Docker writes (json.MarshalIndent with three spaces)."""
    doc = {"schemaVersion": 2, "mediaType": OCI_MANIFEST if oci else DOCKER_MANIFEST,
           "config": config.to_json(), "layers": [d.to_json() for d in layers]}
    return json.dumps(doc, indent=3).encode()
