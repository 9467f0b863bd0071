"""`docker pull`: manifest (through an index to linux/amd64 when it is one), config, then the layers — three
downloads at once, each unpacked as soon as it is verified. The image (and its tag) is created in one
transaction at the very end, so a failed pull leaves nothing visible; completed layers and compressed blobs
stay, and partial downloads stay in the store's tmp dir, so the next pull only fetches what is missing."""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import BinaryIO

from nanovisor.errors import InvalidParameter, NotFound
from nanovisor.images import reference
from nanovisor.images.content import digest_of
from nanovisor.images.registry import blobmeta
from nanovisor.images.registry import progress as P
from nanovisor.images.registry.credentials import AuthConfig
from nanovisor.images.registry.download import Cancelled, fetch_layer, fetch_small, open_partial
from nanovisor.images.registry.errors import RegistryError, VerificationError, pull_error
from nanovisor.images.registry.manifest import (
    ACCEPT,
    DOCKER_LAYER,
    INDEXES,
    MAX_MANIFEST,
    Descriptor,
    Manifest,
    media_type_of,
    parse_manifest,
    pick,
)
from nanovisor.images.registry.transport import RegistryClient, TransportError, for_registry
from nanovisor.images.store import Image, ImageStore

MAX_CONCURRENT_DOWNLOADS = 3


def pull(store: ImageStore, ref: str, *, auth: AuthConfig | dict | None = None, progress: P.Progress | None = None,
         platform: str | None = None, insecure_registries: Sequence[str] | None = None,
         certs_dir: Path | None = None, max_concurrent: int = MAX_CONCURRENT_DOWNLOADS, retries: int = 5,
         retry_delay: float = 1.0, cancel: threading.Event | None = None) -> Image:
    """Pulls ref ("name[:tag]" or "name@sha256:...") into store and returns the image.

    progress receives dockerd's JSON messages; auth is an AuthConfig or Docker's AuthConfig JSON (the
    decoded X-Registry-Auth header). Errors: NotFound (unknown manifest/repository, access denied),
    Unauthorized, VerificationError (the registry lied), RegistryError (anything else it answered)."""
    parsed = reference.parse(ref)
    if isinstance(auth, dict):
        auth = AuthConfig.from_dict(auth)
    client = for_registry(parsed.domain, auth, [f"repository:{parsed.path}:pull"], insecure_registries,
                          certs_dir)
    job = _Pull(store, parsed, client, P.Reporter(progress), platform, max_concurrent, retries, retry_delay,
                cancel or threading.Event())
    try:
        return job.run()
    except TransportError:
        raise
    except RegistryError as e:
        raise pull_error(e, parsed.name, parsed.familiar()) from None
    finally:
        client.close()


class _Counting:
    """A read-only file wrapper reporting how far a consumer got (the "Extracting" bar)."""

    def __init__(self, f: BinaryIO, on_read) -> None:
        self._f, self._on_read, self.done = f, on_read, 0

    def read(self, n: int = -1) -> bytes:
        data = self._f.read(n)
        if data:
            self.done += len(data)
            self._on_read(self.done)
        return data

    def readinto(self, b) -> int:
        n = self._f.readinto(b)
        if n:
            self.done += n
            self._on_read(self.done)
        return n


