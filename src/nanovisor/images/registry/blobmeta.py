"""What we know about compressed layer blobs: which diff_id a registry blob unpacks to and which
repositories hold it. Pull records this (so the next pull skips what it has and a push re-uses the exact
digests it pulled) and push records it (so the next push HEADs or mounts instead of uploading).

The compressed blobs themselves live in the BlobStore; `collect_garbage` drops the ones whose layer is gone."""

from __future__ import annotations

import os
import time
from pathlib import Path

from nanovisor.images.store import LEASE_SECONDS, ImageStore
from nanovisor.store.images import BlobRow

BlobInfo = BlobRow  # the name the registry code knows it by


def lookup(store: ImageStore, digest: str) -> BlobInfo | None:
    return store.tables.blob(digest)


def for_diff_id(store: ImageStore, diff_id: str) -> list[BlobInfo]:
    """Compressed blobs of a layer that are present in the BlobStore."""
    return [b for b in store.tables.blobs_of_layer(diff_id) if store.blobs.has(b.digest)]


def sources(store: ImageStore, digest: str, registry: str) -> list[str]:
    return store.tables.blob_sources(digest, registry)


def record(store: ImageStore, info: BlobInfo, registry: str | None = None, repo: str | None = None) -> None:
    with store.db.transaction():
        store.tables.put_blob(info)
        if registry and repo:
            store.tables.add_blob_source(info.digest, registry, repo)


def record_source(store: ImageStore, digest: str, registry: str, repo: str) -> None:
    store.tables.add_blob_source(digest, registry, repo)


def commit_file(store: ImageStore, path: Path, digest: str) -> None:
    """Moves a verified file into the BlobStore under its digest (same filesystem: one rename)."""
    dest = store.blobs.path(digest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o644)
    os.rename(path, dest)
    fd = os.open(dest.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def lease(store: ImageStore, diff_id: str) -> None:
    """Keeps a present layer from garbage collection until the image that uses it is created (the pull
    found it already there). Uses ImageStore's lease table; ImageStore.create_image_* clears it."""
    store.tables.lease(diff_id, time.time() + LEASE_SECONDS)


def collect_garbage(store: ImageStore) -> int:
    """Deletes compressed blobs whose layer is gone; returns bytes freed. Call after
    ImageStore.collect_garbage (the lead wires this in)."""
    freed = 0
    with store.db.transaction():
        orphans = store.tables.orphan_blobs()
        for b in orphans:
            store.tables.delete_blob(b.digest)
    for b in orphans:
        if store.blobs.has(b.digest):
            freed += b.size
            store.blobs.delete(b.digest)
    return freed
