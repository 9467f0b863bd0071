"""`docker push`: every layer as a compressed blob (the one we pulled, so digests stay the same, or gzip made
now and kept), skipping blobs the repository has ("Layer already exists"), mounting blobs another repository
of the same registry holds ("Mounted from x"), uploading the rest (five at once, like dockerd); then the config
and the manifest. The manifest digest is recorded as a RepoDigest of the image."""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
import zlib
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urlencode

from nanovisor.errors import InvalidParameter, NotFound
from nanovisor.images import reference
from nanovisor.images.content import digest_of
from nanovisor.images.registry import blobmeta
from nanovisor.images.registry import progress as P
from nanovisor.images.registry.credentials import AuthConfig
from nanovisor.images.registry.download import Cancelled
from nanovisor.images.registry.errors import RegistryError
from nanovisor.images.registry.manifest import (
    DOCKER_CONFIG,
    DOCKER_LAYER,
    OCI_CONFIG,
    OCI_LAYER_GZIP,
    Descriptor,
    docker_manifest,
)
from nanovisor.images.registry.transport import BLOCK, RegistryClient, for_registry
from nanovisor.images.store import Image, ImageStore
from nanovisor.images.tarsplit import replay

MAX_CONCURRENT_UPLOADS = 5
GZIP_LEVEL = 1      # loopback and LAN links outrun level 6 by far; the size cost is ~10%


def push(store: ImageStore, ref: str, *, auth: AuthConfig | dict | None = None, progress: P.Progress | None = None,
         insecure_registries: Sequence[str] | None = None, certs_dir: Path | None = None,
         max_concurrent: int = MAX_CONCURRENT_UPLOADS, chunk_size: int | None = None,
         cancel: threading.Event | None = None) -> str:
    """Pushes "name:tag" (or every local tag of "name" when it has none, as POST /images/{name}/push
    without ?tag= does); returns the manifest digest of the last tag pushed."""
    parsed = reference.parse(ref, default_tag=False)
    if parsed.digest:
        raise InvalidParameter("cannot push a digest reference")
    if isinstance(auth, dict):
        auth = AuthConfig.from_dict(auth)
    tags = [parsed.tag] if parsed.tag else _local_tags(store, parsed)
    if not tags:
        raise NotFound(f"An image does not exist locally with the tag: {parsed.name}")
    report = P.Reporter(progress)
    report(P.status(f"The push refers to repository [{parsed.full_name}]"))
    client = for_registry(parsed.domain, auth, [f"repository:{parsed.path}:pull,push"], insecure_registries,
                          certs_dir)
    try:
        digest = ""
        for tag in tags:
            job = _Push(store, parsed, tag, client, report, max_concurrent, chunk_size,
                        cancel or threading.Event())
            digest = job.run()
        return digest
    finally:
        client.close()


def _local_tags(store: ImageStore, parsed: reference.Reference) -> list[str]:
    out = []
    for r in store.tables.all_refs():
        if "@" in r:
            continue
        try:
            p = reference.parse(r)
        except InvalidParameter:
            continue
        if p.name == parsed.name and p.tag:
            out.append(p.tag)
    return sorted(out)


class _Progress:
    """A file wrapper reporting upload progress ("Pushing")."""

    def __init__(self, f: BinaryIO, limit: int, on_sent) -> None:
        self._f, self._left, self._on_sent, self.sent = f, limit, on_sent, 0

    def read(self, n: int = BLOCK) -> bytes:
        if self._left <= 0:
            return b""
        data = self._f.read(min(n if n > 0 else BLOCK, self._left))
        self._left -= len(data)
        self.sent += len(data)
        self._on_sent(len(data))
        return data

    def tell(self) -> int:
        return self._f.tell()

    def seek(self, pos: int) -> int:  # a resend after a dropped keep-alive connection starts over
        delta = self._f.tell() - pos
        self._left += delta
        self.sent -= delta
        return self._f.seek(pos)