class _Pull:
    def __init__(self, store: ImageStore, parsed: reference.Reference, client: RegistryClient,
                 report: P.Reporter, platform: str | None, max_concurrent: int, retries: int,
                 retry_delay: float, stop: threading.Event) -> None:
        self.store, self.ref, self.client, self.report = store, parsed, client, report
        self.platform, self.max_concurrent, self.retries, self.retry_delay = (platform, max_concurrent, retries,
                                                                               retry_delay)
        self.stop = stop
        self.repo = parsed.path

    def run(self) -> Image:
        target = self.ref.digest or self.ref.tag or "latest"
        self.report(P.status(f"Pulling from {self.repo}", target))
        top_digest, manifest, manifest_doc = self._manifest(target)
        config_bytes = self._config(manifest.config)
        diff_ids = self._diff_ids(config_bytes, manifest)
        previous = self._current_id()
        if not self.store.exists(digest_of(config_bytes)):  # an image we hold already needs no layers
            self._layers(manifest.layers, diff_ids)
        if self.stop.is_set():
            raise Cancelled()
        refs = [] if self.ref.digest else [self.ref.familiar()]
        image = self.store.create_image_bytes(config_bytes, refs, manifest=manifest_doc,
                                              repo_digests=[f"{self.ref.name}@{top_digest}"])
        self.report(P.status(f"Digest: {top_digest}"))
        fresh = previous != image.id
        self.report(P.status(f"Status: {'Downloaded newer image' if fresh else 'Image is up to date'} for "
                             f"{self.ref.familiar()}"))
        return image

    def _current_id(self) -> str | None:
        try:
            return self.store.resolve_id(self.ref.familiar())
        except NotFound:
            return None

    # -- manifest and config ---------------------------------------------------------------------------

    def _get_manifest(self, target: str) -> tuple[bytes, str, str]:
        resp = self.client.request("GET", f"/v2/{self.repo}/manifests/{target}", {"Accept": ACCEPT})
        if resp.status != 200:
            raise resp.error()
        data = resp.body(MAX_MANIFEST)
        digest = digest_of(data)
        if target.startswith("sha256:"):
            if digest != target:
                raise VerificationError(f"manifest verification failed for digest {target}")
        else:
            claimed = resp.header("Docker-Content-Digest")
            if claimed and claimed != digest:
                raise VerificationError(f"manifest verification failed for digest {claimed}")
        return data, resp.header("Content-Type"), digest

    def _manifest(self, target: str) -> tuple[str, Manifest, dict]:
        data, ctype, top = self._get_manifest(target)
        mt, doc = media_type_of(data, ctype)
        if mt in INDEXES:
            desc = pick(doc, self.platform)
            data, ctype, digest = self._get_manifest(desc.digest)
            if len(data) != desc.size:
                raise VerificationError(f"manifest verification failed for digest {desc.digest}")
            mt, doc = media_type_of(data, ctype)
            if mt in INDEXES:
                raise InvalidParameter(f"unsupported media type {mt} inside a manifest list")
        return top, parse_manifest(mt, doc), doc

    def _config(self, desc: Descriptor) -> bytes:
        if self.store.blobs.has(desc.digest):
            data = self.store.blobs.read(desc.digest)
            if digest_of(data) == desc.digest:
                return data
        return fetch_small(self.client, self.repo, desc, "image config")

    def _diff_ids(self, config_bytes: bytes, manifest: Manifest) -> list[str]:
        try:
            config = json.loads(config_bytes)
        except ValueError:
            raise InvalidParameter("invalid image config: not JSON") from None
        if not isinstance(config, dict):
            raise InvalidParameter("invalid image config: not an object")
        os_ = config.get("os") or "linux"
        if os_ != "linux":
            raise InvalidParameter(f'image operating system "{os_}" cannot be used on this platform')
        diff_ids = (config.get("rootfs") or {}).get("diff_ids") or []
        if not isinstance(diff_ids, list) or len(diff_ids) != len(manifest.layers):
            raise VerificationError("layers from manifest don't match image configuration")
        for d in diff_ids:
            if not isinstance(d, str) or not d.startswith("sha256:") or len(d) != 71:
                raise InvalidParameter(f"invalid image config: bad diff_id {d!r}")
        return diff_ids

    # -- layers --------------------------------------------------------------------------------------

    def _layers(self, layers: list[Descriptor], diff_ids: list[str]) -> None:
        jobs: dict[str, tuple[Descriptor, str]] = {}
        for desc, diff_id in zip(layers, diff_ids):
            lid = P.short(desc.digest)
            if desc.digest in jobs:
                continue
            if self.store.has_layer(diff_id):
                blobmeta.lease(self.store, diff_id)
                self.report(P.layer("Already exists", lid))
                continue
            jobs[desc.digest] = (desc, diff_id)
        for desc, _ in jobs.values():
            self.report(P.layer("Pulling fs layer", P.short(desc.digest)))
        for desc, _ in list(jobs.values())[self.max_concurrent:]:
            self.report(P.layer("Waiting", P.short(desc.digest)))
        if not jobs:
            return
        errors: list[BaseException] = []
        with ThreadPoolExecutor(max_workers=self.max_concurrent, thread_name_prefix="pull") as pool:
            futures = [pool.submit(self._one, desc, diff_id) for desc, diff_id in jobs.values()]
            for f in futures:
                err = f.exception()
                if err is not None:
                    errors.append(err)
                    self.stop.set()
        real = [e for e in errors if not isinstance(e, Cancelled)]
        if real or errors:
            raise (real or errors)[0]

    def _one(self, desc: Descriptor, diff_id: str) -> None:
        if self.stop.is_set():
            raise Cancelled()
        lid = P.short(desc.digest)
        info = blobmeta.lookup(self.store, desc.digest)
        if info is not None and info.diff_id == diff_id and self.store.blobs.has(desc.digest):
            with open(self.store.blobs.path(desc.digest), "rb") as f:  # blob kept, layer collected: unpack
                self._extract(f, desc, diff_id)
            self.report(P.layer("Pull complete", lid))
            return
        part = open_partial(self.store.paths.tmp, desc.digest)
        try:
            if self.store.has_layer(diff_id):  # another pull finished it while we waited for the lock
                blobmeta.lease(self.store, diff_id)
                part.path.unlink(missing_ok=True)
                self.report(P.layer("Already exists", lid))
                return
            fetch_layer(self.client, self.repo, desc, part,
                        on_bytes=lambda cur, tot: self.report.bytes("Downloading", lid, cur, tot),
                        on_retry=lambda n, d: self.report(P.layer(f"Retrying in {d} second{'s' * (d != 1)}", lid)),
                        retries=self.retries, cancel=self.stop, retry_delay=self.retry_delay)
            self.report(P.layer("Verifying Checksum", lid))
            self.report(P.layer("Download complete", lid))
            part.file.seek(0)
            self._extract(part.file, desc, diff_id)
            info = blobmeta.BlobInfo(desc.digest, diff_id, desc.media_type or DOCKER_LAYER, desc.size)
            blobmeta.record(self.store, info, self.client.endpoint.name, self.repo)
            blobmeta.commit_file(self.store, part.path, desc.digest)
        finally:
            part.release()
        self.report(P.layer("Pull complete", lid))

    def _extract(self, f: BinaryIO, desc: Descriptor, diff_id: str) -> None:
        lid = P.short(desc.digest)
        reader = _Counting(f, lambda done: self.report.bytes("Extracting", lid, done, desc.size))
        got = self.store.add_layer(reader)  # type: ignore[arg-type]
        if got != diff_id:
            raise VerificationError(f"layer {desc.digest} unpacks to {got}, the image config says {diff_id}")