class _Push:
    def __init__(self, store: ImageStore, parsed: reference.Reference, tag: str, client: RegistryClient,
                 report: P.Reporter, max_concurrent: int, chunk_size: int | None, stop: threading.Event) -> None:
        self.store, self.ref, self.tag, self.client, self.report = store, parsed, tag, client, report
        self.max_concurrent, self.chunk_size, self.stop = max_concurrent, chunk_size, stop
        self.repo = parsed.path
        self.registry = client.endpoint.name

    def run(self) -> str:
        try:
            image = self.store.resolve(f"{self.ref.name}:{self.tag}")
        except NotFound:
            raise NotFound(f"An image does not exist locally with the tag: {self.ref.name}") from None
        config = self.store.config_bytes(image)
        blobs = self._layers(image)
        oci = any(b.media_type.startswith("application/vnd.oci") and b.media_type != OCI_LAYER_GZIP
                  for b in blobs)
        cdesc = Descriptor(OCI_CONFIG if oci else DOCKER_CONFIG, image.id, len(config))
        if not self._exists(cdesc.digest):
            self._upload_bytes(config, cdesc.digest)
        layers = [Descriptor(_layer_type(b.media_type, oci), b.digest, b.size) for b in blobs]
        manifest = docker_manifest(cdesc, layers, oci)
        digest = self._put_manifest(manifest, oci)
        self.report(P.status(f"{self.tag}: digest: {digest} size: {len(manifest)}"))
        self.report({"progressDetail": {}, "aux": {"Tag": self.tag, "Digest": digest, "Size": len(manifest)}})
        self.store.create_image_bytes(config, [], repo_digests=[f"{self.ref.name}@{digest}"])
        return digest

    # -- layers ----------------------------------------------------------------------------------------

    def _layers(self, image: Image) -> list[blobmeta.BlobInfo]:
        diff_ids = image.diff_ids
        unique = list(dict.fromkeys(diff_ids))
        for d in unique:
            self.report(P.layer("Preparing", P.short(d)))
        for d in unique[self.max_concurrent:]:
            self.report(P.layer("Waiting", P.short(d)))
        scopes = {f"repository:{src}:pull" for d in unique for b in blobmeta.for_diff_id(self.store, d)
                  for src in blobmeta.sources(self.store, b.digest, self.registry) if src != self.repo}
        self.client.add_scopes(sorted(scopes))
        done: dict[str, blobmeta.BlobInfo] = {}
        errors: list[BaseException] = []
        with ThreadPoolExecutor(max_workers=self.max_concurrent, thread_name_prefix="push") as pool:
            futures = {d: pool.submit(self._one, d) for d in unique}
            for d, f in futures.items():
                err = f.exception()
                if err is not None:
                    errors.append(err)
                    self.stop.set()
                else:
                    done[d] = f.result()
        if errors:
            real = [e for e in errors if not isinstance(e, Cancelled)]
            raise (real or errors)[0]
        return [done[d] for d in diff_ids]

    def _one(self, diff_id: str) -> blobmeta.BlobInfo:
        if self.stop.is_set():
            raise Cancelled()
        lid = P.short(diff_id)
        candidates = blobmeta.for_diff_id(self.store, diff_id)
        # a blob the target repository is known to hold, then one we can mount, then any we have
        for b in candidates:
            if self.repo in blobmeta.sources(self.store, b.digest, self.registry) and self._exists(b.digest):
                self.report(P.layer("Layer already exists", lid))
                return b
        for b in candidates:
            for src in blobmeta.sources(self.store, b.digest, self.registry):
                if src != self.repo and self._mount(b.digest, src):
                    blobmeta.record_source(self.store, b.digest, self.registry, self.repo)
                    self.report(P.layer(f"Mounted from {src}", lid))
                    return b
        blob = candidates[0] if candidates else self._compress(diff_id)
        if self._exists(blob.digest):
            blobmeta.record_source(self.store, blob.digest, self.registry, self.repo)
            self.report(P.layer("Layer already exists", lid))
            return blob
        with open(self.store.blobs.path(blob.digest), "rb") as f:
            self._upload_file(f, blob.size, blob.digest, lid)
        blobmeta.record_source(self.store, blob.digest, self.registry, self.repo)
        self.report(P.layer("Pushed", lid))
        return blob

    def _compress(self, diff_id: str) -> blobmeta.BlobInfo:
        """gzip of the layer's exact tar (deterministic: no name, no mtime), kept in the BlobStore so the
        next push re-uses its digest."""
        tmp = self.store.paths.tmp
        tmp.mkdir(parents=True, exist_ok=True)
        fd, path = tempfile.mkstemp(prefix="push-", suffix=".gz", dir=tmp)
        h = hashlib.sha256()
        size = 0
        try:
            with os.fdopen(fd, "wb") as out:
                z = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 31)
                for chunk in replay(self.store.layer_path(diff_id), diff_id):
                    if self.stop.is_set():
                        raise Cancelled()
                    data = z.compress(chunk)
                    if data:
                        h.update(data)
                        size += len(data)
                        out.write(data)
                data = z.flush()
                h.update(data)
                size += len(data)
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            info = blobmeta.BlobInfo("sha256:" + h.hexdigest(), diff_id, DOCKER_LAYER, size)
            blobmeta.record(self.store, info)
            blobmeta.commit_file(self.store, Path(path), info.digest)
            return info
        except BaseException:
            Path(path).unlink(missing_ok=True)
            raise

    # -- registry calls --------------------------------------------------------------------------------

    def _exists(self, digest: str) -> bool:
        resp = self.client.request("HEAD", f"/v2/{self.repo}/blobs/{digest}")
        resp.close()
        if resp.status == 200:
            return True
        if resp.status == 404:
            return False
        raise resp.error()

    def _mount(self, digest: str, src: str) -> bool:
        q = urlencode({"mount": digest, "from": src})
        resp = self.client.request("POST", f"/v2/{self.repo}/blobs/uploads/?{q}")
        resp.body(1 << 16)
        if resp.status == 201:
            return True
        if resp.status == 202:  # mount refused, an upload session opened instead: cancel it
            loc = resp.header("Location")
            if loc:
                self.client.request("DELETE", loc).body(1 << 16)
            return False
        if resp.status in (401, 403, 404):
            return False
        raise resp.error()

    def _start_upload(self) -> str:
        resp = self.client.request("POST", f"/v2/{self.repo}/blobs/uploads/")
        resp.body(1 << 16)
        if resp.status != 202 or not resp.header("Location"):
            raise resp.error()
        return resp.header("Location")

    def _finish(self, location: str, digest: str, body: bytes | None = None) -> None:
        sep = "&" if "?" in location else "?"
        headers = {"Content-Type": "application/octet-stream", "Content-Length": str(len(body or b""))}
        resp = self.client.request("PUT", f"{location}{sep}{urlencode({'digest': digest})}", headers, body)
        resp.body(1 << 16)
        if resp.status != 201:
            raise resp.error()

    def _upload_bytes(self, data: bytes, digest: str) -> None:
        """Monolithic upload (POST, then PUT with the whole body): configs and other small blobs."""
        self._finish(self._start_upload(), digest, data)

    def _upload_file(self, f: BinaryIO, size: int, digest: str, lid: str) -> None:
        """Chunked upload: PATCH the content (in chunk_size pieces when set, else one streamed request),
        then PUT ?digest= to commit it; the registry checks the digest itself."""
        location = self._start_upload()
        sent = [0]

        def on_sent(n: int) -> None:
            sent[0] += n
            self.report.bytes("Pushing", lid, sent[0], size)
            if self.stop.is_set():
                raise Cancelled()

        step = self.chunk_size or size
        offset = 0
        while offset < size or (size == 0 and offset == 0):
            n = min(step, size - offset)
            headers = {"Content-Type": "application/octet-stream", "Content-Length": str(n)}
            if self.chunk_size:
                headers["Content-Range"] = f"{offset}-{offset + n - 1}"
            f.seek(offset)
            resp = self.client.request("PATCH", location, headers, _Progress(f, n, on_sent) if n else b"")
            resp.body(1 << 16)
            if resp.status != 202:
                raise resp.error()
            location = resp.header("Location") or location
            offset += n
            if size == 0:
                break
        self._finish(location, digest)

    def _put_manifest(self, manifest: bytes, oci: bool) -> str:
        from nanovisor.images.registry.manifest import DOCKER_MANIFEST, OCI_MANIFEST

        mt = OCI_MANIFEST if oci else DOCKER_MANIFEST
        resp = self.client.request("PUT", f"/v2/{self.repo}/manifests/{self.tag}",
                                   {"Content-Type": mt, "Content-Length": str(len(manifest))}, manifest)
        resp.body(1 << 16)
        if resp.status not in (200, 201):
            raise resp.error()
        digest = digest_of(manifest)
        claimed = resp.header("Docker-Content-Digest")
        if claimed and claimed != digest:
            raise RegistryError(f"registry answered digest {claimed} for a manifest whose digest is {digest}")
        return digest


def _layer_type(media_type: str, oci: bool) -> str:
    if oci:
        return OCI_LAYER_GZIP if media_type == DOCKER_LAYER else media_type
    return DOCKER_LAYER if media_type in (OCI_LAYER_GZIP, DOCKER_LAYER) else media_type
